//! The scenario shapes. Everything runs on one thread: connections are futures polled
//! together, so shared counters are plain `Cell`s. Every wait is bounded, either by an
//! explicit deadline or by a watchdog that fails the run when nothing moves for a while.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::Read;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures_util::future::{self, Either};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio::time;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::args::Args;
use crate::report::Report;
use crate::util::{
    close_and_wait, close_quietly, connect, mean, ms, percentile, recv, within, Error, Url, Ws,
    OP_TIMEOUT,
};

/// How often watchdogs look at progress counters.
const TICK: Duration = Duration::from_millis(100);

/// Resolves with whichever of the two futures finishes first; the other is dropped.
async fn race<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    match future::select(pin!(a), pin!(b)).await {
        Either::Left((x, _)) | Either::Right((x, _)) => x,
    }
}

/// Fails when `last` (the time of the last progress) is older than `limit`; succeeds as
/// soon as `finished()` says the work is complete.
async fn watchdog(
    last: &Cell<Instant>,
    limit: Duration,
    what: &str,
    finished: impl Fn() -> bool,
) -> Result<(), Error> {
    loop {
        time::sleep(TICK).await;
        if finished() {
            return Ok(());
        }
        if last.get().elapsed() > limit {
            return Err(Error::new(format!(
                "{what}: no progress for {:.0} s",
                limit.as_secs_f64()
            )));
        }
    }
}

/// Small buffers for scenarios with many mostly idle connections.
pub fn small_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096)
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) fn latency_fields(
    report: &mut Report,
    samples: &mut [u64],
    unit_ms: bool,
    pcts: &[f64],
) {
    samples.sort_unstable();
    let scale = |ns: u64| if unit_ms { ms(ns) } else { ns as f64 / 1e3 };
    let unit = if unit_ms { "ms" } else { "us" };
    for &p in pcts {
        report.opt_num(&format!("p{p}_{unit}"), percentile(samples, p).map(scale));
    }
    report.opt_num(
        &format!("mean_{unit}"),
        mean(samples).map(|m| if unit_ms { m / 1e6 } else { m / 1e3 }),
    );
    report.opt_num(&format!("max_{unit}"), samples.last().map(|&m| scale(m)));
}

/// Connect, receive the one line the program prints, close; `count` times in total,
/// `concurrency` at a time.
pub async fn handshake(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let concurrency = args.usize("concurrency", 1)?.max(1);
    let count = args.usize("count", 1000)?;
    args.finish()?;

    let url = &url;
    session_cycles("handshake", concurrency, count, || handshake_cycle(url)).await
}

/// Runs `count` session cycles, `concurrency` at a time, and reports their rate and
/// latency (the `handshake` figures) under the scenario name `name`.
pub(crate) async fn session_cycles<F, Fut>(
    name: &str,
    concurrency: usize,
    count: usize,
    cycle: F,
) -> Result<Report, Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let started = &Cell::new(0usize);
    let samples = &RefCell::new(Vec::with_capacity(count));
    let cycle = &cycle;
    let t0 = Instant::now();
    let worker = move || async move {
        while started.get() < count {
            started.set(started.get() + 1);
            let t = Instant::now();
            cycle().await?;
            samples.borrow_mut().push(nanos(t.elapsed()));
        }
        Ok::<(), Error>(())
    };
    future::try_join_all((0..concurrency).map(|_| worker())).await?;
    let secs = t0.elapsed().as_secs_f64();

    let mut samples = samples.take();
    let mut r = Report::new(name);
    r.int("concurrency", concurrency as u64);
    r.int("count", count as u64);
    r.num("seconds", secs);
    r.num("conns_per_s", count as f64 / secs);
    latency_fields(&mut r, &mut samples, true, &[50.0, 99.0]);
    Ok(r)
}

async fn handshake_cycle(url: &Url) -> Result<(), Error> {
    let mut ws = connect(url, small_config()).await?;
    match within(OP_TIMEOUT, "waiting for the program's line", recv(&mut ws)).await?? {
        Some(Message::Text(_)) => {}
        Some(_) => return Err(Error::new("expected a text message")),
        None => return Err(Error::new("connection ended before the program's line")),
    }
    close_and_wait(ws, OP_TIMEOUT).await
}

/// Strictly sequential round trips on one connection.
pub async fn echo_latency(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let count = args.usize("count", 20_000)?;
    let size = args.usize("size", 64)?;
    args.finish()?;

    let mut ws = connect(&url, WebSocketConfig::default()).await?;
    let payload = Utf8Bytes::from("x".repeat(size));
    let warmup = (count / 10).min(200);
    let mut samples = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let t = Instant::now();
        within(OP_TIMEOUT, "send", ws.send(Message::Text(payload.clone()))).await??;
        match within(OP_TIMEOUT, "waiting for the echo", recv(&mut ws)).await?? {
            Some(Message::Text(t)) if t.len() == size => {}
            Some(_) => return Err(Error::new("the echo differs from the message sent")),
            None => return Err(Error::new(format!("connection ended after {i} echoes"))),
        }
        if i >= warmup {
            samples.push(nanos(t.elapsed()));
        }
    }
    close_quietly(ws, Duration::from_secs(2)).await;

    let mut r = Report::new("echo-latency");
    r.int("count", count as u64);
    r.int("size", size as u64);
    latency_fields(&mut r, &mut samples, false, &[50.0, 99.0]);
    Ok(r)
}

/// `connections` connections, each keeping `window` messages in flight for `seconds`.
pub async fn echo_throughput(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let connections = args.usize("connections", 1)?.max(1);
    let size = args.usize("size", 64)?;
    let window = args.usize("window", 64)?.max(1);
    let seconds = args.f64("seconds", 5.0)?;
    args.finish()?;

    let conns =
        future::try_join_all((0..connections).map(|_| connect(&url, Default::default()))).await?;
    let payload = Utf8Bytes::from("x".repeat(size));
    let end = time::Instant::now() + Duration::from_secs_f64(seconds);
    let counts = future::try_join_all(
        conns
            .into_iter()
            .map(|ws| pipeline(ws, payload.clone(), window, end)),
    )
    .await?;

    let (mut sent, mut received, mut in_window) = (0, 0, 0);
    for (s, r, w) in counts {
        sent += s;
        received += r;
        in_window += w;
    }
    let mut r = Report::new("echo-throughput");
    r.int("connections", connections as u64);
    r.int("size", size as u64);
    r.int("window", window as u64);
    r.num("seconds", seconds);
    r.int("sent", sent);
    r.int("received", received);
    r.int("received_in_window", in_window);
    r.num("msgs_per_s", in_window as f64 / seconds);
    Ok(r)
}

/// Returns (sent, received, received before `end`).
async fn pipeline(
    ws: Ws,
    payload: Utf8Bytes,
    window: usize,
    end: time::Instant,
) -> Result<(u64, u64, u64), Error> {
    let (mut tx, mut rx) = ws.split();
    let credits = Semaphore::new(window);
    let sent = Cell::new(0u64);
    let received = Cell::new(0u64);
    let in_window = Cell::new(0u64);
    let done = Cell::new(false);
    let last = Cell::new(Instant::now());
    let finished = || done.get() && received.get() == sent.get();

    let writer = async {
        while time::Instant::now() < end {
            let Ok(Ok(permit)) = time::timeout_at(end, credits.acquire()).await else {
                break;
            };
            permit.forget();
            tx.feed(Message::Text(payload.clone())).await?;
            sent.set(sent.get() + 1);
            while let Ok(permit) = credits.try_acquire() {
                permit.forget();
                tx.feed(Message::Text(payload.clone())).await?;
                sent.set(sent.get() + 1);
            }
            tx.flush().await?;
        }
        done.set(true);
        Ok::<(), Error>(())
    };
    let reader = async {
        loop {
            match recv(&mut rx).await? {
                Some(Message::Text(_)) => {
                    let now = Instant::now();
                    last.set(now);
                    received.set(received.get() + 1);
                    if time::Instant::from_std(now) < end {
                        in_window.set(in_window.get() + 1);
                    }
                    credits.add_permits(1);
                    if finished() {
                        return Ok(());
                    }
                }
                Some(_) => return Err(Error::new("expected text echoes")),
                None => return Err(Error::new("the server ended the connection")),
            }
        }
    };
    let checked = race(reader, watchdog(&last, OP_TIMEOUT, "echo", finished));
    future::try_join(writer, checked).await?;
    close_quietly_split(tx).await;
    Ok((sent.get(), received.get(), in_window.get()))
}

/// Sends a close frame on a write half, ignoring errors, within two seconds.
async fn close_quietly_split<S>(mut tx: S)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let _ = time::timeout(Duration::from_secs(2), tx.close()).await;
}

/// Counts the lines a program prints until it ends (or `expect-lines` arrived).
pub async fn push(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let expect = args.u64("expect-lines", 0)?;
    args.finish()?;
    if expect == 0 {
        return Err(Error::new("--expect-lines is required"));
    }

    let mut ws = connect(&url, WebSocketConfig::default()).await?;
    let t0 = Instant::now();
    let lines = Cell::new(0u64);
    let bytes = Cell::new(0u64);
    let last = Cell::new(t0);
    let reader = async {
        while lines.get() < expect {
            match recv(&mut ws).await? {
                Some(Message::Text(t)) => bytes.set(bytes.get() + t.len() as u64),
                Some(Message::Binary(b)) => bytes.set(bytes.get() + b.len() as u64),
                Some(_) => {}
                None => break,
            }
            lines.set(lines.get() + 1);
            last.set(Instant::now());
        }
        Ok(())
    };
    race(reader, watchdog(&last, OP_TIMEOUT, "push", || false)).await?;
    close_quietly(ws, Duration::from_secs(2)).await;

    let (lines, bytes) = (lines.get(), bytes.get());
    if lines < expect {
        return Err(Error::new(format!(
            "connection ended after {lines} of {expect} lines"
        )));
    }
    let secs = (last.get() - t0).as_secs_f64();
    let mut r = Report::new("push");
    r.int("lines", lines);
    r.int("bytes", bytes);
    r.num("seconds", secs);
    r.num("msgs_per_s", lines as f64 / secs);
    r.num("mb_per_s", bytes as f64 / 1e6 / secs);
    Ok(r)
}

/// Binary echo: `in-flight` messages first, then one more per `size` bytes echoed.
pub async fn binary(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let size = args.usize("size", 65536)?.max(1);
    let in_flight = args.usize("in-flight", 1)?.max(1);
    let count = args.u64("count", 1000)?;
    let stall = Duration::from_secs_f64(args.f64("stall-seconds", 5.0)?);
    args.finish()?;

    let ws = connect(&url, WebSocketConfig::default()).await?;
    let (mut tx, mut rx) = ws.split();
    let payload = Bytes::from(vec![0u8; size]);
    let expected = count * size as u64;
    let credits = Semaphore::new(in_flight);
    let received = Cell::new(0u64);
    let t0 = Instant::now();
    let last = Cell::new(t0);

    let writer = async {
        for _ in 0..count {
            credits.acquire().await?.forget();
            tx.send(Message::Binary(payload.clone())).await?;
        }
        // Done sending; let the reader or the stall check decide the outcome.
        future::pending::<()>().await;
        Ok::<bool, Error>(false)
    };
    let reader = async {
        let mut acked = 0u64;
        while received.get() < expected {
            match recv(&mut rx).await? {
                Some(Message::Binary(b)) => {
                    received.set(received.get() + b.len() as u64);
                    last.set(Instant::now());
                    let whole = received.get() / size as u64;
                    if whole > acked {
                        credits.add_permits((whole - acked) as usize);
                        acked = whole;
                    }
                }
                Some(_) => return Err(Error::new("expected binary echoes")),
                None => {
                    return Err(Error::new(format!(
                        "connection ended after {} of {expected} bytes",
                        received.get()
                    )))
                }
            }
        }
        Ok(false)
    };
    let stall_check = async {
        loop {
            time::sleep(TICK).await;
            if last.get().elapsed() >= stall {
                return Ok(true);
            }
        }
    };
    let stalled = race(writer, race(reader, stall_check)).await?;
    let rx_done = last.get();
    if !stalled {
        // A stalled server is not waited for: dropping the connection is enough.
        let ws = tx
            .reunite(rx)
            .map_err(|_| Error::new("split halves do not match"))?;
        close_quietly(ws, Duration::from_secs(1)).await;
    }

    let secs = (rx_done - t0).as_secs_f64();
    let mut r = Report::new("binary");
    r.int("size", size as u64);
    r.int("in_flight", in_flight as u64);
    r.int("count", count);
    r.boolean("stalled", stalled);
    r.int("received_bytes", received.get());
    r.int("expected_bytes", expected);
    r.num("seconds", secs);
    r.opt_num(
        "mb_per_s",
        (!stalled).then(|| received.get() as f64 / 1e6 / secs),
    );
    Ok(r)
}

/// Opens `connections` connections (`parallel` at a time), checks each echoes, then holds
/// them until a byte arrives on stdin (or `hold-seconds` pass) so that the caller can
/// measure the server, then closes them all.
pub async fn scale(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let n = args.usize("connections", 1000)?;
    let parallel = args.usize("parallel", 200)?.max(1);
    let hold = Duration::from_secs_f64(args.f64("hold-seconds", 60.0)?);
    args.finish()?;

    let t0 = Instant::now();
    let mut conns: Vec<Ws> = stream::iter(0..n)
        .map(|_| connect(&url, small_config()))
        .buffer_unordered(parallel)
        .try_collect()
        .await?;
    let open_s = t0.elapsed().as_secs_f64();

    // Every program must be running: one echo per connection.
    let t1 = Instant::now();
    echo_once_each(&mut conns, parallel).await?;
    let echo_s = t1.elapsed().as_secs_f64();

    hold_until_released(hold).await;

    let t2 = Instant::now();
    stream::iter(conns)
        .map(|ws| close_quietly(ws, Duration::from_secs(5)))
        .buffer_unordered(parallel)
        .collect::<Vec<()>>()
        .await;
    let close_s = t2.elapsed().as_secs_f64();

    let mut r = Report::new("scale");
    r.int("connections", n as u64);
    r.num("open_s", open_s);
    r.num("opens_per_s", n as f64 / open_s);
    r.num("echo_all_s", echo_s);
    r.num("close_s", close_s);
    Ok(r)
}

/// Sends one short text message on every WebSocket (`parallel` at a time) and waits for
/// its echo: every program is running. The error counts the ones that did not echo.
pub(crate) async fn echo_once_each<S>(
    sockets: &mut [WebSocketStream<S>],
    parallel: usize,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let n = sockets.len();
    let ping = Utf8Bytes::from_static("x");
    let checks: Vec<Result<(), Error>> = stream::iter(sockets.iter_mut())
        .map(|ws| {
            let ping = ping.clone();
            async move {
                within(OP_TIMEOUT, "send", ws.send(Message::Text(ping))).await??;
                match within(OP_TIMEOUT, "waiting for the echo", recv(ws)).await?? {
                    Some(Message::Text(_)) => Ok(()),
                    Some(_) => Err(Error::new("expected a text echo")),
                    None => Err(Error::new("the server ended the connection")),
                }
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let failed: Vec<&Error> = checks.iter().filter_map(|c| c.as_ref().err()).collect();
    match failed.first() {
        None => Ok(()),
        Some(first) => Err(Error::new(format!(
            "{} of {n} sessions opened but did not echo (first: {first})",
            failed.len()
        ))),
    }
}

/// Says READY on stderr, then waits until stdin gets a line (or ends) or `hold` passes:
/// the runner measures the server meanwhile.
pub(crate) async fn hold_until_released(hold: Duration) {
    eprintln!("READY");
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        let _ = std::io::stdin().read(&mut byte);
        let _ = release.send(());
    });
    let _ = time::timeout(hold, released).await;
}

/// Each connection sends a timestamp `rate` times a second for `seconds`; reports the
/// round-trip distribution over all connections.
pub async fn sustained(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let connections = args.usize("connections", 50)?.max(1);
    let rate = args.f64("rate", 100.0)?;
    let seconds = args.f64("seconds", 10.0)?;
    args.finish()?;
    if rate <= 0.0 {
        return Err(Error::new("--rate must be > 0"));
    }

    let conns =
        future::try_join_all((0..connections).map(|_| connect(&url, small_config()))).await?;
    let base = Instant::now();
    let start = time::Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let period = Duration::from_secs_f64(1.0 / rate);
    let rtts = RefCell::new(Vec::new());
    let counts = future::try_join_all(conns.into_iter().enumerate().map(|(i, ws)| {
        // Spread the connections' ticks evenly over one period.
        let first = start + period.mul_f64(i as f64 / connections as f64);
        stamped(ws, first, period, end, base, &rtts)
    }))
    .await?;

    let (sent, received) = counts
        .iter()
        .fold((0, 0), |(s, r), (cs, cr)| (s + cs, r + cr));
    let mut samples = rtts.take();
    let mut r = Report::new("sustained");
    r.int("connections", connections as u64);
    r.num("rate", rate);
    r.num("seconds", seconds);
    r.int("sent", sent);
    r.int("received", received);
    r.num("msgs_per_s", received as f64 / seconds);
    latency_fields(&mut r, &mut samples, true, &[50.0, 95.0, 99.0]);
    Ok(r)
}

/// Sends timestamps from `first` every `period` until `end`, records round trips, then
/// waits (at most two seconds) for the outstanding echoes. Returns (sent, received).
async fn stamped(
    ws: Ws,
    first: time::Instant,
    period: Duration,
    end: time::Instant,
    base: Instant,
    rtts: &RefCell<Vec<u64>>,
) -> Result<(u64, u64), Error> {
    let (mut tx, mut rx) = ws.split();
    let sent = Cell::new(0u64);
    let received = Cell::new(0u64);
    let done = Cell::new(false);
    let last = Cell::new(Instant::now());
    let drain_end = end + Duration::from_secs(2);
    let finished =
        || done.get() && (received.get() == sent.get() || time::Instant::now() >= drain_end);

    let writer = async {
        let mut ticks = time::interval_at(first, period);
        loop {
            if ticks.tick().await >= end {
                break;
            }
            let stamp = nanos(base.elapsed()).to_string();
            within(OP_TIMEOUT, "send", tx.send(Message::text(stamp))).await??;
            sent.set(sent.get() + 1);
        }
        done.set(true);
        Ok::<(), Error>(())
    };
    let reader = async {
        loop {
            match recv(&mut rx).await? {
                Some(Message::Text(t)) => {
                    let now = nanos(base.elapsed());
                    let Ok(stamp) = t.as_str().parse::<u64>() else {
                        return Err(Error::new("an echo is not one of the timestamps sent"));
                    };
                    rtts.borrow_mut().push(now.saturating_sub(stamp));
                    received.set(received.get() + 1);
                    last.set(Instant::now());
                    if finished() {
                        return Ok(());
                    }
                }
                Some(_) => return Err(Error::new("expected text echoes")),
                None => return Err(Error::new("the server ended the connection")),
            }
        }
    };
    let last_ref = &last;
    let sent_ref = &sent;
    let received_ref = &received;
    let checked = race(reader, async move {
        loop {
            time::sleep(TICK).await;
            if finished() {
                return Ok(());
            }
            // Idle is fine while nothing is outstanding.
            if sent_ref.get() == received_ref.get() {
                last_ref.set(Instant::now());
            } else if last_ref.get().elapsed() > OP_TIMEOUT {
                return Err(Error::new("sustained: no echo for 10 s"));
            }
        }
    });
    future::try_join(writer, checked).await?;
    close_quietly_split(tx).await;
    Ok((sent.get(), received.get()))
}

/// Upstream's slow-consumer shape: one connection offers `rate` messages a second (in
/// bursts every 10 ms) for `seconds`, then waits `drain` seconds; counts the echoes.
pub async fn backpressure(args: &Args) -> Result<Report, Error> {
    let url = args.url()?;
    let rate = args.f64("rate", 1000.0)?;
    let seconds = args.f64("seconds", 10.0)?;
    let drain = args.f64("drain", 5.0)?;
    args.finish()?;

    let ws = connect(&url, WebSocketConfig::default()).await?;
    let (mut tx, mut rx) = ws.split();
    let base = Instant::now();
    let start = time::Instant::now();
    let send_end = start + Duration::from_secs_f64(seconds);
    let drain_end = send_end + Duration::from_secs_f64(drain);
    let sent = Cell::new(0u64);
    let blocked = Cell::new(false);
    let rtts = RefCell::new(Vec::new());
    let last_echo = Cell::new(None::<Instant>);
    let tick = Duration::from_millis(10);

    let writer = async {
        let mut ticks = time::interval_at(start, tick);
        let mut k: u64 = 0;
        loop {
            if ticks.tick().await >= send_end {
                break;
            }
            // Spread `rate` per second over 100 ticks, also when it is not a multiple.
            let due = |k: u64| (rate * k as f64 / 100.0).floor() as u64;
            let n = due(k + 1) - due(k);
            k += 1;
            let stamp = Utf8Bytes::from(nanos(base.elapsed()).to_string());
            for _ in 0..n {
                tx.feed(Message::Text(stamp.clone())).await?;
            }
            match time::timeout_at(send_end, tx.flush()).await {
                Ok(r) => r?,
                Err(_) => {
                    blocked.set(true);
                    break;
                }
            }
            sent.set(sent.get() + n);
        }
        Ok::<(), Error>(())
    };
    let writer = async {
        // The sending phase is bounded; if the server stopped reading so that a write
        // blocks, it ends at `send_end` all the same.
        match time::timeout_at(send_end + Duration::from_millis(100), writer).await {
            Ok(r) => r,
            Err(_) => {
                blocked.set(true);
                Ok(())
            }
        }
    };
    let reader = async {
        let recv_all = async {
            loop {
                match recv(&mut rx).await? {
                    Some(Message::Text(t)) => {
                        let now = nanos(base.elapsed());
                        let Ok(stamp) = t.as_str().parse::<u64>() else {
                            return Err(Error::new("an echo is not one of the timestamps sent"));
                        };
                        rtts.borrow_mut().push(now.saturating_sub(stamp));
                        last_echo.set(Some(Instant::now()));
                    }
                    Some(_) => return Err(Error::new("expected text echoes")),
                    None => return Err(Error::new("the server ended the connection")),
                }
            }
        };
        race(recv_all, async {
            time::sleep_until(drain_end).await;
            Ok(())
        })
        .await
    };
    future::try_join(writer, reader).await?;
    close_quietly_split(tx).await;

    let mut samples = rtts.take();
    let received = samples.len() as u64;
    let sent = sent.get();
    let mut r = Report::new("backpressure");
    r.num("rate", rate);
    r.num("seconds", seconds);
    r.num("drain", drain);
    r.int("offered", (rate * seconds).round() as u64);
    r.int("sent", sent);
    r.int("received", received);
    r.boolean("send_blocked", blocked.get());
    // When the last echo came, from the start: shows whether echoes kept flowing.
    r.opt_num(
        "last_echo_s",
        last_echo.get().map(|t| (t - base).as_secs_f64()),
    );
    r.opt_num(
        "delivery_ratio",
        (sent > 0).then(|| received as f64 / sent as f64),
    );
    latency_fields(&mut r, &mut samples, true, &[50.0, 99.0]);
    Ok(r)
}
