//! Black-box tests of the HTTP side: static files, CGI, the developer console, the
//! redirect port, custom headers, and an attack corpus against path confinement.

mod common;

use common::*;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn request(server: &Server, method: &str, path: &str, headers: &str) -> HttpResponse {
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n{headers}\r\n",
        server.port
    );
    HttpResponse::parse(&server.raw(raw.as_bytes()))
}

/// A site: `static/` with pages, dotfiles and symlinks; `cgi/` with scripts; and files
/// outside both that must never be reached.
fn site(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    let statics = dir.join("static");
    std::fs::create_dir_all(statics.join("sub")).unwrap();
    std::fs::create_dir_all(statics.join(".hidden")).unwrap();
    std::fs::create_dir_all(statics.join("nolist")).unwrap();
    std::fs::write(statics.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(statics.join("sub/index.html"), "<h1>sub</h1>").unwrap();
    std::fs::write(statics.join("nolist/file.txt"), "x").unwrap();
    std::fs::write(statics.join("a.txt"), "alpha").unwrap();
    std::fs::write(statics.join(".secret"), "TOPSECRET").unwrap();
    std::fs::write(statics.join(".hidden/x.txt"), "TOPSECRET").unwrap();
    for (name, body) in [
        ("page.html", "<p>"),
        ("style.css", "p{}"),
        ("app.js", "1"),
        ("data.json", "{}"),
        ("img.png", "png"),
        ("pic.svg", "<svg/>"),
        ("mod.wasm", "wasm"),
    ] {
        std::fs::write(statics.join(name), body).unwrap();
    }
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    std::fs::write(statics.join("big.bin"), big).unwrap();
    std::fs::write(dir.join("outside.txt"), "TOPSECRET").unwrap();
    symlink(dir.join("outside.txt"), statics.join("link-out")).unwrap();
    symlink(statics.join("a.txt"), statics.join("link-in")).unwrap();

    let cgi = dir.join("cgi");
    std::fs::create_dir_all(cgi.join("sub")).unwrap();
    let marker = dir.join("ran-outside");
    script(
        &dir,
        "outside.cgi",
        &format!(
            "touch {}\necho 'Content-Type: text/plain'\necho\necho TOPSECRET",
            marker.display()
        ),
    );
    symlink(dir.join("outside.cgi"), cgi.join("link-out.cgi")).unwrap();
    script(
        &cgi,
        ".dot.cgi",
        &format!("touch {}\necho", marker.display()),
    );
    script(
        &cgi,
        "env.cgi",
        "echo 'Content-Type: text/plain'\necho\nenv | sort",
    );
    script(
        &cgi,
        "post.cgi",
        "echo 'Content-Type: text/plain'\necho\ncat",
    );
    script(
        &cgi,
        "created.cgi",
        "echo 'Status: 201 Created'\necho 'Content-Type: text/plain'\necho\necho made",
    );
    script(
        &cgi,
        "moved.cgi",
        "echo 'Location: http://example.com/there'\necho",
    );
    script(&cgi, "noheaders.cgi", "exit 0");
    script(
        &cgi,
        "hang.cgi",
        "echo 'Content-Type: text/plain'\necho\necho started\nexec sleep 600",
    );
    script(
        &cgi,
        "sub/deep.cgi",
        "echo 'Content-Type: text/plain'\necho\necho deep",
    );
    dir
}

fn arg(flag: &str, path: &Path) -> String {
    format!("{flag}={}", path.display())
}

#[test]
fn static_files_with_types_ranges_and_conditionals() {
    let dir = site("static");
    let server = Server::start(&[&arg("--staticdir", &dir.join("static")), "cat"]);
    for (name, mime) in [
        ("page.html", "text/html"),
        ("style.css", "text/css"),
        ("app.js", "javascript"),
        ("data.json", "application/json"),
        ("img.png", "image/png"),
        ("pic.svg", "image/svg+xml"),
        ("mod.wasm", "application/wasm"),
    ] {
        let response = server.get(&format!("/{name}"));
        assert_eq!(response.status, 200, "{name}");
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(content_type.contains(mime), "{name}: {content_type}");
    }
    let big = server.get("/big.bin");
    assert_eq!(big.status, 200);
    assert!(
        big.body == std::fs::read(dir.join("static/big.bin")).unwrap(),
        "1 MiB differs"
    );

    let ranged = request(&server, "GET", "/a.txt", "Range: bytes=1-3\r\n");
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, b"lph");
    assert_eq!(ranged.header("content-range"), Some("bytes 1-3/5"));
    let suffix = request(&server, "GET", "/a.txt", "Range: bytes=-2\r\n");
    assert_eq!((suffix.status, suffix.body.as_slice()), (206, &b"ha"[..]));
    let unsatisfiable = request(&server, "GET", "/a.txt", "Range: bytes=10-20\r\n");
    assert_eq!(unsatisfiable.status, 416);

    let first = server.get("/a.txt");
    let modified = first
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    let cached = request(
        &server,
        "GET",
        "/a.txt",
        &format!("If-Modified-Since: {modified}\r\n"),
    );
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());

    let head = request(&server, "HEAD", "/a.txt", "");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("5"));
    assert!(head.body.is_empty());

    assert_eq!(server.get("/").body, b"<h1>home</h1>");
    let dir_redirect = server.get("/sub");
    assert_eq!(dir_redirect.status, 301);
    assert_eq!(dir_redirect.header("location"), Some("sub/"));
    assert_eq!(server.get("/sub/").body, b"<h1>sub</h1>");
    assert_eq!(server.get("/nolist/").status, 404);
    assert_eq!(server.get("/link-in").body, b"alpha");
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("| ACCESS |")
            && l.ends_with("| STATIC"))
        .is_some());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn static_and_websocket_share_paths() {
    let dir = site("shared");
    let server = Server::start(&[
        &arg("--staticdir", &dir.join("static")),
        "echo",
        "from program",
    ]);
    assert_eq!(server.get("/a.txt").body, b"alpha");
    let mut ws = connect(&server.url("/a.txt")).await;
    assert_eq!(next_text(&mut ws).await, "from program");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cgi_scripts_run_with_their_environment() {
    let dir = site("cgi");
    let server = Server::start(&[&arg("--cgidir", &dir.join("cgi")), "--header=X-All: yes"]);
    let raw = format!(
        "POST /post.cgi HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: 11\r\n\r\nhello world",
        server.port
    );
    let posted = HttpResponse::parse(&server.raw(raw.as_bytes()));
    assert_eq!(
        (posted.status, posted.body.as_slice()),
        (200, &b"hello world"[..])
    );
    assert_eq!(posted.header("x-all"), Some("yes"));
    let created = server.get("/created.cgi");
    assert_eq!(
        (created.status, created.body.as_slice()),
        (201, &b"made\n"[..])
    );
    let moved = server.get("/moved.cgi");
    assert_eq!(moved.status, 302);
    assert_eq!(moved.header("location"), Some("http://example.com/there"));
    assert_eq!(server.get("/noheaders.cgi").status, 500);
    assert_eq!(server.get("/sub/deep.cgi").body, b"deep\n");
    let env = request(&server, "GET", "/env.cgi?a=1&b=two", "X-Custom: value\r\n");
    let env = String::from_utf8_lossy(&env.body).into_owned();
    for expected in [
        "QUERY_STRING=a=1&b=two",
        "HTTP_X_CUSTOM=value",
        "REQUEST_METHOD=GET",
        "GATEWAY_INTERFACE=CGI/1.1",
    ] {
        assert!(
            env.lines().any(|l| l == expected),
            "{expected} missing from {env}"
        );
    }
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("cgiscript:'")
            && l.ends_with("| CGI"))
        .is_some());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_hanging_cgi_script_blocks_nobody_and_dies_with_its_client() {
    let dir = site("cgihang");
    let server = Server::start(&[&arg("--cgidir", &dir.join("cgi"))]);
    let daemon = server.pid();
    let mut hanging = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    use std::io::{Read, Write};
    write!(hanging, "GET /hang.cgi HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    hanging
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut first = [0u8; 64];
    let n = hanging.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    assert_eq!(server.get("/sub/deep.cgi").body, b"deep\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(wait_until(DEADLINE, || !programs(daemon).is_empty()));
    drop(hanging);
    assert!(
        wait_until(DEADLINE, || programs(daemon).is_empty()),
        "hanging script survived its client"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn console_answers_every_plain_request() {
    let server = Server::start(&["--devconsole", "--header-http=X-Http: 1", "cat"]);
    for path in ["/", "/any/path?x=1"] {
        let response = server.get(path);
        assert_eq!(response.status, 200);
        assert!(response
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"));
        assert_eq!(response.header("x-http"), Some("1"));
        let page = String::from_utf8_lossy(&response.body);
        let expected = format!(
            "ws://127.0.0.1:{}{}",
            server.port,
            path.replace('&', "&amp;")
        );
        assert!(page.contains(&expected), "{path}");
    }
    let head = request(&server, "HEAD", "/", "");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let post = request(&server, "POST", "/", "Content-Length: 0\r\n");
    assert_eq!(post.status, 200);
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| DEVCONSOLE"))
        .is_some());
}

#[test]
fn console_cannot_be_combined_with_content_directories() {
    for flag in ["--staticdir=examples", "--cgidir=examples"] {
        let output = std::process::Command::new(binary())
            .args(["--devconsole", flag, "cat"])
            .current_dir(root())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(4));
        let log = String::from_utf8_lossy(&output.stdout);
        let name = flag.split('=').next().unwrap();
        assert!(
            log.contains(&format!("| FATAL  | server     |  | Invalid parameters: --devconsole cannot be used with {name}. Pick one.")),
            "{log}"
        );
    }
}

#[test]
fn redirect_port_keeps_path_and_query() {
    let redirect = free_port();
    let flag = format!("--redirport={redirect}");
    let server = Server::start(&[&flag, "cat"]);
    assert!(wait_until(DEADLINE, || std::net::TcpStream::connect((
        "127.0.0.1",
        redirect
    ))
    .is_ok()));
    let raw = raw_request(
        redirect,
        format!("GET /some/path?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{redirect}\r\n\r\n").as_bytes(),
    );
    let response = HttpResponse::parse(&raw);
    assert_eq!(response.status, 301);
    assert_eq!(
        response.header("location"),
        Some(format!("http://127.0.0.1:{}/some/path?x=1", server.port).as_str())
    );
    let raw = raw_request(
        redirect,
        format!("GET / HTTP/1.1\r\nHost: [::1]:{redirect}\r\n\r\n").as_bytes(),
    );
    assert_eq!(
        HttpResponse::parse(&raw).header("location"),
        Some(format!("http://[::1]:{}/", server.port).as_str())
    );
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.contains(&format!(
            "Starting redirect server   : http://127.0.0.1:{redirect}/"
        )))
        .is_some());
}

#[test]
fn redirect_port_with_ipv6_address() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; nothing to check");
        return;
    }
    let port = free_port();
    let redirect = free_port();
    let mut server = Server::spawn_raw(
        &root(),
        &[
            &format!("--port={port}"),
            "--address=[::1]",
            &format!("--redirport={redirect}"),
            "cat",
        ],
    );
    assert!(wait_until(DEADLINE, || std::net::TcpStream::connect((
        "::1", redirect
    ))
    .is_ok()));
    let mut stream = std::net::TcpStream::connect(("::1", redirect)).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /p?q HTTP/1.1\r\nHost: [::1]:{redirect}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.read_to_end(&mut raw);
    assert_eq!(
        HttpResponse::parse(&raw).header("location"),
        Some(format!("http://[::1]:{port}/p?q").as_str())
    );
    server.signal("TERM");
    assert_eq!(server.wait_exit(DEADLINE).and_then(|s| s.code()), Some(0));
}

/// Requests that try to leave the served directories or reach hidden files.
fn attack_corpus() -> Vec<String> {
    let mut corpus: Vec<String> = [
        "/../outside.txt",
        "/..%2foutside.txt",
        "/%2e%2e/outside.txt",
        "/%2e%2e%2foutside.txt",
        "/%2E%2E/outside.txt",
        "/.%2e/outside.txt",
        "/%252e%252e/outside.txt",
        "/..%5coutside.txt",
        "/%5c..%5coutside.txt",
        "/%00",
        "/a.txt%00",
        "/a.txt%00.html",
        "/%c0%ae%c0%ae/outside.txt",
        "/%c0%af",
        "/%e0%80%ae%e0%80%ae/outside.txt",
        "/%2e%2e%252foutside.txt",
        "/link-out",
        "/link-out/",
        "/.secret",
        "/.hidden/x.txt",
        "/%2esecret",
        "/sub/../../outside.txt",
        "/sub/%2e%2e/%2e%2e/outside.txt",
        "//outside.txt",
        "/./../outside.txt",
        "/%2f%2f..%2f..%2foutside.txt",
        "/..;/outside.txt",
        "/...",
        "/....//outside.txt",
        "/%u002e%u002e/outside.txt",
        "/static/../outside.txt",
        "/a.txt/..",
        "/a.txt/../../outside.txt",
        "/%ff%fe",
        "/~/outside.txt",
        "/sub/./../.././outside.txt",
        "/.%00./outside.txt",
        "/%2e/outside.txt",
        "/%2e%2e",
        "/%2e%2e/",
        "/..",
        "/../",
        "/.hidden/",
        "/.hidden",
        "/sub/.secret",
        "/link-out%2f",
        "/a.txt%2f..%2f..%2foutside.txt",
        "/%252e%252e%252foutside.txt",
        "/..%c0%afoutside.txt",
        "/..%c1%9coutside.txt",
        "/outside.txt",
        "/%20../outside.txt",
        "/..%20/outside.txt",
        "/../outside.cgi",
        "/%2e%2e/outside.cgi",
        "/link-out.cgi",
        "/link-out.cgi/",
        "/.dot.cgi",
        "/%2edot.cgi",
        "/sub/../../outside.cgi",
        "/..%2foutside.cgi",
        "/%252e%252e%252foutside.cgi",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    corpus.push(format!("/{}", "a/".repeat(3000)));
    corpus.push(format!("/{}", "x".repeat(8000)));
    corpus.push(format!("/{}outside.txt", "../".repeat(50)));
    corpus
}

#[test]
fn attack_corpus_never_escapes() {
    let dir = site("attack");
    let statics = Server::start(&[&arg("--staticdir", &dir.join("static")), "cat"]);
    let cgi = Server::start(&[&arg("--cgidir", &dir.join("cgi"))]);
    let both = Server::start(&[
        &arg("--staticdir", &dir.join("static")),
        &arg("--cgidir", &dir.join("cgi")),
    ]);
    let corpus = attack_corpus();
    assert!(corpus.len() >= 50);
    for server in [&statics, &cgi, &both] {
        for path in &corpus {
            let raw = server.raw(
                format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            if raw.is_empty() {
                continue; // Refused at the HTTP layer without an answer.
            }
            let response = HttpResponse::parse(&raw);
            assert!(
                [301, 400, 404, 414, 431].contains(&response.status),
                "{path}: status {}",
                response.status
            );
            let body = String::from_utf8_lossy(&response.body);
            assert!(!body.contains("TOPSECRET"), "{path} leaked a file");
        }
    }
    assert!(
        !dir.join("ran-outside").exists(),
        "a script outside the directory ran"
    );
    // Still serving.
    assert_eq!(statics.get("/a.txt").body, b"alpha");
    std::fs::remove_dir_all(dir).unwrap();
}
