//! The "ceiling" for the benchmarks: an in-process WebSocket echo server (tokio-tungstenite,
//! one thread, messages that have already arrived are echoed in one batched write), with no
//! child process and no pipes. What websocketd costs on top of the framing itself is the gap
//! between it and this server.
//!
//! It takes websocketd's command line so that bench/run.py can start it like any other
//! server: `--port=N` is used, every other flag and the program are ignored.

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let port = std::env::args()
        .find_map(|arg| arg.strip_prefix("--port=").map(str::to_string))
        .and_then(|port| port.parse::<u16>().ok())
        .unwrap_or_else(|| {
            eprintln!("usage: ceiling --port=PORT [ignored websocketd flags and program]");
            std::process::exit(2);
        });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| {
            eprintln!("ceiling: {err}");
            std::process::exit(1);
        });
    runtime.block_on(async move {
        let listener = match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("ceiling: cannot listen on port {port}: {err}");
                std::process::exit(1);
            }
        };
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(echo(stream));
            }
        }
    });
}

/// Echoes every data message back as it came; returns when the client closes.
async fn echo(stream: TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    loop {
        let Some(Ok(first)) = ws.next().await else {
            return;
        };
        let mut pending = Some(first);
        while let Some(message) = pending.take() {
            if message.is_text() || message.is_binary() {
                if ws.feed(message).await.is_err() {
                    return;
                }
            } else if message.is_close() {
                let _ = ws.close(None).await;
                return;
            }
            // Whatever has already arrived goes out in the same write.
            pending = match ws.next().now_or_never() {
                Some(Some(Ok(next))) => Some(next),
                Some(_) => return,
                None => None,
            };
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}
