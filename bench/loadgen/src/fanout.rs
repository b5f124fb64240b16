//! Broadcast scenarios: many receiving connections on one shared program.
//!
//! The receivers do not use a WebSocket library: after a hand-made opening handshake each
//! connection's bytes are parsed as unmasked server frames, so one client thread can take
//! in millions of small messages a second (it must outrun the server it measures). Every
//! line the program prints starts with a 12-digit sequence number and a 20-digit
//! nanosecond wall-clock timestamp, which give the loss and the write-to-receive latency.
//! Connections are spread over several 127.0.0.x source addresses so that tens of
//! thousands fit in the ephemeral port range.

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time;

use crate::args::Args;
use crate::report::Report;
use crate::util::{mean, percentile, within, Error, CONNECT_TIMEOUT};

/// Bytes read from a socket at a time (one buffer shared by every connection).
const READ_SIZE: usize = 256 * 1024;

/// Connects `n` clients, `parallel` at a time, over `sources` source addresses.
async fn connect_all(
    target: SocketAddr,
    path: &str,
    n: usize,
    parallel: usize,
    sources: usize,
) -> Result<Vec<TcpStream>, Error> {
    stream::iter(0..n)
        .map(|i| {
            let source = Ipv4Addr::new(127, 0, 0, 1 + (i % sources.max(1)) as u8);
            upgrade(target, path, source)
        })
        .buffer_unordered(parallel.max(1))
        .try_collect()
        .await
}

/// TCP connect from `source`, then the opening handshake; the socket is returned right
/// after the 101 response.
async fn upgrade(target: SocketAddr, path: &str, source: Ipv4Addr) -> Result<TcpStream, Error> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let mut tcp = within(CONNECT_TIMEOUT, "TCP connect", socket.connect(target))
        .await?
        .map_err(|e| Error::from(e).context("TCP connect"))?;
    tcp.set_nodelay(true)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    // Read the response head byte by byte so no frame byte is consumed with it.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    within(CONNECT_TIMEOUT, "WebSocket handshake", async {
        while !head.ends_with(b"\r\n\r\n") {
            if tcp.read(&mut byte).await? == 0 {
                return Err(Error::new("connection closed during the handshake"));
            }
            head.push(byte[0]);
            if head.len() > 8192 {
                return Err(Error::new("handshake response too long"));
            }
        }
        Ok(())
    })
    .await??;
    if !head.starts_with(b"HTTP/1.1 101") {
        let line = String::from_utf8_lossy(&head);
        return Err(Error::new(format!(
            "upgrade refused: {}",
            line.lines().next().unwrap_or("")
        )));
    }
    Ok(tcp)
}

fn target_of(args: &Args) -> Result<(SocketAddr, String), Error> {
    let url = args.url()?;
    let target: SocketAddr = url
        .authority
        .parse()
        .map_err(|_| Error::new("--url must name an IPv4 address and port"))?;
    let path = url
        .full
        .splitn(4, '/')
        .nth(3)
        .map_or("/".to_string(), |p| format!("/{p}"));
    Ok((target, path))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What every receiver adds to.
#[derive(Default)]
struct Tally {
    /// Messages received inside the measurement window.
    messages: Cell<u64>,
    /// Messages the sequence numbers show were never received (inside the window).
    lost: Cell<u64>,
    /// Connections that ended (a close frame or end of stream) before the window closed.
    ended: Cell<u64>,
    /// Latency samples in nanoseconds (every `sample_every`-th message).
    samples: RefCell<Vec<u64>>,
    first_message: Cell<Option<Instant>>,
    seen: Cell<u64>,
}

/// The per-connection state of a receiver.
struct Receiver {
    carry: Vec<u8>,
    next_seq: Option<u64>,
}

/// The measurement window, set once the first message has arrived.
struct Window {
    warmup: Duration,
    length: Duration,
}

impl Window {
    /// Whether `now` is inside the window; `None` when it is over.
    fn inside(&self, tally: &Tally, now: Instant) -> Option<bool> {
        let first = tally.first_message.get()?;
        let start = first + self.warmup;
        if now >= start + self.length {
            None
        } else {
            Some(now >= start)
        }
    }
}

/// Reads frames until the window closes or the connection ends.
async fn receive(
    tcp: TcpStream,
    shared: &RefCell<Vec<u8>>,
    tally: &Tally,
    window: &Window,
    sample_every: u64,
) -> Result<(), Error> {
    let mut me = Receiver {
        carry: Vec::new(),
        next_seq: None,
    };
    loop {
        if tally.first_message.get().is_some() && window.inside(tally, Instant::now()).is_none() {
            return Ok(());
        }
        let readable = time::timeout(Duration::from_millis(200), tcp.readable()).await;
        if readable.is_err() {
            continue;
        }
        let mut buf = shared.borrow_mut();
        let carried = me.carry.len();
        buf[..carried].copy_from_slice(&me.carry);
        let n = match tcp.try_read(&mut buf[carried..]) {
            Ok(0) => {
                tally.ended.set(tally.ended.get() + 1);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        };
        let data = &buf[..carried + n];
        let now = Instant::now();
        if tally.first_message.get().is_none() {
            tally.first_message.set(Some(now));
        }
        let inside = window.inside(tally, now).unwrap_or(false);
        let wall = now_ns();
        let mut at = 0;
        while let Some((opcode, start, end)) = frame_at(data, at) {
            at = end;
            match opcode {
                0x1 | 0x2 => {
                    let payload = &data[start..end];
                    let seq = digits(payload.get(0..12));
                    let stamp = digits(payload.get(13..33));
                    if inside {
                        tally.messages.set(tally.messages.get() + 1);
                        if let (Some(seq), Some(expected)) = (seq, me.next_seq) {
                            if seq > expected {
                                tally.lost.set(tally.lost.get() + (seq - expected));
                            }
                        }
                        let seen = tally.seen.get() + 1;
                        tally.seen.set(seen);
                        if seen % sample_every == 0 {
                            if let Some(stamp) = stamp {
                                tally.samples.borrow_mut().push(wall.saturating_sub(stamp));
                            }
                        }
                    }
                    if let Some(seq) = seq {
                        me.next_seq = Some(seq + 1);
                    }
                }
                0x8 => {
                    tally.ended.set(tally.ended.get() + 1);
                    return Ok(());
                }
                _ => {}
            }
        }
        me.carry.clear();
        me.carry.extend_from_slice(&data[at..]);
        if me.carry.capacity() > 4096 && me.carry.len() < 1024 {
            me.carry.shrink_to(1024);
        }
    }
}

/// The frame starting at `at`: (opcode, payload start, payload end), if it is complete.
fn frame_at(data: &[u8], at: usize) -> Option<(u8, usize, usize)> {
    let head = data.get(at..at + 2)?;
    let opcode = head[0] & 0x0f;
    let (len, header) = match head[1] & 0x7f {
        126 => {
            let b = data.get(at + 2..at + 4)?;
            (u16::from_be_bytes([b[0], b[1]]) as usize, 4)
        }
        127 => {
            let b = data.get(at + 2..at + 10)?;
            let mut eight = [0u8; 8];
            eight.copy_from_slice(b);
            (u64::from_be_bytes(eight) as usize, 10)
        }
        short => (short as usize, 2),
    };
    let start = at + header;
    let end = start.checked_add(len)?;
    (end <= data.len()).then_some((opcode, start, end))
}

fn digits(bytes: Option<&[u8]>) -> Option<u64> {
    let bytes = bytes?;
    let mut value: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// Waits for a line on stdin (the runner's "go"), without blocking the runtime.
async fn wait_stdin() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        let _ = std::io::stdin().read(&mut byte);
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// `fanout`: N receivers on one shared program; READY on stderr once all are connected
/// (the runner then lets the program start), then counts what arrives for `--seconds`
/// after `--warmup` seconds.
pub async fn fanout(args: &Args) -> Result<Report, Error> {
    let (target, path) = target_of(args)?;
    let n = args.usize("connections", 100)?;
    let parallel = args.usize("parallel", 200)?;
    let sources = args.usize("sources", 1)?.clamp(1, 250);
    let seconds = args.f64("seconds", 5.0)?;
    let warmup = args.f64("warmup", 1.0)?;
    args.finish()?;

    let t0 = Instant::now();
    let conns = connect_all(target, &path, n, parallel, sources).await?;
    let open_s = t0.elapsed().as_secs_f64();
    eprintln!("READY");

    let tally = Tally::default();
    let window = Window {
        warmup: Duration::from_secs_f64(warmup),
        length: Duration::from_secs_f64(seconds),
    };
    // About two million latency samples at most, whatever the rate.
    let sample_every = (n as u64 / 4).max(1);
    let shared = RefCell::new(vec![0u8; READ_SIZE + 64 * 1024]);
    let results: Vec<Result<(), Error>> = stream::iter(conns)
        .map(|tcp| receive(tcp, &shared, &tally, &window, sample_every))
        .buffer_unordered(n.max(1))
        .collect()
        .await;
    if let Some(Err(first)) = results.into_iter().find(Result::is_err) {
        return Err(first.context("receive"));
    }
    if tally.first_message.get().is_none() {
        return Err(Error::new("no message arrived"));
    }
    let mut samples = tally.samples.take();
    samples.sort_unstable();
    let mut r = Report::new("fanout");
    r.int("connections", n as u64);
    r.num("open_s", open_s);
    r.num("msgs_per_s", tally.messages.get() as f64 / seconds);
    r.num(
        "per_client_msgs_per_s",
        tally.messages.get() as f64 / seconds / n as f64,
    );
    let delivered = tally.messages.get() + tally.lost.get();
    r.num(
        "lost_pct",
        if delivered == 0 {
            0.0
        } else {
            100.0 * tally.lost.get() as f64 / delivered as f64
        },
    );
    r.int("ended", tally.ended.get());
    r.opt_num(
        "p50_ms",
        percentile(&samples, 50.0).map(|ns| ns as f64 / 1e6),
    );
    r.opt_num(
        "p99_ms",
        percentile(&samples, 99.0).map(|ns| ns as f64 / 1e6),
    );
    r.opt_num("mean_ms", mean(&samples).map(|ns| ns / 1e6));
    r.int("latency_samples", samples.len() as u64);
    Ok(r)
}

/// `idle`: N connections that only listen; READY on stderr once all are open, then held
/// until a line on stdin or `--hold-seconds`. Reports the time to open them all.
pub async fn idle(args: &Args) -> Result<Report, Error> {
    let (target, path) = target_of(args)?;
    let n = args.usize("connections", 10_000)?;
    let parallel = args.usize("parallel", 200)?;
    let sources = args.usize("sources", 1)?.clamp(1, 250);
    let hold = Duration::from_secs_f64(args.f64("hold-seconds", 60.0)?);
    args.finish()?;

    let t0 = Instant::now();
    let conns = connect_all(target, &path, n, parallel, sources).await?;
    let open_s = t0.elapsed().as_secs_f64();
    eprintln!("READY");
    let _ = time::timeout(hold, wait_stdin()).await;
    // Still connected: a socket the server closed reads end of stream at once.
    let mut alive = 0u64;
    let mut probe = [0u8; 1024];
    for tcp in &conns {
        match tcp.try_read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => alive += 1,
            Ok(n) if n > 0 => alive += 1,
            _ => {}
        }
    }
    drop(conns);
    let mut r = Report::new("idle");
    r.int("connections", n as u64);
    r.num("open_s", open_s);
    r.num("opens_per_s", n as f64 / open_s);
    r.int("alive_at_end", alive);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_digits() {
        let mut data = vec![0x81, 5];
        data.extend_from_slice(b"hello");
        data.extend_from_slice(&[0x81, 126, 0, 200]);
        data.extend_from_slice(&[b'7'; 200]);
        data.extend_from_slice(&[0x88, 2, 3]);
        assert_eq!(frame_at(&data, 0), Some((1, 2, 7)));
        assert_eq!(frame_at(&data, 7), Some((1, 11, 211)));
        assert_eq!(frame_at(&data, 211), None, "incomplete");
        assert_eq!(digits(Some(b"000000000042")), Some(42));
        assert_eq!(digits(Some(b"12x")), None);
        assert_eq!(digits(None), None);
    }
}
