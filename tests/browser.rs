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

/// The console's log as `direction kind: data` lines (hidden rows included).
const LOG_ROWS: &str = "Array.from(document.querySelectorAll('#log .row')).map(r => \
    r.dataset.dir + ' ' + r.dataset.kind + ': ' + r.querySelector('.data').textContent)";

/// The rows the filter leaves visible, in the same form.
const SHOWN_ROWS: &str =
    "Array.from(document.querySelectorAll('#log .row')).filter(r => !r.hidden)\
    .map(r => r.dataset.dir + ' ' + r.dataset.kind + ': ' + r.querySelector('.data').textContent)";

impl Browser {
    /// Waits for `expression` over the console's rows; on failure the rows are in the message.
    fn wait_for_rows(&self, expression: &str) {
        let rows = format!("{LOG_ROWS}.{expression}");
        assert!(
            self.wait_for(&rows),
            "no row makes {expression} true: {}",
            self.script(&format!("return {LOG_ROWS};"))
        );
    }

    fn status(&self) -> Value {
        self.script("return document.getElementById('status').dataset.state;")
    }

    /// Opens the console at `url` and waits until it has connected by itself.
    fn open_console(&self, url: &str) {
        self.open(url);
        assert!(
            self.wait_for("document.getElementById('status').dataset.state === 'open'"),
            "the console did not connect by itself: {}",
            self.script(&format!("return {LOG_ROWS};"))
        );
    }

    fn select(&self, select: &str, value: &str) {
        self.click(&format!("{select} option[value='{value}']"));
    }
}

#[test]
fn console_connects_by_itself_and_talks_to_the_greeter() {
    let server = Server::start(&["--devconsole", "examples/bash/greeter.sh"]);
    let browser = Browser::start();
    browser.open_console(&format!("http://127.0.0.1:{}/", server.port));
    let endpoint = format!("ws://127.0.0.1:{}/", server.port);
    assert_eq!(
        browser.script("return document.getElementById('url').value;"),
        json!(endpoint)
    );
    assert_eq!(
        browser.script("return document.getElementById('status-text').textContent;"),
        json!("open")
    );
    browser.wait_for_rows(&format!("some(r => r === 'system event: open {endpoint}')"));
    // Labelled buttons, in the state a connected console needs.
    assert_eq!(
        browser.script(
            "return ['connect', 'disconnect', 'send-button'].map(id => { \
             const b = document.getElementById(id); return b.textContent + ' ' + b.disabled; });"
        ),
        json!(["Connect true", "Disconnect false", "Send false"])
    );

    browser.type_into("#send", "hello\u{E007}");
    browser.wait_for_rows("some(r => r === 'received text: Hello, hello!')");
    browser.wait_for_rows("some(r => r === 'sent text: hello')");
    // Every row has a time of day (to the millisecond) and a direction in words.
    let rows = browser.script(
        "return Array.from(document.querySelectorAll('#log .row')).map(r => \
         r.querySelector('.time').textContent + ' ' + r.querySelector('.dir').textContent);",
    );
    let rows = rows.as_array().cloned().unwrap_or_default();
    assert!(rows.len() >= 4, "{rows:?}");
    for row in &rows {
        let row = row.as_str().unwrap_or_default();
        let (time, direction) = row.split_at(12);
        let digits: String = time.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(digits.len(), 9, "{row}");
        assert_eq!(&time[2..3], ":", "{row}");
        assert!(
            [" \u{2192} sent", " \u{2190} received", " \u{2022} system"].contains(&direction),
            "{row}"
        );
    }

    browser.click("#disconnect");
    browser.wait_for_rows("some(r => r.startsWith('system event: closed 1000: normal closure'))");
    assert_eq!(browser.status(), json!("closed"));
    assert_eq!(
        browser.script("return document.getElementById('send').disabled;"),
        json!(true)
    );
    // Connect opens a new session with a new program.
    browser.click("#connect");
    assert!(browser.wait_for("document.getElementById('status').dataset.state === 'open'"));
    browser.type_into("#send", "again\u{E007}");
    browser.wait_for_rows("some(r => r === 'received text: Hello, again!')");
}

#[test]
fn console_pretty_prints_json_and_shows_and_sends_binary_as_hex() {
    let server = Server::start(&[
        "--devconsole",
        "sh",
        "-c",
        r#"echo '{"user":"ada","tags":["x",1,null]}'; echo '[not json'; cat"#,
    ]);
    let browser = Browser::start();
    browser.open_console(&format!("http://127.0.0.1:{}/", server.port));
    browser.wait_for_rows(&format!(
        "some(r => r === {})",
        json!("received json: {\n  \"user\": \"ada\",\n  \"tags\": [\n    \"x\",\n    1,\n    null\n  ]\n}")
    ));
    browser.wait_for_rows("some(r => r === 'received text: [not json')");
    // The transcript keeps the message as it came.
    let transcript = browser.script("return window.websocketdConsole.transcript();");
    assert!(
        transcript
            .as_str()
            .unwrap_or_default()
            .contains(r#" received json: {"user":"ada","tags":["x",1,null]}"#),
        "{transcript}"
    );

    // In --binary mode the program's output arrives as binary messages: shown as a hex dump.
    // Bytes typed in hex mode go out as one binary message.
    let binary = Server::start(&["--devconsole", "--binary", "cat"]);
    browser.open_console(&format!("http://127.0.0.1:{}/", binary.port));
    browser.select("#mode", "hex");
    browser.type_into("#send", "00 01 ff 0x68,69\u{E007}");
    let dump = "00000000  00 01 ff 68 69                                    |...hi|";
    browser.wait_for_rows(&format!("some(r => r === 'sent binary: {dump}')"));
    browser.wait_for_rows(&format!("some(r => r === 'received binary: {dump}')"));
    assert!(browser.wait_for(
        "Array.from(document.querySelectorAll('#log .row .meta')).some(m => \
         m.textContent === 'binary \u{b7} 5 bytes')"
    ));
    // A longer message: 20 bytes over two dump lines.
    browser.type_into(
        "#send",
        "404142434445464748494a4b4c4d4e4f 50 51 52 53\u{E007}",
    );
    let two_lines =
        "00000000  40 41 42 43 44 45 46 47  48 49 4a 4b 4c 4d 4e 4f  |@ABCDEFGHIJKLMNO|\\n\
                     00000010  50 51 52 53                                       |PQRS|";
    browser.wait_for_rows(&format!("some(r => r === 'received binary: {two_lines}')"));
    // Something that is not hex is refused in words, and nothing is sent.
    browser.type_into("#send", "zz\u{E007}");
    browser.wait_for_rows("some(r => r.startsWith('system error: hex mode: only hex digits'))");
    browser.type_into("#send", "\u{E009}a\u{E009}abc\u{E007}");
    browser.wait_for_rows("some(r => r.startsWith('system error: hex mode: an odd number'))");
    let sent =
        browser.script("return document.querySelectorAll('#log .row[data-dir=\"sent\"]').length;");
    assert_eq!(sent, json!(2));
}

#[test]
fn console_filter_hides_rows_and_copies_a_transcript() {
    let server = Server::start(&["--devconsole", "cat"]);
    let browser = Browser::start();
    browser.open_console(&format!("http://127.0.0.1:{}/", server.port));
    for word in ["apple pie", "banana", "Apple juice"] {
        browser.type_into("#send", &format!("{word}\u{E007}"));
        browser.wait_for_rows(&format!("some(r => r === 'received text: {word}')"));
    }
    browser.type_into("#filter", "apple");
    assert!(
        browser.wait_for(&format!("{SHOWN_ROWS}.length === 4")),
        "{}",
        browser.script(&format!("return {SHOWN_ROWS};"))
    );
    assert_eq!(
        browser.script(&format!("return {SHOWN_ROWS};")),
        json!([
            "sent text: apple pie",
            "received text: apple pie",
            "sent text: Apple juice",
            "received text: Apple juice"
        ])
    );
    browser.select("#show", "received");
    assert!(browser.wait_for(&format!("{SHOWN_ROWS}.length === 2")));
    let counts = browser.script("return document.getElementById('counts').textContent;");
    assert!(
        counts
            .as_str()
            .unwrap_or_default()
            .starts_with("2 of 8 rows"),
        "{counts}"
    );
    // The transcript has every row, filtered or not, with its time and direction.
    let transcript = browser.script("return window.websocketdConsole.transcript();");
    let lines: Vec<&str> = transcript.as_str().unwrap_or_default().lines().collect();
    assert_eq!(lines.len(), 8, "{transcript}");
    assert!(
        lines[0].contains(" system event: connecting to ws://127.0.0.1:"),
        "{transcript}"
    );
    assert!(
        lines[5].ends_with("Z received text: banana"),
        "{transcript}"
    );
    assert!(lines[5].starts_with("20"), "{transcript}");
    browser.click("#copy");
    assert!(
        browser.wait_for("document.getElementById('notice').textContent === 'copied 8 rows'"),
        "{}",
        browser.script("return document.getElementById('notice').textContent;")
    );
    browser.click("#clear");
    assert!(browser.wait_for(&format!("{LOG_ROWS}.length === 0")));
}

#[test]
fn console_explains_close_codes_in_words() {
    let server = Server::start(&["--devconsole", "sh", "-c", "echo bye; exit 3"]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    browser.wait_for_rows("some(r => r === 'received text: bye')");
    browser.wait_for_rows(
        "some(r => r === 'system error: closed 1011 exit status 3: internal error: the program \
         failed or could not be started; the program exited with status 3')",
    );
    assert_eq!(browser.status(), json!("closed"));
    assert_eq!(
        browser.script("return document.getElementById('status-text').textContent;"),
        json!("closed 1011")
    );
    // The other codes a websocketd client meets, as the page words them.
    let words = browser.script(
        "const e = window.websocketdConsole.explainClose; return [e(1001, ''), e(1006, ''), \
         e(1009, ''), e(1013, 'too slow'), e(1011, 'signal 9'), e(4321, '')];",
    );
    let words: Vec<&str> = words
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(words.len(), 6, "{words:?}");
    assert!(words[0].starts_with("going away: the server is shutting down"));
    assert!(words[1].starts_with("abnormal closure: the connection ended without a close frame"));
    assert!(words[2].contains("--maxframesize"));
    assert!(words[3].contains("fell too far behind"));
    assert!(words[4].ends_with("the program was killed by signal 9 (SIGKILL)"));
    assert_eq!(words[5], "application-defined code");
    // An endpoint nobody listens on: 1006, explained.
    let nobody = free_port();
    browser.script(&format!(
        "document.getElementById('url').value = 'ws://127.0.0.1:{nobody}/'; return true;"
    ));
    browser.click("#connect");
    browser.wait_for_rows("some(r => r.startsWith('system error: closed 1006: abnormal closure'))");
}

#[test]
fn console_loads_nothing_from_elsewhere_and_runs_under_its_policy() {
    let server = Server::start(&["--devconsole", "cat"]);
    let response = server.get("/");
    let policy = response
        .header("content-security-policy")
        .unwrap_or_default()
        .to_string();
    assert!(
        policy.starts_with("default-src 'none'; script-src 'sha256-"),
        "{policy}"
    );
    assert!(!policy.contains("unsafe-"), "{policy}");
    let page = String::from_utf8_lossy(&response.body);
    for loader in [
        "http://", "https://", "src=", "<link", "@import", "url(", "<iframe",
    ] {
        assert!(!page.contains(loader), "the page has {loader}");
    }

    let browser = Browser::start();
    browser.open_console(&format!("http://127.0.0.1:{}/", server.port));
    // The inline script ran (it connected) and the inline style applied, under that policy.
    assert_eq!(
        browser.script("return getComputedStyle(document.body).display;"),
        json!("flex")
    );
    // Nothing was fetched besides the page itself (a WebSocket is no resource entry).
    assert_eq!(
        browser.script("return performance.getEntriesByType('resource').map(e => e.name);"),
        json!([])
    );
    // The policy is enforced: a script added later does not run.
    browser.script(
        "const s = document.createElement('script'); s.textContent = 'window.injected = 1'; \
         document.body.appendChild(s); return true;",
    );
    assert_eq!(
        browser.script("return typeof window.injected;"),
        json!("undefined")
    );
    // Help and documentation is on the page itself; it points at our own documents.
    browser.click("#help-link");
    assert!(browser.wait_for("!document.getElementById('help').hidden"));
    let help = browser.script("return document.getElementById('help').textContent;");
    let help = help.as_str().unwrap_or_default();
    assert!(
        help.contains("man websocketd") && help.contains("docs/guide.md"),
        "{help}"
    );
    assert_eq!(
        browser.script("return Array.from(document.links).map(a => a.getAttribute('href'));"),
        json!(["#help"])
    );
}

#[test]
fn count_page_served_statically_counts_to_ten() {
    let server = Server::start(&["--staticdir=examples", "examples/bash/count.sh"]);
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
        "examples/bash/count.sh".to_string(),
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
