//! Black-box tests of the session log lines.

mod common;

use common::*;

#[tokio::test]
async fn session_lines_carry_their_associations() {
    let server = Server::start(&[
        "sh",
        "-c",
        "echo oops >&2; echo out; printf 'no newline' >&2",
    ]);
    let mut ws = connect_with(
        &server.url("/path?q=1"),
        &[("Origin", "http://example.com")],
    )
    .await
    .unwrap();
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.texts, ["out"]);
    let disconnect = server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| DISCONNECT"))
        .unwrap();
    let connect = server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| CONNECT"))
        .unwrap();
    let url = format!("url:'http://127.0.0.1:{}/path?q=1'", server.port);
    for line in [&connect, &disconnect] {
        assert!(line.contains("| ACCESS | session    | "), "{line}");
        assert!(line.contains(&url), "{line}");
        assert!(line.contains(" id:'"), "{line}");
        assert!(line.contains(" remote:'127.0.0.1'"), "{line}");
        assert!(line.contains(" command:'/"), "{line}");
        assert!(line.contains(" origin:'http://example.com'"), "{line}");
    }
    assert!(disconnect.contains(" pid:'"), "{disconnect}");
    let stderr_line = server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| oops"))
        .unwrap();
    assert!(
        stderr_line.contains("| ERROR  | stderr     | "),
        "{stderr_line}"
    );
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| no newline"))
        .is_some());
    // Program stderr goes to the log on stdout, never to the daemon's stderr.
    assert!(server.stderr.all().is_empty(), "{:?}", server.stderr.all());
}

#[tokio::test]
async fn long_stderr_lines_never_stall_the_program() {
    // 100 KiB on one stderr line, then more than a pipe's worth of stderr.
    let server = Server::start(&[
        "sh",
        "-c",
        "head -c 102400 /dev/zero | tr '\\0' e >&2; echo >&2; seq 1 20000 >&2; echo finished",
    ]);
    let mut ws = connect(&server.url("/")).await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.texts, ["finished"]);
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l
            .ends_with(&format!("| {}", "e".repeat(102400))))
        .is_some());
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| 20000"))
        .is_some());
}

/// Runs one session that prints to stdout and stderr, with `--logformat=FORMAT`; returns
/// the daemon's log once the session's DISCONNECT line is there.
async fn one_session_log(format: &str, disconnect: impl Fn(&str) -> bool) -> (Server, Vec<String>) {
    let server = Server::start(&[
        &format!("--logformat={format}"),
        "--loglevel=debug",
        "sh",
        "-c",
        "printf '%s\\n' 'oops \"q\" \\ b' >&2; echo out",
    ]);
    let mut ws = connect_with(
        &server.url("/path?q=1"),
        &[("Origin", "http://example.com")],
    )
    .await
    .unwrap();
    assert_eq!(read_all(&mut ws, DEADLINE).await.texts, ["out"]);
    server.stdout.wait_for(DEADLINE, disconnect).unwrap();
    server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("oops"))
        .unwrap();
    let lines = server.stdout.all();
    (server, lines)
}

#[tokio::test]
async fn json_lines_are_objects_with_every_association_as_a_field() {
    let (server, lines) =
        one_session_log("json", |l| l.contains("\"message\":\"DISCONNECT\"")).await;
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for event in &events {
        let time = event["time"].as_str().unwrap();
        // RFC 3339, UTC, microseconds: 2026-11-21T04:19:45.123456Z
        assert_eq!(time.len(), 27, "{time}");
        assert!(time.ends_with('Z'), "{time}");
        assert_eq!(&time[19..20], ".", "{time}");
        chrono::DateTime::parse_from_rfc3339(time).unwrap();
        for field in ["level", "category", "message"] {
            assert!(event[field].is_string(), "{field} in {event}");
        }
    }
    let find = |message: &str| {
        events
            .iter()
            .find(|e| e["message"] == message)
            .unwrap_or_else(|| panic!("no {message} in {lines:?}"))
    };
    let url = format!("http://127.0.0.1:{}/path?q=1", server.port);
    for message in ["CONNECT", "DISCONNECT"] {
        let event = find(message);
        assert_eq!(event["level"], "access");
        assert_eq!(event["category"], "session");
        assert_eq!(event["url"], url.as_str());
        assert_eq!(event["remote"], "127.0.0.1");
        assert_eq!(event["origin"], "http://example.com");
        assert!(event["command"].as_str().unwrap().ends_with("/sh"));
        assert!(event["id"].as_str().unwrap().parse::<u64>().is_ok());
    }
    assert!(find("DISCONNECT")["pid"]
        .as_str()
        .unwrap()
        .parse::<u32>()
        .is_ok());
    let stderr = find("oops \"q\" \\ b");
    assert_eq!(stderr["level"], "error");
    assert_eq!(stderr["category"], "stderr");
    let startup = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("Serving using application")
        })
        .unwrap();
    assert_eq!(startup["level"], "info");
    assert_eq!(startup["category"], "server");
    assert!(events.iter().any(|e| e["level"] == "debug"));
}

#[tokio::test]
async fn journal_lines_carry_a_priority_and_no_timestamp() {
    let (server, lines) = one_session_log("journal", |l| l.ends_with("| DISCONNECT")).await;
    for line in &lines {
        let priority = line
            .strip_prefix('<')
            .and_then(|rest| rest.split_once('>'))
            .and_then(|(n, _)| n.parse::<u8>().ok())
            .unwrap_or_else(|| panic!("no priority: {line}"));
        let expected = match &line[3..9] {
            "DEBUG " | "TRACE " => 7,
            "ACCESS" | "INFO  " => 6,
            "ERROR " => 3,
            "FATAL " => 2,
            other => panic!("level {other:?} in {line}"),
        };
        assert_eq!(priority, expected, "{line}");
    }
    let url = format!("url:'http://127.0.0.1:{}/path?q=1'", server.port);
    let connect = lines.iter().find(|l| l.ends_with("| CONNECT")).unwrap();
    assert!(
        connect.starts_with(&format!("<6>ACCESS | session    | {url} id:'")),
        "{connect}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("<3>ERROR  | stderr     | ") && l.ends_with("| oops \"q\" \\ b")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("<6>INFO   | server     |  | Serving using application   : ")));
}

#[test]
fn unknown_logformat_is_refused_like_a_bad_loglevel() {
    let output = run_to_exit(&root(), &["--logformat=xml", "cat"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Incorrect logformat flag 'xml'. Use --help to see allowed values.\n"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("\nUsage:\n"));
}
