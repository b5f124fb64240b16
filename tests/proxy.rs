//! Behind a reverse proxy (`--trustproxy`): forwarding headers and the PROXY protocol count
//! only on connections from trusted addresses; from anyone else they are ordinary bytes.

mod common;

use common::*;
use std::collections::BTreeMap;
use tokio::io::AsyncWriteExt;

type Env = BTreeMap<String, String>;

fn parse_env(texts: &[String]) -> Env {
    texts
        .iter()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn env_with_headers(server: &Server, headers: &[(&str, &str)]) -> Env {
    let mut ws = connect_with(&server.url("/"), headers)
        .await
        .expect("connect");
    parse_env(&read_all(&mut ws, DEADLINE).await.texts)
}

/// Opens a TCP connection, writes `preamble` first, then runs a WebSocket handshake on it.
async fn env_after_preamble(server: &Server, preamble: &[u8]) -> Result<Env, String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stream.write_all(preamble).await.unwrap();
    let handshake = tokio_tungstenite::client_async(server.url("/"), stream);
    match tokio::time::timeout(DEADLINE, handshake).await {
        Ok(Ok((mut ws, _))) => Ok(parse_env(&read_all(&mut ws, DEADLINE).await.texts)),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("handshake timed out".into()),
    }
}

fn proxy_v2_ipv4(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut bytes = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    bytes.extend_from_slice(&[0x21, 0x11, 0, 12]);
    bytes.extend_from_slice(&source);
    bytes.extend_from_slice(&[127, 0, 0, 1]);
    bytes.extend_from_slice(&port.to_be_bytes());
    bytes.extend_from_slice(&443u16.to_be_bytes());
    bytes
}

const V1: &[u8] = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";

#[tokio::test]
async fn trusted_x_forwarded_for_and_proto_set_remote_addr_and_https() {
    let server = Server::start(&[
        "--trustproxy=10.0.0.0/8,127.0.0.1",
        "examples/bash/dump-env.sh",
    ]);
    let env = env_with_headers(
        &server,
        &[
            ("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.1.2.3"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    .await;
    assert_eq!(
        env.get("REMOTE_ADDR").map(String::as_str),
        Some("203.0.113.9")
    );
    assert_eq!(
        env.get("REMOTE_HOST").map(String::as_str),
        Some("203.0.113.9")
    );
    assert_eq!(env.get("REMOTE_PORT").map(String::as_str), Some(""));
    assert_eq!(env.get("HTTPS").map(String::as_str), Some("on"));
    // The headers themselves still reach the program.
    assert!(env.contains_key("HTTP_X_FORWARDED_FOR"));
    let line = server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("CONNECT"))
        .expect("access line");
    assert!(line.contains(" remote:'203.0.113.9'"), "{line}");
    assert!(line.contains(" url:'https://"), "{line}");
}

#[tokio::test]
async fn untrusted_forwarding_headers_are_ordinary_headers() {
    let server = Server::start(&["--trustproxy=10.0.0.0/8", "examples/bash/dump-env.sh"]);
    let env = env_with_headers(
        &server,
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
            ("Forwarded", "for=198.51.100.7;proto=https"),
        ],
    )
    .await;
    assert_eq!(
        env.get("REMOTE_ADDR").map(String::as_str),
        Some("127.0.0.1")
    );
    assert_ne!(env.get("REMOTE_PORT").map(String::as_str), Some(""));
    assert_eq!(env.get("HTTPS"), None);
    assert_eq!(
        env.get("HTTP_X_FORWARDED_FOR").map(String::as_str),
        Some("203.0.113.9")
    );
    // Without --trustproxy at all, likewise.
    let plain = Server::start(&["examples/bash/dump-env.sh"]);
    let env = env_with_headers(&plain, &[("X-Forwarded-For", "203.0.113.9")]).await;
    assert_eq!(
        env.get("REMOTE_ADDR").map(String::as_str),
        Some("127.0.0.1")
    );
}

#[tokio::test]
async fn trusted_forwarded_header_gives_address_port_and_scheme() {
    let server = Server::start(&["--trustproxy=127.0.0.0/8", "examples/bash/dump-env.sh"]);
    let env = env_with_headers(
        &server,
        &[(
            "Forwarded",
            r#"for=6.6.6.6;proto=http, for="[2001:db8::5]:4711";proto=https"#,
        )],
    )
    .await;
    assert_eq!(
        env.get("REMOTE_ADDR").map(String::as_str),
        Some("2001:db8::5")
    );
    assert_eq!(env.get("REMOTE_PORT").map(String::as_str), Some("4711"));
    assert_eq!(env.get("HTTPS").map(String::as_str), Some("on"));
    // With X-Forwarded-For too, that one counts: a proxy appending to it may pass a
    // client's own Forwarded header on untouched.
    let env = env_with_headers(
        &server,
        &[
            ("Forwarded", "for=6.6.6.6;proto=https"),
            ("X-Forwarded-For", "198.51.100.1"),
        ],
    )
    .await;
    assert_eq!(
        env.get("REMOTE_ADDR").map(String::as_str),
        Some("198.51.100.1")
    );
    assert_eq!(env.get("HTTPS"), None);
}

/// The status of an upgrade request for Host `example.com` from Origin `https://example.com`.
fn upgrade_status(server: &Server, extra: &str) -> u16 {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: example.com\r\nOrigin: https://example.com\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    HttpResponse::parse(&server.raw(request.as_bytes())).status
}

#[test]
fn sameorigin_uses_the_forwarded_scheme_only_from_trusted_proxies() {
    let https = "X-Forwarded-Proto: https\r\n";
    let trusted = Server::start(&[
        "--trustproxy=127.0.0.1",
        "--sameorigin",
        "examples/bash/dump-env.sh",
    ]);
    assert_eq!(upgrade_status(&trusted, https), 101);
    assert_eq!(upgrade_status(&trusted, ""), 403);
    let untrusted = Server::start(&[
        "--trustproxy=192.0.2.0/24",
        "--sameorigin",
        "examples/bash/dump-env.sh",
    ]);
    assert_eq!(upgrade_status(&untrusted, https), 403);
}

#[tokio::test]
async fn proxy_protocol_v1_and_v2_from_a_trusted_peer_name_the_client() {
    let server = Server::start(&["--trustproxy=127.0.0.1", "examples/bash/dump-env.sh"]);
    let env = env_after_preamble(&server, V1).await.expect("v1");
    assert_eq!(
        env.get("REMOTE_ADDR").map(String::as_str),
        Some("192.0.2.1")
    );
    assert_eq!(env.get("REMOTE_PORT").map(String::as_str), Some("56324"));
    let env = env_after_preamble(&server, &proxy_v2_ipv4([198, 51, 100, 20], 4242))
        .await
        .expect("v2");
    assert_eq!(
        env.get("REMOTE_ADDR").map(String::as_str),
        Some("198.51.100.20")
    );
    assert_eq!(env.get("REMOTE_PORT").map(String::as_str), Some("4242"));
    // The header is optional from a trusted peer: a plain connection works too.
    let env = env_with_headers(&server, &[]).await;
    assert_eq!(
        env.get("REMOTE_ADDR").map(String::as_str),
        Some("127.0.0.1")
    );
    // v2 LOCAL (a health check): the proxy speaks for itself.
    let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    let env = env_after_preamble(&server, &local).await.expect("local");
    assert_eq!(
        env.get("REMOTE_ADDR").map(String::as_str),
        Some("127.0.0.1")
    );
    let line = server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("remote:'192.0.2.1'"))
        .expect("access line with the PROXY client");
    assert!(line.contains("CONNECT"), "{line}");
}

#[test]
fn proxy_protocol_from_an_untrusted_peer_is_http_garbage() {
    let server = Server::start(&["--trustproxy=192.0.2.0/24", "examples/bash/dump-env.sh"]);
    for preamble in [V1.to_vec(), proxy_v2_ipv4([192, 0, 2, 1], 1)] {
        let mut request = preamble;
        request.extend_from_slice(
            format!(
                "GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                server.port
            )
            .as_bytes(),
        );
        let response = HttpResponse::parse(&server.raw(&request));
        assert_eq!(response.status, 400);
    }
    // Still serving.
    assert_eq!(server.get("/").status, 404);
}

#[test]
fn malformed_proxy_header_from_a_trusted_peer_closes_the_connection() {
    let server = Server::start(&["--trustproxy=127.0.0.1", "examples/bash/dump-env.sh"]);
    let answer = server.raw(b"PROXY TCP4 not-an-address 1.2.3.4 1 2\r\nGET / HTTP/1.1\r\n\r\n");
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    let line = server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("Bad PROXY protocol header"))
        .expect("log line");
    assert!(line.contains("127.0.0.1:"), "{line}");
    assert_eq!(server.get("/").status, 404);
}

#[test]
fn bad_trustproxy_entry_is_a_usage_error() {
    let output = std::process::Command::new(binary())
        .args(["--trustproxy=10.0.0.0/40", "examples/bash/dump-env.sh"])
        .current_dir(root())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid --trustproxy entry '10.0.0.0/40'"),
        "{stderr}"
    );
    assert!(stderr.contains("Usage"), "{stderr}");
}
