//! Every instance reads its route's stream once and fans each message out to its own
//! clients through the same bounded queues as single-machine broadcast. Positions only
//! move forward, so nothing is delivered twice; the replay window is filled from the
//! stream at start.

use super::bus::{ClusterBus, RETRY_MAX, RETRY_MIN};
use super::codec::{self, Output};
use super::engine::{Record, START};
use crate::broadcast::bus::{Batch, Close, Position};
use crate::logging::{self, Level};
use crate::ws::prepared::PreparedFrames;
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;

/// Records read at once.
const READ_MAX: usize = 512;
/// How long one read waits for a record.
const READ_WAIT: Duration = Duration::from_secs(1);

/// Reads the stream until the daemon shuts down, then closes the local clients with 1001.
pub async fn read_stream(
    bus: Arc<ClusterBus>,
    replay: usize,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let work = async {
        let mut cursor = start(&bus, replay).await;
        let mut pause = RETRY_MIN;
        loop {
            match bus.engine().read(cursor, READ_MAX, READ_WAIT).await {
                Ok(records) => {
                    bus.recovered();
                    pause = RETRY_MIN;
                    deliver(&bus, records, &mut cursor).await;
                }
                Err(err) => {
                    bus.trouble(&err);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    };
    tokio::select! {
        () = work => {}
        _ = shutdown.wait_for(|stopping| *stopping) => {}
    }
    bus.fan_out.finish(
        u64::MAX,
        &Close {
            code: 1001,
            reason: String::new(),
        },
    );
}

/// The position to read after: the end of the stream, with the last `replay` records
/// delivered first (into the replay window). Retries until the engine answers.
async fn start(bus: &ClusterBus, replay: usize) -> Position {
    let mut pause = RETRY_MIN;
    loop {
        match bus.engine().last(replay.max(1)).await {
            Ok(records) => {
                bus.recovered();
                let mut cursor = START;
                if replay == 0 {
                    if let Some(record) = records.last() {
                        bus.saw_epoch(record.position.epoch);
                        cursor = record.position;
                    }
                } else {
                    deliver(bus, records, &mut cursor).await;
                }
                logging::server(
                    Level::Debug,
                    &format!(
                        "Cluster {}: reading the stream after epoch {} offset {}",
                        bus.label, cursor.epoch, cursor.offset
                    ),
                );
                bus.reading();
                return cursor;
            }
            Err(err) => {
                bus.trouble(&err);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Messages of one epoch at consecutive offsets, gathered into one batch.
struct Pending {
    start: Position,
    next: u64,
    frames: BytesMut,
    ends: Vec<usize>,
}

/// Hands `records` (oldest first) to the local clients; `cursor` moves past them.
async fn deliver(bus: &ClusterBus, records: Vec<Record>, cursor: &mut Position) {
    let mut pending: Option<Pending> = None;
    for record in records {
        let position = record.position;
        if position <= *cursor {
            continue;
        }
        if cursor.epoch == position.epoch && position.offset > cursor.offset + 1 && *cursor != START
        {
            logging::server(
                Level::Error,
                &format!(
                    "Cluster {}: {} messages left the stream before this instance read them",
                    bus.label,
                    position.offset - cursor.offset - 1
                ),
            );
        }
        *cursor = position;
        bus.saw_epoch(position.epoch);
        match codec::output(&record.data) {
            Some(Output::Message(frame)) => {
                let continues = pending
                    .as_ref()
                    .is_some_and(|p| p.start.epoch == position.epoch && p.next == position.offset);
                if !continues {
                    flush(bus, pending.take()).await;
                }
                let batch = pending.get_or_insert_with(|| Pending {
                    start: position,
                    next: position.offset,
                    frames: BytesMut::new(),
                    ends: Vec::new(),
                });
                batch.frames.extend_from_slice(&frame);
                batch.ends.push(batch.frames.len());
                batch.next = position.offset + 1;
            }
            Some(Output::End(close)) => {
                flush(bus, pending.take()).await;
                bus.fan_out.finish(position.epoch, &close);
            }
            None => {}
        }
    }
    flush(bus, pending).await;
}

async fn flush(bus: &ClusterBus, pending: Option<Pending>) {
    let Some(pending) = pending else { return };
    let batch = Batch {
        frames: PreparedFrames::from_encoded(pending.frames.freeze()),
        ends: pending.ends,
    };
    bus.fan_out.publish(pending.start, &batch).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::bus::Bus;
    use crate::broadcast::cluster::engine::{Claim, Engine, EngineError};
    use bytes::Bytes;
    use futures_util::future::BoxFuture;
    use futures_util::FutureExt;
    use tokio::sync::watch;

    /// An engine whose stream is empty and whose `last` answers only once `answer` says
    /// how (`Some(true)`: the stream's end, `Some(false)`: unreachable).
    struct SlowEngine {
        answer: watch::Receiver<Option<bool>>,
    }

    fn unused<T: Send + 'static>() -> BoxFuture<'static, Result<T, EngineError>> {
        std::future::ready(Err(EngineError::Unreachable("not used here".into()))).boxed()
    }

    impl Engine for SlowEngine {
        fn acquire(
            &self,
            _: &str,
            _: u64,
            _: Duration,
        ) -> BoxFuture<'_, Result<Option<Claim>, EngineError>> {
            unused()
        }
        fn renew(&self, _: &Claim, _: Duration) -> BoxFuture<'_, Result<(), EngineError>> {
            unused()
        }
        fn release(&self, _: &Claim) -> BoxFuture<'_, Result<(), EngineError>> {
            unused()
        }
        fn append(
            &self,
            _: &Claim,
            _: u64,
            _: Vec<Bytes>,
        ) -> BoxFuture<'_, Result<(), EngineError>> {
            unused()
        }
        fn read(
            &self,
            _: Position,
            _: usize,
            wait: Duration,
        ) -> BoxFuture<'_, Result<Vec<Record>, EngineError>> {
            async move {
                tokio::time::sleep(wait).await;
                Ok(Vec::new())
            }
            .boxed()
        }
        fn last(&self, _: usize) -> BoxFuture<'_, Result<Vec<Record>, EngineError>> {
            let mut answer = self.answer.clone();
            async move {
                let reachable = *answer
                    .wait_for(Option::is_some)
                    .await
                    .map_err(|_| EngineError::Unreachable("gone".into()))?;
                match reachable {
                    Some(true) => Ok(Vec::new()),
                    _ => Err(EngineError::Unreachable("no answer".into())),
                }
            }
            .boxed()
        }
        fn push_input(&self, _: Bytes) -> BoxFuture<'_, Result<(), EngineError>> {
            unused()
        }
        fn take_input(
            &self,
            _: &Claim,
            _: usize,
            _: Duration,
        ) -> BoxFuture<'_, Result<Vec<Bytes>, EngineError>> {
            unused()
        }
    }

    /// A bus over a [`SlowEngine`] with its reader running; the engine's answer, the
    /// daemon's shutdown switch.
    fn reading_bus() -> (
        Arc<ClusterBus>,
        watch::Sender<Option<bool>>,
        watch::Sender<bool>,
    ) {
        let (answer_tx, answer) = watch::channel(None);
        let (shutdown_tx, shutdown) = watch::channel(false);
        let bus = Arc::new(ClusterBus::new(
            Arc::new(SlowEngine { answer }),
            None,
            0,
            shutdown.clone(),
            "test".into(),
        ));
        tokio::spawn(read_stream(bus.clone(), 0, shutdown));
        (bus, answer_tx, shutdown_tx)
    }

    async fn joins_within(bus: &ClusterBus, limit: Duration) -> bool {
        tokio::time::timeout(limit, bus.ready_for_clients())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn clients_join_once_the_reader_knows_where_the_stream_stands() {
        let (bus, answer, _shutdown) = reading_bus();
        assert!(
            !joins_within(&bus, Duration::from_millis(200)).await,
            "a client joined before the reader's start was known: it could miss records"
        );
        answer.send_replace(Some(true));
        assert!(joins_within(&bus, Duration::from_secs(10)).await);
        assert!(joins_within(&bus, Duration::from_millis(10)).await);
    }

    #[tokio::test]
    async fn clients_join_at_once_while_the_engine_is_unreachable() {
        let (bus, answer, _shutdown) = reading_bus();
        answer.send_replace(Some(false));
        assert!(joins_within(&bus, Duration::from_secs(10)).await);
        // The engine answers again and the reader starts.
        bus.recovered();
        answer.send_replace(Some(true));
        assert!(joins_within(&bus, Duration::from_secs(10)).await);
    }

    #[tokio::test]
    async fn a_shutdown_ends_the_wait() {
        let (bus, _answer, shutdown) = reading_bus();
        shutdown.send_replace(true);
        assert!(joins_within(&bus, Duration::from_secs(10)).await);
    }
}
