//! The header block a CGI script writes before its body (RFC 3875 §6.2): `Name: value`
//! lines ended by `\n` or `\r\n`, then an empty line. Collected incrementally as the
//! script's output arrives, then interpreted the way Go's CGI host does.

use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::StatusCode;

/// Longest header line accepted, without its line ending.
pub const MAX_LINE: usize = 1024;
/// Largest header block accepted, line endings and the closing empty line included.
pub const MAX_BLOCK: usize = 64 * 1024;

/// What the script's header block asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// The response status.
    pub status: StatusCode,
    /// The script's own headers, in the order written (repeats kept).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Lines that were skipped, one note each for the daemon's stderr.
    pub notes: Vec<String>,
}

/// Why the script's output cannot become a response (each ends in a 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// A header line longer than [`MAX_LINE`].
    LongLine,
    /// A header block larger than [`MAX_BLOCK`].
    TooLarge,
    /// The output ended before the empty line, or the block had no header at all.
    NoHeaders,
    /// Neither `Content-Type` nor `Status`/`Location`.
    MissingContentType,
    /// A `Status` value that does not start with a usable three-digit code.
    BadStatus(String),
}

impl HeadError {
    /// The note written to the daemon's stderr, in Go's CGI host wording where it has one.
    pub fn message(&self) -> String {
        match self {
            HeadError::LongLine => "cgi: long header line from subprocess.".to_string(),
            HeadError::TooLarge => "cgi: header block from subprocess is too large.".to_string(),
            HeadError::NoHeaders => "cgi: no headers".to_string(),
            HeadError::MissingContentType => {
                "cgi: missing required Content-Type in headers".to_string()
            }
            HeadError::BadStatus(value) => format!("cgi: bogus status: {value:?}"),
        }
    }
}

/// Collects the script's output until the header block is complete.
#[derive(Debug, Default)]
pub struct HeadReader {
    buf: Vec<u8>,
    /// Where the line being read starts.
    line_start: usize,
    /// Bytes up to here have been searched for line ends.
    scanned: usize,
    /// The lines seen so far, line endings removed.
    lines: Vec<(usize, usize)>,
}

/// What [`HeadReader::push`] made of the output so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// The empty line has not arrived yet.
    More,
    /// The header block is complete; `rest` is the start of the body.
    Done {
        /// The interpreted header block.
        head: Head,
        /// Output after the empty line.
        rest: Vec<u8>,
    },
}

impl HeadReader {
    /// A reader that has seen no output.
    pub fn new() -> HeadReader {
        HeadReader::default()
    }

    /// Adds output from the script.
    pub fn push(&mut self, data: &[u8]) -> Result<Progress, HeadError> {
        self.buf.extend_from_slice(data);
        while let Some(offset) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
            let newline = self.scanned + offset;
            self.scanned = newline + 1;
            let mut end = newline;
            if end > self.line_start && self.buf[end - 1] == b'\r' {
                end -= 1;
            }
            if end - self.line_start > MAX_LINE {
                return Err(HeadError::LongLine);
            }
            if self.scanned > MAX_BLOCK {
                return Err(HeadError::TooLarge);
            }
            if end == self.line_start {
                let head = interpret(self.lines.iter().map(|&(s, e)| &self.buf[s..e]))?;
                let rest = self.buf.split_off(self.scanned);
                return Ok(Progress::Done { head, rest });
            }
            self.lines.push((self.line_start, end));
            self.line_start = self.scanned;
        }
        self.scanned = self.buf.len();
        // One byte of slack: the partial line may end in the `\r` of its `\r\n`.
        if self.buf.len() - self.line_start > MAX_LINE + 1 {
            return Err(HeadError::LongLine);
        }
        if self.buf.len() > MAX_BLOCK {
            return Err(HeadError::TooLarge);
        }
        Ok(Progress::More)
    }
}

/// Applies Go's CGI host rules to the header lines (without the empty line): `Status` sets
/// the status, `Location` without `Status` means 302, and a response without either needs a
/// `Content-Type`. Lines without a colon or with an invalid name or value are skipped.
pub fn interpret<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Result<Head, HeadError> {
    let mut status = None;
    let mut headers = Vec::new();
    let mut notes = Vec::new();
    let mut count = 0;
    for line in lines {
        count += 1;
        let Some(colon) = memchr::memchr(b':', line) else {
            notes.push(format!(
                "cgi: bogus header line: {}",
                String::from_utf8_lossy(line)
            ));
            continue;
        };
        let (raw_name, raw_value) = (&line[..colon], trim(&line[colon + 1..]));
        let Ok(name) = HeaderName::from_bytes(raw_name) else {
            notes.push(format!(
                "cgi: invalid header name: {:?}",
                String::from_utf8_lossy(raw_name)
            ));
            continue;
        };
        if name.as_str() == "status" {
            status = Some(parse_status(raw_value)?);
            continue;
        }
        match HeaderValue::from_bytes(raw_value) {
            Ok(value) => headers.push((name, value)),
            Err(_) => notes.push(format!(
                "cgi: invalid value for header {:?}",
                String::from_utf8_lossy(raw_name)
            )),
        }
    }
    if count == 0 {
        return Err(HeadError::NoHeaders);
    }
    let has = |wanted: &HeaderName| {
        headers
            .iter()
            .any(|(name, value)| name == wanted && !value.is_empty())
    };
    let status = match status {
        Some(status) => status,
        None if has(&LOCATION) => StatusCode::FOUND,
        None if has(&CONTENT_TYPE) => StatusCode::OK,
        None => return Err(HeadError::MissingContentType),
    };
    Ok(Head {
        status,
        headers,
        notes,
    })
}

/// The status from a `Status` value such as `404 Not Found`: its first three characters
/// must be a code from 200 to 999 (1xx would not end the response).
fn parse_status(value: &[u8]) -> Result<StatusCode, HeadError> {
    let bad = || HeadError::BadStatus(String::from_utf8_lossy(value).into_owned());
    let code = value.get(..3).ok_or_else(bad)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let code = code
        .iter()
        .fold(0u16, |n, digit| n * 10 + u16::from(digit - b'0'));
    if code < 200 {
        return Err(bad());
    }
    StatusCode::from_u16(code).map_err(|_| bad())
}

/// Removes surrounding spaces, tabs, CRs and LFs, as Go's `textproto.TrimString`.
fn trim(value: &[u8]) -> &[u8] {
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Progress, HeadError> {
        HeadReader::new().push(text.as_bytes())
    }

    fn head(text: &str) -> Head {
        match parse(text) {
            Ok(Progress::Done { head, .. }) => head,
            other => panic!("{other:?}"),
        }
    }

    fn header<'a>(head: &'a Head, name: &str) -> Vec<&'a str> {
        head.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn content_type_gives_200_and_keeps_the_rest() {
        let progress = parse("Content-Type: text/plain\r\nX-A: 1\nX-A: 2\n\r\nbody\nmore").unwrap();
        let Progress::Done { head, rest } = progress else {
            panic!("incomplete")
        };
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(header(&head, "content-type"), ["text/plain"]);
        assert_eq!(header(&head, "x-a"), ["1", "2"]);
        assert_eq!(rest, b"body\nmore");
        assert!(head.notes.is_empty());
    }

    #[test]
    fn status_and_location_rules() {
        assert_eq!(head("Status: 201 Created\n\n").status, StatusCode::CREATED);
        assert_eq!(head("status:404\n\n").status, StatusCode::NOT_FOUND);
        let redirect = head("Location: /elsewhere\n\n");
        assert_eq!(redirect.status, StatusCode::FOUND);
        assert_eq!(header(&redirect, "location"), ["/elsewhere"]);
        assert_eq!(
            head("Location: http://x/\nStatus: 301 Moved\n\n").status,
            StatusCode::MOVED_PERMANENTLY
        );
        assert_eq!(parse("X-Only: 1\n\n"), Err(HeadError::MissingContentType));
        assert_eq!(
            parse("Content-Type:\n\n"),
            Err(HeadError::MissingContentType)
        );
        assert!(matches!(
            parse("Status: 20\n\n"),
            Err(HeadError::BadStatus(_))
        ));
        assert!(matches!(
            parse("Status: abc\n\n"),
            Err(HeadError::BadStatus(_))
        ));
        assert!(matches!(
            parse("Status: 101\n\n"),
            Err(HeadError::BadStatus(_))
        ));
        // The Status line itself is not passed on.
        assert!(head("Status: 204\n\n").headers.is_empty());
    }

    #[test]
    fn missing_or_empty_block() {
        let mut reader = HeadReader::new();
        assert_eq!(
            reader.push(b"Content-Type: text/plain\n"),
            Ok(Progress::More)
        );
        assert_eq!(reader.push(b"X: 1"), Ok(Progress::More));
        assert_eq!(parse("\nbody"), Err(HeadError::NoHeaders));
        assert_eq!(parse("\r\n"), Err(HeadError::NoHeaders));
    }

    #[test]
    fn arrives_in_pieces() {
        let text = b"Content-Type: text/html\r\nSet-Cookie: a=1\r\n\r\n<p>";
        let mut reader = HeadReader::new();
        for (i, byte) in text.iter().enumerate() {
            match reader.push(std::slice::from_ref(byte)).unwrap() {
                Progress::More => assert!(i < text.len() - 4),
                Progress::Done { head, rest } => {
                    assert_eq!(i, text.len() - 4);
                    assert_eq!(header(&head, "set-cookie"), ["a=1"]);
                    assert!(rest.is_empty());
                    return;
                }
            }
        }
        panic!("never completed");
    }

    #[test]
    fn invalid_lines_are_skipped_with_a_note() {
        let head = head("no colon here\nBad Name: x\nX-Ok:  padded \t\nContent-Type: a/b\n\n");
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(header(&head, "x-ok"), ["padded"]);
        assert_eq!(head.headers.len(), 2);
        assert_eq!(head.notes.len(), 2, "{:?}", head.notes);
        assert!(head.notes[0].starts_with("cgi: bogus header line"));
        assert!(head.notes[1].starts_with("cgi: invalid header name"));
    }

    #[test]
    fn line_limit() {
        let ok = format!(
            "X-Long: {}\r\nContent-Type: a/b\n\n",
            "v".repeat(MAX_LINE - 8)
        );
        assert_eq!(head(&ok).status, StatusCode::OK);
        let long = format!(
            "X-Long: {}\nContent-Type: a/b\n\n",
            "v".repeat(MAX_LINE - 7)
        );
        assert_eq!(parse(&long), Err(HeadError::LongLine));
        // Also caught before the line ends.
        let partial = "x".repeat(MAX_LINE + 2);
        assert_eq!(parse(&partial), Err(HeadError::LongLine));
        let partial = format!("{}\r", "x".repeat(MAX_LINE));
        assert_eq!(parse(&partial), Ok(Progress::More));
    }

    #[test]
    fn block_limit() {
        let line = format!("X-Filler: {}\n", "f".repeat(1000));
        let mut reader = HeadReader::new();
        let mut result = Ok(Progress::More);
        for _ in 0..(MAX_BLOCK / line.len() + 1) {
            result = reader.push(line.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(HeadError::TooLarge));
        assert!(HeadError::TooLarge.message().starts_with("cgi: "));
        assert_eq!(HeadError::NoHeaders.message(), "cgi: no headers");
    }
}
