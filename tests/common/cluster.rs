//! Engine-generic black-box scenarios for `--cluster`: several real websocketd instances
//! sharing one stream through a real engine server. A test file per engine supplies the
//! server ([`EngineServer`]) and calls each scenario with it; the scenarios know nothing of
//! the engine.
//!
//! Include with `mod common;` and `#[path = "common/cluster.rs"] mod cluster;`.
#![allow(dead_code)]

use super::common::{connect, programs, wait_until, Server, DEADLINE};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// A coordination engine's server for a test: started on a free port of 127.0.0.1 with
/// nothing kept on disk, stopped by its PID when dropped.
pub trait EngineServer: Sized {
    /// Starts a fresh server; panics with a clear message if it cannot.
    fn start() -> Self;
    /// The `--cluster` URL of the stream `name` on this server.
    fn url(&self, name: &str) -> String;
    /// The server's PID.
    fn pid(&self) -> u32;
    /// Stops the server (SIGTERM, then SIGKILL if it lingers) and waits for it to exit.
    fn stop(&mut self);
    /// Starts it again on the same port, empty (data from before the stop is gone).
    fn restart(&mut self);
}

/// Starts `command` and waits until 127.0.0.1:`port` accepts connections; kills it and
/// panics if it exits or does not listen within [`DEADLINE`].
pub fn spawn_listening(command: &mut Command, port: u16, what: &str) -> Child {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot start {what} ({err}); scripts/install-test-deps.sh installs it")
        });
    let listening = wait_until(DEADLINE, || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start: {status}");
        }
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    if !listening {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not listen on port {port}");
    }
    child
}

/// Stops a server child: SIGTERM, up to 5 s, then SIGKILL; always reaped.
pub fn stop_child(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let gone = wait_until(Duration::from_secs(5), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !gone {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Redis from Debian's `redis-server`, no RDB snapshots and no AOF.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn spawn(port: u16) -> Child {
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--dir",
            &std::env::temp_dir().to_string_lossy(),
        ]);
        spawn_listening(&mut command, port, "redis-server")
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl EngineServer for RedisServer {
    fn start() -> Self {
        let port = super::common::free_port();
        RedisServer {
            child: RedisServer::spawn(port),
            port,
        }
    }

    fn url(&self, name: &str) -> String {
        format!("redis://127.0.0.1:{}/{name}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    fn restart(&mut self) {
        self.stop();
        self.child = RedisServer::spawn(self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// A program that prints `PID N` every 20 ms, N counting from 1.
pub const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo \"$$ $i\"; sleep 0.02; done";

/// A program that prints `got LINE` for each input line, after a `ready PID` line.
pub const ECHO: &str = "echo \"ready $$\"; while read -r l; do echo \"got $l\"; done";

/// A websocketd instance of a cluster.
pub fn instance(url: &str, lease_ms: u64, extra: &[&str], program: &str) -> Server {
    let lease = format!("--leasems={lease_ms}");
    let cluster = format!("--cluster={url}");
    let mut args = vec![
        "--broadcast",
        cluster.as_str(),
        lease.as_str(),
        "--loglevel=debug",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["sh", "-c", program]);
    Server::start(&args)
}

/// The programs running under each of `instances`.
pub fn running(instances: &[&Server]) -> Vec<Vec<u32>> {
    instances.iter().map(|s| programs(s.pid())).collect()
}

/// Waits until exactly one program runs in the cluster; returns the index of its instance
/// and its PID.
pub fn one_runner(instances: &[&Server], timeout: Duration) -> Option<(usize, u32)> {
    let mut found = None;
    wait_until(timeout, || {
        let all = running(instances);
        let total: usize = all.iter().map(Vec::len).sum();
        found = all
            .iter()
            .position(|p| p.len() == 1)
            .filter(|_| total == 1)
            .map(|i| (i, all[i][0]));
        found.is_some()
    });
    found
}

/// What one test client has received so far, collected by its own task.
#[derive(Clone, Default)]
pub struct Watcher {
    texts: Arc<Mutex<Vec<String>>>,
    closed: Arc<Mutex<Option<String>>>,
}

impl Watcher {
    /// Connects to `url` and collects every text message until the connection ends.
    pub async fn connect(url: &str) -> Watcher {
        let ws = connect(url).await;
        Watcher::watch(ws)
    }

    fn watch(ws: super::common::Ws) -> Watcher {
        let (_sink, stream) = ws.split();
        Watcher::collect(stream)
    }

    /// Collects the texts of `stream` in a task of its own.
    fn collect(
        mut stream: impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + Unpin
            + Send
            + 'static,
    ) -> Watcher {
        let watcher = Watcher::default();
        let collected = watcher.clone();
        tokio::spawn(async move {
            let end = loop {
                match stream.next().await {
                    Some(Ok(Message::Text(text))) => {
                        collected.texts.lock().unwrap().push(text.to_string());
                    }
                    Some(Ok(Message::Close(frame))) => break format!("close {frame:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(err)) => break format!("error {err}"),
                    None => break "end".to_string(),
                }
            };
            *collected.closed.lock().unwrap() = Some(end);
        });
        watcher
    }

    /// Every text so far.
    pub fn texts(&self) -> Vec<String> {
        self.texts.lock().unwrap().clone()
    }

    /// How the connection ended, if it did.
    pub fn closed(&self) -> Option<String> {
        self.closed.lock().unwrap().clone()
    }

    /// Waits until some text satisfies `pred`.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.texts.lock().unwrap().iter().any(|t| pred(t)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

/// A client that also sends: its sending half, and a watcher of what it receives.
pub async fn sender(
    url: &str,
) -> (
    futures_util::stream::SplitSink<super::common::Ws, Message>,
    Watcher,
) {
    let (sink, stream) = connect(url).await.split();
    (sink, Watcher::collect(stream))
}

/// `(pid, n)` from a [`COUNTER`] line.
pub fn counter_line(text: &str) -> Option<(u32, u64)> {
    let (pid, n) = text.split_once(' ')?;
    Some((pid.parse().ok()?, n.parse().ok()?))
}

/// Asserts that no text repeats in `texts`.
pub fn assert_no_duplicates(texts: &[String], who: &str) {
    let mut seen = HashSet::new();
    for text in texts {
        assert!(
            seen.insert(text),
            "{who} received {text:?} twice: {texts:?}"
        );
    }
}

/// Asserts that every transcript is a run of one common sequence: where two transcripts
/// overlap, they hold the same lines in the same order.
pub fn assert_same_order(transcripts: &[Vec<String>]) {
    for (i, a) in transcripts.iter().enumerate() {
        for b in &transcripts[i + 1..] {
            let Some(start) = a.iter().position(|line| b.first() == Some(line)) else {
                let Some(start) = b.iter().position(|line| a.first() == Some(line)) else {
                    panic!("transcripts do not overlap: {a:?} / {b:?}");
                };
                let n = (b.len() - start).min(a.len());
                assert_eq!(&b[start..start + n], &a[..n], "different order");
                continue;
            };
            let n = (a.len() - start).min(b.len());
            assert_eq!(&a[start..start + n], &b[..n], "different order");
        }
    }
}

/// The failover bound the issue sets: the lease plus one second.
pub fn failover_bound(lease_ms: u64) -> Duration {
    Duration::from_millis(lease_ms) + Duration::from_secs(1)
}

/// Scenario: three instances with two clients each see the same lines in the same order,
/// without duplicates, and exactly one program runs in the whole cluster.
pub async fn same_stream_everywhere<E: EngineServer>() {
    let engine = E::start();
    let url = engine.url("same");
    let servers: Vec<Server> = (0..3).map(|_| instance(&url, 2000, &[], COUNTER)).collect();
    let refs: Vec<&Server> = servers.iter().collect();
    let (_, pid) = one_runner(&refs, DEADLINE).expect("exactly one program in the cluster");
    let mut watchers = Vec::new();
    for server in &servers {
        for _ in 0..2 {
            watchers.push(Watcher::connect(&server.url("/")).await);
        }
    }
    for watcher in &watchers {
        assert!(
            watcher
                .wait_for(DEADLINE, |t| counter_line(t)
                    .is_some_and(|(p, n)| p == pid && n > 60))
                .await,
            "{:?}",
            watcher.texts()
        );
    }
    let transcripts: Vec<Vec<String>> = watchers.iter().map(Watcher::texts).collect();
    for (i, transcript) in transcripts.iter().enumerate() {
        assert_no_duplicates(transcript, &format!("client {i}"));
        let numbers: Vec<u64> = transcript
            .iter()
            .filter_map(|t| counter_line(t))
            .map(|(_, n)| n)
            .collect();
        assert!(
            numbers.windows(2).all(|w| w[1] == w[0] + 1),
            "client {i} skipped lines: {numbers:?}"
        );
    }
    assert_same_order(&transcripts);
    assert_eq!(
        one_runner(&refs, DEADLINE),
        Some(one_runner(&refs, DEADLINE).unwrap())
    );
    let total: usize = running(&refs).iter().map(Vec::len).sum();
    assert_eq!(total, 1, "programs: {:?}", running(&refs));
}
