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
use std::time::SystemTime;

mod content;

use content::{prepare, unix_seconds, Info, Prepared, Span};

/// Files (or ranges) up to this size are read in one go and sent as one chunk.
const INLINE: u64 = 1024 * 1024;
/// How much of a larger file is read into memory at a time while streaming it.
const CHUNK: u64 = 1024 * 1024;

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

/// Serves the decoded, canonical URL `path` (starts with '/') from directory `root`;
/// `query` is the raw query string, which a directory redirect keeps.
///
/// This is the `--staticdir` handler: the router has already answered non-canonical paths
/// with a redirect, but everything is re-checked here so that a file outside `root` can
/// never be read, whatever path comes in.
pub async fn serve(
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
    let found = match locate(root, url_path) {
        Ok(Found::File(found)) => found,
        Ok(Found::Redirect { prefix, suffix }) => {
            let name = path::last_segment(url_path);
            return local_redirect(&path::relative_location(prefix, name, suffix, query));
        }
        Err(response) => return *response,
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
    file: std::fs::File,
    size: u64,
    modified: Option<SystemTime>,
    /// The name whose extension decides the Content-Type.
    name: Vec<u8>,
}

/// Resolves `url_path` under `root`, refusing anything whose real path leaves the real root
/// or passes through a dot-directory. These are a few quick system calls on cached
/// metadata, made directly rather than through the blocking pool.
fn locate(root: &Path, url_path: &[u8]) -> Result<Found, Refusal> {
    let mut relative = PathBuf::new();
    for segment in url_path.split(|&b| b == b'/').filter(|s| !s.is_empty()) {
        if segment.first() == Some(&b'.') {
            return Err(Box::new(not_found()));
        }
        relative.push(segment_name(segment).ok_or_else(|| Box::new(not_found()))?);
    }
    let real_root = std::fs::canonicalize(root).map_err(refuse)?;
    let real = confined(&real_root, &real_root.join(&relative))?;
    let metadata = std::fs::metadata(&real).map_err(refuse)?;
    let slash = url_path.ends_with(b"/");
    if metadata.is_dir() {
        if !slash {
            return Ok(Found::Redirect {
                prefix: "",
                suffix: "/",
            });
        }
        let index = confined(&real_root, &real.join("index.html"))?;
        return open(&index, b"index.html".to_vec()).map(Found::File);
    }
    if relative.as_os_str().is_empty() {
        return Err(Box::new(not_found()));
    }
    if slash {
        return Ok(Found::Redirect {
            prefix: "../",
            suffix: "",
        });
    }
    let name = path::last_segment(url_path).to_vec();
    open(&real, name).map(Found::File)
}

/// The real path of `candidate`, provided it stays inside `real_root` without passing
/// through a name that starts with a dot (a symlink can point at one).
fn confined(real_root: &Path, candidate: &Path) -> Result<PathBuf, Refusal> {
    let real = std::fs::canonicalize(candidate).map_err(refuse)?;
    let inside = real
        .strip_prefix(real_root)
        .map_err(|_| Box::new(not_found()))?;
    let hidden = inside
        .components()
        .any(|c| c.as_os_str().as_encoded_bytes().first() == Some(&b'.'));
    if hidden {
        return Err(Box::new(not_found()));
    }
    Ok(real)
}

/// Opens a confined path as a regular file (no FIFOs or devices: reading those could hang).
fn open(real: &Path, name: Vec<u8>) -> Result<OpenFile, Refusal> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // The path is already free of symlinks; refuse one swapped in since then.
        let nofollow = rustix::fs::OFlags::NOFOLLOW.bits();
        options.custom_flags(i32::try_from(nofollow).unwrap_or(0));
    }
    let file = options.open(real).map_err(refuse)?;
    let metadata = file.metadata().map_err(refuse)?;
    if !metadata.is_file() {
        return Err(Box::new(not_found()));
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

/// A refusal: the response to send instead of a file (boxed, it is large).
type Refusal = Box<Response<Body>>;

fn refuse(err: io::Error) -> Refusal {
    Box::new(failure(err))
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

/// The body for `span` of `file`: small spans are read at once; larger ones are streamed
/// in chunks read on the blocking pool.
fn file_body(file: std::fs::File, span: Span) -> Body {
    if span.len <= INLINE {
        let read = read_span(&file, span.start, span.len);
        let stream = futures_util::stream::once(async move { read.map(Frame::data) });
        return StreamBody::new(stream).boxed();
    }
    let state = (Some(file), span);
    let stream = futures_util::stream::unfold(state, |(file, span)| async move {
        let file = file?;
        if span.len == 0 {
            return None;
        }
        let want = span.len.min(CHUNK);
        let start = span.start;
        let read = tokio::task::spawn_blocking(move || {
            let bytes = read_span(&file, start, want);
            (file, bytes)
        })
        .await;
        match read {
            Ok((file, Ok(bytes))) => {
                let rest = Span {
                    start: span.start + bytes.len() as u64,
                    len: span.len - bytes.len() as u64,
                };
                Some((Ok(Frame::data(bytes)), (Some(file), rest)))
            }
            Ok((_, Err(err))) => Some((Err(err), (None, span))),
            Err(join) => Some((Err(io::Error::other(join)), (None, span))),
        }
    });
    StreamBody::new(stream).boxed()
}

/// Reads `len` bytes at `start`; a file that shrank meanwhile is an error.
fn read_span(file: &std::fs::File, start: u64, len: u64) -> io::Result<Bytes> {
    use std::io::{Read, Seek};
    let mut reader = file;
    reader.seek(SeekFrom::Start(start))?;
    let mut buffer = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    reader.take(len).read_to_end(&mut buffer)?;
    if (buffer.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shrank while sent",
        ));
    }
    Ok(Bytes::from(buffer))
}

#[cfg(test)]
mod tests;
