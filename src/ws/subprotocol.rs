//! `--subprotocol` / `--subprotocolrequired`: which of the protocols a client offers in
//! `Sec-WebSocket-Protocol` the server speaks (RFC 6455 §4.2.2 step 5.4). The client's
//! order decides among those the server lists; in `--dir` mode a `SCRIPT.protocols` file
//! beside a script replaces the list for that script.

use crate::environment::{self, Entry};
use crate::http::response::{plain, Body};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest `SCRIPT.protocols` file read; a longer one is cut here.
const MAX_SIDECAR_BYTES: u64 = 16 * 1024;

/// The server's side of the negotiation, from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// `--subprotocol`: the protocols the programs speak; empty when not given.
    pub allowed: Vec<String>,
    /// `--subprotocolrequired`: refuse (400) a client that offers none of them.
    pub required: bool,
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// This protocol is answered in the 101 and given to the program.
    Chosen(String),
    /// No protocol in common: the upgrade proceeds without one.
    None,
    /// No protocol in common and one is required: answer 400.
    Refused,
}

/// Splits a comma separated list (the flag value, or a client header) into its non-empty,
/// trimmed items.
pub fn parse_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `name` is a valid protocol token (RFC 6455 §4.1: visible ASCII without the
/// HTTP separators).
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// The protocols the client offers, in its order, from every `Sec-WebSocket-Protocol`
/// header.
fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(parse_list)
        .collect()
}

/// The sidecar file that declares a `--dir` script's protocols.
pub fn sidecar_path(script: &Path) -> PathBuf {
    let mut name = script.as_os_str().to_owned();
    name.push(".protocols");
    PathBuf::from(name)
}

/// Reads `SCRIPT.protocols`: one protocol per line, blank lines and `#` comments skipped.
/// `None` when the file does not exist (the command-line list applies).
pub fn read_sidecar(script: &Path) -> Option<Vec<String>> {
    let file = std::fs::File::open(sidecar_path(script)).ok()?;
    let mut text = String::new();
    let mut limited = file.take(MAX_SIDECAR_BYTES);
    if limited.read_to_string(&mut text).is_err() {
        // Unreadable or not UTF-8: a list that accepts nothing, rather than the wider one.
        return Some(Vec::new());
    }
    Some(
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_string)
            .collect(),
    )
}

/// Chooses the first protocol the client offers that `allowed` contains (exact match).
pub fn choose(headers: &HeaderMap, allowed: &[String], required: bool) -> Choice {
    let chosen = offered(headers)
        .into_iter()
        .find(|protocol| allowed.iter().any(|a| a == protocol));
    match chosen {
        Some(protocol) => Choice::Chosen(protocol),
        None if required => Choice::Refused,
        None => Choice::None,
    }
}

/// The negotiation for one upgrade: `script` is the `--dir` script, whose sidecar file
/// (when present) replaces the command-line list.
pub fn negotiate(policy: &Policy, headers: &HeaderMap, script: Option<&Path>) -> Choice {
    match script.and_then(read_sidecar) {
        Some(own) => choose(headers, &own, policy.required),
        None => choose(headers, &policy.allowed, policy.required),
    }
}

/// Puts the chosen protocol in the 101 response and the program's environment.
pub fn apply(protocol: &str, response: &mut Response<Body>, env: &mut Vec<Entry>) {
    if let Ok(value) = HeaderValue::from_str(protocol) {
        response
            .headers_mut()
            .insert("sec-websocket-protocol", value);
    }
    environment::set(env, "WEBSOCKET_PROTOCOL", protocol);
}

/// The refusal `--subprotocolrequired` answers.
pub fn refusal() -> Response<Body> {
    plain(StatusCode::BAD_REQUEST, "400 Bad Request")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("sec-websocket-protocol", HeaderValue::from_static(value));
        }
        map
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn client_order_decides() {
        let allowed = list(&["b", "a"]);
        assert_eq!(
            choose(&headers(&["a, b"]), &allowed, false),
            Choice::Chosen("a".into())
        );
        assert_eq!(
            choose(&headers(&["x", "b ,a"]), &allowed, false),
            Choice::Chosen("b".into())
        );
    }

    #[test]
    fn no_match_proceeds_or_refuses() {
        let allowed = list(&["chat"]);
        assert_eq!(choose(&headers(&["Chat"]), &allowed, false), Choice::None);
        assert_eq!(choose(&headers(&[]), &allowed, true), Choice::Refused);
        assert_eq!(choose(&headers(&["a"]), &[], false), Choice::None);
    }

    #[test]
    fn lists_and_tokens() {
        assert_eq!(parse_list(" a, ,b ,"), list(&["a", "b"]));
        assert!(is_token("v2.chat+json"));
        assert!(!is_token("a b"));
        assert!(!is_token("a/b"));
        assert!(!is_token(""));
    }

    #[test]
    fn sidecar_lines() {
        let dir = std::env::temp_dir().join(format!("subprotocol-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("echo.sh");
        assert_eq!(read_sidecar(&script), None);
        std::fs::write(sidecar_path(&script), "# mine\nv2\n\n  v1 \n").unwrap();
        assert_eq!(read_sidecar(&script), Some(list(&["v2", "v1"])));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
