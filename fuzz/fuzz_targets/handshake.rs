//! The WebSocket handshake checks on arbitrary header sets, and the Sec-WebSocket-Key
//! decoding. Properties: the key check agrees with an independent strict base64 decoder;
//! an accepted handshake had every required header and yields a 28-character accept key;
//! `is_upgrade` never holds without both Upgrade and Connection headers.
#![no_main]

use base64::Engine;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Method;
use libfuzzer_sys::fuzz_target;
use websocketd::config::CustomHeaders;
use websocketd::ws::handshake::{self, Accepted, HandshakeRequest};
use websocketd::ws::origin::OriginPolicy;

const NAMES: [&str; 6] = [
    "connection",
    "upgrade",
    "sec-websocket-version",
    "sec-websocket-key",
    "origin",
    "host",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // The key check alone, against the oracle (an empty key is refused, whatever its
    // decoding).
    if !rest.is_empty() {
        let oracle = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .map(|decoded| decoded.len());
        assert_eq!(handshake::decoded_len(rest), oracle, "{rest:?}");
    } else {
        assert_eq!(handshake::decoded_len(rest), None);
    }

    // A header set: lines of `index value`, the index picking a known header name.
    let mut headers = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        let Some((&index, value)) = line.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[usize::from(index) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    // Bit 3 makes it an HTTP/2 extended CONNECT (RFC 8441) instead of an HTTP/1.1 upgrade.
    let extended_connect = selector & 8 != 0;
    let method = match (extended_connect, selector & 1 == 0) {
        (true, _) => Method::CONNECT,
        (false, true) => Method::GET,
        (false, false) => Method::POST,
    };
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let policy = OriginPolicy::new(selector & 2 != 0, None);
    let request = HandshakeRequest {
        method: &method,
        headers: &headers,
        host: &host,
        tls: selector & 4 != 0,
        extended_connect,
    };
    if handshake::is_upgrade(&headers) {
        assert!(headers.contains_key("upgrade") && headers.contains_key("connection"));
    }
    match handshake::validate(&request, &policy, &CustomHeaders::default()) {
        Ok(Accepted::Connect) => assert!(extended_connect, "a 200 only for extended CONNECT"),
        Ok(Accepted::Upgrade(accept)) => {
            assert!(!extended_connect);
            assert_eq!(method, Method::GET);
            assert_eq!(accept.len(), 28);
            let key = headers
                .get("sec-websocket-key")
                .expect("accepted with a key");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(key.as_bytes().trim_ascii())
                .expect("accepted key is base64");
            assert_eq!(decoded.len(), 16);
        }
        Err(refusal) => {
            assert!(refusal.status.is_client_error() || refusal.status.is_server_error());
            assert!(!refusal.reason.is_empty());
        }
    }
});
