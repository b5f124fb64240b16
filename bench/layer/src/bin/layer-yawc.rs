//! The comparison server on yawc (permessage-deflate on flate2 with zlib-rs, as ours).

use futures::{FutureExt, SinkExt, StreamExt};
use layer::{Mode, Settings, Upgraded};
use std::sync::Arc;
use yawc::frame::{Frame, OpCode};
use yawc::{CompressionLevel, Options, Role, WebSocket};

fn main() {
    layer::run("layer-yawc", serve);
}

async fn serve(upgraded: Upgraded, settings: Arc<Settings>) {
    let mut options = Options::default()
        .with_utf8()
        .with_max_payload_read(16 << 20)
        .with_max_read_buffer(16 << 20);
    let extension = upgraded.deflate.as_ref().map(|(_, answer)| answer.clone());
    if extension.is_some() {
        options = options
            .with_low_latency_compression()
            .with_compression_level(CompressionLevel::new(settings.level))
            .with_compression_threshold(32);
    }
    let Ok(mut ws) = WebSocket::from_stream_with_extensions(
        upgraded.tcp,
        Role::Server,
        extension.as_deref(),
        options,
    ) else {
        return;
    };
    if let Mode::Stream(lines) = &settings.mode {
        for line in lines.iter() {
            if ws.feed(Frame::text(line.clone())).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
    loop {
        let Some(first) = ws.next().await else {
            return;
        };
        let mut pending = Some(first);
        while let Some(frame) = pending.take() {
            match frame.opcode() {
                OpCode::Text | OpCode::Binary => {
                    if ws.feed(frame).await.is_err() {
                        return;
                    }
                }
                OpCode::Close => {
                    let _ = ws.flush().await;
                    return;
                }
                _ => {}
            }
            pending = match ws.next().now_or_never() {
                Some(Some(next)) => Some(next),
                Some(None) => return,
                None => None,
            };
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}
