//! Command-line parsing with the semantics of Go's `flag` package, which websocketd users
//! already type: one or two dashes, `--flag=value` or `--flag value`, booleans only as
//! `--flag` or `--flag=false`, and parsing stops at the first non-flag argument (COMMAND).

use super::flags::{self, Kind};
use std::collections::HashMap;
use std::ffi::OsString;

/// A parsed flag value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A boolean flag.
    Bool(bool),
    /// A signed integer flag.
    Int(i64),
    /// An unsigned integer flag.
    Uint(u64),
    /// A text flag (last occurrence).
    Text(String),
    /// A repeatable flag (every occurrence).
    List(Vec<String>),
}

/// What the command line said, before any cross-flag validation.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Values of the flags that were given, by flag name.
    pub values: HashMap<&'static str, Value>,
    /// COMMAND and its arguments, untouched.
    pub command: Vec<OsString>,
    /// `-h`/`--help` was given.
    pub help: bool,
}

impl Parsed {
    /// The boolean flag's value, false when absent.
    pub fn flag(&self, name: &str) -> bool {
        self.flag_or(name, false)
    }

    /// The boolean flag's value, `default` when absent (for flags that are on unless
    /// turned off with `--flag=false`).
    pub fn flag_or(&self, name: &str, default: bool) -> bool {
        match self.values.get(name) {
            Some(Value::Bool(value)) => *value,
            _ => default,
        }
    }

    /// The text flag's value, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// The signed integer flag's value, if given.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// The unsigned integer flag's value, if given.
    pub fn uint(&self, name: &str) -> Option<u64> {
        match self.values.get(name) {
            Some(Value::Uint(n)) => Some(*n),
            _ => None,
        }
    }

    /// Every value of a repeatable flag, in order.
    pub fn list(&self, name: &str) -> &[String] {
        match self.values.get(name) {
            Some(Value::List(items)) => items,
            _ => &[],
        }
    }
}

/// Parses the arguments after the program name. The error is the one-line message Go
/// prints (the caller adds the usage text and exits 2).
pub fn parse(args: &[OsString]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_string_lossy();
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let dashes = if arg.starts_with("--") { 2 } else { 1 };
        if arg == "--" {
            i += 1;
            break;
        }
        let body = &arg[dashes..];
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(format!("bad flag syntax: {arg}"));
        }
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        let Some(flag) = flags::find(name) else {
            return Err(format!("flag provided but not defined: -{name}"));
        };
        i += 1;
        if flag.kind == Kind::Bool {
            let value = match inline {
                Some(text) => parse_bool(&text).ok_or_else(|| {
                    format!(
                        "invalid boolean value {} for -{name}: parse error",
                        quote(&text)
                    )
                })?,
                None => true,
            };
            if flag.name == "help" {
                if value {
                    parsed.help = true;
                    return Ok(parsed);
                }
                continue;
            }
            parsed.values.insert(flag.name, Value::Bool(value));
            continue;
        }
        let text = match inline {
            Some(text) => text,
            None => match args.get(i) {
                Some(next) => {
                    i += 1;
                    next.to_string_lossy().into_owned()
                }
                None => return Err(format!("flag needs an argument: -{name}")),
            },
        };
        let invalid = |why: &str| format!("invalid value {} for flag -{name}: {why}", quote(&text));
        let value = match flag.kind {
            Kind::Int => Value::Int(parse_int(&text).map_err(|e| invalid(e.as_str()))?),
            Kind::Uint => Value::Uint(parse_uint(&text).map_err(|e| invalid(e.as_str()))?),
            Kind::Text | Kind::List => Value::Text(text),
            Kind::Repeated => {
                if let Some(Value::List(items)) = parsed.values.get_mut(flag.name) {
                    items.push(text);
                    continue;
                }
                Value::List(vec![text])
            }
            Kind::Bool => unreachable_bool(),
        };
        parsed.values.insert(flag.name, value);
    }
    parsed.command = args[i..].to_vec();
    Ok(parsed)
}

/// Booleans were handled before the match; this keeps the match exhaustive without a panic path.
fn unreachable_bool() -> Value {
    Value::Bool(true)
}

/// Go's `%q` for the simple strings a command line holds.
fn quote(text: &str) -> String {
    format!("{text:?}")
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Why an integer literal was refused, in Go's words.
#[derive(Debug, PartialEq, Eq)]
pub enum IntError {
    /// Not an integer literal.
    Syntax,
    /// A literal outside the 64-bit range.
    Range,
}

impl IntError {
    fn as_str(&self) -> &'static str {
        match self {
            IntError::Syntax => "parse error",
            IntError::Range => "value out of range",
        }
    }
}

/// Go's `strconv.ParseInt(text, 0, 64)`.
pub fn parse_int(text: &str) -> Result<i64, IntError> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = parse_uint(digits)?;
    if negative {
        if magnitude > i64::MAX as u64 + 1 {
            return Err(IntError::Range);
        }
        Ok((magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).map_err(|_| IntError::Range)
    }
}

/// Go's `strconv.ParseUint(text, 0, 64)`: base prefixes and `_` separators.
pub fn parse_uint(text: &str) -> Result<u64, IntError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !underscores_ok(text) {
        return Err(IntError::Syntax);
    }
    let (base, digits) = if bytes[0] == b'0' {
        match bytes.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if bytes.len() >= 3 => (2, &bytes[2..]),
            Some(b'o') if bytes.len() >= 3 => (8, &bytes[2..]),
            Some(b'x') if bytes.len() >= 3 => (16, &bytes[2..]),
            _ => (8, &bytes[1..]),
        }
    } else {
        (10, bytes)
    };
    let mut value: u64 = 0;
    for &byte in digits {
        let digit = match byte {
            b'_' => continue,
            b'0'..=b'9' => u64::from(byte - b'0'),
            b'a'..=b'z' => u64::from(byte - b'a' + 10),
            b'A'..=b'Z' => u64::from(byte - b'A' + 10),
            _ => return Err(IntError::Syntax),
        };
        if digit >= base {
            return Err(IntError::Syntax);
        }
        value = value
            .checked_mul(base)
            .and_then(|v| v.checked_add(digit))
            .ok_or(IntError::Range)?;
    }
    Ok(value)
}

/// Go's rule for `_` in literals: only between digits, or right after a base prefix.
fn underscores_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    // 'saw' is '^' at the start or after a prefix, '0' after a digit, '_' after an underscore.
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if bytes.len() >= 2 && bytes[0] == b'0' {
        match bytes[1].to_ascii_lowercase() {
            b'x' => {
                hex = true;
                i = 2;
                saw = b'0';
            }
            b'o' | b'b' => {
                i = 2;
                saw = b'0';
            }
            _ => {}
        }
    }
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn go_flag_forms() {
        let p = parse(&args(&["-port", "8080", "--ssl=false", "cat"])).unwrap();
        assert!(!p.flag("ssl"));
        let p = parse(&args(&["-port", "8080", "--bogus=false"]));
        assert_eq!(p.unwrap_err(), "flag provided but not defined: -bogus");
        let p = parse(&args(&["-port", "8080", "--binary=false", "cat"])).unwrap();
        assert_eq!(p.int("port"), Some(8080));
        assert!(!p.flag("binary"));
        assert_eq!(p.command, args(&["cat"]));
        let p = parse(&args(&["--port=8080", "--binary", "cat", "--port=9"])).unwrap();
        assert_eq!(p.int("port"), Some(8080));
        assert!(p.flag("binary"));
        assert_eq!(p.command, args(&["cat", "--port=9"]));
    }

    #[test]
    fn bool_does_not_take_next_argument() {
        let p = parse(&args(&["--binary", "false"])).unwrap();
        assert!(p.flag("binary"));
        assert_eq!(p.command, args(&["false"]));
    }

    #[test]
    fn last_scalar_wins_and_lists_accumulate() {
        let p = parse(&args(&[
            "--port=1",
            "--port=2",
            "--address=a",
            "-address",
            "b",
            "x",
        ]))
        .unwrap();
        assert_eq!(p.int("port"), Some(2));
        assert_eq!(p.list("address"), ["a", "b"]);
    }

    #[test]
    fn double_dash_ends_flags() {
        let p = parse(&args(&["--binary", "--", "--port=3"])).unwrap();
        assert_eq!(p.command, args(&["--port=3"]));
        let p = parse(&args(&["-", "x"])).unwrap();
        assert_eq!(p.command, args(&["-", "x"]));
    }

    #[test]
    fn errors_in_go_words() {
        assert_eq!(
            parse(&args(&["--port=abc"])).unwrap_err(),
            "invalid value \"abc\" for flag -port: parse error"
        );
        assert_eq!(
            parse(&args(&["--binary=maybe"])).unwrap_err(),
            "invalid boolean value \"maybe\" for -binary: parse error"
        );
        assert_eq!(
            parse(&args(&["--port"])).unwrap_err(),
            "flag needs an argument: -port"
        );
        assert_eq!(
            parse(&args(&["---port=1"])).unwrap_err(),
            "bad flag syntax: ---port=1"
        );
        assert_eq!(
            parse(&args(&["--closems=-1"])).unwrap_err(),
            "invalid value \"-1\" for flag -closems: parse error"
        );
        assert_eq!(
            parse(&args(&["--port=99999999999999999999"])).unwrap_err(),
            "invalid value \"99999999999999999999\" for flag -port: value out of range"
        );
    }

    #[test]
    fn help_stops_parsing() {
        assert!(parse(&args(&["-h", "--bogus"])).unwrap().help);
        assert!(parse(&args(&["--help"])).unwrap().help);
        assert!(!parse(&args(&["--help=false", "cat"])).unwrap().help);
    }

    #[test]
    fn go_integer_literals() {
        assert_eq!(parse_int("8080"), Ok(8080));
        assert_eq!(parse_int("0x1F"), Ok(31));
        assert_eq!(parse_int("0o17"), Ok(15));
        assert_eq!(parse_int("017"), Ok(15));
        assert_eq!(parse_int("0b101"), Ok(5));
        assert_eq!(parse_int("1_000"), Ok(1000));
        assert_eq!(parse_int("0x_1_0"), Ok(16));
        assert_eq!(parse_int("0_7"), Ok(7));
        assert_eq!(parse_int("-1"), Ok(-1));
        assert_eq!(parse_int("+5"), Ok(5));
        assert_eq!(parse_int("0"), Ok(0));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int("9223372036854775808"), Err(IntError::Range));
        assert_eq!(parse_int("08"), Err(IntError::Syntax));
        assert_eq!(parse_int("0x"), Err(IntError::Syntax));
        assert_eq!(parse_int(""), Err(IntError::Syntax));
        assert_eq!(parse_int("1__0"), Err(IntError::Syntax));
        assert_eq!(parse_int("0x1_"), Err(IntError::Syntax));
        assert_eq!(parse_uint("-1"), Err(IntError::Syntax));
    }

    #[test]
    fn go_booleans() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("yes"), None);
    }
}
