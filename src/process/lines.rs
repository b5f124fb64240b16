//! Turning a program's output bytes into messages: line splitting (the `\n`, and one `\r`
//! before it, are removed) and the JSON envelope of `--passstderr`.

use bytes::BytesMut;

/// Splits complete lines off the front of a buffer that grows as output arrives.
#[derive(Debug, Default)]
pub struct LineBuffer {
    /// Bytes read but not yet turned into lines.
    pub buf: BytesMut,
    /// How far `buf` has been searched for `\n` already.
    scanned: usize,
}

/// One line taken from a [`LineBuffer`].
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    /// The line's bytes, without its end.
    pub bytes: BytesMut,
}

impl LineBuffer {
    /// The next complete line; with `max_len`, a longer unterminated run is cut into a line
    /// of exactly `max_len` bytes so memory stays bounded.
    pub fn next_line(&mut self, max_len: Option<usize>) -> Option<Line> {
        let limit = max_len.filter(|&max| max > 0);
        match memchr::memchr(b'\n', &self.buf[self.scanned..]) {
            Some(offset) if limit.is_none_or(|max| self.scanned + offset <= max) => {
                let end = self.scanned + offset;
                let mut line = self.buf.split_to(end + 1);
                self.scanned = 0;
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                Some(Line { bytes: line })
            }
            found => {
                self.scanned = match found {
                    Some(offset) => self.scanned + offset,
                    None => self.buf.len(),
                };
                let max = limit.filter(|&max| self.buf.len() >= max)?;
                self.scanned = 0;
                Some(Line {
                    bytes: self.buf.split_to(max),
                })
            }
        }
    }

    /// At end of output: the unterminated rest, if any (delivered as a last message).
    pub fn take_rest(&mut self) -> Option<Line> {
        self.scanned = 0;
        if self.buf.is_empty() {
            return None;
        }
        let mut rest = self.buf.split();
        if rest.last() == Some(&b'\r') {
            rest.truncate(rest.len() - 1);
        }
        Some(Line { bytes: rest })
    }
}

/// `{"stream":"stdout","data":"..."}` with Go's JSON string rules: `<`, `>`, `&`, U+2028
/// and U+2029 escaped as `\uXXXX`, control characters escaped, invalid UTF-8 as `\ufffd`.
pub fn json_envelope(stream: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    out.extend_from_slice(b"{\"stream\":\"");
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b"\",\"data\":");
    json_string(&mut out, data);
    out.push(b'}');
    out
}

/// Appends `data` as a JSON string (quotes included) with the escaping rules of
/// [`json_envelope`].
pub fn json_string(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'"');
    for chunk in data.utf8_chunks() {
        for c in chunk.valid().chars() {
            escape_char(c, out);
        }
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

fn escape_char(c: char, out: &mut Vec<u8>) {
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => {
            out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
        }
        other => {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(other.encode_utf8(&mut utf8).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[&[u8]], max: Option<usize>) -> Vec<Vec<u8>> {
        let mut lb = LineBuffer::default();
        let mut out = Vec::new();
        for chunk in input {
            lb.buf.extend_from_slice(chunk);
            while let Some(line) = lb.next_line(max) {
                out.push(line.bytes.to_vec());
            }
        }
        if let Some(rest) = lb.take_rest() {
            out.push(rest.bytes.to_vec());
        }
        out
    }

    #[test]
    fn splits_lines() {
        assert_eq!(
            lines(&[b"a\nb\r\n\n", b"c\r\r\nd"], None),
            vec![
                b"a".to_vec(),
                b"b".to_vec(),
                b"".to_vec(),
                b"c\r".to_vec(),
                b"d".to_vec()
            ]
        );
        assert_eq!(lines(&[b"ab", b"c", b"\n"], None), vec![b"abc".to_vec()]);
        assert_eq!(lines(&[b"x\0y\n"], None), vec![b"x\0y".to_vec()]);
        assert!(lines(&[b""], None).is_empty());
    }

    #[test]
    fn long_lines_are_cut_at_the_limit() {
        assert_eq!(
            lines(&[b"abcdefg\nhi"], Some(3)),
            vec![
                b"abc".to_vec(),
                b"def".to_vec(),
                b"g".to_vec(),
                b"hi".to_vec()
            ]
        );
    }

    #[test]
    fn go_json_strings() {
        assert_eq!(
            json_envelope("stderr", b"a\"b\\<>&\t\x01\xe2\x80\xa8\xff\xc3\xa9"),
            r#"{"stream":"stderr","data":"a\"b\\\u003c\u003e\u0026\t\u0001\u2028\ufffdé"}"#
                .as_bytes()
                .to_vec()
        );
    }
}
