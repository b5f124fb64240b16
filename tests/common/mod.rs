//! Shared black-box test support: start the real `websocketd` binary on 127.0.0.1 with a
//! free port, watch its log, and talk to it over WebSocket or raw HTTP.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A program that ignores SIGINT and SIGTERM and starts a grandchild that does too; it
/// prints its own PID and the grandchild's.
pub const STUBBORN: &str =
    "trap '' INT TERM; sleep 1000 & echo $$ $!; while :; do sleep 0.05; done";

/// Every wait in the tests is bounded by this unless stated otherwise.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_websocketd")
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Lines a process printed, shared with the thread that reads them.
#[derive(Clone, Default)]
pub struct Lines {
    inner: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Lines {
    /// Collects the lines of `stream` in a thread of their own.
    pub fn collect(self, stream: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let reader = BufReader::new(stream);
            for line in reader.split(b'\n') {
                let Ok(line) = line else { break };
                let (lock, cond) = &*self.inner;
                lock.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&line).into_owned());
                cond.notify_all();
            }
        })
    }

    /// A copy of every line so far.
    pub fn all(&self) -> Vec<String> {
        self.inner.0.lock().unwrap().clone()
    }

    /// Waits until a line satisfies `pred`; returns it.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let (lock, cond) = &*self.inner;
        let deadline = Instant::now() + timeout;
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some(line) = lines.iter().find(|l| pred(l)) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = cond.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Waits until `count` lines satisfy `pred`.
    pub fn wait_count(&self, timeout: Duration, count: usize, pred: impl Fn(&str) -> bool) -> bool {
        let (lock, cond) = &*self.inner;
        let deadline = Instant::now() + timeout;
        let mut lines = lock.lock().unwrap();
        loop {
            if lines.iter().filter(|l| pred(l)).count() >= count {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            lines = cond.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }
}

/// A running websocketd.
pub struct Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// What it printed on stdout (the log).
    pub stdout: Lines,
    /// What it printed on stderr.
    pub stderr: Lines,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The inodes of the sockets listening on TCP `port` (IPv4 and IPv6), from /proc/net.
fn listening_inodes(port: u16) -> Vec<String> {
    let suffix = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A (LISTEN), inode
            if fields.len() > 9 && fields[1].ends_with(&suffix) && fields[3] == "0A" {
                inodes.push(fields[9].to_string());
            }
        }
    }
    inodes
}

/// Whether the socket listening on `port` is held by `pid` or one of its descendants.
fn listener_belongs_to(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut pending = vec![pid];
    let mut seen = 0;
    while let Some(pid) = pending.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                        return true;
                    }
                }
            }
        }
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                    pending.extend(
                        children
                            .split_whitespace()
                            .filter_map(|c| c.parse::<u32>().ok()),
                    );
                }
            }
        }
    }
    false
}

impl Server {
    /// Starts websocketd on 127.0.0.1 with `args` (flags, then COMMAND) and waits until it
    /// accepts connections.
    pub fn start(args: &[&str]) -> Server {
        Server::start_in(&root(), args)
    }

    /// Like [`Server::start`], with `cwd` as the working directory.
    pub fn start_in(cwd: &Path, args: &[&str]) -> Server {
        Server::start_with(cwd, &[], args)
    }

    /// Like [`Server::start_in`], with extra environment variables for the daemon.
    pub fn start_with(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::start_configured(cwd, args, &|command| {
            command.envs(env.iter().copied());
        })
    }

    /// Like [`Server::start_in`], with `configure` applied to the daemon's command (limits,
    /// signal dispositions, a wrapper).
    pub fn start_configured(cwd: &Path, args: &[&str], configure: &dyn Fn(&mut Command)) -> Server {
        for _ in 0..5 {
            let port = free_port();
            let mut command = Command::new(binary());
            command
                .current_dir(cwd)
                .arg(format!("--port={port}"))
                .arg("--address=127.0.0.1")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            configure(&mut command);
            let mut child = command.spawn().expect("start websocketd");
            let stdout = Lines::default();
            let stderr = Lines::default();
            stdout.clone().collect(child.stdout.take().unwrap());
            stderr.clone().collect(child.stderr.take().unwrap());
            let mut server = Server {
                child,
                port,
                stdout,
                stderr,
            };
            if server.wait_listening() {
                return server;
            }
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
        panic!("websocketd did not start listening");
    }

    /// Starts websocketd with exactly `args` (no port or address added) and does not wait.
    pub fn spawn_raw(cwd: &Path, args: &[&str]) -> Server {
        let mut command = Command::new(binary());
        command.current_dir(cwd).args(args);
        Server::spawn_command(command)
    }

    /// Starts `command` (websocketd, or a launcher that becomes websocketd) with its output
    /// collected, and does not wait. `port` is left 0 for the caller to set.
    pub fn spawn_command(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start websocketd");
        let stdout = Lines::default();
        let stderr = Lines::default();
        stdout.clone().collect(child.stdout.take().unwrap());
        stderr.clone().collect(child.stderr.take().unwrap());
        Server {
            child,
            port: 0,
            stdout,
            stderr,
        }
    }

    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            // Another daemon may have taken the port between `free_port` and this one's
            // bind: a connection is only proof once the listener is this child's.
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && listener_belongs_to(self.child.id(), self.port)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// `ws://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the daemon to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// Sends raw bytes and returns everything the server answers until it closes or
    /// stays quiet for a moment after a complete response.
    pub fn raw(&self, request: &[u8]) -> Vec<u8> {
        raw_request(self.port, request)
    }

    /// A plain GET; returns (status, headers lower-cased, body).
    pub fn get(&self, path: &str) -> HttpResponse {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        HttpResponse::parse(&self.raw(request.as_bytes()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client whose socket buffers are tiny, so that not reading soon blocks the server.
pub async fn connect_small_buffers(port: u16) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/");
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    ws
}

/// Runs websocketd with exactly `args` in `cwd` until it exits by itself (bounded by
/// [`DEADLINE`]), for command lines that end before serving.
pub fn run_to_exit(cwd: &Path, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(binary())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("websocketd {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `request` to 127.0.0.1:`port`, reads until the server closes (bounded).
pub fn raw_request(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if HttpResponse::complete(&out) {
                    break;
                }
            }
        }
    }
    out
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers with lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Parses a response (Content-Length or read-to-close bodies; chunked is decoded).
    pub fn parse(raw: &[u8]) -> HttpResponse {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[end + 4..].to_vec();
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        HttpResponse {
            status,
            headers,
            body,
        }
    }

    /// Whether `raw` holds a whole response with a Content-Length body.
    pub fn complete(raw: &[u8]) -> bool {
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        if head.starts_with("http/1.1 101") {
            return true;
        }
        match head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            Some(len) => raw.len() >= end + 4 + len,
            None => false,
        }
    }

    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
}

/// A WebSocket client connection.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `url`, with extra request headers.
pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Ws, String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    for (name, value) in headers {
        request.headers_mut().append(
            hyper_header_name(name),
            value.parse().map_err(|_| "bad header value".to_string())?,
        );
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    match tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::connect_async_with_config(request, Some(config), true),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("connect timed out".into()),
    }
}

fn hyper_header_name(name: &str) -> tokio_tungstenite::tungstenite::http::HeaderName {
    tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap()
}

/// Connects to `url`.
pub async fn connect(url: &str) -> Ws {
    connect_with(url, &[]).await.expect("connect")
}

/// What the client saw until the connection ended.
#[derive(Debug, Default)]
pub struct Transcript {
    /// Text messages.
    pub texts: Vec<String>,
    /// Binary messages.
    pub binaries: Vec<Vec<u8>>,
    /// The close frame's code and reason, if one arrived.
    pub close: Option<(u16, String)>,
}

/// Reads messages until the connection ends (bounded by `timeout`).
pub async fn read_all<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    timeout: Duration,
) -> Transcript {
    let mut transcript = Transcript::default();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("connection did not end in time: {transcript:?}"),
            Ok(None) => return transcript,
            Ok(Some(Err(_))) => return transcript,
            Ok(Some(Ok(message))) => match message {
                Message::Text(text) => transcript.texts.push(text.to_string()),
                Message::Binary(data) => transcript.binaries.push(data.to_vec()),
                Message::Close(frame) => {
                    transcript.close = Some(
                        frame
                            .map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((u16::from(CloseCode::Status), String::new())),
                    );
                }
                _ => {}
            },
        }
    }
}

/// Reads the next text message (bounded).
pub async fn next_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> String {
    loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return text.to_string(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Reads the next binary message (bounded).
pub async fn next_binary<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> Vec<u8> {
    loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => return data.to_vec(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
}

/// Sends a text message.
pub async fn send_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, text: &str) {
    tokio::time::timeout(DEADLINE, ws.send(Message::text(text)))
        .await
        .expect("send in time")
        .expect("send");
}

/// Opens a WebSocket by hand (for cases a client library will not produce) and returns
/// the socket right after the 101.
pub fn raw_upgrade(port: u16) -> TcpStream {
    raw_upgrade_with(port, "").0
}

/// Like [`raw_upgrade`], with `extra` header lines (each ending in `\r\n`) in the request;
/// also returns the 101 response head.
pub fn raw_upgrade_with(port: u16, extra: &str) -> (TcpStream, String) {
    raw_upgrade_on(
        TcpStream::connect(("127.0.0.1", port)).unwrap(),
        port,
        extra,
    )
}

/// Like [`raw_upgrade_with`], on a socket already connected to `port`.
pub fn raw_upgrade_on(mut stream: TcpStream, port: u16, extra: &str) -> (TcpStream, String) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (stream, head)
}

/// Writes an executable shell script into `dir` and returns its path.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A fresh empty directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("wsd-test-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a live (non-zombie) process with this PID exists.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Whether `pid` is the daemon's spawner helper (it starts the daemon's programs).
pub fn is_spawner(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.starts_with(b"websocketd-spawner"))
}

/// The daemon's running programs: its live children and its spawner's, without the
/// spawner itself.
pub fn programs(daemon: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for child in live_children(daemon) {
        if is_spawner(child) {
            out.extend(live_children(child));
        } else {
            out.push(child);
        }
    }
    out
}

/// Zombies among the daemon's programs (children of the daemon or of its spawner).
pub fn zombie_programs(daemon: u32) -> usize {
    zombie_children(daemon)
        + live_children(daemon)
            .into_iter()
            .filter(|&child| is_spawner(child))
            .map(zombie_children)
            .sum::<usize>()
}

/// The children of `parent` with their state letter from `/proc/PID/stat`.
fn children(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("").to_string();
            let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            if ppid == parent {
                out.push((pid, state));
            }
        }
    }
    out
}

/// PIDs of live processes whose parent is `parent`.
pub fn live_children(parent: u32) -> Vec<u32> {
    children(parent)
        .into_iter()
        .filter(|(_, state)| state != "Z")
        .map(|(pid, _)| pid)
        .collect()
}

/// Zombie children of `parent`.
pub fn zombie_children(parent: u32) -> usize {
    children(parent)
        .iter()
        .filter(|(_, state)| state == "Z")
        .count()
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident set size of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A KiB figure from `/proc/PID/status` (`VmRSS:`, `VmHWM:` …); 0 when it cannot be read.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs a command to completion within `timeout` (killed and reported as a failure past it)
/// and returns its output; stdin is empty.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> std::process::Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
    let pid = child.id();
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match result.recv_timeout(timeout) {
        Ok(output) => output.unwrap_or_else(|err| panic!("{command:?}: {err}")),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("{command:?} did not finish within {timeout:?}");
        }
    }
}
