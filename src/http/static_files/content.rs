//! The part of static serving that does not care where the bytes come from: preconditions
//! (If-Modified-Since and friends), single byte ranges, the response head, and HTTP dates.

use crate::http::response::{empty, plain, Body};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use std::time::{SystemTime, UNIX_EPOCH};

/// What `prepare` needs to know about the content.
pub(super) struct Info {
    pub(super) size: u64,
    /// Modification time in whole seconds since the epoch; `None` when unknown.
    pub(super) modified: Option<i64>,
    pub(super) content_type: HeaderValue,
}

/// A byte span of the content: `start` and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: u64,
    pub(super) len: u64,
}

pub(super) enum Prepared {
    /// A complete answer (304, 412, 416).
    Done(Response<Body>),
    /// Headers are set; the caller attaches `span` of the content as the body unless HEAD.
    Send(Response<Body>, Span),
}

/// Evaluates conditional headers and Range, and builds the response head.
pub(super) fn prepare(headers: &HeaderMap, info: &Info) -> Prepared {
    let last_modified = info.modified.and_then(http_date);
    match preconditions(headers, info.modified) {
        Some(StatusCode::NOT_MODIFIED) => {
            let mut response = Response::new(empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            if let Some(value) = last_modified {
                response.headers_mut().insert(header::LAST_MODIFIED, value);
            }
            return Prepared::Done(response);
        }
        Some(status) => {
            let mut response = Response::new(empty());
            *response.status_mut() = status;
            return Prepared::Done(response);
        }
        None => {}
    }
    let whole = Span {
        start: 0,
        len: info.size,
    };
    let range = match range_header(headers, info.modified) {
        Some(value) => parse_range(value, info.size),
        None => Ranged::Whole,
    };
    let (status, span) = match range {
        Ranged::Whole => (StatusCode::OK, whole),
        Ranged::Part(span) => (StatusCode::PARTIAL_CONTENT, span),
        Ranged::Unsatisfiable => {
            let mut response = plain(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "invalid range: failed to overlap",
            );
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", info.size)) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Prepared::Done(response);
        }
    };
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    let map = response.headers_mut();
    map.insert(header::CONTENT_TYPE, info.content_type.clone());
    if let Some(value) = last_modified {
        map.insert(header::LAST_MODIFIED, value);
    }
    map.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        let last = span.start + span.len - 1;
        let text = format!("bytes {}-{}/{}", span.start, last, info.size);
        if let Ok(value) = HeaderValue::from_str(&text) {
            map.insert(header::CONTENT_RANGE, value);
        }
    }
    map.insert(header::CONTENT_LENGTH, HeaderValue::from(span.len));
    Prepared::Send(response, span)
}

/// RFC 9110 §13.2.2 order, without ETags: If-Match, If-Unmodified-Since, If-None-Match,
/// If-Modified-Since. Returns 412 or 304 when the request is answered by its preconditions.
/// Only GET and HEAD get here, so a matching If-None-Match always means 304.
fn preconditions(headers: &HeaderMap, modified: Option<i64>) -> Option<StatusCode> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(value) = text(header::IF_MATCH) {
        // Only `*` can match: this server has no entity tags.
        if !value.split(',').any(|tag| tag.trim() == "*") {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if let (Some(value), Some(modified)) = (text(header::IF_UNMODIFIED_SINCE), modified) {
        if parse_http_date(value).is_some_and(|since| modified > since) {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    }
    if let Some(value) = text(header::IF_NONE_MATCH) {
        // `*` matches any existing content; a list of tags cannot match (and then
        // If-Modified-Since is ignored, as RFC 9110 requires).
        return value
            .split(',')
            .any(|tag| tag.trim() == "*")
            .then_some(StatusCode::NOT_MODIFIED);
    }
    let since = text(header::IF_MODIFIED_SINCE).and_then(parse_http_date)?;
    (modified? <= since).then_some(StatusCode::NOT_MODIFIED)
}

/// The Range header, unless an If-Range says the client's copy is stale.
fn range_header(headers: &HeaderMap, modified: Option<i64>) -> Option<&str> {
    let range = headers.get(header::RANGE)?.to_str().ok()?;
    match headers.get(header::IF_RANGE) {
        None => Some(range),
        Some(value) => {
            let date = parse_http_date(value.to_str().ok()?)?;
            (modified? == date).then_some(range)
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ranged {
    Whole,
    Part(Span),
    Unsatisfiable,
}

/// Parses a Range header for content of `size` bytes. Only a single range is honoured;
/// malformed or multi-range requests get the whole content (RFC 9110 allows ignoring Range).
pub(super) fn parse_range(value: &str, size: u64) -> Ranged {
    let value = value.trim();
    let Some(unit) = value.get(..6) else {
        return Ranged::Whole;
    };
    if !unit.eq_ignore_ascii_case("bytes=") {
        return Ranged::Whole;
    }
    let mut specs = value[6..]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return Ranged::Whole;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let Some(n) = number(last) else {
            return Ranged::Whole;
        };
        if n == 0 || size == 0 {
            return Ranged::Unsatisfiable;
        }
        let len = n.min(size);
        return Ranged::Part(Span {
            start: size - len,
            len,
        });
    }
    let Some(start) = number(first) else {
        return Ranged::Whole;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(end) if end >= start => end,
            _ => return Ranged::Whole,
        }
    };
    if start >= size {
        return Ranged::Unsatisfiable;
    }
    let end = end.min(size - 1);
    Ranged::Part(Span {
        start,
        len: end - start + 1,
    })
}

/// A decimal byte position; values too large for u64 saturate (they are past any file).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// Whole seconds since the epoch; `None` for the epoch itself or earlier, which Go treats
/// as "no modification time".
pub(super) fn unix_seconds(time: SystemTime) -> Option<i64> {
    let seconds = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(seconds).ok().filter(|&s| s > 0)
}

/// An IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(super) fn http_date(seconds: i64) -> Option<HeaderValue> {
    let time = chrono::DateTime::from_timestamp(seconds, 0)?;
    let text = time.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    HeaderValue::from_str(&text).ok()
}

/// Parses the three HTTP date formats (IMF-fixdate, RFC 850, asctime) to epoch seconds.
pub(super) fn parse_http_date(text: &str) -> Option<i64> {
    const FORMATS: [&str; 3] = [
        "%a, %d %b %Y %H:%M:%S GMT",
        "%A, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
    ];
    let text = text.trim();
    FORMATS
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .map(|time| time.and_utc().timestamp())
}
