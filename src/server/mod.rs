//! The server's lifetime: start-up lines, listeners (TCP and Unix socket, optionally TLS),
//! accepting connections, and graceful shutdown on SIGTERM/SIGINT.

mod accept_errors;
mod connection;
mod h2;
pub mod listen;
mod observe;
mod preface;
pub mod proxy_protocol;
mod redirect;
mod refused;
pub mod systemd;
mod tls;

use crate::config::{Config, Launch};
use crate::environment::Peer;
use crate::logging::{self, Level};
use crate::state::AppState;
use connection::Served;
use listen::Listeners;
use std::sync::Arc;
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Exit code when a listener cannot start.
pub const EXIT_LISTEN_FAILED: i32 = 3;

/// A TCP address to listen on and how start-up lines show it.
struct ListenSpec {
    shown: String,
    address: String,
}

/// Runs the server until it is shut down; returns the process exit code. `passed` are the
/// sockets systemd handed over (socket activation); when there are any they replace the
/// listeners `--port`, `--address` and `--unixsocket` would bind.
pub async fn run(config: Config, passed: Vec<systemd::Passed>) -> i32 {
    raise_open_files_limit();
    let fail = |message: String| {
        logging::server(Level::Fatal, &format!("Can't start server: {message}"));
        if let Some(hint) = crate::hints::listen_failure(&message) {
            logging::server(Level::Fatal, &hint);
        }
        EXIT_LISTEN_FAILED
    };
    let activated = !passed.is_empty();
    // With socket activation the command line's addresses are not bound, nor shown.
    let specs = if activated {
        Vec::new()
    } else {
        tcp_specs(&config)
    };
    let mut listeners = if activated {
        match listen::adopt(passed) {
            Ok(listeners) => {
                print_activated_lines(&config, &listeners);
                listeners
            }
            Err(message) => return fail(message),
        }
    } else {
        print_startup_lines(&config, &specs);
        match bind(&config, &specs).await {
            Ok(listeners) => listeners,
            Err(message) => return fail(message),
        }
    };
    let monitoring = match (listeners.metrics.take(), &config.metrics) {
        (Some(passed), _) => Some(observe::adopt(passed)),
        (None, Some(address)) => match observe::start(address).await {
            Ok(listener) => Some(listener),
            Err(message) => return fail(message),
        },
        (None, None) => None,
    };
    let certificates = match &config.tls {
        Some(files) => match tls::Certificates::load(files, config.http2) {
            Ok(certificates) => {
                if let Some(ca) = &files.ca {
                    for _ in 0..listeners.tcp.len() + listeners.unix.len() {
                        logging::server(
                            Level::Info,
                            &format!(
                                "Mutual TLS enabled (client certs verified against {})",
                                ca.display()
                            ),
                        );
                    }
                }
                Some(Arc::new(certificates))
            }
            Err(message) => return fail(message),
        },
        None => None,
    };

    if let Some(first) = specs.first() {
        logging::server(
            Level::Info,
            &crate::hints::open_line(&config, &first.address),
        );
    }
    let Listeners {
        tcp,
        unix,
        redirects,
        created_socket,
        metrics: _,
    } = listeners;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = Arc::new(AppState::new(config, shutdown_rx));
    if let Some(hubs) = &state.hubs {
        hubs.prestart();
    }
    let served = Served::new(state.clone(), certificates.clone());
    if let Some(listener) = monitoring {
        tokio::spawn(observe::serve(listener, state.shutdown.clone()));
    }
    for listener in tcp {
        tokio::spawn(accept_loop(listener, served.clone()));
    }
    for listener in unix {
        tokio::spawn(accept_loop(listener, served.clone()));
    }
    let target = redirect::Target {
        scheme: if state.config.tls.is_some() {
            "https"
        } else {
            "http"
        },
        port: u16::try_from(state.config.listen_port()).unwrap_or(0),
    };
    for listener in redirects {
        tokio::spawn(redirect::serve(
            listener,
            target.clone(),
            state.shutdown.clone(),
        ));
    }
    let notifier = systemd::Notifier::from_environment().map(Arc::new);
    if let Some(notifier) = &notifier {
        notifier.ready();
        if let Some(interval) = systemd::Notifier::watchdog_interval() {
            tokio::spawn(notifier.clone().keep_alive(interval));
        }
    }
    tokio::spawn(tls::reload_on_hangup(certificates, notifier.clone()));

    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return fail("cannot install signal handlers".to_string());
    };
    let first = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
        () = state.once.ended() => "the end of the --once session",
    };
    logging::server(
        Level::Info,
        &format!("Shutting down on {first}: closing sessions and stopping programs"),
    );
    if let Some(notifier) = &notifier {
        notifier.stopping();
    }
    let _ = shutdown_tx.send(true);
    if let Some(path) = &created_socket {
        let _ = std::fs::remove_file(path);
    }
    tokio::select! {
        () = state.sessions.wait_idle() => state.once.exit_code().unwrap_or(0),
        _ = terminate.recv() => 128 + 15,
        _ = interrupt.recv() => 128 + 2,
    }
}

/// Binds the listeners the command line asks for.
async fn bind(config: &Config, specs: &[ListenSpec]) -> Result<Listeners, String> {
    let mut listeners = Listeners::default();
    for spec in specs {
        let listener = listen::bind_tcp(&spec.address, config.listen_port()).await?;
        listeners.tcp.push(listener);
    }
    if config.redirect_port != 0 {
        for spec in specs {
            let listener = listen::bind_tcp(&spec.address, config.redirect_port).await?;
            listeners.redirects.push(listener);
        }
    }
    if let Some(path) = &config.unix_socket {
        listeners.unix.push(listen::bind_unix(path).await?);
        listeners.created_socket = Some(path.clone());
    }
    Ok(listeners)
}

/// A listener that yields connections with the peer they come from.
trait Accept: Send + Sync + 'static {
    /// The connection's byte stream.
    type Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;

    /// The next connection.
    fn next(
        &self,
    ) -> impl std::future::Future<Output = std::io::Result<(Self::Stream, Peer)>> + Send;
}

impl Accept for TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn next(&self) -> std::io::Result<(Self::Stream, Peer)> {
        let (stream, address) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        let peer = Peer::Tcp {
            ip: address.ip().to_canonical().to_string(),
            port: Some(address.port()),
        };
        Ok((stream, peer))
    }
}

impl Accept for UnixListener {
    type Stream = tokio::net::UnixStream;

    async fn next(&self) -> std::io::Result<(Self::Stream, Peer)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, Peer::Unix))
    }
}

/// Accepts connections until shutdown; each is served in its own task.
async fn accept_loop<L: Accept>(listener: L, served: Served) {
    let mut shutdown = served.state.shutdown.clone();
    let mut errors = accept_errors::AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.next() => accepted,
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                crate::metrics::connection_accepted();
                accept_errors::after_success(&mut errors);
                tokio::spawn(served.clone().serve(stream, peer));
            }
            Err(err) => accept_errors::after_failure(&mut errors, &err).await,
        }
    }
}

/// One TCP listen address per `--address`, or every interface; none in Unix-socket-only
/// mode (a `--unixsocket` with no `--port`, `--address` or `--redirport`).
fn tcp_specs(config: &Config) -> Vec<ListenSpec> {
    if config.unix_only() {
        return Vec::new();
    }
    let port = config.listen_port();
    if config.addresses.is_empty() {
        return vec![ListenSpec {
            shown: format!("{}:{port}", listen::hostname()),
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

/// Start-up lines for sockets systemd passed, with the addresses they really have.
fn print_activated_lines(config: &Config, listeners: &Listeners) {
    let specs: Vec<ListenSpec> = listeners
        .tcp
        .iter()
        .filter_map(|listener| listener.local_addr().ok())
        .map(|address| ListenSpec {
            shown: address.to_string(),
            address: String::new(),
        })
        .collect();
    let unix: Vec<String> = listeners
        .unix
        .iter()
        .filter_map(|listener| listener.local_addr().ok())
        .map(|address| match address.as_pathname() {
            Some(path) => path.display().to_string(),
            None => "(unnamed)".to_string(),
        })
        .collect();
    logging::server(
        Level::Info,
        &format!(
            "Using {} socket(s) passed by systemd instead of --port, --address and --unixsocket",
            specs.len()
                + unix.len()
                + listeners.redirects.len()
                + usize::from(listeners.metrics.is_some())
        ),
    );
    let mut shown = config.clone();
    shown.redirect_port = 0;
    shown.unix_socket = None;
    print_startup_lines(&shown, &specs);
    for path in unix {
        logging::server(
            Level::Info,
            &format!("Starting WebSocket server   : unix socket at {path}"),
        );
    }
    if config.redirect_port != 0 && listeners.redirects.is_empty() {
        logging::server(
            Level::Error,
            &format!(
                "--redirport is not served: systemd passed no socket named {}",
                systemd::REDIRECT_NAME
            ),
        );
    }
    for listener in &listeners.redirects {
        if let Ok(address) = listener.local_addr() {
            logging::server(
                Level::Info,
                &format!("Starting redirect server   : http://{address}/"),
            );
        }
    }
}

fn print_startup_lines(config: &Config, specs: &[ListenSpec]) {
    if config.tls.is_some() {
        for entry in config.origin.allowed.iter().flatten() {
            if !entry.contains("://") {
                logging::server(
                    Level::Error,
                    &format!(
                        "--origin=\"{entry}\" has no scheme, so it also accepts insecure http origins; use \"https://{entry}\" to require TLS"
                    ),
                );
            }
        }
    }
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
    if let Some(dir) = &config.static_dir {
        logging::server(
            Level::Info,
            &format!("Serving static content from : {}", dir.display()),
        );
    }
    if let Some(dir) = &config.cgi_dir {
        logging::server(
            Level::Info,
            &format!("Serving CGI scripts from    : {}", dir.display()),
        );
    }
    let (ws, http) = if config.tls.is_some() {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    for spec in specs {
        logging::server(
            Level::Info,
            &format!("Starting WebSocket server   : {ws}://{}/", spec.shown),
        );
        if config.dev_console {
            logging::server(
                Level::Info,
                &format!("Developer console enabled   : {http}://{}/", spec.shown),
            );
        } else if config.static_dir.is_some() || config.cgi_dir.is_some() {
            logging::server(
                Level::Info,
                &format!("Serving CGI or static files : {http}://{}/", spec.shown),
            );
        }
    }
    if config.redirect_port != 0 {
        for spec in specs {
            let host = spec
                .shown
                .rsplit_once(':')
                .map_or(spec.shown.as_str(), |(h, _)| h);
            logging::server(
                Level::Info,
                &format!(
                    "Starting redirect server   : http://{host}:{}/",
                    config.redirect_port
                ),
            );
        }
    }
    if let Some(path) = &config.unix_socket {
        logging::server(
            Level::Info,
            &format!(
                "Starting WebSocket server   : unix socket at {}",
                path.display()
            ),
        );
    }
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
