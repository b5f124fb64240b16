//! `--redirport`: a plain-HTTP listener per address that sends every request to the main
//! port with a 301, keeping the path and query (works with bracketed IPv6 too).

use crate::http::response::{moved, Body};
use hyper::header::HOST;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The redirect listener's own limits (upstream: 10 s to read, 10 s to write).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where redirects point.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The main port.
    pub port: u16,
}

/// Accepts connections on `listener` until shutdown and redirects every request.
pub async fn serve(listener: TcpListener, target: Target, mut shutdown: watch::Receiver<bool>) {
    let target = Arc::new(target);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(TIMEOUT)
        .title_case_headers(true);
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let local = stream.local_addr().ok();
        let target = target.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = redirect(&request, &target, local);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(TIMEOUT * 6, connection).await;
        });
    }
}

/// The 301 for one request.
fn redirect(
    request: &Request<hyper::body::Incoming>,
    target: &Target,
    local: Option<SocketAddr>,
) -> Response<Body> {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let name = host_name(&host).unwrap_or_else(|| match local {
        Some(SocketAddr::V6(v6)) => format!("[{}]", v6.ip()),
        Some(SocketAddr::V4(v4)) => v4.ip().to_string(),
        None => "localhost".to_string(),
    });
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("{}://{}:{}{}", target.scheme, name, target.port, path);
    let method = request.method();
    moved(&location, method == Method::GET, method == Method::HEAD)
}

/// The host part of a Host header, IPv6 kept in brackets; `None` when there is none.
fn host_name(host: &str) -> Option<String> {
    if host.is_empty() {
        return None;
    }
    match crate::hostport::split(host) {
        Ok((name, _)) if name.contains(':') => Some(format!("[{name}]")),
        Ok((name, _)) if !name.is_empty() => Some(name.to_string()),
        Ok(_) => None,
        Err(_) => Some(host.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn host_names() {
        assert_eq!(
            host_name("example.com:8081").as_deref(),
            Some("example.com")
        );
        assert_eq!(host_name("example.com").as_deref(), Some("example.com"));
        assert_eq!(host_name("[::1]:8081").as_deref(), Some("[::1]"));
        assert_eq!(host_name("[::1]").as_deref(), Some("[::1]"));
        assert_eq!(host_name(""), None);
        assert_eq!(host_name(":80"), None);
    }
}
