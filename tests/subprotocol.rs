//! `--subprotocol` and `--subprotocolrequired`: negotiation seen by a real client, the
//! program's environment, and the `--dir` sidecar file.

mod common;

use common::*;
use std::process::Command;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SHOW_PROTOCOL: &str =
    "echo \"chosen=${WEBSOCKET_PROTOCOL-unset} offered=${HTTP_SEC_WEBSOCKET_PROTOCOL-unset}\"";

/// Connects offering `offered`; returns the protocol the 101 answered and the program's line.
async fn negotiate(server: &Server, path: &str, offered: &str) -> (Option<String>, String) {
    let mut request = server.url(path).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", offered.parse().unwrap());
    let (mut ws, response) =
        tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")
            .expect("upgrade");
    let answered = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.close.map(|c| c.0), Some(1000));
    (answered, transcript.texts.join("\n"))
}

fn upgrade_with(port: u16, path: &str, protocols: &str) -> HttpResponse {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {protocols}\r\n\r\n"
    );
    HttpResponse::parse(&raw_request(port, request.as_bytes()))
}

#[tokio::test]
async fn the_clients_first_listed_protocol_wins() {
    let server = Server::start(&["--subprotocol=b, a", "sh", "-c", SHOW_PROTOCOL]);
    let (answered, line) = negotiate(&server, "/", "x, a, b").await;
    assert_eq!(answered.as_deref(), Some("a"));
    assert_eq!(line, "chosen=a offered=x, a, b");
    let (answered, line) = negotiate(&server, "/", "b").await;
    assert_eq!(answered.as_deref(), Some("b"));
    assert_eq!(line, "chosen=b offered=b");
}

#[test]
fn no_common_protocol_proceeds_without_one() {
    let server = Server::start(&["--subprotocol=chat", "sh", "-c", SHOW_PROTOCOL]);
    let response = upgrade_with(server.port, "/", "Chat, superchat");
    assert_eq!(response.status, 101);
    assert_eq!(response.header("sec-websocket-protocol"), None);
}

#[tokio::test]
async fn without_the_flag_no_protocol_is_chosen() {
    let server = Server::start(&["sh", "-c", SHOW_PROTOCOL]);
    let response = upgrade_with(server.port, "/", "chat");
    assert_eq!(response.status, 101);
    assert_eq!(response.header("sec-websocket-protocol"), None);
    let mut ws = connect_with(&server.url("/"), &[]).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "chosen=unset offered=unset");
}

#[test]
fn required_protocol_missing_is_400() {
    let server = Server::start(&[
        "--subprotocol=chat",
        "--subprotocolrequired",
        "sh",
        "-c",
        SHOW_PROTOCOL,
    ]);
    let refused = upgrade_with(server.port, "/", "other");
    assert_eq!(refused.status, 400);
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("no offered subprotocol is served"))
        .is_some());
    let accepted = upgrade_with(server.port, "/", "other, chat");
    assert_eq!(accepted.status, 101);
    assert_eq!(accepted.header("sec-websocket-protocol"), Some("chat"));
}

#[tokio::test]
async fn dir_scripts_declare_their_own_protocols() {
    let dir = temp_dir("subprotocol-dir");
    script(&dir, "mine.sh", SHOW_PROTOCOL);
    script(&dir, "plain.sh", SHOW_PROTOCOL);
    std::fs::write(dir.join("mine.sh.protocols"), "v2.mine\n\nv1.mine\n").unwrap();
    let server = Server::start(&["--subprotocol=global", &format!("--dir={}", dir.display())]);
    let (answered, line) = negotiate(&server, "/mine.sh", "global, v1.mine, v2.mine").await;
    assert_eq!(answered.as_deref(), Some("v1.mine"));
    assert!(line.starts_with("chosen=v1.mine "), "{line}");
    let (answered, _) = negotiate(&server, "/plain.sh", "v1.mine, global").await;
    assert_eq!(answered.as_deref(), Some("global"));
    let response = upgrade_with(server.port, "/mine.sh", "global");
    assert_eq!(response.header("sec-websocket-protocol"), None);
}

#[test]
fn invalid_protocol_names_are_refused_at_start() {
    for args in [
        &["--subprotocol=a b", "cat"][..],
        &["--subprotocolrequired", "cat"][..],
    ] {
        let output = Command::new(binary())
            .args(args)
            .output()
            .expect("run websocketd");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("subprotocol"),
            "{args:?}"
        );
    }
}
