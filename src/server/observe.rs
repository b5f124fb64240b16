//! `--metrics=HOST:PORT`: a plain-HTTP listener of its own for monitoring, apart from the
//! WebSocket listeners so it can stay private: `/metrics` (the counters of
//! [`crate::metrics`] in the OpenMetrics text format that Prometheus scrapes) and
//! `/healthz` (200 while serving, 503 from the moment graceful shutdown starts, so a load
//! balancer stops sending new clients while sessions are being closed). It keeps answering
//! until the process exits.

use crate::http::response::{full, plain, Body};
use crate::logging::{self, Level};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a scraper may take to send its request, and to be served.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The media type of the text `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Turns metrics on and binds the listener for a `HOST:PORT` already checked by the
/// command line.
pub async fn start(address: &str) -> Result<TcpListener, String> {
    let (host, port) = address.rsplit_once(':').unwrap_or((address, ""));
    let port = port.parse::<i64>().unwrap_or(-1);
    let listener = super::listen::bind_tcp(host, port).await?;
    crate::metrics::enable();
    logging::server(
        Level::Info,
        &format!("Serving metrics and health  : http://{address}/metrics, /healthz"),
    );
    Ok(listener)
}

/// Turns metrics on for a listener systemd passed (a socket named `metrics`).
pub fn adopt(listener: TcpListener) -> TcpListener {
    crate::metrics::enable();
    if let Ok(address) = listener.local_addr() {
        logging::server(
            Level::Info,
            &format!("Serving metrics and health  : http://{address}/metrics, /healthz"),
        );
    }
    listener
}

/// Answers monitoring requests on `listener` until the process exits.
pub async fn serve(listener: TcpListener, shutdown: watch::Receiver<bool>) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(TIMEOUT);
    let builder = Arc::new(builder);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = answer(&request, *shutdown.borrow());
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(TIMEOUT * 6, connection).await;
        });
    }
}

fn answer<B>(request: &Request<B>, shutting_down: bool) -> Response<Body> {
    let path = request.uri().path();
    if path != "/metrics" && path != "/healthz" {
        return plain(StatusCode::NOT_FOUND, "404 page not found");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = if path == "/healthz" {
        if shutting_down {
            plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
        } else {
            plain(StatusCode::OK, "ok")
        }
    } else {
        let mut response = Response::new(full(crate::metrics::encode().unwrap_or_default()));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
        response
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
