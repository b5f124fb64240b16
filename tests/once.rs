//! `--once`: one WebSocket session, then a graceful shutdown with the program's exit status;
//! further upgrades get 503 while it runs.

mod common;

use common::*;
use std::process::Command;

/// Runs one session against `--once PROGRAM`; returns the daemon's exit code.
async fn exit_code_after_session(script: &str) -> Option<i32> {
    let mut server = Server::start(&["--once", "sh", "-c", script]);
    let mut ws = connect(&server.url("/")).await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.texts, ["started"]);
    let status = server
        .wait_exit(DEADLINE)
        .expect("daemon exits after the session");
    // The log is read by another thread: the daemon's last lines may still be in the pipe
    // when it has exited.
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l
            .contains("Shutting down on the end of the --once session"))
        .is_some());
    status.code()
}

#[tokio::test]
async fn exit_status_zero() {
    assert_eq!(
        exit_code_after_session("echo started; exit 0").await,
        Some(0)
    );
}

#[tokio::test]
async fn exit_status_non_zero() {
    assert_eq!(
        exit_code_after_session("echo started; exit 7").await,
        Some(7)
    );
}

#[tokio::test]
async fn a_signal_becomes_128_plus_its_number() {
    assert_eq!(
        exit_code_after_session("echo started; kill -KILL $$").await,
        Some(128 + 9)
    );
}

#[tokio::test]
async fn other_upgrades_get_503_while_the_session_runs() {
    let pages = temp_dir("once-pages");
    std::fs::write(pages.join("ui.txt"), "installer").unwrap();
    let mut server = Server::start(&[
        "--once",
        &format!("--staticdir={}", pages.display()),
        "sh",
        "-c",
        "echo ready; read answer; exit $answer",
    ]);
    // A refused upgrade does not use up the one session.
    let refused = server.raw(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(HttpResponse::parse(&refused).status, 400);

    let mut ws = connect(&server.url("/")).await;
    assert_eq!(next_text(&mut ws).await, "ready");
    let second = connect_with(&server.url("/"), &[]).await;
    assert!(
        second.as_ref().is_err_and(|e| e.contains("503")),
        "{:?}",
        second.map(|_| ())
    );
    let page = server.get("/ui.txt");
    assert_eq!(
        (page.status, page.body.as_slice()),
        (200, &b"installer"[..])
    );

    send_text(&mut ws, "5").await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.close.map(|c| c.0), Some(1011));
    let status = server.wait_exit(DEADLINE).expect("daemon exits");
    assert_eq!(status.code(), Some(5));
}

#[test]
fn once_needs_a_program() {
    let dir = temp_dir("once-static");
    let output = Command::new(binary())
        .args(["--once", &format!("--staticdir={}", dir.display())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--once needs"));
}

#[tokio::test]
async fn later_upgrades_are_refused_before_any_authorization_run() {
    let dir = temp_dir("once-auth");
    let runs = dir.join("runs");
    let auth = script(&dir, "auth.sh", &format!("echo run >> {}", runs.display()));
    let mut server = Server::start(&[
        "--once",
        &format!("--authcmd={}", auth.display()),
        "sh",
        "-c",
        "echo ready; read answer",
    ]);
    let mut ws = connect(&server.url("/")).await;
    assert_eq!(next_text(&mut ws).await, "ready");
    let second = connect_with(&server.url("/"), &[]).await;
    assert!(second.is_err_and(|e| e.contains("503")));
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\n");
    send_text(&mut ws, "done").await;
    read_all(&mut ws, DEADLINE).await;
    assert_eq!(server.wait_exit(DEADLINE).and_then(|s| s.code()), Some(0));
}
