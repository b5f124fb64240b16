//! `websocketd --generate=man|bash|zsh|fish`: the man page renders cleanly with groff and
//! man, and each completion script, loaded in the real shell, offers every flag of the
//! flag table and completes values by kind. The shells come from scripts/install-test-deps.sh.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use websocketd::cli::flags::FLAGS;

const SHELL_DEADLINE: Duration = Duration::from_secs(60);

fn generate(what: &str) -> String {
    let output = run_bounded(
        Command::new(binary()).arg(format!("--generate={what}")),
        DEADLINE,
    );
    assert_eq!(output.status.code(), Some(0), "--generate={what}");
    assert!(output.stderr.is_empty());
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn tool(name: &str) -> &str {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(found, "{name} is missing: run scripts/install-test-deps.sh");
    name
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every flag of the table is among the words a shell offered.
fn assert_every_flag(shell: &str, offered: &str) {
    let words: Vec<&str> = offered.split_whitespace().collect();
    for flag in FLAGS {
        let name = format!("--{}", flag.name);
        assert!(
            words
                .iter()
                .any(|w| w.trim_end_matches('=') == name.as_str()),
            "{shell} does not offer {name}: {offered}"
        );
    }
}

#[test]
fn man_page_renders_without_warnings_and_lists_every_flag() {
    let dir = temp_dir("man");
    let page = dir.join("websocketd.1");
    std::fs::write(&page, generate("man")).unwrap();
    let groff = run_bounded(
        Command::new(tool("groff"))
            .args(["-ww", "-z", "-man"])
            .arg(&page),
        DEADLINE,
    );
    assert!(groff.status.success(), "groff failed");
    assert_eq!(text(&groff.stderr), "", "groff -ww warnings");
    let man = run_bounded(
        Command::new(tool("man"))
            .args(["-P", "cat", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "")
            .env("LANG", "C.UTF-8"),
        DEADLINE,
    );
    assert!(man.status.success(), "man -l failed: {}", text(&man.stderr));
    assert_eq!(text(&man.stderr), "", "man -l warnings");
    let rendered = text(&man.stdout);
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "ENVIRONMENT",
        "EXIT STATUS",
        "SIGNALS",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            rendered.lines().any(|line| line == section),
            "no {section} section"
        );
    }
    for flag in FLAGS {
        let shown = format!("--{}", flag.name);
        assert!(
            rendered
                .split(|c: char| c.is_whitespace() || c == '=')
                .any(|word| word == shown),
            "the man page lacks {shown}"
        );
    }
    for variable in [
        "REMOTE_ADDR",
        "QUERY_STRING",
        "UNIQUE_ID",
        "HTTPS",
        "HTTP_*",
        "WEBSOCKET_PROTOCOL",
        "AUTH_*",
        "Example: AUTH_USER=ada",
        "SERVER_PROTOCOL",
        "HTTP/2",
        "--authcmd",
    ] {
        assert!(rendered.contains(variable), "no {variable}");
    }
    assert!(rendered.contains("Example: 192.0.2.10"));
    let _ = std::fs::remove_dir_all(dir);
}

/// What the bash function offers for a command line (the cursor at its end).
fn bash_complete(script: &Path, line: &str) -> String {
    let program = format!(
        "source {}\ncomplete -p websocketd > /dev/null || exit 3\n\
         COMP_LINE=\"$1\"; COMP_POINT=${{#COMP_LINE}}\n\
         read -ra COMP_WORDS <<< \"$COMP_LINE\"; COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
         _websocketd; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let output = run_bounded(
        Command::new(tool("bash")).args(["--norc", "--noprofile", "-c", &program, "bash", line]),
        SHELL_DEADLINE,
    );
    assert!(output.status.success(), "bash: {}", text(&output.stderr));
    assert_eq!(text(&output.stderr), "");
    text(&output.stdout)
}

#[test]
fn bash_completion_offers_every_flag_and_values() {
    let dir = temp_dir("bash-completion");
    let script = dir.join("websocketd");
    std::fs::write(&script, generate("bash")).unwrap();
    assert_every_flag("bash", &bash_complete(&script, "websocketd --"));
    assert_every_flag("bash", &bash_complete(&script, "websocketd --port=80 -"));
    assert_eq!(
        bash_complete(&script, "websocketd --ss")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["--ssl", "--sslcert=", "--sslkey=", "--sslca="]
    );
    assert_eq!(bash_complete(&script, "websocketd --loglevel=e"), "error\n");
    assert_eq!(bash_complete(&script, "websocketd --loglevel e"), "error\n");
    std::fs::create_dir(dir.join("site")).unwrap();
    std::fs::write(dir.join("sitemap.txt"), "").unwrap();
    let prefix = dir.join("sit").display().to_string();
    let dirs = bash_complete(&script, &format!("websocketd --staticdir={prefix}"));
    assert_eq!(dirs.trim(), dir.join("site").display().to_string());
    // After COMMAND, words are the program's: files, never our flags.
    let after = bash_complete(&script, "websocketd --port=80 cat --p");
    assert!(!after.contains("--port"), "{after}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Drives an interactive zsh in a pseudo-terminal (zsh/zpty), presses Tab after `line`
/// and collects every match the completion system added.
const ZSH_DRIVER: &str = r#"
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=($1 \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z "zstyle ':completion:*' list-grouped false; zstyle ':completion:*' insert-tab false"
zpty -w z "compadd() { if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd \"\$@\"; return \$?; fi; typeset -a __hits; builtin compadd -A __hits \"\$@\"; (( \$#__hits )) && print -rl -- \$__hits >> $2; builtin compadd -Q \"\$@\"; }"
zpty -w z "comppostfuncs=( exit )"
zpty -w z "bindkey '^I' complete-word"
zpty -w z "$3"$'\t'
# Read until the shell exits, which it does right after completing (comppostfuncs).
while zpty -r z line 2> /dev/null; do :; done
zpty -d z 2> /dev/null
"#;

fn zsh_complete(dir: &Path, line: &str) -> String {
    let driver = dir.join("driver.zsh");
    std::fs::write(&driver, ZSH_DRIVER).unwrap();
    let hits = dir.join("hits");
    let _ = std::fs::remove_file(&hits);
    let output = run_bounded(
        Command::new(tool("zsh"))
            .arg("-f")
            .arg(&driver)
            .arg(dir)
            .arg(&hits)
            .arg(line),
        SHELL_DEADLINE,
    );
    assert!(output.status.success(), "zsh: {}", text(&output.stderr));
    std::fs::read_to_string(&hits).unwrap_or_default()
}

#[test]
fn zsh_completion_offers_every_flag_and_values() {
    let dir = temp_dir("zsh-completion");
    std::fs::write(dir.join("_websocketd"), generate("zsh")).unwrap();
    let check = run_bounded(
        Command::new(tool("zsh"))
            .args(["-n"])
            .arg(dir.join("_websocketd")),
        SHELL_DEADLINE,
    );
    assert!(check.status.success(), "zsh -n: {}", text(&check.stderr));
    assert_every_flag("zsh", &zsh_complete(&dir, "websocketd --"));
    let levels = zsh_complete(&dir, "websocketd --loglevel=");
    assert_eq!(
        levels.split_whitespace().collect::<Vec<_>>(),
        ["debug", "trace", "access", "info", "error", "fatal", "none"]
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn fish_complete(script: &Path, line: &str) -> String {
    let program = format!("source {}; complete -C $argv[1]", script.display());
    let output = run_bounded(
        Command::new(tool("fish")).args(["--no-config", "-c", &program, line]),
        SHELL_DEADLINE,
    );
    assert!(output.status.success(), "fish: {}", text(&output.stderr));
    assert_eq!(text(&output.stderr), "");
    // Each line is the candidate, a tab, then its description.
    text(&output.stdout)
        .lines()
        .map(|line| line.split('\t').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn fish_completion_offers_every_flag_and_values() {
    let dir = temp_dir("fish-completion");
    let script = dir.join("websocketd.fish");
    std::fs::write(&script, generate("fish")).unwrap();
    assert_every_flag("fish", &fish_complete(&script, "websocketd --"));
    assert_eq!(
        fish_complete(&script, "websocketd --loglevel=f"),
        "--loglevel=fatal"
    );
    let after = fish_complete(&script, "websocketd --port 80 cat --p");
    assert!(!after.contains("--port"), "{after}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn generate_is_not_in_help_and_refuses_unknown_outputs() {
    let help = run_bounded(Command::new(binary()).arg("--help"), DEADLINE);
    assert!(!text(&help.stderr).contains("generate"));
    let output = run_bounded(Command::new(binary()).arg("--generate=pdf"), DEADLINE);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).starts_with(
        "invalid value \"pdf\" for flag -generate: use one of man, bash, zsh, fish\n"
    ));
}
