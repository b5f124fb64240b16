//! Static files for `--staticdir`: Go FileServer-style GET/HEAD with conditional requests
//! and single byte ranges, hardened so that nothing outside the root, and no dotfile, is
//! ever served. The router logs the request; this module only answers it.

use crate::http::path;
use crate::http::response::{empty, plain, Body};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How much of a file is read into memory at a time while streaming it.
const CHUNK: u64 = 64 * 1024;

/// Serves the decoded, canonical URL `path` (starts with '/') from directory `root`.
///
/// This is the `--staticdir` handler: the router has already answered non-canonical paths
/// with a redirect, but everything is re-checked here so that a file outside `root` can
/// never be read, whatever path comes in.
pub async fn serve(
    root: &Path,
    method: &Method,
    headers: &HeaderMap,
    path: &[u8],
) -> Response<Body> {
    serve_with_query(root, method, headers, path, None).await
}

/// Serves in-memory content with the same conditional-GET / Range / HEAD handling (the dev console uses it).
///
/// HEAD gets the headers only; every other method is answered like GET, because the
/// console page is served for any method.
pub fn serve_bytes(
    method: &Method,
    headers: &HeaderMap,
    content: Bytes,
    content_type: &'static str,
    last_modified: SystemTime,
) -> Response<Body> {
    let info = Info {
        size: content.len() as u64,
        modified: unix_seconds(last_modified),
        content_type: HeaderValue::from_static(content_type),
    };
    match prepare(headers, &info) {
        Prepared::Done(response) => response,
        Prepared::Send(mut response, span) => {
            if method != Method::HEAD {
                let start = usize::try_from(span.start).unwrap_or(usize::MAX);
                let end = usize::try_from(span.start + span.len).unwrap_or(usize::MAX);
                *response.body_mut() = crate::http::response::full(content.slice(start..end));
            }
            response
        }
    }
}

/// `serve`, with the raw query string that a directory redirect must keep.
async fn serve_with_query(
    root: &Path,
    method: &Method,
    headers: &HeaderMap,
    url_path: &[u8],
    query: Option<&str>,
) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if path::has_hidden_segment(url_path) {
        return not_found();
    }
    if url_path.ends_with(b"/index.html") {
        return local_redirect(&path::relative_location("./", b"", "", query));
    }
    let found = match locate(root, url_path).await {
        Ok(Found::File(found)) => found,
        Ok(Found::Redirect { prefix, suffix }) => {
            let name = path::last_segment(url_path);
            return local_redirect(&path::relative_location(prefix, name, suffix, query));
        }
        Err(response) => return response,
    };
    let info = Info {
        size: found.size,
        modified: found.modified.and_then(unix_seconds),
        content_type: content_type(&found.name),
    };
    match prepare(headers, &info) {
        Prepared::Done(response) => response,
        Prepared::Send(mut response, span) => {
            if method != Method::HEAD {
                *response.body_mut() = file_body(found.file, span);
            }
            response
        }
    }
}

/// What a URL path turned out to name.
enum Found {
    File(OpenFile),
    /// A local redirect to `prefix` + the request's last segment + `suffix`.
    Redirect {
        prefix: &'static str,
        suffix: &'static str,
    },
}

/// An opened regular file inside the root.
struct OpenFile {
    file: tokio::fs::File,
    size: u64,
    modified: Option<SystemTime>,
    /// The name whose extension decides the Content-Type.
    name: Vec<u8>,
}

/// Resolves `url_path` under `root`, refusing anything whose real path leaves the real root
/// or passes through a dot-directory.
async fn locate(root: &Path, url_path: &[u8]) -> Result<Found, Response<Body>> {
    let mut relative = PathBuf::new();
    for segment in url_path.split(|&b| b == b'/').filter(|s| !s.is_empty()) {
        if segment.first() == Some(&b'.') {
            return Err(not_found());
        }
        relative.push(segment_name(segment).ok_or_else(not_found)?);
    }
    let real_root = tokio::fs::canonicalize(root).await.map_err(failure)?;
    let real = confined(&real_root, &real_root.join(&relative)).await?;
    let metadata = tokio::fs::metadata(&real).await.map_err(failure)?;
    let slash = url_path.ends_with(b"/");
    if metadata.is_dir() {
        if !slash {
            return Ok(Found::Redirect {
                prefix: "",
                suffix: "/",
            });
        }
        let index = confined(&real_root, &real.join("index.html")).await?;
        return open(&index, b"index.html".to_vec()).await.map(Found::File);
    }
    if relative.as_os_str().is_empty() {
        return Err(not_found());
    }
    if slash {
        return Ok(Found::Redirect {
            prefix: "../",
            suffix: "",
        });
    }
    let name = path::last_segment(url_path).to_vec();
    open(&real, name).await.map(Found::File)
}

/// The real path of `candidate`, provided it stays inside `real_root` without passing
/// through a name that starts with a dot (a symlink can point at one).
async fn confined(real_root: &Path, candidate: &Path) -> Result<PathBuf, Response<Body>> {
    let real = tokio::fs::canonicalize(candidate).await.map_err(failure)?;
    let inside = real.strip_prefix(real_root).map_err(|_| not_found())?;
    let hidden = inside
        .components()
        .any(|c| c.as_os_str().as_encoded_bytes().first() == Some(&b'.'));
    if hidden {
        return Err(not_found());
    }
    Ok(real)
}

/// Opens a confined path as a regular file (no FIFOs or devices: reading those could hang).
async fn open(real: &Path, name: Vec<u8>) -> Result<OpenFile, Response<Body>> {
    let mut options = tokio::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // The path is already free of symlinks; refuse one swapped in since then.
        let nofollow = rustix::fs::OFlags::NOFOLLOW.bits();
        options.custom_flags(i32::try_from(nofollow).unwrap_or(0));
    }
    let file = options.open(real).await.map_err(failure)?;
    let metadata = file.metadata().await.map_err(failure)?;
    if !metadata.is_file() {
        return Err(not_found());
    }
    Ok(OpenFile {
        file,
        size: metadata.len(),
        modified: metadata.modified().ok(),
        name,
    })
}

/// A URL segment as a file name; `None` when it cannot name a file.
#[cfg(unix)]
fn segment_name(segment: &[u8]) -> Option<&std::ffi::OsStr> {
    use std::os::unix::ffi::OsStrExt;
    (!segment.contains(&0)).then(|| std::ffi::OsStr::from_bytes(segment))
}

/// A URL segment as a file name; `None` when it cannot name a file.
#[cfg(not(unix))]
fn segment_name(segment: &[u8]) -> Option<&std::ffi::OsStr> {
    let text = std::str::from_utf8(segment).ok()?;
    (!text.contains(['\0', '\\', ':'])).then(|| std::ffi::OsStr::new(text))
}

/// The HTTP answer for a filesystem error, following Go's FileServer.
fn failure(err: io::Error) -> Response<Body> {
    match err.kind() {
        io::ErrorKind::PermissionDenied => plain(StatusCode::FORBIDDEN, "403 Forbidden"),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidInput => {
            not_found()
        }
        _ if is_bad_name(&err) => not_found(),
        _ => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error",
        ),
    }
}

/// Errors that mean "no such file" for a name a client made up (too long, symlink loop).
fn is_bad_name(err: &io::Error) -> bool {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        matches!(
            Errno::from_io_error(err),
            Some(Errno::NAMETOOLONG | Errno::LOOP)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = err;
        false
    }
}

fn not_found() -> Response<Body> {
    plain(StatusCode::NOT_FOUND, "404 page not found")
}

/// A 301 to a relative location, without a body (Go's `localRedirect`).
fn local_redirect(location: &str) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The Content-Type for a file name: a few web types are pinned so that they do not depend
/// on mime_guess's tables; text types are declared UTF-8.
fn content_type(name: &[u8]) -> HeaderValue {
    let extension = match name.iter().rposition(|&b| b == b'.') {
        Some(dot) => String::from_utf8_lossy(&name[dot + 1..]).to_ascii_lowercase(),
        None => String::new(),
    };
    let pinned = match extension.as_str() {
        "html" | "htm" => Some("text/html; charset=utf-8"),
        "css" => Some("text/css; charset=utf-8"),
        "js" | "mjs" => Some("text/javascript; charset=utf-8"),
        "json" => Some("application/json"),
        "png" => Some("image/png"),
        "svg" => Some("image/svg+xml"),
        "wasm" => Some("application/wasm"),
        "txt" => Some("text/plain; charset=utf-8"),
        "" => Some("application/octet-stream"),
        _ => None,
    };
    if let Some(pinned) = pinned {
        return HeaderValue::from_static(pinned);
    }
    let Some(mime) = mime_guess::from_ext(&extension).first() else {
        return HeaderValue::from_static("application/octet-stream");
    };
    let text = if mime.type_() == mime_guess::mime::TEXT && mime.get_param("charset").is_none() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// What `prepare` needs to know about the content.
struct Info {
    size: u64,
    /// Modification time in whole seconds since the epoch; `None` when unknown.
    modified: Option<i64>,
    content_type: HeaderValue,
}

/// A byte span of the content: `start` and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    len: u64,
}

enum Prepared {
    /// A complete answer (304, 412, 416).
    Done(Response<Body>),
    /// Headers are set; the caller attaches `span` of the content as the body unless HEAD.
    Send(Response<Body>, Span),
}

/// Evaluates conditional headers and Range, and builds the response head.
fn prepare(headers: &HeaderMap, info: &Info) -> Prepared {
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
enum Ranged {
    Whole,
    Part(Span),
    Unsatisfiable,
}

/// Parses a Range header for content of `size` bytes. Only a single range is honoured;
/// malformed or multi-range requests get the whole content (RFC 9110 allows ignoring Range).
fn parse_range(value: &str, size: u64) -> Ranged {
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

/// Streams `span` of `file` in chunks of at most `CHUNK` bytes.
fn file_body(file: tokio::fs::File, span: Span) -> Body {
    let state = (file, span, false);
    let stream = futures_util::stream::unfold(state, |(mut file, span, seeked)| async move {
        if span.len == 0 {
            return None;
        }
        let done = Span { start: 0, len: 0 };
        if !seeked {
            if let Err(err) = file.seek(SeekFrom::Start(span.start)).await {
                return Some((Err(err), (file, done, true)));
            }
        }
        let want = usize::try_from(span.len.min(CHUNK)).unwrap_or(64 * 1024);
        let mut buffer = vec![0; want];
        match file.read(&mut buffer).await {
            Ok(0) => {
                let err = io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while sent");
                Some((Err(err), (file, done, true)))
            }
            Ok(n) => {
                buffer.truncate(n);
                let rest = Span {
                    start: span.start + n as u64,
                    len: span.len - n as u64,
                };
                Some((Ok(Frame::data(Bytes::from(buffer))), (file, rest, true)))
            }
            Err(err) => Some((Err(err), (file, done, true))),
        }
    });
    StreamBody::new(stream).boxed()
}

/// Whole seconds since the epoch; `None` for the epoch itself or earlier, which Go treats
/// as "no modification time".
fn unix_seconds(time: SystemTime) -> Option<i64> {
    let seconds = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(seconds).ok().filter(|&s| s > 0)
}

/// An IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(seconds: i64) -> Option<HeaderValue> {
    let time = chrono::DateTime::from_timestamp(seconds, 0)?;
    let text = time.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    HeaderValue::from_str(&text).ok()
}

/// Parses the three HTTP date formats (IMF-fixdate, RFC 850, asctime) to epoch seconds.
fn parse_http_date(text: &str) -> Option<i64> {
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

#[cfg(test)]
#[path = "static_files_tests.rs"]
mod tests;
