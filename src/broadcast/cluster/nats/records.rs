//! What the NATS engine stores, byte for byte: the claim record (who runs the program, at
//! which epoch, for how long) and the output messages (several records of one epoch with
//! consecutive offsets, packed into one JetStream message so that they are appended all
//! or none). Pure encoding, no I/O.

use bytes::{BufMut, Bytes, BytesMut};

/// Header naming the epoch of an output message.
pub const EPOCH_HEADER: &str = "Wsd-Epoch";
/// Header naming the offset of the first record of an output message.
pub const OFFSET_HEADER: &str = "Wsd-Offset";
/// The key-value convention's operation header (`DEL` marks a released claim), kept so
/// that `nats kv get` reads the claim correctly.
pub const OPERATION_HEADER: &str = "KV-Operation";
/// [`OPERATION_HEADER`]'s value for a deleted key.
pub const DELETED: &str = "DEL";

/// The runner claim as stored: `EPOCH LEASE_MS TOKEN`, or a released claim that still
/// remembers the last epoch (so the next one is higher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The holder's epoch (the fencing token).
    pub epoch: u64,
    /// How long the claim lasts after it was written, in milliseconds.
    pub lease_ms: u64,
    /// The holder's token.
    pub token: String,
    /// Released: nobody holds it.
    pub released: bool,
}

impl ClaimRecord {
    /// The stored form (the message payload; `released` travels in a header).
    pub fn encode(&self) -> Bytes {
        Bytes::from(format!("{} {} {}", self.epoch, self.lease_ms, self.token))
    }

    /// Reads a stored claim; `None` when it is not one of ours (then it is treated as
    /// held by someone unknown, never as free).
    pub fn decode(payload: &[u8], released: bool) -> Option<ClaimRecord> {
        let text = std::str::from_utf8(payload).ok()?;
        let mut parts = text.splitn(3, ' ');
        let epoch = parts.next()?.parse().ok()?;
        let lease_ms = parts.next()?.parse().ok()?;
        let token = parts.next()?.to_string();
        Some(ClaimRecord {
            epoch,
            lease_ms,
            token,
            released,
        })
    }
}

/// Records of one output message: each as a 4-byte big-endian length and its bytes.
pub fn pack(records: &[Bytes]) -> Bytes {
    let size = records.iter().map(|r| r.len() + 4).sum();
    let mut out = BytesMut::with_capacity(size);
    for record in records {
        // A record longer than 4 GiB cannot reach here: the server's payload limit is far
        // lower and packing is split by size first.
        out.put_u32(u32::try_from(record.len()).unwrap_or(u32::MAX));
        out.put_slice(record);
    }
    out.freeze()
}

/// The records of an output message; `None` if it is malformed (then it is skipped whole).
pub fn unpack(mut payload: Bytes) -> Option<Vec<Bytes>> {
    let mut records = Vec::new();
    while !payload.is_empty() {
        if payload.len() < 4 {
            return None;
        }
        let len = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
        let _ = payload.split_to(4);
        if payload.len() < len {
            return None;
        }
        records.push(payload.split_to(len));
    }
    Some(records)
}

/// Splits `records` into runs whose packed size stays under `max_payload` (a record larger
/// than that on its own forms a run of one, which the server then refuses).
pub fn chunks(records: &[Bytes], max_payload: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, record) in records.iter().enumerate() {
        let len = record.len() + 4;
        if i > start && size + len > max_payload {
            out.push(start..i);
            start = i;
            size = 0;
        }
        size += len;
    }
    if start < records.len() {
        out.push(start..records.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_round_trip_and_foreign_values() {
        let claim = ClaimRecord {
            epoch: 7,
            lease_ms: 2000,
            token: "a b".into(),
            released: false,
        };
        assert_eq!(claim.encode(), Bytes::from_static(b"7 2000 a b"));
        assert_eq!(ClaimRecord::decode(&claim.encode(), false), Some(claim));
        assert_eq!(ClaimRecord::decode(b"x 1 t", false), None);
        assert_eq!(ClaimRecord::decode(b"1 2", false), None);
        assert_eq!(ClaimRecord::decode(&[0xff, b' '], true), None);
        assert!(ClaimRecord::decode(b"3 0 t", true).unwrap().released);
    }

    #[test]
    fn records_pack_and_unpack() {
        let records = vec![
            Bytes::from_static(b"one"),
            Bytes::new(),
            Bytes::from_static(b"three"),
        ];
        assert_eq!(unpack(pack(&records)), Some(records));
        assert_eq!(unpack(Bytes::new()), Some(vec![]));
        assert_eq!(unpack(Bytes::from_static(b"\0\0\0\x05ab")), None);
        assert_eq!(unpack(Bytes::from_static(b"\0\0")), None);
    }

    #[test]
    fn chunks_stay_under_the_payload_limit() {
        let records: Vec<Bytes> = (0..5).map(|_| Bytes::from(vec![0u8; 6])).collect();
        assert_eq!(chunks(&records, 20), vec![0..2, 2..4, 4..5]);
        assert_eq!(chunks(&records, 1000), vec![0..5]);
        assert_eq!(chunks(&records, 3), vec![0..1, 1..2, 2..3, 3..4, 4..5]);
        assert!(chunks(&[], 10).is_empty());
    }
}
