//! `--logformat=journal`: for a daemon whose stdout goes to journald (systemd's default).
//! Each line starts with its syslog priority as `<N>`, which journald strips and records
//! as the entry's priority; our own timestamp is left out because the journal stamps every
//! entry itself. The rest is the text format's line.

use super::{text, Event, Level};
use std::fmt::Write as _;

/// Writes the line (without its newline).
pub(super) fn write(line: &mut String, event: &Event<'_>) {
    let _ = write!(line, "<{}>", priority(event.level));
    text::write_body(line, event);
}

/// The syslog priority (RFC 5424 severity) of a level.
fn priority(level: Level) -> u8 {
    match level {
        Level::Debug | Level::Trace => 7,
        Level::Access | Level::Info => 6,
        Level::Error => 3,
        Level::Fatal | Level::None => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, Level, Scope};

    #[test]
    fn priority_prefix_without_timestamp() {
        let mut scope = Scope::new();
        scope.associate("id", "7");
        assert_eq!(
            scope.format_as(Format::Journal, Level::Access, "session", "CONNECT"),
            "<6>ACCESS | session    | id:'7' | CONNECT\n"
        );
        assert_eq!(
            scope.format_as(Format::Journal, Level::Error, "stderr", "oops"),
            "<3>ERROR  | stderr     | id:'7' | oops\n"
        );
        assert!(Scope::new()
            .format_as(Format::Journal, Level::Debug, "x", "y")
            .starts_with("<7>DEBUG "));
        assert!(Scope::new()
            .format_as(Format::Journal, Level::Fatal, "x", "y")
            .starts_with("<2>FATAL "));
    }
}
