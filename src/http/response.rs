//! Response building blocks shared by every route.

use crate::config::CustomHeader;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// The body type of every response: a boxed stream of byte chunks.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A `text/plain` response, as Go's `http.Error` writes them.
pub fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(full(format!("{text}\n")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A `301 Moved Permanently` to `location`, with Go's small HTML body for GET.
pub fn moved(location: &str, is_get: bool, is_head: bool) -> Response<Body> {
    let body = if is_get {
        format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            crate::http::path::html_escape(location)
        )
    } else {
        String::new()
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(value) = HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, value);
    }
    if is_get || is_head {
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    response
}

/// Appends custom headers (duplicates are kept, as with repeated flags).
pub fn add_headers<'a>(
    response: &mut Response<Body>,
    headers: impl IntoIterator<Item = &'a CustomHeader>,
    for_upgrade: bool,
) {
    let map = response.headers_mut();
    for header in headers {
        let value = if for_upgrade {
            header.upgrade_value.clone()
        } else {
            header.value.clone()
        };
        map.append(header.name.clone(), value);
    }
}
