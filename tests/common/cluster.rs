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

/// Starts the engine and three instances running [`COUNTER`]; waits for the one runner.
fn counter_cluster<E: EngineServer>(name: &str, lease_ms: u64) -> (E, Vec<Server>, usize, u32) {
    let engine = E::start();
    let url = engine.url(name);
    let servers: Vec<Server> = (0..3)
        .map(|_| instance(&url, lease_ms, &[], COUNTER))
        .collect();
    let refs: Vec<&Server> = servers.iter().collect();
    let (runner, pid) = one_runner(&refs, DEADLINE).expect("exactly one program in the cluster");
    (engine, servers, runner, pid)
}

/// Two clients on each instance.
async fn clients(servers: &[Server]) -> Vec<(usize, Watcher)> {
    let mut watchers = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        for _ in 0..2 {
            watchers.push((i, Watcher::connect(&server.url("/")).await));
        }
    }
    watchers
}

/// Waits until every watcher has a [`COUNTER`] line from a program other than `old`
/// (`None`: from any program); returns that program's PID.
async fn wait_new_program(watchers: &[&Watcher], old: Option<u32>, timeout: Duration) -> u32 {
    let mut pid = None;
    for watcher in watchers {
        assert!(
            watcher
                .wait_for(timeout, |t| counter_line(t)
                    .is_some_and(|(p, _)| Some(p) != old))
                .await,
            "no line from a new program: {:?} (closed: {:?})",
            watcher.texts(),
            watcher.closed()
        );
        let seen = watcher
            .texts()
            .iter()
            .filter_map(|t| counter_line(t))
            .map(|(p, _)| p)
            .find(|&p| Some(p) != old);
        if pid.is_none() {
            pid = seen;
        }
    }
    pid.expect("a new program")
}

/// The highest number of program `pid` any watcher received.
fn highest_of(watchers: &[&Watcher], pid: u32) -> u64 {
    watchers
        .iter()
        .flat_map(|w| w.texts())
        .filter_map(|t| counter_line(&t))
        .filter(|&(p, _)| p == pid)
        .map(|(_, n)| n)
        .max()
        .unwrap_or(0)
}

/// Every server but the one at `skip`.
fn except(servers: &[Server], skip: usize) -> Vec<&Server> {
    servers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != skip)
        .map(|(_, s)| s)
        .collect()
}

/// The watchers of every server but the one at `skip`.
fn watchers_except(watchers: &[(usize, Watcher)], skip: usize) -> Vec<&Watcher> {
    watchers
        .iter()
        .filter(|(i, _)| *i != skip)
        .map(|(_, w)| w)
        .collect()
}

/// Waits until every watcher has received a [`COUNTER`] line.
async fn wait_counting(watchers: &[&Watcher]) {
    for watcher in watchers {
        assert!(
            watcher
                .wait_for(DEADLINE, |t| counter_line(t).is_some())
                .await,
            "{:?}",
            watcher.texts()
        );
    }
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Scenario: SIGKILL the runner's instance; another instance runs the program within the
/// lease + 1 s, the clients of the others stay connected, receive the new program's lines,
/// and no client receives a line twice.
pub async fn failover_after_sigkill<E: EngineServer>() {
    let lease_ms = 2000;
    let (_engine, servers, runner, old) = counter_cluster::<E>("kill", lease_ms);
    let watchers = clients(&servers).await;
    let survivors = watchers_except(&watchers, runner);
    wait_counting(&survivors).await;
    signal(servers[runner].pid(), "KILL");
    let killed = Instant::now();
    let others = except(&servers, runner);
    let taken = one_runner(&others, DEADLINE).expect("another instance runs the program");
    let took = killed.elapsed();
    assert!(
        took <= failover_bound(lease_ms),
        "failover took {took:?}, more than the lease + 1 s"
    );
    assert_ne!(taken.1, old);
    let new = wait_new_program(&survivors, Some(old), DEADLINE).await;
    assert_eq!(new, taken.1);
    for watcher in &survivors {
        assert!(
            watcher
                .wait_for(DEADLINE, |t| counter_line(t)
                    .is_some_and(|(p, n)| p == new && n >= 10))
                .await
        );
        assert_eq!(
            watcher.closed(),
            None,
            "a client of a survivor was disconnected"
        );
        assert_no_duplicates(&watcher.texts(), "a client of a survivor");
    }
    let transcripts: Vec<Vec<String>> = survivors.iter().map(|w| w.texts()).collect();
    assert_same_order(&transcripts);
    let total: usize = running(&others).iter().map(Vec::len).sum();
    assert_eq!(total, 1, "programs: {:?}", running(&others));
}

/// Scenario: SIGSTOP the runner's instance past its lease, then SIGCONT it: its program is
/// stopped and nothing it printed meanwhile reaches any client.
pub async fn fenced_after_sigstop<E: EngineServer>() {
    let lease_ms = 2000;
    let (_engine, servers, runner, old) = counter_cluster::<E>("stop", lease_ms);
    let watchers = clients(&servers).await;
    let all: Vec<&Watcher> = watchers.iter().map(|(_, w)| w).collect();
    wait_counting(&all).await;
    signal(servers[runner].pid(), "STOP");
    let others = except(&servers, runner);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        one_runner(&others, DEADLINE).expect("another instance runs the program")
    }));
    let survivors = watchers_except(&watchers, runner);
    let new = match result {
        Ok(_) => wait_new_program(&survivors, Some(old), DEADLINE).await,
        Err(panic) => {
            signal(servers[runner].pid(), "CONT");
            std::panic::resume_unwind(panic);
        }
    };
    // Everything the old program had written before the stop has reached the clients by
    // now; whatever it printed while its instance was stopped must never arrive.
    let before = highest_of(&all, old);
    assert!(
        super::common::alive(old),
        "the old program keeps printing meanwhile"
    );
    signal(servers[runner].pid(), "CONT");
    assert!(
        wait_until(DEADLINE, || !super::common::alive(old)),
        "the old runner did not stop its program"
    );
    for watcher in &all {
        let target = highest_of(&[watcher], new) + 10;
        assert!(
            watcher
                .wait_for(DEADLINE, |t| counter_line(t)
                    .is_some_and(|(p, n)| p == new && n >= target))
                .await,
            "{:?}",
            watcher.texts()
        );
        assert_eq!(watcher.closed(), None);
        assert_no_duplicates(&watcher.texts(), "a client");
    }
    assert_eq!(
        highest_of(&all, old),
        before,
        "a fenced line reached a client"
    );
    let refs: Vec<&Server> = servers.iter().collect();
    let total: usize = running(&refs).iter().map(Vec::len).sum();
    assert_eq!(total, 1, "programs: {:?}", running(&refs));
}

/// Scenario: the engine stops and comes back empty; the instances keep their clients
/// connected and recover without being restarted.
pub async fn engine_restart<E: EngineServer>() {
    let (mut engine, servers, _, old) = counter_cluster::<E>("restart", 2000);
    let watchers = clients(&servers).await;
    let all: Vec<&Watcher> = watchers.iter().map(|(_, w)| w).collect();
    wait_counting(&all).await;
    engine.stop();
    // The outage lasts longer than the lease.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let refs: Vec<&Server> = servers.iter().collect();
    assert!(
        wait_until(DEADLINE, || running(&refs).iter().all(Vec::is_empty)),
        "a runner that cannot renew stops its program: {:?}",
        running(&refs)
    );
    for watcher in &all {
        assert_eq!(
            watcher.closed(),
            None,
            "clients stay connected during the outage"
        );
    }
    engine.restart();
    wait_new_program(&all, Some(old), DEADLINE).await;
    for watcher in &all {
        assert_eq!(watcher.closed(), None);
        assert_no_duplicates(&watcher.texts(), "a client");
    }
    assert!(
        one_runner(&refs, DEADLINE).is_some(),
        "{:?}",
        running(&refs)
    );
    for server in &servers {
        assert!(
            server
                .stdout
                .wait_for(DEADLINE, |l| l.contains("engine reachable again"))
                .is_some(),
            "{:?}",
            server.stdout.all()
        );
        let unreachable = server
            .stdout
            .all()
            .iter()
            .filter(|l| l.contains("engine unreachable"))
            .count();
        assert!(unreachable <= 3, "logged per retry: {unreachable} lines");
    }
}

/// Scenario: client input from two instances reaches the one program, in order per client.
pub async fn input_from_two_instances<E: EngineServer>() {
    let engine = E::start();
    let url = engine.url("input");
    let servers: Vec<Server> = (0..3)
        .map(|_| instance(&url, 2000, &["--broadcastinput=lines"], ECHO))
        .collect();
    let refs: Vec<&Server> = servers.iter().collect();
    one_runner(&refs, DEADLINE).expect("exactly one program in the cluster");
    let (mut a, a_seen) = sender(&servers[0].url("/")).await;
    let (mut b, b_seen) = sender(&servers[1].url("/")).await;
    let c_seen = Watcher::connect(&servers[2].url("/")).await;
    use futures_util::SinkExt;
    for i in 1..=5 {
        a.send(Message::text(format!("a{i}"))).await.unwrap();
        b.send(Message::text(format!("b{i}"))).await.unwrap();
    }
    for watcher in [&a_seen, &b_seen, &c_seen] {
        assert!(
            watcher.wait_for(DEADLINE, |t| t == "got a5").await
                && watcher.wait_for(DEADLINE, |t| t == "got b5").await,
            "{:?}",
            watcher.texts()
        );
        let texts = watcher.texts();
        for who in ["a", "b"] {
            let order: Vec<&String> = texts
                .iter()
                .filter(|t| t.starts_with(&format!("got {who}")))
                .collect();
            let want: Vec<String> = (1..=5).map(|i| format!("got {who}{i}")).collect();
            assert_eq!(order, want.iter().collect::<Vec<_>>(), "{texts:?}");
        }
    }
    let total: usize = running(&refs).iter().map(Vec::len).sum();
    assert_eq!(total, 1);
}

/// Scenario: a runner stopped with SIGTERM releases its claim, so another instance takes
/// over well before the lease would have expired.
pub async fn graceful_shutdown_hands_over<E: EngineServer>() {
    let lease_ms = 6000;
    let (_engine, mut servers, runner, old) = counter_cluster::<E>("handover", lease_ms);
    let mut stopped = servers.remove(runner);
    stopped.signal("TERM");
    let begun = Instant::now();
    assert!(stopped.wait_exit(DEADLINE).is_some());
    let refs: Vec<&Server> = servers.iter().collect();
    let (_, pid) = one_runner(&refs, DEADLINE).expect("another instance runs the program");
    assert_ne!(pid, old);
    let took = begun.elapsed();
    assert!(
        took < Duration::from_millis(lease_ms),
        "takeover took {took:?}: the claim was not released"
    );
    assert!(stopped
        .stdout
        .all()
        .iter()
        .any(|l| l.contains("claim released")));
}

/// The password the TLS scenarios' engine servers require.
pub const PASSWORD: &str = "s3cret-pw";

/// Scenario part, TLS with the password from the environment: two instances started with
/// `cluster` (a `--cluster=` flag for a TLS URL without the password) and the password
/// in `WEBSOCKETD_CLUSTER_PASSWORD` share one program, whose lines reach a client of
/// each. `ca` is the PEM file of the server certificate's authority.
pub async fn one_program_over_tls(cluster: &str, ca: &str) -> Vec<Server> {
    let env = [
        ("SSL_CERT_FILE", ca),
        ("WEBSOCKETD_CLUSTER_PASSWORD", PASSWORD),
    ];
    let servers: Vec<Server> = (0..2).map(|_| tls_instance(cluster, &env)).collect();
    let refs: Vec<&Server> = servers.iter().collect();
    let (_, pid) = one_runner(&refs, DEADLINE).expect("one program over TLS");
    for server in &servers {
        let watcher = Watcher::connect(&server.url("/")).await;
        assert!(
            watcher
                .wait_for(DEADLINE, |t| counter_line(t).is_some_and(|(p, _)| p == pid))
                .await,
            "{:?}",
            server.stdout.all()
        );
    }
    servers
}

/// Scenario part: an instance started like [`one_program_over_tls`] with a wrong
/// password finds the engine unreachable and runs nothing; no log line of it or of
/// `others` holds either password.
pub fn wrong_password_never_logged(cluster: &str, ca: &str, others: &[&Server]) {
    let env = [
        ("SSL_CERT_FILE", ca),
        ("WEBSOCKETD_CLUSTER_PASSWORD", "wrong-pw"),
    ];
    let refused = tls_instance(cluster, &env);
    assert!(refused
        .stdout
        .wait_for(DEADLINE, |l| l.contains("engine unreachable"))
        .is_some());
    for server in others.iter().copied().chain([&refused]) {
        for line in server.stdout.all().iter().chain(server.stderr.all().iter()) {
            assert!(
                !line.contains(PASSWORD) && !line.contains("wrong-pw"),
                "{line}"
            );
        }
    }
    assert!(running(&[&refused]).iter().all(Vec::is_empty));
}

/// An instance running [`COUNTER`] with `cluster` and `env`.
fn tls_instance(cluster: &str, env: &[(&str, &str)]) -> Server {
    let args = [
        "--broadcast",
        cluster,
        "--loglevel=debug",
        "sh",
        "-c",
        COUNTER,
    ];
    Server::start_with(&super::common::root(), env, &args)
}

/// Scenario: the engine keeps the contract of `websocketd::broadcast::cluster::engine`
/// (claims, epochs, fenced and idempotent appends, reads, input), talked to directly.
pub async fn engine_contract<E: EngineServer>() {
    use bytes::Bytes;
    use websocketd::broadcast::cluster::engine::{EngineError, Position, StreamKey, START};
    use websocketd::broadcast::cluster::open_engine;
    use websocketd::broadcast::cluster::target::ClusterTarget;

    let mut server = E::start();
    let target = ClusterTarget::parse(&server.url("contract"), None).unwrap();
    let key = StreamKey {
        name: target.name.clone(),
        route: "/".into(),
    };
    let engine = open_engine(&target, &key, 100);
    let short = Duration::from_millis(600);
    let at = |epoch, offset| Position { epoch, offset };
    let data = |text: &str| Bytes::copy_from_slice(text.as_bytes());

    let a = engine
        .acquire("a", 0, short)
        .await
        .unwrap()
        .expect("free claim");
    assert!(a.epoch >= 1);
    assert_eq!(
        engine.acquire("b", 0, short).await.unwrap(),
        None,
        "claim held"
    );
    engine
        .append(&a, 1, vec![data("x1"), data("x2")])
        .await
        .unwrap();
    engine
        .append(&a, 1, vec![data("x1"), data("x2")])
        .await
        .unwrap();
    engine.append(&a, 3, vec![data("x3")]).await.unwrap();
    let records = engine.read(START, 10, short).await.unwrap();
    let got: Vec<(Position, Bytes)> = records.into_iter().map(|r| (r.position, r.data)).collect();
    assert_eq!(
        got,
        vec![
            (at(a.epoch, 1), data("x1")),
            (at(a.epoch, 2), data("x2")),
            (at(a.epoch, 3), data("x3"))
        ],
        "a retried append must not duplicate"
    );
    let last: Vec<Bytes> = engine
        .last(2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.data)
        .collect();
    assert_eq!(last, vec![data("x2"), data("x3")]);
    let waited = Instant::now();
    assert!(engine
        .read(at(a.epoch, 3), 10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    assert!(
        waited.elapsed() >= Duration::from_millis(250),
        "read waits for records"
    );
    engine.renew(&a, short).await.unwrap();

    // Let the claim expire: another holder gets a higher epoch and the old one is fenced.
    let b = loop {
        if let Some(b) = engine
            .acquire("b", 0, Duration::from_secs(5))
            .await
            .unwrap()
        {
            break b;
        }
        assert!(waited.elapsed() < DEADLINE, "the claim never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(b.epoch > a.epoch);
    assert_eq!(engine.renew(&a, short).await, Err(EngineError::Fenced));
    assert_eq!(
        engine.append(&a, 4, vec![data("stale")]).await,
        Err(EngineError::Fenced)
    );
    assert_eq!(
        engine.take_input(&a, 10, short).await,
        Err(EngineError::Fenced)
    );
    engine.append(&b, 1, vec![data("y1")]).await.unwrap();
    let records = engine.read(at(a.epoch, 3), 10, short).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].position, &records[0].data),
        (at(b.epoch, 1), &data("y1"))
    );

    // Input: pushed by anyone, taken once by the holder, in order.
    engine.push_input(data("i1")).await.unwrap();
    engine.push_input(data("i2")).await.unwrap();
    let mut taken = Vec::new();
    while taken.len() < 2 && waited.elapsed() < DEADLINE {
        taken.extend(engine.take_input(&b, 10, short).await.unwrap());
    }
    assert_eq!(taken, vec![data("i1"), data("i2")]);
    assert!(engine
        .take_input(&b, 10, Duration::from_millis(100))
        .await
        .unwrap()
        .is_empty());
    let pushed = tokio::spawn({
        let engine = engine.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            engine.push_input(Bytes::from_static(b"i3")).await.unwrap();
        }
    });
    let mut later = Vec::new();
    while later.is_empty() && waited.elapsed() < DEADLINE {
        later = engine
            .take_input(&b, 10, Duration::from_secs(2))
            .await
            .unwrap();
    }
    assert_eq!(later, vec![data("i3")]);
    pushed.await.unwrap();

    // Release frees the claim at once; the floor lifts the next epoch.
    engine.release(&b).await.unwrap();
    engine.release(&b).await.unwrap();
    let c = engine
        .acquire("c", 1000, short)
        .await
        .unwrap()
        .expect("released");
    assert_eq!(c.epoch, 1001);

    // Unreachable is not fenced; after a restart without data the floor keeps epochs growing.
    server.stop();
    match engine.renew(&c, short).await {
        Err(EngineError::Unreachable(why)) => assert!(!why.is_empty()),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    server.restart();
    let d = loop {
        match engine.acquire("d", c.epoch, short).await {
            Ok(Some(d)) => break d,
            Ok(None) | Err(EngineError::Unreachable(_)) => {}
            Err(err) => panic!("{err:?}"),
        }
        assert!(
            waited.elapsed() < DEADLINE * 2,
            "no claim after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(d.epoch > c.epoch);
    engine.append(&d, 1, vec![data("z1")]).await.unwrap();
    // A connection made before the restart may fail once more (Unreachable): retry.
    let records = loop {
        match engine.read(at(b.epoch, 1), 10, short).await {
            Ok(records) => break records,
            Err(EngineError::Unreachable(_)) if waited.elapsed() < DEADLINE * 2 => {}
            Err(err) => panic!("{err:?}"),
        }
    };
    assert_eq!(records.len(), 1, "records after a reset are found");
    assert_eq!(records[0].position, at(d.epoch, 1));
}
