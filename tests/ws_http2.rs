//! WebSockets over HTTP/2 (RFC 8441): sessions opened with extended CONNECT by a client
//! built on the `h2` crate, checked the way HTTP/1.1 sessions are checked elsewhere.

mod common;
#[path = "common/h2ws.rs"]
mod h2ws;

use common::*;
use futures_util::{SinkExt, StreamExt};
use h2ws::{H2Client, H2Ws};
use http::StatusCode;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_echo_over_extended_connect_logs_http2() {
    let server = Server::start(&["cat"]);
    let mut client = H2Client::h2c(server.port).await;
    assert!(
        client.extended_connect_enabled(),
        "no ENABLE_CONNECT_PROTOCOL"
    );
    let mut ws = client.open("/chat?room=1").await;
    for text in ["hello", "", "é ü"] {
        send_text(&mut ws, text).await;
        assert_eq!(next_text(&mut ws).await, text);
    }
    send_text(&mut ws, "a\nb").await;
    assert_eq!(next_text(&mut ws).await, "a");
    assert_eq!(next_text(&mut ws).await, "b");
    let connect = server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| CONNECT"))
        .expect("CONNECT line");
    assert!(connect.contains("protocol:'HTTP/2'"), "{connect}");
    assert!(connect.contains("/chat?room=1"), "{connect}");
    ws.close(None).await.unwrap();
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert!(transcript.close.is_some());
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| DISCONNECT"))
        .is_some());
    assert!(wait_until(DEADLINE, || programs(server.pid()).is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_echo_of_four_mebibytes_and_several_sessions_on_one_connection() {
    let server = Server::start(&["--binary", "--maxframesize=8388608", "cat"]);
    let mut client = H2Client::h2c(server.port).await;
    let mut sessions: Vec<H2Ws> = Vec::new();
    for _ in 0..3 {
        sessions.push(client.open("/").await);
    }
    for (n, ws) in sessions.iter_mut().enumerate() {
        let size = (1 << 20) * (n + 2);
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + n) as u8).collect();
        ws.send(Message::binary(payload.clone())).await.unwrap();
        let mut echoed = Vec::new();
        while echoed.len() < size {
            echoed.extend(next_binary(ws).await);
        }
        assert!(echoed == payload, "session {n}: payload differs");
    }
    assert_eq!(programs(server.pid()).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_says_http2() {
    let server = Server::start(&["examples/bash/dump-env.sh"]);
    let mut client = H2Client::h2c(server.port).await;
    let (mut ws, _) = client
        .websocket(
            "/path?x=1",
            &[("x-test", "yes"), ("origin", "http://example")],
        )
        .await
        .expect("accepted");
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.close.map(|c| c.0), Some(1000));
    let env: BTreeMap<&str, &str> = transcript
        .texts
        .iter()
        .filter_map(|line| line.split_once('='))
        .collect();
    assert_eq!(env.get("SERVER_PROTOCOL"), Some(&"HTTP/2"));
    assert_eq!(env.get("REQUEST_METHOD"), Some(&"GET"));
    assert_eq!(env.get("QUERY_STRING"), Some(&"x=1"));
    assert_eq!(env.get("REQUEST_URI"), Some(&"/path?x=1"));
    assert_eq!(env.get("SERVER_NAME"), Some(&"127.0.0.1"));
    assert_eq!(env.get("HTTP_X_TEST"), Some(&"yes"));
    assert_eq!(env.get("HTTP_ORIGIN"), Some(&"http://example"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes_match_http1() {
    let server = Server::start(&["sh", "-c", "echo before; exit 3"]);
    let mut client = H2Client::h2c(server.port).await;
    let mut ws = client.open("/").await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.texts, ["before"]);
    assert_eq!(transcript.close, Some((1011, "exit status 3".to_string())));

    let server = Server::start(&["--maxframesize=10", "examples/bash/count.sh"]);
    let mut client = H2Client::h2c(server.port).await;
    let mut ws = client.open("/").await;
    assert_eq!(next_text(&mut ws).await, "1");
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.texts.len(), 9);
    assert_eq!(transcript.close, Some((1000, String::new())));

    let mut ws = client.open("/").await;
    send_text(&mut ws, "this is longer than ten").await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.close.map(|c| c.0), Some(1009));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passstderr_and_pings_work_on_a_stream() {
    let server = Server::start(&[
        "--passstderr",
        // A pong may take up to 2 x 400 ms, which holds on a loaded machine (at 100 ms the
        // session was dropped for a late pong there).
        "--pingms=400",
        "sh",
        "-c",
        "echo out; echo err >&2; sleep 2; echo late",
    ]);
    let mut client = H2Client::h2c(server.port).await;
    let mut ws = client.open("/").await;
    let mut pings = 0;
    let mut texts = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Text(text)))) => texts.push(text.to_string()),
            Ok(Some(Ok(Message::Close(frame)))) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    texts.sort();
    assert_eq!(
        texts,
        [
            r#"{"stream":"stderr","data":"err"}"#,
            r#"{"stream":"stdout","data":"late"}"#,
            r#"{"stream":"stdout","data":"out"}"#,
        ]
    );
    assert!(pings >= 3, "only {pings} pings in two seconds at 400 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ladder_stops_a_stubborn_program_after_a_client_close() {
    let server = Server::start(&["sh", "-c", STUBBORN]);
    let mut client = H2Client::h2c(server.port).await;
    let mut ws = client.open("/").await;
    let pids = next_text(&mut ws).await;
    let pids: Vec<u32> = pids.split(' ').map(|p| p.parse().unwrap()).collect();
    assert!(pids.iter().all(|&pid| alive(pid)));
    let closed = Instant::now();
    ws.close(None).await.unwrap();
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| DISCONNECT"))
        .is_some());
    let elapsed = closed.elapsed();
    assert!(elapsed >= Duration::from_millis(840), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1400), "{elapsed:?}");
    for pid in pids {
        assert!(!alive(pid), "{pid} survived the ladder");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_the_same_as_for_upgrades() {
    let dir = temp_dir("h2-refusals");
    script(&dir, "hello.sh", "echo hi");
    let dir_arg = format!("--dir={}", dir.display());
    let server = Server::start(&[
        "--origin=good.example",
        "--header=X-All: 1",
        "--header-ws=X-Ws: 2",
        "--header-http=X-Http: 3",
        &dir_arg,
    ]);
    let mut client = H2Client::h2c(server.port).await;
    let good = [("origin", "http://good.example")];
    let refused = client
        .websocket("/hello.sh", &[("origin", "http://evil.example")])
        .await
        .err();
    assert_eq!(refused.map(|r| r.0), Some(StatusCode::FORBIDDEN));
    let missing = client.websocket("/nothing.sh", &good).await.err();
    assert_eq!(missing.map(|r| r.0), Some(StatusCode::NOT_FOUND));

    let (mut first, headers) = client
        .websocket("/hello.sh", &good)
        .await
        .expect("accepted");
    assert_eq!(headers.get("x-all").map(|v| v.as_bytes()), Some(&b"1"[..]));
    assert_eq!(headers.get("x-ws").map(|v| v.as_bytes()), Some(&b"2"[..]));
    assert!(headers.get("x-http").is_none());
    assert!(headers.get("sec-websocket-accept").is_none());
    assert_eq!(next_text(&mut first).await, "hi");
    let transcript = read_all(&mut first, DEADLINE).await;
    assert_eq!(transcript.close.map(|c| c.0), Some(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_fork_limit_answers_429() {
    let server = Server::start(&["--maxforks=1", "cat"]);
    let mut client = H2Client::h2c(server.port).await;
    let mut first = client.open("/").await;
    send_text(&mut first, "up").await;
    assert_eq!(next_text(&mut first).await, "up");
    let second = client.websocket("/", &[]).await.err();
    assert_eq!(second.map(|r| r.0), Some(StatusCode::TOO_MANY_REQUESTS));
    let version = client
        .websocket("/", &[("sec-websocket-version", "8")])
        .await
        .err();
    assert_eq!(version.map(|r| r.0), Some(StatusCode::BAD_REQUEST));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_http2_sessions_with_1001_and_goaway() {
    let mut server = Server::start(&["cat"]);
    let mut client = H2Client::h2c(server.port).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let mut ws = client.open("/").await;
        send_text(&mut ws, "up").await;
        assert_eq!(next_text(&mut ws).await, "up");
        sessions.push(ws);
    }
    server.signal("TERM");
    for ws in &mut sessions {
        let transcript = read_all(ws, DEADLINE).await;
        assert_eq!(transcript.close.map(|c| c.0), Some(1001));
    }
    // GOAWAY without an error: the connection ends cleanly, and no new stream can be
    // opened on it.
    drop(sessions);
    let (ended, refused) = client.ended(DEADLINE).await;
    assert!(ended.is_ok(), "{ended:?}");
    let refused = refused.expect("no new stream after GOAWAY");
    assert!(refused.is_go_away(), "{refused:?}");
    assert_eq!(refused.reason(), Some(h2::Reason::NO_ERROR));
    let status = server.wait_exit(DEADLINE).expect("daemon exits");
    assert_eq!(status.code(), Some(0));
}
