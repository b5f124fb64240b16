//! What a coordination engine (Redis, NATS JetStream) must give the cluster bus: a runner
//! claim with a fencing epoch, an output stream that only the claim's holder can append to
//! and that every instance reads, and an input stream that only the holder consumes.
//!
//! One [`Engine`] value serves one stream: one route (`SCRIPT_NAME`) of one cluster name,
//! see [`StreamKey`]. The bus above it frames messages, encodes records, batches, retries,
//! decides when to stop the program and never delivers a position twice; an engine only
//! keeps these promises:
//!
//! * **Claim.** At most one token holds the claim of a stream at any time. A claim lasts
//!   `lease` from the moment the engine applied the acquire or the last renew (the caller
//!   counts it from the moment it *sent* the request, which is earlier, so the holder's
//!   view expires first). Acquire, renew and release are each atomic on the engine
//!   (Redis: one script; NATS: a KV create, or update with the expected revision).
//! * **Epoch.** Every successful [`Engine::acquire`] returns an epoch strictly greater than
//!   every epoch the engine returned before (for this stream, while it keeps its data) and
//!   strictly greater than the caller's `floor`. The epoch is stored with the claim and is
//!   the fencing token: renew, release, append and take-input check token *and* epoch.
//!   The `floor` (the highest epoch the caller has ever seen) keeps epochs growing when the
//!   engine lost its data, e.g. restarted without persistence.
//! * **Fenced append.** [`Engine::append`] appends all its records or none, and only if the
//!   claim is held by `claim` at the moment the engine applies it; the check and the append
//!   are one atomic step (Redis: one script; NATS: a conditional publish, such as
//!   expected-last-sequence, after checking the claim's revision). A runner that lost its
//!   claim cannot add a single record.
//! * **Idempotent append.** The runner numbers its records: `append(claim, first, records)`
//!   gives them offsets `first`, `first + 1`, … within the claim's epoch (the runner starts
//!   each epoch at 1 and never skips). When the stream already holds offset `first` of
//!   this epoch, the call is the retry of an append that took effect (its answer was lost):
//!   it returns `Ok(())` and appends nothing. So a retry after `Unreachable` never
//!   duplicates a line.
//! * **Positions.** A record's position is `(epoch, offset)` as above; positions strictly
//!   increase in the stream's order (a new epoch is above every earlier one). `(0, 0)` is
//!   before every record. An engine whose own sequence differs (JetStream's stream
//!   sequence) stores epoch and offset with the record (headers) and maps them back.
//! * **Reading.** [`Engine::read`] returns records strictly after a position, oldest first,
//!   waiting up to `wait` when there is none (then returning an empty list). It never waits
//!   for a position that cannot come: if the engine lost its data, it returns the records
//!   the new stream holds whose positions are after `after`. Records older than the
//!   replay window may be gone (trimmed); then the oldest kept come first.
//! * **Input.** [`Engine::push_input`] appends one client input; records of one caller
//!   are kept in the order its calls completed. [`Engine::take_input`] gives each record
//!   to at most one caller in the whole cluster, in order, and only to the claim's holder
//!   (checked atomically with taking them, or just before). Input pushed while no runner
//!   holds the claim waits (bounded, oldest dropped first) for the next one.
//! * **Errors.** [`EngineError::Fenced`] is definitive: the claim is not held by the
//!   caller. [`EngineError::Unreachable`] means the engine could not be asked or did not
//!   answer within the engine's own timeout (a few seconds at most, never longer than the
//!   lease / 4 for claim operations): the outcome is unknown and the bus retries. Messages
//!   never contain the password. No method panics on anything the engine or the network
//!   sends.
//! * **Memory.** An engine holds no unbounded buffer: the stream is trimmed to the replay
//!   window (at least [`MIN_WINDOW`] records), the input stream to [`INPUT_WINDOW`].

pub use crate::broadcast::bus::Position;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::time::Duration;

/// Records an output stream keeps at least, whatever `--replay` says, so an instance that
/// was briefly slow or disconnected can still catch up.
pub const MIN_WINDOW: usize = 10_000;

/// Client inputs an input stream keeps at most while the runner does not take them.
pub const INPUT_WINDOW: usize = 10_000;

/// The position before every record.
pub const START: Position = Position {
    epoch: 0,
    offset: 0,
};

/// Which stream an engine serves: the cluster's name and the route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// The name from the `--cluster` URL's path.
    pub name: String,
    /// The route's `SCRIPT_NAME` (`/` for a single command).
    pub route: String,
}

impl StreamKey {
    /// A name made of `[A-Za-z0-9_-]` only, unique per key (a readable part and a hash), for
    /// engines whose stream or bucket names allow no other characters.
    pub fn safe_id(&self) -> String {
        use sha1::{Digest, Sha1};
        let mut readable: String = format!("{}{}", self.name, self.route)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let mut hasher = Sha1::new();
        hasher.update(self.name.as_bytes());
        hasher.update([0]);
        hasher.update(self.route.as_bytes());
        let digest = hasher.finalize();
        readable.push('_');
        for byte in &digest[..6] {
            readable.push_str(&format!("{byte:02x}"));
        }
        readable
    }
}

/// A claim on the runner role of a stream, as returned by [`Engine::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The holder's random token (unique per instance and per acquisition).
    pub token: String,
    /// The fencing epoch the engine gave with the claim.
    pub epoch: u64,
}

/// One record of the output stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it sits.
    pub position: Position,
    /// What the runner appended (opaque to the engine).
    pub data: Bytes,
}

/// Why an engine operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The caller does not hold the claim (it expired, was released, or another instance
    /// holds it now). Definitive: retrying with the same claim cannot succeed.
    Fenced,
    /// The engine could not be reached or did not answer in time; whether a write took
    /// effect is unknown. The text says why, without credentials.
    Unreachable(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Fenced => f.write_str("the runner claim is held by another instance"),
            EngineError::Unreachable(why) => f.write_str(why),
        }
    }
}

/// The primitives a coordination engine provides for one stream (see the module
/// documentation for the exact contract).
pub trait Engine: Send + Sync + 'static {
    /// Claims the runner role with `token` for `lease` if nobody holds it. `Ok(None)`: held
    /// by someone else. The epoch is above every earlier one and above `floor`.
    fn acquire(
        &self,
        token: &str,
        floor: u64,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Option<Claim>, EngineError>>;

    /// Extends `claim` to `lease` from now, if it is still held; `Err(Fenced)` otherwise.
    fn renew(&self, claim: &Claim, lease: Duration) -> BoxFuture<'_, Result<(), EngineError>>;

    /// Gives `claim` up at once if it is still held (then another instance may acquire
    /// without waiting for expiry); `Ok(())` also when it was no longer held.
    fn release(&self, claim: &Claim) -> BoxFuture<'_, Result<(), EngineError>>;

    /// Appends `records` at offsets `first`, `first + 1`, … of the claim's epoch, in order,
    /// all or none, only while `claim` holds; a no-op when offset `first` is already there.
    fn append(
        &self,
        claim: &Claim,
        first: u64,
        records: Vec<Bytes>,
    ) -> BoxFuture<'_, Result<(), EngineError>>;

    /// Up to `max` records strictly after `after`, oldest first; waits up to `wait` for
    /// the first one.
    fn read(
        &self,
        after: Position,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Record>, EngineError>>;

    /// The last `count` records in the stream (fewer if it holds fewer), oldest first.
    fn last(&self, count: usize) -> BoxFuture<'_, Result<Vec<Record>, EngineError>>;

    /// Appends one client input for the runner (any instance may call it).
    fn push_input(&self, input: Bytes) -> BoxFuture<'_, Result<(), EngineError>>;

    /// Runner: takes up to `max` inputs not taken before, oldest first, waiting up to
    /// `wait` for the first; `Err(Fenced)` when `claim` is not held.
    fn take_input(
        &self,
        claim: &Claim,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Bytes>, EngineError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_ids_are_restricted_and_distinct() {
        let a = StreamKey {
            name: "feed".into(),
            route: "/".into(),
        };
        let b = StreamKey {
            name: "feed/".into(),
            route: String::new(),
        };
        let (ida, idb) = (a.safe_id(), b.safe_id());
        assert_ne!(ida, idb);
        for id in [&ida, &idb] {
            assert!(id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        }
        assert!(ida.starts_with("feed__"), "{ida}");
        assert!(
            START
                < Position {
                    epoch: 1,
                    offset: 0
                }
        );
    }
}
