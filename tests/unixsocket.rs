//! Black-box tests of `--unixsocket`.

mod common;

use common::*;
use std::path::Path;

async fn connect_unix(path: &Path, target: &str) -> Result<Ws2, String> {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("ws://localhost{target}");
    tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(url, stream))
        .await
        .map_err(|_| "timeout".to_string())?
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

type Ws2 = tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>;

fn wait_for_socket(server: &Server, path: &Path) {
    assert!(
        wait_until(DEADLINE, || std::os::unix::net::UnixStream::connect(path)
            .is_ok()),
        "socket never answered: {:?}",
        server.stdout.all()
    );
}

#[tokio::test]
async fn websocket_over_the_unix_socket_alone() {
    let dir = temp_dir("unix-only");
    let socket = dir.join("ws.sock");
    let flag = format!("--unixsocket={}", socket.display());
    let mut server = Server::spawn_raw(&root(), &[&flag, "examples/bash/dump-env.sh"]);
    wait_for_socket(&server, &socket);
    let mut ws = connect_unix(&socket, "/here?q=1").await.unwrap();
    let transcript = read_all(&mut ws, DEADLINE).await;
    let env: Vec<&str> = transcript.texts.iter().map(String::as_str).collect();
    for expected in [
        "REMOTE_ADDR=unix-socket",
        "REMOTE_HOST=unix-socket",
        "REMOTE_PORT=",
        "QUERY_STRING=q=1",
        "SERVER_NAME=localhost",
        "SERVER_PORT=80",
    ] {
        assert!(env.contains(&expected), "{expected} missing from {env:?}");
    }
    let lines = server.stdout.all();
    assert!(lines.iter().any(|l| l.ends_with(&format!(
        "Starting WebSocket server   : unix socket at {}",
        socket.display()
    ))));
    assert!(!lines.iter().any(|l| l.contains("ws://")), "{lines:?}");
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("remote:'unix-socket'")
            && l.ends_with("| DISCONNECT"))
        .is_some());
    // Graceful shutdown removes the socket file.
    server.signal("TERM");
    assert_eq!(server.wait_exit(DEADLINE).and_then(|s| s.code()), Some(0));
    assert!(!socket.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Binary echo over the Unix socket (its halves read and written independently): large
/// messages come back whole and in order.
#[tokio::test]
async fn binary_echo_over_the_unix_socket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = temp_dir("unix-binary");
    let socket = dir.join("ws.sock");
    let flag = format!("--unixsocket={}", socket.display());
    let server = Server::spawn_raw(&root(), &[&flag, "--binary", "cat"]);
    wait_for_socket(&server, &socket);
    let mut ws = connect_unix(&socket, "/").await.unwrap();
    for size in [10usize, 20_000, 65_536, 500_000] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 13 + size) as u8).collect();
        ws.send(Message::binary(payload.clone())).await.unwrap();
        let mut echoed = Vec::new();
        while echoed.len() < size {
            match tokio::time::timeout(DEADLINE, ws.next()).await {
                Ok(Some(Ok(Message::Binary(data)))) => echoed.extend_from_slice(&data),
                other => panic!("{size}: after {} bytes: {other:?}", echoed.len()),
            }
        }
        assert!(echoed == payload, "echo of {size} bytes differs");
    }
    drop(ws);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_second_daemon_refuses_a_live_socket_and_replaces_a_stale_one() {
    let dir = temp_dir("unix-twice");
    let socket = dir.join("ws.sock");
    let flag = format!("--unixsocket={}", socket.display());
    let first = Server::spawn_raw(&root(), &[&flag, "cat"]);
    wait_for_socket(&first, &socket);
    let mut second = Server::spawn_raw(&root(), &[&flag, "cat"]);
    let status = second.wait_exit(DEADLINE).expect("second daemon exits");
    assert_eq!(status.code(), Some(3));
    assert!(second
        .stdout
        .wait_for(DEADLINE, |l| l.contains("| FATAL  |")
            && l.contains("is already in use by a running server"))
        .is_some());
    // Killed without a chance to clean up: the file stays, and is stale.
    drop(first);
    assert!(socket.exists());
    let third = Server::spawn_raw(&root(), &[&flag, "echo", "fresh"]);
    wait_for_socket(&third, &socket);
    let mut ws = connect_unix(&socket, "/").await.unwrap();
    assert_eq!(next_text(&mut ws).await, "fresh");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn unix_socket_next_to_tcp() {
    let dir = temp_dir("unix-tcp");
    let socket = dir.join("ws.sock");
    let flag = format!("--unixsocket={}", socket.display());
    let server = Server::start(&[&flag, "echo", "both"]);
    wait_for_socket(&server, &socket);
    let mut ws = connect(&server.url("/")).await;
    assert_eq!(next_text(&mut ws).await, "both");
    let mut ws = connect_unix(&socket, "/").await.unwrap();
    assert_eq!(next_text(&mut ws).await, "both");
    std::fs::remove_dir_all(dir).unwrap();
}
