//! One WebSocket session: relays client messages to the program's stdin and the program's
//! output to the client, in two independent directions, until either side ends; then
//! stops the program with the termination ladder and closes the connection with a code
//! that tells the client what happened.

use super::output::{log_stderr, widen_pipes, Framing, OutputEnd, OutputRelay};
use super::stdin::StdinBatch;
use super::transport::{Failure, Incoming, Receiver, Sender};
use crate::logging::Scope;
use crate::process::{self, ladder, Program};
use futures_util::FutureExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::unix::pipe;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long to wait for the client's answer to our close frame.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// How long output may keep arriving after the program's group is gone.
pub(crate) const OUTPUT_GRACE: Duration = Duration::from_millis(200);
/// Messages that have already arrived are gathered into one stdin write until the batch
/// holds this many bytes (a client sending large messages without pause: as many as one
/// socket read brought, see the transport's read size).
const BATCH_LIMIT: usize = 1 << 20;

/// Settings that shape every session.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// `--binary`.
    pub binary: bool,
    /// `--passstderr`.
    pub pass_stderr: bool,
    /// Longest output line sent as one message (`--maxframesize`).
    pub max_line: Option<usize>,
    /// `--pingms`, 0 = off.
    pub ping_ms: u64,
    /// `--closems`.
    pub close_ms: u64,
}

/// Why the client → program direction ended.
#[derive(Debug)]
enum InputEnd {
    /// The client completed or started the closing handshake.
    Closed,
    /// The connection dropped.
    Gone,
    /// The client broke the protocol; close with the failure's code.
    Failed(Failure),
    /// The program no longer reads its stdin.
    StdinClosed,
}

/// What ended the session first.
#[derive(Debug)]
enum End {
    Input(InputEnd),
    Output(OutputEnd),
    PingTimeout,
    Shutdown,
}

/// When the last pong arrived, in milliseconds since the session started.
pub(crate) struct PongClock {
    start: Instant,
    last_ms: AtomicU64,
}

impl PongClock {
    pub(crate) fn new() -> PongClock {
        PongClock {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn pong(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes when no pong arrived for `2 × ping_ms`; never when pings are off.
    pub(crate) async fn expired(&self, ping_ms: u64) {
        if ping_ms == 0 {
            return std::future::pending().await;
        }
        loop {
            let last = self.last_ms.load(Ordering::Relaxed);
            let deadline = self.start + Duration::from_millis(last + 2 * ping_ms);
            tokio::time::sleep_until(deadline).await;
            if self.last_ms.load(Ordering::Relaxed) == last {
                return;
            }
        }
    }
}

/// Runs a session to its end. The program is stopped and reaped before this returns;
/// returns its exit status when it was reaped.
pub async fn run(
    mut tx: Sender,
    mut rx: Receiver,
    program: Program,
    settings: SessionSettings,
    scope: &Scope,
    mut shutdown: watch::Receiver<bool>,
) -> Option<std::process::ExitStatus> {
    let Program {
        mut child,
        mut stdin,
        stdout,
        stderr,
    } = program;
    if settings.binary {
        widen_pipes(stdin.as_ref(), &stdout);
    }
    let framing = match (settings.binary, settings.pass_stderr) {
        (true, _) => Framing::Binary,
        (false, true) => Framing::TaggedLines,
        (false, false) => Framing::Lines,
    };
    let (forwarded_stderr, stderr_logger) = match stderr {
        Some(stderr) if settings.pass_stderr => (Some(stderr), None),
        Some(stderr) => {
            let logger = tokio::spawn(log_stderr(stderr, settings.max_line, scope.clone()));
            (None, Some(logger))
        }
        None => (None, None),
    };
    let ping_every = (settings.ping_ms > 0).then(|| Duration::from_millis(settings.ping_ms));
    let mut output = OutputRelay::new(
        stdout,
        forwarded_stderr,
        framing,
        settings.max_line,
        ping_every,
        scope.clone(),
    );
    let clock = PongClock::new();

    let end = tokio::select! {
        end = relay_input(&mut rx, &mut stdin, settings.binary, &clock, scope) => End::Input(end),
        end = output.run(&mut tx) => End::Output(end),
        () = clock.expired(settings.ping_ms) => End::PingTimeout,
        () = wait_shutdown(&mut shutdown) => End::Shutdown,
    };

    // The close frame we owe the client right away, and whether the program's output may
    // still reach it while the program is being stopped.
    let (early_close, keep_relaying): (Option<(u16, String)>, bool) = match &end {
        End::Output(_) => (None, true),
        End::Input(InputEnd::StdinClosed) => (None, true),
        End::Input(InputEnd::Closed | InputEnd::Gone) => (None, true),
        End::Input(InputEnd::Failed(failure)) => {
            let reason = match failure {
                Failure::Protocol(text) => truncate_reason(text),
                _ => String::new(),
            };
            (failure.close_code().map(|code| (code, reason)), false)
        }
        End::PingTimeout => (None, false),
        End::Shutdown => (Some((1001, String::new())), false),
    };
    if let End::Input(InputEnd::Failed(failure)) = &end {
        scope.debug("websocket", &format!("Cannot receive: {failure:?}"));
    }
    if !keep_relaying {
        output.stop_sending();
    }
    if let Some((code, reason)) = &early_close {
        let _ = tokio::time::timeout(CLOSE_WAIT, tx.close(*code, reason)).await;
    }

    let output_done = matches!(end, End::Output(_));
    let status = stop_program(
        &mut child,
        stdin.take(),
        &mut output,
        &mut tx,
        output_done,
        settings.close_ms,
        scope,
    )
    .await;
    if let Some(status) = &status {
        scope.debug(
            "process",
            &format!("Process exit: {}", process::describe(status)),
        );
    }

    // The program's side ended first (or stopped reading): tell the client how it ended.
    if matches!(end, End::Output(_) | End::Input(InputEnd::StdinClosed)) {
        let (code, reason) = exit_close(status.as_ref());
        if tokio::time::timeout(CLOSE_WAIT, tx.close(code, &reason))
            .await
            .is_ok_and(|sent| sent.is_ok())
        {
            await_close_reply(&mut rx).await;
        }
    } else if early_close.is_some() {
        await_close_reply(&mut rx).await;
    }

    if let Some(logger) = stderr_logger {
        if tokio::time::timeout(OUTPUT_GRACE, &mut Box::pin(logger))
            .await
            .is_err()
        {
            scope.debug("process", "Process STDERR still open after termination");
        }
    }
    scope.log(
        crate::logging::Level::Trace,
        "websocket",
        "Terminated websocket connection",
    );
    status
}

/// The close frame that tells a client how its program ended: 1000 for success, else
/// 1011 with `exit status N` or `signal N` (empty when the status is unknown).
pub(crate) fn exit_close(status: Option<&std::process::ExitStatus>) -> (u16, String) {
    match status {
        Some(status) if status.success() => (1000, String::new()),
        Some(status) => (1011, process::describe(status)),
        None => (1011, String::new()),
    }
}

/// Runs the termination ladder while the output relay keeps draining the program's pipes
/// (so a program blocked on a full pipe can see its stdin close and exit).
#[allow(clippy::too_many_arguments)]
async fn stop_program(
    child: &mut crate::process::Child,
    stdin: Option<pipe::Sender>,
    output: &mut OutputRelay,
    tx: &mut Sender,
    output_done: bool,
    close_ms: u64,
    scope: &Scope,
) -> Option<std::process::ExitStatus> {
    let ladder = ladder::terminate(child, stdin, close_ms, scope);
    tokio::pin!(ladder);
    if output_done {
        return ladder.await;
    }
    let status = {
        let relay = output.run(tx);
        tokio::pin!(relay);
        tokio::select! {
            status = &mut ladder => {
                // The group is gone; whatever is still in the pipes arrives promptly.
                let _ = tokio::time::timeout(OUTPUT_GRACE, &mut relay).await;
                status
            }
            _ = &mut relay => ladder.await,
        }
    };
    status
}

/// Client → program: each message becomes a line (or raw bytes in binary mode) on stdin.
/// Messages that have already arrived are gathered into one write, so a busy client costs
/// one system call per batch rather than per message.
async fn relay_input(
    rx: &mut Receiver,
    stdin: &mut Option<pipe::Sender>,
    binary: bool,
    clock: &PongClock,
    scope: &Scope,
) -> InputEnd {
    let mut batch = StdinBatch::default();
    loop {
        let event = if batch.is_empty() {
            rx.next().await
        } else {
            match rx.next().now_or_never() {
                Some(event) => event,
                None => {
                    if let Err(end) = write_batch(stdin, &mut batch, scope).await {
                        return end;
                    }
                    continue;
                }
            }
        };
        let (payload, is_text) = match event {
            Incoming::Text(text) => (text, true),
            Incoming::Binary(data) => (data, false),
            Incoming::Pong => {
                clock.pong();
                continue;
            }
            Incoming::Ping => continue,
            Incoming::Close(code) => {
                scope.debug("websocket", &format!("Cannot receive: close {code:?}"));
                // Reading once more sends the queued reply and completes the handshake.
                let _ = tokio::time::timeout(CLOSE_WAIT, rx.next()).await;
                let _ = write_batch(stdin, &mut batch, scope).await;
                return InputEnd::Closed;
            }
            Incoming::Failed(failure) => return InputEnd::Failed(failure),
            Incoming::Gone => {
                let _ = write_batch(stdin, &mut batch, scope).await;
                return InputEnd::Gone;
            }
        };
        if is_text == binary {
            let (got, want) = if binary { (1, 2) } else { (2, 1) };
            scope.debug(
                "websocket",
                &format!("Ignoring message of unexpected type {got} (want {want})"),
            );
            continue;
        }
        batch.push(payload, !binary);
        if batch.len() >= BATCH_LIMIT {
            if let Err(end) = write_batch(stdin, &mut batch, scope).await {
                return end;
            }
        }
    }
}

/// Writes the gathered messages to stdin and empties the batch.
async fn write_batch(
    stdin: &mut Option<pipe::Sender>,
    batch: &mut StdinBatch,
    scope: &Scope,
) -> Result<(), InputEnd> {
    if batch.is_empty() {
        return Ok(());
    }
    let Some(pipe) = stdin.as_mut() else {
        batch.clear();
        return Err(InputEnd::StdinClosed);
    };
    batch
        .write_to(pipe)
        .await
        .map_err(|err| stdin_failed(stdin, &err, scope))
}

fn stdin_failed(stdin: &mut Option<pipe::Sender>, err: &std::io::Error, scope: &Scope) -> InputEnd {
    scope.debug("process", &format!("Cannot write to STDIN: {err}"));
    *stdin = None;
    InputEnd::StdinClosed
}

/// Reads until the client answers our close frame or drops, for a bounded time.
pub(crate) async fn await_close_reply(rx: &mut Receiver) {
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        loop {
            match rx.next().await {
                Incoming::Close(_) | Incoming::Gone | Incoming::Failed(_) => return,
                _ => {}
            }
        }
    })
    .await;
}

/// Completes when the server starts shutting down.
async fn wait_shutdown(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Close reasons are limited to 123 bytes; cut at a character boundary.
pub(crate) fn truncate_reason(text: &str) -> String {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::truncate_reason;

    #[test]
    fn reasons_fit_a_control_frame() {
        assert_eq!(truncate_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123);
        assert!(long.starts_with(&cut));
    }
}
