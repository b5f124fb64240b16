//! Usage, help, version and license texts, generated from the flag list.

use super::flags::{Kind, FLAGS};
use crate::environment::version_string;

/// The program name shown in help and version lines: the basename of argv[0].
pub fn program_name(argv0: Option<&std::ffi::OsStr>) -> String {
    argv0
        .map(std::path::Path::new)
        .and_then(|path| path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "websocketd".to_string())
}

/// The short usage printed after command-line errors (preceded by an empty line).
pub fn short_usage(name: &str) -> String {
    format!(
        "\nUsage:\n  {name} [options] COMMAND [command args]\n  {name} [options] --dir=SOMEDIR\n  {name} --help\n"
    )
}

/// The full `--help` text.
pub fn full_help(name: &str) -> String {
    let mut text = format!(
        "{name} ({version})\n\n\
         {name} turns any program that reads STDIN and writes STDOUT into a\n\
         WebSocket server. Every connection starts its own copy of the program;\n\
         each message from the client is a line on the program's STDIN and each\n\
         line the program prints is a message to the client.\n\n\
         Usage:\n\
         \x20 Serve one program for every connection:\n\
         \x20   {name} [options] COMMAND [command args]\n\n\
         \x20 Serve every program in a directory, chosen by the URL path:\n\
         \x20   {name} [options] --dir=SOMEDIR\n\n\
         \x20 Show this help:\n\
         \x20   {name} --help\n\n\
         Options (one or two dashes; --flag=value or --flag value):\n\n",
        version = version_string()
    );
    for flag in FLAGS {
        let head = if flag.kind == Kind::Bool {
            format!("  --{}", flag.name)
        } else {
            format!("  --{}={}", flag.name, flag.value_name)
        };
        text.push_str(&head);
        text.push('\n');
        for line in flag.help.lines() {
            text.push_str("        ");
            text.push_str(line);
            text.push('\n');
        }
        text.push('\n');
    }
    text.push_str(
        "Programs get CGI-style environment variables describing the request\n\
         (REMOTE_ADDR, QUERY_STRING, HTTP_* headers, ...).\n\n\
         Documentation: man websocketd (every option and variable), and the user\n\
         guide, docs/guide.md (/usr/share/doc/websocketd/guide.md when installed\n\
         from the Debian package).\n\
         License: BSD 2-Clause (see --license).\n",
    );
    text
}

/// The `--version` line.
pub fn version_line(name: &str) -> String {
    format!("{name} {}\n", version_string())
}

/// The `--license` text: the version line, then the license starting with an empty line.
pub fn license_text(name: &str) -> String {
    format!(
        "{name} {}\n\n{}",
        version_string(),
        include_str!("../../LICENSE")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_flag() {
        let help = full_help("websocketd");
        for flag in FLAGS {
            assert!(help.contains(&format!("--{}", flag.name)), "{}", flag.name);
        }
        assert!(help.starts_with("websocketd ("));
    }

    #[test]
    fn version_shape() {
        let line = version_line("websocketd");
        assert!(line.starts_with("websocketd "));
        assert!(line.contains("(rustc "));
        assert!(line.trim_end().ends_with(')'), "{line}");
    }

    #[test]
    fn name_from_argv0() {
        assert_eq!(program_name(Some("/usr/bin/wsd".as_ref())), "wsd");
        assert_eq!(program_name(None), "websocketd");
    }
}
