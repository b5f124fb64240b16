//! Client sides of the soak and fault harness (`scripts/soak.sh`): connection churn,
//! slowloris connections, and a client that floods pings and never reads. The harness
//! samples the daemon itself; these only drive it and count what they saw.

use std::cell::Cell;
use std::time::{Duration, Instant};

use futures_util::future;
use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::args::Args;
use crate::report::Report;
use crate::util::{close_quietly, connect, ms, percentile, recv, within, Error, Url};

/// Connect, send one message, wait for a reply or the end of the session (at most
/// `--wait-ms`), close; `--count` cycles, `--concurrency` at a time. Counts how each
/// cycle went, so it also drives programs that misbehave (crash, hang, never answer).
pub async fn churn(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let concurrency = args.usize("concurrency", 50)?.max(1);
    let count = args.usize("count", 1000)?;
    let wait = Duration::from_millis(args.u64("wait-ms", 5000)?);
    args.finish()?;

    let started = &Cell::new(0usize);
    let counts = &Counts::default();
    let samples = &std::cell::RefCell::new(Vec::with_capacity(count.min(1_000_000)));
    let url = &url;
    let t0 = Instant::now();
    let worker = move || async move {
        while started.get() < count {
            started.set(started.get() + 1);
            let t = Instant::now();
            match cycle(url, wait).await {
                Ok(Outcome::Replied) => counts.replied.set(counts.replied.get() + 1),
                Ok(Outcome::Ended) => counts.ended.set(counts.ended.get() + 1),
                Ok(Outcome::Silent) => counts.silent.set(counts.silent.get() + 1),
                Err(_) => counts.failed.set(counts.failed.get() + 1),
            }
            samples
                .borrow_mut()
                .push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
    };
    future::join_all((0..concurrency).map(|_| worker())).await;
    let secs = t0.elapsed().as_secs_f64();
    let mut samples = samples.take();
    samples.sort_unstable();
    let mut r = Report::new("churn");
    r.int("count", count as u64);
    r.int("concurrency", concurrency as u64);
    r.int("replied", counts.replied.get() as u64);
    r.int("ended_by_server", counts.ended.get() as u64);
    r.int("silent", counts.silent.get() as u64);
    r.int("failed", counts.failed.get() as u64);
    r.num("seconds", secs);
    r.num("cycles_per_s", count as f64 / secs);
    r.opt_num("p50_ms", percentile(&samples, 50.0).map(ms));
    r.opt_num("p99_ms", percentile(&samples, 99.0).map(ms));
    Ok(r)
}

#[derive(Default)]
struct Counts {
    replied: Cell<usize>,
    ended: Cell<usize>,
    silent: Cell<usize>,
    failed: Cell<usize>,
}

enum Outcome {
    /// The program answered.
    Replied,
    /// The session ended (close frame or connection end) without an answer.
    Ended,
    /// Nothing within the wait.
    Silent,
}

async fn cycle(url: &Url, wait: Duration) -> Result<Outcome, Error> {
    let mut ws = connect(url, crate::scenarios::small_config()).await?;
    within(
        wait,
        "send",
        ws.send(Message::Text(Utf8Bytes::from_static("soak"))),
    )
    .await??;
    let outcome = match time::timeout(wait, recv(&mut ws)).await {
        Ok(Ok(Some(_))) => Outcome::Replied,
        Ok(Ok(None)) => Outcome::Ended,
        Ok(Err(_)) => Outcome::Ended,
        Err(_) => Outcome::Silent,
    };
    close_quietly(ws, wait).await;
    Ok(outcome)
}

/// Opens `--connections` TCP connections that send a request head one byte every
/// `--interval-ms` and never finish it, for at most `--seconds`. Reports how many the
/// server cut off and how long the first cut took.
pub async fn slowloris(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let connections = args.usize("connections", 2000)?;
    let seconds = args.f64("seconds", 30.0)?;
    let interval = Duration::from_millis(args.u64("interval-ms", 1000)?);
    args.finish()?;

    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let opened = &Cell::new(0usize);
    let cut = &Cell::new(0usize);
    let first_cut = &Cell::new(None::<Duration>);
    let t0 = Instant::now();
    let authority = url.authority.as_str();
    let one = move || async move {
        let Ok(Ok(mut stream)) =
            time::timeout(Duration::from_secs(10), TcpStream::connect(authority)).await
        else {
            return;
        };
        opened.set(opened.get() + 1);
        let head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
        if stream.write_all(head).await.is_err() {
            cut.set(cut.get() + 1);
            return;
        }
        while Instant::now() < deadline {
            time::sleep(interval).await;
            if stream.write_all(b"a").await.is_err() {
                cut.set(cut.get() + 1);
                if first_cut.get().is_none() {
                    first_cut.set(Some(t0.elapsed()));
                }
                return;
            }
        }
    };
    future::join_all((0..connections).map(|_| one())).await;
    let mut r = Report::new("slowloris");
    r.int("connections", connections as u64);
    r.int("opened", opened.get() as u64);
    r.int("cut_by_server", cut.get() as u64);
    r.opt_num("first_cut_s", first_cut.get().map(|d| d.as_secs_f64()));
    Ok(r)
}

/// Upgrades one connection, then writes `--count` masked pings of `--size` bytes and
/// never reads. Stops when all are written, when the server drops the connection, or when
/// a write has been blocked for `--stall-seconds` (the server stopped reading); then keeps
/// the connection open, still not reading, for `--hold-seconds`, so that whatever the
/// server queued for it can be seen in the server's memory.
pub async fn pingflood(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let count = args.u64("count", 1_000_000)?;
    let size = args.usize("size", 125)?.min(125);
    let stall = Duration::from_secs_f64(args.f64("stall-seconds", 10.0)?);
    let hold = Duration::from_secs_f64(args.f64("hold-seconds", 5.0)?);
    args.finish()?;

    let mut stream = TcpStream::connect(url.authority.as_str()).await?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        url.authority
    );
    stream.write_all(request.as_bytes()).await?;
    // One ping frame, masked with a zero key (allowed: the key is random only to defeat
    // proxies), written in batches.
    let mut frame = vec![0x89, 0x80 | size as u8, 0, 0, 0, 0];
    frame.extend(std::iter::repeat_n(b'p', size));
    let batch: Vec<u8> = frame.repeat(256);
    let mut sent = 0u64;
    let mut outcome = "all sent";
    let t0 = Instant::now();
    while sent < count {
        let n = (count - sent).min(256) as usize;
        match time::timeout(stall, stream.write_all(&batch[..n * frame.len()])).await {
            Ok(Ok(())) => sent += n as u64,
            Ok(Err(_)) => {
                outcome = "dropped by server";
                break;
            }
            Err(_) => {
                outcome = "server stopped reading";
                break;
            }
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    time::sleep(hold).await;
    drop(stream);
    let mut r = Report::new("pingflood");
    r.int("pings_sent", sent);
    r.text("outcome", outcome);
    r.num("seconds", seconds);
    Ok(r)
}
