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
}
