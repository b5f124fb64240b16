//! The WebSocket framing library, behind the few operations a session needs, so that it can
//! be replaced without touching the relay.

use super::prepared::{PreparedSender, TappedIo};
use super::readahead::ReadAhead;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::future::poll_fn;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{error::CapacityError, Error, Message};
use tokio_tungstenite::WebSocketStream;

type Stream = WebSocketStream<ReadAhead<TokioIo<Upgraded>>>;

/// The framing library's own read buffer, allocated for every connection: small, so idle
/// connections stay cheap. Large socket reads happen in [`ReadAhead`] instead.
const READ_CHUNK: usize = 4 * 1024;
/// Queued outgoing bytes that trigger a write even before an explicit flush.
const WRITE_BATCH: usize = 64 * 1024;
/// The framing library's read buffer on a prepared connection, which mostly idles: client
/// messages are rare there, and large reads still happen in [`ReadAhead`].
const PREPARED_READ_CHUNK: usize = 512;

/// The sending half of a WebSocket connection.
pub struct Sender {
    sink: SplitSink<Stream, Message>,
}

/// The receiving half of a WebSocket connection.
pub struct Receiver {
    stream: ReadSide,
}

/// Where a [`Receiver`] reads: the library's split stream, or a prepared connection's
/// (broadcast) stream whose writes are tapped.
enum ReadSide {
    Split(SplitStream<Stream>),
    Tapped(Box<WebSocketStream<TappedIo>>),
}

/// The sending side failed: the connection is gone or closing.
#[derive(Debug)]
pub struct Closed;

/// What the client sent, reduced to what the relay acts on.
#[derive(Debug)]
pub enum Incoming {
    /// A complete text message (valid UTF-8).
    Text(Bytes),
    /// A complete binary message.
    Binary(Bytes),
    /// A pong (solicited or not).
    Pong,
    /// A ping (already answered).
    Ping,
    /// The client started the closing handshake; the reply is on its way.
    Close(Option<u16>),
    /// The connection failed; the session should send this close code if it can.
    Failed(Failure),
    /// The connection is gone.
    Gone,
}

/// Why the incoming side failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A protocol violation: close with 1002 and this short reason.
    Protocol(String),
    /// Text that is not UTF-8: close with 1007.
    InvalidUtf8,
    /// A message over `--maxframesize`: close with 1009.
    TooBig,
    /// The socket failed or closed without a closing handshake.
    Io(String),
}

impl Failure {
    /// The close code to send, if any.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Failure::Protocol(_) => Some(1002),
            Failure::InvalidUtf8 => Some(1007),
            Failure::TooBig => Some(1009),
            Failure::Io(_) => None,
        }
    }
}

/// Starts WebSocket framing on an upgraded connection. `max_message` limits inbound
/// messages (whole, after reassembly).
pub async fn accept(io: Upgraded, max_message: Option<usize>) -> (Sender, Receiver) {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = READ_CHUNK;
    config.write_buffer_size = WRITE_BATCH;
    config.max_message_size = max_message;
    config.max_frame_size = max_message;
    let stream = WebSocketStream::from_raw_socket(
        ReadAhead::new(TokioIo::new(io)),
        Role::Server,
        Some(config),
    )
    .await;
    let (sink, stream) = stream.split();
    (
        Sender { sink },
        Receiver {
            stream: ReadSide::Split(stream),
        },
    )
}

/// Starts WebSocket framing on an upgraded connection that is sent prepared frames only
/// (broadcast): messages are framed once and shared by every connection.
pub async fn accept_prepared(
    io: Upgraded,
    max_message: Option<usize>,
) -> (PreparedSender, Receiver) {
    let (tapped, sender) = super::prepared::split(io);
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = PREPARED_READ_CHUNK;
    config.max_message_size = max_message;
    config.max_frame_size = max_message;
    let stream = WebSocketStream::from_raw_socket(tapped, Role::Server, Some(config)).await;
    (
        sender,
        Receiver {
            stream: ReadSide::Tapped(Box::new(stream)),
        },
    )
}

impl Sender {
    /// Waits until another message can be queued (the queue is flushed while it is full).
    /// Safe to cancel: nothing is lost.
    pub async fn ready(&mut self) -> Result<(), Closed> {
        poll_fn(|cx| self.sink.poll_ready_unpin(cx))
            .await
            .map_err(|_| Closed)
    }

    /// Queues a text message; the bytes are sent as they are. Call after [`Sender::ready`].
    pub fn queue_text(&mut self, payload: Bytes) -> Result<(), Closed> {
        crate::metrics::message_out(payload.len());
        let frame = Frame::message(payload, OpCode::Data(Data::Text), true);
        self.sink
            .start_send_unpin(Message::Frame(frame))
            .map_err(|_| Closed)
    }

    /// Queues a binary message. Call after [`Sender::ready`].
    pub fn queue_binary(&mut self, payload: Bytes) -> Result<(), Closed> {
        crate::metrics::message_out(payload.len());
        self.sink
            .start_send_unpin(Message::Binary(payload))
            .map_err(|_| Closed)
    }

    /// Writes everything queued to the socket.
    pub async fn flush(&mut self) -> Result<(), Closed> {
        self.sink.flush().await.map_err(|_| Closed)
    }

    /// Sends a ping with an empty payload.
    pub async fn ping(&mut self) -> Result<(), Closed> {
        self.sink
            .send(Message::Ping(Bytes::new()))
            .await
            .map_err(|_| Closed)
    }

    /// Starts the closing handshake with `code` and `reason`.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), Closed> {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        self.sink
            .send(Message::Close(Some(frame)))
            .await
            .map_err(|_| Closed)
            .inspect(|()| crate::metrics::close_sent(code))
    }
}

impl Receiver {
    /// The next event from the client. Pings are answered automatically.
    pub async fn next(&mut self) -> Incoming {
        let next = match &mut self.stream {
            ReadSide::Split(stream) => stream.next().await,
            ReadSide::Tapped(stream) => stream.next().await,
        };
        match next {
            None => Incoming::Gone,
            Some(Ok(message)) => match message {
                Message::Text(text) => {
                    crate::metrics::message_in(text.len());
                    Incoming::Text(Bytes::from(text))
                }
                Message::Binary(data) => {
                    crate::metrics::message_in(data.len());
                    Incoming::Binary(data)
                }
                Message::Ping(_) => Incoming::Ping,
                Message::Pong(_) => Incoming::Pong,
                Message::Close(frame) => Incoming::Close(frame.map(|f| u16::from(f.code))),
                Message::Frame(_) => Incoming::Ping,
            },
            Some(Err(err)) => match err {
                Error::ConnectionClosed | Error::AlreadyClosed => Incoming::Gone,
                Error::Utf8(_) => Incoming::Failed(Failure::InvalidUtf8),
                Error::Capacity(CapacityError::MessageTooLong { .. }) => {
                    Incoming::Failed(Failure::TooBig)
                }
                Error::Protocol(protocol) => {
                    Incoming::Failed(Failure::Protocol(protocol.to_string()))
                }
                other => Incoming::Failed(Failure::Io(other.to_string())),
            },
        }
    }
}
