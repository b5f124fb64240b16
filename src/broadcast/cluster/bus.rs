//! The cluster bus: the [`Bus`] a hub talks to in a cluster. The runner's output goes
//! into the engine's stream (fenced by its claim) and reaches clients — on this instance
//! like on every other — only by being read back from the stream; client input goes into
//! the engine's input stream and comes out at the runner.

use super::codec;
use super::engine::{Claim, Engine, EngineError};
use crate::broadcast::bus::{Batch, Bus, Close, Fenced, Input};
use crate::broadcast::queue::{FanOut, Subscription};
use crate::logging::{self, Level};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Client inputs taken from the engine that may wait for the program.
const INPUT_BACKLOG: usize = 256;
/// How long a client's input is retried while the engine is unreachable before it is
/// dropped (the client's further messages wait meanwhile).
const INPUT_RETRY: Duration = Duration::from_secs(5);
/// First and longest pause between retries of a failed engine request.
pub const RETRY_MIN: Duration = Duration::from_millis(50);
/// See [`RETRY_MIN`].
pub const RETRY_MAX: Duration = Duration::from_secs(2);

/// What a joining client waits for (see [`ClusterBus::ready_for_clients`]).
#[derive(Debug, Clone, Copy, Default)]
struct Gate {
    /// The reader knows the position it reads after: every record appended from now on
    /// reaches the clients subscribed now.
    reading: bool,
    /// The engine is unreachable: there is no telling when it will answer.
    unreachable: bool,
}

/// The runner's side: the claim it holds and the offset its next record gets.
#[derive(Debug, Clone)]
struct Holding {
    claim: Claim,
    next_offset: u64,
}

/// One route's bus in a cluster.
pub struct ClusterBus {
    engine: Arc<dyn Engine>,
    /// Local clients, fed by the stream reader.
    pub(super) fan_out: FanOut,
    holding: Mutex<Option<Holding>>,
    /// The highest epoch seen anywhere (claims and stream), the floor for the next claim.
    pub(super) highest_epoch: AtomicU64,
    input_tx: mpsc::Sender<Input>,
    input_rx: tokio::sync::Mutex<mpsc::Receiver<Input>>,
    shutdown: watch::Receiver<bool>,
    /// Why the engine is unreachable, for logging once per change of state.
    trouble: Mutex<Option<String>>,
    /// Whether clients may join without missing records.
    gate: watch::Sender<Gate>,
    /// The route and engine, for log lines.
    pub(super) label: String,
}

impl std::fmt::Debug for ClusterBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBus")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl ClusterBus {
    /// A bus over `engine` with `limit` queued messages per client (`None`: lossless) and
    /// a local replay window of `replay` messages.
    pub fn new(
        engine: Arc<dyn Engine>,
        limit: Option<usize>,
        replay: usize,
        shutdown: watch::Receiver<bool>,
        label: String,
    ) -> ClusterBus {
        let (input_tx, input_rx) = mpsc::channel(INPUT_BACKLOG);
        ClusterBus {
            engine,
            fan_out: FanOut::new(limit, replay),
            holding: Mutex::new(None),
            highest_epoch: AtomicU64::new(0),
            input_tx,
            input_rx: tokio::sync::Mutex::new(input_rx),
            shutdown,
            trouble: Mutex::new(None),
            gate: watch::Sender::new(Gate::default()),
            label,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    fn holding(&self) -> MutexGuard<'_, Option<Holding>> {
        self.holding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The runner took `claim`: its program may publish from now on.
    pub fn hold(&self, claim: Claim) {
        self.saw_epoch(claim.epoch);
        *self.holding() = Some(Holding {
            claim,
            next_offset: 1,
        });
    }

    /// The runner no longer holds a claim: every publish is fenced from now on.
    pub fn let_go(&self) {
        *self.holding() = None;
    }

    /// Notes an epoch seen in the stream or a claim.
    pub fn saw_epoch(&self, epoch: u64) {
        self.highest_epoch.fetch_max(epoch, Ordering::Relaxed);
    }

    /// The claim held now, if any.
    pub fn claim(&self) -> Option<Claim> {
        self.holding().as_ref().map(|h| h.claim.clone())
    }

    /// Logs that the engine became unreachable (once, until it answers again).
    pub fn trouble(&self, err: &EngineError) {
        let EngineError::Unreachable(why) = err else {
            return;
        };
        let mut trouble = self
            .trouble
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if trouble.is_none() {
            logging::server(
                Level::Error,
                &format!(
                    "Cluster {}: engine unreachable, retrying: {why}",
                    self.label
                ),
            );
            *trouble = Some(why.clone());
        }
        self.gate
            .send_if_modified(|gate| !std::mem::replace(&mut gate.unreachable, true));
    }

    /// Logs that the engine answers again (if it had not).
    pub fn recovered(&self) {
        let mut trouble = self
            .trouble
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if trouble.take().is_some() {
            logging::server(
                Level::Info,
                &format!("Cluster {}: engine reachable again", self.label),
            );
        }
        self.gate
            .send_if_modified(|gate| std::mem::replace(&mut gate.unreachable, false));
    }

    /// The reader knows where it reads from: clients may join from now on.
    pub fn reading(&self) {
        self.gate
            .send_if_modified(|gate| !std::mem::replace(&mut gate.reading, true));
    }

    /// Waits until a client that joins receives every record appended after it joined:
    /// until the reader knows the position it reads after. The reader takes the end of the
    /// stream as it finds it; a client subscribed before that could miss what was appended
    /// in between. While the engine is unreachable nobody can tell when that will be, so
    /// clients join at once and receive the records from where the reader starts.
    async fn until_reading(&self) {
        let mut gate = self.gate.subscribe();
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = gate.wait_for(|gate| gate.reading || gate.unreachable) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => {}
        }
    }

    /// Whether the daemon is shutting down.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Appends records as the runner of `epoch`, retrying while the engine is unreachable
    /// and the claim is still held; the offsets make a retry harmless.
    async fn append(&self, epoch: u64, records: Vec<bytes::Bytes>) -> Result<(), Fenced> {
        let mut pause = RETRY_MIN;
        loop {
            let Some(holding) = self.holding().clone().filter(|h| h.claim.epoch == epoch) else {
                return Err(Fenced);
            };
            let count = records.len() as u64;
            match self
                .engine
                .append(&holding.claim, holding.next_offset, records.clone())
                .await
            {
                Ok(()) => {
                    self.recovered();
                    if let Some(h) = self.holding().as_mut().filter(|h| h.claim == holding.claim) {
                        h.next_offset = holding.next_offset + count;
                    }
                    return Ok(());
                }
                Err(EngineError::Fenced) => return Err(Fenced),
                Err(err) => {
                    self.trouble(&err);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// The runner's input task while it holds `claim`: takes client input from the engine
    /// and hands it to the program (marked with the claim's epoch). Ends when the claim is
    /// lost.
    pub async fn pump_input(self: Arc<Self>, claim: Claim) {
        let mut pause = RETRY_MIN;
        loop {
            if self.claim().as_ref() != Some(&claim) {
                return;
            }
            match self
                .engine
                .take_input(&claim, INPUT_BACKLOG, Duration::from_secs(1))
                .await
            {
                Ok(inputs) => {
                    pause = RETRY_MIN;
                    for data in inputs {
                        let Some(mut input) = codec::decode_input(&data) else {
                            continue;
                        };
                        input.epoch = claim.epoch;
                        if self.input_tx.send(input).await.is_err() {
                            return;
                        }
                    }
                }
                Err(EngineError::Fenced) => return,
                Err(err) => {
                    self.trouble(&err);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

impl Bus for ClusterBus {
    fn publish(&self, epoch: u64, batch: Batch) -> BoxFuture<'_, Result<(), Fenced>> {
        let records = batch.messages().map(|m| codec::message(&m)).collect();
        self.append(epoch, records).boxed()
    }

    fn finish(&self, epoch: u64, close: Close) -> BoxFuture<'_, Result<(), Fenced>> {
        async move {
            if self.shutting_down() {
                // This instance stops; the cluster's stream goes on with another runner.
                return Ok(());
            }
            self.append(epoch, vec![codec::end(&close)]).await
        }
        .boxed()
    }

    fn subscribe(&self, epoch: u64, replay: usize) -> Subscription {
        self.fan_out.subscribe(epoch, replay)
    }

    fn unsubscribe(&self, subscription: &Subscription) {
        self.fan_out.unsubscribe(subscription.key);
    }

    fn ready_for_clients(&self) -> BoxFuture<'_, ()> {
        self.until_reading().boxed()
    }

    fn send_input(&self, input: Input) -> BoxFuture<'_, ()> {
        async move {
            let data = codec::encode_input(&input);
            let deadline = tokio::time::Instant::now() + INPUT_RETRY;
            let mut pause = RETRY_MIN;
            loop {
                match self.engine.push_input(data.clone()).await {
                    Ok(()) => return,
                    Err(err) => {
                        self.trouble(&err);
                        if tokio::time::Instant::now() + pause > deadline {
                            logging::server(
                                Level::Debug,
                                &format!("Cluster {}: client input dropped: {err}", self.label),
                            );
                            return;
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RETRY_MAX);
                    }
                }
            }
        }
        .boxed()
    }

    fn next_input(&self) -> BoxFuture<'_, Option<Input>> {
        async move { self.input_rx.lock().await.recv().await }.boxed()
    }
}
