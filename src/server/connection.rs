//! Serving one accepted connection: the TLS handshake when configured, then HTTP/1.1 with
//! upgrades or HTTP/2 (told apart by the connection preface), on any byte stream (TCP or
//! Unix socket).

use super::h2::Http2;
use super::preface::{self, Opening};
use super::proxy_protocol;
use super::tls::Certificates;
use crate::environment::Peer;
use crate::logging::{self, Level};
use crate::router;
use crate::state::AppState;
use crate::ws::Connection;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};

/// How long a client may take to send its request headers (and to finish TLS).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request header block accepted (larger gets 431).
const MAX_HEADER_BYTES: usize = (1 << 20) + 4096;
/// Most header lines accepted: all that the HTTP library's header map can hold (it panics
/// beyond 24,576 entries). Go has no count limit below its 1 MiB size limit; requests with
/// more lines than this get 431 (see docs/differences.md).
const MAX_HEADERS: usize = 24_576;

/// Everything needed to serve a connection, cloned into each connection's task.
#[derive(Clone)]
pub struct Served {
    /// Shared server state.
    pub state: Arc<AppState>,
    certificates: Option<Arc<Certificates>>,
    builder: Arc<http1::Builder>,
    /// HTTP/2, unless `--http2=false`.
    http2: Option<Arc<Http2>>,
}

impl Served {
    /// Serving state for every listener.
    pub fn new(state: Arc<AppState>, certificates: Option<Arc<Certificates>>) -> Served {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .title_case_headers(true)
            .max_buf_size(MAX_HEADER_BYTES)
            .max_headers(MAX_HEADERS);
        let http2 = state.config.http2.then(|| {
            let limit = u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX);
            // An idle HTTP/1.1 connection is closed when no request head arrives in time.
            Arc::new(Http2::new(limit, HEADER_TIMEOUT))
        });
        Served {
            state,
            certificates,
            builder: Arc::new(builder),
            http2,
        }
    }

    /// Serves one connection until it closes. A trusted proxy (`--trustproxy`) may open it
    /// with a PROXY protocol header naming the client.
    pub async fn serve<S>(self, stream: S, peer: Peer)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let accepted = Instant::now();
        if !self.state.config.trust_proxy.trusts(&peer) {
            return self.serve_stream(stream, peer, accepted).await;
        }
        let from = shown(&peer);
        match tokio::time::timeout(HEADER_TIMEOUT, proxy_protocol::accept(stream, peer)).await {
            Ok(Ok((stream, peer))) => self.serve_stream(stream, peer, accepted).await,
            Ok(Err(why)) => logging::server(
                Level::Error,
                &format!("Bad PROXY protocol header from {from}: {why}"),
            ),
            Err(_) => logging::server(
                Level::Error,
                &format!("PROXY protocol header from {from} timed out"),
            ),
        }
    }

    async fn serve_stream<S>(self, stream: S, peer: Peer, accepted: Instant)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match self.certificates.as_ref().map(|c| c.acceptor()) {
            None => self.serve_http(stream, peer, false, accepted).await,
            Some(acceptor) => {
                match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => self.serve_http(tls, peer, true, accepted).await,
                    Ok(Err(err)) => tls_handshake_failed(&peer, &err.to_string()),
                    Err(_) => tls_handshake_failed(&peer, "handshake timed out"),
                }
            }
        }
    }

    async fn serve_http<S>(self, stream: S, peer: Peer, tls: bool, accepted: Instant)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let refused_peer = peer.clone();
        let connection = Arc::new(Connection {
            peer,
            tls,
            accepted,
        });
        let state = self.state.clone();
        let route = move |request| router::route(request, state.clone(), connection.clone());
        let (opening, stream) = match &self.http2 {
            None => (Opening::Http1, preface::untouched(stream)),
            Some(_) => match tokio::time::timeout(HEADER_TIMEOUT, preface::sniff(stream)).await {
                Ok(sniffed) => sniffed,
                Err(_) => return,
            },
        };
        match (opening, &self.http2) {
            (Opening::Closed, _) => {}
            (Opening::Http2, Some(http2)) => {
                let shutdown = self.state.shutdown.clone();
                http2.serve(stream, route, shutdown).await;
            }
            _ => {
                let service = service_fn(move |request| {
                    let answer = route(request);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let served = self
                    .builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
                if let Err(err) = served {
                    super::refused::log_if_refused(&refused_peer, &err);
                }
            }
        }
    }
}

/// The peer as Go shows a remote address: `ip:port`, `[ip]:port`, or `@` on a Unix socket.
fn shown(peer: &Peer) -> String {
    match peer {
        Peer::Tcp { ip, port } if ip.contains(':') => format!("[{ip}]:{}", port.unwrap_or(0)),
        Peer::Tcp { ip, port } => format!("{ip}:{}", port.unwrap_or(0)),
        Peer::Unix => "@".to_string(),
    }
}

/// A failed TLS handshake goes to stderr, in the runtime-message style upstream uses.
fn tls_handshake_failed(peer: &Peer, why: &str) {
    let from = shown(peer);
    let now = chrono::Local::now().format("%Y/%m/%d %H:%M:%S");
    eprintln!("{now} http: TLS handshake error from {from}: {why}");
}
