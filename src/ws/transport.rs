//! The WebSocket connection over the upgraded socket: framing (RFC 6455) and
//! permessage-deflate (RFC 7692), behind the few operations a session needs.
//!
//! The two halves share no lock on the data path. The receiving half hands what the client
//! is owed (a pong, a close reply) to the sending half through a small shared slot that holds
//! at most a few pongs and one close reply whatever the client sends; the sending half writes
//! them at the next frame boundary. A client that keeps sending while an owed control frame
//! cannot be written for [`CONTROL_STALL`], or that pings much faster than it reads its
//! pongs, does not read: it is dropped, not buffered.

use super::deflate::{Agreement, CompressSettings, Deflater, InflateError, Inflater};
use super::frame::{self, Header, MAX_HEADER, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING};
use super::frame::{OP_PONG, OP_TEXT};
use super::utf8::Utf8Stream;
use crate::prefixed::Prefixed;
use bytes::{Buf, Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Notify;

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Bytes asked of the socket per read at first; the buffer exists only while data is
/// waiting.
const READ_CHUNK: usize = 64 * 1024;
/// While reads keep filling all they are offered (a client sending without pause), the
/// next read asks for twice as much, up to this: several large messages then arrive in
/// one read and go to the program in one write.
const READ_CHUNK_MAX: usize = 1 << 20;
/// Largest single growth of the read buffer while a long frame arrives.
const READ_RESERVE_MAX: usize = 4 << 20;
/// Queued outgoing bytes that trigger a write even before an explicit flush.
const WRITE_BATCH: usize = 64 * 1024;
/// Payloads shorter than this are copied next to their header; longer ones are written
/// from where they are, header and payload in one vectored write.
const COPY_LIMIT: usize = 8 * 1024;
/// Gathering capacity a connection keeps between flushes.
const IDLE_STAGING: usize = 4 * 1024;
/// Buffers handed to one vectored write.
const MAX_SLICES: usize = 64;
/// Pongs owed at most; more pings while these wait are answered by the last one only.
const MAX_PONGS: usize = 32;
/// Over a [`CONTROL_STALL`] window, a client whose merged pings exceed this many and
/// [`MERGED_RATIO`] times the pings answered one by one is not reading.
const MERGED_MIN: u64 = 10_000;
/// See [`MERGED_MIN`].
const MERGED_RATIO: u64 = 10;
/// How long an owed pong or close reply may stay unwritten while the client keeps sending.
pub const CONTROL_STALL: Duration = Duration::from_secs(10);

/// The sending half of a WebSocket connection.
pub struct Sender {
    io: Writer,
    /// Frames ready to be written, in order.
    queue: VecDeque<Piece>,
    /// Small frames being gathered; becomes a piece when sealed.
    staging: BytesMut,
    /// Bytes of the queue's first piece already written.
    written: usize,
    /// The last piece written ended inside a frame (its payload is the next piece).
    mid_frame: bool,
    queued: usize,
    deflate: Option<Deflater>,
    shared: Arc<Shared>,
    /// A close frame is queued or written: no more messages.
    closed: bool,
    /// The socket failed.
    failed: bool,
}

struct Piece {
    data: Bytes,
    ends_frame: bool,
}

/// The receiving half of a WebSocket connection.
pub struct Receiver {
    io: Reader,
    buf: BytesMut,
    /// Bytes the frame being read needs in `buf`.
    want: usize,
    /// Bytes the next read asks for (between [`READ_CHUNK`] and [`READ_CHUNK_MAX`]).
    chunk: usize,
    max: usize,
    message: Option<Partial>,
    inflate: Option<Inflater>,
    shared: Arc<Shared>,
    /// The client sent its close frame: nothing more is read.
    close_received: bool,
    /// The connection ended or failed: every later call answers `Gone`.
    done: bool,
}

/// A fragmented or compressed message being assembled.
struct Partial {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
    utf8: Utf8Stream,
}

/// What the receiving half owes the client, waiting for the sending half.
struct Shared {
    pending: AtomicBool,
    control: Mutex<Control>,
    wake: Notify,
}

#[derive(Default)]
struct Control {
    /// Payloads of unanswered pings, oldest first. Beyond [`MAX_PONGS`] the latest replaces
    /// the newest queued one (RFC 6455 lets a pong answer only the most recent ping).
    pongs: VecDeque<Bytes>,
    /// The close frame payload to echo.
    close_reply: Option<Bytes>,
    /// Since when something has been owed.
    owed_since: Option<Instant>,
    /// Our close frame (first or in reply) is queued: nothing more is owed.
    close_sent: bool,
    /// Pings answered individually and pings whose pong was merged into a later one, since
    /// `window_start`: a client that does not read gets almost none of its pongs written.
    answered: u64,
    merged: u64,
    window_start: Option<Instant>,
}

impl Shared {
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }
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
    /// A ping (its answer is on its way).
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
    /// The socket failed, closed without a closing handshake, or the client stopped reading.
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

fn protocol(why: impl std::fmt::Display) -> Failure {
    Failure::Protocol(why.to_string())
}

/// How a connection frames messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Largest inbound message, whole after reassembly and decompression (`--maxframesize`).
    pub max_message: Option<usize>,
    /// permessage-deflate, when it was negotiated.
    pub compression: Option<(CompressSettings, Agreement)>,
}

/// Starts WebSocket framing on an upgraded connection.
pub fn accept(io: Upgraded, options: Options) -> (Sender, Receiver) {
    let (reader, writer, early) = split(io);
    let (reader, writer): (Reader, Writer) = (reader, writer);
    from_halves(reader, writer, early, options)
}

/// Starts WebSocket framing on an upgraded connection that is sent prepared frames only
/// (broadcast): messages are framed once and shared by every connection.
pub async fn accept_prepared(
    io: Upgraded,
    max_message: Option<usize>,
) -> (super::prepared::PreparedSender, Receiver) {
    let options = Options {
        max_message,
        compression: None,
    };
    let (sender, receiver) = accept(io, options);
    (super::prepared::PreparedSender::new(sender), receiver)
}

/// Frames over any pair of halves; `early` holds bytes already read from the client.
pub fn from_halves(
    reader: Reader,
    writer: Writer,
    early: Bytes,
    options: Options,
) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        pending: AtomicBool::new(false),
        control: Mutex::new(Control::default()),
        wake: Notify::new(),
    });
    let (deflate, inflate) = match &options.compression {
        Some((settings, agreement)) => (
            Some(Deflater::new(*settings, agreement)),
            Some(Inflater::new(agreement)),
        ),
        None => (None, None),
    };
    let sender = Sender {
        io: writer,
        queue: VecDeque::new(),
        staging: BytesMut::new(),
        written: 0,
        mid_frame: false,
        queued: 0,
        deflate,
        shared: shared.clone(),
        closed: false,
        failed: false,
    };
    let receiver = Receiver {
        io: reader,
        buf: BytesMut::from(&early[..]),
        want: 0,
        chunk: READ_CHUNK,
        max: options.max_message.unwrap_or(usize::MAX),
        message: None,
        inflate,
        shared,
        close_received: false,
        done: false,
    };
    (sender, receiver)
}

/// Splits the connection. TCP and Unix sockets (as accepted, or behind the few bytes read
/// to tell HTTP/2 from HTTP/1) split into independent halves; other streams (TLS) share one
/// state machine and go through tokio's split.
fn split(io: Upgraded) -> (Reader, Writer, Bytes) {
    let io = match io.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => return halves(parts.io.into_inner().into_split(), parts.read_buf),
        Err(io) => io,
    };
    let io = match io.downcast::<TokioIo<Prefixed<TcpStream>>>() {
        Ok(parts) => {
            let (stream, unread) = parts.io.into_inner().into_parts();
            return halves(stream.into_split(), in_order(&unread, parts.read_buf));
        }
        Err(io) => io,
    };
    let io = match io.downcast::<TokioIo<UnixStream>>() {
        Ok(parts) => return halves(parts.io.into_inner().into_split(), parts.read_buf),
        Err(io) => io,
    };
    let io = match io.downcast::<TokioIo<Prefixed<UnixStream>>>() {
        Ok(parts) => {
            let (stream, unread) = parts.io.into_inner().into_parts();
            return halves(stream.into_split(), in_order(&unread, parts.read_buf));
        }
        Err(io) => io,
    };
    let (r, w) = tokio::io::split(TokioIo::new(io));
    (Box::new(r), Box::new(w), Bytes::new())
}

fn halves<R, W>((r, w): (R, W), early: Bytes) -> (Reader, Writer, Bytes)
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    (Box::new(r), Box::new(w), early)
}

/// Bytes already read from the client: those still put back in front of the stream come
/// before those the HTTP parser read ahead.
fn in_order(unread: &[u8], read_ahead: Bytes) -> Bytes {
    if unread.is_empty() {
        return read_ahead;
    }
    let mut all = BytesMut::from(unread);
    all.extend_from_slice(&read_ahead);
    all.freeze()
}

/// Appends a whole frame (header and payload) to the gathering buffer; returns its size.
fn stage(staging: &mut BytesMut, opcode: u8, rsv1: bool, payload: &[u8]) -> usize {
    let mut header = [0u8; MAX_HEADER];
    let n = frame::encode(&mut header, true, rsv1, opcode, payload.len());
    staging.reserve(n + payload.len());
    staging.extend_from_slice(&header[..n]);
    staging.extend_from_slice(payload);
    n + payload.len()
}

impl Sender {
    /// Waits until another message can be queued (the queue is written while it is full, and
    /// owed control frames go out). Safe to cancel: nothing is lost.
    pub async fn ready(&mut self) -> Result<(), Closed> {
        if self.queued >= WRITE_BATCH || self.shared.pending.load(Ordering::Acquire) {
            self.write_queued().await?;
        }
        if self.closed || self.failed {
            return Err(Closed);
        }
        Ok(())
    }

    /// Queues a text message; the bytes are sent as they are (they must be UTF-8 for a
    /// conforming client). Call after [`Sender::ready`].
    pub fn queue_text(&mut self, payload: Bytes) -> Result<(), Closed> {
        self.queue_message(OP_TEXT, payload)
    }

    /// Queues a binary message. Call after [`Sender::ready`].
    pub fn queue_binary(&mut self, payload: Bytes) -> Result<(), Closed> {
        self.queue_message(OP_BINARY, payload)
    }

    fn queue_message(&mut self, opcode: u8, payload: Bytes) -> Result<(), Closed> {
        if self.closed || self.failed {
            return Err(Closed);
        }
        crate::metrics::message_out(payload.len());
        match self.deflate.as_mut().and_then(|d| d.compress(&payload)) {
            // Short compressed payloads go from the compressor's scratch buffer straight
            // next to their header: nothing is allocated per message.
            Some(smaller) if smaller.as_slice().len() < COPY_LIMIT => {
                self.queued += stage(&mut self.staging, opcode, true, smaller.as_slice());
            }
            Some(smaller) => {
                let payload = smaller.into_bytes();
                self.queue_frame(opcode, true, payload);
            }
            None => self.queue_frame(opcode, false, payload),
        }
        Ok(())
    }

    fn queue_frame(&mut self, opcode: u8, rsv1: bool, payload: Bytes) {
        if payload.len() < COPY_LIMIT {
            self.queued += stage(&mut self.staging, opcode, rsv1, &payload);
        } else {
            let mut header = [0u8; MAX_HEADER];
            let n = frame::encode(&mut header, true, rsv1, opcode, payload.len());
            self.staging.extend_from_slice(&header[..n]);
            self.queued += n + payload.len();
            self.seal(false);
            self.queue.push_back(Piece {
                data: payload,
                ends_frame: true,
            });
        }
    }

    /// Moves the gathered small frames to the queue.
    fn seal(&mut self, ends_frame: bool) {
        if !self.staging.is_empty() {
            let data = self.staging.split().freeze();
            self.queue.push_back(Piece { data, ends_frame });
        }
    }

    /// Writes complete frames encoded elsewhere (broadcast's prepared frames, shared by
    /// every connection), after whatever is queued. Only for connections without extensions.
    pub async fn send_encoded(
        &mut self,
        frames: impl IntoIterator<Item = Bytes>,
    ) -> Result<(), Closed> {
        if self.closed || self.failed {
            return Err(Closed);
        }
        self.seal(true);
        for data in frames.into_iter().filter(|f| !f.is_empty()) {
            self.queued += data.len();
            self.queue.push_back(Piece {
                data,
                ends_frame: true,
            });
        }
        self.flush().await
    }

    /// Writes everything queued to the socket.
    pub async fn flush(&mut self) -> Result<(), Closed> {
        self.write_queued().await?;
        if let Some(deflate) = self.deflate.as_mut() {
            deflate.idle();
        }
        // A large gathering buffer is not kept by a connection that has nothing to send.
        if self.staging.capacity() > IDLE_STAGING {
            self.staging = BytesMut::new();
        }
        if self.failed {
            return Err(Closed);
        }
        Ok(())
    }

    /// Completes when the receiving half has queued a pong or close reply for the client;
    /// [`Sender::flush`] then writes it. Safe to cancel.
    pub fn control_wanted(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        let failed = self.failed;
        async move {
            if failed {
                return std::future::pending().await;
            }
            loop {
                let notified = shared.wake.notified();
                if shared.pending.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        }
    }

    /// Sends a ping with an empty payload.
    pub async fn ping(&mut self) -> Result<(), Closed> {
        if self.closed || self.failed {
            return Err(Closed);
        }
        self.queue_frame(OP_PING, false, Bytes::new());
        self.flush().await
    }

    /// Starts the closing handshake with `code` and `reason` (or answers the client's, if it
    /// started it and no answer was sent yet).
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), Closed> {
        if self.closed || self.failed {
            return Err(Closed);
        }
        {
            let mut control = self.shared.control();
            control.close_sent = true;
            control.close_reply = None;
        }
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.queue_frame(OP_CLOSE, false, Bytes::from(payload));
        self.closed = true;
        self.write_queued().await?;
        if self.failed {
            return Err(Closed);
        }
        crate::metrics::close_sent(code);
        Ok(())
    }

    /// Puts owed control frames first in the queue; only at a frame boundary.
    fn take_control(&mut self) {
        if self.written != 0 || self.mid_frame {
            return;
        }
        let (pongs, close) = {
            let mut control = self.shared.control();
            self.shared.pending.store(false, Ordering::Release);
            control.owed_since = None;
            let close = control.close_reply.take();
            if close.is_some() {
                control.close_sent = true;
            }
            control.answered += control.pongs.len() as u64;
            (std::mem::take(&mut control.pongs), close)
        };
        let mut frames = BytesMut::new();
        let mut header = [0u8; MAX_HEADER];
        for pong in pongs {
            if !self.closed {
                let n = frame::encode(&mut header, true, false, OP_PONG, pong.len());
                frames.extend_from_slice(&header[..n]);
                frames.extend_from_slice(&pong);
            }
        }
        if let Some(close) = close {
            if !self.closed {
                let n = frame::encode(&mut header, true, false, OP_CLOSE, close.len());
                frames.extend_from_slice(&header[..n]);
                frames.extend_from_slice(&close);
                // Nothing follows a close frame.
                self.closed = true;
                self.queue.clear();
                self.staging.clear();
                self.queued = 0;
            }
        }
        if !frames.is_empty() {
            self.queued += frames.len();
            self.queue.push_front(Piece {
                data: frames.freeze(),
                ends_frame: true,
            });
        }
    }

    async fn write_queued(&mut self) -> Result<(), Closed> {
        loop {
            if self.failed {
                return Err(Closed);
            }
            if self.shared.pending.load(Ordering::Acquire) {
                self.take_control();
            }
            self.seal(true);
            if self.queue.is_empty() {
                return Ok(());
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (i, piece) in self.queue.iter().take(MAX_SLICES).enumerate() {
                let skip = if i == 0 { self.written } else { 0 };
                slices[i] = IoSlice::new(&piece.data[skip..]);
                count += 1;
            }
            let written = match self.io.write_vectored(&slices[..count]).await {
                Ok(0) | Err(_) => {
                    self.failed = true;
                    self.queue.clear();
                    self.staging.clear();
                    self.queued = 0;
                    return Err(Closed);
                }
                Ok(n) => n,
            };
            self.advance(written);
        }
    }

    fn advance(&mut self, mut n: usize) {
        self.queued = self.queued.saturating_sub(n);
        while n > 0 {
            let Some(front) = self.queue.front() else {
                return;
            };
            let left = front.data.len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.mid_frame = !front.ends_frame;
            self.written = 0;
            self.queue.pop_front();
        }
    }
}

impl Receiver {
    /// The next event from the client. Pings are answered by the sending half.
    pub async fn next(&mut self) -> Incoming {
        loop {
            // After the client's close frame nothing more is read: the reply is on its way
            // and the server is the side that hangs up.
            if self.done || self.close_received {
                return Incoming::Gone;
            }
            match self.decode() {
                Ok(Some(event)) => return event,
                Ok(None) => {}
                Err(failure) => {
                    self.done = true;
                    return Incoming::Failed(failure);
                }
            }
            match self.fill().await {
                Ok(0) => {
                    self.done = true;
                    return Incoming::Failed(Failure::Io(
                        "connection closed without a closing handshake".into(),
                    ));
                }
                Ok(_) => {}
                Err(err) => {
                    self.done = true;
                    return Incoming::Failed(Failure::Io(err.to_string()));
                }
            }
        }
    }

    /// Reads more from the socket into the buffer. While nothing arrives and no frame is
    /// half read, the buffer (and an idle decompressor) is released.
    async fn fill(&mut self) -> io::Result<usize> {
        poll_fn(|cx| {
            let need = self.want.saturating_sub(self.buf.len());
            let spare = self.buf.capacity() - self.buf.len();
            if spare < self.chunk / 4 || spare < need {
                self.buf.reserve(need.clamp(self.chunk, READ_RESERVE_MAX));
            }
            let offered = self.buf.capacity() - self.buf.len();
            let mid_frame = !self.buf.is_empty();
            let polled = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf);
            match &polled {
                Poll::Ready(Ok(n)) if *n == offered => {
                    self.chunk = (self.chunk * 2).min(READ_CHUNK_MAX);
                }
                // A short read that starts a frame: the client is no longer streaming.
                Poll::Ready(Ok(n)) if *n < READ_CHUNK / 4 && !mid_frame => self.chunk = READ_CHUNK,
                Poll::Pending if self.buf.is_empty() => {
                    self.buf = BytesMut::new();
                    if self.message.is_none() {
                        if let Some(inflate) = self.inflate.as_mut() {
                            inflate.idle();
                        }
                    }
                }
                _ => {}
            }
            polled
        })
        .await
    }

    /// Takes every complete frame from the buffer until one makes an event.
    fn decode(&mut self) -> Result<Option<Incoming>, Failure> {
        loop {
            let Some(header) = frame::parse(&self.buf).map_err(protocol)? else {
                self.want = MAX_HEADER;
                return Ok(None);
            };
            self.check(&header)?;
            let total = header.header_len as u64 + header.len;
            if (self.buf.len() as u64) < total {
                self.want = usize::try_from(total).unwrap_or(usize::MAX);
                return Ok(None);
            }
            self.want = 0;
            let total = total as usize;
            let mut payload = self.buf.split_to(total);
            payload.advance(header.header_len);
            frame::apply_mask(&mut payload, header.mask);
            if let Some(event) = self.frame(&header, payload)? {
                return Ok(Some(event));
            }
        }
    }

    /// The rules a header must follow given what came before; checked before its payload
    /// is read.
    fn check(&self, header: &Header) -> Result<(), Failure> {
        self.check_stall()?;
        if header.is_control() {
            return if header.rsv1 {
                Err(protocol("reserved bits are non-zero"))
            } else {
                Ok(())
            };
        }
        if header.len > self.max as u64 {
            return Err(Failure::TooBig);
        }
        match (&self.message, header.opcode) {
            (None, OP_CONTINUATION) => Err(protocol("continuation frame but nothing to continue")),
            (Some(_), OP_TEXT | OP_BINARY) => Err(protocol("expected a continuation frame")),
            (Some(_), _) if header.rsv1 => Err(protocol("reserved bits are non-zero")),
            (Some(partial), _) if !partial.compressed => {
                if header.len > (self.max - partial.data.len()) as u64 {
                    Err(Failure::TooBig)
                } else {
                    Ok(())
                }
            }
            (None, _) if header.rsv1 && self.inflate.is_none() => {
                Err(protocol("reserved bits are non-zero"))
            }
            _ => Ok(()),
        }
    }

    /// A client that keeps sending while what it is owed cannot be written does not read;
    /// nor does one that pings so much faster than its pongs can be written that nearly all
    /// of them are merged (the socket takes a trickle, so writes never stop for long).
    fn check_stall(&self) -> Result<(), Failure> {
        if !self.shared.pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut control = self.shared.control();
        if control
            .owed_since
            .is_some_and(|since| since.elapsed() > CONTROL_STALL)
        {
            return Err(Failure::Io("client does not read".into()));
        }
        let now = Instant::now();
        let start = *control.window_start.get_or_insert(now);
        if now.duration_since(start) > CONTROL_STALL {
            let (merged, answered) = (control.merged, control.answered);
            (control.merged, control.answered, control.window_start) = (0, 0, Some(now));
            if merged > MERGED_MIN && merged > answered.saturating_mul(MERGED_RATIO) {
                return Err(Failure::Io("client does not read its pongs".into()));
            }
        }
        Ok(())
    }

    fn frame(&mut self, header: &Header, payload: BytesMut) -> Result<Option<Incoming>, Failure> {
        match header.opcode {
            OP_PING => {
                self.owe(|control| {
                    if control.pongs.len() == MAX_PONGS {
                        control.pongs.pop_back();
                        control.merged += 1;
                    }
                    control.pongs.push_back(payload.freeze());
                });
                Ok(Some(Incoming::Ping))
            }
            OP_PONG => Ok(Some(Incoming::Pong)),
            OP_CLOSE => self.close(payload.freeze()).map(Some),
            OP_TEXT | OP_BINARY if header.fin && !header.rsv1 => {
                let payload = payload.freeze();
                if header.opcode == OP_BINARY {
                    crate::metrics::message_in(payload.len());
                    return Ok(Some(Incoming::Binary(payload)));
                }
                if std::str::from_utf8(&payload).is_err() {
                    return Err(Failure::InvalidUtf8);
                }
                crate::metrics::message_in(payload.len());
                Ok(Some(Incoming::Text(payload)))
            }
            _ => self.fragment(header, &payload),
        }
    }

    /// Adds a frame to the message being assembled (decompressing it if need be).
    fn fragment(&mut self, header: &Header, payload: &[u8]) -> Result<Option<Incoming>, Failure> {
        let mut partial = self.message.take().unwrap_or_else(|| Partial {
            text: header.opcode == OP_TEXT,
            compressed: header.rsv1,
            data: Vec::new(),
            utf8: Utf8Stream::default(),
        });
        let before = partial.data.len();
        if partial.compressed {
            let Some(inflate) = self.inflate.as_mut() else {
                return Err(protocol("reserved bits are non-zero"));
            };
            inflate
                .inflate(payload, header.fin, &mut partial.data, self.max)
                .map_err(|err| match err {
                    InflateError::TooBig => Failure::TooBig,
                    InflateError::Corrupt => protocol("invalid compressed data"),
                })?;
        } else {
            partial.data.extend_from_slice(payload);
        }
        if partial.text {
            partial
                .utf8
                .feed(&partial.data[before..], header.fin)
                .map_err(|_| Failure::InvalidUtf8)?;
        }
        if !header.fin {
            self.message = Some(partial);
            return Ok(None);
        }
        let data = Bytes::from(partial.data);
        crate::metrics::message_in(data.len());
        Ok(Some(if partial.text {
            Incoming::Text(data)
        } else {
            Incoming::Binary(data)
        }))
    }

    fn close(&mut self, payload: Bytes) -> Result<Incoming, Failure> {
        let code = match payload.len() {
            0 => None,
            1 => return Err(protocol("invalid close frame")),
            _ => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                if !frame::close_code_allowed(code) {
                    return Err(protocol(format!("invalid close code {code}")));
                }
                if std::str::from_utf8(&payload[2..]).is_err() {
                    return Err(Failure::InvalidUtf8);
                }
                Some(code)
            }
        };
        self.close_received = true;
        self.message = None;
        self.owe(|control| control.close_reply = Some(payload));
        Ok(Incoming::Close(code))
    }

    /// Records a control frame the client is owed and wakes the sending half.
    fn owe(&self, record: impl FnOnce(&mut Control)) {
        let mut control = self.shared.control();
        if control.close_sent {
            return;
        }
        record(&mut control);
        control.owed_since.get_or_insert_with(Instant::now);
        self.shared.pending.store(true, Ordering::Release);
        drop(control);
        self.shared.wake.notify_one();
    }
}
