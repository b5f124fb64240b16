//! The bus between a shared program and its clients. The program's runner publishes
//! framed messages to it, clients subscribe to it, and client input travels through it to
//! the runner. The local bus does this inside one daemon; a cluster bus (Redis streams,
//! NATS JetStream) does the same between daemons, so the hub never knows which it has.

use super::queue::Subscription;
use crate::ws::prepared::PreparedFrames;
use futures_util::future::BoxFuture;

/// Where a message sits in a stream: the runner's epoch (it grows on every change of
/// runner and fences stale ones) and the message's offset within the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The runner's epoch.
    pub epoch: u64,
    /// The offset of the message in the stream.
    pub offset: u64,
}

/// Consecutive messages of one program, each framed once, published together.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The messages' frames, back to back.
    pub frames: PreparedFrames,
    /// Where each message ends in `frames` (so replay can keep single messages).
    pub ends: Vec<usize>,
}

impl Batch {
    /// How many messages the batch holds.
    pub fn count(&self) -> usize {
        self.ends.len()
    }

    /// The frames of each message.
    pub fn messages(&self) -> impl Iterator<Item = PreparedFrames> + '_ {
        let bytes = self.frames.bytes();
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let one = bytes.slice(start..end);
            start = end;
            PreparedFrames::from_encoded(one)
        })
    }
}

/// The close frame every client receives when the stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Close code (1000, 1011 with the exit status, 1001 on shutdown).
    pub code: u16,
    /// Close reason.
    pub reason: String,
}

/// Something a client sends to the program (`--broadcastinput`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The epoch of the program the client joined; input for another program is dropped.
    pub epoch: u64,
    /// The client's connection id.
    pub client: String,
    /// What happened.
    pub event: InputEvent,
}

/// What a client did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    /// The client connected, from this remote address.
    Join(String),
    /// A message.
    Message(bytes::Bytes),
    /// The client left.
    Leave,
}

/// The runner may no longer write to the stream (another runner took over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fenced;

/// The transport between one shared program and its clients.
pub trait Bus: Send + Sync + 'static {
    /// Runner: appends a batch of the program's messages at `epoch`. A lossless bus
    /// completes only when every subscriber has room for it.
    fn publish(&self, epoch: u64, batch: Batch) -> BoxFuture<'_, Result<(), Fenced>>;

    /// Runner: the program at `epoch` ended; every subscriber that joined it (or an
    /// earlier one) receives `close` after the messages before it, and the replay window
    /// is emptied.
    fn finish(&self, epoch: u64, close: Close) -> BoxFuture<'_, Result<(), Fenced>>;

    /// Client: joins the stream of the program at `epoch` (and of later programs, on a
    /// cluster bus); the last `replay` messages come first.
    fn subscribe(&self, epoch: u64, replay: usize) -> Subscription;

    /// Client: leaves the stream.
    fn unsubscribe(&self, subscription: &Subscription);

    /// Client: completes once a client that subscribes receives every message published
    /// after it subscribed. A local bus is always ready; a cluster bus first learns where
    /// the shared stream stands, or the daemon stops.
    fn ready_for_clients(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Client: input for the running program, in order per client. Waits while the
    /// program is behind in reading.
    fn send_input(&self, input: Input) -> BoxFuture<'_, ()>;

    /// Runner: the next client input; `None` when no more can arrive.
    fn next_input(&self) -> BoxFuture<'_, Option<Input>>;
}
