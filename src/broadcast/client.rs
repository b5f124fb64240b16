//! One client of a shared program: writes the frames queued for it (the same bytes every
//! client gets), passes its messages to the program as `--broadcastinput` says, and ends
//! with the close code that tells it why: the program's status, 1001 on shutdown, 1013
//! when it fell too far behind.

use super::bus::{Bus, Close, Input, InputEvent};
use super::hub::Member;
use super::queue::{ClientQueue, Next};
use crate::config::BroadcastInput;
use crate::logging::Scope;
use crate::ws::prepared::PreparedSender;
use crate::ws::session::{await_close_reply, truncate_reason, PongClock, CLOSE_WAIT};
use crate::ws::transport::{self, Failure, Incoming, Receiver};
use hyper::upgrade::Upgraded;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// How long a client found too slow, whose socket is full, gets to take the bytes already
/// on their way (then it gets its 1013); after that it is dropped without a close frame.
const STALLED_WAIT: Duration = Duration::from_secs(10);

/// Settings for every broadcast client.
#[derive(Debug, Clone, Copy)]
pub struct ClientSettings {
    /// `--binary`: binary messages are input, text messages are ignored (and the reverse).
    pub binary: bool,
    /// `--pingms`, 0 = off.
    pub ping_ms: u64,
    /// `--maxframesize` for client messages.
    pub max_message: Option<usize>,
    /// `--broadcastinput`.
    pub input: BroadcastInput,
    /// `--maxqueue` (`None`: lossless), for the log line of a client that fell behind.
    pub max_queue: Option<usize>,
}

/// Why a client's connection ended.
#[derive(Debug)]
enum End {
    /// The stream ended (program exit or shutdown): close with this.
    Stream(Close),
    /// The client fell more than `--maxqueue` messages behind.
    TooSlow,
    /// It fell behind and does not even take the bytes already on their way.
    Stalled,
    /// The client started the closing handshake.
    ClientClosed,
    /// The client broke the protocol.
    Failed(Failure),
    /// No pong within twice `--pingms`.
    PingTimeout,
    /// The connection dropped.
    Gone,
}

/// Serves one client until its connection ends; `member` is released at the end.
pub async fn serve(
    upgraded: Upgraded,
    member: Member,
    id: String,
    remote: String,
    settings: ClientSettings,
    scope: Scope,
) {
    let (mut tx, mut rx) = transport::accept_prepared(upgraded, settings.max_message).await;
    scope.access("session", "CONNECT");
    let bus = member.bus().clone();
    let tagged = settings.input == BroadcastInput::Tagged;
    if tagged {
        bus.send_input(input(&member, &id, InputEvent::Join(remote)))
            .await;
    }
    let clock = PongClock::new();
    let mut dropped = 0u64;
    let end = tokio::select! {
        end = write_loop(&mut tx, &member.subscription.queue, settings, &scope) => end,
        end = read_loop(&mut rx, &bus, &member, &id, settings, &clock, &mut dropped, &scope) => end,
        () = clock.expired(settings.ping_ms) => End::PingTimeout,
    };
    if dropped > 0 {
        scope.debug(
            "broadcast",
            &format!("Dropped {dropped} client messages (--broadcastinput=none)"),
        );
    }
    if matches!(end, End::TooSlow | End::Stalled) {
        crate::metrics::slow_client_closed();
    }
    let close = match end {
        End::Stream(close) => Some((close.code, close.reason)),
        End::TooSlow => Some((1013, "too slow".to_string())),
        End::Stalled => {
            scope.access(
                "session",
                "The client too slow did not take the data on its way, connection dropped",
            );
            None
        }
        End::Failed(failure) => {
            scope.debug("websocket", &format!("Cannot receive: {failure:?}"));
            let reason = match &failure {
                Failure::Protocol(text) => truncate_reason(text),
                _ => String::new(),
            };
            failure.close_code().map(|code| (code, reason))
        }
        End::ClientClosed => {
            // Our reply is waiting in the sender; reading once more lets the client finish.
            let _ = tokio::time::timeout(CLOSE_WAIT, tx.send_control()).await;
            let _ = tokio::time::timeout(CLOSE_WAIT, rx.next()).await;
            None
        }
        End::PingTimeout | End::Gone => None,
    };
    if let Some((code, reason)) = close {
        if tokio::time::timeout(CLOSE_WAIT, tx.close(code, &reason))
            .await
            .is_ok_and(|sent| sent.is_ok())
        {
            await_close_reply(&mut rx).await;
        }
    }
    if tagged {
        bus.send_input(input(&member, &id, InputEvent::Leave)).await;
    }
    drop(member);
    scope.access("session", "DISCONNECT");
}

fn input(member: &Member, id: &str, event: InputEvent) -> Input {
    Input {
        epoch: member.epoch,
        client: id.to_string(),
        event,
    }
}

/// The log line of a client that fell behind, written when it is found.
fn log_too_slow(scope: &Scope, settings: ClientSettings) {
    let limit = settings.max_queue.unwrap_or(0);
    scope.access(
        "session",
        &format!("TOO SLOW: more than {limit} messages behind, closing with 1013"),
    );
}

/// Queue → socket, plus the library's control replies and our pings.
async fn write_loop(
    tx: &mut PreparedSender,
    queue: &ClientQueue,
    settings: ClientSettings,
    scope: &Scope,
) -> End {
    let ping_ms = settings.ping_ms;
    let mut frames = Vec::new();
    let mut ping = (ping_ms > 0).then(|| {
        let every = Duration::from_millis(ping_ms);
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        timer
    });
    loop {
        let ping_due = async {
            match ping.as_mut() {
                Some(timer) => {
                    timer.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            next = queue.next(&mut frames) => match next {
                Next::Frames => {
                    let sent = send_frames(tx, &frames, queue, settings, scope).await;
                    frames.clear();
                    match sent {
                        Sent::Written => {}
                        Sent::WrittenTooSlow => return End::TooSlow,
                        Sent::Stalled => return End::Stalled,
                        Sent::Failed => return End::Gone,
                    }
                }
                Next::TooSlow => {
                    log_too_slow(scope, settings);
                    return End::TooSlow;
                }
                Next::End(close) => return End::Stream(close),
            },
            () = tx.control_waiting() => {
                if tx.send_control().await.is_err() {
                    return End::Gone;
                }
            }
            () = ping_due => {
                if tx.ping().await.is_err() {
                    return End::Gone;
                }
            }
        }
    }
}

/// How writing one round of frames went.
enum Sent {
    Written,
    /// Written, but the client was found too slow meanwhile (and logged).
    WrittenTooSlow,
    /// Found too slow, and the socket did not take the frames within `STALLED_WAIT`.
    Stalled,
    Failed,
}

/// Writes `frames`. Only a socket that cannot take them at once makes the client subject
/// to the strict `--maxqueue` bound (see [`ClientQueue::set_blocked`]).
async fn send_frames(
    tx: &mut PreparedSender,
    frames: &[crate::ws::prepared::PreparedFrames],
    queue: &ClientQueue,
    settings: ClientSettings,
    scope: &Scope,
) -> Sent {
    let send = tx.send(frames);
    tokio::pin!(send);
    let first = std::future::poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await;
    let sent = match first {
        Poll::Ready(sent) => sent,
        Poll::Pending => {
            queue.set_blocked(true);
            let outcome = tokio::select! {
                sent = &mut send => sent.map(|()| Sent::Written),
                () = queue.too_slow() => {
                    log_too_slow(scope, settings);
                    match tokio::time::timeout(STALLED_WAIT, &mut send).await {
                        Ok(sent) => sent.map(|()| Sent::WrittenTooSlow),
                        Err(_) => Ok(Sent::Stalled),
                    }
                }
            };
            queue.set_blocked(false);
            return outcome.unwrap_or(Sent::Failed);
        }
    };
    match sent {
        Ok(()) => Sent::Written,
        Err(_) => Sent::Failed,
    }
}

/// Socket → program (or the floor, with `--broadcastinput=none`).
#[allow(clippy::too_many_arguments)]
async fn read_loop(
    rx: &mut Receiver,
    bus: &Arc<dyn Bus>,
    member: &Member,
    id: &str,
    settings: ClientSettings,
    clock: &PongClock,
    dropped: &mut u64,
    scope: &Scope,
) -> End {
    loop {
        let (payload, is_text) = match rx.next().await {
            Incoming::Text(text) => (text, true),
            Incoming::Binary(data) => (data, false),
            Incoming::Pong => {
                clock.pong();
                continue;
            }
            Incoming::Ping => continue,
            Incoming::Close(code) => {
                scope.debug("websocket", &format!("Cannot receive: close {code:?}"));
                return End::ClientClosed;
            }
            Incoming::Failed(failure) => return End::Failed(failure),
            Incoming::Gone => return End::Gone,
        };
        if is_text == settings.binary {
            let (got, want) = if settings.binary { (1, 2) } else { (2, 1) };
            scope.debug(
                "websocket",
                &format!("Ignoring message of unexpected type {got} (want {want})"),
            );
            continue;
        }
        if settings.input == BroadcastInput::None {
            *dropped += 1;
            continue;
        }
        bus.send_input(input(member, id, InputEvent::Message(payload)))
            .await;
    }
}
