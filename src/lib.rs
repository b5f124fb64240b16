//! websocketd as a library: every part of the daemon, so that the binary, the fuzz targets
//! and the benchmarks share one implementation. `src/main.rs` is the thin command-line entry.

pub mod auth;
pub mod broadcast;
pub mod cgi;
pub mod cli;
pub mod config;
pub mod devconsole;
pub mod environment;
pub mod forks;
pub mod forwarded;
pub mod hints;
pub mod hostport;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod once;
pub mod prefixed;
pub mod process;
pub mod router;
pub mod scriptdir;
pub mod server;
pub mod state;
pub mod ws;
