//! Tests for `static_files`, against real files in throw-away directories.

use super::content::{http_date, parse_http_date};
use super::*;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

/// A scratch directory that is removed again when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "websocketd-static-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www")).unwrap();
        Scratch(dir)
    }

    /// The directory that is served.
    fn root(&self) -> PathBuf {
        self.0.join("www")
    }

    /// Writes `content` to `relative` (under the scratch dir, not the root), with a fixed mtime.
    fn write(&self, relative: &str, content: &[u8]) -> PathBuf {
        let file = self.0.join(relative);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, content).unwrap();
        let handle = std::fs::File::options().write(true).open(&file).unwrap();
        handle.set_modified(mtime()).unwrap();
        file
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mtime() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(784_111_777) // Sun, 06 Nov 1994 08:49:37 GMT
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

async fn collect(response: Response<Body>) -> Answer {
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn header_map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_static(value));
    }
    map
}

async fn request(
    root: &Path,
    method: Method,
    pairs: &[(&'static str, &'static str)],
    path: &[u8],
) -> Answer {
    collect(serve(root, &method, &header_map(pairs), path, None).await).await
}

async fn get(root: &Path, path: &str) -> Answer {
    request(root, Method::GET, &[], path.as_bytes()).await
}

#[test]
fn mime_types() {
    let cases = [
        ("a.html", "text/html; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.json", "application/json"),
        ("a.png", "image/png"),
        ("a.svg", "image/svg+xml"),
        ("a.wasm", "application/wasm"),
        ("A.HTML", "text/html; charset=utf-8"),
        ("notes.md", "text/markdown; charset=utf-8"),
        ("photo.jpg", "image/jpeg"),
        ("blob.unknownext", "application/octet-stream"),
        ("Makefile", "application/octet-stream"),
    ];
    for (name, expected) in cases {
        assert_eq!(content_type(name.as_bytes()), expected, "{name}");
    }
}

#[tokio::test]
async fn serves_a_file_with_its_headers() {
    let dir = Scratch::new("plain");
    dir.write("www/app.js", b"console.log(1);\n");
    let answer = get(&dir.root(), "/app.js").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "console.log(1);\n");
    assert_eq!(
        answer.header("content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(answer.header("content-length"), "16");
    assert_eq!(answer.header("accept-ranges"), "bytes");
    assert_eq!(
        answer.header("last-modified"),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );

    let head = request(&dir.root(), Method::HEAD, &[], b"/app.js").await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), "16");

    let post = request(&dir.root(), Method::POST, &[], b"/app.js").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header("allow"), "GET, HEAD");
}

#[tokio::test]
async fn conditional_requests() {
    let dir = Scratch::new("cond");
    dir.write("www/a.txt", b"hello");
    let root = dir.root();
    let same = [("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")];
    let answer = request(&root, Method::GET, &same, b"/a.txt").await;
    assert_eq!(answer.status, StatusCode::NOT_MODIFIED);
    assert!(answer.body.is_empty());
    assert_eq!(
        answer.header("last-modified"),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    assert_eq!(answer.header("content-type"), "");

    let later = [("if-modified-since", "Sunday, 06-Nov-94 09:00:00 GMT")];
    let answer = request(&root, Method::HEAD, &later, b"/a.txt").await;
    assert_eq!(answer.status, StatusCode::NOT_MODIFIED);

    let earlier = [("if-modified-since", "Sun Nov  6 08:49:36 1994")];
    let answer = request(&root, Method::GET, &earlier, b"/a.txt").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "hello");

    let garbage = [("if-modified-since", "yesterday")];
    let answer = request(&root, Method::GET, &garbage, b"/a.txt").await;
    assert_eq!(answer.status, StatusCode::OK);

    // An entity-tag list wins over the date, and cannot match here.
    let tagged = [
        ("if-none-match", "\"abc\""),
        ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ];
    let answer = request(&root, Method::GET, &tagged, b"/a.txt").await;
    assert_eq!(answer.status, StatusCode::OK);

    let stale = [("if-unmodified-since", "Sat, 05 Nov 1994 00:00:00 GMT")];
    let answer = request(&root, Method::GET, &stale, b"/a.txt").await;
    assert_eq!(answer.status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn byte_ranges() {
    let dir = Scratch::new("range");
    dir.write("www/digits.txt", b"0123456789");
    let root = dir.root();
    let cases: [(&'static str, StatusCode, &str, &str); 9] = [
        (
            "bytes=2-5",
            StatusCode::PARTIAL_CONTENT,
            "bytes 2-5/10",
            "2345",
        ),
        (
            "bytes=7-",
            StatusCode::PARTIAL_CONTENT,
            "bytes 7-9/10",
            "789",
        ),
        (
            "bytes=-3",
            StatusCode::PARTIAL_CONTENT,
            "bytes 7-9/10",
            "789",
        ),
        (
            "bytes=-30",
            StatusCode::PARTIAL_CONTENT,
            "bytes 0-9/10",
            "0123456789",
        ),
        (
            "bytes=8-99999999999999999999999",
            StatusCode::PARTIAL_CONTENT,
            "bytes 8-9/10",
            "89",
        ),
        ("bytes=5-2", StatusCode::OK, "", "0123456789"),
        ("bytes=0-1,4-5", StatusCode::OK, "", "0123456789"),
        ("lines=1-2", StatusCode::OK, "", "0123456789"),
        ("bytes=x-", StatusCode::OK, "", "0123456789"),
    ];
    for (range, status, content_range, body) in cases {
        let answer = request(&root, Method::GET, &[("range", range)], b"/digits.txt").await;
        assert_eq!(answer.status, status, "{range}");
        assert_eq!(answer.header("content-range"), content_range, "{range}");
        assert_eq!(answer.text(), body, "{range}");
        assert_eq!(
            answer.header("content-length"),
            body.len().to_string(),
            "{range}"
        );
    }
    for range in ["bytes=10-", "bytes=10-20", "bytes=-0"] {
        let answer = request(&root, Method::GET, &[("range", range)], b"/digits.txt").await;
        assert_eq!(answer.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(answer.header("content-range"), "bytes */10", "{range}");
    }
    let fresh = [
        ("range", "bytes=0-0"),
        ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ];
    let answer = request(&root, Method::GET, &fresh, b"/digits.txt").await;
    assert_eq!(
        (answer.status, answer.text()),
        (StatusCode::PARTIAL_CONTENT, "0")
    );
    let stale = [
        ("range", "bytes=0-0"),
        ("if-range", "Sat, 05 Nov 1994 08:49:37 GMT"),
    ];
    let answer = request(&root, Method::GET, &stale, b"/digits.txt").await;
    assert_eq!(answer.status, StatusCode::OK);
    let head = request(
        &root,
        Method::HEAD,
        &[("range", "bytes=1-2")],
        b"/digits.txt",
    )
    .await;
    assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(head.header("content-length"), "2");
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn directories_and_redirects() {
    let dir = Scratch::new("dirs");
    dir.write("www/site/index.html", b"<p>index</p>");
    dir.write("www/site/page.txt", b"page");
    dir.write("www/empty/keep.bin", b"x");
    let root = dir.root();

    let answer = get(&root, "/site").await;
    assert_eq!(answer.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(answer.header("location"), "site/");
    let method = Method::GET;
    let headers = HeaderMap::new();
    let with_query = serve(&root, &method, &headers, b"/site", Some("a=1&b")).await;
    assert_eq!(with_query.headers()["location"], "site/?a=1&b");

    let answer = get(&root, "/site/index.html").await;
    assert_eq!(answer.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(answer.header("location"), "./");

    let answer = get(&root, "/site/page.txt/").await;
    assert_eq!(answer.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(answer.header("location"), "../page.txt");

    let answer = get(&root, "/site/").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "<p>index</p>");
    assert_eq!(answer.header("content-type"), "text/html; charset=utf-8");

    let answer = get(&root, "/empty/").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.text(), "404 page not found\n");

    let answer = get(&root, "/nothing-here.txt").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.text(), "404 page not found\n");

    let answer = get(&root, "/").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[cfg(unix)]
#[tokio::test]
async fn hidden_names_and_escapes_are_refused() {
    use std::os::unix::fs::symlink;
    let dir = Scratch::new("confine");
    dir.write("www/.env", b"SECRET=1");
    dir.write("www/.git/config", b"[core]");
    dir.write("www/public/ok.txt", b"ok");
    dir.write("outside.txt", b"outside");
    dir.write("www/.hidden/file.txt", b"hidden");
    let root = dir.root();
    symlink(dir.0.join("outside.txt"), root.join("out.txt")).unwrap();
    symlink("..", root.join("parent")).unwrap();
    symlink("public/ok.txt", root.join("in.txt")).unwrap();
    symlink("public", root.join("linked")).unwrap();
    symlink(".env", root.join("env.txt")).unwrap();
    symlink(".hidden", root.join("shown")).unwrap();

    for path in [
        "/.env",
        "/.git/config",
        "/.git/",
        "/out.txt",
        "/parent/outside.txt",
        "/env.txt",
        "/shown/file.txt",
        "/../outside.txt",
        "/public/../../outside.txt",
        "//outside.txt",
        "/public/ok.txt\0.png",
    ] {
        let answer = get(&root, path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path:?}");
        assert_eq!(answer.text(), "404 page not found\n", "{path:?}");
    }
    let absolute = format!("/{}", dir.0.join("outside.txt").display());
    assert_eq!(get(&root, &absolute).await.status, StatusCode::NOT_FOUND);

    assert_eq!(get(&root, "/in.txt").await.text(), "ok");
    assert_eq!(get(&root, "/linked/ok.txt").await.text(), "ok");
    // A root given through a symlink still works.
    symlink(&root, dir.0.join("alias")).unwrap();
    assert_eq!(
        get(&dir.0.join("alias"), "/public/ok.txt").await.text(),
        "ok"
    );
    // Names that are not UTF-8 are still file names on Unix.
    dir.write("www/caf\u{e9}.txt", b"latin");
    let name = b"/caf\xc3\xa9.txt";
    assert_eq!(request(&root, Method::GET, &[], name).await.text(), "latin");
    let answer = request(&root, Method::GET, &[], b"/caf\xe9.txt").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // A missing root is a 404 for everything, not an error.
    assert_eq!(
        get(&dir.0.join("nope"), "/").await.status,
        StatusCode::NOT_FOUND
    );
}

#[cfg(unix)]
#[tokio::test]
async fn unreadable_file_is_forbidden() {
    use std::os::unix::fs::PermissionsExt;
    if rustix::process::geteuid().is_root() {
        return; // root reads everything; the check means nothing here
    }
    let dir = Scratch::new("perm");
    let file = dir.write("www/locked.txt", b"no");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    assert_eq!(
        get(&dir.root(), "/locked.txt").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn large_file_streams_byte_exact() {
    let dir = Scratch::new("large");
    let content: Vec<u8> = (0..1024 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    dir.write("www/big.bin", &content);
    let root = dir.root();
    let answer = get(&root, "/big.bin").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-length"), "1048576");
    assert_eq!(answer.header("content-type"), "application/octet-stream");
    assert!(answer.body[..] == content[..], "body differs");

    // The body really arrives in bounded chunks rather than as one buffer.
    let response = serve(&root, &Method::GET, &HeaderMap::new(), b"/big.bin", None).await;
    let mut body = response.into_body();
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        assert!(data.len() as u64 <= CHUNK);
        frames += 1;
    }
    assert!(frames as u64 >= (1 << 20) / CHUNK, "only {frames} frames");

    let range = [("range", "bytes=65530-200000")];
    let answer = request(&root, Method::GET, &range, b"/big.bin").await;
    assert_eq!(answer.status, StatusCode::PARTIAL_CONTENT);
    assert!(answer.body[..] == content[65530..=200_000], "range differs");
}

#[tokio::test]
async fn in_memory_content() {
    let content = Bytes::from_static(b"<html>console</html>");
    let serve = |method: Method, pairs: &[(&'static str, &'static str)]| {
        serve_bytes(
            &method,
            &header_map(pairs),
            content.clone(),
            "text/html; charset=utf-8",
            mtime(),
        )
    };
    let answer = collect(serve(Method::PUT, &[])).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "<html>console</html>");
    assert_eq!(
        answer.header("last-modified"),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    let answer = collect(serve(Method::GET, &[("range", "bytes=-8")])).await;
    assert_eq!(answer.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(answer.text(), "e</html>");
    let answer = collect(serve(Method::HEAD, &[])).await;
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("content-length"), "20");
}

#[test]
fn http_dates() {
    assert_eq!(
        http_date(784_111_777).unwrap(),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    for text in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(parse_http_date(text), Some(784_111_777), "{text}");
    }
    assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37"), None);
    assert_eq!(unix_seconds(UNIX_EPOCH), None);
}
