//! Listeners and the server's lifetime: start-up lines, binding, accepting connections,
//! and graceful shutdown on SIGTERM/SIGINT.

use crate::config::{Config, Launch};
use crate::environment::Peer;
use crate::http;
use crate::logging::{self, Level};
use crate::state::AppState;
use crate::ws::Connection;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Socket, Type};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Exit code when a listener cannot start.
pub const EXIT_LISTEN_FAILED: i32 = 3;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request header block accepted (larger gets 431).
const MAX_HEADER_BYTES: usize = (1 << 20) + 4096;
/// Pending connections the kernel may queue per listener.
const BACKLOG: i32 = 4096;

/// A TCP address to listen on and how start-up lines show it.
struct ListenSpec {
    shown: String,
    address: String,
}

/// Runs the server until it is shut down; returns the process exit code.
pub async fn run(config: Config) -> i32 {
    raise_open_files_limit();
    let specs = listen_specs(&config);
    print_startup_lines(&config, &specs);

    let mut listeners = Vec::new();
    for spec in &specs {
        match bind(&spec.address, config.port).await {
            Ok(listener) => listeners.push(listener),
            Err(message) => {
                logging::server(Level::Fatal, &format!("Can't start server: {message}"));
                return EXIT_LISTEN_FAILED;
            }
        }
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = Arc::new(AppState::new(config, shutdown_rx));
    let builder = Arc::new(http_builder());
    for listener in listeners {
        tokio::spawn(accept_loop(listener, state.clone(), builder.clone()));
    }

    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        logging::server(
            Level::Fatal,
            "Can't start server: cannot install signal handlers",
        );
        return EXIT_LISTEN_FAILED;
    };
    let first = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    logging::server(
        Level::Info,
        &format!("Shutting down on {first}: closing sessions and stopping programs"),
    );
    let _ = shutdown_tx.send(true);
    tokio::select! {
        () = state.sessions.wait_idle() => 0,
        _ = terminate.recv() => 128 + 15,
        _ = interrupt.recv() => 128 + 2,
    }
}

fn http_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .title_case_headers(true)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
}

/// Accepts connections until shutdown; each connection is served in its own task.
async fn accept_loop(listener: TcpListener, state: Arc<AppState>, builder: Arc<http1::Builder>) {
    let mut shutdown = state.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(serve_connection(
                    stream,
                    peer,
                    state.clone(),
                    builder.clone(),
                ));
            }
            Err(err) => {
                // Out of descriptors or similar: say so, and give the system a moment.
                logging::server(Level::Error, &format!("Accept failed: {err}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<AppState>,
    builder: Arc<http1::Builder>,
) {
    let _ = stream.set_nodelay(true);
    let connection = Arc::new(Connection {
        peer: Peer::Tcp {
            ip: peer.ip().to_canonical().to_string(),
            port: peer.port(),
        },
        tls: false,
    });
    let service = service_fn(move |request| {
        let state = state.clone();
        let connection = connection.clone();
        async move { Ok::<_, Infallible>(http::route(request, state, connection).await) }
    });
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

/// One listen address per `--address`, or every interface.
fn listen_specs(config: &Config) -> Vec<ListenSpec> {
    let port = config.listen_port();
    if config.addresses.is_empty() {
        return vec![ListenSpec {
            shown: format!("{}:{port}", hostname()),
            address: String::new(),
        }];
    }
    config
        .addresses
        .iter()
        .map(|address| ListenSpec {
            shown: format!("{address}:{port}"),
            address: address.clone(),
        })
        .collect()
}

fn print_startup_lines(config: &Config, specs: &[ListenSpec]) {
    match &config.launch {
        Some(Launch::Dir(dir)) => logging::server(
            Level::Info,
            &format!("Serving from directory      : {}", dir.display()),
        ),
        Some(Launch::Command { program, args }) => {
            let args: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            logging::server(
                Level::Info,
                &format!(
                    "Serving using application   : {} {}",
                    program.display(),
                    args.join(" ")
                ),
            );
        }
        None => {}
    }
    for spec in specs {
        logging::server(
            Level::Info,
            &format!("Starting WebSocket server   : ws://{}/", spec.shown),
        );
    }
}

/// Binds `address:port` (every interface when `address` is empty), as Go would resolve it.
async fn bind(address: &str, port: i64) -> Result<TcpListener, String> {
    let port = if port == 0 { 80 } else { port };
    let Ok(port) = u16::try_from(port) else {
        return Err(format!("listen tcp: address {port}: invalid port"));
    };
    let joined = format!("{address}:{port}");
    if let Err(err) = crate::hostport::split(&joined) {
        return Err(format!("listen tcp: {}", err.message(&joined)));
    }
    let candidates: Vec<SocketAddr> = if address.is_empty() {
        vec![
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ]
    } else {
        match tokio::net::lookup_host(joined.as_str()).await {
            Ok(found) => found.take(1).collect(),
            Err(err) => {
                return Err(format!(
                    "listen tcp: address {joined}: {}",
                    go_error_text(&err)
                ))
            }
        }
    };
    let mut last_error = format!("listen tcp {joined}: no address");
    for candidate in candidates {
        match listen(candidate) {
            Ok(listener) => return Ok(listener),
            Err(err) => {
                last_error = format!("listen tcp {joined}: bind: {}", go_error_text(&err));
            }
        }
    }
    Err(last_error)
}

fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() && address.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// An I/O error in Go's style: lower-case, without the `(os error N)` suffix.
fn go_error_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Many connections each hold several descriptors (socket and three pipes): use all the
/// descriptors the hard limit allows.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_errors() {
        let err = std::io::Error::from_raw_os_error(98);
        assert_eq!(go_error_text(&err), "address already in use");
    }
}
