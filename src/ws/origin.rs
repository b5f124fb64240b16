//! Which browser origins may open a WebSocket (`--origin`, `--sameorigin`), with upstream's
//! matching rules except where we do better (D9): no policy admits every origin, empty list
//! entries are ignored, host names compare case-insensitively.

use crate::hostport;

/// The configured origin policy.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// `--sameorigin`.
    pub same_origin: bool,
    /// `--origin` entries (empty entries already dropped); `None` when the flag was absent.
    pub allowed: Option<Vec<String>>,
}

/// A parsed `Origin` header: lower-cased scheme and the authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Scheme, lower-cased.
    pub scheme: String,
    /// `host[:port]` as written (empty for `file:`).
    pub host: String,
}

/// The outcome of checking one upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The upgrade may go on.
    Allowed,
    /// Refuse with 403; the text is logged at ACCESS.
    Refused(String),
}

impl OriginPolicy {
    /// Builds the policy from the flags.
    pub fn new(same_origin: bool, origin_flag: Option<&str>) -> OriginPolicy {
        let allowed = origin_flag.map(|list| {
            list.split(',')
                .filter(|entry| !entry.is_empty())
                .map(str::to_string)
                .collect()
        });
        OriginPolicy {
            same_origin,
            allowed,
        }
    }

    /// Whether any restriction is configured.
    pub fn restricts(&self) -> bool {
        self.same_origin || self.allowed.is_some()
    }

    /// The string the log records as `origin` for this request's header.
    pub fn effective_origin<'a>(&self, header: Option<&'a str>) -> &'a str {
        match header {
            None | Some("") => "file:",
            Some("null") if self.allowed.is_none() => "file:",
            Some(value) => value,
        }
    }

    /// Checks an upgrade: `origin` is the first Origin header value, `host` the request's
    /// Host header, `tls` whether the connection is encrypted.
    pub fn check(&self, origin: Option<&str>, host: &str, tls: bool) -> Verdict {
        if !self.restricts() {
            return Verdict::Allowed;
        }
        let text = self.effective_origin(origin);
        let Some(origin) = parse_origin(text) else {
            return Verdict::Refused(format!(
                "Origin parsing error: parse {text:?}: invalid URI for request"
            ));
        };
        let default_port = if origin.scheme == "https" {
            "443"
        } else {
            "80"
        };
        let (origin_host, origin_port) = match hostport::with_default(&origin.host, default_port) {
            Ok(parts) => parts,
            Err(e) => {
                return Verdict::Refused(format!(
                    "Origin hostname parsing error: {}",
                    e.message(&origin.host)
                ))
            }
        };
        if self.same_origin {
            let local_default = if tls { "443" } else { "80" };
            let (local_host, local_port) = match hostport::with_default(host, local_default) {
                Ok(parts) => parts,
                Err(e) => {
                    return Verdict::Refused(format!(
                        "Request hostname parsing error: {}",
                        e.message(host)
                    ))
                }
            };
            if !origin_host.eq_ignore_ascii_case(local_host) || origin_port != local_port {
                return Verdict::Refused("Same origin policy mismatch".to_string());
            }
        }
        if let Some(entries) = &self.allowed {
            let listed = entries
                .iter()
                .any(|entry| entry_matches(entry, &origin.scheme, origin_host, origin_port));
            if !listed {
                return Verdict::Refused("Origin is not listed in allowed list".to_string());
            }
        }
        Verdict::Allowed
    }
}

/// One `--origin` entry against the origin's scheme, host and port.
fn entry_matches(entry: &str, scheme: &str, host: &str, port: &str) -> bool {
    let mut entry = entry;
    if let Some(pos) = entry.find("://").filter(|&pos| pos > 0) {
        let Some(parsed) = parse_origin(entry) else {
            return false;
        };
        if parsed.scheme != scheme {
            return false;
        }
        entry = &entry[pos + 3..];
    }
    let Ok((allowed_host, allowed_port)) = hostport::with_default(entry, "80") else {
        return false;
    };
    if !allowed_host.eq_ignore_ascii_case(host) {
        return false;
    }
    allowed_port == "80" && !entry.ends_with(":80") || allowed_port == port
}

/// Parses an absolute URI far enough to get the scheme and authority. `None` when the text
/// is not an absolute URI (no scheme, spaces or control characters).
pub fn parse_origin(text: &str) -> Option<Origin> {
    if text.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let colon = text.find(':')?;
    let scheme = &text[..colon];
    let mut chars = scheme.bytes();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic()
        || !chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let rest = &text[colon + 1..];
    let host = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            let authority = &after[..end];
            authority.rsplit_once('@').map_or(authority, |(_, h)| h)
        }
        None => "",
    };
    Some(Origin {
        scheme: scheme.to_ascii_lowercase(),
        host: host.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "127.0.0.1:8080";

    fn verdicts(policy: &OriginPolicy) -> Vec<bool> {
        let origins = [
            None,
            Some("null"),
            Some("example.com"),
            Some("http://example.com"),
            Some("https://example.com"),
            Some("http://example.com:8080"),
            Some("http://127.0.0.1:8080"),
            Some("https://127.0.0.1:8080"),
        ];
        origins
            .iter()
            .map(|o| policy.check(*o, P, false) == Verdict::Allowed)
            .collect()
    }

    #[test]
    fn spec_origin_table() {
        // Columns of the reference table; D9 admits the scheme-less origin with no policy.
        let default = OriginPolicy::new(false, None);
        assert_eq!(verdicts(&default), [true; 8]);
        let same = OriginPolicy::new(true, None);
        assert_eq!(
            verdicts(&same),
            [false, false, false, false, false, false, true, true]
        );
        let host = OriginPolicy::new(false, Some("example.com"));
        assert_eq!(
            verdicts(&host),
            [false, false, false, true, true, true, false, false]
        );
        let https = OriginPolicy::new(false, Some("https://example.com"));
        assert_eq!(
            verdicts(&https),
            [false, false, false, false, true, false, false, false]
        );
        let port = OriginPolicy::new(false, Some("example.com:8080"));
        assert_eq!(
            verdicts(&port),
            [false, false, false, false, false, true, false, false]
        );
    }

    #[test]
    fn d9_details() {
        // Host names compare case-insensitively.
        let policy = OriginPolicy::new(false, Some("example.com"));
        assert_eq!(
            policy.check(Some("http://Example.COM"), P, false),
            Verdict::Allowed
        );
        // Empty entries do not admit clients without Origin.
        let policy = OriginPolicy::new(false, Some("example.com,"));
        assert_ne!(policy.check(None, P, false), Verdict::Allowed);
        // Spaces are not trimmed; entries with a path never match; :080 is not :80.
        let policy = OriginPolicy::new(false, Some("a.com, b.com,https://c.com/,d.com:080"));
        assert_ne!(
            policy.check(Some("http://b.com"), P, false),
            Verdict::Allowed
        );
        assert_ne!(
            policy.check(Some("https://c.com"), P, false),
            Verdict::Allowed
        );
        assert_ne!(
            policy.check(Some("http://d.com"), P, false),
            Verdict::Allowed
        );
        assert_eq!(
            policy.check(Some("http://a.com:1"), P, false),
            Verdict::Allowed
        );
        // An explicit :80 requires port 80.
        let policy = OriginPolicy::new(false, Some("a.com:80"));
        assert_ne!(
            policy.check(Some("http://a.com:81"), P, false),
            Verdict::Allowed
        );
        assert_eq!(
            policy.check(Some("http://a.com"), P, false),
            Verdict::Allowed
        );
        // IPv6 entries.
        let policy = OriginPolicy::new(false, Some("[::1]:9"));
        assert_eq!(
            policy.check(Some("http://[::1]:9"), P, false),
            Verdict::Allowed
        );
        // Same origin over TLS defaults the request port to 443.
        let same = OriginPolicy::new(true, None);
        assert_eq!(same.check(Some("https://h"), "h", true), Verdict::Allowed);
        assert_ne!(same.check(Some("https://h"), "h", false), Verdict::Allowed);
    }

    #[test]
    fn refusal_reasons() {
        let policy = OriginPolicy::new(false, Some("example.com"));
        assert_eq!(
            policy.check(Some("foo bar"), P, false),
            Verdict::Refused(
                "Origin parsing error: parse \"foo bar\": invalid URI for request".into()
            )
        );
        let same = OriginPolicy::new(true, None);
        assert_eq!(
            same.check(Some("http://x"), P, false),
            Verdict::Refused("Same origin policy mismatch".into())
        );
    }

    #[test]
    fn parse_shapes() {
        let o = parse_origin("HTTPS://user@h:1/path").unwrap();
        assert_eq!(o.scheme, "https");
        assert_eq!(o.host, "h:1");
        assert_eq!(parse_origin("file:").unwrap().host, "");
        assert!(parse_origin("example.com").is_none());
        assert!(parse_origin("1http://x").is_none());
    }
}
