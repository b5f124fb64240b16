//! The validated configuration the server runs with. Built once from the command line by
//! `cli`, then shared read-only by every connection.

use crate::logging::{Format, Level};
use crate::ws::deflate::CompressSettings;
use crate::ws::origin::OriginPolicy;
use hyper::header::{HeaderName, HeaderValue};
use std::ffi::OsString;
use std::path::PathBuf;

/// What a WebSocket connection runs.
#[derive(Debug, Clone)]
pub enum Launch {
    /// One program for every connection.
    Command {
        /// The executable, resolved once at start-up (PATH lookup for bare names).
        program: PathBuf,
        /// Its arguments, as given after COMMAND.
        args: Vec<OsString>,
    },
    /// `--dir`: the URL path names a program inside this absolute directory.
    Dir(PathBuf),
}

/// What client messages do in broadcast mode (`--broadcastinput`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastInput {
    /// Read and dropped.
    None,
    /// Each message becomes one whole line on the program's stdin.
    Lines,
    /// One JSON object per line with the client's id, plus join and leave events.
    Tagged,
}

/// How long a shared program outlives its last client (`--lingerms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linger {
    /// Stopped this many milliseconds after the last client left (0: at once).
    For(u64),
    /// Kept running until the daemon stops (`-1`, and `--prestart`).
    Forever,
}

/// `--broadcast` and its settings.
#[derive(Debug, Clone)]
pub struct BroadcastSettings {
    /// `--lingerms` (`Forever` with `--prestart`).
    pub linger: Linger,
    /// `--prestart`.
    pub prestart: bool,
    /// `--replay`: messages kept for clients that join.
    pub replay: usize,
    /// `--broadcastinput`.
    pub input: BroadcastInput,
    /// `--maxqueue`: messages that may wait for one client; `None` is lossless.
    pub max_queue: Option<usize>,
    /// `--cluster`: the stream is shared with other instances through an engine.
    pub cluster: Option<ClusterSettings>,
}

/// Which part an instance may play in a cluster (`--clusterrole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterRole {
    /// May run the program; a `runner` instance is preferred when both want it.
    Any,
    /// Runs the program whenever it can claim it.
    Runner,
    /// Never runs the program; only fans the stream out to its clients.
    Relay,
}

/// `--cluster` with `--clusterrole` and `--leasems`.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// The engine, its credentials and the stream's name.
    pub target: crate::broadcast::cluster::target::ClusterTarget,
    /// `--clusterrole`.
    pub role: ClusterRole,
    /// `--leasems`: how long a claim lasts without renewal.
    pub lease: std::time::Duration,
}

/// A `--header`-style response header.
#[derive(Debug, Clone)]
pub struct CustomHeader {
    /// Header name (sent in canonical case).
    pub name: HeaderName,
    /// Value as given.
    pub value: HeaderValue,
    /// Value for the 101 response, where control bytes are replaced by spaces.
    pub upgrade_value: HeaderValue,
}

/// The three families of custom headers.
#[derive(Debug, Clone, Default)]
pub struct CustomHeaders {
    /// `--header`: every response websocketd produces itself.
    pub all: Vec<CustomHeader>,
    /// `--header-ws`: the 101 upgrade response only.
    pub ws: Vec<CustomHeader>,
    /// `--header-http`: plain HTTP responses only.
    pub http: Vec<CustomHeader>,
}

/// `--authcmd` with `--authms` and `--authall`.
#[derive(Debug, Clone)]
pub struct AuthCommand {
    /// The program deciding each connection, resolved at start-up.
    pub program: PathBuf,
    /// `--authms`: how long it may take.
    pub timeout: std::time::Duration,
    /// `--authall`: also decide plain HTTP requests (CGI, static files, console).
    pub all: bool,
}

/// `--ssl` with its PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// `--sslcert`: certificate chain.
    pub cert: PathBuf,
    /// `--sslkey`: private key.
    pub key: PathBuf,
    /// `--sslca`: CAs that client certificates must verify against (mutual TLS).
    pub ca: Option<PathBuf>,
}

/// Everything the server needs to know, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--port` as given (0 = default). Checked when listening, as upstream does.
    pub port: i64,
    /// `--address` values; empty means all interfaces.
    pub addresses: Vec<String>,
    /// What WebSocket connections run; `None` when only HTTP content is served.
    pub launch: Option<Launch>,
    /// `--origin` / `--sameorigin`.
    pub origin: OriginPolicy,
    /// `--passenv` variables with their start-up values, already sanitised.
    pub passenv: Vec<(String, OsString)>,
    /// `--binary`.
    pub binary: bool,
    /// `--passstderr`.
    pub pass_stderr: bool,
    /// `--authcmd`: the program that accepts or refuses connections.
    pub auth: Option<AuthCommand>,
    /// `--once`: serve one WebSocket session, then exit with its program's status.
    pub once: bool,
    /// `--unbuffered`: the program's output goes to terminals instead of pipes.
    pub unbuffered: bool,
    /// `--subprotocol` / `--subprotocolrequired`.
    pub subprotocols: crate::ws::subprotocol::Policy,
    /// `--reverselookup`.
    pub reverse_lookup: bool,
    /// `--maxforks`; `None` means unlimited.
    pub max_forks: Option<usize>,
    /// `--maxclients`; `None` means unlimited.
    pub max_clients: Option<usize>,
    /// `--broadcast`: one shared program per route instead of one per connection.
    pub broadcast: Option<BroadcastSettings>,
    /// `--closems`.
    pub close_ms: u64,
    /// `--pingms`; 0 is off.
    pub ping_ms: u64,
    /// `--maxframesize`; `None` means unlimited.
    pub max_message: Option<usize>,
    /// `--compress` with `--compresslevel` and `--compressmin`; `None` when off.
    pub compress: Option<CompressSettings>,
    /// `--header`, `--header-ws`, `--header-http`.
    pub headers: CustomHeaders,
    /// `--loglevel`.
    pub log_level: Level,
    /// `--logformat`.
    pub log_format: Format,
    /// `--metrics`: where the metrics and health listener binds (`HOST:PORT`, checked).
    pub metrics: Option<String>,
    /// `--ssl`: every listener speaks TLS.
    pub tls: Option<TlsFiles>,
    /// `--unixsocket`.
    pub unix_socket: Option<PathBuf>,
    /// `--staticdir`, as given.
    pub static_dir: Option<PathBuf>,
    /// `--cgidir`, as given.
    pub cgi_dir: Option<PathBuf>,
    /// `--devconsole`.
    pub dev_console: bool,
    /// `--redirport`; 0 is off.
    pub redirect_port: i64,
    /// `--trustproxy`: proxies whose forwarding headers and PROXY protocol header count.
    pub trust_proxy: crate::forwarded::TrustedProxies,
    /// `--http2`: HTTP/2 by ALPN over TLS and by prior knowledge in plain text.
    pub http2: bool,
}

impl Config {
    /// The port listeners bind: `--port`, or the default (80, or 443 with `--ssl`) when 0.
    pub fn listen_port(&self) -> i64 {
        match (self.port, self.tls.is_some()) {
            (0, false) => 80,
            (0, true) => 443,
            (port, _) => port,
        }
    }

    /// Which of a WebSocket program's output streams are terminals: none, or with
    /// `--unbuffered` stdout, and stderr too when it is forwarded (`--passstderr`).
    pub fn output_terminals(&self) -> crate::process::pty::Streams {
        use crate::process::pty::Streams;
        match (self.unbuffered, self.pass_stderr) {
            (false, _) => Streams::None,
            (true, false) => Streams::Stdout,
            (true, true) => Streams::StdoutAndStderr,
        }
    }

    /// Whether the Unix socket is the only listener: `--unixsocket` without `--port`,
    /// `--address` or `--redirport`.
    pub fn unix_only(&self) -> bool {
        self.unix_socket.is_some()
            && self.port == 0
            && self.addresses.is_empty()
            && self.redirect_port == 0
    }
}
