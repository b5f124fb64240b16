//! The runner claim on NATS: acquire (a KV create, or an update at the revision of a
//! released or expired claim), renew (an update at the holder's revision), release (a
//! delete marker at that revision), and the resynchronisation after an unanswered write.

use super::records::{ClaimRecord, DELETED, OPERATION_HEADER};
use super::{held, Holder, NatsEngine, WriteError, EXPECTED_LAST_SUBJECT_SEQUENCE, ROLLUP};
use crate::broadcast::cluster::engine::{Claim, EngineError};
use async_nats::HeaderMap;
use std::time::{Duration, Instant};

impl NatsEngine {
    /// The claim as stored now, with its revision; `None` if there is none.
    pub(super) async fn read_claim(
        &self,
    ) -> Result<Option<(u64, Option<ClaimRecord>)>, EngineError> {
        let context = self.ready().await?;
        let stream = context
            .get_stream_no_info(&self.names.stream)
            .await
            .map_err(|err| self.unreachable("stream", err))?;
        match stream
            .get_last_raw_message_by_subject(&self.names.claim)
            .await
        {
            Ok(message) => {
                let released = message
                    .headers
                    .get(OPERATION_HEADER)
                    .is_some_and(|op| op.as_str() == DELETED);
                let record = ClaimRecord::decode(&message.payload, released);
                Ok(Some((message.sequence, record)))
            }
            Err(err)
                if err.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok(None)
            }
            Err(err) => Err(self.unreachable("claim", err)),
        }
    }

    /// After a refused or unanswered write: is the claim still `holder`'s, and what is the
    /// stream's last sequence now? The sequence is read *before* the claim, so every write
    /// up to it happened while the claim was still ours (a takeover leaves a foreign claim
    /// record behind for good), and a write expecting it fails if a takeover came since.
    pub(super) async fn resync(&self, holder: &mut Holder) -> Result<(), EngineError> {
        let last = self.stream_state().await?.last;
        match self.read_claim().await? {
            Some((seq, Some(record)))
                if !record.released
                    && record.token == holder.token
                    && record.epoch == holder.epoch =>
            {
                holder.claim_seq = seq;
                holder.last_seq = last;
                Ok(())
            }
            _ => Err(EngineError::Fenced),
        }
    }

    /// Takes the claim if it is free, released, expired, or already ours (an attempt whose
    /// answer was lost).
    pub(super) async fn acquire_now(
        &self,
        token: &str,
        floor: u64,
        lease: Duration,
    ) -> Result<Option<Claim>, EngineError> {
        let mut holder = self.holder.lock().await;
        let current = self.read_claim().await?;
        let (expected, previous_epoch) = match &current {
            None => (0, 0),
            Some((seq, Some(record))) if record.released => (*seq, record.epoch),
            Some((seq, Some(record))) if record.token == token => {
                // Our own earlier attempt went through unanswered: adopt it, renewed now so
                // the lease runs from this request.
                (*seq, record.epoch.saturating_sub(1))
            }
            Some((seq, record)) => {
                let lease_ms = record.as_ref().map_or(u64::MAX, |r| r.lease_ms);
                if !self.expired(*seq, lease_ms) {
                    return Ok(None);
                }
                (*seq, record.as_ref().map_or(0, |r| r.epoch))
            }
        };
        let epoch = previous_epoch.max(floor) + 1;
        let record = ClaimRecord {
            epoch,
            lease_ms: lease.as_millis().try_into().unwrap_or(u64::MAX),
            token: token.to_string(),
            released: false,
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        headers.insert(ROLLUP, "sub");
        match self
            .write(&self.names.claim, headers, record.encode())
            .await
        {
            Ok(seq) => {
                *holder = Some(Holder {
                    token: token.to_string(),
                    epoch,
                    claim_seq: seq,
                    last_seq: seq,
                    written_end: 0,
                });
                Ok(Some(Claim {
                    token: token.to_string(),
                    epoch,
                }))
            }
            Err(WriteError::WrongLast) => Ok(None),
            Err(WriteError::Other(err)) => Err(err),
        }
    }

    /// Whether the claim at revision `seq` has been seen unchanged for its whole lease.
    pub(super) fn expired(&self, seq: u64, lease_ms: u64) -> bool {
        let mut observed = self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *observed {
            Some((seen, since)) if seen == seq => {
                since.elapsed() >= Duration::from_millis(lease_ms)
            }
            _ => {
                *observed = Some((seq, Instant::now()));
                false
            }
        }
    }

    /// Rewrites the claim at the holder's revision.
    pub(super) async fn renew_now(
        &self,
        claim: &Claim,
        lease: Duration,
    ) -> Result<(), EngineError> {
        let mut guard = self.holder.lock().await;
        let holder = held(&mut guard, claim)?;
        let record = ClaimRecord {
            epoch: holder.epoch,
            lease_ms: lease.as_millis().try_into().unwrap_or(u64::MAX),
            token: holder.token.clone(),
            released: false,
        };
        for _ in 0..2 {
            let mut headers = HeaderMap::new();
            headers.insert(
                EXPECTED_LAST_SUBJECT_SEQUENCE,
                holder.claim_seq.to_string().as_str(),
            );
            headers.insert(ROLLUP, "sub");
            match self
                .write(&self.names.claim, headers, record.encode())
                .await
            {
                Ok(seq) => {
                    holder.claim_seq = seq;
                    holder.last_seq = seq;
                    return Ok(());
                }
                Err(WriteError::WrongLast) => {
                    if let Err(err) = self.resync(holder).await {
                        if err == EngineError::Fenced {
                            *guard = None;
                        }
                        return Err(err);
                    }
                }
                Err(WriteError::Other(err)) => return Err(err),
            }
        }
        Err(EngineError::Unreachable(
            "NATS: the claim kept changing under its holder".into(),
        ))
    }

    /// Leaves a delete marker at the holder's revision (it keeps the epoch).
    pub(super) async fn release_now(&self, claim: &Claim) -> Result<(), EngineError> {
        let mut guard = self.holder.lock().await;
        let Ok(holder) = held(&mut guard, claim) else {
            return Ok(());
        };
        let record = ClaimRecord {
            epoch: holder.epoch,
            lease_ms: 0,
            token: holder.token.clone(),
            released: true,
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            EXPECTED_LAST_SUBJECT_SEQUENCE,
            holder.claim_seq.to_string().as_str(),
        );
        headers.insert(ROLLUP, "sub");
        headers.insert(OPERATION_HEADER, DELETED);
        let result = self
            .write(&self.names.claim, headers, record.encode())
            .await;
        match result {
            Ok(_) | Err(WriteError::WrongLast) => {
                *guard = None;
                Ok(())
            }
            Err(WriteError::Other(err)) => Err(err),
        }
    }
}
