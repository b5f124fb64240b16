//! Black-box tests of the command line: every validation row with its output and exit
//! code, Go flag forms, help/version/license, and start-up failures.

mod common;

use common::*;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    run_to_exit(&root(), args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validation_rows_give_their_message_and_exit_code() {
    let usage = "\nUsage:\n";
    // (args, exit code, stdout starts with, stderr starts with)
    let rows: &[(&[&str], i32, &str, &str)] = &[
        (
            &["--bogus", "cat"],
            2,
            "",
            "flag provided but not defined: -bogus\n",
        ),
        (
            &["--port=abc", "cat"],
            2,
            "",
            "invalid value \"abc\" for flag -port: parse error\n",
        ),
        (
            &["--binary=maybe", "cat"],
            2,
            "",
            "invalid boolean value \"maybe\" for -binary: parse error\n",
        ),
        (&["--port"], 2, "", "flag needs an argument: -port\n"),
        (&[], 1, "Command line arguments are missing.\n", usage),
        (
            &["--loglevel=loud", "cat"],
            1,
            "Incorrect loglevel flag 'loud'. Use --help to see allowed values.\n",
            usage,
        ),
        (
            &["--binary", "--passstderr", "cat"],
            1,
            "",
            "please only specify one of --binary and --passstderr\n",
        ),
        (
            &["--port=8080"],
            1,
            "",
            "Please specify COMMAND or provide --dir, --staticdir or --cgidir argument.\n",
        ),
        (
            &["--dir=examples", "cat"],
            1,
            "",
            "ambiguous: provided COMMAND and --dir argument, please only specify one\n",
        ),
        (
            &["no-such-program-xyz"],
            1,
            "",
            "unable to locate specified COMMAND 'no-such-program-xyz' in OS path\n",
        ),
        (
            &["./LICENSE"],
            1,
            "",
            "unable to locate specified COMMAND './LICENSE' in OS path\n",
        ),
        (
            &["--dir=no/such/dir"],
            1,
            "",
            "could not find your script dir 'no/such/dir'\n",
        ),
        (
            &["--dir=LICENSE"],
            1,
            "",
            "did you mean to specify COMMAND instead of --dir 'LICENSE'?\n",
        ),
    ];
    for (args, code, stdout, stderr) in rows {
        let output = run(args);
        assert_eq!(output.status.code(), Some(*code), "{args:?}");
        assert!(
            text(&output.stdout).starts_with(stdout),
            "{args:?}: stdout {:?}",
            text(&output.stdout)
        );
        assert!(
            text(&output.stderr).starts_with(stderr),
            "{args:?}: stderr {:?}",
            text(&output.stderr)
        );
        if *code == 2 {
            assert!(
                text(&output.stderr).contains(usage),
                "{args:?} prints the usage"
            );
        }
    }
}

#[test]
fn help_version_and_license() {
    for args in [&["--help"][..], &["-h"], &["-help", "cat"]] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(0));
        assert!(output.stdout.is_empty());
        let help = text(&output.stderr);
        for flag in [
            "--port",
            "--address",
            "--dir",
            "--maxforks",
            "--closems",
            "--pingms",
            "--loglevel",
        ] {
            assert!(help.contains(flag), "help lacks {flag}");
        }
    }
    let output = run(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    let version = text(&output.stdout);
    assert!(version.starts_with("websocketd "), "{version}");
    assert!(
        version.contains(" (rustc ") && version.ends_with(")\n"),
        "{version}"
    );
    let output = run(&["--license"]);
    assert_eq!(output.status.code(), Some(0));
    let license = text(&output.stdout);
    assert!(license.starts_with(version.trim_end()));
    assert!(license.contains("\n\nBSD 2-Clause") || license.contains("Redistribution and use"));
}

#[test]
fn listen_failures_exit_3_with_a_fatal_line() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let cases: Vec<Vec<String>> = vec![
        vec![
            format!("--port={port}"),
            "--address=127.0.0.1".into(),
            "cat".into(),
        ],
        vec![
            "--port=99999".into(),
            "--address=127.0.0.1".into(),
            "cat".into(),
        ],
        vec![
            "--port=-1".into(),
            "--address=127.0.0.1".into(),
            "cat".into(),
        ],
        vec![
            format!("--port={port}"),
            "--address=::1".into(),
            "cat".into(),
        ],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run(&args);
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        let log = text(&output.stdout);
        assert!(
            log.lines()
                .any(|l| l.contains("| FATAL  | server     |  | Can't start server: ")),
            "{args:?}: {log}"
        );
    }
}

#[test]
fn go_flag_forms_reach_the_server() {
    let port = free_port().to_string();
    for args in [
        vec![
            "-port",
            port.as_str(),
            "-address",
            "127.0.0.1",
            "--binary=false",
            "cat",
        ],
        vec!["--port=PORT", "--address=127.0.0.1", "--binary", "false"],
    ] {
        let args: Vec<String> = args.iter().map(|a| a.replace("PORT", &port)).collect();
        let mut child = Command::new(binary())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let ok = wait_until(DEADLINE, || {
            std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok()
        });
        let _ = child.kill();
        let _ = child.wait();
        assert!(ok, "{args:?} did not start");
    }
}

#[test]
fn startup_lines_and_log_format() {
    let server = Server::start(&["cat", "-u"]);
    let lines = server.stdout.all();
    let first = server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("Serving using application"))
        .unwrap();
    assert!(
        first.ends_with("| INFO   | server     |  | Serving using application   : /usr/bin/cat -u")
            || first
                .ends_with("| INFO   | server     |  | Serving using application   : /bin/cat -u"),
        "{first}"
    );
    let starting = format!(
        "Starting WebSocket server   : ws://127.0.0.1:{}/",
        server.port
    );
    assert!(
        server
            .stdout
            .wait_for(DEADLINE, |l| l.ends_with(&starting))
            .is_some(),
        "{lines:?}"
    );
    // RFC 1123 timestamp with a numeric zone, then the padded level and category.
    let stamp = first.split(" | ").next().unwrap();
    assert_eq!(stamp.len(), 31, "{stamp}");
    assert_eq!(&stamp[3..5], ", ");
}

#[tokio::test]
async fn loglevel_filters_lines() {
    // At error level the 404's access line and the start-up lines are hidden, while the
    // program's stderr line (ERROR) shows; it is printed after the 404 was answered.
    let server = Server::start(&["--loglevel=error", "sh", "-c", "echo marker >&2"]);
    assert_eq!(server.get("/probe").status, 404);
    let mut ws = connect(&server.url("/")).await;
    let _ = read_all(&mut ws, DEADLINE).await;
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("| ERROR  | stderr")
            && l.ends_with("| marker"))
        .is_some());
    let lines = server.stdout.all();
    assert!(lines.iter().all(|l| l.contains("| ERROR  |")), "{lines:?}");

    let mut quiet = Server::start(&["--loglevel=none", "cat"]);
    assert_eq!(quiet.get("/probe").status, 404);
    quiet.signal("TERM");
    assert_eq!(quiet.wait_exit(DEADLINE).and_then(|s| s.code()), Some(0));
    assert!(quiet.stdout.all().is_empty(), "{:?}", quiet.stdout.all());
}
