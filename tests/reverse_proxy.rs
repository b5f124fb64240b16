//! The recipes of docs/deploy.md, run for real: nginx and HAProxy (Debian packages, installed
//! by scripts/install-test-deps.sh) in front of websocketd, each started here in the
//! foreground with a generated configuration on free ports of 127.0.0.1, its pid and logs in
//! a temporary directory, and stopped by PID. Through each: a WebSocket session, a static
//! file, and the client address the program sees. The client connects from 127.0.0.2 so the
//! address the proxy reports differs from the proxy's own (127.0.0.1).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A proxy process owned by a test, stopped by PID when dropped.
struct Proxy {
    child: Child,
    dir: PathBuf,
    name: &'static str,
}

impl Proxy {
    fn start(name: &'static str, dir: &Path, command: &mut Command, ports: &[u16]) -> Proxy {
        let log = std::fs::File::create(dir.join(format!("{name}.out"))).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("{name} could not start ({err}); scripts/install-test-deps.sh installs it")
            });
        let mut proxy = Proxy {
            child,
            dir: dir.to_path_buf(),
            name,
        };
        let listening = wait_until(DEADLINE, || {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("{name} exited with {status}: {}", proxy.output());
            }
            ports
                .iter()
                .all(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok())
        });
        assert!(listening, "{name} did not listen: {}", proxy.output());
        proxy
    }

    fn output(&self) -> String {
        let mut text = String::new();
        for file in ["out", "error.log"] {
            let path = self.dir.join(format!("{}.{file}", self.name));
            text.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        }
        text
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A websocketd serving `--dir` programs and `--staticdir` files over TCP and a Unix socket,
/// trusting the proxies on 127.0.0.1 and on the socket.
struct Backend {
    server: Server,
    socket: PathBuf,
}

fn backend(dir: &Path, extra: &[&str]) -> Backend {
    let programs = dir.join("programs");
    let files = dir.join("static");
    std::fs::create_dir_all(&programs).unwrap();
    std::fs::create_dir_all(&files).unwrap();
    script(
        &programs,
        "who.sh",
        "echo \"$REMOTE_ADDR|$REMOTE_PORT|${HTTPS:-off}|$SCRIPT_NAME\"; exec cat",
    );
    std::fs::write(files.join("hello.txt"), "static through the proxy\n").unwrap();
    let socket = dir.join("websocketd.sock");
    let mut args = vec![
        format!("--dir={}", programs.display()),
        format!("--staticdir={}", files.display()),
        format!("--unixsocket={}", socket.display()),
        "--trustproxy=127.0.0.1,unix".to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    assert!(wait_until(DEADLINE, || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    }));
    Backend { server, socket }
}

/// A TCP connection to 127.0.0.1:`port` from 127.0.0.2; returns it and its source port.
async fn connect_from_other_address(port: u16) -> (tokio::net::TcpStream, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let source = stream.local_addr().unwrap().port();
    (stream, source)
}

type Session = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens ws://127.0.0.1:`port``path` from 127.0.0.2 and reads the program's first line
/// (`REMOTE_ADDR|REMOTE_PORT|HTTPS|SCRIPT_NAME`); returns the session, that line and the
/// client's source port.
async fn session(port: u16, path: &str) -> (Session, String, u16) {
    session_with(port, path, &[]).await
}

/// Like [`session`], with extra request headers from the client.
async fn session_with(port: u16, path: &str, headers: &[(&str, &str)]) -> (Session, String, u16) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (stream, source) = connect_from_other_address(port).await;
    let mut request = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let (mut ws, _) =
        tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("handshake in time")
            .expect("handshake through the proxy");
    let first = next_text(&mut ws).await;
    (ws, first, source)
}

async fn echoes(ws: &mut Session, text: &str) {
    send_text(ws, text).await;
    assert_eq!(next_text(ws).await, text);
}

/// GET `path` through the proxy on `port`.
fn static_file(port: u16, path: &str) -> HttpResponse {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    HttpResponse::parse(&raw_request(port, request.as_bytes()))
}

/// Stays idle for `idle` while answering pings; returns whether the session is still open.
async fn survives_idle(ws: &mut Session, idle: Duration) -> bool {
    use futures_util::StreamExt;
    let until = tokio::time::Instant::now() + idle;
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(message))) if message.is_ping() || message.is_pong() => {}
            Ok(_) => return false,
        }
    }
    send_text(ws, "after idle").await;
    matches!(
        tokio::time::timeout(DEADLINE, ws.next()).await,
        Ok(Some(Ok(message))) if message.to_text().ok() == Some("after idle")
    )
}

fn version(command: &str, flag: &str) -> String {
    let output = Command::new(command).arg(flag).output().unwrap();
    let text = [output.stdout, output.stderr].concat();
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn nginx_conf(dir: &Path, listen: u16, backend: u16, quiet: u16, socket: &Path) -> String {
    let d = dir.display();
    let headers = "proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;";
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx.error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/nginx.access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    server {{
        listen 127.0.0.1:{listen};
        location /apps/ {{
            proxy_pass http://127.0.0.1:{backend}/;
            proxy_read_timeout 2s;
            {headers}
        }}
        location /local/ {{
            proxy_pass http://unix:{socket}:/;
            proxy_read_timeout 2s;
            {headers}
        }}
        location /quiet/ {{
            proxy_pass http://127.0.0.1:{quiet}/;
            proxy_read_timeout 2s;
            {headers}
        }}
    }}
}}
",
        socket = socket.display()
    )
}

#[tokio::test]
async fn nginx_in_front_over_tcp_and_a_unix_socket() {
    let dir = temp_dir("nginx");
    // --pingms well under nginx's proxy_read_timeout keeps idle sessions open.
    let live = backend(&dir.join("live"), &["--pingms=500"]);
    let quiet = backend(&dir.join("quiet"), &[]);
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(
            &dir,
            port,
            live.server.port,
            quiet.server.port,
            &live.socket,
        ),
    )
    .unwrap();
    eprintln!("testing {}", version("nginx", "-v"));
    let _nginx = Proxy::start(
        "nginx",
        &dir,
        Command::new("nginx")
            .arg("-e")
            .arg(dir.join("nginx.error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf),
        &[port],
    );

    // TCP upstream, path prefix /apps/ stripped: the program sees its own name.
    let (mut ws, first, _) = session(port, "/apps/who.sh").await;
    assert_eq!(first, "127.0.0.2||off|/who.sh");
    echoes(&mut ws, "hello over tcp").await;
    assert!(
        survives_idle(&mut ws, Duration::from_millis(3000)).await,
        "pings every 500 ms keep the session past proxy_read_timeout 2s"
    );

    // Forwarding headers the client writes itself do not make it someone else: nginx
    // appends the real address to X-Forwarded-For, and passes Forwarded on untouched.
    let (_, first, _) = session_with(
        port,
        "/apps/who.sh",
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("Forwarded", "for=7.7.7.7;proto=https"),
        ],
    )
    .await;
    assert_eq!(first, "127.0.0.2||off|/who.sh");

    // Unix-socket upstream, trusted with the word unix.
    let (mut ws, first, _) = session(port, "/local/who.sh").await;
    assert_eq!(first, "127.0.0.2||off|/who.sh");
    echoes(&mut ws, "hello over the socket").await;

    // Static files through both.
    for prefix in ["/apps", "/local"] {
        let response = static_file(port, &format!("{prefix}/hello.txt"));
        assert_eq!(response.status, 200, "{prefix}");
        assert_eq!(response.body, b"static through the proxy\n");
    }

    // Without pings, nginx closes an idle session after proxy_read_timeout.
    let (mut ws, first, _) = session(port, "/quiet/who.sh").await;
    assert_eq!(first, "127.0.0.2||off|/who.sh");
    assert!(!survives_idle(&mut ws, Duration::from_millis(3000)).await);
}

fn haproxy_conf(dir: &Path, ports: [u16; 3], backend: u16) -> String {
    let [v1, v2, http] = ports;
    format!(
        "global
    maxconn 100
    pidfile {d}/haproxy.pid
defaults
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h
frontend proxy_v1
    mode tcp
    bind 127.0.0.1:{v1}
    default_backend websocketd_v1
backend websocketd_v1
    mode tcp
    server websocketd 127.0.0.1:{backend} send-proxy
frontend proxy_v2
    mode tcp
    bind 127.0.0.1:{v2}
    default_backend websocketd_v2
backend websocketd_v2
    mode tcp
    server websocketd 127.0.0.1:{backend} send-proxy-v2
frontend http
    mode http
    option forwardfor
    bind 127.0.0.1:{http}
    default_backend websocketd_http
backend websocketd_http
    mode http
    server websocketd 127.0.0.1:{backend}
",
        d = dir.display()
    )
}

#[tokio::test]
async fn haproxy_in_front_with_send_proxy_and_in_http_mode() {
    let dir = temp_dir("haproxy");
    let backend = backend(&dir.join("backend"), &[]);
    let ports = [free_port(), free_port(), free_port()];
    let conf = dir.join("haproxy.cfg");
    std::fs::write(&conf, haproxy_conf(&dir, ports, backend.server.port)).unwrap();
    eprintln!("testing {}", version("haproxy", "-v"));
    let _haproxy = Proxy::start(
        "haproxy",
        &dir,
        Command::new("haproxy").arg("-db").arg("-f").arg(&conf),
        &ports,
    );
    let [v1, v2, http] = ports;
    // PROXY protocol: the client's address and port.
    for port in [v1, v2] {
        let (mut ws, first, source) = session(port, "/who.sh").await;
        assert_eq!(first, format!("127.0.0.2|{source}|off|/who.sh"));
        echoes(&mut ws, "hello through haproxy").await;
    }
    // HTTP mode with option forwardfor: the address only.
    let (mut ws, first, _) = session(http, "/who.sh").await;
    assert_eq!(first, "127.0.0.2||off|/who.sh");
    echoes(&mut ws, "hello through haproxy").await;
    for port in ports {
        let response = static_file(port, "/hello.txt");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"static through the proxy\n");
    }
    let line = backend
        .server
        .stdout
        .wait_for(DEADLINE, |l| l.contains("remote:'127.0.0.2'"))
        .expect("log lines name the client");
    assert!(
        line.contains("CONNECT") || line.contains("STATIC"),
        "{line}"
    );
}
