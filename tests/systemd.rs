//! Running under systemd without systemd as PID 1: socket activation through
//! `systemd-socket-activate` (Debian package `systemd`, installed by
//! scripts/install-test-deps.sh), and the `sd_notify` messages sent to a datagram socket the
//! test owns.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A `NOTIFY_SOCKET` the test reads.
struct NotifySocket {
    path: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn new(dir: &Path) -> NotifySocket {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket { path, socket }
    }

    /// Waits for a message containing `wanted` (a `NAME=value` line); returns it.
    fn wait_for(&self, wanted: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            self.socket
                .set_read_timeout(Some(deadline - Instant::now()))
                .unwrap();
            let Ok(n) = self.socket.recv(&mut buffer) else {
                break;
            };
            let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
            if message.lines().any(|line| line == wanted) {
                return message;
            }
            seen.push(message);
        }
        panic!("no {wanted} in time; seen {seen:?}");
    }

    /// How many messages already waiting contain `wanted` (reads without blocking).
    fn drain_count(&self, wanted: &str) -> usize {
        self.socket.set_nonblocking(true).unwrap();
        let mut buffer = [0u8; 4096];
        let mut count = 0;
        for _ in 0..10_000 {
            let Ok(n) = self.socket.recv(&mut buffer) else {
                break;
            };
            let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
            if message.lines().any(|line| line == wanted) {
                count += 1;
            }
        }
        self.socket.set_nonblocking(false).unwrap();
        count
    }
}

/// Starts websocketd under `systemd-socket-activate` listening on `listen` (addresses or
/// socket paths, named by `names`). The daemon starts on the first connection.
fn activated(listen: &[String], names: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
    let mut command = Command::new("systemd-socket-activate");
    command.current_dir(root());
    for address in listen {
        command.arg(format!("--listen={address}"));
    }
    command.arg(format!("--fdname={names}"));
    for (name, value) in env {
        command.arg(format!("--setenv={name}={value}"));
    }
    command.arg(binary()).args(args);
    let server = Server::spawn_command(command);
    let count = listen.len();
    assert!(
        server
            .stderr
            .wait_count(DEADLINE, count, |l| l.starts_with("Listening on")),
        "systemd-socket-activate did not listen: {:?}",
        server.stderr.all()
    );
    server
}

async fn echo_over<S>(stream: S, text: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut ws, _) = tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::client_async("ws://localhost/", stream),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    send_text(&mut ws, text).await;
    next_text(&mut ws).await
}

#[tokio::test]
async fn socket_activation_over_tcp_and_unix_replaces_port_and_unixsocket() {
    let dir = temp_dir("activate");
    let socket = dir.join("ws.sock");
    let not_bound = dir.join("not-bound.sock");
    let port = free_port();
    let flag_port = free_port();
    let redirect_port = free_port();
    let notify = NotifySocket::new(&dir);
    let server = activated(
        &[format!("127.0.0.1:{port}"), socket.display().to_string()],
        "web:local",
        &[("NOTIFY_SOCKET", notify.path.to_str().unwrap())],
        &[
            &format!("--port={flag_port}"),
            &format!("--redirport={redirect_port}"),
            &format!("--unixsocket={}", not_bound.display()),
            "--loglevel=info",
            "cat",
        ],
    );
    // The first connection starts the daemon, which accepts it on the passed socket.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    assert_eq!(echo_over(tcp, "over tcp").await, "over tcp");
    notify.wait_for("READY=1");
    let unix = tokio::net::UnixStream::connect(&socket).await.unwrap();
    assert_eq!(echo_over(unix, "over unix").await, "over unix");
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with(
            "Using 2 socket(s) passed by systemd instead of --port, --address and --unixsocket"
        ))
        .is_some());
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with(&format!(
            "Starting WebSocket server   : ws://127.0.0.1:{port}/"
        )))
        .is_some());
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with(&format!(
            "Starting WebSocket server   : unix socket at {}",
            socket.display()
        )))
        .is_some());
    // What the flags name is not bound.
    assert!(std::net::TcpStream::connect(("127.0.0.1", flag_port)).is_err());
    assert!(std::net::TcpStream::connect(("127.0.0.1", redirect_port)).is_err());
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l.ends_with(
            "--redirport is not served: systemd passed no socket named redirect"
        ))
        .is_some());
    assert!(!not_bound.exists());
    server.signal("TERM");
    notify.wait_for("STOPPING=1");
}

#[tokio::test]
async fn programs_do_not_inherit_the_passed_sockets() {
    let port = free_port();
    let _server = activated(
        &[format!("127.0.0.1:{port}")],
        "web",
        &[],
        &[
            "sh",
            "-c",
            "env | grep -c '^LISTEN_'; exec ls /proc/self/fd",
        ],
    );
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut ws, _) = tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::client_async("ws://localhost/", tcp),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(next_text(&mut ws).await, "0", "no LISTEN_* variable");
    // stdin, stdout, stderr and the directory `ls` reads: no listening socket.
    let mut fds = Vec::new();
    for _ in 0..4 {
        fds.push(next_text(&mut ws).await);
    }
    assert_eq!(fds, ["0", "1", "2", "3"]);
    let rest = read_all(&mut ws, DEADLINE).await;
    assert!(rest.texts.is_empty(), "{:?}", rest.texts);
}

#[test]
fn passed_sockets_named_redirect_and_metrics_serve_those() {
    let port = free_port();
    let redirect = free_port();
    let metrics = free_port();
    let _server = activated(
        &[
            format!("127.0.0.1:{port}"),
            format!("127.0.0.1:{redirect}"),
            format!("127.0.0.1:{metrics}"),
        ],
        "web:redirect:metrics",
        &[],
        &["--port=8443", "cat"],
    );
    let get = |port: u16, target: &str| {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
        HttpResponse::parse(&raw_request(port, request.as_bytes()))
    };
    // The first connection starts the daemon.
    let response = get(redirect, "/x?y=1");
    assert_eq!(response.status, 301);
    assert_eq!(
        response.header("location"),
        Some("http://example.com:8443/x?y=1")
    );
    assert_eq!(get(port, "/").status, 404);
    assert_eq!(get(metrics, "/healthz").status, 200);
    let scraped = get(metrics, "/metrics");
    assert_eq!(scraped.status, 200);
    assert!(String::from_utf8_lossy(&scraped.body).contains("# EOF"));
}

#[test]
fn notifications_ready_watchdog_reload_stopping() {
    let dir = temp_dir("notify");
    let notify = NotifySocket::new(&dir);
    let started = Instant::now();
    let server = Server::start_with(
        &root(),
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
        &["cat"],
    );
    let ready = notify.wait_for("READY=1");
    assert!(ready.contains("STATUS="), "{ready}");
    // Every 100 ms (half the watchdog period): several arrive well within the deadline,
    // and never more than the pace allows since the daemon started, however late this
    // test reads them.
    for _ in 0..3 {
        notify.wait_for("WATCHDOG=1");
    }
    let pings = 3 + notify.drain_count("WATCHDOG=1");
    let paced = (started.elapsed().as_millis() / 100) as usize + 2;
    assert!(pings <= paced, "{pings} pings, at most {paced} expected");
    // SIGHUP without --ssl reloads nothing and keeps serving.
    server.signal("HUP");
    assert!(server
        .stdout
        .wait_for(DEADLINE, |l| l
            .ends_with("SIGHUP: no TLS certificate to reload"))
        .is_some());
    assert_eq!(server.get("/").status, 404);
    server.signal("TERM");
    notify.wait_for("STOPPING=1");
}

#[test]
fn watchdog_for_another_process_is_not_ours() {
    let dir = temp_dir("notify-pid");
    let notify = NotifySocket::new(&dir);
    let _server = Server::start_with(
        &root(),
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "20000"),
            ("WATCHDOG_PID", "1"),
        ],
        &["cat"],
    );
    notify.wait_for("READY=1");
    notify
        .socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buffer = [0u8; 256];
    // Ten intervals pass without a WATCHDOG=1.
    assert!(notify.socket.recv(&mut buffer).is_err());
}

#[test]
fn abstract_notify_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("wsd-test-notify-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&address).unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    let _server = Server::start_with(&root(), &[("NOTIFY_SOCKET", &format!("@{name}"))], &["cat"]);
    let mut buffer = [0u8; 256];
    let n = socket.recv(&mut buffer).unwrap();
    assert!(buffer[..n].starts_with(b"READY=1\n"));
}

#[test]
fn shipped_units_pass_systemd_analyze_verify() {
    let dir = temp_dir("units");
    let shipped = root().join("dist/systemd");
    let service = std::fs::read_to_string(shipped.join("websocketd.service")).unwrap();
    assert!(service.contains("ExecStart=/usr/local/bin/websocketd "));
    // verify checks that ExecStart names an executable: point it at the binary under test.
    std::fs::write(
        dir.join("websocketd.service"),
        service.replace("/usr/local/bin/websocketd", binary()),
    )
    .unwrap();
    std::fs::copy(
        shipped.join("websocketd.socket"),
        dir.join("websocketd.socket"),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("websocketd.socket"))
        .arg(dir.join("websocketd.service"))
        .output()
        .expect("systemd-analyze is installed by scripts/install-test-deps.sh");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.trim().is_empty(), "warnings: {stderr}");
    for hardening in [
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(service.contains(hardening), "{hardening}");
    }
}

#[test]
fn a_connected_socket_instead_of_a_listener_is_refused() {
    // --accept passes each connection's own socket (Accept=yes), which websocketd cannot serve.
    let port = free_port();
    let mut command = Command::new("systemd-socket-activate");
    command
        .current_dir(root())
        .arg("--accept")
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(binary())
        .arg("cat");
    let server = Server::spawn_command(command);
    assert!(server
        .stderr
        .wait_for(DEADLINE, |l| l.starts_with("Listening on"))
        .is_some());
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let line = server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("Can't start server: socket 3"))
        .expect("a fatal line");
    assert!(line.contains("is not listening (use Accept=no"), "{line}");
    // The connection is closed, not served.
    let mut buffer = [0u8; 16];
    assert_eq!(
        std::io::Read::read(&mut stream, &mut buffer).unwrap_or(0),
        0
    );
}
