//! End-to-end tests: a real hyper server whose service calls [`serve`], shell-script CGI
//! programs in a temporary directory, and requests written by hand over TCP.

use super::*;
use crate::http::path;
use crate::process::ladder::group_has_live_member;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Upper bound for a whole test.
const TEST_LIMIT: Duration = Duration::from_secs(30);
/// Upper bound for one awaited condition.
const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Test scripts: path under the CGI directory, shell body, file mode. Hanging scripts save
/// their PID (= process group) in the state file their query string names.
const SCRIPTS: &[(&str, &str, u32)] = &[
    (
        "hello.cgi",
        r"printf 'Content-Type: text/plain\r\n\r\nhello\n'",
        0o755,
    ),
    (
        "echo.cgi",
        r#"printf 'Content-Type: text/plain\n\n'
echo "length=$CONTENT_LENGTH"
cat"#,
        0o755,
    ),
    (
        "created.cgi",
        r"printf 'Status: 201 Created\nContent-Type: text/plain\n'
printf 'X-Extra: one\nX-Extra: two\n\nmade\n'",
        0o755,
    ),
    (
        "redirect.cgi",
        r"printf 'Location: http://example.com/there\n\n'",
        0o755,
    ),
    ("noheaders.cgi", "echo 'a body without any headers'", 0o755),
    (
        "env.cgi",
        r"printf 'Content-Type: text/plain\n\n'; env",
        0o755,
    ),
    (
        "hang.cgi",
        r#"echo $$ > "../state/$QUERY_STRING.tmp"
mv "../state/$QUERY_STRING.tmp" "../state/$QUERY_STRING"
printf 'Content-Type: text/plain\n\nstarted\n'
sleep 60"#,
        0o755,
    ),
    (
        "hang-early.cgi",
        r#"echo $$ > "../state/$QUERY_STRING.tmp"
mv "../state/$QUERY_STRING.tmp" "../state/$QUERY_STRING"
sleep 60"#,
        0o755,
    ),
    (
        "slow.cgi",
        r#"printf 'Content-Type: text/plain\n\nfirst\n'
while [ ! -e "../state/$QUERY_STRING" ]; do sleep 0.02; done
echo second"#,
        0o755,
    ),
    (
        "sub/pwd.cgi",
        r"printf 'Content-Type: text/plain\n\n'; pwd",
        0o755,
    ),
    (
        "noexec.cgi",
        r"printf 'Content-Type: text/plain\n\nnever\n'",
        0o644,
    ),
    (
        ".hidden.cgi",
        r"printf 'Content-Type: text/plain\n\nhidden\n'",
        0o755,
    ),
    (
        ".dir/x.cgi",
        r"printf 'Content-Type: text/plain\n\nhidden\n'",
        0o755,
    ),
    (
        "../outside/escape.cgi",
        r"printf 'Content-Type: text/plain\n\nescaped\n'",
        0o755,
    ),
    (
        "stubborn.cgi",
        r#"trap '' TERM
echo $$ > "../state/$QUERY_STRING.tmp"
mv "../state/$QUERY_STRING.tmp" "../state/$QUERY_STRING"
printf 'Content-Type: text/plain\n\nstarted\n'
sleep 60"#,
        0o755,
    ),
    (
        "sized.cgi",
        r#"printf 'Content-Type: text/plain\nContent-Length: 6\n\nhello\n'
while [ ! -e "../state/$QUERY_STRING" ]; do sleep 0.02; done
echo > "../state/$QUERY_STRING.done""#,
        0o755,
    ),
    (
        "stderr.cgi",
        r"echo 'a note for stderr' >&2
printf 'Content-Type: text/plain\n\nok\n'",
        0o755,
    ),
];

/// The scripts every test uses, written once before any of them runs (writing an
/// executable while other threads start programs is what makes exec fail with ETXTBSY).
struct Fixture {
    root: PathBuf,
    state: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let temp = std::env::temp_dir();
        let prefix = "websocketd-cgi-tests-";
        // Remove what earlier test runs left behind.
        if let Ok(entries) = fs::read_dir(&temp) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix(prefix) {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = fs::remove_dir_all(entry.path());
                    }
                }
            }
        }
        let base = temp.join(format!("{prefix}{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let root = base.join("cgi");
        let state = base.join("state");
        for dir in [&root, &state, &base.join("outside")] {
            fs::create_dir_all(dir).unwrap();
        }
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::create_dir_all(root.join(".dir")).unwrap();
        for &(name, body, mode) in SCRIPTS {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(root.join(name))
                .unwrap();
            file.write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
                .unwrap();
        }
        std::os::unix::fs::symlink("../outside/escape.cgi", root.join("link-out.cgi")).unwrap();
        std::os::unix::fs::symlink("hello.cgi", root.join("link-in.cgi")).unwrap();
        Fixture { root, state }
    })
}

/// A name no other test uses (for state files).
fn unique(name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

struct Shared {
    root: PathBuf,
    forks: ForkLimiter,
    passenv: Vec<(String, OsString)>,
}

/// A test server on 127.0.0.1; stops accepting when dropped.
struct Server {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn start(max_forks: Option<usize>) -> Server {
    let shared = Arc::new(Shared {
        root: fixture().root.clone(),
        forks: ForkLimiter::new(max_forks),
        passenv: Vec::new(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        while let Ok((stream, remote)) = listener.accept().await {
            let shared = shared.clone();
            let peer = Peer::Tcp {
                ip: remote.ip().to_string(),
                port: Some(remote.port()),
            };
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let shared = shared.clone();
                    let peer = peer.clone();
                    async move { Ok::<_, Infallible>(handle(request, &shared, &peer).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { addr, accept }
}

async fn handle(request: Request<Incoming>, shared: &Shared, peer: &Peer) -> Response<Body> {
    let decoded = path::decode(request.uri().path()).unwrap_or_default();
    let canonical = path::canonical(&decoded);
    let context = CgiContext {
        peer,
        tls: false,
        passenv: &shared.passenv,
        forks: &shared.forks,
    };
    let mut scope = Scope::new();
    scope.associate("url", request.uri().to_string());
    match serve(&shared.root, request, &canonical, &context, &mut scope).await {
        CgiOutcome::Response(response) => response,
        CgiOutcome::NotCgi(_) => plain(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// A parsed response.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a GET (with `Connection: close`) and reads the whole response.
async fn get(addr: SocketAddr, target: &str) -> Answer {
    let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

async fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = open(addr, request).await;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT_LIMIT, stream.read_to_end(&mut raw))
        .await
        .expect("response within the limit")
        .unwrap();
    parse(&raw)
}

/// Connects and writes `request`.
async fn open(addr: SocketAddr, request: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    stream
}

fn parse(raw: &[u8]) -> Answer {
    let end = memchr::memmem::find(raw, b"\r\n\r\n").expect("complete head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    let mut answer = Answer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    };
    if answer.header("transfer-encoding") == ["chunked"] {
        answer.body = dechunk(&answer.body);
    }
    answer
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = memchr::memmem::find(data, b"\r\n").expect("chunk size line");
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

/// Reads from `stream` until what arrived contains `needle`.
async fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT_LIMIT;
    while memchr::memmem::find(&seen, needle).is_none() {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{:?} not seen in {:?}", needle, seen))
            .unwrap();
        assert!(
            n > 0,
            "connection closed; got {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    seen
}

/// Polls `check` until it yields a value, failing the test after [`WAIT_LIMIT`].
async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The PID a hanging script wrote to its state file (its process group ID too).
async fn script_pid(name: &str) -> u32 {
    let file = fixture().state.join(name);
    wait_for("the script's PID file", || {
        fs::read_to_string(&file).ok()?.trim().parse().ok()
    })
    .await
}

async fn wait_group_gone(pid: u32) {
    wait_for("the script's process group to end", || {
        (!group_has_live_member(pid)).then_some(())
    })
    .await;
}

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("test finished in time");
}

#[tokio::test]
async fn post_body_reaches_the_script() {
    bounded(async {
        let server = start(None).await;
        let answer = exchange(
            server.addr,
            b"POST /echo.cgi HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\
              Content-Length: 11\r\n\r\nhello world",
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), ["text/plain"]);
        assert_eq!(answer.text(), "length=11\nhello world");
    })
    .await;
}

#[tokio::test]
async fn chunked_request_body_is_streamed() {
    bounded(async {
        let server = start(None).await;
        let answer = exchange(
            server.addr,
            b"POST /echo.cgi HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "length=\nhello world");
    })
    .await;
}

#[tokio::test]
async fn status_header_is_honoured() {
    bounded(async {
        let server = start(None).await;
        let answer = get(server.addr, "/created.cgi").await;
        assert_eq!(answer.status, 201);
        assert_eq!(answer.header("x-extra"), ["one", "two"]);
        assert!(answer.header("status").is_empty());
        assert_eq!(answer.text(), "made\n");
    })
    .await;
}

#[tokio::test]
async fn location_without_status_is_302() {
    bounded(async {
        let server = start(None).await;
        let answer = get(server.addr, "/redirect.cgi").await;
        assert_eq!(answer.status, 302);
        assert_eq!(answer.header("location"), ["http://example.com/there"]);
    })
    .await;
}

#[tokio::test]
async fn output_without_header_block_is_500() {
    bounded(async {
        let server = start(None).await;
        let answer = get(server.addr, "/noheaders.cgi").await;
        assert_eq!(answer.status, 500);
        assert!(answer.body.is_empty());
    })
    .await;
}

#[tokio::test]
async fn script_that_cannot_be_executed_is_500() {
    bounded(async {
        let server = start(None).await;
        let answer = get(server.addr, "/noexec.cgi").await;
        assert_eq!(answer.status, 500);
        assert!(answer.body.is_empty());
    })
    .await;
}

#[tokio::test]
async fn head_request_gets_the_head_only() {
    bounded(async {
        let server = start(None).await;
        let answer = exchange(
            server.addr,
            b"HEAD /hello.cgi HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(answer.status, 200);
        assert!(answer.body.is_empty());
    })
    .await;
}

#[tokio::test]
async fn stderr_goes_to_the_daemon_and_not_the_client() {
    bounded(async {
        let server = start(None).await;
        let answer = get(server.addr, "/stderr.cgi").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "ok\n");
    })
    .await;
}

#[tokio::test]
async fn query_and_headers_reach_the_script() {
    bounded(async {
        let server = start(None).await;
        let answer = exchange(
            server.addr,
            b"GET /env.cgi?a=1&b=two HTTP/1.1\r\nHost: example.test:8080\r\n\
              Connection: close\r\nX-Test: hello\r\nCookie: a=1\r\nCookie: b=2\r\n\
              Proxy: http://evil.example/\r\n\r\n",
        )
        .await;
        assert_eq!(answer.status, 200);
        let text = answer.text();
        let vars: Vec<&str> = text.lines().collect();
        let script = fixture().root.join("env.cgi");
        let expected = [
            "QUERY_STRING=a=1&b=two".to_string(),
            "REQUEST_URI=/env.cgi?a=1&b=two".to_string(),
            "HTTP_X_TEST=hello".to_string(),
            "HTTP_COOKIE=a=1; b=2".to_string(),
            "HTTP_HOST=example.test:8080".to_string(),
            "SERVER_NAME=example.test:8080".to_string(),
            "SERVER_PORT=8080".to_string(),
            "REQUEST_METHOD=GET".to_string(),
            "GATEWAY_INTERFACE=CGI/1.1".to_string(),
            "SERVER_PROTOCOL=HTTP/1.1".to_string(),
            "SCRIPT_NAME=/".to_string(),
            "PATH_INFO=/env.cgi".to_string(),
            format!("SCRIPT_FILENAME={}", script.display()),
            "REMOTE_ADDR=127.0.0.1".to_string(),
            format!("PATH={}", env::FALLBACK_PATH),
        ];
        for line in &expected {
            assert!(vars.contains(&line.as_str()), "{line} missing in {text}");
        }
        for absent in ["HTTP_PROXY=", "HOME=", "HTTPS=", "CONTENT_LENGTH="] {
            assert!(
                !vars.iter().any(|v| v.starts_with(absent)),
                "{absent} in {text}"
            );
        }
        assert!(vars.iter().any(|v| v.starts_with("REMOTE_PORT=")));
        assert!(vars
            .iter()
            .any(|v| v.starts_with("SERVER_SOFTWARE=websocketd/")));
    })
    .await;
}

#[tokio::test]
async fn script_runs_in_its_own_directory() {
    bounded(async {
        let server = start(None).await;
        let answer = get(server.addr, "/sub/pwd.cgi").await;
        assert_eq!(answer.status, 200);
        let expected = fs::canonicalize(fixture().root.join("sub")).unwrap();
        assert_eq!(answer.text().trim_end(), expected.to_str().unwrap());
    })
    .await;
}

#[tokio::test]
async fn paths_that_name_no_script_fall_through() {
    bounded(async {
        let server = start(None).await;
        for target in [
            "/",
            "/missing.cgi",
            "/sub",
            "/sub/",
            "/.hidden.cgi",
            "/.dir/x.cgi",
            "/link-out.cgi",
            "/hello.cgi/extra",
        ] {
            let answer = get(server.addr, target).await;
            assert_eq!(answer.status, 404, "{target}");
            assert_eq!(answer.text(), "404 page not found\n", "{target}");
        }
        let answer = get(server.addr, "/link-in.cgi").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "hello\n");
    })
    .await;
}

#[tokio::test]
async fn slow_output_is_streamed() {
    bounded(async {
        let server = start(None).await;
        let name = unique("slow");
        let request =
            format!("GET /slow.cgi?{name} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        let mut stream = open(server.addr, request.as_bytes()).await;
        // The script cannot write "second" (nor end) before the file below exists.
        let early = read_until(&mut stream, b"first\n").await;
        assert!(memchr::memmem::find(&early, b"second").is_none());
        fs::write(fixture().state.join(&name), b"").unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT_LIMIT, stream.read_to_end(&mut rest))
            .await
            .expect("the script finished")
            .unwrap();
        let mut raw = early;
        raw.extend_from_slice(&rest);
        let answer = parse(&raw);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "first\nsecond\n");
    })
    .await;
}

#[tokio::test]
async fn hanging_script_does_not_block_other_requests() {
    bounded(async {
        let server = start(None).await;
        let name = unique("parallel");
        let request = format!("GET /hang-early.cgi?{name} HTTP/1.1\r\nHost: h\r\n\r\n");
        let hanging = open(server.addr, request.as_bytes()).await;
        let pid = script_pid(&name).await;
        let answer = get(server.addr, "/hello.cgi").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "hello\n");
        drop(hanging);
        wait_group_gone(pid).await;
    })
    .await;
}

#[tokio::test]
async fn dropped_client_ends_the_script_group() {
    bounded(async {
        for (script, before) in [
            ("hang-early.cgi", None),
            ("hang.cgi", Some(&b"started\n"[..])),
            // Ignores SIGTERM (and so does its sleep): needs the SIGKILL step.
            ("stubborn.cgi", Some(&b"started\n"[..])),
        ] {
            // One slot: the last request succeeds only once the killed script was reaped.
            let server = start(Some(1)).await;
            let name = unique("drop");
            let request = format!("GET /{script}?{name} HTTP/1.1\r\nHost: h\r\n\r\n");
            let mut stream = open(server.addr, request.as_bytes()).await;
            let pid = script_pid(&name).await;
            if let Some(needle) = before {
                read_until(&mut stream, needle).await;
            }
            assert!(group_has_live_member(pid));
            drop(stream);
            wait_group_gone(pid).await;
            let mut status = 0;
            let deadline = Instant::now() + WAIT_LIMIT;
            while status != 200 && Instant::now() < deadline {
                status = get(server.addr, "/hello.cgi").await.status;
                if status == 429 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            assert_eq!(status, 200, "slot released after {script}");
        }
    })
    .await;
}

#[tokio::test]
async fn maxforks_reached_gives_429() {
    bounded(async {
        let server = start(Some(1)).await;
        let name = unique("forks");
        let request = format!("GET /hang.cgi?{name} HTTP/1.1\r\nHost: h\r\n\r\n");
        let hanging = open(server.addr, request.as_bytes()).await;
        let pid = script_pid(&name).await;
        let answer = get(server.addr, "/hello.cgi").await;
        assert_eq!(answer.status, 429);
        assert_eq!(answer.text(), "429 Too Many Requests\n");
        // Paths that name no script do not need a slot.
        assert_eq!(get(server.addr, "/missing.cgi").await.status, 404);
        drop(hanging);
        wait_group_gone(pid).await;
    })
    .await;
}

#[tokio::test]
async fn finished_script_frees_its_slot_before_the_response_ends() {
    bounded(async {
        let server = start(Some(1)).await;
        for _ in 0..5 {
            assert_eq!(get(server.addr, "/hello.cgi").await.status, 200);
        }
    })
    .await;
}

#[tokio::test]
async fn script_that_sent_its_declared_length_is_not_killed() {
    bounded(async {
        let server = start(None).await;
        let name = unique("sized");
        let answer = get(server.addr, &format!("/sized.cgi?{name}")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "hello\n");
        // The script is still running; let it finish its work.
        fs::write(fixture().state.join(&name), b"").unwrap();
        let done = fixture().state.join(format!("{name}.done"));
        wait_for("the script to finish after its response", || {
            done.exists().then_some(())
        })
        .await;
    })
    .await;
}
