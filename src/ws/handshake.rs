//! The WebSocket opening handshake: HTTP/1.1 upgrades (RFC 6455 §4.2) and HTTP/2 extended
//! CONNECT (RFC 8441 §4): which requests ask for a WebSocket, the checks in upstream's order
//! with their status codes, and the 101 or 200 response.

use super::origin::{OriginPolicy, Verdict};
use crate::config::CustomHeaders;
use crate::http::response::{add_headers, empty, plain, Body};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

/// Whether a request asks for a WebSocket, by either handshake.
pub fn wants_websocket<B>(request: &Request<B>) -> bool {
    is_upgrade(request.headers()) || is_extended_connect(request)
}

/// Whether a request is an HTTP/2 extended CONNECT for a WebSocket: method CONNECT with
/// the `:protocol` pseudo-header `websocket`.
pub fn is_extended_connect<B>(request: &Request<B>) -> bool {
    request.method() == Method::CONNECT
        && request
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|protocol| protocol.as_str().eq_ignore_ascii_case("websocket"))
}

/// Whether a request asks for a WebSocket: `Upgrade: websocket` (the whole value, any
/// case) and an `upgrade` token in `Connection`.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(hyper::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    upgrade
        && headers
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| has_token_word(v.as_bytes(), b"upgrade"))
}

/// `token` appears in `value` delimited by the start/end, commas or whitespace.
fn has_token_word(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',' || b.is_ascii_whitespace())
        .any(|word| word.eq_ignore_ascii_case(token))
}

/// Whether any value of header `name`, as a comma list, contains `token`.
fn list_contains(headers: &HeaderMap, name: &str, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// A refused handshake: the status to answer and the text for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// The reason, as the access log prints it after `Unable to Upgrade: `.
    pub reason: String,
    /// The origin policy's own reason, logged before the refusal.
    pub origin_reason: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, reason: &str) -> Refusal {
        Refusal {
            status,
            reason: reason.to_string(),
            origin_reason: None,
        }
    }

    /// The error response: the status text and a newline, and the supported version.
    pub fn response(&self) -> Response<Body> {
        let mut response = plain(self.status, self.status.canonical_reason().unwrap_or(""));
        response
            .headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        response
    }
}

/// The request facts the checks need.
#[derive(Debug)]
pub struct HandshakeRequest<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The Host header (empty when absent).
    pub host: &'a str,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// An HTTP/2 extended CONNECT rather than an HTTP/1.1 upgrade.
    pub extended_connect: bool,
}

/// A handshake that passed every check, with what its success response needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// An HTTP/1.1 upgrade, answered 101 with this `Sec-WebSocket-Accept` value.
    Upgrade(String),
    /// An HTTP/2 extended CONNECT, answered 200 (the stream then carries the WebSocket).
    Connect,
}

impl Accepted {
    /// The success response, with `--header` and `--header-ws` values.
    pub fn response(&self, custom: &CustomHeaders) -> Response<Body> {
        match self {
            Accepted::Upgrade(accept) => switching_protocols(accept, custom),
            Accepted::Connect => {
                let mut response = Response::new(empty());
                add_headers(&mut response, custom.all.iter().chain(&custom.ws), true);
                response
            }
        }
    }
}

/// Runs the checks in upstream's order. An extended CONNECT has no `Connection`,
/// `Upgrade` or key headers to check (RFC 8441 §4) and its method was already checked, so
/// it goes through the version, extension and origin checks only.
pub fn validate(
    request: &HandshakeRequest<'_>,
    origin: &OriginPolicy,
    custom: &CustomHeaders,
) -> Result<Accepted, Refusal> {
    const NOT_WS: &str = "websocket: the client is not using the websocket protocol: ";
    let headers = request.headers;
    let upgrade = !request.extended_connect;
    if upgrade && !list_contains(headers, "connection", "upgrade") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            &format!("{NOT_WS}'upgrade' token not found in 'Connection' header"),
        ));
    }
    if upgrade && !list_contains(headers, "upgrade", "websocket") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            &format!("{NOT_WS}'websocket' token not found in 'Upgrade' header"),
        ));
    }
    if upgrade && request.method != Method::GET {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{NOT_WS}request method is not GET"),
        ));
    }
    if !list_contains(headers, "sec-websocket-version", "13") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
        ));
    }
    let forces_extensions = custom
        .all
        .iter()
        .chain(&custom.ws)
        .any(|h| h.name == "sec-websocket-extensions");
    if forces_extensions {
        return Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "websocket: application specific 'Sec-WebSocket-Extensions' headers are unsupported",
        ));
    }
    let origin_header = headers
        .get(hyper::header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if let Verdict::Refused(why) = origin.check(origin_header, request.host, request.tls) {
        let mut refusal = Refusal::new(
            StatusCode::FORBIDDEN,
            "websocket: request origin not allowed by Upgrader.CheckOrigin",
        );
        refusal.origin_reason = Some(why);
        return Err(refusal);
    }
    if !upgrade {
        return Ok(Accepted::Connect);
    }
    let key = headers
        .get("sec-websocket-key")
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if decoded_len(key.trim_ascii()) != Some(16) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be Base64 encoded value of 16-byte length",
        ));
    }
    Ok(Accepted::Upgrade(accept_key(key.trim_ascii())))
}

/// `Sec-WebSocket-Accept` for a client key (RFC 6455 section 4.2.2).
fn accept_key(key: &[u8]) -> String {
    use sha1::Digest;
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut sha = sha1::Sha1::new();
    sha.update(key);
    sha.update(GUID);
    data_encoding::BASE64.encode(&sha.finalize())
}

/// The 101 response: protocol headers, then `--header` and `--header-ws` values.
fn switching_protocols(accept: &str, custom: &CustomHeaders) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(value) = HeaderValue::from_str(accept) {
        headers.insert("sec-websocket-accept", value);
    }
    add_headers(&mut response, custom.all.iter().chain(&custom.ws), true);
    response
}

/// The length of standard, padded base64 `text` once decoded; `None` if it is not base64.
/// Public for the fuzz target that compares it with an independent decoder.
pub fn decoded_len(text: &[u8]) -> Option<usize> {
    if text.is_empty() || !text.len().is_multiple_of(4) {
        return None;
    }
    let padding = text.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return None;
    }
    let body = &text[..text.len() - padding];
    if !body
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return None;
    }
    // The bits after the last whole byte must be zero (strict decoding).
    let last = body.last().copied().map(sextet)?;
    let unused_bits_zero = match padding {
        1 => last & 0b11 == 0,
        2 => last & 0b1111 == 0,
        _ => true,
    };
    unused_bits_zero.then_some(text.len() / 4 * 3 - padding)
}

fn sextet(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        _ => 63,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    const GOOD: &[(&str, &str)] = &[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn check(
        pairs: &[(&'static str, &'static str)],
        method: Method,
    ) -> Result<Accepted, StatusCode> {
        let headers = request_headers(pairs);
        let request = HandshakeRequest {
            method: &method,
            headers: &headers,
            host: "h",
            tls: false,
            extended_connect: method == Method::CONNECT,
        };
        validate(
            &request,
            &OriginPolicy::default(),
            &CustomHeaders::default(),
        )
        .map_err(|r| r.status)
    }

    #[test]
    fn rfc_example_accept_key() {
        assert_eq!(
            check(GOOD, Method::GET),
            Ok(Accepted::Upgrade(
                "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_string()
            ))
        );
    }

    #[test]
    fn extended_connect_needs_only_the_version() {
        let version = &[("sec-websocket-version", "13")];
        assert_eq!(check(version, Method::CONNECT), Ok(Accepted::Connect));
        let old = &[("sec-websocket-version", "8")];
        assert_eq!(check(old, Method::CONNECT), Err(StatusCode::BAD_REQUEST));
        assert_eq!(check(&[], Method::CONNECT), Err(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn extended_connect_detection() {
        let connect = |protocol: Option<&str>| {
            let mut request = Request::builder().method(Method::CONNECT);
            if let Some(protocol) = protocol {
                request = request.extension(hyper::ext::Protocol::from(protocol));
            }
            request
                .body(())
                .map(|r| is_extended_connect(&r))
                .unwrap_or(false)
        };
        assert!(connect(Some("websocket")));
        assert!(!connect(Some("webtransport")));
        assert!(!connect(None));
    }

    #[test]
    fn refusals_in_order() {
        assert_eq!(
            check(GOOD, Method::POST),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        let mut v8 = GOOD.to_vec();
        v8[2] = ("sec-websocket-version", "8");
        assert_eq!(check(&v8, Method::GET), Err(StatusCode::BAD_REQUEST));
        let mut bad_key = GOOD.to_vec();
        bad_key[3] = ("sec-websocket-key", "short");
        assert_eq!(check(&bad_key, Method::GET), Err(StatusCode::BAD_REQUEST));
        let no_key = &GOOD[..3];
        assert_eq!(check(no_key, Method::GET), Err(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn upgrade_detection() {
        assert!(is_upgrade(&request_headers(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade")
        ])));
        assert!(!is_upgrade(&request_headers(&[
            ("upgrade", "websocket, foo"),
            ("connection", "upgrade")
        ])));
        assert!(!is_upgrade(&request_headers(&[
            ("upgrade", "websocket"),
            ("connection", "upgraded")
        ])));
    }

    #[test]
    fn base64_lengths() {
        assert_eq!(decoded_len(b"dGhlIHNhbXBsZSBub25jZQ=="), Some(16));
        assert_eq!(decoded_len(b"AAAAAAAAAAAAAAAAAAAAAA=="), Some(16));
        assert_eq!(decoded_len(b"AAAAAAAAAAAAAAAAAAAAAB=="), None);
        assert_eq!(decoded_len(b"AAAA"), Some(3));
        assert_eq!(decoded_len(b"AA*A"), None);
        assert_eq!(decoded_len(b""), None);
    }
}
