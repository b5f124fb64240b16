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
