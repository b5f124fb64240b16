//! Prepared frames for broadcast: a message is framed once, and the same bytes are written
//! to every connection that receives it. A connection opened with
//! [`super::transport::accept_prepared`] writes only prepared bytes, and the replies the client
//! is owed (pongs, the close reply) between two prepared writes, so frames never interleave.

use super::transport::{Closed, Sender};
use bytes::{BufMut, Bytes, BytesMut};

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

/// The payload length of each frame in `bytes`, which holds whole frames made by
/// [`encode`] (so the walk needs no bounds beyond stopping at a short header).
fn payload_lengths(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let (header, len) = match *rest {
            [_, 127, a, b, c, d, e, f, g, h, ..] => {
                (10, u64::from_be_bytes([a, b, c, d, e, f, g, h]) as usize)
            }
            [_, 126, a, b, ..] => (4, usize::from(u16::from_be_bytes([a, b]))),
            [_, len, ..] => (2, usize::from(len & 0x7f)),
            _ => return None,
        };
        rest = rest.get(header + len..).unwrap_or_default();
        Some(len)
    })
}

/// The sending half of a prepared connection: writes prepared frames as they are, and
/// the control replies the client is owed between them.
pub struct PreparedSender {
    sender: Sender,
}

/// The connection cannot be written to any more.
#[derive(Debug)]
pub struct SendFailed;

impl From<Closed> for SendFailed {
    fn from(_: Closed) -> SendFailed {
        SendFailed
    }
}

impl PreparedSender {
    /// Wraps the sending half of a connection that negotiated no extension.
    pub(super) fn new(sender: Sender) -> PreparedSender {
        PreparedSender { sender }
    }

    /// Writes `frames` in order (with as few system calls as the socket allows), after any
    /// control reply that is waiting.
    pub async fn send(&mut self, frames: &[PreparedFrames]) -> Result<(), SendFailed> {
        if crate::metrics::enabled() {
            for payload in frames.iter().flat_map(|f| payload_lengths(&f.bytes)) {
                crate::metrics::message_out(payload);
            }
        }
        self.sender
            .send_encoded(frames.iter().map(|f| f.bytes.clone()))
            .await?;
        Ok(())
    }

    /// Completes when a control reply waits to be written (call
    /// [`PreparedSender::send_control`] then). Safe to cancel.
    pub async fn control_waiting(&mut self) {
        self.sender.control_wanted().await;
    }

    /// Writes the control replies that are waiting.
    pub async fn send_control(&mut self) -> Result<(), SendFailed> {
        self.sender.flush().await?;
        Ok(())
    }

    /// Sends a ping with an empty payload.
    pub async fn ping(&mut self) -> Result<(), SendFailed> {
        self.sender.ping().await?;
        Ok(())
    }

    /// Starts the closing handshake with `code` and `reason` (at most 123 bytes are sent).
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), SendFailed> {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        self.sender.close(code, &reason[..end]).await?;
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

    #[test]
    fn payload_lengths_walk_every_frame_of_a_batch() {
        let mut out = BytesMut::new();
        for len in [0, 2, 125, 126, 300, 65_535, 65_536, 70_000] {
            PreparedFrames::encode_message(&mut out, len % 2 == 1, &vec![b'x'; len]);
        }
        let lengths: Vec<usize> = payload_lengths(&out).collect();
        assert_eq!(lengths, [0, 2, 125, 126, 300, 65_535, 65_536, 70_000]);
    }
}
