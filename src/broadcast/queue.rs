//! Local fan-out: one bounded queue per client, a replay window, and the rule that a
//! client that falls behind is dropped rather than slowing anyone else (or, lossless,
//! that the publisher waits for the slowest client). Every bus delivers through this.

use super::bus::{Batch, Close, Position};
use crate::ws::prepared::PreparedFrames;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Messages that may wait for one client in lossless mode before the publisher waits.
const LOSSLESS_WINDOW: usize = 1024;
/// A client whose socket is not full may fall this many times further behind: a burst of
/// output, a moment without CPU for its writer, or its handshake still being completed
/// (it joins before its 101 goes out, so it sees a program it starts from the first line)
/// is not a slow client. Memory stays bounded all the same.
const SLACK: usize = 8;

/// What a client's writer takes from its queue.
#[derive(Debug)]
pub enum Next {
    /// Frames to write, in order (moved into the caller's vector).
    Frames,
    /// The client fell too far behind: close it with 1013.
    TooSlow,
    /// The stream ended: close with this, after everything queued before it.
    End(Close),
}

#[derive(Debug, Default)]
struct QueueState {
    frames: VecDeque<PreparedFrames>,
    messages: usize,
    end: Option<Close>,
    too_slow: bool,
    gone: bool,
    /// The writer found the socket full and is waiting for it.
    blocked: bool,
}

/// One client's queue of messages not yet handed to its socket.
#[derive(Debug, Default)]
pub struct ClientQueue {
    state: Mutex<QueueState>,
    /// Wakes the client's writer.
    wake: Notify,
    /// Wakes a lossless publisher waiting for room.
    room: Notify,
}

/// The result of offering frames to a queue.
#[derive(Debug, PartialEq, Eq)]
enum Offer {
    Queued,
    /// Lossless and full: try again when there is room.
    Full,
    /// Dropped: the client is gone, ended or too slow.
    Dropped,
}

impl ClientQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `count` messages. Lossy (`limit` given): a client with more than `limit`
    /// messages waiting becomes too slow. Lossless: full means wait.
    fn offer(&self, frames: &PreparedFrames, count: usize, limit: Option<usize>) -> Offer {
        let mut state = self.lock();
        if state.gone || state.too_slow || state.end.is_some() {
            return Offer::Dropped;
        }
        let mut bound = limit.unwrap_or(LOSSLESS_WINDOW);
        if !state.blocked {
            bound = bound.saturating_mul(SLACK);
        }
        let fits = state.messages == 0 || state.messages + count <= bound;
        if !fits {
            if limit.is_none() {
                return Offer::Full;
            }
            state.too_slow = true;
            state.frames.clear();
            state.messages = 0;
            drop(state);
            self.wake.notify_one();
            return Offer::Dropped;
        }
        state.frames.push_back(frames.clone());
        state.messages += count;
        drop(state);
        self.wake.notify_one();
        Offer::Queued
    }

    fn end(&self, close: Close) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(close);
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Whether the writer is waiting for a full socket: only then does the bound apply in
    /// full.
    pub fn set_blocked(&self, blocked: bool) {
        self.lock().blocked = blocked;
    }

    /// Marks the client as gone: nothing more is queued for it.
    pub fn close(&self) {
        let mut state = self.lock();
        state.gone = true;
        state.frames = VecDeque::new();
        state.messages = 0;
        drop(state);
        self.room.notify_one();
    }

    /// Waits for what the writer should do next; frames are moved into `out`.
    /// Safe to cancel.
    pub async fn next(&self, out: &mut Vec<PreparedFrames>) -> Next {
        loop {
            {
                let mut state = self.lock();
                if state.too_slow {
                    return Next::TooSlow;
                }
                if !state.frames.is_empty() {
                    out.extend(state.frames.drain(..));
                    state.messages = 0;
                    if state.frames.capacity() > 64 {
                        state.frames = VecDeque::new();
                    }
                    drop(state);
                    self.room.notify_one();
                    return Next::Frames;
                }
                if let Some(close) = &state.end {
                    return Next::End(close.clone());
                }
            }
            self.wake.notified().await;
        }
    }

    /// Completes when the client has been found too slow. Safe to cancel.
    pub async fn too_slow(&self) {
        loop {
            if self.lock().too_slow {
                return;
            }
            self.wake.notified().await;
        }
    }
}

/// A client's place in a fan-out.
#[derive(Debug)]
pub struct Subscription {
    /// Identifies the subscriber within its fan-out.
    pub key: u64,
    /// Its queue.
    pub queue: Arc<ClientQueue>,
}

/// The subscribers of one stream and the replay window.
#[derive(Debug)]
pub struct FanOut {
    members: Mutex<Members>,
    /// `--maxqueue`; `None` is lossless.
    limit: Option<usize>,
    /// Messages kept for clients that join.
    replay_window: usize,
    next_key: AtomicU64,
}

#[derive(Debug, Default)]
struct Members {
    /// Each subscriber with the epoch it joined at.
    queues: HashMap<u64, (u64, Arc<ClientQueue>)>,
    replay: VecDeque<PreparedFrames>,
    last: Option<Position>,
}

impl FanOut {
    /// A fan-out with `limit` messages per client (`None`: lossless) keeping the last
    /// `replay_window` messages.
    pub fn new(limit: Option<usize>, replay_window: usize) -> FanOut {
        FanOut {
            members: Mutex::new(Members::default()),
            limit,
            replay_window,
            next_key: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Members> {
        self.members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a subscriber for the program at `epoch` and later ones; it first receives
    /// the last `replay` messages kept.
    pub fn subscribe(&self, epoch: u64, replay: usize) -> Subscription {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(ClientQueue::default());
        let mut members = self.lock();
        let skip = members.replay.len().saturating_sub(replay);
        {
            let mut state = queue.lock();
            for frames in members.replay.iter().skip(skip) {
                state.frames.push_back(frames.clone());
                state.messages += 1;
            }
        }
        members.queues.insert(key, (epoch, queue.clone()));
        Subscription { key, queue }
    }

    /// Removes a subscriber.
    pub fn unsubscribe(&self, key: u64) {
        if let Some((_, queue)) = self.lock().queues.remove(&key) {
            queue.close();
        }
    }

    /// Delivers a batch at `position` to every subscriber; a batch at or before the last
    /// delivered position is a duplicate and dropped. Lossless: waits for room.
    pub async fn publish(&self, position: Position, batch: &Batch) {
        let waiting: Vec<Arc<ClientQueue>> = {
            let mut members = self.lock();
            if members.last.is_some_and(|last| position <= last) {
                return;
            }
            members.last = Some(Position {
                epoch: position.epoch,
                offset: position.offset + batch.count().max(1) as u64 - 1,
            });
            if self.replay_window > 0 {
                for message in batch.messages() {
                    if members.replay.len() == self.replay_window {
                        members.replay.pop_front();
                    }
                    members.replay.push_back(message);
                }
            }
            members
                .queues
                .values()
                .filter(|(joined, queue)| {
                    *joined <= position.epoch
                        && queue.offer(&batch.frames, batch.count(), self.limit) == Offer::Full
                })
                .map(|(_, queue)| queue.clone())
                .collect()
        };
        for queue in waiting {
            loop {
                let room = queue.room.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                if queue.offer(&batch.frames, batch.count(), None) != Offer::Full {
                    break;
                }
                room.await;
            }
        }
    }

    /// Ends the stream for every subscriber that joined at `epoch` or before (they are
    /// removed) and empties the replay window.
    pub fn finish(&self, epoch: u64, close: &Close) {
        let mut members = self.lock();
        members.queues.retain(|_, (joined, queue)| {
            if *joined > epoch {
                return true;
            }
            queue.end(close.clone());
            false
        });
        members.replay.clear();
    }

    /// How many clients are subscribed.
    pub fn len(&self) -> usize {
        self.lock().queues.len()
    }

    /// Whether no client is subscribed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn batch(lines: &[&str]) -> Batch {
        let mut out = BytesMut::new();
        let mut ends = Vec::new();
        for line in lines {
            PreparedFrames::encode_message(&mut out, false, line.as_bytes());
            ends.push(out.len());
        }
        Batch {
            frames: PreparedFrames::from_encoded(out.freeze()),
            ends,
        }
    }

    fn at(offset: u64) -> Position {
        Position { epoch: 1, offset }
    }

    async fn drain(queue: &ClientQueue) -> (usize, Next) {
        let mut out = Vec::new();
        let next = queue.next(&mut out).await;
        (out.iter().map(PreparedFrames::len).sum(), next)
    }

    #[tokio::test]
    async fn slow_clients_are_dropped_others_keep_receiving() {
        let fan = FanOut::new(Some(3), 0);
        let slow = fan.subscribe(1, 0).queue;
        let fast = fan.subscribe(1, 0).queue;
        slow.set_blocked(true);
        fast.set_blocked(true);
        for i in 0..4 {
            fan.publish(at(i), &batch(&["x"])).await;
            let (bytes, _) = drain(&fast).await;
            assert_eq!(bytes, 3);
        }
        assert!(matches!(drain(&slow).await.1, Next::TooSlow));
    }

    #[tokio::test]
    async fn replay_gives_the_latest_messages_and_duplicates_are_dropped() {
        let fan = FanOut::new(Some(100), 2);
        fan.publish(at(0), &batch(&["a", "b", "c"])).await;
        fan.publish(at(1), &batch(&["dup"])).await;
        let late = fan.subscribe(1, 5).queue;
        let mut out = Vec::new();
        assert!(matches!(late.next(&mut out).await, Next::Frames));
        let bytes: Vec<u8> = out.iter().flat_map(|f| f.bytes().to_vec()).collect();
        assert_eq!(bytes, b"\x81\x01b\x81\x01c");
        fan.finish(
            1,
            &Close {
                code: 1000,
                reason: String::new(),
            },
        );
        assert!(matches!(late.next(&mut out).await, Next::End(c) if c.code == 1000));
        assert!(fan.is_empty());
    }

    #[tokio::test]
    async fn only_a_client_with_a_full_socket_gets_the_strict_bound() {
        let fan = FanOut::new(Some(2), 0);
        let joining = fan.subscribe(1, 0).queue;
        for i in 0..2 * SLACK as u64 {
            fan.publish(at(i), &batch(&["x"])).await;
        }
        assert!(matches!(drain(&joining).await.1, Next::Frames));
        joining.set_blocked(true);
        for i in 100..103 {
            fan.publish(at(i), &batch(&["x"])).await;
        }
        assert!(matches!(drain(&joining).await.1, Next::TooSlow));
    }

    #[tokio::test]
    async fn lossless_publisher_waits_for_room() {
        let fan = Arc::new(FanOut::new(None, 0));
        let queue = fan.subscribe(1, 0).queue;
        queue.set_blocked(true);
        let big: Vec<String> = (0..LOSSLESS_WINDOW).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = big.iter().map(String::as_str).collect();
        fan.publish(at(0), &batch(&refs)).await;
        let publisher = tokio::spawn({
            let fan = fan.clone();
            async move { fan.publish(at(5000), &batch(&["more"])).await }
        });
        tokio::task::yield_now().await;
        assert!(!publisher.is_finished());
        assert!(matches!(drain(&queue).await.1, Next::Frames));
        tokio::time::timeout(std::time::Duration::from_secs(5), publisher)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(drain(&queue).await.0, 6);
    }
}
