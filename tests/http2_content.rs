//! Plain HTTP over HTTP/2, checked with curl: static files (ranges, conditional requests,
//! redirects, 404s), CGI with streamed bodies, the developer console and custom headers,
//! over h2c with prior knowledge and over TLS with ALPN; `--http2=false`; and a WebSocket
//! over `wss://` on an ALPN-negotiated HTTP/2 connection.

#[path = "common/certificate.rs"]
mod certificate;
mod common;
#[path = "common/h2ws.rs"]
mod h2ws;

use certificate::Certificate;
use common::*;
use h2ws::{H2Client, Windows};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_rustls::rustls::pki_types::ServerName;

/// What curl saw.
#[derive(Debug)]
struct Curl {
    /// `%{http_version}`: "2", "1.1", or "0" when nothing came back.
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    exit: Option<i32>,
}

impl Curl {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Runs curl with `args` (options and URL), at most `max_time` seconds.
fn curl_for(max_time: u32, args: &[&str]) -> Curl {
    let dir = temp_dir("curl");
    let (head, body) = (dir.join("head"), dir.join("body"));
    let output = Command::new("curl")
        .args(["-s", "--max-time", &max_time.to_string(), "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_version} %{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed by scripts/install-test-deps.sh");
    let written = String::from_utf8_lossy(&output.stdout).into_owned();
    let (version, status) = written.split_once(' ').unwrap_or(("0", "0"));
    let head = std::fs::read_to_string(&head).unwrap_or_default();
    let headers = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let result = Curl {
        version: version.to_string(),
        status: status.parse().unwrap_or(0),
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
        exit: output.status.code(),
    };
    let _ = std::fs::remove_dir_all(dir);
    result
}

fn curl(args: &[&str]) -> Curl {
    curl_for(20, args)
}

/// A static directory with a page, a text file, a subdirectory and 1 MiB of bytes, and a
/// CGI directory with an echo, an environment dump and a script that streams then hangs.
fn site(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    let statics = dir.join("static");
    std::fs::create_dir_all(statics.join("sub")).unwrap();
    std::fs::write(statics.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(statics.join("sub/index.html"), "<h1>sub</h1>").unwrap();
    std::fs::write(statics.join("a.txt"), "alpha").unwrap();
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    std::fs::write(statics.join("big.bin"), big).unwrap();
    let cgi = dir.join("cgi");
    std::fs::create_dir_all(&cgi).unwrap();
    script(
        &cgi,
        "post.cgi",
        "echo 'Content-Type: text/plain'\necho\ncat",
    );
    script(
        &cgi,
        "env.cgi",
        "echo 'Content-Type: text/plain'\necho\nenv | sort",
    );
    script(
        &cgi,
        "stream.cgi",
        "echo 'Content-Type: text/plain'\necho\necho started\nexec sleep 600",
    );
    dir
}

fn arg(flag: &str, path: &Path) -> String {
    format!("{flag}={}", path.display())
}

/// The static-file checks, through curl with `mode` (`--http2-prior-knowledge`, or
/// `--http2` with a CA) against `base`.
fn check_static(mode: &[&str], base: &str, dir: &Path) {
    let get = |path: &str, extra: &[&str]| {
        let url = format!("{base}{path}");
        let mut args: Vec<&str> = mode.to_vec();
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    };
    let page = get("/a.txt", &[]);
    assert_eq!((page.version.as_str(), page.status), ("2", 200), "{page:?}");
    assert_eq!(page.body, b"alpha");
    assert_eq!(page.header("x-http"), Some("1"));
    assert_eq!(page.header("x-all"), Some("2"));
    assert!(page
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));

    let big = get("/big.bin", &[]);
    assert!(big.body == std::fs::read(dir.join("static/big.bin")).unwrap());

    let ranged = get("/a.txt", &["-r", "1-3"]);
    assert_eq!((ranged.status, ranged.body.as_slice()), (206, &b"lph"[..]));
    assert_eq!(ranged.header("content-range"), Some("bytes 1-3/5"));
    let unsatisfiable = get("/a.txt", &["-r", "10-20"]);
    assert_eq!(unsatisfiable.status, 416);

    let modified = page
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    let since = format!("If-Modified-Since: {modified}");
    let cached = get("/a.txt", &["-H", &since]);
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    let head = get("/a.txt", &["-I"]);
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("5"))
    );

    assert_eq!(get("/", &[]).body, b"<h1>home</h1>");
    let redirect = get("/sub", &[]);
    assert_eq!(
        (redirect.status, redirect.header("location")),
        (301, Some("sub/"))
    );
    let cleaned = get("//sub//index.html", &["--path-as-is"]);
    assert_eq!(cleaned.status, 301);
    assert_eq!(get("/missing.txt", &[]).status, 404);
}

#[test]
fn static_files_over_h2c_with_prior_knowledge() {
    let dir = site("h2c-static");
    let server = Server::start(&[
        &arg("--staticdir", &dir.join("static")),
        "--header-http=X-Http: 1",
        "--header=X-All: 2",
    ]);
    let base = format!("http://127.0.0.1:{}", server.port);
    check_static(&["--http2-prior-knowledge"], &base, &dir);
    let line = server
        .stdout
        .wait_for(DEADLINE, |l| {
            l.contains("| ACCESS |") && l.ends_with("| STATIC")
        })
        .expect("access line");
    assert!(line.contains("protocol:'HTTP/2'"), "{line}");
    // HTTP/1.1 on the same port is untouched.
    let plain = curl(&["--http1.1", &format!("{base}/a.txt")]);
    assert_eq!((plain.version.as_str(), plain.status), ("1.1", 200));
    // `curl --http2` on http:// offers `Upgrade: h2c`, which is not taken up (RFC 9113
    // dropped it): the answer comes over HTTP/1.1, whole.
    let offered = curl(&["--http2", &format!("{base}/a.txt")]);
    assert_eq!(
        (
            offered.version.as_str(),
            offered.status,
            offered.body.as_slice()
        ),
        ("1.1", 200, &b"alpha"[..])
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cgi_over_h2c_streams_and_stops_with_its_client() {
    let dir = site("h2c-cgi");
    let server = Server::start(&[&arg("--cgidir", &dir.join("cgi"))]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let h2 = "--http2-prior-knowledge";
    let posted = curl(&[
        h2,
        "--data-binary",
        "hello world",
        &format!("{base}/post.cgi"),
    ]);
    assert_eq!((posted.version.as_str(), posted.status), ("2", 200));
    assert_eq!(posted.body, b"hello world");
    let env = curl(&[h2, "-H", "X-Custom: value", &format!("{base}/env.cgi?a=1")]);
    let env = String::from_utf8_lossy(&env.body).into_owned();
    for expected in [
        "QUERY_STRING=a=1",
        "HTTP_X_CUSTOM=value",
        "REQUEST_METHOD=GET",
    ] {
        assert!(
            env.lines().any(|l| l == expected),
            "{expected} missing from {env}"
        );
    }
    // The body streams: the first line arrives while the script still runs; when the
    // client goes, the script is stopped.
    let started = Instant::now();
    let streamed = curl_for(3, &[h2, &format!("{base}/stream.cgi")]);
    assert_eq!(
        streamed.exit,
        Some(28),
        "curl should have timed out: {streamed:?}"
    );
    assert_eq!(
        (streamed.status, streamed.body.as_slice()),
        (200, &b"started\n"[..])
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        wait_until(DEADLINE, || programs(server.pid()).is_empty()),
        "the streaming script outlived its client"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn console_over_h2c_and_over_tls() {
    let server = Server::start(&["--devconsole", "cat"]);
    let console = curl(&[
        "--http2-prior-knowledge",
        &format!("http://127.0.0.1:{}/", server.port),
    ]);
    assert_eq!((console.version.as_str(), console.status), ("2", 200));
    assert!(String::from_utf8_lossy(&console.body).contains("<html"));

    let certificate = Certificate::new("h2-console");
    let mut args = certificate.flags();
    args.extend(["--devconsole".to_string(), "cat".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let ca = certificate.path("ca.pem");
    let url = format!("https://127.0.0.1:{}/anything", server.port);
    let console = curl(&["--http2", "--cacert", &ca, &url]);
    assert_eq!(
        (console.version.as_str(), console.status),
        ("2", 200),
        "{console:?}"
    );
    assert!(String::from_utf8_lossy(&console.body).contains("wss://"));
}

#[test]
fn static_and_cgi_over_tls_negotiate_h2_by_alpn() {
    let dir = site("h2-tls");
    let certificate = Certificate::new("h2-tls-cert");
    let mut args = certificate.flags();
    args.extend([
        arg("--staticdir", &dir.join("static")),
        arg("--cgidir", &dir.join("cgi")),
        "--header-http=X-Http: 1".to_string(),
        "--header=X-All: 2".to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let ca = certificate.path("ca.pem");
    let base = format!("https://127.0.0.1:{}", server.port);
    check_static(&["--http2", "--cacert", &ca], &base, &dir);
    let env = curl(&["--http2", "--cacert", &ca, &format!("{base}/env.cgi")]);
    assert_eq!((env.version.as_str(), env.status), ("2", 200));
    assert!(String::from_utf8_lossy(&env.body)
        .lines()
        .any(|l| l == "HTTPS=on"));
    let old = curl(&["--http1.1", "--cacert", &ca, &format!("{base}/a.txt")]);
    assert_eq!((old.version.as_str(), old.status), ("1.1", 200));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn http2_false_serves_http1_only() {
    let dir = site("h2-off");
    let certificate = Certificate::new("h2-off-cert");
    let static_arg = arg("--staticdir", &dir.join("static"));
    let mut args = certificate.flags();
    args.extend(["--http2=false".to_string(), static_arg.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let ca = certificate.path("ca.pem");
    let url = format!("https://127.0.0.1:{}/a.txt", server.port);
    let fallback = curl(&["--http2", "--cacert", &ca, &url]);
    assert_eq!((fallback.version.as_str(), fallback.status), ("1.1", 200));

    let server = Server::start(&["--http2=false", &static_arg]);
    let url = format!("http://127.0.0.1:{}/a.txt", server.port);
    let refused = curl(&["--http2-prior-knowledge", &url]);
    assert_ne!(refused.version, "2", "{refused:?}");
    assert_ne!(refused.status, 200);
    let plain = curl(&[&url]);
    assert_eq!((plain.version.as_str(), plain.status), ("1.1", 200));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_wss_on_an_alpn_h2_connection() {
    let certificate = Certificate::new("h2-wss");
    let mut args = certificate.flags();
    args.push("examples/bash/dump-env.sh".to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = certificate
        .client(&[b"h2", b"http/1.1"])
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let authority = format!("127.0.0.1:{}", server.port);
    let mut client = H2Client::over(tls, authority, "https", Windows::default()).await;
    assert!(client.extended_connect_enabled());
    for _ in 0..2 {
        let mut ws = client.open("/").await;
        let transcript = read_all(&mut ws, DEADLINE).await;
        assert_eq!(transcript.close.map(|c| c.0), Some(1000));
        assert!(transcript
            .texts
            .iter()
            .any(|l| l == "SERVER_PROTOCOL=HTTP/2"));
        assert!(transcript.texts.iter().any(|l| l == "HTTPS=on"));
    }
    let line = server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| CONNECT"))
        .expect("CONNECT line");
    assert!(
        line.contains("url:'https://") && line.contains("protocol:'HTTP/2'"),
        "{line}"
    );
}
