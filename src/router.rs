//! Request routing, the top of the request flow and the only module that knows every
//! handler: Go-compatible request checks and path normalisation first, then the WebSocket
//! upgrade, then plain HTTP content (console, CGI, static files), then 404.

use crate::auth;
use crate::http::response::{self, add_headers, full, Body};
use crate::http::{path, static_files};
use crate::logging::Scope;
use crate::metrics::{self, Handler};
use crate::state::AppState;
use crate::ws::{self, handshake, Connection, UpgradeRequest};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, HOST};
use hyper::{Method, Request, Response, StatusCode, Version};
use std::sync::Arc;

/// Answers one HTTP request.
pub async fn route(
    request: Request<Incoming>,
    state: Arc<AppState>,
    connection: Arc<Connection>,
) -> Response<Body> {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    if request.uri().path() == "*" {
        let status = if request.method() == Method::OPTIONS {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        let mut response = Response::new(response::empty());
        *response.status_mut() = status;
        return response;
    }
    let host = match request.headers().get(HOST) {
        Some(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        None => match request.uri().authority() {
            Some(authority) => authority.to_string(),
            None if request.version() == Version::HTTP_11 => {
                return bad_request("400 Bad Request: missing required Host header");
            }
            None => String::new(),
        },
    };
    let Some(decoded) = path::decode(request.uri().path()) else {
        return bad_request("400 Bad Request");
    };
    let canonical = path::canonical(&decoded);
    if canonical != decoded {
        let mut location = path::escape(&canonical);
        if let Some(query) = request.uri().query() {
            location.push('?');
            location.push_str(query);
        }
        let method = request.method();
        return response::moved(&location, method == Method::GET, method == Method::HEAD);
    }

    let connection = behind_proxy(&state, connection, request.headers());
    let scheme = if connection.tls { "https" } else { "http" };
    let mut scope = Scope::new();
    scope.associate("url", format!("{scheme}://{host}{target}"));
    if request.version() == Version::HTTP_2 {
        scope.associate("protocol", "HTTP/2".to_string());
    }

    let config = &state.config;
    if config.launch.is_some() && handshake::wants_websocket(&request) {
        let upgrade = UpgradeRequest {
            request,
            host,
            path: decoded,
        };
        let response = ws::upgrade(upgrade, &state, &connection, scope).await;
        metrics::upgrade_answered(response.status().as_u16(), connection.accepted);
        return response;
    }

    let checked = auth::HttpRequest {
        request: &request,
        peer: &connection.peer,
        tls: connection.tls,
        host: &host,
        path: &decoded,
    };
    let mut response = match auth::admit_request(&state, &checked, &scope).await {
        Err(refusal) => refusal,
        Ok(()) => {
            serve_content(
                request,
                &state,
                &connection,
                &mut scope,
                &host,
                &target,
                &decoded,
            )
            .await
        }
    };
    add_headers(
        &mut response,
        config.headers.all.iter().chain(&config.headers.http),
        false,
    );
    response
}

/// Plain HTTP: the developer console, else a CGI script, else a static file, else 404.
async fn serve_content(
    request: Request<Incoming>,
    state: &Arc<AppState>,
    connection: &Connection,
    scope: &mut Scope,
    host: &str,
    target: &str,
    path: &[u8],
) -> Response<Body> {
    let config = &state.config;
    if config.dev_console {
        scope.access("http", "DEVCONSOLE");
        return counted(
            Handler::Console,
            crate::devconsole::serve(
                request.method(),
                request.headers(),
                host,
                target,
                connection.tls,
                state.started,
            ),
        );
    }
    let mut request = request;
    if let Some(cgi_dir) = &config.cgi_dir {
        let context = crate::cgi::CgiContext {
            peer: &connection.peer,
            tls: connection.tls,
            passenv: &config.passenv,
            forks: &state.forks,
        };
        match crate::cgi::serve(cgi_dir, request, path, &context, scope).await {
            crate::cgi::CgiOutcome::Response(response) => return counted(Handler::Cgi, response),
            crate::cgi::CgiOutcome::NotCgi(unused) => request = unused,
        }
    }
    if let Some(static_dir) = &config.static_dir {
        scope.access("http", "STATIC");
        let response = static_files::serve(
            static_dir,
            request.method(),
            request.headers(),
            path,
            request.uri().query(),
        )
        .await;
        return counted(Handler::Static, response);
    }
    scope.access("http", "NOT FOUND");
    counted(Handler::None, crate::hints::not_found(request.headers()))
}

/// Counts a plain HTTP answer in the metrics and passes it on.
fn counted(handler: Handler, response: Response<Body>) -> Response<Body> {
    metrics::http_answered(handler, response.status().as_u16());
    response
}

/// The connection as the client made it: from a trusted proxy, the client address and
/// scheme it reports (`--trustproxy`); otherwise the connection itself.
fn behind_proxy(
    state: &AppState,
    connection: Arc<Connection>,
    headers: &hyper::HeaderMap,
) -> Arc<Connection> {
    let reported = crate::forwarded::client(
        &state.config.trust_proxy,
        &connection.peer,
        connection.tls,
        headers,
    );
    match reported {
        Some(client) => Arc::new(Connection {
            peer: client.peer,
            tls: client.tls,
            accepted: connection.accepted,
        }),
        None => connection,
    }
}

/// A 400 answered the way Go's server does: plain text, then the connection is closed.
fn bad_request(text: &str) -> Response<Body> {
    let mut response = Response::new(full(text.to_string()));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
