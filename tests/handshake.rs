//! Black-box tests of the upgrade: handshake checks, origin policy, fork limit, headers,
//! plain HTTP answers and path normalisation.

mod common;

use common::*;

fn upgrade_request(port: u16, path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

fn status_of(server: &Server, request: &[u8]) -> HttpResponse {
    HttpResponse::parse(&server.raw(request))
}

#[test]
fn origin_table() {
    // Columns: default, --sameorigin, --origin=example.com, --origin=https://example.com,
    // --origin=example.com:8080. Rows: the Origin header sent.
    let policies: [&[&str]; 5] = [
        &[],
        &["--sameorigin"],
        &["--origin=example.com"],
        &["--origin=https://example.com"],
        &["--origin=example.com:8080"],
    ];
    let servers: Vec<Server> = policies
        .iter()
        .map(|flags| {
            let mut args = flags.to_vec();
            args.push("cat");
            Server::start(&args)
        })
        .collect();
    let rows: Vec<(Option<String>, [u16; 5])> = vec![
        (None, [101, 403, 403, 403, 403]),
        (Some("null".into()), [101, 403, 403, 403, 403]),
        (Some("example.com".into()), [101, 403, 403, 403, 403]),
        (Some("http://example.com".into()), [101, 403, 101, 403, 403]),
        (
            Some("https://example.com".into()),
            [101, 403, 101, 101, 403],
        ),
        (
            Some("http://example.com:8080".into()),
            [101, 403, 101, 403, 101],
        ),
        (Some("http://Example.COM".into()), [101, 403, 101, 403, 403]),
        (
            Some("http://127.0.0.1:PORT".into()),
            [101, 101, 403, 403, 403],
        ),
        (
            Some("https://127.0.0.1:PORT".into()),
            [101, 101, 403, 403, 403],
        ),
    ];
    for (origin, expected) in rows {
        for (server, want) in servers.iter().zip(expected) {
            let header = origin
                .as_ref()
                .map(|o| {
                    format!(
                        "Origin: {}\r\n",
                        o.replace("PORT", &server.port.to_string())
                    )
                })
                .unwrap_or_default();
            let response = status_of(server, &upgrade_request(server.port, "/", &header));
            assert_eq!(
                response.status, want,
                "origin {origin:?} on port {}",
                server.port
            );
            if want == 403 {
                assert_eq!(response.body, b"Forbidden\n");
                assert_eq!(response.header("sec-websocket-version"), Some("13"));
            }
        }
    }
    assert!(servers[2]
        .stdout
        .wait_for(DEADLINE, |l| l
            .contains("Origin is not listed in allowed list"))
        .is_some());
    assert!(servers[1]
        .stdout
        .wait_for(DEADLINE, |l| l.contains("Same origin policy mismatch"))
        .is_some());
}

#[test]
fn bad_handshakes_get_their_status_and_a_clean_body() {
    let server = Server::start(&["cat"]);
    let port = server.port;
    let cases: Vec<(Vec<u8>, u16, &[u8])> = vec![
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
            405,
            b"Method Not Allowed\n",
        ),
        (
            upgrade_request(port, "/", ""),
            101,
            b"",
        ),
        (
            String::from_utf8(upgrade_request(port, "/", ""))
                .unwrap()
                .replace("Version: 13", "Version: 8")
                .into_bytes(),
            400,
            b"Bad Request\n",
        ),
        (
            String::from_utf8(upgrade_request(port, "/", ""))
                .unwrap()
                .replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")
                .into_bytes(),
            400,
            b"Bad Request\n",
        ),
    ];
    for (request, status, body) in cases {
        let response = status_of(&server, &request);
        assert_eq!(
            response.status,
            status,
            "{}",
            String::from_utf8_lossy(&request)
        );
        if status != 101 {
            assert_eq!(response.body, body);
        }
    }
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l
            .contains("| Unable to Upgrade: websocket: unsupported version"))
        .is_some());
}

#[test]
fn plain_http_gets_404_and_an_access_line_with_the_url() {
    let server = Server::start(&[
        "--header=X-All: 1",
        "--header-http=X-Http: 2",
        "--header-ws=X-Ws: 3",
        "cat",
    ]);
    let response = server.get("/__ready_probe__?n=1");
    assert_eq!(response.status, 404);
    assert_eq!(response.body, b"404 page not found\n");
    assert_eq!(response.header("x-all"), Some("1"));
    assert_eq!(response.header("x-http"), Some("2"));
    assert_eq!(response.header("x-ws"), None);
    let url = format!("url:'http://127.0.0.1:{}/__ready_probe__?n=1'", server.port);
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("| ACCESS |")
            && l.contains(&url)
            && l.ends_with("| NOT FOUND"))
        .is_some());
    let upgrade = server.raw(&upgrade_request(server.port, "/", ""));
    let upgrade = HttpResponse::parse(&upgrade);
    assert_eq!(upgrade.status, 101);
    assert_eq!(upgrade.header("x-all"), Some("1"));
    assert_eq!(upgrade.header("x-ws"), Some("3"));
    assert_eq!(upgrade.header("x-http"), None);
}

#[test]
fn forced_subprotocol_header_is_sent() {
    let server = Server::start(&["--header-ws=Sec-WebSocket-Protocol: chat", "cat"]);
    let response = status_of(
        &server,
        &upgrade_request(server.port, "/", "Sec-WebSocket-Protocol: chat\r\n"),
    );
    assert_eq!(response.status, 101);
    assert_eq!(response.header("sec-websocket-protocol"), Some("chat"));
}

#[test]
fn non_canonical_paths_redirect_with_query() {
    let server = Server::start(&["cat"]);
    for (path, location) in [
        ("/a/../b?x=1", "/b?x=1"),
        ("//double", "/double"),
        ("/%2e%2e/etc/passwd", "/etc/passwd"),
        ("/a/./b/", "/a/b/"),
    ] {
        let response = server.get(path);
        assert_eq!(response.status, 301, "{path}");
        assert_eq!(response.header("location"), Some(location), "{path}");
    }
    assert_eq!(server.get("/%zz").status, 400);
    let no_host = HttpResponse::parse(&server.raw(b"GET / HTTP/1.1\r\n\r\n"));
    assert_eq!(no_host.status, 400);
    let http10 = HttpResponse::parse(&server.raw(b"GET / HTTP/1.0\r\n\r\n"));
    assert_eq!(http10.status, 404);
}

#[test]
fn malformed_requests_do_not_hurt_the_daemon() {
    let server = Server::start(&["cat"]);
    for garbage in [
        &b"\x00\x01\x02\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let answer = server.raw(garbage);
        if !answer.is_empty() {
            let response = HttpResponse::parse(&answer);
            assert!(
                response.status >= 400,
                "{:?}",
                String::from_utf8_lossy(garbage)
            );
        }
    }
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 21)
    );
    let answer = server.raw(huge.as_bytes());
    assert!(answer.is_empty() || HttpResponse::parse(&answer).status == 431);
    assert_eq!(server.get("/alive").status, 404);
}

#[tokio::test]
async fn maxforks_refuses_with_429_and_frees_the_slot() {
    let server = Server::start(&["--maxforks=1", "cat"]);
    let mut first = connect(&server.url("/")).await;
    send_text(&mut first, "hi").await;
    assert_eq!(next_text(&mut first).await, "hi");
    let refused = HttpResponse::parse(&server.raw(&upgrade_request(server.port, "/", "")));
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body, b"429 Too Many Requests\n");
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("| ERROR  |")
            && l.contains("Max of possible forks already active"))
        .is_some());
    first.close(None).await.unwrap();
    let _ = read_all(&mut first, DEADLINE).await;
    // The slot is released once the program is gone.
    let mut accepted = false;
    for _ in 0..200 {
        match connect_with(&server.url("/"), &[]).await {
            Ok(mut ws) => {
                send_text(&mut ws, "again").await;
                assert_eq!(next_text(&mut ws).await, "again");
                accepted = true;
                break;
            }
            Err(err) => {
                assert!(err.contains("429"), "{err}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
    assert!(accepted, "slot was not released");
}

#[tokio::test]
async fn a_flood_of_connections_past_maxforks_leaves_existing_sessions_alone() {
    let server = Server::start(&["--maxforks=3", "cat"]);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(connect(&server.url("/")).await);
    }
    for _ in 0..50 {
        let err = connect_with(&server.url("/"), &[]).await.unwrap_err();
        assert!(err.contains("429"), "{err}");
    }
    for (i, ws) in sessions.iter_mut().enumerate() {
        let text = format!("session {i}");
        send_text(ws, &text).await;
        assert_eq!(next_text(ws).await, text);
    }
}

#[test]
fn http10_upgrade_is_accepted() {
    let server = Server::start(&["cat"]);
    let request = String::from_utf8(upgrade_request(server.port, "/", ""))
        .unwrap()
        .replace("HTTP/1.1\r\n", "HTTP/1.0\r\n");
    let answer = server.raw(request.as_bytes());
    assert_eq!(
        HttpResponse::parse(&answer).status,
        101,
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
