//! websocketd: turns any program that reads stdin and writes stdout into a WebSocket
//! server. `main` only parses the command line and hands the configuration to the server.

use std::io::Write;
use websocketd::{cli, logging, process, server};

fn main() {
    process::spawner::run_if_helper();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let config = match cli::parse(&argv) {
        Ok(config) => config,
        Err(exit) => {
            let _ = std::io::stdout().write_all(exit.stdout.as_bytes());
            let _ = std::io::stderr().write_all(exit.stderr.as_bytes());
            std::process::exit(exit.code);
        }
    };
    logging::set_threshold(config.log_level);
    logging::set_format(config.log_format);
    // Before any descriptor is opened or thread started: the sockets systemd passed.
    let passed = match server::systemd::take_listeners() {
        Ok(passed) => passed,
        Err(message) => {
            logging::server(
                logging::Level::Fatal,
                &format!("Can't start server: {message}"),
            );
            std::process::exit(server::EXIT_LISTEN_FAILED);
        }
    };
    if config.launch.is_some() || config.cgi_dir.is_some() {
        process::contain::log_mode(process::contain::init());
        // Started while the daemon holds few descriptors; programs are spawned from it.
        if let Err(err) = process::spawner::start() {
            logging::server(
                logging::Level::Error,
                &format!("Starting programs directly: spawner helper unavailable: {err}"),
            );
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            logging::server(logging::Level::Fatal, &format!("Can't start server: {err}"));
            std::process::exit(server::EXIT_LISTEN_FAILED);
        }
    };
    let code = runtime.block_on(server::run(config, passed));
    // The spawner helper does the same when it sees the daemon go, whichever way it went.
    process::contain::release();
    std::process::exit(code);
}
