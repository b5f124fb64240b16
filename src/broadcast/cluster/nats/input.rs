//! Client input on NATS: any instance publishes to the input stream; the claim's holder
//! pulls from its one durable consumer, each input delivered at most once.

use super::{held, NatsEngine, WriteError};
use crate::broadcast::cluster::engine::{Claim, EngineError};
use async_nats::jetstream::consumer::pull;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;

impl NatsEngine {
    /// Publishes one input to the input stream.
    pub(super) async fn push_input_now(&self, input: Bytes) -> Result<(), EngineError> {
        match self.write(&self.names.input, HeaderMap::new(), input).await {
            Ok(_) => Ok(()),
            Err(WriteError::WrongLast) => {
                Err(EngineError::Unreachable("NATS: input refused".into()))
            }
            Err(WriteError::Other(err)) => Err(err),
        }
    }

    /// Pulls inputs for the holder of `claim`.
    pub(super) async fn take_input_now(
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
        let waiting = consumer.fetch().max_messages(max.max(1)).messages().await;
        let out = self.drain(waiting).await?;
        if !out.is_empty() || wait.is_zero() {
            return Ok(out);
        }
        // Nothing waiting: one pull that the server holds open until an input arrives or
        // `wait` passes (never given up on earlier, so no input is delivered to nobody).
        let next = consumer
            .batch()
            .max_messages(1)
            .expires(wait.max(Duration::from_millis(10)))
            .messages()
            .await;
        self.drain(next).await
    }

    /// The payloads of a pull's messages, each acknowledged (it is never delivered again).
    async fn drain(
        &self,
        batch: Result<pull::Batch, pull::BatchError>,
    ) -> Result<Vec<Bytes>, EngineError> {
        let mut batch = batch.map_err(|err| self.unreachable("input", err))?;
        let mut out = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|err| self.unreachable("input", err))?;
            let _ = message.ack().await;
            out.push(message.payload.clone());
        }
        Ok(out)
    }
}
