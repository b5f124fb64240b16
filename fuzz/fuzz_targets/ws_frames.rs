//! The WebSocket frame reader (ws::transport::Receiver) fed arbitrary bytes in arbitrary read
//! sizes, with and without permessage-deflate. Properties: it never panics and always ends
//! (the input runs out, so every run finishes with `Gone` or a failure); text messages are
//! UTF-8; no message exceeds the limit; after a failure or the end only `Gone` follows; and
//! how the bytes are cut into reads changes nothing: the events are the same as when the
//! whole input arrives in one read.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use websocketd::ws::deflate::{negotiate, CompressSettings};
use websocketd::ws::transport::{self, Incoming, Options};

/// A socket that hands out `data` in reads of the given sizes (cycled), then end of file.
struct Chunked {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl AsyncRead for Chunked {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let size = this.sizes[this.turn % this.sizes.len()];
        this.turn += 1;
        let n = size.min(out.remaining()).min(this.data.len() - this.at);
        out.put_slice(&this.data[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

/// What a run produced, comparable between runs.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping,
    Pong,
    Close(Option<u16>),
    Failed(Option<u16>),
    Gone,
}

fn run(data: &[u8], sizes: Vec<usize>, options: Options, max: usize) -> Vec<Event> {
    let reader = Chunked {
        data: data.to_vec(),
        at: 0,
        sizes,
        turn: 0,
    };
    let (_tx, mut rx) = transport::from_halves(
        Box::new(reader),
        Box::new(tokio::io::sink()),
        Bytes::new(),
        options,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut events = Vec::new();
        // Every event but the last consumes at least one frame header (2 bytes).
        for _ in 0..data.len() + 2 {
            let event = match rx.next().await {
                Incoming::Text(t) => {
                    assert!(std::str::from_utf8(&t).is_ok(), "text that is not UTF-8");
                    assert!(t.len() <= max);
                    Event::Text(t.to_vec())
                }
                Incoming::Binary(b) => {
                    assert!(b.len() <= max);
                    Event::Binary(b.to_vec())
                }
                Incoming::Ping => Event::Ping,
                Incoming::Pong => Event::Pong,
                Incoming::Close(code) => Event::Close(code),
                Incoming::Failed(failure) => Event::Failed(failure.close_code()),
                Incoming::Gone => Event::Gone,
            };
            let end = matches!(event, Event::Failed(_) | Event::Gone | Event::Close(_));
            events.push(event);
            if end {
                assert!(matches!(rx.next().await, Incoming::Gone), "event after the end");
                return events;
            }
        }
        panic!("the reader did not end: {events:?}");
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, rest)) = input.split_first() else {
        return;
    };
    // The first byte: compression on or off, the message limit, how many read sizes follow.
    let compression = (seed & 0x80 != 0).then(|| {
        let offer: &[u8] = if seed & 0x40 != 0 {
            b"permessage-deflate; client_no_context_takeover"
        } else {
            b"permessage-deflate"
        };
        let (agreement, _) = negotiate([offer]).expect("a plain offer is accepted");
        let settings = CompressSettings {
            level: 1,
            min_size: 0,
        };
        (settings, agreement)
    });
    let max = [64, 1000, 70_000, usize::MAX][usize::from(seed >> 4) & 3];
    let count = usize::from(seed & 0x0f).min(rest.len());
    let (size_bytes, data) = rest.split_at(count);
    let sizes: Vec<usize> = size_bytes.iter().map(|&b| usize::from(b) + 1).collect();
    let options = Options {
        max_message: (max != usize::MAX).then_some(max),
        compression,
    };
    let whole = run(data, vec![data.len().max(1)], options, max);
    if !sizes.is_empty() {
        let cut = run(data, sizes, options, max);
        assert_eq!(whole, cut, "read sizes changed the outcome");
    }
});
