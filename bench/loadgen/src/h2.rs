//! WebSockets over HTTP/2 (RFC 8441) for the `h2-*` scenarios: one HTTP/2 connection (TLS
//! with ALPN `h2` for `wss://`, prior knowledge for `ws://`) carries many WebSocket
//! streams, each opened with an extended CONNECT and framed by tungstenite.

use std::time::Instant;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use h2::client::SendRequest;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::args::Args;
use crate::h2io::StreamIo;
use crate::report::Report;
use crate::scenarios::{echo_once_each, hold_until_released, session_cycles, small_config};
use crate::tls::{Conn, Tls};
use crate::util::{
    close_and_wait, close_quietly, recv, within, Error, Url, CONNECT_TIMEOUT, OP_TIMEOUT,
};

/// A WebSocket on one HTTP/2 stream.
type H2Ws = WebSocketStream<StreamIo>;

/// One HTTP/2 connection, driven by a task of its own.
struct H2 {
    send: SendRequest<Bytes>,
    uri: String,
}

impl H2 {
    /// Opens the connection and waits for the server's settings.
    async fn connect(url: &Url) -> Result<H2, Error> {
        let tcp = within(
            CONNECT_TIMEOUT,
            "TCP connect",
            TcpStream::connect(url.authority.as_str()),
        )
        .await??;
        tcp.set_nodelay(true)?;
        let stream = match &url.tls {
            None => Conn::Plain(tcp),
            Some(tls) => {
                let conn = within(CONNECT_TIMEOUT, "TLS handshake", tls.handshake(tcp)).await??;
                if !Tls::is_h2(&conn) {
                    return Err(Error::new("the server did not choose h2 by ALPN"));
                }
                conn
            }
        };
        let (send, connection) = within(
            CONNECT_TIMEOUT,
            "HTTP/2 handshake",
            h2::client::Builder::new()
                .initial_window_size(1 << 20)
                .initial_connection_window_size(16 << 20)
                .handshake::<_, Bytes>(stream),
        )
        .await??;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let scheme = if url.secure { "https" } else { "http" };
        let path = url.full.splitn(4, '/').nth(3).unwrap_or_default();
        let mut h2 = H2 {
            send,
            uri: format!("{scheme}://{}/{path}", url.authority),
        };
        // The server's SETTINGS (with ENABLE_CONNECT_PROTOCOL) come before its first answer.
        let probe = http::Request::options("*").body(()).map_err(Error::from)?;
        let mut ready = h2.send.clone().ready().await?;
        let (response, _) = ready.send_request(probe, true)?;
        within(OP_TIMEOUT, "the first HTTP/2 answer", response).await??;
        if !h2.send.is_extended_connect_protocol_enabled() {
            return Err(Error::new("the server does not offer extended CONNECT"));
        }
        h2.uri.shrink_to_fit();
        Ok(h2)
    }

    /// Opens a WebSocket on a new stream.
    async fn open(&self) -> Result<H2Ws, Error> {
        let request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(self.uri.as_str())
            .extension(h2::ext::Protocol::from_static("websocket"))
            .header("sec-websocket-version", "13")
            .body(())
            .map_err(Error::from)?;
        let mut ready = within(OP_TIMEOUT, "a free stream", self.send.clone().ready()).await??;
        let (response, send) = ready.send_request(request, false)?;
        let response = within(OP_TIMEOUT, "the CONNECT answer", response).await??;
        if response.status() != http::StatusCode::OK {
            return Err(Error::new(format!(
                "CONNECT answered {}",
                response.status()
            )));
        }
        let io = StreamIo::new(send, response.into_body());
        Ok(WebSocketStream::from_raw_socket(io, Role::Client, Some(small_config())).await)
    }
}

/// Sessions opened one after another (or `--concurrency` at a time) on one HTTP/2
/// connection that exists before the clock starts: each opens a stream, receives the
/// program's line and closes.
pub async fn handshake(args: &Args) -> Result<Report, Error> {
    let url = args.h2_url()?;
    let concurrency = args.usize("concurrency", 1)?.max(1);
    let count = args.usize("count", 1000)?;
    args.finish()?;

    let h2 = &H2::connect(&url).await?;
    session_cycles("h2-handshake", concurrency, count, || async move {
        let mut ws = h2.open().await?;
        match within(OP_TIMEOUT, "waiting for the program's line", recv(&mut ws)).await?? {
            Some(Message::Text(_)) => {}
            Some(_) => return Err(Error::new("expected a text message")),
            None => return Err(Error::new("stream ended before the program's line")),
        }
        close_and_wait(ws, OP_TIMEOUT).await
    })
    .await
}

/// `--connections` sessions, `--streams` to an HTTP/2 connection: open them, check each
/// echoes once, hold them until released (stdin) or `--hold-seconds`, close.
pub async fn scale(args: &Args) -> Result<Report, Error> {
    let url = args.h2_url()?;
    let n = args.usize("connections", 1000)?;
    let streams = args.usize("streams", 100)?.max(1);
    let parallel = args.usize("parallel", 100)?.max(1);
    let hold = std::time::Duration::from_secs_f64(args.f64("hold-seconds", 60.0)?);
    args.finish()?;

    let t0 = Instant::now();
    let mut connections = Vec::new();
    for _ in 0..n.div_ceil(streams) {
        connections.push(H2::connect(&url).await?);
    }
    let connections = &connections;
    let mut sessions: Vec<H2Ws> = stream::iter(0..n)
        .map(|i| connections[i / streams].open())
        .buffer_unordered(parallel)
        .try_collect()
        .await?;
    let open_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    echo_once_each(&mut sessions, parallel).await?;
    let echo_s = t1.elapsed().as_secs_f64();

    hold_until_released(hold).await;

    let t2 = Instant::now();
    stream::iter(sessions)
        .map(|ws| close_quietly(ws, std::time::Duration::from_secs(5)))
        .buffer_unordered(parallel)
        .collect::<Vec<()>>()
        .await;
    let mut r = Report::new("h2-scale");
    r.int("connections", n as u64);
    r.int("http2_connections", connections.len() as u64);
    r.num("open_s", open_s);
    r.num("opens_per_s", n as f64 / open_s);
    r.num("echo_all_s", echo_s);
    r.num("close_s", t2.elapsed().as_secs_f64());
    Ok(r)
}
