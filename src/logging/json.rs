//! `--logformat=json`: one JSON object per line, for log pipelines that index fields:
//! `{"time":"2026-11-21T04:19:45.123456Z","level":"access","category":"session",
//! "message":"CONNECT","url":"…","id":"…",…}`. Every association of the request or
//! session is a field of its own, a string, in the order it was attached.

use super::Event;
use std::fmt::Write as _;

/// Writes the object (without the newline).
pub(super) fn write(line: &mut String, event: &Event<'_>) {
    // RFC 3339 in UTC with microseconds.
    let _ = write!(
        line,
        "{{\"time\":\"{}\",\"level\":\"{}\",\"category\":",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ"),
        event.level.name()
    );
    push_string(line, event.category);
    line.push_str(",\"message\":");
    push_string(line, event.message);
    for (key, value) in event.pairs {
        line.push(',');
        push_string(line, key);
        line.push(':');
        push_string(line, value);
    }
    line.push('}');
}

/// Appends `text` as a JSON string literal (RFC 8259 escaping; everything else verbatim).
fn push_string(line: &mut String, text: &str) {
    line.push('"');
    let mut clean = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f | 0x7f => "",
            _ => continue,
        };
        line.push_str(&text[clean..i]);
        if escape.is_empty() {
            let _ = write!(line, "\\u{byte:04x}");
        } else {
            line.push_str(escape);
        }
        clean = i + 1;
    }
    line.push_str(&text[clean..]);
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::super::{Format, Level, Scope};
    use super::push_string;

    #[test]
    fn escapes_what_json_requires() {
        let mut out = String::new();
        push_string(&mut out, "a\"b\\c\nd\te\u{1}f\u{7f}é");
        assert_eq!(out, r#""a\"b\\c\nd\te\u0001f\u007fé""#);
    }

    #[test]
    fn fields_in_order() {
        let mut scope = Scope::new();
        scope.associate("url", "http://h/p?q=\"x\"");
        scope.associate("pid", "12");
        let line = scope.format_as(Format::Json, Level::Error, "stderr", "oops");
        // {"time":"2026-11-21T04:19:45.123456Z",...
        assert_eq!(&line[..9], "{\"time\":\"");
        // "2026-11-21T04:19:45.123456Z" is 27 bytes.
        assert_eq!(&line[9 + 26..9 + 28], "Z\"", "{line}");
        assert_eq!(&line[9 + 19..9 + 20], ".", "{line}");
        assert_eq!(
            &line[9 + 28..],
            ",\"level\":\"error\",\"category\":\"stderr\",\"message\":\"oops\",\"url\":\"http://h/p?q=\\\"x\\\"\",\"pid\":\"12\"}\n"
        );
    }
}
