//! Splitting `host:port` strings exactly as Go's `net.SplitHostPort` does, because
//! `SERVER_NAME`/`SERVER_PORT` and the origin rules depend on its corner cases.

/// Why a `host:port` string could not be split (Go's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitError {
    /// No port: callers usually fall back to a default port.
    MissingPort,
    /// More than one colon outside brackets.
    TooManyColons,
    /// `[` without `]`.
    MissingBracket,
    /// A stray `[`.
    UnexpectedOpen,
    /// A stray `]`.
    UnexpectedClose,
}

impl SplitError {
    /// The message Go prints, including the address.
    pub fn message(self, address: &str) -> String {
        let why = match self {
            SplitError::MissingPort => "missing port in address",
            SplitError::TooManyColons => "too many colons in address",
            SplitError::MissingBracket => "missing ']' in address",
            SplitError::UnexpectedOpen => "unexpected '[' in address",
            SplitError::UnexpectedClose => "unexpected ']' in address",
        };
        format!("address {address}: {why}")
    }
}

/// Splits `host:port`, `[v6]:port`; brackets are removed from the host.
pub fn split(hostport: &str) -> Result<(&str, &str), SplitError> {
    let Some(colon) = hostport.rfind(':') else {
        return Err(SplitError::MissingPort);
    };
    let (host, j, k) = if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else {
            return Err(SplitError::MissingBracket);
        };
        if end + 1 == hostport.len() {
            return Err(SplitError::MissingPort);
        }
        if end + 1 != colon {
            return Err(if hostport.as_bytes()[end + 1] == b':' {
                SplitError::TooManyColons
            } else {
                SplitError::MissingPort
            });
        }
        (&hostport[1..end], 1, end + 1)
    } else {
        let host = &hostport[..colon];
        if host.contains(':') {
            return Err(SplitError::TooManyColons);
        }
        (host, 0, 0)
    };
    if hostport[j..].contains('[') {
        return Err(SplitError::UnexpectedOpen);
    }
    if hostport[k..].contains(']') {
        return Err(SplitError::UnexpectedClose);
    }
    Ok((host, &hostport[colon + 1..]))
}

/// websocketd's host/port reading: a missing port becomes `default_port` and the whole
/// string is the host; other errors are returned.
pub fn with_default<'a>(
    hostport: &'a str,
    default_port: &'a str,
) -> Result<(&'a str, &'a str), SplitError> {
    match split(hostport) {
        Ok(parts) => Ok(parts),
        Err(SplitError::MissingPort) => Ok((hostport, default_port)),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_split_cases() {
        assert_eq!(split("a:1"), Ok(("a", "1")));
        assert_eq!(split("[::1]:9"), Ok(("::1", "9")));
        assert_eq!(split(":80"), Ok(("", "80")));
        assert_eq!(split("a"), Err(SplitError::MissingPort));
        assert_eq!(split("[::1]"), Err(SplitError::MissingPort));
        assert_eq!(split("::1"), Err(SplitError::TooManyColons));
        assert_eq!(split("[::1]x:1"), Err(SplitError::MissingPort));
        assert_eq!(split("[::1]::1"), Err(SplitError::TooManyColons));
        assert_eq!(split("[::1:1"), Err(SplitError::MissingBracket));
        assert_eq!(split("a]:1"), Err(SplitError::UnexpectedClose));
        assert_eq!(split("a[:1"), Err(SplitError::UnexpectedOpen));
        assert_eq!(with_default("h", "80"), Ok(("h", "80")));
        assert_eq!(with_default("[::1]", "443"), Ok(("[::1]", "443")));
    }
}
