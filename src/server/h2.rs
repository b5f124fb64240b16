//! HTTP/2 connections: the settings every connection announces (extended CONNECT for
//! WebSockets, stream limits, flow-control windows sized so one stalled stream cannot stall
//! the others) and serving one connection until it ends or the server shuts down.

use hyper::body::{Body as HttpBody, Incoming};
use hyper::server::conn::http2;
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// Most streams (requests and WebSockets) open at once on one connection. RFC 9113 asks
/// for at least 100; more streams than this wait for a free one on the client's side.
pub const MAX_STREAMS: u32 = 100;

/// How many bytes a client may send on one stream before the server reads them: the most
/// a program that does not read its input can leave waiting per WebSocket. Large enough for
/// full-speed transfers on a low-latency link (256 KiB in flight per round trip).
pub const STREAM_WINDOW: u32 = 256 * 1024;

/// How many bytes a client may send on the whole connection before the server reads them:
/// every stream's window at once, so streams whose programs stopped reading can never use
/// up the window the others need.
pub const CONNECTION_WINDOW: u32 = MAX_STREAMS * STREAM_WINDOW;

/// Streams a client may open and reset before the server has even looked at them
/// (the "rapid reset" attack, CVE-2023-44487); past this the connection is closed with
/// GOAWAY `ENHANCE_YOUR_CALM`. The h2 library's own default, stated here so it stays on.
const MAX_PENDING_RESETS: usize = 20;

/// Streams the server may reset for a client's protocol errors before closing the
/// connection (the same attack, provoking resets instead of sending them).
const MAX_ERROR_RESETS: usize = 1024;

/// The HTTP/2 side of serving connections, built once.
#[derive(Clone)]
pub struct Http2 {
    builder: http2::Builder<TokioExecutor>,
}

impl Http2 {
    /// The settings every HTTP/2 connection uses; `max_header_bytes` is the same limit on a
    /// request's header block as HTTP/1 has. A header block sent in more CONTINUATION
    /// frames than that size needs closes the connection (the CONTINUATION flood,
    /// CVE-2024-27316 and kin): the h2 library enforces it from this size.
    pub fn new(max_header_bytes: u32) -> Http2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .enable_connect_protocol()
            .max_concurrent_streams(MAX_STREAMS)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(max_header_bytes)
            .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
            .max_local_error_reset_streams(MAX_ERROR_RESETS);
        Http2 { builder }
    }

    /// Serves one connection whose preface is already known to be HTTP/2. On shutdown the
    /// client is sent GOAWAY: no new streams, while open ones (WebSocket sessions closing
    /// with 1001) finish.
    pub async fn serve<S, Svc>(&self, io: S, service: Svc, mut shutdown: watch::Receiver<bool>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        Svc: HttpService<Incoming> + Send + 'static,
        Svc::Future: Send + 'static,
        Svc::ResBody: HttpBody + Send + 'static,
        <Svc::ResBody as HttpBody>::Data: Send,
        <Svc::ResBody as HttpBody>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let connection = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = shutdown.wait_for(|stopping| *stopping) => {}
        }
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}
