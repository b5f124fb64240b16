//! The environment of a CGI script (RFC 3875 §4.1, as Go's CGI host builds it): request
//! and server meta-variables, one `HTTP_*` variable per request header, `PATH`, and the
//! `--passenv` variables. Nothing else of the daemon's environment reaches the script.

use crate::environment::{header_variable, sanitize, version_string, Peer};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST};
use hyper::HeaderMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// `PATH` when `--passenv` does not pass one (Go's CGI host fallback).
pub const FALLBACK_PATH: &str = "/bin:/usr/bin:/usr/ucb:/usr/bsd:/usr/local/bin";

/// The request facts the CGI environment is made of.
#[derive(Debug)]
pub struct CgiRequest<'a> {
    /// `GET`, `POST` ...
    pub method: &'a str,
    /// The Host header (or the authority of an absolute request target), empty when absent.
    pub host: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// The request target's path and query as sent.
    pub request_uri: &'a str,
    /// The decoded URL path.
    pub path: &'a [u8],
    /// The script: the CGI directory joined with the path.
    pub script: &'a Path,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The client.
    pub peer: &'a Peer,
    /// Whether the connection uses TLS.
    pub tls: bool,
    /// The `--passenv` snapshot.
    pub passenv: &'a [(String, OsString)],
}

/// `SERVER_PORT`: the digits after the last `:` of the Host header when that is where it
/// ends, else 443 with TLS and 80 without.
pub fn server_port(host: &str, tls: bool) -> &str {
    if let Some((_, port)) = host.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return port;
        }
    }
    if tls {
        "443"
    } else {
        "80"
    }
}

/// Builds the script's environment. The `--passenv` variables come last and win over the
/// variables of the same name set before them (a passed `PATH` replaces the fallback), as
/// in upstream. Every value is sanitised (CR/LF → space, trimmed).
pub fn build(request: &CgiRequest<'_>) -> Vec<(String, OsString)> {
    let mut env = Env::default();
    env.set(
        "SERVER_SOFTWARE",
        format!("websocketd/{}", version_string()).as_bytes(),
    );
    env.set("SERVER_NAME", request.host.as_bytes());
    env.set("SERVER_PROTOCOL", b"HTTP/1.1");
    env.set("HTTP_HOST", request.host.as_bytes());
    env.set("GATEWAY_INTERFACE", b"CGI/1.1");
    env.set("REQUEST_METHOD", request.method.as_bytes());
    env.set("QUERY_STRING", request.query.as_bytes());
    env.set("REQUEST_URI", request.request_uri.as_bytes());
    env.set("PATH_INFO", request.path);
    env.set("SCRIPT_NAME", b"/");
    env.set("SCRIPT_FILENAME", request.script.as_os_str().as_bytes());
    env.set(
        "SERVER_PORT",
        server_port(request.host, request.tls).as_bytes(),
    );
    match request.peer {
        Peer::Tcp { ip, port } => {
            env.set("REMOTE_ADDR", ip.as_bytes());
            env.set("REMOTE_HOST", ip.as_bytes());
            if let Some(port) = port {
                env.set("REMOTE_PORT", port.to_string().as_bytes());
            }
        }
        Peer::Unix => {
            env.set("REMOTE_ADDR", b"unix-socket");
            env.set("REMOTE_HOST", b"unix-socket");
        }
    }
    if request.tls {
        env.set("HTTPS", b"on");
    }
    for name in request.headers.keys() {
        // Host is given as HTTP_HOST above; Proxy would let a client set HTTP_PROXY
        // for the script's own outgoing requests ("httpoxy").
        if name == HOST || name.as_str() == "proxy" {
            continue;
        }
        let separator: &[u8] = if name == COOKIE { b"; " } else { b", " };
        let mut joined = Vec::new();
        for (i, value) in request.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                joined.extend_from_slice(separator);
            }
            joined.extend_from_slice(value.as_bytes());
        }
        env.set(&header_variable(name.as_str()), &joined);
    }
    let length = request
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|&length| length > 0);
    if let Some(length) = length {
        env.set("CONTENT_LENGTH", length.to_string().as_bytes());
    }
    if let Some(kind) = request.headers.get(CONTENT_TYPE) {
        if !kind.is_empty() {
            env.set("CONTENT_TYPE", kind.as_bytes());
        }
    }
    env.set("PATH", FALLBACK_PATH.as_bytes());
    for (name, value) in request.passenv {
        env.set(name, value.as_encoded_bytes());
    }
    env.vars
}

/// An environment under construction: setting a name again replaces its value in place.
#[derive(Default)]
struct Env {
    vars: Vec<(String, OsString)>,
}

impl Env {
    fn set(&mut self, name: &str, value: &[u8]) {
        let value = OsString::from_vec(sanitize(value));
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(existing) => existing.1 = value,
            None => self.vars.push((name.to_string(), value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn value<'a>(env: &'a [(String, OsString)], name: &str) -> Option<&'a str> {
        env.iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.to_str())
    }

    fn build_with(
        headers: &HeaderMap,
        peer: &Peer,
        tls: bool,
        passenv: &[(String, OsString)],
    ) -> Vec<(String, OsString)> {
        build(&CgiRequest {
            method: "POST",
            host: "example.com:8080",
            query: "a=1&b=%20",
            request_uri: "/env.cgi?a=1&b=%20",
            path: b"/env.cgi",
            script: Path::new("cgi/env.cgi"),
            headers,
            peer,
            tls,
            passenv,
        })
    }

    #[test]
    fn standard_variables() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("example.com:8080"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("12"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let peer = Peer::Tcp {
            ip: "::1".into(),
            port: Some(4242),
        };
        let env = build_with(&headers, &peer, false, &[]);
        let expect = [
            ("SERVER_NAME", "example.com:8080"),
            ("HTTP_HOST", "example.com:8080"),
            ("SERVER_PORT", "8080"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REQUEST_METHOD", "POST"),
            ("QUERY_STRING", "a=1&b=%20"),
            ("REQUEST_URI", "/env.cgi?a=1&b=%20"),
            ("PATH_INFO", "/env.cgi"),
            ("SCRIPT_NAME", "/"),
            ("SCRIPT_FILENAME", "cgi/env.cgi"),
            ("REMOTE_ADDR", "::1"),
            ("REMOTE_HOST", "::1"),
            ("REMOTE_PORT", "4242"),
            ("CONTENT_LENGTH", "12"),
            ("CONTENT_TYPE", "text/plain"),
            ("HTTP_CONTENT_TYPE", "text/plain"),
            ("PATH", FALLBACK_PATH),
        ];
        for (name, expected) in expect {
            assert_eq!(value(&env, name), Some(expected), "{name}");
        }
        let software = value(&env, "SERVER_SOFTWARE").unwrap();
        assert_eq!(software, format!("websocketd/{}", version_string()).trim());
        assert_eq!(value(&env, "HTTPS"), None);
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        for name in &names {
            assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name}");
        }
        assert!(!names.contains(&"PATH_TRANSLATED"));
    }

    #[test]
    fn headers_cookie_and_proxy() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1"));
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        headers.append("x-multi", HeaderValue::from_static("one"));
        headers.append("x-multi", HeaderValue::from_static("two"));
        headers.insert("x-padded", HeaderValue::from_static("  v  "));
        headers.insert("proxy", HeaderValue::from_static("http://evil/"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let peer = Peer::Unix;
        let env = build_with(&headers, &peer, true, &[]);
        assert_eq!(value(&env, "HTTP_COOKIE"), Some("a=1; b=2"));
        assert_eq!(value(&env, "HTTP_X_MULTI"), Some("one, two"));
        assert_eq!(value(&env, "HTTP_X_PADDED"), Some("v"));
        assert_eq!(value(&env, "HTTP_PROXY"), None);
        assert_eq!(value(&env, "CONTENT_LENGTH"), None);
        assert_eq!(value(&env, "CONTENT_TYPE"), None);
        assert_eq!(value(&env, "HTTPS"), Some("on"));
        assert_eq!(value(&env, "REMOTE_ADDR"), Some("unix-socket"));
        assert_eq!(value(&env, "REMOTE_HOST"), Some("unix-socket"));
        assert_eq!(value(&env, "REMOTE_PORT"), None);
    }

    #[test]
    fn passenv_comes_last() {
        let headers = HeaderMap::new();
        let peer = Peer::Tcp {
            ip: "127.0.0.1".into(),
            port: Some(1),
        };
        let passenv = vec![
            ("PATH".to_string(), OsString::from("/opt/bin")),
            ("LD_LIBRARY_PATH".to_string(), OsString::from("/opt/lib")),
            ("SERVER_SOFTWARE".to_string(), OsString::from("mine")),
        ];
        let env = build_with(&headers, &peer, false, &passenv);
        assert_eq!(value(&env, "PATH"), Some("/opt/bin"));
        assert_eq!(value(&env, "LD_LIBRARY_PATH"), Some("/opt/lib"));
        assert_eq!(value(&env, "SERVER_SOFTWARE"), Some("mine"));
    }

    #[test]
    fn server_port_rules() {
        assert_eq!(server_port("example.com:8080", false), "8080");
        assert_eq!(server_port("example.com:8080", true), "8080");
        assert_eq!(server_port("example.com", false), "80");
        assert_eq!(server_port("example.com", true), "443");
        assert_eq!(server_port("[::1]:9000", false), "9000");
        assert_eq!(server_port("[::1]", true), "443");
        assert_eq!(server_port("host:", false), "80");
        assert_eq!(server_port("host:8a", false), "80");
        assert_eq!(server_port("", false), "80");
    }
}
