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

mod claim;
mod input;
mod output;
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
use futures_util::FutureExt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Mutex, OnceCell};

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

/// Opens the engine for `key` on the NATS server of `target`, keeping at least `window`
/// (`--replay`) records; it connects on first use and reconnects by itself.
pub fn open(target: &ClusterTarget, key: &StreamKey, window: usize) -> Arc<dyn Engine> {
    Arc::new(NatsEngine::new(target.clone(), key, window))
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
    /// Output messages kept (each holds one record or more).
    window: usize,
    session: OnceCell<jetstream::Context>,
    /// The connection (see `connections`) on which the streams were last found in place;
    /// 0 after a failure. Checked again on every new connection, before anything else is
    /// asked of them.
    streams_checked: AtomicU64,
    /// Counts (re)connections: a consumer made before the latest one may be dead.
    connections: Arc<AtomicU64>,
    /// Whether the client is connected now. Nothing is sent while it is not: the client
    /// would queue it and send it the moment it reconnects, before the streams are checked
    /// (a NATS 2.9 server that is creating a stream crashes on a read of it).
    connected: Arc<watch::Sender<bool>>,
    holder: Mutex<Option<Holder>>,
    /// The claim revision seen last and when it was first seen (lease expiry).
    observed: std::sync::Mutex<Option<(u64, Instant)>>,
    reader: Mutex<Reader>,
    input: Mutex<Option<consumer::Consumer<pull::Config>>>,
}

/// Where the stream stands.
struct StreamState {
    first: u64,
    last: u64,
    /// Creation time: another value means the stream was made again (data lost).
    created: i128,
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
    fn new(target: ClusterTarget, key: &StreamKey, window: usize) -> NatsEngine {
        NatsEngine {
            target,
            names: Names::new(key),
            window: window.max(MIN_WINDOW),
            session: OnceCell::new(),
            streams_checked: AtomicU64::new(0),
            connections: Arc::new(AtomicU64::new(0)),
            connected: Arc::new(watch::Sender::new(false)),
            holder: Mutex::new(None),
            observed: std::sync::Mutex::new(None),
            reader: Mutex::new(Reader::default()),
            input: Mutex::new(None),
        }
    }

    fn unreachable(&self, what: &str, err: impl std::fmt::Display) -> EngineError {
        EngineError::Unreachable(self.target.redact(&format!("NATS {what}: {err}")))
    }

    /// `operation`, or `Unreachable` if it takes longer than `limit`. After a failure the
    /// streams are checked again before the next operation (the server may have come back
    /// without them).
    async fn bounded<T>(
        &self,
        limit: Duration,
        operation: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let result = match tokio::time::timeout(limit, operation).await {
            Ok(result) => result,
            Err(_) => Err(EngineError::Unreachable(format!(
                "NATS at {}:{} did not answer within {} ms",
                self.target.host,
                self.target.port,
                limit.as_millis()
            ))),
        };
        if matches!(result, Err(EngineError::Unreachable(_))) {
            self.streams_checked.store(0, Ordering::Release);
        }
        result
    }

    /// The JetStream context, connecting on first use (the client then reconnects by itself,
    /// with capped backoff, for the daemon's lifetime).
    async fn context(&self) -> Result<&jetstream::Context, EngineError> {
        self.session
            .get_or_try_init(|| async {
                let connections = self.connections.clone();
                let connected = self.connected.clone();
                let mut options = async_nats::ConnectOptions::new()
                    .event_callback(move |event| {
                        match event {
                            async_nats::Event::Connected => {
                                connections.fetch_add(1, Ordering::AcqRel);
                                connected.send_replace(true);
                            }
                            async_nats::Event::Disconnected => {
                                connected.send_replace(false);
                            }
                            _ => {}
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

    /// The context, once connected, with both streams and the input consumer in place
    /// (checked once per connection). Waits while the client is disconnected (the caller
    /// bounds the wait).
    async fn ready(&self) -> Result<&jetstream::Context, EngineError> {
        let context = self.context().await?;
        let _ = self.connected.subscribe().wait_for(|up| *up).await;
        let connection = self.connections.load(Ordering::Acquire);
        if self.streams_checked.load(Ordering::Acquire) == connection {
            return Ok(context);
        }
        context
            .get_or_create_stream(stream::Config {
                name: self.names.stream.clone(),
                description: Some("websocketd --cluster: runner claim and output".into()),
                subjects: vec![format!("{}>", self.names.claim.trim_end_matches("claim"))],
                max_messages_per_subject: i64::try_from(self.window).unwrap_or(i64::MAX),
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
        self.streams_checked.store(connection, Ordering::Release);
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
                    self.streams_checked.store(0, Ordering::Release);
                }
                Err(WriteError::Other(self.unreachable("publish", err)))
            }
        }
    }

    /// The stream's first and last sequences and its creation time.
    async fn stream_state(&self) -> Result<StreamState, EngineError> {
        let context = self.ready().await?;
        let stream = context
            .get_stream(&self.names.stream)
            .await
            .map_err(|err| self.unreachable("stream info", err))?;
        let info = stream.cached_info();
        Ok(StreamState {
            first: info.state.first_sequence,
            last: info.state.last_sequence,
            created: info.created.unix_timestamp_nanos(),
        })
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
            // Connecting and making the streams is not part of the claim operation's time.
            self.bounded(REQUEST_TIMEOUT, self.ready()).await?;
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
