//! `--dir` mode: the URL path names a program inside the script directory; what follows
//! the program's name becomes `PATH_INFO`. Symlinks may not lead out of the directory.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A program found for a URL path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The file to execute (inside the script directory).
    pub file: PathBuf,
    /// `SCRIPT_NAME`: the URL prefix that named the program.
    pub script_name: Vec<u8>,
    /// `PATH_INFO`: the rest of the path, `/`-prefixed, or empty.
    pub path_info: Vec<u8>,
}

/// Finds the program a decoded, canonical URL path names under the absolute `dir`.
/// `None` means 404: a missing segment, a directory, or a file whose real path leaves `dir`.
pub fn resolve(dir: &Path, path: &[u8]) -> Option<Script> {
    let relative = path.strip_prefix(b"/").unwrap_or(path);
    let segments: Vec<&[u8]> = relative.split(|&b| b == b'/').collect();
    let mut file = dir.to_path_buf();
    let mut script_name = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        if segment.contains(&0) {
            return None;
        }
        file.push(OsStr::from_bytes(segment));
        script_name.push(b'/');
        script_name.extend_from_slice(segment);
        let meta = std::fs::metadata(&file).ok()?;
        let last = index + 1 == segments.len();
        if meta.is_dir() {
            if last {
                return None;
            }
            continue;
        }
        let real_dir = dir.canonicalize().ok()?;
        let real_file = file.canonicalize().ok()?;
        if !real_file.starts_with(&real_dir) {
            return None;
        }
        let rest = &segments[index + 1..];
        let path_info = if rest.is_empty() {
            Vec::new()
        } else {
            let mut info = Vec::new();
            for part in rest {
                info.push(b'/');
                info.extend_from_slice(part);
            }
            info
        };
        return Some(Script {
            file,
            script_name,
            path_info,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fixture() -> PathBuf {
        let root = std::env::temp_dir().join(format!("wsd-scriptdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dir/sub")).unwrap();
        std::fs::write(root.join("dir/env.sh"), "#!/bin/sh\n").unwrap();
        std::fs::write(root.join("dir/sub/e"), "").unwrap();
        std::fs::write(root.join("outside"), "").unwrap();
        symlink(root.join("outside"), root.join("dir/escape")).unwrap();
        symlink(root.join("dir/env.sh"), root.join("dir/inside")).unwrap();
        root
    }

    #[test]
    fn splits_script_and_path_info() {
        let root = fixture();
        let dir = root.join("dir");
        let s = resolve(&dir, b"/env.sh/extra/p ath").unwrap();
        assert_eq!(s.script_name, b"/env.sh");
        assert_eq!(s.path_info, b"/extra/p ath");
        assert_eq!(s.file, dir.join("env.sh"));
        let s = resolve(&dir, b"/sub/e").unwrap();
        assert_eq!(
            (s.script_name.as_slice(), s.path_info.as_slice()),
            (&b"/sub/e"[..], &b""[..])
        );
        assert_eq!(resolve(&dir, b"/env.sh/").unwrap().path_info, b"/");
        assert!(resolve(&dir, b"/").is_none());
        assert!(resolve(&dir, b"/sub").is_none());
        assert!(resolve(&dir, b"/sub/").is_none());
        assert!(resolve(&dir, b"/missing").is_none());
        assert!(resolve(&dir, b"/escape").is_none());
        assert!(resolve(&dir, b"/inside").is_some());
        assert!(resolve(&dir, b"/env\0.sh").is_none());
        std::fs::remove_dir_all(root).unwrap();
    }
}
