//! websocketd's log: one line per event on stdout. The event (level, category, the
//! associations of its request or session, message) is the same whatever the format; one
//! formatter per `--logformat` turns it into a line: `text` (upstream's
//! `TIMESTAMP | LEVEL  | CATEGORY   | key:'value' ... | MESSAGE`), `json` (one object per line)
//! and `journal` (syslog priority prefixes for journald).

mod journal;
mod json;
mod text;

use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};

/// Log levels, least to most important. A line is printed when its level is at least the
/// configured one; `None` prints nothing at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Per-connection details such as the environment handed to a program.
    Debug = 0,
    /// WebSocket protocol details.
    Trace = 1,
    /// One line per request or session event (the default threshold).
    Access = 2,
    /// Server start-up lines.
    Info = 3,
    /// Program stderr and things that went wrong.
    Error = 4,
    /// The daemon cannot go on.
    Fatal = 5,
    /// Threshold only: print nothing.
    None = 6,
}

impl Level {
    /// Every `--loglevel` value, least important first (shell completions offer these).
    pub const NAMES: [&'static str; 7] =
        ["debug", "trace", "access", "info", "error", "fatal", "none"];

    /// Parses a `--loglevel` value.
    pub fn parse(text: &str) -> Option<Level> {
        Some(match text {
            "debug" => Level::Debug,
            "trace" => Level::Trace,
            "access" => Level::Access,
            "info" => Level::Info,
            "error" => Level::Error,
            "fatal" => Level::Fatal,
            "none" => Level::None,
            _ => return None,
        })
    }

    /// The padded upper-case name the text format prints.
    fn label(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG ",
            Level::Trace => "TRACE ",
            Level::Access => "ACCESS",
            Level::Info => "INFO  ",
            Level::Error => "ERROR ",
            Level::Fatal => "FATAL ",
            Level::None => "NONE  ",
        }
    }

    /// The lower-case name, as `--loglevel` takes it (the JSON `level` field).
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Trace => "trace",
            Level::Access => "access",
            Level::Info => "info",
            Level::Error => "error",
            Level::Fatal => "fatal",
            Level::None => "none",
        }
    }

    fn from_u8(value: u8) -> Level {
        match value {
            0 => Level::Debug,
            1 => Level::Trace,
            2 => Level::Access,
            3 => Level::Info,
            4 => Level::Error,
            5 => Level::Fatal,
            _ => Level::None,
        }
    }
}

/// How log lines are written (`--logformat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Upstream's `TIMESTAMP | LEVEL | CATEGORY | associations | MESSAGE` lines.
    Text = 0,
    /// One JSON object per line, every association its own field.
    Json = 1,
    /// The text line without our timestamp, after a `<N>` syslog priority, for journald.
    Journal = 2,
}

impl Format {
    /// Every `--logformat` value (shell completions offer these).
    pub const NAMES: [&'static str; 3] = ["text", "json", "journal"];

    /// Parses a `--logformat` value.
    pub fn parse(text: &str) -> Option<Format> {
        Some(match text {
            "text" => Format::Text,
            "json" => Format::Json,
            "journal" => Format::Journal,
            _ => return None,
        })
    }

    fn from_u8(value: u8) -> Format {
        match value {
            1 => Format::Json,
            2 => Format::Journal,
            _ => Format::Text,
        }
    }
}

static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Access as u8);
static FORMAT: AtomicU8 = AtomicU8::new(Format::Text as u8);

/// Sets how lines are written from now on.
pub fn set_format(format: Format) {
    FORMAT.store(format as u8, Ordering::Relaxed);
}

/// The configured format.
pub fn format() -> Format {
    Format::from_u8(FORMAT.load(Ordering::Relaxed))
}

/// Sets the least important level that is printed.
pub fn set_threshold(level: Level) {
    THRESHOLD.store(level as u8, Ordering::Relaxed);
}

/// The configured threshold.
pub fn threshold() -> Level {
    Level::from_u8(THRESHOLD.load(Ordering::Relaxed))
}

/// Whether a line at `level` would be printed; lets callers skip building costly messages.
pub fn enabled(level: Level) -> bool {
    level != Level::None && level >= threshold()
}

/// The associations attached to a request or session (`url`, `id`, `remote`, ...), printed
/// in the order they were attached.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pairs: Vec<(&'static str, String)>,
}

impl Scope {
    /// A scope with no associations (server lines).
    pub fn new() -> Scope {
        Scope::default()
    }

    /// Attaches `key:'value'`.
    pub fn associate(&mut self, key: &'static str, value: impl Into<String>) {
        self.pairs.push((key, value.into()));
    }

    /// Prints a line in this scope.
    pub fn log(&self, level: Level, category: &str, message: &str) {
        if !enabled(level) {
            return;
        }
        let line = self.format(level, category, message);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }

    /// The line as printed in the configured format, with its newline.
    fn format(&self, level: Level, category: &str, message: &str) -> String {
        self.format_as(format(), level, category, message)
    }

    fn format_as(&self, format: Format, level: Level, category: &str, message: &str) -> String {
        let event = Event {
            level,
            category,
            pairs: &self.pairs,
            message,
        };
        let mut line = String::with_capacity(128 + message.len());
        match format {
            Format::Text => text::write(&mut line, &event),
            Format::Json => json::write(&mut line, &event),
            Format::Journal => journal::write(&mut line, &event),
        }
        line.push('\n');
        line
    }

    /// Shorthand for an ACCESS line.
    pub fn access(&self, category: &str, message: &str) {
        self.log(Level::Access, category, message);
    }

    /// Shorthand for an ERROR line.
    pub fn error(&self, category: &str, message: &str) {
        self.log(Level::Error, category, message);
    }

    /// Shorthand for a DEBUG line.
    pub fn debug(&self, category: &str, message: &str) {
        self.log(Level::Debug, category, message);
    }
}

/// One log event, as every formatter receives it.
struct Event<'a> {
    level: Level,
    category: &'a str,
    pairs: &'a [(&'static str, String)],
    message: &'a str,
}

/// A server line (no associations) as it would be printed in `format`, for output that
/// must be written before logging is set up.
pub fn format_line(format: Format, level: Level, category: &str, message: &str) -> String {
    Scope::new().format_as(format, level, category, message)
}

/// Prints a server line (no associations).
pub fn server(level: Level, message: &str) {
    Scope::new().log(level, "server", message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_order_and_names() {
        assert!(Level::Debug < Level::Trace);
        assert!(Level::Trace < Level::Access);
        assert!(Level::Access < Level::Info);
        assert!(Level::Info < Level::Error);
        assert_eq!(Level::parse("access"), Some(Level::Access));
        assert_eq!(Level::parse("none"), Some(Level::None));
        assert_eq!(Level::parse("warn"), None);
        assert_eq!(Level::Info.label().len(), 6);
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("text"), Some(Format::Text));
        assert_eq!(Format::parse("json"), Some(Format::Json));
        assert_eq!(Format::parse("journal"), Some(Format::Journal));
        assert_eq!(Format::parse("JSON"), None);
        assert!(Format::NAMES
            .iter()
            .all(|name| Format::parse(name).is_some()));
        for format in [Format::Text, Format::Json, Format::Journal] {
            assert_eq!(Format::from_u8(format as u8), format);
        }
    }
}
