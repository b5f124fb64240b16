//! HTTP/2 fairness and protections: a stalled WebSocket does not stall the others on its
//! connection (in either direction), and the rapid-reset and CONTINUATION-flood attacks
//! end with GOAWAY while the server keeps serving everyone else.

mod common;
#[path = "common/h2ws.rs"]
mod h2ws;

use common::*;
use futures_util::{SinkExt, StreamExt};
use h2ws::{H2Client, H2Ws, Windows};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Reads `ws` until told to stop, counting payload bytes; while `paused` is set it does
/// not read at all, as a client that stopped reading.
async fn count_bytes(
    mut ws: H2Ws,
    bytes: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        if paused.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => {
                bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(other) => panic!("stream ended: {other:?}"),
        }
    }
}

/// How often the fifty-socket test stalls and resumes its first stream.
const ROUNDS: usize = 3;

/// Bytes each stream received during `window`.
async fn rates(counters: &[Arc<AtomicU64>], window: Duration) -> Vec<f64> {
    let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = started.elapsed().as_secs_f64();
    counters
        .iter()
        .zip(before)
        .map(|(c, b)| (c.load(Ordering::Relaxed) - b) as f64 / elapsed)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sockets_on_one_connection_keep_their_throughput_when_one_stops_reading() {
    let server = Server::start(&["--binary", "sh", "-c", "exec cat /dev/zero"]);
    let mut client = H2Client::h2c_with(server.port, Windows::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut counters = Vec::new();
    let mut pauses = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..50 {
        let ws = client.open("/").await;
        let bytes = Arc::new(AtomicU64::new(0));
        let paused = Arc::new(AtomicBool::new(false));
        readers.push(tokio::spawn(count_bytes(
            ws,
            bytes.clone(),
            paused.clone(),
            stop.clone(),
        )));
        counters.push(bytes);
        pauses.push(paused);
    }
    assert!(wait_until(DEADLINE, || counters
        .iter()
        .all(|c| c.load(Ordering::Relaxed) > 0)));

    // Windows with all fifty reading alternate with windows in which the first does not
    // read at all, so that other work on a shared machine weighs on both alike; each
    // round compares the 49 in its own two windows.
    let sum = |rates: &[f64]| rates.iter().sum::<f64>();
    let mut kept = Vec::new();
    let mut slowest = Vec::new();
    // A first window passes while the buffers filled at the start drain.
    rates(&counters[1..], Duration::from_secs(1)).await;
    for _ in 0..ROUNDS {
        let together = rates(&counters[1..], Duration::from_secs(1)).await;
        pauses[0].store(true, Ordering::Relaxed);
        let stalled_before = counters[0].load(Ordering::Relaxed);
        let alone = rates(&counters[1..], Duration::from_millis(1500)).await;
        // At most the message it was reading when told to stop.
        let late = counters[0].load(Ordering::Relaxed) - stalled_before;
        assert!(late <= 1 << 20, "{late} bytes read after the pause");
        pauses[0].store(false, Ordering::Relaxed);
        let mean_together = sum(&together) / together.len() as f64;
        let slowest_alone = alone.iter().copied().fold(f64::INFINITY, f64::min);
        eprintln!(
            "49 streams: {:.1} MB/s with all reading, {:.1} MB/s with one stalled; slowest {:.2} MB/s",
            sum(&together) / 1e6,
            sum(&alone) / 1e6,
            slowest_alone / 1e6
        );
        kept.push(sum(&alone) / sum(&together));
        slowest.push(slowest_alone / mean_together);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (kept, slowest) = (median(&mut kept), median(&mut slowest));
    assert!(kept >= 0.5, "the 49 slowed down to {kept:.2} of their rate");
    assert!(slowest >= 0.1, "a stream starved: {slowest:.2} of the mean");
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        let _ = tokio::time::timeout(DEADLINE, reader).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_that_stop_reading_do_not_stall_uploads_on_other_streams() {
    let dir = temp_dir("h2-stuck-reader");
    script(&dir, "echo.sh", "exec cat");
    script(&dir, "stuck.sh", "exec sleep 1000");
    let dir_arg = format!("--dir={}", dir.display());
    let server = Server::start(&["--binary", &dir_arg]);
    let mut client = H2Client::h2c(server.port).await;

    // Ten stuck streams take all the window the server gives them, and then some.
    let sent_to_stuck = Arc::new(AtomicU64::new(0));
    let mut stuck_senders = Vec::new();
    for _ in 0..10 {
        let mut stuck = client.open("/stuck.sh").await;
        let counter = sent_to_stuck.clone();
        stuck_senders.push(tokio::spawn(async move {
            let chunk = vec![7u8; 16 * 1024];
            for _ in 0..1024 {
                if stuck.send(Message::binary(chunk.clone())).await.is_err() {
                    break;
                }
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            stuck
        }));
    }
    let mut last = 0;
    let settled = wait_until(DEADLINE, || {
        std::thread::sleep(Duration::from_millis(300));
        let now = sent_to_stuck.load(Ordering::Relaxed);
        let settled = now == last && now > 0;
        last = now;
        settled
    });
    assert!(settled, "the stuck streams never filled up");
    let absorbed = sent_to_stuck.load(Ordering::Relaxed);
    eprintln!("{absorbed} bytes wait for programs that read nothing");
    assert!(
        absorbed < 10 << 20,
        "{absorbed} bytes went to programs that read nothing"
    );

    // Every other stream still moves 4 MiB each way.
    let mut echoes = Vec::new();
    for n in 0..8u8 {
        let ws = client.open("/echo.sh").await;
        echoes.push(tokio::spawn(async move {
            let payload = vec![n; 4 << 20];
            let (mut sink, mut stream) = ws.split();
            let sending = tokio::spawn(async move {
                for part in payload.chunks(256 * 1024) {
                    sink.send(Message::binary(part.to_vec())).await.unwrap();
                }
                sink
            });
            let mut received = 0;
            while received < 4 << 20 {
                match tokio::time::timeout(DEADLINE, stream.next()).await {
                    Ok(Some(Ok(Message::Binary(data)))) => {
                        assert!(data.iter().all(|&b| b == n));
                        received += data.len();
                    }
                    other => panic!("echo {n} stalled after {received} bytes: {other:?}"),
                }
            }
            let _ = sending.await;
        }));
    }
    for echo in echoes {
        echo.await.unwrap();
    }
    for stuck in stuck_senders {
        assert!(!stuck.is_finished());
        stuck.abort();
    }
}

/// One HTTP/2 frame: length, type, flags, stream and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// An HPACK block for `GET http://127.0.0.1/` from the static table, plus the authority.
fn get_request_block() -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84, 0x41, 9];
    block.extend_from_slice(b"127.0.0.1");
    block
}

/// Opens a raw HTTP/2 connection: preface and empty SETTINGS.
fn raw_h2(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    stream
}

/// Reads frames until GOAWAY and returns its error code; `None` if the connection ended
/// (or went quiet past the deadline) without one.
fn goaway_code(stream: &mut TcpStream) -> Option<u32> {
    let deadline = Instant::now() + DEADLINE;
    let mut head = [0u8; 9];
    while Instant::now() < deadline {
        stream.read_exact(&mut head).ok()?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).ok()?;
        if head[3] == GOAWAY && payload.len() >= 8 {
            return Some(u32::from_be_bytes([
                payload[4], payload[5], payload[6], payload[7],
            ]));
        }
    }
    None
}

/// The server still answers a normal HTTP/2 request.
async fn still_serving(port: u16) {
    let mut client = H2Client::h2c(port).await;
    let response = client.request(http::Method::GET, "/", &[]).await;
    assert_eq!(response.status, http::StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_answered_with_goaway() {
    let dir = temp_dir("h2-rapid-reset");
    std::fs::write(dir.join("index.html"), "home").unwrap();
    let static_arg = format!("--staticdir={}", dir.display());
    let server = Server::start(&[&static_arg]);
    let mut stream = raw_h2(server.port);
    let mut writer = stream.try_clone().unwrap();
    // Open and at once cancel many streams, all in one burst (CVE-2023-44487).
    let attack = std::thread::spawn(move || {
        let block = get_request_block();
        let mut burst = Vec::new();
        for n in 0..5000u32 {
            let id = 2 * n + 1;
            burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
            burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
        }
        let _ = writer.write_all(&burst);
    });
    assert_eq!(goaway_code(&mut stream), Some(ENHANCE_YOUR_CALM));
    let _ = attack.join();
    still_serving(server.port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_is_answered_with_goaway() {
    let dir = temp_dir("h2-continuation");
    std::fs::write(dir.join("index.html"), "home").unwrap();
    let static_arg = format!("--staticdir={}", dir.display());
    let server = Server::start(&[&static_arg]);
    let daemon = server.pid();
    let rss_before = rss_kib(daemon);
    let mut stream = raw_h2(server.port);
    let mut writer = stream.try_clone().unwrap();
    // A header block that never ends: endless CONTINUATION frames without END_HEADERS,
    // each with a small piece of a header (CVE-2024-27316 and kin).
    let attack = std::thread::spawn(move || {
        let mut block = get_request_block();
        block.extend_from_slice(&[0x40, 5]);
        block.extend_from_slice(b"x-big");
        let _ = writer.write_all(&frame(HEADERS, END_STREAM, 1, &block));
        let piece = [b'a'; 1024];
        let mut burst = Vec::new();
        for _ in 0..64 {
            burst.extend(frame(CONTINUATION, 0, 1, &piece));
        }
        for _ in 0..2000 {
            if writer.write_all(&burst).is_err() {
                break;
            }
        }
    });
    assert_eq!(goaway_code(&mut stream), Some(ENHANCE_YOUR_CALM));
    let _ = attack.join();
    let rss_after = rss_kib(daemon);
    assert!(
        rss_after < rss_before + 32 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    still_serving(server.port).await;
}

// ---- Idle connections ----

/// How long an idle HTTP/1.1 keep-alive connection is kept (the time allowed for the next
/// request's head); an idle HTTP/2 connection gets the same.
const IDLE: Duration = Duration::from_secs(10);
/// Scheduling slack on a loaded machine for the idle timers to fire.
const IDLE_SLACK: Duration = Duration::from_secs(8);

/// Reads an HTTP/1.1 keep-alive connection until the server closes it; returns how long
/// after the first response that was.
fn http1_idle_close(port: u16) -> Duration {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(IDLE + DEADLINE)).unwrap();
    stream
        .write_all(b"GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).ends_with("idle test page") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "closed before the response");
        seen.extend_from_slice(&buffer[..n]);
    }
    let answered = Instant::now();
    match stream.read(&mut buffer) {
        Ok(0) => answered.elapsed(),
        Ok(_) => panic!("more data on an idle connection"),
        Err(err) => panic!("connection still open: {err}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_gets_goaway_when_an_idle_http1_connection_is_closed() {
    let pages = temp_dir("h2-idle");
    std::fs::write(pages.join("page.txt"), "idle test page").unwrap();
    let server = Server::start(&[&format!("--staticdir={}", pages.display()), "cat"]);
    let port = server.port;
    let http1 = tokio::task::spawn_blocking(move || http1_idle_close(port));
    let mut client = H2Client::h2c(server.port).await;
    let page = client.request(http::Method::GET, "/page.txt", &[]).await;
    assert_eq!(page.body, b"idle test page");
    let answered = Instant::now();
    let (ended, refused) = client.ended(IDLE + DEADLINE).await;
    let waited = answered.elapsed();
    assert!(ended.is_ok(), "{ended:?}");
    let refused = refused.expect("no new stream after GOAWAY");
    assert!(refused.is_go_away(), "{refused:?}");
    assert_eq!(refused.reason(), Some(h2::Reason::NO_ERROR));
    assert!(
        waited >= IDLE - Duration::from_millis(100) && waited < IDLE + IDLE_SLACK,
        "HTTP/2 connection closed after {waited:?}"
    );
    let http1 = http1.await.unwrap();
    assert!(
        http1 >= IDLE - Duration::from_millis(100) && http1 < IDLE + IDLE_SLACK,
        "HTTP/1.1 connection closed after {http1:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_carrying_a_websocket_is_never_idle() {
    let server = Server::start(&["cat"]);
    let mut client = H2Client::h2c(server.port).await;
    let mut ws = client.open("/").await;
    ws.send(Message::text("up")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "up");
    // Nothing moves on the connection for longer than the idle timeout (the subject of the
    // test, not a synchronisation).
    tokio::time::sleep(IDLE + Duration::from_secs(2)).await;
    assert!(!client.driver.is_finished(), "the connection was closed");
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "still here");
    // New streams are still welcome: no GOAWAY was sent.
    let options = client.request(http::Method::OPTIONS, "*", &[]).await;
    assert_eq!(options.status, http::StatusCode::OK);
    // Once the session has ended the connection is idle, and closed after the timeout.
    ws.close(None).await.unwrap();
    let transcript = read_all(&mut ws, DEADLINE).await;
    // The server answered the close (with no code, as the client sent none).
    assert_eq!(transcript.close.map(|c| c.0), Some(1005));
    let closed = Instant::now();
    let (ended, refused) = client.ended(IDLE + DEADLINE).await;
    let waited = closed.elapsed();
    assert!(ended.is_ok(), "{ended:?}");
    assert!(refused.is_some_and(|r| r.is_go_away()));
    assert!(
        waited >= IDLE - Duration::from_millis(100) && waited < IDLE + IDLE_SLACK,
        "closed {waited:?} after the session"
    );
}
