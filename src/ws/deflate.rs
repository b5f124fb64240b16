//! permessage-deflate (RFC 7692): choosing what to accept from the client's offers, and the
//! per-connection compressor and decompressor. Their zlib state exists only while it is
//! needed: it is created at the first compressed message and, when the negotiated
//! parameters allow (no context takeover), released as soon as the connection goes idle.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The flush marker a sync flush ends with; stripped on send, appended on receive.
const TRAILER: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];
/// Decompressed bytes produced per step, so that a limit is noticed soon after it is passed.
const INFLATE_STEP: usize = 64 * 1024;

/// The server's compression settings (`--compress`, `--compresslevel`, `--compressmin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressSettings {
    /// zlib level, 1 (fastest) to 9 (smallest).
    pub level: u32,
    /// Messages shorter than this are sent uncompressed.
    pub min_size: usize,
}

/// The parameters agreed with one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// We reset our compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// Our LZ77 window (9 to 15).
    pub server_max_window_bits: u8,
    /// The client's LZ77 window (8 to 15).
    pub client_max_window_bits: u8,
}

/// Picks the first offer in the client's `Sec-WebSocket-Extensions` headers that we can
/// honour; returns the agreement and the header value to answer with. Offers with unknown,
/// repeated or malformed parameters are declined, as is `server_max_window_bits=8` (zlib's
/// raw deflate cannot keep to a 256-byte window).
pub fn negotiate<'a>(headers: impl IntoIterator<Item = &'a [u8]>) -> Option<(Agreement, String)> {
    for header in headers {
        let text = std::str::from_utf8(header).ok()?;
        for offer in split_outside_quotes(text, ',') {
            let mut parts = split_outside_quotes(offer, ';').into_iter();
            let name = parts.next().unwrap_or("").trim();
            if !name.eq_ignore_ascii_case("permessage-deflate") {
                continue;
            }
            if let Some(accepted) = accept(parts) {
                return Some(accepted);
            }
        }
    }
    None
}

fn accept<'a>(params: impl Iterator<Item = &'a str>) -> Option<(Agreement, String)> {
    let mut agreement = Agreement {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let mut seen = [false; 4];
    let mut response = String::from("permessage-deflate");
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
            None => (param.trim(), None),
        };
        let index = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => {
                agreement.server_no_context_takeover = true;
                response.push_str("; server_no_context_takeover");
                0
            }
            "client_no_context_takeover" if value.is_none() => {
                agreement.client_no_context_takeover = true;
                response.push_str("; client_no_context_takeover");
                1
            }
            "server_max_window_bits" => {
                let bits = window_bits(value?)?;
                if bits == 8 {
                    return None;
                }
                agreement.server_max_window_bits = bits;
                response.push_str(&format!("; server_max_window_bits={bits}"));
                2
            }
            "client_max_window_bits" => {
                if let Some(value) = value {
                    agreement.client_max_window_bits = window_bits(value)?;
                }
                3
            }
            _ => return None,
        };
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
    }
    Some((agreement, response))
}

/// A window size parameter: 8 to 15, digits only, no leading zero.
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// A parameter value, without its quotes if it is a quoted string.
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').filter(|inner| !inner.contains('"')),
        None => Some(value),
    }
}

/// Splits at `sep` where it is not inside a quoted string.
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&text[start..i]);
            start = i + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Scratch capacity a compressor keeps between bursts when its zlib state stays too.
const IDLE_SCRATCH: usize = 4 * 1024;

/// Compresses outgoing messages.
pub struct Deflater {
    level: u32,
    min_size: usize,
    window_bits: u8,
    no_context_takeover: bool,
    state: Option<Compress>,
    /// Where each message is compressed; reused, so that a stream of short messages
    /// allocates nothing per message.
    scratch: Vec<u8>,
}

/// A message's compressed payload, in the compressor's scratch buffer until it is copied
/// next to its header or taken whole.
pub struct Compressed<'a>(&'a mut Vec<u8>);

impl Compressed<'_> {
    /// The compressed bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.0
    }

    /// Takes the bytes without copying them (for long payloads, written where they are).
    pub fn into_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from(std::mem::take(self.0))
    }
}

impl Deflater {
    /// A compressor for `agreement`; no zlib state until the first message.
    pub fn new(settings: CompressSettings, agreement: &Agreement) -> Deflater {
        Deflater {
            level: settings.level,
            min_size: settings.min_size,
            window_bits: agreement.server_max_window_bits,
            no_context_takeover: agreement.server_no_context_takeover,
            state: None,
            scratch: Vec::new(),
        }
    }

    /// The compressed payload of a message, or `None` to send it as it is (too short, or
    /// compression failed).
    pub fn compress(&mut self, payload: &[u8]) -> Option<Compressed<'_>> {
        if payload.len() < self.min_size {
            return None;
        }
        let (level, bits) = (self.level, self.window_bits);
        let state = self.state.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        let out = &mut self.scratch;
        out.clear();
        // Deflate output is at most a few bytes per block larger than its input: one call
        // nearly always suffices.
        out.reserve(payload.len() + payload.len() / 256 + 64);
        let mut input = payload;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let before = state.total_in();
            if state.compress_vec(input, out, FlushCompress::Sync).is_err() {
                self.state = None;
                return None;
            }
            let consumed = usize::try_from(state.total_in() - before).unwrap_or(input.len());
            input = &input[consumed.min(input.len())..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TRAILER) {
            out.truncate(out.len() - TRAILER.len());
        }
        if self.no_context_takeover {
            state.reset();
        }
        Some(Compressed(out))
    }

    /// Nothing is being sent: without context takeover the zlib state is not needed until
    /// the next message, so it is released, and so is a scratch buffer a long message grew.
    pub fn idle(&mut self) {
        if self.no_context_takeover {
            self.state = None;
            self.scratch = Vec::new();
        } else if self.scratch.capacity() > IDLE_SCRATCH {
            self.scratch = Vec::new();
        }
    }
}

/// Why a compressed message could not be decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// It decompresses to more than the limit (decompression stopped there).
    TooBig,
    /// It is not valid deflate data.
    Corrupt,
}

/// Decompresses incoming messages.
pub struct Inflater {
    window_bits: u8,
    no_context_takeover: bool,
    state: Option<Decompress>,
}

impl Inflater {
    /// A decompressor for `agreement`; no zlib state until the first compressed message.
    pub fn new(agreement: &Agreement) -> Inflater {
        Inflater {
            // zlib's raw inflate accepts 8, but 9 decodes everything 8 can produce too.
            window_bits: agreement.client_max_window_bits.max(9),
            no_context_takeover: agreement.client_no_context_takeover,
            state: None,
        }
    }

    /// Decompresses one frame's payload of a compressed message, appending to `out`, which
    /// may not grow past `limit` bytes. `last` marks the message's final frame.
    pub fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        self.run(input, out, limit)?;
        if last {
            self.run(&TRAILER, out, limit)?;
            if self.no_context_takeover {
                // The next message starts afresh; the state itself is kept while messages
                // keep coming (re-creating it per message costs an allocation and its
                // set-up) and released by `idle`.
                if let Some(state) = self.state.as_mut() {
                    state.reset(false);
                }
            }
        }
        Ok(())
    }

    fn run(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        let bits = self.window_bits;
        let state = self
            .state
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        loop {
            let room = limit.saturating_add(1).saturating_sub(out.len());
            if out.capacity() == out.len() {
                out.reserve_exact(room.clamp(1, INFLATE_STEP));
            }
            let (before_in, before_out) = (state.total_in(), out.len());
            let status = state
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|_| InflateError::Corrupt)?;
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            let consumed = usize::try_from(state.total_in() - before_in).unwrap_or(input.len());
            input = &input[consumed.min(input.len())..];
            if status == Status::StreamEnd {
                // The client ended the deflate stream (BFINAL); the next data starts anew.
                state.reset(false);
                if input.is_empty() {
                    return Ok(());
                }
                continue;
            }
            let spare = out.len() < out.capacity();
            if input.is_empty() && spare {
                return Ok(());
            }
            if consumed == 0 && out.len() == before_out && spare {
                return Err(InflateError::Corrupt);
            }
        }
    }

    /// The connection is idle: without context takeover the zlib state is released.
    pub fn idle(&mut self) {
        if self.no_context_takeover {
            self.state = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(text: &str) -> Option<(Agreement, String)> {
        negotiate([text.as_bytes()])
    }

    #[test]
    fn plain_offer_is_accepted_with_defaults() {
        let (agreement, response) = offer("permessage-deflate").unwrap();
        assert_eq!(response, "permessage-deflate");
        assert_eq!(agreement.server_max_window_bits, 15);
        assert!(!agreement.server_no_context_takeover);
    }

    #[test]
    fn parameters_are_echoed_as_rfc_7692_asks() {
        let (a, response) = offer(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits",
        )
        .unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
        assert!(a.server_no_context_takeover && a.client_no_context_takeover);
        assert_eq!(a.server_max_window_bits, 10);
        let (a, _) = offer("permessage-deflate; client_max_window_bits=\"9\"").unwrap();
        assert_eq!(a.client_max_window_bits, 9);
    }

    #[test]
    fn offers_we_cannot_honour_are_declined_and_the_next_one_tried() {
        for bad in [
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; mystery",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(offer(bad), None, "{bad}");
        }
        let (a, _) = offer("permessage-deflate; server_max_window_bits=8, permessage-deflate; client_no_context_takeover").unwrap();
        assert!(a.client_no_context_takeover);
        assert_eq!(a.server_max_window_bits, 15);
    }

    fn round_trip(agreement: &Agreement, messages: &[Vec<u8>], idle_between: bool) {
        let settings = CompressSettings {
            level: 1,
            min_size: 0,
        };
        let mut deflater = Deflater::new(settings, agreement);
        let mut inflater = Inflater::new(agreement);
        for message in messages {
            let compressed = deflater.compress(message).unwrap().as_slice().to_vec();
            let mut out = Vec::new();
            let cut = compressed.len() / 2;
            inflater
                .inflate(&compressed[..cut], false, &mut out, usize::MAX)
                .unwrap();
            inflater
                .inflate(&compressed[cut..], true, &mut out, usize::MAX)
                .unwrap();
            assert_eq!(&out, message);
            if idle_between {
                deflater.idle();
                inflater.idle();
            }
        }
    }

    #[test]
    fn messages_round_trip_with_and_without_context_takeover() {
        let messages: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                format!("line {i} of a log that repeats itself ")
                    .repeat(i * 50)
                    .into_bytes()
            })
            .collect();
        for (server, client) in [(false, false), (true, true), (true, false)] {
            for bits in [9, 12, 15] {
                let agreement = Agreement {
                    server_no_context_takeover: server,
                    client_no_context_takeover: client,
                    server_max_window_bits: bits,
                    client_max_window_bits: bits,
                };
                // Messages in a burst (state kept) and one at a time (released between).
                round_trip(&agreement, &messages, false);
                round_trip(&agreement, &messages, true);
            }
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let agreement = offer("permessage-deflate").unwrap().0;
        let mut deflater = Deflater::new(
            CompressSettings {
                level: 9,
                min_size: 0,
            },
            &agreement,
        );
        let bomb = deflater
            .compress(&vec![0u8; 8 << 20])
            .unwrap()
            .as_slice()
            .to_vec();
        assert!(bomb.len() < 64 * 1024);
        let mut inflater = Inflater::new(&agreement);
        let mut out = Vec::new();
        assert_eq!(
            inflater.inflate(&bomb, true, &mut out, 1 << 20),
            Err(InflateError::TooBig)
        );
        assert!(
            out.capacity() <= (1 << 20) + INFLATE_STEP,
            "{}",
            out.capacity()
        );
    }

    #[test]
    fn garbage_is_refused() {
        let agreement = offer("permessage-deflate").unwrap().0;
        let mut inflater = Inflater::new(&agreement);
        let mut out = Vec::new();
        assert_eq!(
            inflater.inflate(&[0xFF; 64], true, &mut out, usize::MAX),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn short_messages_stay_uncompressed() {
        let agreement = offer("permessage-deflate").unwrap().0;
        let mut deflater = Deflater::new(
            CompressSettings {
                level: 1,
                min_size: 10,
            },
            &agreement,
        );
        assert!(deflater.compress(b"tiny").is_none());
        assert!(deflater.compress(b"long enough to compress").is_some());
    }
}
