//! HTTP/2 connections: the settings every connection announces (extended CONNECT for
//! WebSockets, stream limits, flow-control windows sized so one stalled stream cannot stall
//! the others) and serving one connection until it ends, the server shuts down, or it has
//! been idle (nothing open) as long as an idle HTTP/1.1 connection may be.

use crate::http::open_streams::{HeldBody, OpenStreams};
use crate::http::response::Body;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;
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
    idle_timeout: Duration,
}

impl Http2 {
    /// The settings every HTTP/2 connection uses; `max_header_bytes` is the same limit on a
    /// request's header block as HTTP/1 has. A header block sent in more CONTINUATION
    /// frames than that size needs closes the connection (the CONTINUATION flood,
    /// CVE-2024-27316 and kin): the h2 library enforces it from this size. A connection with
    /// nothing open for `idle_timeout` is closed, as an idle HTTP/1.1 connection is.
    pub fn new(max_header_bytes: u32, idle_timeout: Duration) -> Http2 {
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
        Http2 {
            builder,
            idle_timeout,
        }
    }

    /// Serves one connection whose preface is already known to be HTTP/2, answering each
    /// request with `route`. The client is sent GOAWAY (no new streams, while open ones
    /// finish) when the server shuts down (WebSocket sessions then close with 1001), and
    /// when no request and no WebSocket session has been open on the connection for the
    /// idle timeout; a connection carrying a WebSocket session is never idle.
    pub async fn serve<S, F, Fut>(&self, io: S, route: F, mut shutdown: watch::Receiver<bool>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        F: Fn(Request<Incoming>) -> Fut + Send + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let streams = OpenStreams::default();
        let mut open = streams.watch();
        let service = service_fn(move |mut request: Request<Incoming>| {
            let held = streams.hold();
            // A WebSocket session takes this copy, and holds it until it ends.
            request.extensions_mut().insert(held.clone());
            let answer = route(request);
            async move {
                let response = answer.await;
                Ok::<_, Infallible>(
                    response.map(|body| http_body_util::BodyExt::boxed(HeldBody::new(body, held))),
                )
            }
        });
        let connection = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = shutdown.wait_for(|stopping| *stopping) => {}
            () = idle_for(&mut open, self.idle_timeout) => {}
        }
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}

/// Returns once nothing has been open for `timeout` (never while something is).
async fn idle_for(open: &mut watch::Receiver<usize>, timeout: Duration) {
    loop {
        let busy = *open.borrow_and_update() > 0;
        if busy {
            if open.changed().await.is_err() {
                return std::future::pending().await;
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(timeout) => return,
            changed = open.changed() => {
                if changed.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}
