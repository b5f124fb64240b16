//! WebSocket frame headers (RFC 6455 section 5.2) and payload masking: the pure part of the
//! codec, kept apart from any I/O so that it can be tested and fuzzed on its own.

/// Continuation of a fragmented message.
pub const OP_CONTINUATION: u8 = 0x0;
/// A text message (or its first fragment).
pub const OP_TEXT: u8 = 0x1;
/// A binary message (or its first fragment).
pub const OP_BINARY: u8 = 0x2;
/// The closing handshake.
pub const OP_CLOSE: u8 = 0x8;
/// A ping.
pub const OP_PING: u8 = 0x9;
/// A pong.
pub const OP_PONG: u8 = 0xA;

/// Longest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Longest frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
pub const MAX_HEADER: usize = 14;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The last frame of its message.
    pub fin: bool,
    /// RSV1: set on the first frame of a compressed message (RFC 7692).
    pub rsv1: bool,
    /// The opcode (low four bits of the first byte).
    pub opcode: u8,
    /// The masking key (every client frame has one).
    pub mask: [u8; 4],
    /// The payload length.
    pub len: u64,
    /// Bytes the header itself occupies.
    pub header_len: usize,
}

impl Header {
    /// Close, ping or pong.
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Why a header breaks the protocol (the connection closes with 1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// RSV2 or RSV3 is set; no extension we negotiate defines them.
    ReservedBits,
    /// An opcode RFC 6455 reserves.
    ReservedOpcode(u8),
    /// A control frame that is fragmented or longer than 125 bytes.
    BadControl,
    /// A 64-bit length with its most significant bit set.
    LengthTooLarge,
    /// A client frame without a mask.
    Unmasked,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::ReservedBits => f.write_str("reserved bits are non-zero"),
            HeaderError::ReservedOpcode(op) => write!(f, "unknown opcode {op}"),
            HeaderError::BadControl => f.write_str("control frame fragmented or too long"),
            HeaderError::LengthTooLarge => f.write_str("frame length has its top bit set"),
            HeaderError::Unmasked => f.write_str("unmasked frame from client"),
        }
    }
}

/// Parses the header at the start of `buf` (a client frame). `Ok(None)`: more bytes needed.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, HeaderError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    let opcode = b0 & 0x0F;
    if b0 & 0x30 != 0 {
        return Err(HeaderError::ReservedBits);
    }
    if !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
        return Err(HeaderError::ReservedOpcode(opcode));
    }
    if b1 & 0x80 == 0 {
        return Err(HeaderError::Unmasked);
    }
    let short = b1 & 0x7F;
    let (len, mut at) = match short {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(b);
                let len = u64::from_be_bytes(raw);
                if len >> 63 != 0 {
                    return Err(HeaderError::LengthTooLarge);
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode & 0x8 != 0 && (!fin || len > MAX_CONTROL_PAYLOAD as u64) {
        return Err(HeaderError::BadControl);
    }
    let Some(key) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let mask = [key[0], key[1], key[2], key[3]];
    at += 4;
    Ok(Some(Header {
        fin,
        rsv1,
        opcode,
        mask,
        len,
        header_len: at,
    }))
}

/// Writes the header of an unmasked server frame into `out`; returns its length.
pub fn encode(out: &mut [u8; MAX_HEADER], fin: bool, rsv1: bool, opcode: u8, len: usize) -> usize {
    out[0] = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | (opcode & 0x0F);
    if len < 126 {
        out[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Unmasks (or masks) `data` in place with `key`, the payload starting at key offset 0.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let value = u64::from_ne_bytes(word) ^ wide;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

/// Whether a client may send `code` in a close frame (RFC 6455 section 7.4).
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(first: u8, len_bytes: &[u8]) -> Vec<u8> {
        let mut frame = vec![first];
        frame.extend_from_slice(len_bytes);
        frame[1] |= 0x80;
        frame.extend_from_slice(&[1, 2, 3, 4]);
        frame
    }

    #[test]
    fn lengths_in_all_three_forms() {
        let h = parse(&masked(0x81, &[5])).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.len, h.header_len), (true, 1, 5, 6));
        let h = parse(&masked(0x02, &[126, 1, 0])).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.len, h.header_len), (false, 2, 256, 8));
        let h = parse(&masked(0x82, &[127, 0, 0, 0, 1, 0, 0, 0, 0]))
            .unwrap()
            .unwrap();
        assert_eq!((h.len, h.header_len, h.mask), (1 << 32, 14, [1, 2, 3, 4]));
    }

    #[test]
    fn every_prefix_of_a_header_asks_for_more() {
        let frame = masked(0x82, &[127, 0, 0, 0, 1, 0, 0, 0, 0]);
        for end in 0..frame.len() {
            assert_eq!(parse(&frame[..end]), Ok(None), "prefix of {end} bytes");
        }
    }

    #[test]
    fn length_with_top_bit_is_a_protocol_error() {
        let frame = masked(0x82, &[127, 0x80, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(parse(&frame), Err(HeaderError::LengthTooLarge));
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(parse(&masked(0xA1, &[0])), Err(HeaderError::ReservedBits));
        assert_eq!(
            parse(&masked(0x83, &[0])),
            Err(HeaderError::ReservedOpcode(3))
        );
        assert_eq!(parse(&masked(0x09, &[0])), Err(HeaderError::BadControl));
        assert_eq!(
            parse(&masked(0x89, &[126, 0, 126])),
            Err(HeaderError::BadControl)
        );
        assert_eq!(parse(&[0x81, 0x00]), Err(HeaderError::Unmasked));
    }

    #[test]
    fn headers_round_trip_through_encode() {
        for len in [0usize, 125, 126, 65535, 65536, 1 << 40] {
            let mut out = [0u8; MAX_HEADER];
            let n = encode(&mut out, true, true, OP_BINARY, len);
            let mut frame = out[..n].to_vec();
            frame[1] |= 0x80;
            frame.extend_from_slice(&[0; 4]);
            let h = parse(&frame).unwrap().unwrap();
            assert_eq!(
                (h.fin, h.rsv1, h.opcode, h.len),
                (true, true, OP_BINARY, len as u64)
            );
        }
    }

    #[test]
    fn masking_matches_the_definition_at_every_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, key);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }
}
