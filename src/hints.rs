//! Hints for a first run: after a message whose wording upstream fixed, one more line that
//! says what to do about it (a mistyped flag, a program that is not executable, a broken
//! `#!` line, a port that is taken or needs root), and the URL to open once the daemon runs.
//! A leaf: it looks at files, text and the configuration, and uses nothing above them.

use crate::config::{Config, Launch};
use crate::http::response::{plain, Body};
use hyper::header::{HeaderMap, ACCEPT};
use hyper::{Response, StatusCode};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The known name closest to `typed`, when it is close enough to be a slip of the fingers:
/// at most two edits, or one for short names, or `typed` is the start of exactly one name.
pub fn closest<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let known: Vec<&str> = known.into_iter().collect();
    let limit = if typed.chars().count() <= 4 { 1 } else { 2 };
    let best = known
        .iter()
        .map(|name| (edit_distance(typed, name), *name))
        .min_by_key(|(distance, _)| *distance)
        .filter(|(distance, _)| *distance <= limit)
        .map(|(_, name)| name);
    best.or_else(|| {
        let mut starting = known.iter().filter(|name| name.starts_with(typed));
        match (starting.next(), starting.next()) {
            (Some(only), None) if !typed.is_empty() => Some(*only),
            _ => None,
        }
    })
}

/// Levenshtein distance, counting a swap of two neighbours as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Why COMMAND could not be used, and what to do, for the line after upstream's
/// "unable to locate specified COMMAND".
pub fn command_not_found(command: &OsStr) -> String {
    let shown = command.to_string_lossy();
    let path = Path::new(command);
    let has_slash = shown.contains('/');
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            format!("'{shown}' is a directory: to serve every program in it, use --dir={shown}")
        }
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => format!(
            "'{shown}' exists but is not executable: make it so with `chmod +x {}`{}",
            shell_word(&shown),
            if has_slash {
                String::new()
            } else {
                format!(", then run it as ./{shown}")
            }
        ),
        Ok(_) if !has_slash => {
            format!("'{shown}' is in the current directory, which is not searched: write ./{shown}")
        }
        _ if has_slash => format!("There is no file '{shown}': check the path."),
        _ => format!(
            "No program '{shown}' in PATH: check the spelling, or give its path (e.g. ./{shown})."
        ),
    }
}

/// What to do about a directory flag naming no directory.
pub fn missing_dir(flag: &str, dir: &str) -> String {
    let what = match flag {
        "--staticdir" => "the files to serve (index.html, ...)",
        "--cgidir" => "the CGI scripts",
        _ => "the programs to serve",
    };
    let exists = Path::new(dir).exists();
    if exists {
        format!("'{dir}' is a file: {flag} needs the directory holding {what}.")
    } else {
        format!(
            "There is no directory '{dir}' (relative paths start from {}): create it with `mkdir -p {}`, or point {flag} at the directory holding {what}.",
            std::env::current_dir().map_or_else(|_| ".".to_string(), |cwd| cwd.display().to_string()),
            shell_word(dir)
        )
    }
}

/// Quotes a word for a shell command line when it needs it.
fn shell_word(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Checks the `#!` line of a script: the interpreter must exist and be executable, and for
/// `#!/usr/bin/env NAME` NAME must be in PATH. Returns what is wrong and how to fix it.
pub fn interpreter_problem(program: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let read = std::fs::File::open(program)
        .and_then(|mut file| file.read(&mut head))
        .ok()?;
    let head = head.get(..read)?;
    let line = head.strip_prefix(b"#!")?;
    let end = line.iter().position(|&b| b == b'\n')?;
    let raw = &line[..end];
    let shown = program.display();
    if let Some(raw) = raw.strip_suffix(b"\r") {
        // A CRLF line ending makes the interpreter's name end in a carriage return.
        return Some(format!(
            "{shown} starts with #!{}, but the line ends with CRLF (saved on Windows), so that \
             interpreter cannot be found: convert the file with `sed -i 's/\\r$//' {shown}`",
            String::from_utf8_lossy(raw).trim()
        ));
    }
    let line = String::from_utf8_lossy(raw);
    let line = line.trim();
    let mut words = line.split_whitespace();
    let interpreter = words.next()?;
    if !executable(Path::new(interpreter)) {
        return Some(format!(
            "{shown} starts with #!{line}, but {interpreter} is not an executable program here: \
             fix its first line (e.g. #!/usr/bin/env python3, #!/bin/sh)"
        ));
    }
    if Path::new(interpreter).file_name() == Some(OsStr::new("env")) {
        let name = words.find(|word| !word.starts_with('-'))?;
        if !name.contains('=') && !name.contains('/') && in_path(name).is_none() {
            return Some(format!(
                "{shown} starts with #!{line}, but there is no '{name}' in PATH: install it, \
                 or fix the first line"
            ));
        }
    }
    None
}

fn executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| !meta.is_dir() && meta.permissions().mode() & 0o111 != 0)
}

fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| executable(candidate))
}

/// What to do when a listener could not be opened, from the error text (Go's words, e.g.
/// `listen tcp :80: bind: permission denied`, which names the port).
pub fn listen_failure(error: &str) -> Option<String> {
    let address = error.strip_prefix("listen tcp ")?.split(": ").next()?;
    let port: i64 = address.rsplit(':').next()?.parse().ok()?;
    if error.contains("address already in use") {
        Some(format!(
            "Another program is using port {port}: stop it (`ss -ltnp 'sport = :{port}'` shows \
             which), or pick a free port with --port=PORT."
        ))
    } else if error.contains("permission denied") && (1..1024).contains(&port) {
        Some(format!(
            "Only root may listen on port {port} (below 1024): use a higher port, e.g. \
             --port=8080, or grant the binary the right with `setcap \
             cap_net_bind_service=+ep $(command -v websocketd)`."
        ))
    } else if error.contains("cannot assign requested address") {
        Some("That --address does not belong to this machine: use one of its addresses, or leave --address out to listen on all of them.".to_string())
    } else {
        None
    }
}

/// The host to put in a URL a user can open: `localhost` when listening on every interface,
/// the address otherwise (IPv6 in brackets, as given).
pub fn browsable_host(address: &str) -> &str {
    match address {
        "" | "0.0.0.0" | "[::]" | "::" => "localhost",
        other => other,
    }
}

/// The start-up line naming a URL to open (or to connect a client to) on a listener bound
/// to `address` (empty: every interface).
pub fn open_line(config: &Config, address: &str) -> String {
    let host = browsable_host(address);
    let port = config.listen_port();
    let tls = config.tls.is_some();
    let (ws, http) = if tls {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    let port = if port == if tls { 443 } else { 80 } {
        String::new()
    } else {
        format!(":{port}")
    };
    let page = if config.dev_console {
        Some(String::new())
    } else {
        config
            .static_dir
            .as_deref()
            .map(|dir| index_page(dir).unwrap_or_default())
    };
    match (page, &config.launch) {
        (Some(page), _) => format!("Open in a browser           : {http}://{host}{port}/{page}"),
        (None, Some(Launch::Dir(_))) => format!(
            "Connect a WebSocket client  : {ws}://{host}{port}/NAME (NAME: a program in the --dir)"
        ),
        (None, Some(Launch::Command { .. })) => format!(
            "Connect a WebSocket client  : {ws}://{host}{port}/ (add --devconsole to try it in a browser)"
        ),
        (None, None) => format!("Open in a browser           : {http}://{host}{port}/SCRIPT (a CGI script)"),
    }
}

/// The 404 for a plain HTTP request nothing serves: Go's body, and for a browser (it accepts
/// HTML) a second paragraph saying how to serve pages.
pub fn not_found(headers: &HeaderMap) -> Response<Body> {
    let browser = headers
        .get_all(ACCEPT)
        .iter()
        .any(|value| value.to_str().is_ok_and(|text| text.contains("text/html")));
    if browser {
        plain(
            StatusCode::NOT_FOUND,
            "404 page not found\n\nThis websocketd serves no pages here. To serve files from a \
             directory, start it with --staticdir=DIR; to try the WebSocket program from this \
             browser, start it with --devconsole.",
        )
    } else {
        plain(StatusCode::NOT_FOUND, "404 page not found")
    }
}

/// The page to open in a static directory: `index.html`, else the first `.html` file by name.
pub fn index_page(dir: &Path) -> Option<String> {
    if dir.join("index.html").is_file() {
        return Some(String::new());
    }
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .take(10_000)
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".html") && !name.starts_with('.'))
        .collect();
    pages.sort();
    pages.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: [&str; 6] = ["port", "address", "staticdir", "sslcert", "sslkey", "dir"];

    #[test]
    fn suggests_the_closest_flag() {
        assert_eq!(closest("prot", FLAGS), Some("port"));
        assert_eq!(closest("ports", FLAGS), Some("port"));
        assert_eq!(closest("adress", FLAGS), Some("address"));
        assert_eq!(closest("static", FLAGS), Some("staticdir"));
        assert_eq!(closest("sslkye", FLAGS), Some("sslkey"));
        assert_eq!(closest("bogus", FLAGS), None);
        assert_eq!(closest("ssl", FLAGS), None);
        assert_eq!(closest("x", FLAGS), None);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn listen_hints() {
        let busy = listen_failure("listen tcp 127.0.0.1:8080: bind: address already in use");
        assert!(busy.is_some_and(|h| h.contains("port 8080") && h.contains("--port")));
        let root = listen_failure("listen tcp :80: bind: permission denied");
        assert!(root.is_some_and(|h| h.contains("--port=8080")));
        let v6 = listen_failure("listen tcp [::1]:80: bind: permission denied");
        assert!(v6.is_some_and(|h| h.contains("port 80 ")));
        assert_eq!(
            listen_failure("listen tcp :9000: bind: permission denied"),
            None
        );
        assert_eq!(listen_failure("something else"), None);
        assert_eq!(browsable_host(""), "localhost");
        assert_eq!(browsable_host("[::1]"), "[::1]");
    }

    fn config(args: &[&str]) -> Config {
        let mut argv = vec![std::ffi::OsString::from("websocketd")];
        argv.extend(args.iter().map(std::ffi::OsString::from));
        crate::cli::parse(&argv).expect("valid command line")
    }

    #[test]
    fn open_lines_name_a_url() {
        let site = std::env::temp_dir().join(format!("wsd-hints-{}", std::process::id()));
        std::fs::create_dir_all(&site).expect("temp dir");
        for page in ["count.html", "chat.html", ".hidden.html"] {
            std::fs::write(site.join(page), "").expect("page");
        }
        let statics = format!("--staticdir={}", site.display());
        assert_eq!(
            open_line(&config(&["--port=8080", &statics, "cat"]), ""),
            "Open in a browser           : http://localhost:8080/chat.html"
        );
        std::fs::write(site.join("index.html"), "").expect("page");
        assert_eq!(
            open_line(&config(&["--port=8080", &statics, "cat"]), "0.0.0.0"),
            "Open in a browser           : http://localhost:8080/"
        );
        let _ = std::fs::remove_dir_all(&site);
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        assert_eq!(
            open_line(&config(&["--devconsole", "cat"]), "127.0.0.1"),
            "Open in a browser           : http://127.0.0.1/"
        );
        assert!(open_line(&config(&["--port=9", "cat"]), "[::1]")
            .starts_with("Connect a WebSocket client  : ws://[::1]:9/ (add --devconsole"));
        let dir = format!("--dir={examples}");
        assert!(open_line(&config(&["--port=9", &dir]), "").contains("ws://localhost:9/NAME"));
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("./count.sh"), "./count.sh");
        assert_eq!(shell_word("my prog"), "'my prog'");
    }
}
