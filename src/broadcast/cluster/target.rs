//! `--cluster=URL`: which engine the instances of a cluster coordinate through, where it
//! is, the credentials to use, and the name of the shared stream. Parsed once at start-up;
//! the password never appears in what [`ClusterTarget`] prints.

use std::fmt;

/// The environment variable a password may come from instead of the URL.
pub const PASSWORD_ENV: &str = "WEBSOCKETD_CLUSTER_PASSWORD";

/// The coordination engine named by the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// Redis ≥ 6.2 (streams, scripts).
    Redis,
    /// NATS ≥ 2.9 with JetStream (streams, key-value buckets).
    Nats,
}

impl EngineKind {
    /// The engine's port when the URL gives none.
    pub fn default_port(self) -> u16 {
        match self {
            EngineKind::Redis => 6379,
            EngineKind::Nats => 4222,
        }
    }
}

/// A password, kept out of every `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(password: String) -> Secret {
        Secret(password)
    }

    /// The password itself, for the engine's client only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the password replaced, for messages that may quote
    /// it (an engine client's error, say).
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.0, "***")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A parsed `--cluster` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    /// Which engine.
    pub engine: EngineKind,
    /// Whether the connection to the engine uses TLS (`rediss://`, `tls://`, `nats+tls://`).
    pub tls: bool,
    /// The engine's host name or address (IPv6 without brackets).
    pub host: String,
    /// The engine's port.
    pub port: u16,
    /// User name, percent-decoded.
    pub username: Option<String>,
    /// Password, percent-decoded, from the URL or [`PASSWORD_ENV`].
    pub password: Option<Secret>,
    /// The stream's name: the URL path without its leading slash. Instances with the same
    /// name (and engine) share one stream per route.
    pub name: String,
}

impl ClusterTarget {
    /// Parses `url`; `env_password` is the value of [`PASSWORD_ENV`], used when the URL
    /// carries no password.
    pub fn parse(url: &str, env_password: Option<String>) -> Result<ClusterTarget, String> {
        let bad = |why: &str| {
            Err(format!(
                "Incorrect --cluster URL '{}': {why}",
                redact_url(url)
            ))
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return bad("expected redis://, rediss://, nats://, tls:// or nats+tls://");
        };
        let (engine, tls) = match scheme.to_ascii_lowercase().as_str() {
            "redis" => (EngineKind::Redis, false),
            "rediss" => (EngineKind::Redis, true),
            "nats" => (EngineKind::Nats, false),
            "tls" | "nats+tls" => (EngineKind::Nats, true),
            _ => return bad("expected redis://, rediss://, nats://, tls:// or nats+tls://"),
        };
        if rest.contains(['?', '#']) {
            return bad("no query or fragment is understood");
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (host, port) = match split_host_port(hostport) {
            Ok(pair) => pair,
            Err(why) => return bad(why),
        };
        let port = match port {
            None => engine.default_port(),
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return bad("the port must be a number from 1 to 65535"),
            },
        };
        let (mut username, mut password) = (None, None);
        if let Some(userinfo) = userinfo {
            let (user, pass) = match userinfo.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (userinfo, None),
            };
            let Some(user) = percent_decode(user) else {
                return bad("bad percent-encoding in the user name");
            };
            username = (!user.is_empty()).then_some(user);
            if let Some(pass) = pass {
                let Some(pass) = percent_decode(pass) else {
                    return bad("bad percent-encoding in the password");
                };
                password = (!pass.is_empty()).then(|| Secret::new(pass));
            }
        }
        if password.is_none() {
            password = env_password
                .filter(|value| !value.is_empty())
                .map(Secret::new);
        }
        let Some(name) = percent_decode(path.trim_end_matches('/')) else {
            return bad("bad percent-encoding in the name");
        };
        if name.is_empty() {
            return bad(
                "the URL needs a path naming the shared stream, as in redis://HOST:PORT/NAME",
            );
        }
        if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return bad("the name may not contain spaces or control characters");
        }
        Ok(ClusterTarget {
            engine,
            tls,
            host: host.to_string(),
            port,
            username,
            password,
            name,
        })
    }

    /// The scheme as written in URLs.
    pub fn scheme(&self) -> &'static str {
        match (self.engine, self.tls) {
            (EngineKind::Redis, false) => "redis",
            (EngineKind::Redis, true) => "rediss",
            (EngineKind::Nats, false) => "nats",
            (EngineKind::Nats, true) => "nats+tls",
        }
    }

    /// `text` with the password (if any) replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        match &self.password {
            Some(secret) => secret.redact(text),
            None => text.to_string(),
        }
    }
}

/// Prints the URL with the password as `***`: the only form that goes to logs.
impl fmt::Display for ClusterTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme())?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (Some(user), None) => write!(f, "{user}@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            (None, None) => {}
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        write!(f, ":{}/{}", self.port, self.name)
    }
}

impl fmt::Debug for ClusterTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterTarget({self})")
    }
}

/// `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`.
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), &'static str> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("an IPv6 address needs its closing ]");
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err("expected :PORT after the IPv6 address"),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("the URL needs a host");
    }
    if host.contains(['/', '@', '[', ']', ' ']) {
        return Err("the host is not a host name or address");
    }
    Ok((host, port))
}

/// Decodes `%XX` escapes; `None` when one is malformed or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL as typed, with whatever stands between `:` and `@` in its user part hidden;
/// used in the message about a URL that does not parse.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<ClusterTarget, String> {
        ClusterTarget::parse(url, None)
    }

    #[test]
    fn schemes_pick_engine_and_tls() {
        for (url, engine, tls, port) in [
            ("redis://h/n", EngineKind::Redis, false, 6379),
            ("rediss://h/n", EngineKind::Redis, true, 6379),
            ("nats://h/n", EngineKind::Nats, false, 4222),
            ("tls://h/n", EngineKind::Nats, true, 4222),
            ("nats+tls://h/n", EngineKind::Nats, true, 4222),
            ("REDIS://h:7000/n", EngineKind::Redis, false, 7000),
        ] {
            let target = parse(url).unwrap();
            assert_eq!(
                (target.engine, target.tls, target.port),
                (engine, tls, port),
                "{url}"
            );
        }
        assert!(parse("http://h/n")
            .unwrap_err()
            .contains("expected redis://"));
        assert!(parse("h:6379/n").unwrap_err().contains("expected redis://"));
    }

    #[test]
    fn host_port_and_name() {
        let target = parse("redis://127.0.0.1:6380/prices/eu").unwrap();
        assert_eq!(target.host, "127.0.0.1");
        assert_eq!(target.port, 6380);
        assert_eq!(target.name, "prices/eu");
        let v6 = parse("nats://[::1]:4223/feed/").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.name.as_str()),
            ("::1", 4223, "feed")
        );
        assert_eq!(v6.to_string(), "nats://[::1]:4223/feed");
        assert_eq!(parse("redis://[::1]/x").unwrap().port, 6379);
        for (url, why) in [
            ("redis://h:6379", "needs a path"),
            ("redis://h:6379/", "needs a path"),
            ("redis://:6379/n", "needs a host"),
            ("redis://h:0/n", "port must be"),
            ("redis://h:99999/n", "port must be"),
            ("redis://h:x/n", "port must be"),
            ("redis://[::1/n", "closing ]"),
            ("redis://h/n?db=2", "no query"),
            ("redis://h/a%zz", "percent-encoding"),
            ("redis://h/a%20b", "spaces"),
        ] {
            let err = parse(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn credentials_from_url_or_environment_never_printed() {
        let target = parse("rediss://app:s%40cret@db.example:6380/feed").unwrap();
        assert_eq!(target.username.as_deref(), Some("app"));
        assert_eq!(target.password.as_ref().map(Secret::expose), Some("s@cret"));
        assert_eq!(target.to_string(), "rediss://app:***@db.example:6380/feed");
        assert!(!format!("{target:?}").contains("s@cret"));
        assert_eq!(target.redact("auth s@cret failed"), "auth *** failed");

        let from_env = ClusterTarget::parse("redis://h/n", Some("pw".into())).unwrap();
        assert_eq!(from_env.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(from_env.username, None);
        assert_eq!(from_env.to_string(), "redis://:***@h:6379/n");
        let url_wins = ClusterTarget::parse("redis://:a@h/n", Some("b".into())).unwrap();
        assert_eq!(url_wins.password.as_ref().map(Secret::expose), Some("a"));
        let user_only = parse("nats://me@h/n").unwrap();
        assert_eq!(user_only.to_string(), "nats://me@h:4222/n");

        let err = parse("redis://u:hunter2@h:bad/n").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("redis://u:***@h:bad/n"), "{err}");
    }
}
