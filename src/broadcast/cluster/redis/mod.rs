//! The Redis engine (Redis ≥ 6.2): the claim is a key set with `SET NX PX` and renewed,
//! released and checked by compare-and-set scripts; the epoch is an `INCR` counter bumped
//! in the acquiring script; output is a stream whose entry ids are `EPOCH-OFFSET`, appended
//! by a script that checks the claim first and trimmed with `MAXLEN ~`; input is a second
//! stream consumed through a consumer group, by a script that checks the claim too.
//!
//! Three connections per stream, each a reconnecting connection manager made on first
//! use: one for claims and appends, one for the blocking reads of the output stream, one
//! for the runner's blocking waits on the input stream (a blocking read holds up every
//! other request on its connection).

mod claim;
mod connection;
mod input;
mod output;

use super::engine::{Claim, Engine, EngineError, Record, StreamKey, MIN_WINDOW};
use super::target::ClusterTarget;
use crate::broadcast::bus::Position;
use bytes::Bytes;
use connection::Lazy;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use redis::aio::ConnectionManager;
use redis::{Script, Value};
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for the answer to a claim or append request.
const CONTROL_TIMEOUT: Duration = Duration::from_millis(1500);
/// Added to a blocking read's own wait for its answer to be late.
const BLOCKING_SLACK: Duration = Duration::from_secs(2);

/// The Redis engine of one stream.
pub struct RedisEngine {
    target: ClusterTarget,
    claim_key: String,
    epoch_key: String,
    out_key: String,
    in_key: String,
    window: usize,
    control: Lazy,
    reader: Lazy,
    input: Lazy,
    acquire: Script,
    renew: Script,
    release: Script,
    append: Script,
    take_input: Script,
}

/// Opens the Redis engine for `key` (connecting on first use); `window` is the replay
/// window the output stream keeps at least.
pub fn open(target: &ClusterTarget, key: &StreamKey, window: usize) -> Arc<dyn Engine> {
    Arc::new(RedisEngine::new(target, key, window))
}

impl RedisEngine {
    /// The engine of `key` on `target`'s server, keeping at least `window` records.
    fn new(target: &ClusterTarget, key: &StreamKey, window: usize) -> RedisEngine {
        let prefix = format!("websocketd:{{{}}}", key.safe_id());
        let client = connection::client(target).map_err(|err| target.redact(&err.to_string()));
        RedisEngine {
            target: target.clone(),
            claim_key: format!("{prefix}:claim"),
            epoch_key: format!("{prefix}:epoch"),
            out_key: format!("{prefix}:out"),
            in_key: format!("{prefix}:in"),
            window: window.max(MIN_WINDOW),
            control: Lazy::new(client.clone(), CONTROL_TIMEOUT),
            reader: Lazy::new(client.clone(), CONTROL_TIMEOUT + BLOCKING_SLACK),
            input: Lazy::new(client, CONTROL_TIMEOUT + BLOCKING_SLACK),
            acquire: Script::new(claim::ACQUIRE),
            renew: Script::new(claim::RENEW),
            release: Script::new(claim::RELEASE),
            append: Script::new(output::APPEND),
            take_input: Script::new(input::TAKE_INPUT),
        }
    }

    /// `err` as an engine error, without the password.
    fn unreachable(&self, err: &redis::RedisError) -> EngineError {
        EngineError::Unreachable(
            self.target
                .redact(&format!("Redis at {}: {err}", self.target)),
        )
    }

    /// The error for an answer that did not come in time.
    fn late(&self) -> EngineError {
        EngineError::Unreachable(format!("Redis at {} did not answer in time", self.target))
    }

    /// Runs `script` on the control connection, bounded in time.
    async fn control_script(
        &self,
        script: &Script,
        keys: &[&str],
        args: Vec<Vec<u8>>,
    ) -> Result<Value, EngineError> {
        let mut connection = self.control.get().await.map_err(|e| self.unreachable(&e))?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        match tokio::time::timeout(CONTROL_TIMEOUT, invocation.invoke_async(&mut connection)).await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.unreachable(&err)),
            Err(_) => Err(self.late()),
        }
    }

    /// Runs `command` on `connection`; `Unreachable` without an answer within `limit`.
    async fn query(
        &self,
        connection: &mut ConnectionManager,
        command: &redis::Cmd,
        limit: Duration,
    ) -> Result<Value, EngineError> {
        match tokio::time::timeout(limit, command.query_async::<Value>(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.unreachable(&err)),
            Err(_) => Err(self.late()),
        }
    }
}

/// A claim as the claim key holds it: `TOKEN/EPOCH`.
fn claim_value(claim: &Claim) -> Vec<u8> {
    format!("{}/{}", claim.token, claim.epoch).into_bytes()
}

/// An integer reply.
fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

/// A string reply's bytes.
fn bytes_of(value: &Value) -> Option<Bytes> {
    match value {
        Value::BulkString(data) => Some(Bytes::copy_from_slice(data)),
        Value::SimpleString(text) => Some(Bytes::copy_from_slice(text.as_bytes())),
        _ => None,
    }
}

impl Engine for RedisEngine {
    fn acquire(
        &self,
        token: &str,
        floor: u64,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Option<Claim>, EngineError>> {
        self.acquire_now(token.to_string(), floor, lease).boxed()
    }

    fn renew(&self, claim: &Claim, lease: Duration) -> BoxFuture<'_, Result<(), EngineError>> {
        self.renew_now(RedisEngine::renew_args(claim, lease))
            .boxed()
    }

    fn release(&self, claim: &Claim) -> BoxFuture<'_, Result<(), EngineError>> {
        self.release_now(vec![claim_value(claim)]).boxed()
    }

    fn append(
        &self,
        claim: &Claim,
        first: u64,
        records: Vec<Bytes>,
    ) -> BoxFuture<'_, Result<(), EngineError>> {
        self.append_now(self.append_args(claim, first, records))
            .boxed()
    }

    fn read(
        &self,
        after: Position,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Record>, EngineError>> {
        self.read_now(after, max, wait).boxed()
    }

    fn last(&self, count: usize) -> BoxFuture<'_, Result<Vec<Record>, EngineError>> {
        self.last_now(count).boxed()
    }

    fn push_input(&self, input: Bytes) -> BoxFuture<'_, Result<(), EngineError>> {
        self.push_input_now(input).boxed()
    }

    fn take_input(
        &self,
        claim: &Claim,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Bytes>, EngineError>> {
        let claim = claim.clone();
        async move { self.take_input_now(&claim, max, wait).await }.boxed()
    }
}
