//! `--config=FILE`: settings from a TOML file. Its keys are the flag names of the one flag
//! table ([`super::flags::FLAGS`]), so a flag added there can be set in the file at once;
//! the only other key is `command`, the program and its arguments. Values become the same
//! [`Value`]s the command line produces, and the command line's own values win.

use super::flags::{self, Kind};
use super::goflag::{Parsed, Value};
use std::ffi::OsString;
use std::ops::Range;
use toml::{Spanned, Value as Toml};

/// Flags that only make sense on the command line (they end or start the reading).
const COMMAND_LINE_ONLY: &[&str] = &["config", "help", "version", "license"];

/// A configuration file that could not be used; the text names the file, line and key.
#[derive(Debug, PartialEq, Eq)]
pub struct FileError(pub String);

/// The settings a file holds, keyed like the command line's.
#[derive(Debug, Default)]
pub struct Settings {
    /// Flag values by flag name.
    pub values: Vec<(&'static str, Value)>,
    /// `command = [...]`: COMMAND and its arguments.
    pub command: Vec<OsString>,
}

/// Reads and checks the file at `path`.
pub fn load(path: &str) -> Result<Settings, FileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| FileError(format!("{path}: cannot read the configuration file: {err}")))?;
    parse(path, &text)
}

/// Checks a file's text; `path` is only used in error messages.
pub fn parse(path: &str, text: &str) -> Result<Settings, FileError> {
    let line_of = |span: Range<usize>| 1 + text[..span.start.min(text.len())].matches('\n').count();
    let table: Vec<(Spanned<String>, Spanned<Toml>)> =
        toml::from_str::<std::collections::BTreeMap<Spanned<String>, Spanned<Toml>>>(text)
            .map_err(|err| {
                let line = err.span().map_or(1, line_of);
                FileError(format!(
                    "{path}:{line}: not valid TOML: {}",
                    err.message().trim_end()
                ))
            })?
            .into_iter()
            .collect();
    let mut table = table;
    table.sort_by_key(|(key, _)| key.span().start);
    let mut settings = Settings::default();
    for (key, value) in table {
        let line = line_of(key.span());
        let name = key.get_ref().as_str();
        let fail = |why: String| FileError(format!("{path}:{line}: {name}: {why}"));
        if name == "command" {
            settings.command = strings(value.get_ref())
                .filter(|list| !list.is_empty())
                .ok_or_else(|| {
                    fail(format!(
                        "expected an array of strings (the program and its arguments), found {}",
                        describe(value.get_ref())
                    ))
                })?
                .into_iter()
                .map(OsString::from)
                .collect();
            continue;
        }
        let flag = flags::find(name)
            .filter(|flag| flag.name == name)
            .ok_or_else(|| fail("no such option".to_string()))?;
        if COMMAND_LINE_ONLY.contains(&flag.name) {
            return Err(fail("can only be given on the command line".to_string()));
        }
        let value = convert(flag.kind, value.get_ref()).map_err(fail)?;
        settings.values.push((flag.name, value));
    }
    Ok(settings)
}

/// Fills in what the command line left out: flag values it did not give, and COMMAND when
/// it named none.
pub fn merge(parsed: &mut Parsed, settings: Settings) {
    for (name, value) in settings.values {
        parsed.values.entry(name).or_insert(value);
    }
    if parsed.command.is_empty() {
        parsed.command = settings.command;
    }
}

/// A TOML value as the flag's kind wants it.
fn convert(kind: Kind, value: &Toml) -> Result<Value, String> {
    let wrong = |want: &str| format!("expected {want}, found {}", describe(value));
    Ok(match kind {
        Kind::Bool => Value::Bool(value.as_bool().ok_or_else(|| wrong("true or false"))?),
        Kind::Int => Value::Int(value.as_integer().ok_or_else(|| wrong("an integer"))?),
        Kind::Uint => {
            let n = value.as_integer().ok_or_else(|| wrong("an integer"))?;
            Value::Uint(u64::try_from(n).map_err(|_| wrong("an integer of 0 or more"))?)
        }
        Kind::Text => Value::Text(value.as_str().ok_or_else(|| wrong("a string"))?.into()),
        Kind::List => match value {
            Toml::String(text) => Value::Text(text.clone()),
            _ => Value::Text(
                strings(value)
                    .ok_or_else(|| wrong("an array of strings or a string"))?
                    .join(","),
            ),
        },
        Kind::Repeated => match value {
            Toml::String(text) => Value::List(vec![text.clone()]),
            _ => {
                Value::List(strings(value).ok_or_else(|| wrong("an array of strings or a string"))?)
            }
        },
    })
}

/// An array whose every element is a string.
fn strings(value: &Toml) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// What a value is, for error messages.
fn describe(value: &Toml) -> String {
    match value {
        Toml::String(text) => format!("the string {text:?}"),
        Toml::Integer(n) => format!("the integer {n}"),
        Toml::Float(x) => format!("the number {x}"),
        Toml::Boolean(b) => format!("{b}"),
        Toml::Datetime(_) => "a date".to_string(),
        Toml::Array(items) if items.is_empty() => "an empty array".to_string(),
        Toml::Array(_) => "an array".to_string(),
        Toml::Table(_) => "a table".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse("f.toml", text).unwrap_err().0
    }

    #[test]
    fn every_kind_of_value() {
        let s = parse(
            "f.toml",
            "# comment\nport = 8080\nbinary = true\nclosems = 0x10\ndir = \"/d\"\n\
             origin = [\"a.example\", \"b.example\"]\npassenv = \"PATH,HOME\"\n\
             header = [\"X-A: 1\", \"X-B: 2\"]\naddress = \"127.0.0.1\"\n\
             command = [\"./x.sh\", \"arg one\"]\n",
        )
        .unwrap();
        let names: Vec<&str> = s.values.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["port", "binary", "closems", "dir", "origin", "passenv", "header", "address"]
        );
        let values: Vec<&Value> = s.values.iter().map(|(_, v)| v).collect();
        assert_eq!(values[0], &Value::Int(8080));
        assert_eq!(values[1], &Value::Bool(true));
        assert_eq!(values[2], &Value::Uint(16));
        assert_eq!(values[3], &Value::Text("/d".into()));
        assert_eq!(values[4], &Value::Text("a.example,b.example".into()));
        assert_eq!(values[5], &Value::Text("PATH,HOME".into()));
        assert_eq!(
            values[6],
            &Value::List(vec!["X-A: 1".into(), "X-B: 2".into()])
        );
        assert_eq!(values[7], &Value::List(vec!["127.0.0.1".into()]));
        assert_eq!(s.command, ["./x.sh", "arg one"].map(OsString::from));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        assert_eq!(
            err("port = 1\n\nprot = 2\n"),
            "f.toml:3: prot: no such option"
        );
        assert_eq!(
            err("port = \"8080\""),
            "f.toml:1: port: expected an integer, found the string \"8080\""
        );
        assert_eq!(
            err("\nclosems = -1"),
            "f.toml:2: closems: expected an integer of 0 or more, found the integer -1"
        );
        assert_eq!(
            err("binary = 1"),
            "f.toml:1: binary: expected true or false, found the integer 1"
        );
        assert_eq!(
            err("header = [\"a\", 2]"),
            "f.toml:1: header: expected an array of strings or a string, found an array"
        );
        assert_eq!(
            err("command = []"),
            "f.toml:1: command: expected an array of strings (the program and its arguments), found an empty array"
        );
        assert_eq!(
            err("command = \"cat\""),
            "f.toml:1: command: expected an array of strings (the program and its arguments), found the string \"cat\""
        );
        assert_eq!(
            err("[dir]\nx = 1"),
            "f.toml:1: dir: expected a string, found a table"
        );
        for name in COMMAND_LINE_ONLY {
            assert_eq!(
                err(&format!("{name} = true")),
                format!("f.toml:1: {name}: can only be given on the command line")
            );
        }
        assert_eq!(err("h = true"), "f.toml:1: h: no such option");
        let syntax = err("port = 1\nport = 2\n");
        assert!(syntax.starts_with("f.toml:2: not valid TOML: "), "{syntax}");
        let syntax = err("port = 8080\nstaticdir = \"www\n");
        assert!(syntax.starts_with("f.toml:2: not valid TOML: "), "{syntax}");
    }

    #[test]
    fn every_flag_is_a_key() {
        for flag in flags::FLAGS {
            let value = match flag.kind {
                Kind::Bool => "true",
                Kind::Int | Kind::Uint => "1",
                Kind::Text | Kind::List | Kind::Repeated => "\"x\"",
            };
            let result = parse("f.toml", &format!("{} = {value}", flag.name));
            assert_eq!(
                result.is_ok(),
                !COMMAND_LINE_ONLY.contains(&flag.name),
                "{}",
                flag.name
            );
        }
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../examples/websocketd.toml");
        let settings = parse("examples/websocketd.toml", text).unwrap();
        assert!(!settings.command.is_empty());
        assert!(!settings.values.is_empty());
    }
}
