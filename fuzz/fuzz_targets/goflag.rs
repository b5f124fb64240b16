//! The Go-style flag parser on arbitrary argument lists (arguments split at NUL bytes).
//! Properties: COMMAND is exactly the unparsed tail of the input; every value belongs to a
//! flag of the table with the right kind; writing the values back as `--name=value`
//! arguments and parsing again gives the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use websocketd::cli::flags::{self, Kind};
use websocketd::cli::goflag::{self, Value};

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|arg| OsString::from_vec(arg.to_vec()))
        .collect();
    let Ok(parsed) = goflag::parse(&args) else {
        return;
    };
    assert!(parsed.command.len() <= args.len());
    if !parsed.help {
        assert_eq!(
            parsed.command[..],
            args[args.len() - parsed.command.len()..]
        );
    }
    let mut again = Vec::new();
    for (name, value) in &parsed.values {
        let flag = flags::find(name).expect("a parsed flag is in the table");
        match (flag.kind, value) {
            (Kind::Bool, Value::Bool(b)) => again.push(format!("--{name}={b}")),
            (Kind::Int, Value::Int(n)) => again.push(format!("--{name}={n}")),
            (Kind::Uint, Value::Uint(n)) => again.push(format!("--{name}={n}")),
            (Kind::Text | Kind::List, Value::Text(t)) => again.push(format!("--{name}={t}")),
            (Kind::Repeated, Value::List(items)) => {
                assert!(!items.is_empty());
                again.extend(items.iter().map(|item| format!("--{name}={item}")));
            }
            (kind, value) => panic!("flag {name} of kind {kind:?} holds {value:?}"),
        }
    }
    let again: Vec<OsString> = again.into_iter().map(OsString::from).collect();
    let reparsed = goflag::parse(&again).expect("values written back parse again");
    assert_eq!(reparsed.values, parsed.values);
    assert!(reparsed.command.is_empty());
});
