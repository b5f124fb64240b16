//! The NATS JetStream engine (`--cluster=nats://HOST:PORT/NAME`, `tls://`, `nats+tls://`).
//!
//! Each stream (one route of one cluster name) is one JetStream stream laid out as a
//! key-value bucket, `KV_wsd_<id>`, with two keys:
//!
//! * `claim`: the runner claim, `EPOCH LEASE_MS TOKEN`. Acquiring writes it with
//!   `Nats-Expected-Last-Subject-Sequence` set to the revision the contender read (0 when
//!   the key never existed: a KV *create*); renewing is a KV *update* with the holder's
//!   revision; releasing writes a delete marker (`KV-Operation: DEL`) with the expected
//!   revision. Every claim write rolls the key up (`Nats-Rollup: sub`), so one claim record
//!   is kept however long the program runs.
//! * `out`: the output. Each append is one message (its records packed, so all or none)
//!   published with `Nats-Expected-Last-Sequence` set to the last sequence of the **whole
//!   stream** that the holder knows — its own previous write or renewal.
//!
//! **Fencing.** Because the claim and the output live in one stream, the server orders them
//! in one sequence. A takeover is itself a write to that sequence, so from the moment it
//! is stored the old holder's `expected last sequence` is stale and every append it tries is
//! refused by the server — whatever the old holder believes about time, however long it was
//! paused, whatever it had queued while disconnected. There is no window between "a new
//! runner holds the claim" and "the old runner's writes fail": they are the same event.
//!
//! **Expiry.** The claim's lease is judged by the contenders: a contender that sees the same
//! claim revision unchanged for the lease the record states (counted from when the contender
//! first saw that revision, which is after the holder sent it) may take it over with an
//! update at that revision. The stream needs no `max_age` (which would also expire the
//! output), and no server clock is involved. The holder counts its lease from the moment it
//! *sent* its renewal, so its view always expires first.
//!
//! **Epochs.** The claim record carries its epoch, and a released claim keeps it, so a new
//! claim's epoch is the previous one + 1 (or above the caller's floor, if the server lost
//! its data), checked and written in the same conditional write.
//!
//! **Input** goes to a second stream, `WSDIN_<id>`, consumed by one durable pull consumer
//! (`runner`) that only the claim's holder pulls from, each message delivered at most once.

mod records;

use super::engine::{
    Claim, Engine, EngineError, Position, Record, StreamKey, INPUT_WINDOW, MIN_WINDOW,
};
use super::target::ClusterTarget;
use async_nats::jetstream::consumer::{self, pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use records::{ClaimRecord, DELETED, EPOCH_HEADER, OFFSET_HEADER, OPERATION_HEADER};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OnceCell};

/// Longest wait for one answer from the server (claim operations wait at most a quarter
/// of the lease).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes the output stream keeps at most (on top of [`MIN_WINDOW`] messages).
const MAX_STREAM_BYTES: i64 = 256 * 1024 * 1024;
/// Bytes the input stream keeps at most (on top of [`INPUT_WINDOW`] messages).
const MAX_INPUT_BYTES: i64 = 64 * 1024 * 1024;
/// The durable consumer of the input stream that the runner pulls from.
const INPUT_CONSUMER: &str = "runner";
/// Packed output messages stay under this, whatever larger payload the server allows.
const MAX_PACKED: usize = 512 * 1024;

const EXPECTED_LAST_SEQUENCE: &str = "Nats-Expected-Last-Sequence";
const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
const ROLLUP: &str = "Nats-Rollup";

/// Opens the engine for `key` on the NATS server of `target`; it connects on first use
/// and reconnects by itself.
pub fn open(target: &ClusterTarget, key: &StreamKey) -> Arc<dyn Engine> {
    Arc::new(NatsEngine::new(target.clone(), key))
}

/// The names one stream uses on the server.
#[derive(Debug)]
struct Names {
    stream: String,
    claim: String,
    out: String,
    input_stream: String,
    input: String,
}

impl Names {
    fn new(key: &StreamKey) -> Names {
        let id = key.safe_id();
        let bucket = format!("wsd_{id}");
        Names {
            stream: format!("KV_{bucket}"),
            claim: format!("$KV.{bucket}.claim"),
            out: format!("$KV.{bucket}.out"),
            input_stream: format!("WSDIN_{id}"),
            input: format!("wsd.in.{id}"),
        }
    }
}

/// The claim this instance holds, with what it knows of the stream.
#[derive(Debug)]
struct Holder {
    token: String,
    epoch: u64,
    /// The claim record's revision (its sequence in the stream).
    claim_seq: u64,
    /// The last sequence of the stream this holder wrote (claim or output).
    last_seq: u64,
    /// The offset after the last record of this epoch known to be in the stream (0: none).
    written_end: u64,
}

/// Where the output reader stands.
#[derive(Default)]
struct Reader {
    messages: Option<pull::Ordered>,
    /// The position of the last record returned, and the stream sequence it came in.
    last: Option<(Position, u64)>,
    /// Records read but not returned yet (a message held more than `max`).
    pending: std::collections::VecDeque<Record>,
    /// When the stream was created: another value means the server lost its data.
    created: Option<i128>,
    /// The connection the consumer was made on (see `NatsEngine::connections`).
    connection: u64,
    /// The last read found nothing.
    idle: bool,
}

/// A JetStream stream of one route, with its claim, output and input.
pub struct NatsEngine {
    target: ClusterTarget,
    names: Names,
    session: OnceCell<jetstream::Context>,
    streams_ready: AtomicBool,
    /// Counts (re)connections: a consumer made before the latest one may be dead.
    connections: Arc<AtomicU64>,
    holder: Mutex<Option<Holder>>,
    /// The claim revision seen last and when it was first seen (lease expiry).
    observed: std::sync::Mutex<Option<(u64, Instant)>>,
    reader: Mutex<Reader>,
    input: Mutex<Option<consumer::Consumer<pull::Config>>>,
}

/// How a conditional write failed.
enum WriteError {
    /// The expected sequence did not match: somebody else wrote (or our last write's
    /// answer was lost).
    WrongLast,
    /// No answer, or another failure.
    Other(EngineError),
}

impl NatsEngine {
    fn new(target: ClusterTarget, key: &StreamKey) -> NatsEngine {
        NatsEngine {
            target,
            names: Names::new(key),
            session: OnceCell::new(),
            streams_ready: AtomicBool::new(false),
            connections: Arc::new(AtomicU64::new(0)),
            holder: Mutex::new(None),
            observed: std::sync::Mutex::new(None),
            reader: Mutex::new(Reader::default()),
            input: Mutex::new(None),
        }
    }

    fn unreachable(&self, what: &str, err: impl std::fmt::Display) -> EngineError {
        EngineError::Unreachable(self.target.redact(&format!("NATS {what}: {err}")))
    }

    /// `operation`, or `Unreachable` if it takes longer than `limit`.
    async fn bounded<T>(
        &self,
        limit: Duration,
        operation: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        match tokio::time::timeout(limit, operation).await {
            Ok(result) => result,
            Err(_) => Err(EngineError::Unreachable(format!(
                "NATS at {}:{} did not answer within {} ms",
                self.target.host,
                self.target.port,
                limit.as_millis()
            ))),
        }
    }

    /// The JetStream context, connecting on first use (the client then reconnects by itself,
    /// with capped backoff, for the daemon's lifetime).
    async fn context(&self) -> Result<&jetstream::Context, EngineError> {
        self.session
            .get_or_try_init(|| async {
                let connections = self.connections.clone();
                let mut options = async_nats::ConnectOptions::new()
                    .event_callback(move |event| {
                        if matches!(event, async_nats::Event::Connected) {
                            connections.fetch_add(1, Ordering::AcqRel);
                        }
                        std::future::ready(())
                    })
                    .name("websocketd")
                    .retry_on_initial_connect()
                    .max_reconnects(None)
                    .connection_timeout(REQUEST_TIMEOUT)
                    .ping_interval(Duration::from_secs(5))
                    .request_timeout(Some(REQUEST_TIMEOUT))
                    .require_tls(self.target.tls)
                    .reconnect_delay_callback(|attempts| {
                        let ms = 50u64.saturating_mul(1 << attempts.min(6));
                        Duration::from_millis(ms.min(2000))
                    });
                let password = self
                    .target
                    .password
                    .as_ref()
                    .map(|p| p.expose().to_string());
                options = match (self.target.username.clone(), password) {
                    (Some(user), pass) => options.user_and_password(user, pass.unwrap_or_default()),
                    (None, Some(token)) => options.token(token),
                    (None, None) => options,
                };
                let host = if self.target.host.contains(':') {
                    format!("[{}]", self.target.host)
                } else {
                    self.target.host.clone()
                };
                let scheme = if self.target.tls { "tls" } else { "nats" };
                let address = format!("{scheme}://{host}:{}", self.target.port);
                let client = options
                    .connect(address)
                    .await
                    .map_err(|err| self.unreachable("connect", err))?;
                let mut context = jetstream::new(client);
                context.set_timeout(REQUEST_TIMEOUT);
                Ok(context)
            })
            .await
    }

    /// The context, with both streams and the input consumer in place.
    async fn ready(&self) -> Result<&jetstream::Context, EngineError> {
        let context = self.context().await?;
        if self.streams_ready.load(Ordering::Acquire) {
            return Ok(context);
        }
        context
            .get_or_create_stream(stream::Config {
                name: self.names.stream.clone(),
                description: Some("websocketd --cluster: runner claim and output".into()),
                subjects: vec![format!("{}>", self.names.claim.trim_end_matches("claim"))],
                max_messages_per_subject: MIN_WINDOW as i64,
                max_bytes: MAX_STREAM_BYTES,
                discard: stream::DiscardPolicy::Old,
                storage: stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                // Reads go through the stream's leader, so a claim read is never stale.
                allow_direct: false,
                ..Default::default()
            })
            .await
            .map_err(|err| self.unreachable("stream", err))?;
        let input = context
            .get_or_create_stream(stream::Config {
                name: self.names.input_stream.clone(),
                description: Some("websocketd --cluster: client input for the runner".into()),
                subjects: vec![self.names.input.clone()],
                max_messages: INPUT_WINDOW as i64,
                max_bytes: MAX_INPUT_BYTES,
                discard: stream::DiscardPolicy::Old,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|err| self.unreachable("input stream", err))?;
        let consumer = input
            .get_or_create_consumer(
                INPUT_CONSUMER,
                pull::Config {
                    durable_name: Some(INPUT_CONSUMER.into()),
                    ack_policy: AckPolicy::Explicit,
                    // Never redelivered: each input reaches at most one runner.
                    max_deliver: 1,
                    deliver_policy: DeliverPolicy::All,
                    ..Default::default()
                },
            )
            .await
            .map_err(|err| self.unreachable("input consumer", err))?;
        *self.input.lock().await = Some(consumer);
        self.streams_ready.store(true, Ordering::Release);
        Ok(context)
    }

    /// Publishes to `subject`; the stream sequence it got.
    async fn write(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<u64, WriteError> {
        let context = self.ready().await.map_err(WriteError::Other)?;
        let published = async {
            context
                .publish_with_headers(subject.to_string(), headers, payload)
                .await?
                .await
        };
        match published.await {
            Ok(ack) => Ok(ack.sequence),
            Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => {
                Err(WriteError::WrongLast)
            }
            Err(err) => {
                if err.kind() == PublishErrorKind::StreamNotFound {
                    self.streams_ready.store(false, Ordering::Release);
                }
                Err(WriteError::Other(self.unreachable("publish", err)))
            }
        }
    }

    /// The claim as stored now, with its revision; `None` if there is none.
    async fn read_claim(&self) -> Result<Option<(u64, Option<ClaimRecord>)>, EngineError> {
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

    /// The stream's last sequence and creation time.
    async fn stream_state(&self) -> Result<(u64, i128), EngineError> {
        let context = self.ready().await?;
        let stream = context
            .get_stream(&self.names.stream)
            .await
            .map_err(|err| self.unreachable("stream info", err))?;
        let info = stream.cached_info();
        Ok((
            info.state.last_sequence,
            info.created.unix_timestamp_nanos(),
        ))
    }

    /// After a refused or unanswered write: is the claim still `holder`'s, and what is the
    /// stream's last sequence now? The sequence is read *before* the claim, so every write
    /// up to it happened while the claim was still ours (a takeover leaves a foreign claim
    /// record behind for good), and a write expecting it fails if a takeover came since.
    async fn resync(&self, holder: &mut Holder) -> Result<(), EngineError> {
        let (last, _) = self.stream_state().await?;
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

    /// The offset after the last record of `epoch` in the output, if its last message is
    /// of that epoch.
    async fn written_up_to(&self, epoch: u64) -> Result<Option<u64>, EngineError> {
        let context = self.ready().await?;
        let stream = context
            .get_stream_no_info(&self.names.stream)
            .await
            .map_err(|err| self.unreachable("stream", err))?;
        let message = match stream
            .get_last_raw_message_by_subject(&self.names.out)
            .await
        {
            Ok(message) => message,
            Err(err)
                if err.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                return Ok(None)
            }
            Err(err) => return Err(self.unreachable("output", err)),
        };
        let (Some(its_epoch), Some(offset)) = (
            header_u64(&message.headers, EPOCH_HEADER),
            header_u64(&message.headers, OFFSET_HEADER),
        ) else {
            return Ok(None);
        };
        if its_epoch != epoch {
            return Ok(None);
        }
        let count = records::unpack(message.payload).map_or(0, |r| r.len() as u64);
        Ok(Some(offset + count))
    }

    async fn acquire_now(
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
    fn expired(&self, seq: u64, lease_ms: u64) -> bool {
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

    async fn renew_now(&self, claim: &Claim, lease: Duration) -> Result<(), EngineError> {
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

    async fn release_now(&self, claim: &Claim) -> Result<(), EngineError> {
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

    async fn append_now(
        &self,
        claim: &Claim,
        first: u64,
        records: Vec<Bytes>,
    ) -> Result<(), EngineError> {
        let mut guard = self.holder.lock().await;
        let holder = held(&mut guard, claim)?;
        let chunks = records::chunks(&records, MAX_PACKED);
        // Records before `done` are in the stream (a retry of an append whose answer was
        // lost finds them there and writes nothing again).
        let already = |holder: &Holder| {
            usize::try_from(holder.written_end.saturating_sub(first))
                .unwrap_or(usize::MAX)
                .min(records.len())
        };
        let mut done = already(holder);
        let mut attempts = 0;
        while let Some(range) = chunks.iter().find(|r| r.end > done).cloned() {
            let range = done.max(range.start)..range.end;
            let offset = first + range.start as u64;
            let mut headers = HeaderMap::new();
            headers.insert(EXPECTED_LAST_SEQUENCE, holder.last_seq.to_string().as_str());
            headers.insert(EPOCH_HEADER, holder.epoch.to_string().as_str());
            headers.insert(OFFSET_HEADER, offset.to_string().as_str());
            match self
                .write(
                    &self.names.out,
                    headers,
                    records::pack(&records[range.clone()]),
                )
                .await
            {
                Ok(seq) => {
                    holder.last_seq = seq;
                    holder.written_end = first + range.end as u64;
                    done = range.end;
                }
                Err(WriteError::WrongLast) if attempts < 3 => {
                    attempts += 1;
                    if let Err(err) = self.resync(holder).await {
                        if err == EngineError::Fenced {
                            *guard = None;
                        }
                        return Err(err);
                    }
                    if let Some(end) = self.written_up_to(holder.epoch).await? {
                        holder.written_end = holder.written_end.max(end);
                    }
                    done = already(holder);
                }
                Err(WriteError::WrongLast) => {
                    return Err(EngineError::Unreachable(
                        "NATS: the output stream kept moving under its writer".into(),
                    ))
                }
                Err(WriteError::Other(err)) => return Err(err),
            }
        }
        Ok(())
    }

    async fn read_now(
        &self,
        after: Position,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Record>, EngineError> {
        let mut reader = self.reader.lock().await;
        let continuing = reader.last.is_some_and(|(position, _)| position == after);
        if !continuing {
            reader.pending.clear();
            reader.messages = None;
        }
        let mut out: Vec<Record> = Vec::new();
        while out.len() < max {
            match reader.pending.pop_front() {
                Some(record) => out.push(record),
                None => break,
            }
        }
        if !out.is_empty() {
            if let Some(last) = out.last() {
                let seq = reader.last.map_or(0, |(_, seq)| seq);
                reader.last = Some((last.position, seq));
            }
            return Ok(out);
        }
        // The server may have lost its data (restarted without its store): start over in
        // the new stream, where every position is after `after` (epochs grow from the floor).
        // (Checked when there is no consumer yet or the last read found nothing: a busy
        // stream costs no extra request per read.)
        let mut reset = false;
        if reader.messages.is_none() || reader.idle {
            let (last_seq, created) = self.stream_state().await?;
            reset = reader.created.is_some_and(|stamp| stamp != created)
                || reader.last.is_some_and(|(_, seq)| seq > last_seq);
            reader.created = Some(created);
        }
        let connection = self.connections.load(Ordering::Acquire);
        if reader.connection != connection {
            // Reconnected since the consumer was made: it may be gone on the server.
            reader.messages = None;
            reader.connection = connection;
        }
        if reset {
            reader.messages = None;
            reader.last = None;
        }
        if reader.messages.is_none() {
            let start = match reader.last {
                Some((_, seq)) if continuing && !reset => seq + 1,
                _ => 1,
            };
            let context = self.ready().await?;
            let stream = context
                .get_stream_no_info(&self.names.stream)
                .await
                .map_err(|err| self.unreachable("stream", err))?;
            let messages = stream
                .create_consumer(pull::OrderedConfig {
                    filter_subject: self.names.out.clone(),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: start.max(1),
                    },
                    ..Default::default()
                })
                .await
                .map_err(|err| self.unreachable("consumer", err))?
                .messages()
                .await
                .map_err(|err| self.unreachable("consumer", err))?;
            reader.messages = Some(messages);
        }
        let deadline = tokio::time::Instant::now() + wait;
        reader.idle = false;
        loop {
            let Some(messages) = reader.messages.as_mut() else {
                return Ok(Vec::new());
            };
            let next = if out.is_empty() {
                match tokio::time::timeout_at(deadline, messages.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        reader.idle = true;
                        return Ok(Vec::new());
                    }
                }
            } else {
                match messages.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(err)) => {
                    reader.messages = None;
                    if out.is_empty() {
                        return Err(self.unreachable("read", err));
                    }
                    break;
                }
                None => {
                    reader.messages = None;
                    break;
                }
            };
            let seq = message.info().map_or(0, |info| info.stream_sequence);
            let (Some(epoch), Some(offset)) = (
                header_u64_opt(message.headers.as_ref(), EPOCH_HEADER),
                header_u64_opt(message.headers.as_ref(), OFFSET_HEADER),
            ) else {
                continue;
            };
            let Some(records) = records::unpack(message.payload.clone()) else {
                continue;
            };
            for (i, data) in records.into_iter().enumerate() {
                let position = Position {
                    epoch,
                    offset: offset + i as u64,
                };
                if position <= after {
                    continue;
                }
                let record = Record { position, data };
                if out.len() < max {
                    out.push(record);
                } else {
                    reader.pending.push_back(record);
                }
            }
            let last_position = out.last().map(|r| r.position).unwrap_or(after);
            reader.last = Some((last_position, seq));
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    async fn last_now(&self, count: usize) -> Result<Vec<Record>, EngineError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let context = self.ready().await?;
        let stream = context
            .get_stream(&self.names.stream)
            .await
            .map_err(|err| self.unreachable("stream info", err))?;
        let info = stream.cached_info();
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        if last == 0 {
            return Ok(Vec::new());
        }
        let mut span = count as u64 + 16;
        loop {
            let start = last.saturating_sub(span - 1).max(first).max(1);
            let records = self.scan(&stream, start, last).await?;
            if records.len() >= count || start <= first {
                let skip = records.len().saturating_sub(count);
                return Ok(records.into_iter().skip(skip).collect());
            }
            span = span.saturating_mul(4);
        }
    }

    /// The output records in stream sequences `start..=end`.
    async fn scan(
        &self,
        stream: &stream::Stream<stream::Info>,
        start: u64,
        end: u64,
    ) -> Result<Vec<Record>, EngineError> {
        let mut messages = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.names.out.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ..Default::default()
            })
            .await
            .map_err(|err| self.unreachable("consumer", err))?
            .messages()
            .await
            .map_err(|err| self.unreachable("consumer", err))?;
        let mut out = Vec::new();
        loop {
            // Nothing more within a moment: the sequences up to `end` were claim records.
            let next = match tokio::time::timeout(Duration::from_millis(200), messages.next()).await
            {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(err))) => return Err(self.unreachable("read", err)),
                Ok(None) | Err(_) => return Ok(out),
            };
            let info = next.info().map_err(|err| self.unreachable("read", err))?;
            let seq = info.stream_sequence;
            let pending = info.pending;
            if let (Some(epoch), Some(offset), Some(records)) = (
                header_u64_opt(next.headers.as_ref(), EPOCH_HEADER),
                header_u64_opt(next.headers.as_ref(), OFFSET_HEADER),
                records::unpack(next.payload.clone()),
            ) {
                for (i, data) in records.into_iter().enumerate() {
                    out.push(Record {
                        position: Position {
                            epoch,
                            offset: offset + i as u64,
                        },
                        data,
                    });
                }
            }
            if seq >= end || pending == 0 {
                return Ok(out);
            }
        }
    }

    async fn push_input_now(&self, input: Bytes) -> Result<(), EngineError> {
        match self.write(&self.names.input, HeaderMap::new(), input).await {
            Ok(_) => Ok(()),
            Err(WriteError::WrongLast) => {
                Err(EngineError::Unreachable("NATS: input refused".into()))
            }
            Err(WriteError::Other(err)) => Err(err),
        }
    }

    async fn take_input_now(
        &self,
        claim: &Claim,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Bytes>, EngineError> {
        {
            let mut guard = self.holder.lock().await;
            held(&mut guard, claim)?;
        }
        // The claim as the server has it, just before taking.
        match self.read_claim().await? {
            Some((_, Some(record)))
                if !record.released
                    && record.token == claim.token
                    && record.epoch == claim.epoch => {}
            _ => return Err(EngineError::Fenced),
        }
        self.ready().await?;
        let consumer = self.input.lock().await.clone();
        let Some(consumer) = consumer else {
            return Err(EngineError::Unreachable("NATS: no input consumer".into()));
        };
        let mut out = Vec::new();
        let mut batch = consumer
            .fetch()
            .max_messages(max.max(1))
            .messages()
            .await
            .map_err(|err| self.unreachable("input", err))?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|err| self.unreachable("input", err))?;
            let _ = message.ack().await;
            out.push(message.payload.clone());
        }
        if !out.is_empty() || wait.is_zero() {
            return Ok(out);
        }
        // Nothing waiting: one pull that the server holds open until an input arrives or
        // `wait` passes (never given up on earlier, so no input is delivered to nobody).
        let mut batch = consumer
            .batch()
            .max_messages(1)
            .expires(wait.max(Duration::from_millis(10)))
            .messages()
            .await
            .map_err(|err| self.unreachable("input", err))?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|err| self.unreachable("input", err))?;
            let _ = message.ack().await;
            out.push(message.payload.clone());
        }
        Ok(out)
    }
}

/// The holder state if `claim` is what this instance holds; `Fenced` otherwise.
fn held<'a>(guard: &'a mut Option<Holder>, claim: &Claim) -> Result<&'a mut Holder, EngineError> {
    match guard.as_mut() {
        Some(holder) if holder.token == claim.token && holder.epoch == claim.epoch => Ok(holder),
        _ => Err(EngineError::Fenced),
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name).and_then(|v| v.as_str().parse().ok())
}

fn header_u64_opt(headers: Option<&HeaderMap>, name: &str) -> Option<u64> {
    headers.and_then(|h| header_u64(h, name))
}

/// Time allowed for one claim operation: a quarter of the lease, at most
/// [`REQUEST_TIMEOUT`].
fn claim_limit(lease: Duration) -> Duration {
    (lease / 4).min(REQUEST_TIMEOUT)
}

impl Engine for NatsEngine {
    fn acquire(
        &self,
        token: &str,
        floor: u64,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Option<Claim>, EngineError>> {
        let token = token.to_string();
        async move {
            self.bounded(claim_limit(lease), self.acquire_now(&token, floor, lease))
                .await
        }
        .boxed()
    }

    fn renew(&self, claim: &Claim, lease: Duration) -> BoxFuture<'_, Result<(), EngineError>> {
        let claim = claim.clone();
        async move {
            self.bounded(claim_limit(lease), self.renew_now(&claim, lease))
                .await
        }
        .boxed()
    }

    fn release(&self, claim: &Claim) -> BoxFuture<'_, Result<(), EngineError>> {
        let claim = claim.clone();
        async move {
            self.bounded(REQUEST_TIMEOUT, self.release_now(&claim))
                .await
        }
        .boxed()
    }

    fn append(
        &self,
        claim: &Claim,
        first: u64,
        records: Vec<Bytes>,
    ) -> BoxFuture<'_, Result<(), EngineError>> {
        let claim = claim.clone();
        async move {
            self.bounded(REQUEST_TIMEOUT, self.append_now(&claim, first, records))
                .await
        }
        .boxed()
    }

    fn read(
        &self,
        after: Position,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Record>, EngineError>> {
        async move {
            self.bounded(
                wait + REQUEST_TIMEOUT,
                self.read_now(after, max.max(1), wait),
            )
            .await
        }
        .boxed()
    }

    fn last(&self, count: usize) -> BoxFuture<'_, Result<Vec<Record>, EngineError>> {
        async move {
            self.bounded(REQUEST_TIMEOUT * 2, self.last_now(count))
                .await
        }
        .boxed()
    }

    fn push_input(&self, input: Bytes) -> BoxFuture<'_, Result<(), EngineError>> {
        async move {
            self.bounded(REQUEST_TIMEOUT, self.push_input_now(input))
                .await
        }
        .boxed()
    }

    fn take_input(
        &self,
        claim: &Claim,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Bytes>, EngineError>> {
        let claim = claim.clone();
        async move {
            self.bounded(
                wait + REQUEST_TIMEOUT,
                self.take_input_now(&claim, max, wait),
            )
            .await
        }
        .boxed()
    }
}
