//! Request path decoding and canonicalisation. Properties: a canonical path is rooted,
//! has no `.`, `..` or empty segment, is its own canonical form, and joined to a root
//! never leaves it; escaping then decoding gives back the bytes; an escaped path holds
//! only URL-safe ASCII.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use websocketd::http::path;

fuzz_target!(|data: &[u8]| {
    let decoded = match std::str::from_utf8(data) {
        Ok(text) => match path::decode(text) {
            Some(bytes) => bytes,
            None => {
                assert!(text.contains('%'), "only a bad escape is refused: {text:?}");
                data.to_vec()
            }
        },
        Err(_) => data.to_vec(),
    };
    let canonical = path::canonical(&decoded);
    assert_eq!(canonical.first(), Some(&b'/'));
    let inner = &canonical[1..];
    let segments: Vec<&[u8]> = inner.split(|&b| b == b'/').collect();
    for (i, segment) in segments.iter().enumerate() {
        assert!(*segment != b"." && *segment != b"..", "{canonical:?}");
        // Only the trailing slash may leave an empty segment.
        assert!(
            !segment.is_empty() || i == segments.len() - 1,
            "{canonical:?}"
        );
    }
    assert_eq!(path::canonical(&canonical), canonical);

    let root = Path::new("/srv/root");
    let joined = root.join(OsStr::from_bytes(inner));
    assert!(joined.starts_with(root));
    assert!(joined.components().all(|c| c != Component::ParentDir));

    let escaped = path::escape(&decoded);
    assert!(escaped
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'"' | b'<' | b'>')));
    assert_eq!(path::decode(&escaped).as_deref(), Some(&decoded[..]));

    if !path::has_hidden_segment(&decoded) {
        assert!(!decoded.split(|&b| b == b'/').any(|s| s == b".."));
    }
    let last = path::last_segment(&decoded);
    assert!(!last.contains(&b'/'));
});
