//! `--logformat=text`: upstream's line, byte for byte:
//! `Sat, 21 Nov 2026 04:19:45 +0000 | ACCESS | session    | url:'…' id:'…' | CONNECT`.

use super::Event;
use std::fmt::Write as _;

/// Writes the line (without its newline).
pub(super) fn write(line: &mut String, event: &Event<'_>) {
    // RFC 1123 with a numeric zone, in local time.
    let _ = write!(
        line,
        "{} | ",
        chrono::Local::now().format("%a, %d %b %Y %H:%M:%S %z")
    );
    write_body(line, event);
}

/// Everything after the timestamp: `LEVEL  | CATEGORY   | key:'value' … | MESSAGE`. The
/// journal format writes the same, after its priority prefix.
pub(super) fn write_body(line: &mut String, event: &Event<'_>) {
    let _ = write!(line, "{} | {:<10} | ", event.level.label(), event.category);
    for (i, (key, value)) in event.pairs.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let _ = write!(line, "{key}:'{value}'");
    }
    line.push_str(" | ");
    line.push_str(event.message);
}

#[cfg(test)]
mod tests {
    use super::super::{Format, Level, Scope};

    #[test]
    fn upstream_shape() {
        let mut scope = Scope::new();
        scope.associate("url", "http://h/p");
        scope.associate("id", "7");
        let line = scope.format_as(Format::Text, Level::Access, "session", "CONNECT");
        // "Sat, 21 Nov 2026 04:19:45 +0000 | ACCESS | session    | url:'http://h/p' id:'7' | CONNECT\n"
        let (stamp, rest) = line.split_at(31);
        assert_eq!(&stamp[3..5], ", ", "{line}");
        assert!(stamp[26..].starts_with('+') || stamp[26..].starts_with('-'));
        assert_eq!(
            rest,
            " | ACCESS | session    | url:'http://h/p' id:'7' | CONNECT\n"
        );
        let line = Scope::new().format_as(Format::Text, Level::Info, "server", "up");
        assert!(line.ends_with(" | INFO   | server     |  | up\n"), "{line}");
    }
}
