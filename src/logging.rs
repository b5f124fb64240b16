//! websocketd's log: one line per event on stdout, in the format monitoring scripts grep for:
//! `TIMESTAMP | LEVEL  | CATEGORY   | key:'value' ... | MESSAGE`.

use std::fmt::Write as _;
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

static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Access as u8);

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

    /// The line as printed, with its newline.
    fn format(&self, level: Level, category: &str, message: &str) -> String {
        let mut line = String::with_capacity(96 + message.len());
        let _ = write!(
            line,
            "{} | {} | {:<10} | ",
            timestamp(),
            level.label(),
            category
        );
        for (i, (key, value)) in self.pairs.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            let _ = write!(line, "{key}:'{value}'");
        }
        line.push_str(" | ");
        line.push_str(message);
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

/// A server line (no associations) as it would be printed, for output that must be
/// written before logging is set up.
pub fn format_line(level: Level, category: &str, message: &str) -> String {
    Scope::new().format(level, category, message)
}

/// Prints a server line (no associations).
pub fn server(level: Level, message: &str) {
    Scope::new().log(level, "server", message);
}

/// RFC 1123 with a numeric zone, in local time: `Sat, 21 Nov 2026 04:19:45 +0000`.
fn timestamp() -> String {
    chrono::Local::now()
        .format("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
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
    fn timestamp_shape() {
        let stamp = timestamp();
        // "Sat, 21 Nov 2026 04:19:45 +0000"
        assert_eq!(stamp.len(), 31, "{stamp}");
        assert_eq!(&stamp[3..5], ", ");
        assert!(stamp[26..].starts_with('+') || stamp[26..].starts_with('-'));
    }
}
