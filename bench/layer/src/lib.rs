//! What the two comparison servers share: the command line (websocketd's, so bench/run.py
//! and bench/memory.py start them like the daemon), the listener, the HTTP/1.1 upgrade
//! (done by hand, identically for both) and the log lines a stream sends.
//!
//! Behaviour: a client is echoed every text and binary message (messages that have already
//! arrived go out in one write), unless the command line names a program the way
//! bench/run.py's `compress` group does (`python3 -c SOURCE LOGFILE COUNT`): then the
//! server sends COUNT lines of LOGFILE (repeated), one text message each, as websocketd
//! would relay that program's output.

use base64::Engine;
use sha1::{Digest, Sha1};
use std::future::Future;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a connection does.
#[derive(Clone)]
pub enum Mode {
    /// Echo every message.
    Echo,
    /// Send these lines (without their newline), then wait for the client to close.
    Stream(std::sync::Arc<Vec<bytes::Bytes>>),
}

/// The settings read from websocketd's command line.
pub struct Settings {
    pub port: u16,
    pub compress: bool,
    pub level: u32,
    pub mode: Mode,
}

/// Parses `--port=N`, `--compress`, `--compresslevel=N` and the program; other flags are
/// ignored. `--help` lists --compress so that bench/run.py runs the compressed cases.
pub fn settings(name: &str) -> Settings {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help") {
        println!("{name} --port=N [--compress] [--compresslevel=N] [PROGRAM ARGS...]");
        std::process::exit(0);
    }
    let mut port = None;
    let mut compress = false;
    let mut level = 1;
    let mut program = Vec::new();
    for arg in &args {
        if !program.is_empty() || !arg.starts_with("--") {
            program.push(arg.clone());
        } else if let Some(p) = arg.strip_prefix("--port=") {
            port = p.parse().ok();
        } else if arg == "--compress" {
            compress = true;
        } else if let Some(l) = arg.strip_prefix("--compresslevel=") {
            level = l.parse().unwrap_or(1);
        }
    }
    let Some(port) = port else {
        eprintln!("usage: {name} --port=N [--compress] [--compresslevel=N] [PROGRAM ARGS...]");
        std::process::exit(2);
    };
    let mode = match program.as_slice() {
        [python, dash_c, _source, path, count] if python == "python3" && dash_c == "-c" => {
            let count: usize = count.parse().unwrap_or(0);
            let text = std::fs::read(path).unwrap_or_default();
            let lines: Vec<&[u8]> = text
                .split(|&b| b == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .collect();
            let stream = (0..count)
                .map(|i| bytes::Bytes::copy_from_slice(lines[i % lines.len()]))
                .collect();
            Mode::Stream(std::sync::Arc::new(stream))
        }
        _ => Mode::Echo,
    };
    Settings {
        port,
        compress,
        level,
        mode,
    }
}

/// The handshake's outcome: the socket and the permessage-deflate agreement, if any.
pub struct Upgraded {
    pub tcp: TcpStream,
    pub deflate: Option<(websocketd::ws::deflate::Agreement, String)>,
}

/// Reads the upgrade request and answers 101 (with permessage-deflate when `compress` and
/// the client offers it; the same negotiation for both layers).
pub async fn upgrade(mut tcp: TcpStream, compress: bool) -> Option<Upgraded> {
    let _ = tcp.set_nodelay(true);
    let mut head = Vec::with_capacity(1024);
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 256];
        let n = tcp.read(&mut byte).await.ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&byte[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut key = None;
    let mut offers = Vec::new();
    for line in text.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if name == "sec-websocket-key" {
                key = Some(value.trim().to_string());
            } else if name == "sec-websocket-extensions" {
                offers.push(value.trim().to_string());
            }
        }
    }
    let mut sha = Sha1::new();
    sha.update(key?.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    let deflate = if compress {
        websocketd::ws::deflate::negotiate(offers.iter().map(|o| o.as_bytes()))
    } else {
        None
    };
    let extension = match &deflate {
        Some((_, answer)) => format!("Sec-WebSocket-Extensions: {answer}\r\n"),
        None => String::new(),
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{extension}\r\n"
    );
    tcp.write_all(response.as_bytes()).await.ok()?;
    Some(Upgraded { tcp, deflate })
}

/// Runs the server on one thread until killed; `serve` handles one upgraded connection.
pub fn run<F, Fut>(name: &str, serve: F)
where
    F: Fn(Upgraded, std::sync::Arc<Settings>) -> Fut + Copy + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let settings = std::sync::Arc::new(settings(name));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(("127.0.0.1", settings.port))
            .await
            .expect("listen");
        loop {
            if let Ok((tcp, _)) = listener.accept().await {
                let settings = settings.clone();
                tokio::task::spawn_local(async move {
                    if let Some(upgraded) = upgrade(tcp, settings.compress).await {
                        serve(upgraded, settings).await;
                    }
                });
            }
        }
    });
}
