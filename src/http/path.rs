//! URL path handling shared by every route: percent-decoding, the canonical form that
//! non-canonical paths are redirected to (301), and escaping for `Location` headers.
//! All path sanitising lives here.

/// Decodes `%XX` escapes. `None` for a malformed escape (the request gets 400).
pub fn decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The canonical form of a decoded path: rooted, no `.`/`..` segments, no `//`; a trailing
/// slash is kept. Requests whose path differs from this are redirected to it.
pub fn canonical(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b"/".to_vec();
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = Vec::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if out.is_empty() || path.ends_with(b"/") {
        out.push(b'/');
    }
    out
}

/// Escapes a decoded path for a URL (Go's path escaping: unreserved characters and
/// `$&+,/:;=@` stay as they are).
pub fn escape(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path {
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'~'
                    | b'$'
                    | b'&'
                    | b'+'
                    | b','
                    | b'/'
                    | b':'
                    | b';'
                    | b'='
                    | b'@'
            )
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
    out
}

/// Escapes text for an HTML attribute or element body.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Whether any segment of `path` starts with `.`. Static serving refuses such paths so that
/// dotfiles and dot-directories (`.git`, `.env`, ...) are never published by accident; this
/// also covers any stray `.`/`..` segment.
pub fn has_hidden_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/')
        .any(|segment| segment.first() == Some(&b'.'))
}

/// The last segment of `path`, ignoring trailing slashes (like Go's `path.Base`, but an
/// all-slash or empty path gives an empty name).
pub fn last_segment(path: &[u8]) -> &[u8] {
    let mut end = path.len();
    while end > 0 && path[end - 1] == b'/' {
        end -= 1;
    }
    let start = path[..end]
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(0, |i| i + 1);
    &path[start..end]
}

/// A relative `Location` for redirecting to a sibling name: `prefix` + escaped `name` +
/// `suffix`, plus an optional raw query. A bare name holding `:` gets a leading `./` so that a
/// browser cannot mistake it for a URL scheme.
pub fn relative_location(prefix: &str, name: &[u8], suffix: &str, query: Option<&str>) -> String {
    let escaped = escape(name);
    let mut out = String::with_capacity(prefix.len() + escaped.len() + suffix.len() + 3);
    if prefix.is_empty() && escaped.contains(':') {
        out.push_str("./");
    }
    out.push_str(prefix);
    out.push_str(&escaped);
    out.push_str(suffix);
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(p: &str) -> String {
        String::from_utf8(canonical(p.as_bytes())).unwrap()
    }

    #[test]
    fn canonical_paths() {
        assert_eq!(canon(""), "/");
        assert_eq!(canon("/"), "/");
        assert_eq!(canon("/a/b"), "/a/b");
        assert_eq!(canon("/a/b/"), "/a/b/");
        assert_eq!(canon("//a"), "/a");
        assert_eq!(canon("/a/./b"), "/a/b");
        assert_eq!(canon("/a/../b"), "/b");
        assert_eq!(canon("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(canon("/a/.."), "/");
        assert_eq!(canon("/a/b/.."), "/a");
        assert_eq!(canon("/a/."), "/a");
        assert_eq!(canon("a"), "/a");
        assert_eq!(canon("/a//"), "/a/");
    }

    #[test]
    fn decoding() {
        assert_eq!(decode("/a%20b").unwrap(), b"/a b");
        assert_eq!(decode("/%2e%2E").unwrap(), b"/..");
        assert_eq!(decode("/a+b").unwrap(), b"/a+b");
        assert!(decode("/%zz").is_none());
        assert!(decode("/%2").is_none());
        assert_eq!(decode("/%00").unwrap(), b"/\0");
    }

    #[test]
    fn escaping() {
        assert_eq!(escape(b"/a b/\xff?"), "/a%20b/%FF%3F");
        assert_eq!(escape(b"/x;y=z@w"), "/x;y=z@w");
        assert_eq!(
            html_escape("\"><script>&'"),
            "&#34;&gt;&lt;script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn static_path_helpers() {
        assert!(has_hidden_segment(b"/.git/config"));
        assert!(has_hidden_segment(b"/a/.env"));
        assert!(has_hidden_segment(b"/a/../b"));
        assert!(!has_hidden_segment(b"/a.b/c.txt"));
        assert!(!has_hidden_segment(b"/"));
        assert_eq!(last_segment(b"/a/b"), b"b");
        assert_eq!(last_segment(b"/a/b/"), b"b");
        assert_eq!(last_segment(b"/"), b"");
        assert_eq!(relative_location("", b"dir", "/", Some("x=1")), "dir/?x=1");
        assert_eq!(relative_location("../", b"a b", "", None), "../a%20b");
        assert_eq!(relative_location("", b"c:d", "/", Some("")), "./c:d/");
    }
}
