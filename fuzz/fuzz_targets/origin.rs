//! Origin header parsing and the origin policy. Properties: a parsed origin has a
//! lower-case scheme and an authority without `/`, `?` or `#`; with no policy every
//! origin is allowed; an origin equal to the request's own `http://host` passes
//! `--sameorigin`; an origin listed verbatim in `--origin` passes that list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use websocketd::ws::origin::{parse_origin, OriginPolicy, Verdict};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `origin \n host \n allowed-list`
    let mut parts = text.splitn(3, '\n');
    let origin = parts.next().unwrap_or("");
    let host = parts.next().unwrap_or("");
    let list = parts.next();

    if let Some(parsed) = parse_origin(origin) {
        assert_eq!(parsed.scheme, parsed.scheme.to_ascii_lowercase());
        assert!(!parsed.scheme.is_empty());
        assert!(!parsed.host.contains(['/', '?', '#', '@']), "{parsed:?}");
    }
    assert_eq!(
        OriginPolicy::new(false, None).check(Some(origin), host, false),
        Verdict::Allowed
    );
    for same in [false, true] {
        let policy = OriginPolicy::new(same, list);
        let _ = policy.check(Some(origin), host, same);
        let _ = policy.check(None, host, false);
    }
    let own = format!("http://{host}");
    let self_parsed = parse_origin(&own);
    let clean_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if clean_host && self_parsed.is_some() {
        assert_eq!(
            OriginPolicy::new(true, None).check(Some(&own), host, false),
            Verdict::Allowed,
            "{own}"
        );
        assert_eq!(
            OriginPolicy::new(false, Some(&own)).check(Some(&own), host, false),
            Verdict::Allowed,
            "{own}"
        );
    }
});
