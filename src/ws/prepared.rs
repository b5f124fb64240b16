//! Prepared frames for broadcast: a message is framed once, and the same bytes are written
//! to every connection that receives it. A connection opened with
//! [`super::transport::accept_prepared`] writes only prepared bytes; the replies the framing
//! library owes the client (pongs, the close reply) are caught by [`TappedIo`] and written
//! by the [`PreparedSender`] between two prepared writes, so frames never interleave.

use bytes::{BufMut, Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::Notify;

/// Control replies waiting to be written beyond this many bytes mean the client sends
/// pings but does not read: the connection is failed rather than grown.
const CONTROL_LIMIT: usize = 64 * 1024;
/// Slices handed to one vectored write.
const MAX_SLICES: usize = 64;

/// One or more complete server frames, encoded once and shared (reference-counted) by
/// every connection they are written to.
#[derive(Debug, Clone, Default)]
pub struct PreparedFrames {
    bytes: Bytes,
}

impl PreparedFrames {
    /// Appends one complete, unmasked, final frame carrying `payload` as a text or
    /// binary message to `out`.
    pub fn encode_message(out: &mut BytesMut, binary: bool, payload: &[u8]) {
        encode(out, if binary { 0x2 } else { 0x1 }, payload);
    }

    /// Frames made of [`PreparedFrames::encode_message`] output.
    pub fn from_encoded(bytes: Bytes) -> PreparedFrames {
        PreparedFrames { bytes }
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Encoded size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// RFC 6455 §5.2 framing for a server (never masked): FIN, opcode, length, payload.
fn encode(out: &mut BytesMut, opcode: u8, payload: &[u8]) {
    out.reserve(payload.len() + 10);
    out.put_u8(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(short);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.put_slice(payload);
}

/// Bytes the framing library wrote (control replies), waiting for the sender.
#[derive(Debug, Default)]
struct Control {
    pending: Mutex<Vec<u8>>,
    arrived: Notify,
}

/// The socket as the framing library sees it on a prepared connection: reads come from
/// the socket, writes are caught and handed to the [`PreparedSender`].
#[derive(Debug)]
pub struct TappedIo {
    read: super::readahead::ReadAhead<ReadHalf<TokioIo<Upgraded>>>,
    control: Arc<Control>,
}

/// Splits an upgraded connection into the framing library's reading side and the
/// prepared sender.
pub(super) fn split(io: Upgraded) -> (TappedIo, PreparedSender) {
    let (read, write) = tokio::io::split(TokioIo::new(io));
    let control = Arc::new(Control::default());
    (
        TappedIo {
            read: super::readahead::ReadAhead::new(read),
            control: control.clone(),
        },
        PreparedSender {
            write,
            control,
            closed: false,
        },
    )
}

impl AsyncRead for TappedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().read).poll_read(cx, out)
    }
}

impl AsyncWrite for TappedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let control = &self.control;
        let Ok(mut pending) = control.pending.lock() else {
            return Poll::Ready(Err(io::Error::other("control buffer poisoned")));
        };
        if pending.len() + data.len() > CONTROL_LIMIT {
            return Poll::Ready(Err(io::Error::other("client does not read its replies")));
        }
        pending.extend_from_slice(data);
        drop(pending);
        control.arrived.notify_one();
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The sending half of a prepared connection: writes prepared frames as they are, and
/// the framing library's control replies between them.
#[derive(Debug)]
pub struct PreparedSender {
    write: WriteHalf<TokioIo<Upgraded>>,
    control: Arc<Control>,
    closed: bool,
}

/// The connection cannot be written to any more.
#[derive(Debug)]
pub struct SendFailed;

impl PreparedSender {
    /// Writes `frames` in order (with as few system calls as the socket allows), after any
    /// control reply that is waiting.
    pub async fn send(&mut self, frames: &[PreparedFrames]) -> Result<(), SendFailed> {
        self.send_control().await?;
        let mut index = 0;
        let mut offset = 0;
        while index < frames.len() {
            let slices: Vec<IoSlice<'_>> = frames[index..]
                .iter()
                .take(MAX_SLICES)
                .enumerate()
                .map(|(i, f)| IoSlice::new(if i == 0 { &f.bytes[offset..] } else { &f.bytes }))
                .collect();
            let mut written = self
                .write
                .write_vectored(&slices)
                .await
                .map_err(|_| SendFailed)?;
            if written == 0 && slices.iter().any(|s| !s.is_empty()) {
                return Err(SendFailed);
            }
            while index < frames.len() {
                let left = frames[index].bytes.len() - offset;
                if written < left {
                    offset += written;
                    break;
                }
                written -= left;
                index += 1;
                offset = 0;
            }
        }
        self.write.flush().await.map_err(|_| SendFailed)
    }

    /// Completes when a control reply waits to be written (call
    /// [`PreparedSender::send_control`] then). Safe to cancel.
    pub async fn control_waiting(&mut self) {
        loop {
            if self.control.pending.lock().is_ok_and(|p| !p.is_empty()) {
                return;
            }
            self.control.arrived.notified().await;
        }
    }

    /// Writes the control replies that are waiting.
    pub async fn send_control(&mut self) -> Result<(), SendFailed> {
        let pending = match self.control.pending.lock() {
            Ok(mut pending) if !pending.is_empty() => std::mem::take(&mut *pending),
            _ => return Ok(()),
        };
        if self.closed {
            // Our close frame is out: the library's close reply must not follow it.
            return Ok(());
        }
        self.write
            .write_all(&pending)
            .await
            .map_err(|_| SendFailed)?;
        self.write.flush().await.map_err(|_| SendFailed)
    }

    /// Sends a ping with an empty payload.
    pub async fn ping(&mut self) -> Result<(), SendFailed> {
        let mut frame = BytesMut::new();
        encode(&mut frame, 0x9, b"");
        self.send(&[PreparedFrames::from_encoded(frame.freeze())])
            .await
    }

    /// Starts the closing handshake with `code` and `reason` (at most 123 bytes are sent).
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), SendFailed> {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = Vec::with_capacity(2 + end);
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        let mut frame = BytesMut::new();
        encode(&mut frame, 0x8, &payload);
        self.send(&[PreparedFrames::from_encoded(frame.freeze())])
            .await?;
        self.closed = true;
        crate::metrics::close_sent(code);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_rfc_lengths() {
        let mut out = BytesMut::new();
        PreparedFrames::encode_message(&mut out, false, b"hi");
        assert_eq!(&out[..], b"\x81\x02hi");
        out.clear();
        PreparedFrames::encode_message(&mut out, true, &[7u8; 300]);
        assert_eq!(&out[..4], b"\x82\x7e\x01\x2c");
        assert_eq!(out.len(), 304);
        out.clear();
        PreparedFrames::encode_message(&mut out, true, &vec![0u8; 70_000]);
        assert_eq!(&out[..10], b"\x82\x7f\x00\x00\x00\x00\x00\x01\x11\x70");
    }
}
