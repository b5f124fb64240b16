//! The bus inside one daemon: the runner publishes straight into the local fan-out, and
//! client input reaches the runner through a bounded channel.

use super::bus::{Batch, Bus, Close, Fenced, Input, Position};
use super::queue::{FanOut, Subscription};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, Mutex};

/// Client inputs that may wait for the program before clients wait in turn.
const INPUT_BACKLOG: usize = 256;

/// A bus that never leaves the daemon.
#[derive(Debug)]
pub struct LocalBus {
    fan_out: FanOut,
    offset: AtomicU64,
    input_tx: mpsc::Sender<Input>,
    input_rx: Mutex<mpsc::Receiver<Input>>,
}

impl LocalBus {
    /// A bus with `limit` queued messages per client (`None`: lossless) and a replay
    /// window of `replay` messages.
    pub fn new(limit: Option<usize>, replay: usize) -> LocalBus {
        let (input_tx, input_rx) = mpsc::channel(INPUT_BACKLOG);
        LocalBus {
            fan_out: FanOut::new(limit, replay),
            offset: AtomicU64::new(0),
            input_tx,
            input_rx: Mutex::new(input_rx),
        }
    }
}

impl Bus for LocalBus {
    fn publish(&self, epoch: u64, batch: Batch) -> BoxFuture<'_, Result<(), Fenced>> {
        async move {
            let count = batch.count() as u64;
            let offset = self.offset.fetch_add(count, Ordering::Relaxed);
            self.fan_out
                .publish(Position { epoch, offset }, &batch)
                .await;
            Ok(())
        }
        .boxed()
    }

    fn finish(&self, epoch: u64, close: Close) -> BoxFuture<'_, Result<(), Fenced>> {
        self.fan_out.finish(epoch, &close);
        std::future::ready(Ok(())).boxed()
    }

    fn subscribe(&self, epoch: u64, replay: usize) -> Subscription {
        self.fan_out.subscribe(epoch, replay)
    }

    fn unsubscribe(&self, subscription: &Subscription) {
        self.fan_out.unsubscribe(subscription.key);
    }

    fn send_input(&self, input: Input) -> BoxFuture<'_, ()> {
        async move {
            // The receiver lives as long as the bus: sending fails only at teardown.
            let _ = self.input_tx.send(input).await;
        }
        .boxed()
    }

    fn next_input(&self) -> BoxFuture<'_, Option<Input>> {
        async move { self.input_rx.lock().await.recv().await }.boxed()
    }
}
