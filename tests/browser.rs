//! Browser tests in real headless Chromium, driven through ChromeDriver's WebDriver
//! protocol: the developer console, the count example page, and markup in the URL.
//! Chromium and ChromeDriver are installed by scripts/install-test-deps.sh.

#[path = "common/certificate.rs"]
mod certificate;
mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A headless Chromium session behind a private ChromeDriver.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: std::path::PathBuf,
}

impl Browser {
    fn start() -> Browser {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: run scripts/install-test-deps.sh"
            );
        }
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        assert!(
            wait_until(DEADLINE, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "chromedriver did not start"
        );
        let profile = temp_dir("chromium-profile");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            profile,
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--ignore-certificate-errors",
                    format!("--user-data-dir={}", browser.profile.display()),
                ]
            }
        }}});
        let created = browser.request("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    /// One WebDriver call; returns the `value` member of the answer.
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        // ChromeDriver may keep the connection open: read until the body is complete.
        let mut raw = Vec::new();
        let mut buf = [0u8; 16384];
        while !HttpResponse::complete(&raw) {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(err) => panic!("WebDriver {method} {path}: {err}"),
            }
        }
        let response = HttpResponse::parse(&raw);
        let parsed: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        parsed.get("value").cloned().unwrap_or(parsed)
    }

    fn session_path(&self, tail: &str) -> String {
        format!("/session/{}{tail}", self.session)
    }

    fn open(&self, url: &str) {
        self.request(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        );
    }

    fn script(&self, source: &str) -> Value {
        self.request(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({ "script": source, "args": [] })),
        )
    }

    fn element(&self, css: &str) -> String {
        let found = self.request(
            "POST",
            &self.session_path("/element"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.request(
            "POST",
            &self.session_path(&format!("/element/{id}/click")),
            Some(json!({})),
        );
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.request(
            "POST",
            &self.session_path(&format!("/element/{id}/value")),
            Some(json!({ "text": text })),
        );
    }

    /// Evaluates `expression` until it is true (or the deadline passes); returns it.
    fn wait_for(&self, expression: &str) -> bool {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if self.script(&format!("return !!({expression});")) == json!(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = self.session_path("");
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.request("DELETE", &path, None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The console's log as `type: data` lines.
const LOG_ROWS: &str = "Array.from(document.querySelectorAll('#log .row')).map(r => \
    r.querySelector('.type').textContent + ': ' + r.querySelector('.data').textContent)";

#[test]
fn console_talks_to_the_greeter() {
    let server = Server::start(&["--devconsole", "examples/greeter.sh"]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    let prefilled = browser.script("return document.getElementById('url').value;");
    assert_eq!(prefilled, json!(format!("ws://127.0.0.1:{}/", server.port)));
    browser.click("#connect");
    assert!(browser.wait_for(&format!("{LOG_ROWS}.some(r => r.startsWith('onopen'))")));
    browser.type_into("#send", "hello\u{E007}");
    assert!(
        browser.wait_for(&format!(
            "{LOG_ROWS}.some(r => r.startsWith('onmessage') && r.includes('Hello, hello!'))"
        )),
        "{}",
        browser.script(&format!("return {LOG_ROWS};"))
    );
    browser.click("#disconnect");
    assert!(
        browser.wait_for(&format!(
            "{LOG_ROWS}.some(r => r.startsWith('onclose') && /Code: (1000|1011)/.test(r))"
        )),
        "{}",
        browser.script(&format!("return {LOG_ROWS};"))
    );
}

#[test]
fn count_page_served_statically_counts_to_ten() {
    let server = Server::start(&["--staticdir=examples", "examples/count.sh"]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/count.html", server.port));
    let done = browser.wait_for("document.getElementById('log').textContent.includes('closed')");
    let log = browser.script("return document.getElementById('log').textContent;");
    assert!(done, "{log}");
    assert_eq!(log, json!("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\nclosed 1000"));
    assert_eq!(
        browser.script("return document.getElementById('count').textContent;"),
        json!("10")
    );
}

#[test]
fn markup_in_the_url_does_not_run_in_the_console() {
    let server = Server::start(&["--devconsole", "cat"]);
    let browser = Browser::start();
    let crafted = "/%22%3E%3Cscript%3Ewindow.pwned=1%3C/script%3E%3Cb%20x='";
    browser.open(&format!("http://127.0.0.1:{}{crafted}", server.port));
    assert!(browser.wait_for("document.getElementById('url') !== null"));
    assert_eq!(
        browser.script("return typeof window.pwned;"),
        json!("undefined")
    );
    assert_eq!(
        browser.script("return document.querySelectorAll('b[x]').length;"),
        json!(0)
    );
    let value = browser.script("return document.getElementById('url').value;");
    let text = value.as_str().unwrap_or_default();
    assert!(
        text.starts_with(&format!("ws://127.0.0.1:{}/", server.port)),
        "{text}"
    );
    assert!(text.contains("script"), "{text}");
}

#[test]
fn browser_sees_the_negotiated_subprotocol() {
    let pages = temp_dir("subprotocol-page");
    std::fs::write(pages.join("index.html"), "<!doctype html><title>p</title>").unwrap();
    let server = Server::start(&[
        "--subprotocol=b,c",
        &format!("--staticdir={}", pages.display()),
        "sh",
        "-c",
        "echo \"program got $WEBSOCKET_PROTOCOL\"; sleep 5",
    ]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/index.html", server.port));
    let url = server.url("/");
    browser.script(&format!(
        "window.seen = [];
         const ok = new WebSocket('{url}', ['a', 'b']);
         ok.onopen = () => seen.push('open ' + ok.protocol);
         ok.onmessage = (e) => seen.push(e.data);
         const none = new WebSocket('{url}', ['x']);
         none.onopen = () => seen.push('unexpected open');
         none.onclose = (e) => seen.push('refused ' + e.code);"
    ));
    let all = "return window.seen.slice().sort().join('|');";
    assert!(
        browser.wait_for("window.seen.length >= 3"),
        "{}",
        browser.script(all)
    );
    assert_eq!(
        browser.script(all),
        json!("open b|program got b|refused 1006")
    );
}

#[test]
fn chromium_negotiates_compression_and_receives_a_large_message_intact() {
    // One text line of 1,288,895 bytes: the numbers 1 to 200000, each followed by a space.
    let server = Server::start(&[
        "--devconsole",
        "--compress",
        "--maxframesize=4194304",
        "sh",
        "-c",
        "seq 1 200000 | tr '\\n' ' '; echo",
    ]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    assert!(browser.wait_for("document.getElementById('url') !== null"));
    browser.script(&format!(
        "window.result = null;
         const expected = Array.from({{length: 200000}}, (_, i) => (i + 1) + ' ').join('');
         const ws = new WebSocket('ws://127.0.0.1:{}/');
         ws.onmessage = e => {{
             window.result = {{extensions: ws.extensions, length: e.data.length,
                               intact: e.data === expected}};
         }};
         ws.onclose = e => {{ window.closeCode = e.code; }};
         return true;",
        server.port
    ));
    assert!(browser.wait_for("window.result !== null"));
    let result = browser.script("return window.result;");
    assert_eq!(
        result["extensions"],
        json!("permessage-deflate"),
        "{result}"
    );
    assert_eq!(result["length"], json!(1_288_895), "{result}");
    assert_eq!(result["intact"], json!(true), "{result}");
    let closed = browser.wait_for("window.closeCode === 1000");
    assert!(closed, "{}", browser.script("return window.closeCode;"));
}

#[test]
fn https_page_opens_its_websocket_over_the_same_http2_connection() {
    let certificate = certificate::Certificate::new("browser-h2");
    let mut args = certificate.flags();
    args.extend([
        "--staticdir=examples".to_string(),
        "examples/count.sh".to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let browser = Browser::start();
    browser.open(&format!("https://127.0.0.1:{}/count.html", server.port));
    let done = browser.wait_for("document.getElementById('log').textContent.includes('closed')");
    let log = browser.script("return document.getElementById('log').textContent;");
    assert!(done, "{log}");
    assert_eq!(log, json!("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\nclosed 1000"));
    let page = server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| STATIC"))
        .expect("the page's access line");
    assert!(page.contains("protocol:'HTTP/2'"), "{page}");
    let session = server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with("| CONNECT"))
        .expect("the session's CONNECT line");
    assert!(
        session.contains("url:'https://") && session.contains("protocol:'HTTP/2'"),
        "the WebSocket did not run over HTTP/2: {session}"
    );
}
