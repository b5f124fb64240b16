//! Behind a reverse proxy (`--trustproxy`): which peers are trusted proxies, and the client
//! address and scheme such a proxy reports in `Forwarded` (RFC 7239), `X-Forwarded-For` and
//! `X-Forwarded-Proto`. A leaf: the router asks it once per request, the connection layer
//! asks it whether a PROXY protocol header may be read.

use crate::environment::Peer;
use hyper::header::{HeaderMap, HeaderName, FORWARDED};
use std::net::{IpAddr, SocketAddr};

/// `X-Forwarded-For`: the addresses a request passed through, client first.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used.
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// An IP network in CIDR form (`10.0.0.0/8`, `::1/128`); a bare address is a one-host network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(text: &str) -> Option<Network> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()?
            .to_canonical();
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&p| p <= bits)?
            }
            Some(_) => return None,
        };
        Some(Network { address, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The `--trustproxy` list: networks whose connections are proxies that may tell the client
/// address and scheme, and whether connections on `--unixsocket` are such proxies too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Network>,
    unix: bool,
}

impl TrustedProxies {
    /// Parses a comma separated list of CIDR networks, bare addresses and the word `unix`.
    /// The error names the entry that is neither.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut trusted = TrustedProxies::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry.eq_ignore_ascii_case("unix") {
                trusted.unix = true;
                continue;
            }
            match Network::parse(entry) {
                Some(network) => trusted.networks.push(network),
                None => {
                    return Err(format!(
                        "invalid --trustproxy entry '{entry}': expected an address, ADDRESS/PREFIX or unix"
                    ))
                }
            }
        }
        Ok(trusted)
    }

    /// Whether nothing is trusted (the default: forwarding headers are ordinary headers).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && !self.unix
    }

    /// Whether `ip` belongs to a trusted proxy.
    pub fn trusts_ip(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(ip))
    }

    /// Whether the connection from `peer` is a trusted proxy.
    pub fn trusts(&self, peer: &Peer) -> bool {
        match peer {
            Peer::Tcp { ip, .. } => ip.parse().is_ok_and(|ip| self.trusts_ip(ip)),
            Peer::Unix => self.unix,
        }
    }
}

/// The client as a trusted proxy reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client's address (and port, when the proxy said it).
    pub peer: Peer,
    /// Whether the client's own connection was encrypted.
    pub tls: bool,
}

/// One proxy hop as a header lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hop {
    /// The node, or `None` when it is `unknown`, obfuscated or malformed.
    node: Option<(IpAddr, Option<u16>)>,
    /// `proto=` of a `Forwarded` element.
    proto: Option<String>,
}

/// The client and scheme for a request that arrived from `peer` (over TLS or not), or `None`
/// when `peer` is not a trusted proxy or sent nothing to go by.
///
/// `X-Forwarded-For` is preferred to `Forwarded` when both are present: it is the header
/// nearly every proxy appends to (nginx, HAProxy's `option forwardfor`, load balancers), and
/// one it appends to cannot be forged by the client, while a `Forwarded` header the proxy
/// merely passes on could be. `Forwarded` is read when it is the only one. The hops are walked
/// from the right (the nearest proxy) past every trusted address; the first untrusted one is
/// the client. When every hop is trusted, the leftmost is. A hop that cannot be read
/// (`unknown`, an obfuscated name, garbage) ends the walk: the client is then the last hop
/// read before it, or the peer itself. The scheme is the `proto=` of the chosen `Forwarded`
/// element; with `X-Forwarded-Proto`, the entry at the chosen hop's position when it lists
/// one per `X-Forwarded-For` hop, else its last entry.
pub fn client(
    trusted: &TrustedProxies,
    peer: &Peer,
    tls: bool,
    headers: &HeaderMap,
) -> Option<Client> {
    if trusted.is_empty() || !trusted.trusts(peer) {
        return None;
    }
    let (hops, protos) =
        if headers.contains_key(&X_FORWARDED_FOR) || !headers.contains_key(FORWARDED) {
            let hops: Vec<Hop> = list(&joined(headers, &X_FORWARDED_FOR))
                .map(|entry| Hop {
                    node: parse_node(entry),
                    proto: None,
                })
                .collect();
            let protos: Vec<Option<String>> = list(&joined(headers, &X_FORWARDED_PROTO))
                .map(|p| Some(p.to_string()))
                .collect();
            (hops, protos)
        } else {
            let hops = parse_forwarded(&joined(headers, &FORWARDED));
            let protos: Vec<Option<String>> = hops.iter().map(|hop| hop.proto.clone()).collect();
            (hops, protos)
        };
    if hops.is_empty() && protos.is_empty() {
        return None;
    }
    let mut chosen: Option<usize> = None;
    for (index, hop) in hops.iter().enumerate().rev() {
        let Some((ip, _)) = hop.node else { break };
        chosen = Some(index);
        if !trusted.trusts_ip(ip) {
            break;
        }
    }
    let peer = match chosen.and_then(|i| hops[i].node) {
        Some((ip, port)) => Peer::Tcp {
            ip: ip.to_canonical().to_string(),
            port,
        },
        None => peer.clone(),
    };
    let proto = if protos.len() == hops.len() {
        chosen
            .or(hops.len().checked_sub(1))
            .and_then(|i| protos[i].as_deref())
    } else {
        protos.last().and_then(Option::as_deref)
    };
    let tls = match proto.map(str::to_ascii_lowercase).as_deref() {
        Some("https" | "wss") => true,
        Some("http" | "ws") => false,
        _ => tls,
    };
    Some(Client { peer, tls })
}

/// Every value of header `name`, joined with commas in the order received.
fn joined(headers: &HeaderMap, name: &HeaderName) -> String {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    values.join(",")
}

/// The entries of a comma separated list, trimmed, without empty ones.
fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// A node as `X-Forwarded-For` or `for=` writes it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(text: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip.to_canonical(), None));
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some((address.ip().to_canonical(), Some(address.port())));
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|ip| (IpAddr::V6(ip).to_canonical(), None))
}

/// The elements of a `Forwarded` field value (RFC 7239 section 4): comma separated elements
/// of semicolon separated `name=value` pairs, values being tokens or quoted strings.
fn parse_forwarded(text: &str) -> Vec<Hop> {
    let mut hops = Vec::new();
    for element in split_unquoted(text, b',') {
        let mut hop = Hop {
            node: None,
            proto: None,
        };
        let mut has_for = false;
        for pair in split_unquoted(&element, b';') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let value = unquote(value.trim());
            match name.trim().to_ascii_lowercase().as_str() {
                "for" => {
                    has_for = true;
                    hop.node = parse_node(&value);
                }
                "proto" => hop.proto = Some(value),
                _ => {}
            }
        }
        if has_for || hop.proto.is_some() {
            hops.push(hop);
        }
    }
    hops
}

/// Splits at `separator` outside double quotes, honouring backslash escapes inside them.
fn split_unquoted(text: &str, separator: u8) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = Vec::new();
    let (mut quoted, mut escaped) = (false, false);
    for &byte in text.as_bytes() {
        if escaped {
            escaped = false;
        } else if quoted && byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            quoted = !quoted;
        } else if byte == separator && !quoted {
            parts.push(String::from_utf8_lossy(&current).trim().to_string());
            current.clear();
            continue;
        }
        current.push(byte);
    }
    parts.push(String::from_utf8_lossy(&current).trim().to_string());
    parts.retain(|p| !p.is_empty());
    parts
}

/// A token as is, a quoted string without its quotes and escapes.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if !escaped && c == '\\' {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn tcp(ip: &str, port: Option<u16>) -> Peer {
        Peer::Tcp {
            ip: ip.to_string(),
            port,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn proxies(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let trusted = proxies("10.0.0.0/8, 192.168.1.7,::1, 2001:db8::/32,[fe80::1]");
        assert!(trusted.trusts_ip("10.200.3.4".parse().unwrap()));
        assert!(!trusted.trusts_ip("11.0.0.1".parse().unwrap()));
        assert!(trusted.trusts_ip("192.168.1.7".parse().unwrap()));
        assert!(!trusted.trusts_ip("192.168.1.8".parse().unwrap()));
        assert!(trusted.trusts_ip("::1".parse().unwrap()));
        assert!(trusted.trusts_ip("2001:db8:ffff::9".parse().unwrap()));
        assert!(trusted.trusts_ip("fe80::1".parse().unwrap()));
        // An IPv4-mapped IPv6 address is its IPv4 address.
        assert!(trusted.trusts_ip("::ffff:10.1.2.3".parse().unwrap()));
        assert!(proxies("0.0.0.0/0").trusts_ip("203.0.113.9".parse().unwrap()));
        assert!(proxies("::/0").trusts_ip("2001:db8::1".parse().unwrap()));
        assert!(!trusted.trusts(&Peer::Unix));
        assert!(proxies("unix").trusts(&Peer::Unix));
        assert!(proxies("").is_empty());
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "1.2.3",
        ] {
            let err = TrustedProxies::parse(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn untrusted_peers_are_ignored() {
        let trusted = proxies("127.0.0.1");
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            client(&trusted, &tcp("127.0.0.2", Some(5)), false, &h),
            None
        );
        assert_eq!(
            client(
                &TrustedProxies::default(),
                &tcp("127.0.0.1", Some(5)),
                false,
                &h
            ),
            None
        );
        assert_eq!(client(&trusted, &Peer::Unix, false, &h), None);
    }

    #[test]
    fn rightmost_untrusted_hop_of_x_forwarded_for() {
        let trusted = proxies("127.0.0.1,10.0.0.0/8");
        let peer = tcp("127.0.0.1", Some(40000));
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.1.1.1")]);
        let found = client(&trusted, &peer, false, &h).unwrap();
        assert_eq!(found.peer, tcp("203.0.113.5", None));
        assert!(!found.tls);
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.5:1234"),
        ]);
        assert_eq!(
            client(&trusted, &peer, false, &h).unwrap().peer,
            tcp("203.0.113.5", Some(1234))
        );
        // All trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(
            client(&trusted, &peer, false, &h).unwrap().peer,
            tcp("10.9.9.9", None)
        );
        // An unreadable hop stops the walk at the last one read.
        let h = headers(&[("x-forwarded-for", "203.0.113.5, garbage, 10.1.1.1")]);
        assert_eq!(
            client(&trusted, &peer, false, &h).unwrap().peer,
            tcp("10.1.1.1", None)
        );
        let h = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(client(&trusted, &peer, false, &h).unwrap().peer, peer);
        let h = headers(&[("x-forwarded-for", "[2001:db8::7], ::ffff:198.51.100.2")]);
        assert_eq!(
            client(&trusted, &peer, false, &h).unwrap().peer,
            tcp("198.51.100.2", None)
        );
    }

    #[test]
    fn x_forwarded_proto_sets_the_scheme() {
        let trusted = proxies("127.0.0.1");
        let peer = tcp("127.0.0.1", Some(1));
        let h = headers(&[("x-forwarded-proto", "https")]);
        let found = client(&trusted, &peer, false, &h).unwrap();
        assert_eq!((found.peer, found.tls), (peer.clone(), true));
        let h = headers(&[("x-forwarded-proto", "HTTP")]);
        assert!(!client(&trusted, &peer, true, &h).unwrap().tls);
        let h = headers(&[("x-forwarded-proto", "gopher")]);
        assert!(client(&trusted, &peer, true, &h).unwrap().tls);
        // One entry per hop: the chosen hop's; otherwise the last.
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.5, 127.0.0.1"),
            ("x-forwarded-proto", "https, http"),
        ]);
        assert!(client(&trusted, &peer, false, &h).unwrap().tls);
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.5"),
            ("x-forwarded-proto", "https"),
        ]);
        assert!(client(&trusted, &peer, false, &h).unwrap().tls);
    }

    #[test]
    fn forwarded_elements() {
        let trusted = proxies("127.0.0.1, 10.0.0.0/8");
        let peer = tcp("127.0.0.1", Some(1));
        let h = headers(&[(
            "forwarded",
            r#"for=6.6.6.6;proto=http, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.1, For=10.2.2.2"#,
        )]);
        let found = client(&trusted, &peer, false, &h).unwrap();
        assert_eq!(found.peer, tcp("2001:db8:cafe::17", Some(4711)));
        assert!(found.tls);
        // X-Forwarded-For wins over Forwarded: a client-written Forwarded that a proxy
        // appending to X-Forwarded-For passed on changes nothing.
        let h = headers(&[
            ("forwarded", "for=192.0.2.60;proto=http"),
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let found = client(&trusted, &peer, false, &h).unwrap();
        assert_eq!((found.peer, found.tls), (tcp("198.51.100.1", None), true));
        // Quoted separators do not split; obfuscated nodes stop the walk.
        let h = headers(&[("forwarded", r#"for="_a,b;c", for=_hidden"#)]);
        assert_eq!(client(&trusted, &peer, false, &h).unwrap().peer, peer);
        let h = headers(&[("forwarded", r#"for="192.0.2.1:80";host="a,b""#)]);
        assert_eq!(
            client(&trusted, &peer, false, &h).unwrap().peer,
            tcp("192.0.2.1", Some(80))
        );
    }

    #[test]
    fn nodes() {
        assert_eq!(
            parse_node("1.2.3.4"),
            Some(("1.2.3.4".parse().unwrap(), None))
        );
        assert_eq!(
            parse_node("1.2.3.4:5"),
            Some(("1.2.3.4".parse().unwrap(), Some(5)))
        );
        assert_eq!(parse_node("[::1]"), Some(("::1".parse().unwrap(), None)));
        assert_eq!(
            parse_node("[::1]:80"),
            Some(("::1".parse().unwrap(), Some(80)))
        );
        assert_eq!(parse_node("1.2.3.4:99999"), None);
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node(""), None);
    }
}
