//! `--devconsole`: a single self-contained page for poking at the WebSocket endpoint by hand.
//! It is answered for every non-upgrade request, whatever the path or method.

use crate::http::path::html_escape;
use crate::http::response::Body;
use crate::http::static_files::serve_bytes;
use bytes::Bytes;
use hyper::{HeaderMap, Method, Response};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The page template; `PLACEHOLDER` marks where the escaped URL goes.
const PAGE: &str = include_str!("devconsole.html");
const PLACEHOLDER: &str = "{{WEBSOCKET_URL}}";

/// The Content-Security-Policy sent with the page: nothing may load from anywhere, only the
/// page's own inline script and style run (allowed by their SHA-256), and the only
/// connections are WebSockets (the page's own endpoint, or another one typed into it).
pub fn content_security_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self' ws: wss:; \
             img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            source_hash(element_text(PAGE, "script")),
            source_hash(element_text(PAGE, "style")),
        )
    })
}

/// The text between `<tag>` and `</tag>`: the page has exactly one of each inline element.
fn element_text<'a>(page: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = page.find(&open).map_or(0, |at| at + open.len());
    let end = page[start..]
        .find(&format!("</{tag}>"))
        .map_or(page.len(), |at| start + at);
    &page[start..end]
}

/// A CSP source expression for an inline element: `sha256-` and the base64 digest.
fn source_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    format!("sha256-{}", data_encoding::BASE64.encode(digest.as_ref()))
}

/// The console page for a request: its URL box is prefilled with ws:// or wss:// + host + target.
///
/// `target` is the raw request target (path and query) and `host` the request's Host, both
/// client-controlled, so the URL is HTML-escaped before it goes into the page. The page is
/// served like a static file that changed at `started`, so conditional GET, Range and HEAD
/// behave as for any other file; methods other than HEAD are answered like GET.
pub fn serve(
    method: &Method,
    headers: &HeaderMap,
    host: &str,
    target: &str,
    tls: bool,
    started: SystemTime,
) -> Response<Body> {
    let scheme = if tls { "wss" } else { "ws" };
    let url = html_escape(&format!("{scheme}://{host}{target}"));
    let page = PAGE.replacen(PLACEHOLDER, &url, 1);
    let mut response = serve_bytes(
        method,
        headers,
        Bytes::from(page),
        "text/html; charset=utf-8",
        started,
    );
    response.headers_mut().insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        hyper::header::HeaderValue::from_static(content_security_policy()),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::header;
    use hyper::StatusCode;
    use std::time::{Duration, UNIX_EPOCH};

    fn started() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    async fn page(method: Method, target: &str, tls: bool) -> (Response<Body>, String) {
        let response = serve(
            &method,
            &HeaderMap::new(),
            "example.test:8080",
            target,
            tls,
            started(),
        );
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        (
            Response::from_parts(parts, crate::http::response::empty()),
            text,
        )
    }

    #[tokio::test]
    async fn url_is_prefilled_and_escaped() {
        let (response, text) = page(Method::GET, "/\"><script>alert(1)</script>", false).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            text.contains("ws://example.test:8080/&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;")
        );
        assert!(!text.contains("<script>alert"));
        assert!(!text.contains(PLACEHOLDER));
        let (_, text) = page(Method::GET, "/echo?a=1&b='2'", true).await;
        assert!(text.contains("value=\"wss://example.test:8080/echo?a=1&amp;b=&#39;2&#39;\""));
    }

    #[test]
    fn policy_allows_exactly_the_inline_script_and_style() {
        let policy = content_security_policy();
        assert!(policy.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(!policy.contains("unsafe"));
        let script = element_text(PAGE, "script");
        assert!(script.contains("\"use strict\"") && !script.contains("</script>"));
        assert!(policy.contains(&format!("script-src '{}'", source_hash(script))));
        assert!(policy.contains(&format!(
            "style-src '{}'",
            source_hash(element_text(PAGE, "style"))
        )));
        // The digest of "abc" (FIPS 180-2), base64.
        assert_eq!(
            source_hash("abc"),
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[tokio::test]
    async fn headers_and_methods() {
        let (response, text) = page(Method::POST, "/any/path", false).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            content_security_policy()
        );
        assert_eq!(
            headers[header::LAST_MODIFIED],
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(
            headers[header::CONTENT_LENGTH],
            text.len().to_string().as_str()
        );

        let (response, text) = page(Method::HEAD, "/", false).await;
        assert!(text.is_empty());
        assert!(response.headers().contains_key(header::CONTENT_LENGTH));

        let mut conditional = HeaderMap::new();
        conditional.insert(
            header::IF_MODIFIED_SINCE,
            "Tue, 14 Nov 2023 22:13:20 GMT".parse().unwrap(),
        );
        let response = serve(&Method::GET, &conditional, "h", "/", false, started());
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn page_is_self_contained_and_safe() {
        assert!(PAGE.starts_with("<!--"));
        assert!(PAGE.contains("BSD-2-Clause") || PAGE.contains("Redistribution and use"));
        assert!(PAGE.contains("name=\"viewport\""));
        assert!(PAGE.contains("white-space: pre"));
        assert!(PAGE.contains("websocketdconsole.sendhistory"));
        let ids = [
            "url",
            "connect",
            "disconnect",
            "status",
            "filter",
            "show",
            "copy",
            "clear",
            "log",
            "mode",
            "send",
            "send-button",
            "help",
        ];
        for id in ids {
            assert!(PAGE.contains(&format!("id=\"{id}\"")), "missing #{id}");
        }
        // Our own documentation, not upstream's site; no address that could load anything.
        assert!(PAGE.contains("man websocketd") && PAGE.contains("docs/guide.md"));
        assert!(!PAGE.contains("websocketd.com"));
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
        assert!(!PAGE.contains("src=") && !PAGE.contains("url("));
        // Nothing the Content-Security-Policy would refuse: no inline handlers or style attributes.
        assert!(!PAGE.contains(" style=") && !PAGE.contains(" onclick="));
        assert_eq!(PAGE.matches("<script>").count(), 1);
        assert_eq!(PAGE.matches("<style>").count(), 1);
        assert_eq!(PAGE.matches(PLACEHOLDER).count(), 1);
        // No markup is ever built from data, and nothing is loaded from elsewhere.
        assert!(!PAGE.contains("innerHTML"));
        assert!(!PAGE.contains("outerHTML"));
        assert!(!PAGE.contains("document.write"));
        assert!(!PAGE.contains("<script src"));
        assert!(!PAGE.contains("<link"));
        assert!(!PAGE.contains("@import"));
    }
}
