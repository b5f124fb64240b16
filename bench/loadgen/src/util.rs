//! Errors, deadlines, connecting, receiving, percentiles and CPU time.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::tls::{Conn, Tls};

pub type Ws = WebSocketStream<Conn>;

/// Longest wait for a TCP connect or for the opening handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for any single send or receive that should complete promptly.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure, described for a person; rendered into the report's `error` field.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }

    pub fn context(self, what: &str) -> Error {
        Error(format!("{what}: {}", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Error {
        Error(e.to_string())
    }
}

/// Runs `fut`, failing with a message naming `what` if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> Result<F::Output, Error> {
    tokio::time::timeout(limit, fut).await.map_err(|_| {
        Error::new(format!(
            "{what}: nothing within {:.1} s",
            limit.as_secs_f64()
        ))
    })
}

/// A `ws://host:port/path` or `wss://host:port/path` URL, split enough to open the TCP
/// connection ourselves. A `wss://` URL needs TLS settings (`with_ca`) before use.
#[derive(Clone)]
pub struct Url {
    pub full: String,
    pub authority: String,
    /// The host without the port (and without brackets for an IPv6 address).
    pub host: String,
    pub secure: bool,
    pub tls: Option<Tls>,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, Error> {
        let (secure, rest) = match (s.strip_prefix("ws://"), s.strip_prefix("wss://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => {
                return Err(Error::new(format!(
                    "--url must start with ws:// or wss://, got {s:?}"
                )))
            }
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => host,
            _ => return Err(Error::new(format!("--url needs host:port, got {s:?}"))),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let full = if rest.contains('/') {
            s.to_string()
        } else {
            format!("{s}/")
        };
        Ok(Url {
            full,
            authority: authority.to_string(),
            host: host.to_string(),
            secure,
            tls: None,
        })
    }

    /// Adds the TLS client settings: `ca` (a PEM file with the CA certificates to trust)
    /// is required for `wss://` and refused for `ws://`.
    pub fn with_ca(self, ca: Option<&str>) -> Result<Url, Error> {
        self.with_ca_alpn(ca, &[])
    }

    /// Like [`Url::with_ca`], the TLS client offering the ALPN protocols `alpn`.
    pub fn with_ca_alpn(mut self, ca: Option<&str>, alpn: &[&[u8]]) -> Result<Url, Error> {
        match (self.secure, ca) {
            (true, Some(ca)) => self.tls = Some(Tls::new(ca, &self.host, alpn)?),
            (true, None) => return Err(Error::new("a wss:// --url needs --ca FILE")),
            (false, Some(_)) => return Err(Error::new("--ca is only for wss:// URLs")),
            (false, None) => {}
        }
        Ok(self)
    }
}

/// Opens a TCP connection (no Nagle delay), for `wss://` performs the TLS handshake, then
/// the opening handshake.
pub async fn connect(url: &Url, config: WebSocketConfig) -> Result<Ws, Error> {
    let tcp = within(
        CONNECT_TIMEOUT,
        "TCP connect",
        TcpStream::connect(url.authority.as_str()),
    )
    .await?
    .map_err(|e| Error::from(e).context("TCP connect"))?;
    tcp.set_nodelay(true)?;
    let stream = match (&url.tls, url.secure) {
        (None, false) => Conn::Plain(tcp),
        (Some(tls), true) => within(CONNECT_TIMEOUT, "TLS handshake", tls.handshake(tcp))
            .await?
            .map_err(|e| Error::from(e).context("TLS handshake"))?,
        _ => {
            return Err(Error::new(
                "wss:// needs TLS settings, ws:// must not have them",
            ))
        }
    };
    let (ws, _response) = within(
        CONNECT_TIMEOUT,
        "WebSocket handshake",
        tokio_tungstenite::client_async_with_config(url.full.as_str(), stream, Some(config)),
    )
    .await?
    .map_err(|e| Error::from(e).context("WebSocket handshake"))?;
    Ok(ws)
}

/// The next data message (text or binary), or `None` once the connection has ended:
/// a close frame, end of stream, or TCP (or TLS) closed without a close frame (websocketd
/// 0.4.1 ends connections that way when its program exits). Pings and pongs are skipped.
pub async fn recv<S>(rx: &mut S) -> Result<Option<Message>, Error>
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    loop {
        match rx.next().await {
            None => return Ok(None),
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return Ok(Some(m)),
            Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(_)) => continue,
            Some(Err(e)) if is_end(&e) => return Ok(None),
            Some(Err(e)) => return Err(Error::from(e).context("receive")),
        }
    }
}

fn is_end(e: &WsError) -> bool {
    match e {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => true,
        // TLS: the TCP connection ended without a close_notify alert.
        WsError::Io(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => false,
    }
}

/// Sends a close frame and waits (at most `limit`) for the server to end the connection.
/// Errors are ignored: the server may already have gone.
pub async fn close_quietly<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    limit: Duration,
) {
    let _ = tokio::time::timeout(limit, async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Sends a close frame and waits for the server to end the connection; an error if it
/// does not within `limit`.
pub async fn close_and_wait<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    limit: Duration,
) -> Result<(), Error> {
    within(limit, "closing handshake", async {
        let _ = ws.send(Message::Close(None)).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await
}

/// Exact percentile by nearest rank over sorted samples: the smallest sample with at
/// least `p` percent of all samples at or below it.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub fn mean(samples: &[u64]) -> Option<f64> {
    if samples.is_empty() {
        None
    } else {
        Some(samples.iter().map(|&s| s as f64).sum::<f64>() / samples.len() as f64)
    }
}

/// Nanoseconds to milliseconds, for reports.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// User + system CPU seconds used by this process so far, from /proc/self/stat
/// (utime and stime, in the kernel's fixed 100 Hz USER_HZ units). NaN if unreadable.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let Some((_, after)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) => (u + s) as f64 / 100.0,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        let w = [10, 20, 30];
        assert_eq!(percentile(&w, 50.0), Some(20));
        assert_eq!(percentile(&w, 95.0), Some(30));
    }

    #[test]
    fn urls() {
        let u = Url::parse("ws://127.0.0.1:8080").unwrap();
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.full, "ws://127.0.0.1:8080/");
        let u = Url::parse("ws://127.0.0.1:8080/a/b?c").unwrap();
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.full, "ws://127.0.0.1:8080/a/b?c");
        assert!(!u.secure);
        let u = Url::parse("wss://127.0.0.1:8443").unwrap();
        assert!(u.secure);
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.full, "wss://127.0.0.1:8443/");
        assert_eq!(Url::parse("ws://[::1]:80/").unwrap().host, "::1");
        assert!(Url::parse("http://x:1/").is_err());
        assert!(Url::parse("ws://x/").is_err());
        assert!(Url::parse("ws://x:y/").is_err());
        assert!(Url::parse("wss://x:1/").unwrap().with_ca(None).is_err());
        assert!(Url::parse("ws://x:1/")
            .unwrap()
            .with_ca(Some("ca.pem"))
            .is_err());
    }

    #[test]
    fn cpu_time_is_readable() {
        assert!(cpu_seconds() >= 0.0);
    }
}
