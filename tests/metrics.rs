//! Black-box tests of `--metrics`: `/metrics` scraped after a known sequence of sessions,
//! refusals and HTTP requests (every count exact), and `/healthz` turning to 503 as soon
//! as graceful shutdown starts.

mod common;

use common::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn get(port: u16, path: &str) -> HttpResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    HttpResponse::parse(&raw_request(port, request.as_bytes()))
}

/// Every sample of a scrape, as `name{labels}` → value.
fn scrape(port: u16) -> HashMap<String, f64> {
    let response = get(port, "/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = String::from_utf8(response.body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, name: &str) -> f64 {
    samples.get(name).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_a_known_sequence_exactly() {
    let dir = temp_dir("metrics");
    let scripts = dir.join("scripts");
    let www = dir.join("www");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::create_dir_all(&www).unwrap();
    script(
        &scripts,
        "echo.sh",
        "#!/bin/sh\nread line\necho \"got $line\"\n",
    );
    std::fs::write(scripts.join("broken.sh"), "#!/bin/sh\necho never\n").unwrap();
    std::fs::write(www.join("file.txt"), "static\n").unwrap();
    let metrics_port = free_port();
    let server = Server::start(&[
        &format!("--metrics=127.0.0.1:{metrics_port}"),
        &format!("--dir={}", scripts.display()),
        &format!("--staticdir={}", www.display()),
        "--origin=allowed.example",
        "--maxforks=1",
    ]);
    // The harness's readiness probe is a connection too: count from once it was accepted.
    let mut accepted_before = 0.0;
    assert!(wait_until(DEADLINE, || {
        accepted_before = value(
            &scrape(metrics_port),
            "websocketd_connections_accepted_total",
        );
        accepted_before >= 1.0
    }));
    let allowed = [("Origin", "http://allowed.example")];

    // 101, one message each way, the program exits 0: close 1000.
    let mut ws = connect_with(&server.url("/echo.sh"), &allowed)
        .await
        .unwrap();
    send_text(&mut ws, "hello").await;
    let transcript = read_all(&mut ws, DEADLINE).await;
    assert_eq!(transcript.texts, ["got hello"]);
    assert_eq!(transcript.close.map(|c| c.0), Some(1000));
    // 403: origin refused.
    let evil = [("Origin", "http://evil.example")];
    assert!(connect_with(&server.url("/echo.sh"), &evil).await.is_err());
    // 400: no Sec-WebSocket-Key.
    let bad = server.raw(
        b"GET /echo.sh HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nOrigin: http://allowed.example\r\n\r\n",
    );
    assert_eq!(HttpResponse::parse(&bad).status, 400);
    // 404: no such script.
    assert!(connect_with(&server.url("/nope.sh"), &allowed)
        .await
        .is_err());
    // 101, then the program cannot start: close 1011.
    let mut ws = connect_with(&server.url("/broken.sh"), &allowed)
        .await
        .unwrap();
    assert_eq!(
        read_all(&mut ws, DEADLINE).await.close.map(|c| c.0),
        Some(1011)
    );
    // One session open (the only fork slot), a second upgrade gets 429.
    let mut held = connect_with(&server.url("/echo.sh"), &allowed)
        .await
        .unwrap();
    // The session counts from the 101; its program starts right after. The session that
    // ended with 1011 may still be finishing on the server: wait for it to be gone.
    assert!(wait_until(DEADLINE, || value(
        &scrape(metrics_port),
        "websocketd_sessions_active"
    ) == 1.0));
    assert!(wait_until(DEADLINE, || value(
        &scrape(metrics_port),
        "websocketd_programs_running"
    ) == 1.0));
    assert!(connect_with(&server.url("/echo.sh"), &allowed)
        .await
        .is_err());
    send_text(&mut held, "bye").await;
    let transcript = read_all(&mut held, DEADLINE).await;
    assert_eq!(transcript.texts, ["got bye"]);
    // Plain HTTP: one static file found, one not.
    assert_eq!(server.get("/file.txt").status, 200);
    assert_eq!(server.get("/missing.txt").status, 404);
    // Every session has ended (DISCONNECT is logged after the program was reaped).
    assert!(server
        .stdout
        .wait_count(DEADLINE, 3, |l| l.ends_with("| DISCONNECT")));

    let after = scrape(metrics_port);
    let expected: &[(&str, f64)] = &[
        ("websocketd_upgrades_total{status=\"101\"}", 3.0),
        ("websocketd_upgrades_total{status=\"400\"}", 1.0),
        ("websocketd_upgrades_total{status=\"403\"}", 1.0),
        ("websocketd_upgrades_total{status=\"404\"}", 1.0),
        ("websocketd_upgrades_total{status=\"429\"}", 1.0),
        ("websocketd_upgrade_seconds_count", 3.0),
        ("websocketd_sessions_active", 0.0),
        ("websocketd_programs_running", 0.0),
        ("websocketd_programs_started_total", 2.0),
        ("websocketd_spawn_failures_total", 1.0),
        ("websocketd_close_frames_sent_total{code=\"1000\"}", 2.0),
        ("websocketd_close_frames_sent_total{code=\"1011\"}", 1.0),
        ("websocketd_messages_total{direction=\"in\"}", 2.0),
        ("websocketd_messages_total{direction=\"out\"}", 2.0),
        ("websocketd_message_bytes_total{direction=\"in\"}", 8.0),
        ("websocketd_message_bytes_total{direction=\"out\"}", 16.0),
        ("websocketd_slow_client_closes_total", 0.0),
        (
            "websocketd_http_requests_total{handler=\"static\",status=\"200\"}",
            1.0,
        ),
        (
            "websocketd_http_requests_total{handler=\"static\",status=\"404\"}",
            1.0,
        ),
    ];
    for (name, want) in expected {
        assert_eq!(value(&after, name), *want, "{name}: {after:?}");
    }
    // Upgrades (7) and HTTP requests (2), each on a connection of its own.
    assert_eq!(
        value(&after, "websocketd_connections_accepted_total") - accepted_before,
        9.0
    );
    let upgrade_samples = after
        .keys()
        .filter(|k| k.starts_with("websocketd_upgrades_total"))
        .count();
    assert_eq!(upgrade_samples, 5, "{after:?}");
    let sum = value(&after, "websocketd_upgrade_seconds_sum");
    assert!(sum > 0.0 && sum < 60.0, "{sum}");
}

#[test]
fn monitoring_listener_answers_only_its_two_paths() {
    let metrics_port = free_port();
    let _server = Server::start(&[&format!("--metrics=127.0.0.1:{metrics_port}"), "cat"]);
    let health = get(metrics_port, "/healthz");
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(get(metrics_port, "/").status, 404);
    let post = HttpResponse::parse(&raw_request(
        metrics_port,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ));
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn healthz_turns_503_when_graceful_shutdown_starts() {
    let metrics_port = free_port();
    // The program ignores SIGINT and SIGTERM, so stopping it takes the whole termination
    // sequence (a few seconds with --closems): long enough to see the daemon shutting down.
    let mut server = Server::start(&[
        &format!("--metrics=127.0.0.1:{metrics_port}"),
        "--closems=300",
        "sh",
        "-c",
        "trap '' INT TERM; echo up; while :; do sleep 0.1; done",
    ]);
    let mut ws = connect(&server.url("/")).await;
    assert_eq!(next_text(&mut ws).await, "up");
    assert_eq!(get(metrics_port, "/healthz").status, 200);
    server.signal("TERM");
    let deadline = Instant::now() + DEADLINE;
    let mut seen = None;
    while Instant::now() < deadline {
        let health = get(metrics_port, "/healthz");
        if health.status != 200 {
            seen = Some(health);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let health = seen.expect("/healthz never left 200 after SIGTERM");
    assert_eq!(health.status, 503);
    assert_eq!(health.body, b"shutting down\n");
    // Still shutting down gracefully: the session is open until its program is stopped.
    assert!(server.wait_exit(Duration::from_millis(1)).is_none());
    let status = server.wait_exit(DEADLINE).expect("daemon did not exit");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn metrics_address_needs_host_and_port() {
    for address in ["9100", ":9100", "localhost:http", "127.0.0.1:99999", "[::1"] {
        let output = run_to_exit(&root(), &[&format!("--metrics={address}"), "cat"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{address}: {stderr}");
        assert!(stderr.starts_with("invalid --metrics address"), "{stderr}");
        assert!(stderr.contains("\nUsage:\n"), "{stderr}");
    }
    // A port already taken is a start-up failure like any listener's.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = run_to_exit(
        &root(),
        &[
            &format!("--port={}", free_port()),
            "--address=127.0.0.1",
            &format!("--metrics=127.0.0.1:{port}"),
            "cat",
        ],
    );
    assert_eq!(output.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("| FATAL  | server     |  | Can't start server: ")
            && stdout.contains(&format!("127.0.0.1:{port}")),
        "{stdout}"
    );
}

#[tokio::test]
async fn broadcast_counts_a_client_closed_for_being_too_slow() {
    let metrics_port = free_port();
    // About 4 MB/s of 1000-byte lines for ever; a client that never reads falls more than
    // ten messages behind as soon as its socket buffers are full.
    let server = Server::start(&[
        &format!("--metrics=127.0.0.1:{metrics_port}"),
        "--broadcast",
        "--maxqueue=10",
        "sh",
        "-c",
        "pad=$(printf '%0990d' 0); while :; do echo \"$pad\"; done",
    ]);
    let mut slow = connect_small_buffers(server.port).await;
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("TOO SLOW"))
        .is_some());
    // Reading again, it gets what was on its way, then 1013.
    let seen = read_all(&mut slow, DEADLINE).await;
    assert_eq!(seen.close.map(|c| c.0), Some(1013));
    let counted = |name: &str| value(&scrape(metrics_port), name);
    assert!(wait_until(DEADLINE, || counted(
        "websocketd_slow_client_closes_total"
    ) == 1.0));
    assert_eq!(
        counted("websocketd_close_frames_sent_total{code=\"1013\"}"),
        1.0
    );
    assert_eq!(counted("websocketd_upgrades_total{status=\"101\"}"), 1.0);
}

#[tokio::test]
async fn broadcast_counts_every_message_delivered_to_every_client() {
    let dir = temp_dir("metrics-bc");
    let gate = dir.join("go");
    let program = script(
        &dir,
        "three.sh",
        &format!(
            "while [ ! -e {} ]; do sleep 0.01; done\necho one\necho two\necho three\n",
            gate.display()
        ),
    );
    let metrics_port = free_port();
    let server = Server::start(&[
        &format!("--metrics=127.0.0.1:{metrics_port}"),
        "--broadcast",
        &program.display().to_string(),
    ]);
    let mut first = connect(&server.url("/")).await;
    let mut second = connect(&server.url("/")).await;
    assert!(wait_until(DEADLINE, || programs(server.pid()).len() == 1));
    std::fs::write(&gate, b"").unwrap();
    for ws in [&mut first, &mut second] {
        let seen = read_all(ws, DEADLINE).await;
        assert_eq!(seen.texts, ["one", "two", "three"]);
        assert_eq!(seen.close.map(|c| c.0), Some(1000));
    }
    let counted = |name: &str| value(&scrape(metrics_port), name);
    assert_eq!(counted("websocketd_messages_total{direction=\"out\"}"), 6.0);
    assert_eq!(
        counted("websocketd_message_bytes_total{direction=\"out\"}"),
        22.0
    );
}
