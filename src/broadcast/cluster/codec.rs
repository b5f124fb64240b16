//! How the cluster bus writes its records into an engine's streams: an output record is
//! one framed message or the end of a program; an input record is one client event. The
//! engines only move these bytes.

use crate::broadcast::bus::{Close, Input, InputEvent};
use crate::ws::prepared::PreparedFrames;
use bytes::{BufMut, Bytes, BytesMut};

const MESSAGE: u8 = b'M';
const END: u8 = b'E';
const JOIN: u8 = b'J';
const DATA: u8 = b'D';
const LEAVE: u8 = b'L';

/// What an output record says.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// One message, framed (the same bytes for every client).
    Message(Bytes),
    /// The program ended: clients close with this.
    End(Close),
}

/// An output record for one framed message.
pub fn message(frames: &PreparedFrames) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + frames.len());
    out.put_u8(MESSAGE);
    out.extend_from_slice(frames.bytes());
    out.freeze()
}

/// An output record for the end of the program.
pub fn end(close: &Close) -> Bytes {
    let mut out = BytesMut::with_capacity(3 + close.reason.len());
    out.put_u8(END);
    out.put_u16(close.code);
    out.extend_from_slice(close.reason.as_bytes());
    out.freeze()
}

/// Reads an output record; `None` for one this version does not know.
pub fn output(record: &Bytes) -> Option<Output> {
    match *record.first()? {
        MESSAGE if record.len() > 1 => Some(Output::Message(record.slice(1..))),
        END if record.len() >= 3 => Some(Output::End(Close {
            code: u16::from_be_bytes([record[1], record[2]]),
            reason: String::from_utf8_lossy(&record[3..]).into_owned(),
        })),
        _ => None,
    }
}

/// An input record (the epoch stays behind: the runner stamps its own).
pub fn encode_input(input: &Input) -> Bytes {
    let client = input.client.as_bytes();
    let client_len = u16::try_from(client.len()).unwrap_or(u16::MAX);
    let client = &client[..usize::from(client_len)];
    let (kind, payload): (u8, &[u8]) = match &input.event {
        InputEvent::Join(remote) => (JOIN, remote.as_bytes()),
        InputEvent::Message(data) => (DATA, data),
        InputEvent::Leave => (LEAVE, b""),
    };
    let mut out = BytesMut::with_capacity(3 + client.len() + payload.len());
    out.put_u8(kind);
    out.put_u16(client_len);
    out.extend_from_slice(client);
    out.extend_from_slice(payload);
    out.freeze()
}

/// Reads an input record; `None` when it is malformed.
pub fn decode_input(record: &Bytes) -> Option<Input> {
    let kind = *record.first()?;
    let len = usize::from(u16::from_be_bytes([*record.get(1)?, *record.get(2)?]));
    let client = record.get(3..3 + len)?;
    let payload = record.slice(3 + len..);
    let event = match kind {
        JOIN => InputEvent::Join(String::from_utf8_lossy(&payload).into_owned()),
        DATA => InputEvent::Message(payload),
        LEAVE => InputEvent::Leave,
        _ => return None,
    };
    Some(Input {
        epoch: 0,
        client: String::from_utf8_lossy(client).into_owned(),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let mut framed = BytesMut::new();
        PreparedFrames::encode_message(&mut framed, false, b"hi");
        let frames = PreparedFrames::from_encoded(framed.freeze());
        assert_eq!(
            output(&message(&frames)),
            Some(Output::Message(Bytes::copy_from_slice(frames.bytes())))
        );
        let close = Close {
            code: 1011,
            reason: "exit status 3".into(),
        };
        assert_eq!(output(&end(&close)), Some(Output::End(close)));
        for bad in [&b""[..], b"M", b"E\x03", b"X123"] {
            assert_eq!(output(&Bytes::copy_from_slice(bad)), None);
        }
        for event in [
            InputEvent::Join("1.2.3.4".into()),
            InputEvent::Message(Bytes::from_static(b"line\x00bin")),
            InputEvent::Leave,
        ] {
            let input = Input {
                epoch: 9,
                client: "c-17".into(),
                event,
            };
            let back = decode_input(&encode_input(&input)).unwrap();
            assert_eq!((back.client.as_str(), &back.event), ("c-17", &input.event));
            assert_eq!(back.epoch, 0);
        }
        for bad in [&b""[..], b"D\x00", b"D\x00\x09ab", b"Q\x00\x00"] {
            assert!(decode_input(&Bytes::copy_from_slice(bad)).is_none());
        }
    }
}
