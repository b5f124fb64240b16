//! The program → client direction: reads the program's stdout (and stderr with
//! `--passstderr`) in large chunks, turns it into messages, and queues many messages per
//! socket write, flushing whenever the program has nothing more to say right now.

use super::transport::Sender;
use crate::logging::Scope;
use crate::process::lines::{json_envelope, LineBuffer};
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use std::io;
use std::time::Duration;
use tokio::net::unix::pipe;

/// Bytes requested from a pipe per read.
const READ_SIZE: usize = 64 * 1024;
/// In binary mode a read is a message, so reads (and the pipes, see [`widen_pipes`]) are
/// large enough for a program such as `cat` to pass a 128 KiB message through whole.
pub const BINARY_READ_SIZE: usize = 256 * 1024;

/// How the program's output becomes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One text message per line.
    Lines,
    /// One JSON text message per line of stdout or stderr (`--passstderr`).
    TaggedLines,
    /// One binary message per read.
    Binary,
}

/// One output pipe and the bytes read from it that are not yet messages (also read by
/// the broadcast hub).
pub(crate) struct Source {
    pub(crate) pipe: pipe::Receiver,
    pub(crate) name: &'static str,
    read_size: usize,
    pub(crate) lines: LineBuffer,
    pub(crate) eof: bool,
}

impl Source {
    pub(crate) fn new(pipe: pipe::Receiver, name: &'static str) -> Source {
        Source {
            pipe,
            name,
            read_size: READ_SIZE,
            lines: LineBuffer::default(),
            eof: false,
        }
    }

    /// Reads what the pipe holds right now; false when it holds nothing.
    pub(crate) fn try_fill(&mut self, scope: &Scope) -> bool {
        let buf = &mut self.lines.buf;
        if buf.capacity() - buf.len() < self.read_size / 4 {
            buf.reserve(self.read_size);
        }
        match self.pipe.try_read_buf(buf) {
            Ok(0) => {
                self.eof = true;
                scope.debug("process", &format!("Process {} closed", self.label()));
                true
            }
            Ok(_) => true,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if buf.is_empty() {
                    // Idle: give the buffer back so quiet connections stay small.
                    *buf = BytesMut::new();
                }
                false
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => true,
            Err(err) if crate::process::pty::is_hangup(&err) => {
                // A terminal's end of output: every byte written has been read.
                self.eof = true;
                scope.debug("process", &format!("Process {} closed", self.label()));
                true
            }
            Err(err) => {
                scope.error(
                    "process",
                    &format!(
                        "Unexpected error while reading {} from process: {err}",
                        self.label()
                    ),
                );
                self.eof = true;
                true
            }
        }
    }

    fn label(&self) -> &'static str {
        if self.name == "stdout" {
            "STDOUT"
        } else {
            "STDERR"
        }
    }
}

/// What woke an idle relay.
enum Woke {
    Readable,
    Ping,
    Control,
}

/// How the output direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputEnd {
    /// The program closed its output; everything it wrote was delivered (or discarded
    /// because the client had gone).
    Eof,
}

/// The program → client relay. Its state lives here, so `run` can be cancelled and called
/// again without losing output.
pub struct OutputRelay {
    sources: Vec<Source>,
    framing: Framing,
    max_line: Option<usize>,
    sending: bool,
    queued: bool,
    ping_every: Option<Duration>,
    ping: Option<tokio::time::Interval>,
    scope: Scope,
}

impl OutputRelay {
    /// A relay for the program's stdout, plus stderr when it is to be forwarded.
    pub fn new(
        stdout: pipe::Receiver,
        stderr: Option<pipe::Receiver>,
        framing: Framing,
        max_line: Option<usize>,
        ping_every: Option<Duration>,
        scope: Scope,
    ) -> OutputRelay {
        let mut sources = vec![Source::new(stdout, "stdout")];
        if framing == Framing::Binary {
            sources[0].read_size = BINARY_READ_SIZE;
        }
        if let Some(stderr) = stderr {
            sources.push(Source::new(stderr, "stderr"));
        }
        OutputRelay {
            sources,
            framing,
            max_line,
            sending: true,
            queued: false,
            ping_every,
            ping: ping_every.map(|every| {
                let mut timer =
                    tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                timer
            }),
            scope,
        }
    }

    /// From now on output is read and dropped (the client is gone or being closed).
    pub fn stop_sending(&mut self) {
        self.sending = false;
        self.ping = None;
    }

    /// Relays until the program's output ends. Cancel-safe.
    pub async fn run(&mut self, tx: &mut Sender) -> OutputEnd {
        loop {
            // Pings go out on time even while the program writes without pause.
            let due = self
                .ping
                .as_mut()
                .is_some_and(|timer| timer.tick().now_or_never().is_some());
            if due {
                self.ping(tx).await;
            }
            for index in 0..self.sources.len() {
                self.deliver_lines(index, tx).await;
            }
            if self.sources.iter().all(|s| s.eof) {
                for index in 0..self.sources.len() {
                    if let Some(rest) = self.sources[index].lines.take_rest() {
                        self.deliver(index, rest.bytes, tx).await;
                    }
                }
                self.flush(tx).await;
                return OutputEnd::Eof;
            }
            let mut progressed = false;
            for source in self.sources.iter_mut().filter(|s| !s.eof) {
                progressed |= source.try_fill(&self.scope);
            }
            if progressed {
                // Reads that never block must still let the rest of the session (the
                // ladder, the other direction) run.
                tokio::task::coop::consume_budget().await;
                continue;
            }
            self.flush(tx).await;
            let ping_tick = async {
                match self.ping.as_mut() {
                    Some(timer) => {
                        timer.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let woke = tokio::select! {
                _ = readable(&self.sources) => Woke::Readable,
                () = ping_tick => Woke::Ping,
                () = tx.control_wanted() => Woke::Control,
            };
            match woke {
                Woke::Readable => {}
                Woke::Ping => self.ping(tx).await,
                // A pong or close reply the client is owed.
                Woke::Control => {
                    if tx.flush().await.is_err() {
                        self.sending = false;
                    }
                }
            }
        }
    }

    /// Sends a ping, bounded by the ping interval; as upstream, pinging stops at the first
    /// failure.
    async fn ping(&mut self, tx: &mut Sender) {
        let every = self.ping_every.unwrap_or(Duration::from_secs(1));
        let sent = tokio::time::timeout(every, tx.ping()).await;
        if !matches!(sent, Ok(Ok(()))) {
            self.ping = None;
        }
    }

    /// Sends every complete line (or, in binary mode, every chunk) buffered for a source.
    async fn deliver_lines(&mut self, index: usize, tx: &mut Sender) {
        loop {
            if self.sending && tx.ready().await.is_err() {
                self.sending = false;
            }
            let source = &mut self.sources[index];
            let message = if self.framing == Framing::Binary {
                (!source.lines.buf.is_empty()).then(|| source.lines.buf.split())
            } else {
                source.lines.next_line(self.max_line).map(|line| line.bytes)
            };
            match message {
                Some(bytes) => self.queue(index, bytes, tx),
                None => return,
            }
        }
    }

    /// Sends one last message (an unterminated final line).
    async fn deliver(&mut self, index: usize, bytes: BytesMut, tx: &mut Sender) {
        if self.sending && tx.ready().await.is_err() {
            self.sending = false;
        }
        self.queue(index, bytes, tx);
    }

    fn queue(&mut self, index: usize, bytes: BytesMut, tx: &mut Sender) {
        let name = self.sources[index].name;
        if name == "stderr" {
            self.scope.error("stderr", &String::from_utf8_lossy(&bytes));
        }
        if !self.sending {
            return;
        }
        let queued = match self.framing {
            Framing::Lines => tx.queue_text(bytes.freeze()),
            Framing::TaggedLines => tx.queue_text(Bytes::from(json_envelope(name, &bytes))),
            Framing::Binary => tx.queue_binary(bytes.freeze()),
        };
        match queued {
            Ok(()) => self.queued = true,
            Err(_) => self.sending = false,
        }
    }

    async fn flush(&mut self, tx: &mut Sender) {
        if self.sending && self.queued {
            if tx.flush().await.is_err() {
                self.sending = false;
            }
            self.queued = false;
        }
    }
}

/// Binary mode: grows the program's stdin and stdout pipes to [`BINARY_READ_SIZE`] so that a
/// message written in one go can be read in one go. Best effort: the system may refuse (for
/// instance past the per-user pipe memory limit), and then the default size stays.
pub fn widen_pipes(stdin: Option<&pipe::Sender>, stdout: &pipe::Receiver) {
    use std::os::fd::AsFd;
    if let Some(stdin) = stdin {
        let _ = rustix::pipe::fcntl_setpipe_size(stdin.as_fd(), BINARY_READ_SIZE);
    }
    let _ = rustix::pipe::fcntl_setpipe_size(stdout.as_fd(), BINARY_READ_SIZE);
}

/// Waits until any source that has not ended has something to read.
pub(crate) async fn readable(sources: &[Source]) {
    let mut open = sources.iter().filter(|s| !s.eof);
    match (open.next(), open.next()) {
        (None, _) => std::future::pending().await,
        (Some(one), None) => {
            let _ = one.pipe.readable().await;
        }
        (Some(first), Some(second)) => {
            tokio::select! {
                _ = first.pipe.readable() => {}
                _ = second.pipe.readable() => {}
            }
        }
    }
}

/// Logs every line the program writes to stderr at ERROR (used without `--passstderr`).
/// Always drains, so a chatty program never blocks on its stderr.
pub async fn log_stderr(pipe: pipe::Receiver, max_line: Option<usize>, scope: Scope) {
    let mut source = Source::new(pipe, "stderr");
    loop {
        while let Some(line) = source.lines.next_line(max_line) {
            scope.error("stderr", &String::from_utf8_lossy(&line.bytes));
        }
        if source.eof {
            if let Some(rest) = source.lines.take_rest() {
                scope.error("stderr", &String::from_utf8_lossy(&rest.bytes));
            }
            return;
        }
        if source.try_fill(&scope) {
            tokio::task::coop::consume_budget().await;
        } else {
            let _ = source.pipe.readable().await;
        }
    }
}
