//! The supervisor of one running script: relays the script's output into the response,
//! feeds the request body to its stdin, and decides how the run ends: by waiting for the
//! script to exit, or, when the client went away, by ending its process group. It holds
//! the fork slot until the script has been reaped.

use super::headers::{self, HeadReader, Progress};
use super::note;
use crate::forks::ForkSlot;
use crate::http::response::Body;
use crate::logging::Scope;
use crate::process::ladder;
use crate::process::Child;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use hyper::{Response, StatusCode};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

/// Size of one read from the script's stdout (one body frame at most).
const CHUNK: usize = 16 * 1024;
/// How long a script whose client went away gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_millis(500);

/// A script that has just been started, and what its run needs.
pub(super) struct Launch {
    /// The script's process (its PID is also its process group ID).
    pub child: Child,
    /// Write end of its stdin.
    pub stdin: pipe::Sender,
    /// Read end of its stdout.
    pub stdout: pipe::Receiver,
    /// The request body, for its stdin.
    pub body: Incoming,
    /// The fork slot the run holds.
    pub slot: ForkSlot,
    /// The request's log scope.
    pub scope: Scope,
    /// Whether the request is a HEAD (its response body is dropped unread).
    pub head_only: bool,
}

/// Starts the supervisor of `launch`. The receiver yields the response head once the
/// script has written its header block, or `None` when its output cannot become a
/// response (the caller answers 500). Dropping the receiver, or later the response
/// body, before the script is done ends the script's process group.
pub(super) fn start(launch: Launch) -> oneshot::Receiver<Option<Reply>> {
    let Launch {
        child,
        stdin,
        stdout,
        body,
        slot,
        scope,
        head_only,
    } = launch;
    let run = Run {
        child,
        feeder: AbortOnDrop(tokio::spawn(feed(body, stdin))),
        slot,
        scope,
        head_only,
    };
    let (head_tx, head_rx) = oneshot::channel();
    tokio::spawn(run.supervise(stdout, head_tx));
    head_rx
}

/// The response head the supervisor hands to `serve`.
pub(super) struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: mpsc::Receiver<io::Result<Bytes>>,
}

impl Reply {
    /// The response: the script's status and headers, its output streamed as the body.
    pub(super) fn into_response(self) -> Response<Body> {
        let mut response = Response::new(ChannelBody(self.body).boxed());
        *response.status_mut() = self.status;
        let map = response.headers_mut();
        for (name, value) in self.headers {
            map.append(name, value);
        }
        response
    }
}

/// How the relay of the script's output ended.
enum Ending {
    /// The script closed its stdout: wait for it to exit, then end the response body
    /// (held here), so that the client sees the end only once the slot is free again.
    Finished(Option<mpsc::Sender<io::Result<Bytes>>>),
    /// The output was unusable (a 500 was sent): stop feeding it, wait for it to exit.
    Failed,
    /// The client went away first: end the script's process group.
    Abandoned,
}

/// One running script and what it holds until it has exited.
struct Run {
    child: Child,
    feeder: AbortOnDrop,
    slot: ForkSlot,
    scope: Scope,
    head_only: bool,
}

impl Run {
    /// Relays the output, then ends or waits for the script; frees the slot at the end.
    async fn supervise(mut self, stdout: pipe::Receiver, head_tx: oneshot::Sender<Option<Reply>>) {
        let mut guard = GroupGuard(Some(self.child.id()));
        let ending = self.relay(stdout, head_tx).await;
        let mut body_end = None;
        let status = match ending {
            Ending::Finished(tx) => {
                body_end = tx;
                self.child.wait().await.ok()
            }
            Ending::Failed => {
                drop(self.feeder);
                self.child.wait().await.ok()
            }
            Ending::Abandoned => {
                drop(self.feeder);
                match ladder::terminate_group(&mut self.child, TERM_GRACE, &self.scope).await {
                    Some(status) => Some(status),
                    None => self.child.wait().await.ok(),
                }
            }
        };
        guard.0 = None;
        if let Some(status) = status {
            self.scope
                .debug("process", &format!("Process exit: {status}"));
        }
        drop(self.slot);
        drop(body_end);
    }

    /// Reads the header block, replies with the head (or `None` for a 500), then forwards
    /// each read of the body.
    async fn relay(
        &self,
        mut stdout: pipe::Receiver,
        mut head_tx: oneshot::Sender<Option<Reply>>,
    ) -> Ending {
        let mut reader = HeadReader::new();
        let mut buf = vec![0u8; CHUNK];
        let (head, rest) = loop {
            let read = tokio::select! {
                _ = head_tx.closed() => return Ending::Abandoned,
                read = stdout.read(&mut buf) => read,
            };
            let progress = match read {
                Ok(0) => Err(headers::HeadError::NoHeaders.message()),
                Ok(n) => reader.push(&buf[..n]).map_err(|err| err.message()),
                Err(err) => Err(format!("cgi: error reading headers: {err}")),
            };
            match progress {
                Ok(Progress::More) => {}
                Ok(Progress::Done { head, rest }) => break (head, rest),
                Err(message) => {
                    note(&message);
                    let _ = head_tx.send(None);
                    return Ending::Failed;
                }
            }
        };
        for message in &head.notes {
            note(message);
        }
        // hyper drops the response body without the client having gone when the response
        // carries no body, or once a length the script declared has been sent.
        let bodiless = self.head_only
            || head.status == StatusCode::NO_CONTENT
            || head.status == StatusCode::NOT_MODIFIED;
        let declared: Option<u64> = head
            .headers
            .iter()
            .find(|(name, _)| name == CONTENT_LENGTH)
            .and_then(|(_, value)| value.to_str().ok()?.trim().parse().ok());
        let complete = |sent: u64| bodiless || declared.is_some_and(|length| sent >= length);
        let mut sent = 0;
        let (tx, rx) = mpsc::channel(1);
        if !rest.is_empty() {
            sent += rest.len() as u64;
            let _ = tx.try_send(Ok(Bytes::from(rest)));
        }
        let reply = Reply {
            status: head.status,
            headers: head.headers,
            body: rx,
        };
        if head_tx.send(Some(reply)).is_err() {
            return Ending::Abandoned;
        }
        loop {
            let mut chunk = BytesMut::with_capacity(CHUNK);
            let read = tokio::select! {
                _ = tx.closed() => None,
                read = stdout.read_buf(&mut chunk) => Some(read),
            };
            let delivered = match read {
                Some(Ok(0)) => return Ending::Finished(Some(tx)),
                Some(Ok(n)) => {
                    sent += n as u64;
                    tx.send(Ok(chunk.freeze())).await.is_ok()
                }
                Some(Err(err)) => {
                    note(&format!("cgi: copy error: {err}"));
                    let _ = tx.send(Err(err)).await;
                    return Ending::Abandoned;
                }
                None => false,
            };
            if !delivered {
                return if complete(sent) {
                    drain(&mut stdout).await
                } else {
                    Ending::Abandoned
                };
            }
        }
    }
}

/// Reads and discards the rest of the output, once hyper no longer wants the body (a
/// response without one, or one whose declared length has been sent).
async fn drain(stdout: &mut pipe::Receiver) -> Ending {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match stdout.read(&mut buf).await {
            Ok(0) => return Ending::Finished(None),
            Ok(_) => {}
            Err(_) => return Ending::Abandoned,
        }
    }
}

/// Copies the request body to the script's stdin as it arrives, then closes stdin. Stops
/// early when the client's body fails or the script no longer reads.
async fn feed(mut body: Incoming, mut stdin: pipe::Sender) {
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return };
        if let Ok(data) = frame.into_data() {
            if stdin.write_all(&data).await.is_err() {
                return;
            }
        }
    }
}

/// The response body: the chunks the supervisor forwards from the script's stdout.
struct ChannelBody(mpsc::Receiver<io::Result<Bytes>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|result| result.map(Frame::data)))
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Kills the script's process group if the supervisor is dropped before reaping it.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            ladder::kill_group_now(pid);
        }
    }
}
