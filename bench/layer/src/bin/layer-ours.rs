//! The comparison server on our codec (websocketd's src/ws/transport.rs).

use futures::FutureExt;
use layer::{Mode, Settings, Upgraded};
use std::sync::Arc;
use websocketd::ws::deflate::CompressSettings;
use websocketd::ws::transport::{self, Incoming, Options};

fn main() {
    layer::run("layer-ours", serve);
}

async fn serve(upgraded: Upgraded, settings: Arc<Settings>) {
    let (r, w) = upgraded.tcp.into_split();
    let options = Options {
        max_message: Some(16 << 20),
        compression: upgraded.deflate.map(|(agreement, _)| {
            (
                CompressSettings {
                    level: settings.level,
                    min_size: 32,
                },
                agreement,
            )
        }),
    };
    let (mut tx, mut rx) =
        transport::from_halves(Box::new(r), Box::new(w), bytes::Bytes::new(), options);
    if let Mode::Stream(lines) = &settings.mode {
        for line in lines.iter() {
            if tx.ready().await.is_err() || tx.queue_text(line.clone()).is_err() {
                return;
            }
        }
        if tx.flush().await.is_err() {
            return;
        }
    }
    loop {
        let mut event = rx.next().await;
        loop {
            match event {
                Incoming::Text(data) => {
                    if tx.ready().await.is_err() || tx.queue_text(data).is_err() {
                        return;
                    }
                }
                Incoming::Binary(data) => {
                    if tx.ready().await.is_err() || tx.queue_binary(data).is_err() {
                        return;
                    }
                }
                Incoming::Ping | Incoming::Pong => {}
                Incoming::Close(_) | Incoming::Failed(_) | Incoming::Gone => {
                    let _ = tx.flush().await;
                    return;
                }
            }
            // Whatever has already arrived goes out in the same write.
            match rx.next().now_or_never() {
                Some(next) => event = next,
                None => break,
            }
        }
        if tx.flush().await.is_err() {
            return;
        }
    }
}
