//! The CGI-style environment a WebSocket program receives (`SERVER_*`, `REMOTE_*`,
//! `HTTP_*` ...), and nothing else of the daemon's own environment.

use crate::hostport;
use hyper::HeaderMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// `SERVER_SOFTWARE` and the `--version` text: `0.5.0 (rustc 1.95.0 linux-x86_64)`. Go ends it
/// with a dangling ` --`; we do not.
pub fn version_string() -> String {
    format!(
        "{} (rustc {} {}-{})",
        env!("CARGO_PKG_VERSION"),
        env!("WEBSOCKETD_RUSTC_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Where the connection comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client.
    Tcp {
        /// IP address without brackets.
        ip: String,
        /// Source port; `None` when a proxy reported the address without it.
        port: Option<u16>,
    },
    /// A client on the Unix socket.
    Unix,
}

/// The request facts the environment is made of.
#[derive(Debug)]
pub struct RequestFacts<'a> {
    /// Client address.
    pub peer: &'a Peer,
    /// `REMOTE_HOST` (the address, or its reverse-DNS name).
    pub remote_host: &'a str,
    /// The Host header (empty when absent).
    pub host: &'a str,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub protocol: &'a str,
    /// The decoded URL path.
    pub path: &'a [u8],
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// The request target's path and query as sent.
    pub request_uri: &'a str,
    /// `SCRIPT_NAME`.
    pub script_name: &'a [u8],
    /// `PATH_INFO`.
    pub path_info: &'a [u8],
    /// `UNIQUE_ID`.
    pub unique_id: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

/// Settings from the command line that shape the environment.
#[derive(Debug)]
pub struct EnvSettings<'a> {
    /// `--passenv` snapshot.
    pub passenv: &'a [(String, OsString)],
    /// `--ssl`.
    pub tls: bool,
}

/// One environment entry, and which group it came from (for the DEBUG dump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Variable name.
    pub name: String,
    /// Sanitised value.
    pub value: OsString,
    /// Which group the entry belongs to.
    pub origin: EntryOrigin,
}

/// The groups of the DEBUG environment dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryOrigin {
    /// websocketd's own variables.
    Standard,
    /// From `--passenv`.
    Parent,
    /// From a request header.
    Header,
}

/// Replaces CR and LF with spaces and trims surrounding whitespace.
pub fn sanitize(value: &[u8]) -> Vec<u8> {
    let replaced: Vec<u8> = value
        .iter()
        .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
        .collect();
    let start = replaced
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != 0x0b)
        .unwrap_or(replaced.len());
    let end = replaced
        .iter()
        .rposition(|b| !b.is_ascii_whitespace() && *b != 0x0b)
        .map_or(start, |i| i + 1);
    replaced[start..end].to_vec()
}

/// Builds the environment in upstream's order; when a name repeats, the later value wins.
pub fn build(facts: &RequestFacts<'_>, settings: &EnvSettings<'_>) -> Vec<Entry> {
    let mut env = Vec::with_capacity(32 + facts.headers.len());
    server_software_and_passenv(&mut env, settings);
    let mut push =
        |name: &str, value: &[u8], origin: EntryOrigin| put(&mut env, name, value, origin);
    let (remote_addr, remote_port) = match facts.peer {
        Peer::Tcp { ip, port } => (ip.as_str(), port.map(|p| p.to_string()).unwrap_or_default()),
        Peer::Unix => ("unix-socket", String::new()),
    };
    let default_port = if settings.tls { "443" } else { "80" };
    let (server_name, server_port) =
        hostport::with_default(facts.host, default_port).unwrap_or(("", ""));
    let standard: [(&str, &[u8]); 18] = [
        ("REMOTE_ADDR", remote_addr.as_bytes()),
        ("REMOTE_HOST", facts.remote_host.as_bytes()),
        ("SERVER_NAME", server_name.as_bytes()),
        ("SERVER_PORT", server_port.as_bytes()),
        ("SERVER_PROTOCOL", facts.protocol.as_bytes()),
        ("GATEWAY_INTERFACE", b"CGI/1.1"),
        ("REQUEST_METHOD", b"GET"),
        ("SCRIPT_NAME", facts.script_name),
        ("PATH_INFO", facts.path_info),
        ("PATH_TRANSLATED", facts.path),
        ("QUERY_STRING", facts.query.as_bytes()),
        ("AUTH_TYPE", b""),
        ("CONTENT_LENGTH", b""),
        ("CONTENT_TYPE", b""),
        ("REMOTE_IDENT", b""),
        ("REMOTE_USER", b""),
        ("UNIQUE_ID", facts.unique_id.as_bytes()),
        ("REMOTE_PORT", remote_port.as_bytes()),
    ];
    for (name, value) in standard {
        push(name, value, EntryOrigin::Standard);
    }
    push(
        "REQUEST_URI",
        facts.request_uri.as_bytes(),
        EntryOrigin::Standard,
    );
    if settings.tls {
        push("HTTPS", b"on", EntryOrigin::Standard);
    }
    for name in facts.headers.keys() {
        if name == hyper::header::HOST {
            continue;
        }
        let mut joined = Vec::new();
        for (i, value) in facts.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(value.as_bytes());
        }
        let var = header_variable(name.as_str());
        push(&var, &joined, EntryOrigin::Header);
    }
    env
}

/// Sets `name` to `value` as one of websocketd's own variables, replacing any earlier
/// entry of that name (a `--passenv` or header one).
pub fn set(env: &mut Vec<Entry>, name: &str, value: &str) {
    env.retain(|entry| entry.name != name);
    env.push(Entry {
        name: name.to_string(),
        value: value.into(),
        origin: EntryOrigin::Standard,
    });
}

/// `REMOTE_HOST`: the client address, or its DNS name with `--reverselookup`.
pub async fn remote_host(peer: &Peer, reverse_lookup: bool) -> String {
    match peer {
        Peer::Unix => "unix-socket".to_string(),
        Peer::Tcp { ip, .. } => {
            if !reverse_lookup {
                return ip.clone();
            }
            let Ok(address) = ip.parse::<std::net::IpAddr>() else {
                return ip.clone();
            };
            tokio::task::spawn_blocking(move || dns_lookup::lookup_addr(&address).ok())
                .await
                .ok()
                .flatten()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| ip.clone())
        }
    }
}

/// Sets `name` (sanitised `value`), replacing an earlier entry of that name in place.
fn put(env: &mut Vec<Entry>, name: &str, value: &[u8], origin: EntryOrigin) {
    let value = OsString::from_vec(sanitize(value));
    match env.iter_mut().find(|e| e.name == name) {
        Some(existing) => {
            existing.value = value;
            existing.origin = origin;
        }
        None => env.push(Entry {
            name: name.to_string(),
            value,
            origin,
        }),
    }
}

/// The first entries of every environment: `SERVER_SOFTWARE`, then `--passenv`.
fn server_software_and_passenv(env: &mut Vec<Entry>, settings: &EnvSettings<'_>) {
    put(
        env,
        "SERVER_SOFTWARE",
        format!("websocketd/{}", version_string()).as_bytes(),
        EntryOrigin::Standard,
    );
    for (name, value) in settings.passenv {
        put(env, name, value.as_encoded_bytes(), EntryOrigin::Parent);
    }
}

/// What the environment of a program shared by many clients (broadcast mode) is made of:
/// only facts about the server, never about one client.
#[derive(Debug)]
pub struct ServerFacts<'a> {
    /// `SERVER_NAME`: the first `--address`, else the machine's host name.
    pub server_name: &'a str,
    /// `SERVER_PORT` (empty when listening on a Unix socket only).
    pub server_port: &'a str,
    /// `SCRIPT_NAME`: the URL path the program is served under.
    pub script_name: &'a [u8],
}

/// The server's part of the CGI environment, for a program shared by every client of a
/// URL: `SERVER_*`, `GATEWAY_INTERFACE`, `SCRIPT_NAME`, `HTTPS` and `--passenv`, in the
/// order [`build`] uses, without any client's variables.
pub fn build_shared(facts: &ServerFacts<'_>, settings: &EnvSettings<'_>) -> Vec<Entry> {
    let mut env: Vec<Entry> = Vec::with_capacity(8 + settings.passenv.len());
    server_software_and_passenv(&mut env, settings);
    let mut push =
        |name: &str, value: &[u8], origin: EntryOrigin| put(&mut env, name, value, origin);
    let standard: [(&str, &[u8]); 5] = [
        ("SERVER_NAME", facts.server_name.as_bytes()),
        ("SERVER_PORT", facts.server_port.as_bytes()),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("GATEWAY_INTERFACE", b"CGI/1.1"),
        ("SCRIPT_NAME", facts.script_name),
    ];
    for (name, value) in standard {
        push(name, value, EntryOrigin::Standard);
    }
    if settings.tls {
        push("HTTPS", b"on", EntryOrigin::Standard);
    }
    env
}

/// `x-forwarded-for` → `HTTP_X_FORWARDED_FOR`.
pub fn header_variable(header: &str) -> String {
    let mut var = String::with_capacity(5 + header.len());
    var.push_str("HTTP_");
    for c in header.chars() {
        var.push(if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        });
    }
    var
}

/// Reads `--passenv` names from the daemon's environment at start-up: values are sanitised,
/// empty ones and `HTTPS` are skipped.
pub fn snapshot_passenv(list: &str) -> Vec<(String, OsString)> {
    let mut out: Vec<(String, OsString)> = Vec::new();
    for name in list.split(',') {
        if name.is_empty() || name == "HTTPS" || out.iter().any(|(n, _)| n == name) {
            continue;
        }
        if let Some(value) = std::env::var_os(name) {
            let clean = sanitize(value.as_encoded_bytes());
            if !clean.is_empty() {
                out.push((name.to_string(), OsString::from_vec(clean)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn value<'a>(env: &'a [Entry], name: &str) -> Option<&'a str> {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.to_str())
    }

    #[test]
    fn builds_upstream_list() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.com:8080"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert("x-bad", HeaderValue::from_static("  padded  "));
        let peer = Peer::Tcp {
            ip: "::1".into(),
            port: Some(5000),
        };
        let facts = RequestFacts {
            peer: &peer,
            remote_host: "::1",
            host: "example.com:8080",
            protocol: "HTTP/1.1",
            path: b"/some/path",
            query: "a=1&b=%20",
            request_uri: "/some/path?a=1&b=%20",
            script_name: b"/",
            path_info: b"/some/path",
            unique_id: "42",
            headers: &headers,
        };
        let passenv = vec![
            ("PATH".to_string(), OsString::from("/bin")),
            ("SERVER_SOFTWARE".to_string(), OsString::from("mine")),
            ("QUERY_STRING".to_string(), OsString::from("overridden")),
        ];
        let env = build(
            &facts,
            &EnvSettings {
                passenv: &passenv,
                tls: false,
            },
        );
        assert_eq!(value(&env, "SERVER_SOFTWARE"), Some("mine"));
        assert_eq!(value(&env, "QUERY_STRING"), Some("a=1&b=%20"));
        assert_eq!(value(&env, "PATH"), Some("/bin"));
        assert_eq!(value(&env, "SERVER_NAME"), Some("example.com"));
        assert_eq!(value(&env, "SERVER_PORT"), Some("8080"));
        assert_eq!(value(&env, "REMOTE_ADDR"), Some("::1"));
        assert_eq!(value(&env, "REMOTE_PORT"), Some("5000"));
        assert_eq!(value(&env, "HTTP_X_MULTI"), Some("a, b"));
        assert_eq!(value(&env, "HTTP_X_BAD"), Some("padded"));
        assert_eq!(value(&env, "HTTP_HOST"), None);
        assert_eq!(value(&env, "HTTPS"), None);
        assert_eq!(value(&env, "AUTH_TYPE"), Some(""));
        assert_eq!(value(&env, "REQUEST_URI"), Some("/some/path?a=1&b=%20"));
        assert_eq!(value(&env, "GATEWAY_INTERFACE"), Some("CGI/1.1"));
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names.iter().filter(|n| **n == "SERVER_SOFTWARE").count(), 1);
    }

    #[test]
    fn host_edge_cases() {
        let headers = HeaderMap::new();
        let peer = Peer::Unix;
        for (host, tls, name, port) in [
            ("h", false, "h", "80"),
            ("h", true, "h", "443"),
            ("[::1]:9", false, "::1", "9"),
            ("a:b:c", false, "", ""),
        ] {
            let facts = RequestFacts {
                peer: &peer,
                remote_host: "unix-socket",
                host,
                protocol: "HTTP/1.1",
                path: b"/",
                query: "",
                request_uri: "/",
                script_name: b"/",
                path_info: b"/",
                unique_id: "1",
                headers: &headers,
            };
            let env = build(&facts, &EnvSettings { passenv: &[], tls });
            assert_eq!(value(&env, "SERVER_NAME"), Some(name), "{host}");
            assert_eq!(value(&env, "SERVER_PORT"), Some(port), "{host}");
            assert_eq!(value(&env, "REMOTE_ADDR"), Some("unix-socket"));
            assert_eq!(value(&env, "REMOTE_PORT"), Some(""));
            assert_eq!(value(&env, "HTTPS"), tls.then_some("on"));
        }
    }

    #[test]
    fn shared_environment_has_no_client_variables() {
        let passenv = vec![("PATH".to_string(), OsString::from("/bin"))];
        let facts = ServerFacts {
            server_name: "example",
            server_port: "8080",
            script_name: b"/feed.sh",
        };
        let env = build_shared(
            &facts,
            &EnvSettings {
                passenv: &passenv,
                tls: true,
            },
        );
        assert_eq!(value(&env, "SERVER_NAME"), Some("example"));
        assert_eq!(value(&env, "SERVER_PORT"), Some("8080"));
        assert_eq!(value(&env, "SCRIPT_NAME"), Some("/feed.sh"));
        assert_eq!(value(&env, "HTTPS"), Some("on"));
        assert_eq!(value(&env, "PATH"), Some("/bin"));
        for client in ["REMOTE_ADDR", "REMOTE_PORT", "QUERY_STRING", "UNIQUE_ID"] {
            assert_eq!(value(&env, client), None, "{client}");
        }
    }

    #[test]
    fn sanitizes_values() {
        assert_eq!(sanitize(b" a\r\nb \n"), b"a  b");
        assert_eq!(sanitize(b"\r\n"), b"");
        assert_eq!(header_variable("x-forwarded-for"), "HTTP_X_FORWARDED_FOR");
        assert_eq!(header_variable("x_under"), "HTTP_X_UNDER");
    }
}
