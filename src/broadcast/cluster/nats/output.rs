//! The output on NATS: fenced appends (one message per run of records, published with the
//! stream's expected last sequence), reading from a position through an ordered consumer,
//! and the last records for replay.

use super::records::{self, EPOCH_HEADER, OFFSET_HEADER};
use super::{
    header_u64, header_u64_opt, held, Holder, NatsEngine, WriteError, EXPECTED_LAST_SEQUENCE,
    MAX_PACKED,
};
use crate::broadcast::cluster::engine::{Claim, EngineError, Position, Record};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::message::StreamMessage;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl NatsEngine {
    /// The last output message, if the stream holds one.
    async fn last_output(&self) -> Result<Option<StreamMessage>, EngineError> {
        let context = self.ready().await?;
        let stream = context
            .get_stream_no_info(&self.names.stream)
            .await
            .map_err(|err| self.unreachable("stream", err))?;
        match stream
            .get_last_raw_message_by_subject(&self.names.out)
            .await
        {
            Ok(message) => Ok(Some(message)),
            Err(err)
                if err.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok(None)
            }
            Err(err) => Err(self.unreachable("output", err)),
        }
    }

    /// The offset after the last record of `epoch` in the output, if its last message is
    /// of that epoch.
    pub(super) async fn written_up_to(&self, epoch: u64) -> Result<Option<u64>, EngineError> {
        let Some(message) = self.last_output().await? else {
            return Ok(None);
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

    /// Appends what of `records` (offsets `first`…) is not in the stream yet.
    pub(super) async fn append_now(
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

    /// Records after `after`, through the reader's ordered consumer.
    pub(super) async fn read_now(
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
        let connection = self.connections.load(Ordering::Acquire);
        if reader.connection != connection {
            // Reconnected since the consumer was made: it may be gone on the server.
            reader.messages = None;
            reader.connection = connection;
        }
        // The server may have lost its data (restarted without its store): start over in
        // the new stream, where every position is after `after` (epochs grow from the floor).
        // (Checked when there is no consumer yet or the last read found nothing: a busy
        // stream costs no extra request per read.)
        let mut reset = false;
        if reader.messages.is_none() || reader.idle {
            let state = self.stream_state().await?;
            reset = reader.created.is_some_and(|stamp| stamp != state.created)
                || reader.last.is_some_and(|(_, seq)| seq > state.last);
            reader.created = Some(state.created);
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
            let messages = self.output_from(start).await?;
            reader.messages = Some(messages);
        }
        let deadline = tokio::time::Instant::now() + wait;
        reader.idle = false;
        let mut more = false;
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
            } else if more {
                // The stream holds more already: take it too (within the wait).
                match tokio::time::timeout_at(deadline, messages.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
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
            let (seq, pending) = message
                .info()
                .map_or((0, 0), |info| (info.stream_sequence, info.pending));
            more = pending > 0;
            for record in decode(message.headers.as_ref(), message.payload.clone()) {
                if record.position <= after {
                    continue;
                }
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

    /// The last `count` records: from the last output message alone when it holds enough
    /// (one request: a reader starts at once), else scanning back from it in growing spans.
    pub(super) async fn last_now(&self, count: usize) -> Result<Vec<Record>, EngineError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let Some(message) = self.last_output().await? else {
            return Ok(Vec::new());
        };
        let newest = decode(Some(&message.headers), message.payload.clone());
        if newest.len() >= count {
            let skip = newest.len() - count;
            return Ok(newest.into_iter().skip(skip).collect());
        }
        let first = self.stream_state().await?.first;
        let last = message.sequence;
        let mut span = count as u64 + 16;
        loop {
            let start = last.saturating_sub(span - 1).max(first).max(1);
            let records = self.scan(start, last).await?;
            if records.len() >= count || start <= first {
                let skip = records.len().saturating_sub(count);
                return Ok(records.into_iter().skip(skip).collect());
            }
            span = span.saturating_mul(4);
        }
    }

    /// The output records in stream sequences `start..=end`.
    pub(super) async fn scan(&self, start: u64, end: u64) -> Result<Vec<Record>, EngineError> {
        let mut messages = self.output_from(start).await?;
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
            out.extend(decode(next.headers.as_ref(), next.payload.clone()));
            if seq >= end || pending == 0 {
                return Ok(out);
            }
        }
    }

    /// An ordered consumer of the output from stream sequence `start`.
    async fn output_from(&self, start: u64) -> Result<pull::Ordered, EngineError> {
        let context = self.ready().await?;
        let stream = context
            .get_stream_no_info(&self.names.stream)
            .await
            .map_err(|err| self.unreachable("stream", err))?;
        stream
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
            .map_err(|err| self.unreachable("consumer", err))
    }
}

/// The records of an output message (its headers and payload) with their positions; none
/// if it is not one of ours.
fn decode(headers: Option<&HeaderMap>, payload: Bytes) -> Vec<Record> {
    let (Some(epoch), Some(offset), Some(records)) = (
        header_u64_opt(headers, EPOCH_HEADER),
        header_u64_opt(headers, OFFSET_HEADER),
        records::unpack(payload),
    ) else {
        return Vec::new();
    };
    records
        .into_iter()
        .enumerate()
        .map(|(i, data)| Record {
            position: Position {
                epoch,
                offset: offset + i as u64,
            },
            data,
        })
        .collect()
}
