//! What the client → program direction writes to the program's stdin: messages that have
//! already arrived are gathered and written with one vectored write. Short messages are
//! copied next to each other; long ones are written from the buffer they arrived in, so a
//! large binary message crosses user space once on its way in (socket → pipe).

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use tokio::io::AsyncWrite;
use tokio::net::unix::pipe;

/// Messages shorter than this are copied into the batch; longer ones are referenced.
const COPY_LIMIT: usize = 8 * 1024;
/// Buffers handed to one vectored write (well under the system's limit of 1024).
const MAX_SLICES: usize = 64;
/// Gathering capacity kept between batches; a larger one is given back.
const KEEP_STAGING: usize = 128 * 1024;

/// Messages waiting for the program's stdin, in order.
#[derive(Default)]
pub(crate) struct StdinBatch {
    /// Sealed pieces: copied runs of short messages and long messages as they arrived.
    pieces: VecDeque<Bytes>,
    /// Short messages (and newlines) being copied together; sealed into a piece before a
    /// long message is queued and before writing.
    staging: BytesMut,
    /// Bytes in the batch.
    len: usize,
}

impl StdinBatch {
    /// Adds a message, followed by a newline in line mode.
    pub(crate) fn push(&mut self, payload: Bytes, newline: bool) {
        self.len += payload.len() + usize::from(newline);
        if payload.len() < COPY_LIMIT {
            self.staging.extend_from_slice(&payload);
        } else {
            self.seal();
            self.pieces.push_back(payload);
        }
        if newline {
            self.staging.extend_from_slice(b"\n");
        }
    }

    /// Bytes waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn seal(&mut self) {
        if !self.staging.is_empty() {
            self.pieces.push_back(self.staging.split().freeze());
        }
    }

    /// Writes the whole batch to `pipe` and empties it. On failure the batch is emptied
    /// too (the program no longer reads).
    pub(crate) async fn write_to(&mut self, pipe: &mut pipe::Sender) -> io::Result<()> {
        self.seal();
        let written = self.write_pieces(pipe).await;
        self.pieces.clear();
        self.len = 0;
        if self.staging.capacity() > KEEP_STAGING {
            self.staging = BytesMut::new();
        }
        written
    }

    async fn write_pieces(&mut self, pipe: &mut pipe::Sender) -> io::Result<()> {
        while !self.pieces.is_empty() {
            // The slices live on the stack of each poll, not in the future: a session's
            // future (allocated for every connection, idle or not) stays small.
            let pieces = &self.pieces;
            let mut n = poll_fn(|cx| {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut count = 0;
                for (slot, piece) in slices.iter_mut().zip(pieces) {
                    *slot = IoSlice::new(piece);
                    count += 1;
                }
                Pin::new(&mut *pipe).poll_write_vectored(cx, &slices[..count])
            })
            .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while n > 0 {
                let Some(front) = self.pieces.front_mut() else {
                    break;
                };
                if n < front.len() {
                    front.advance(n);
                    break;
                }
                n -= front.len();
                self.pieces.pop_front();
            }
        }
        Ok(())
    }

    /// Forgets everything queued.
    pub(crate) fn clear(&mut self) {
        self.pieces.clear();
        self.staging.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn written(batch: &mut StdinBatch) -> Vec<u8> {
        let (rx, tx) = std::io::pipe().unwrap();
        let mut tx = pipe::Sender::from_owned_fd(tx.into()).unwrap();
        let mut rx = pipe::Receiver::from_owned_fd(rx.into()).unwrap();
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            rx.read_to_end(&mut out).await.unwrap();
            out
        });
        batch.write_to(&mut tx).await.unwrap();
        drop(tx);
        reader.await.unwrap()
    }

    #[tokio::test]
    async fn short_and_long_messages_keep_their_order_and_newlines() {
        let mut batch = StdinBatch::default();
        let long: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        batch.push(Bytes::from_static(b"one"), true);
        batch.push(Bytes::from(long.clone()), true);
        batch.push(Bytes::from_static(b"two"), true);
        for _ in 0..100 {
            batch.push(Bytes::from_static(b"x"), false);
        }
        batch.push(Bytes::from(long.clone()), false);
        let expected_len = 4 + long.len() + 1 + 4 + 100 + long.len();
        assert_eq!(batch.len(), expected_len);

        let out = written(&mut batch).await;
        let mut expected = b"one\n".to_vec();
        expected.extend_from_slice(&long);
        expected.extend_from_slice(b"\ntwo\n");
        expected.extend_from_slice(&[b'x'; 100]);
        expected.extend_from_slice(&long);
        assert_eq!(out.len(), expected.len());
        assert!(out == expected);
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn more_pieces_than_one_write_takes() {
        let mut batch = StdinBatch::default();
        let mut expected = Vec::new();
        for i in 0..(MAX_SLICES * 3) {
            let message = vec![(i % 256) as u8; COPY_LIMIT + i];
            expected.extend_from_slice(&message);
            batch.push(Bytes::from(message), false);
        }
        let out = written(&mut batch).await;
        assert!(out == expected);
    }
}
