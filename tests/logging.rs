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
