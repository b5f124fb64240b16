//! `host:port` splitting as Go's net.SplitHostPort. Properties: on success the port has
//! no colon and the input ends with `:port`; the host has no brackets; joining host and
//! port back (brackets around a host with a colon) splits to the same parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use websocketd::hostport::{self, SplitError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match hostport::split(text) {
        Ok((host, port)) => {
            assert!(!port.contains(':'));
            assert!(text.ends_with(&format!(":{port}")));
            assert!(!host.contains(['[', ']']), "{text:?}");
            let joined = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            assert_eq!(hostport::split(&joined), Ok((host, port)), "{joined:?}");
        }
        Err(SplitError::MissingPort) => {
            assert_eq!(hostport::with_default(text, "80"), Ok((text, "80")));
        }
        Err(other) => {
            assert!(hostport::with_default(text, "80").is_err());
            assert!(!other.message(text).is_empty());
        }
    }
});
