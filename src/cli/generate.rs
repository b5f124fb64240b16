//! `websocketd --generate=man|bash|zsh|fish`: the man page and the shell completions, all
//! made from the one flag table so a new flag shows up in each of them without a second list.
//! The option is left out of `--help`: it is for packagers (the Debian package build runs it).

use super::completions;
use super::flags::{Flag, Kind};
use super::manpage;
use crate::logging::{Format, Level};
use std::ffi::OsString;

/// One of the documents `--generate` can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The man page, in roff (`man -l` reads it).
    Man,
    /// A bash completion script (`complete -F`).
    Bash,
    /// A zsh completion function (`#compdef`).
    Zsh,
    /// A fish completion script (`complete -c`).
    Fish,
}

impl Output {
    /// Every output, in the order the error message lists them.
    pub const ALL: [(&'static str, Output); 4] = [
        ("man", Output::Man),
        ("bash", Output::Bash),
        ("zsh", Output::Zsh),
        ("fish", Output::Fish),
    ];

    /// Parses the value given to `--generate`.
    pub fn parse(text: &str) -> Option<Output> {
        Output::ALL
            .iter()
            .find(|(name, _)| *name == text)
            .map(|&(_, output)| output)
    }
}

/// When the command line starts with `--generate` (one or two dashes, `=VALUE` or the next
/// argument), the output asked for, or the message for a value that names none.
pub fn requested(args: &[OsString]) -> Option<Result<Output, String>> {
    let first = args.first()?.to_str()?;
    let body = first
        .strip_prefix("--")
        .or_else(|| first.strip_prefix('-'))?;
    let value = match body.split_once('=') {
        Some(("generate", value)) => value.to_string(),
        None if body == "generate" => match args.get(1) {
            Some(next) => next.to_string_lossy().into_owned(),
            None => String::new(),
        },
        _ => return None,
    };
    Some(Output::parse(&value).ok_or_else(|| {
        let names: Vec<&str> = Output::ALL.iter().map(|(name, _)| *name).collect();
        format!(
            "invalid value {value:?} for flag -generate: use one of {}",
            names.join(", ")
        )
    }))
}

/// The text of one output for a program called `name`.
pub fn render(output: Output, name: &str) -> String {
    match output {
        Output::Man => manpage::render(name),
        Output::Bash => completions::bash(name),
        Output::Zsh => completions::zsh(name),
        Output::Fish => completions::fish(name),
    }
}

/// What a flag's value is, for shells to complete it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueHint {
    /// A boolean: no value.
    NoValue,
    /// A directory.
    Directory,
    /// A file (or a path to create, such as a Unix socket).
    File,
    /// One of a fixed set of words (log levels, log formats).
    OneOf(&'static [&'static str]),
    /// Free text: nothing to offer.
    Free,
}

/// Reads the hint from the flag's kind and value placeholder, so a new flag whose value is
/// written `DIR`, `FILE` or `PATH` gets the right completion with no extra list.
pub fn value_hint(flag: &Flag) -> ValueHint {
    if flag.kind == Kind::Bool {
        return ValueHint::NoValue;
    }
    match flag.value_name {
        "DIR" => ValueHint::Directory,
        "FILE" | "PATH" => ValueHint::File,
        "LEVEL" => ValueHint::OneOf(&Level::NAMES),
        "FORMAT" => ValueHint::OneOf(&Format::NAMES),
        _ => ValueHint::Free,
    }
}

/// The help text as one paragraph (the table wraps it for an 80-column terminal).
pub fn paragraph(flag: &Flag) -> String {
    flag.help.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first sentence of the help text, without its full stop: the one-line description
/// completion menus show.
pub fn summary(flag: &Flag) -> String {
    let text = paragraph(flag);
    // A sentence ends at ". " before a capital letter ("e.g. 127.0.0.1" goes on).
    let end = text
        .match_indices(". ")
        .map(|(at, _)| at)
        .find(|&at| text[at + 2..].starts_with(|c: char| c.is_ascii_uppercase()))
        .unwrap_or(text.len());
    text[..end].trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::flags::FLAGS;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn generate_forms() {
        for form in [
            &["--generate=man"][..],
            &["-generate=man"],
            &["--generate", "man"],
        ] {
            assert_eq!(requested(&args(form)), Some(Ok(Output::Man)), "{form:?}");
        }
        assert_eq!(
            requested(&args(&["--generate=fish", "cat"])),
            Some(Ok(Output::Fish))
        );
        assert!(
            matches!(requested(&args(&["--generate=pdf"])), Some(Err(m)) if m.contains("man, bash, zsh, fish"))
        );
        assert!(matches!(requested(&args(&["--generate"])), Some(Err(_))));
        assert_eq!(requested(&args(&["--port=8080", "--generate=man"])), None);
        assert_eq!(requested(&args(&["--generated=man"])), None);
        assert_eq!(requested(&args(&[])), None);
    }

    #[test]
    fn every_flag_in_every_output() {
        for (label, output) in Output::ALL {
            let text = render(output, "websocketd");
            for flag in FLAGS {
                let shown = match output {
                    Output::Man => format!("\\-\\-{}", flag.name.replace('-', "\\-")),
                    Output::Fish => format!("-l {}", flag.name),
                    Output::Bash | Output::Zsh => format!("--{}", flag.name),
                };
                assert!(text.contains(&shown), "{label} lacks {}", flag.name);
            }
        }
    }

    #[test]
    fn hints_and_summaries() {
        let find = |name| crate::cli::flags::find(name).expect("flag exists");
        assert_eq!(value_hint(find("ssl")), ValueHint::NoValue);
        assert_eq!(value_hint(find("staticdir")), ValueHint::Directory);
        assert_eq!(value_hint(find("sslcert")), ValueHint::File);
        assert_eq!(
            value_hint(find("loglevel")),
            ValueHint::OneOf(&Level::NAMES)
        );
        assert_eq!(
            value_hint(find("logformat")),
            ValueHint::OneOf(&["text", "json", "journal"])
        );
        assert_eq!(value_hint(find("port")), ValueHint::Free);
        assert_eq!(
            summary(find("port")),
            "HTTP port to listen on, for every --address"
        );
        assert_eq!(
            summary(find("address")),
            "Interface to bind to (e.g. 127.0.0.1 or [::1])"
        );
        assert!(!paragraph(find("passstderr")).contains('\n'));
    }
}
