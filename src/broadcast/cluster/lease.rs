//! The runner claim of one route: an instance that may run the program (`any`, `runner`)
//! competes for the claim; the holder starts the program with the claim's epoch, renews
//! the claim several times per lease, and stops the program with the termination ladder
//! as soon as the claim is lost — or before it could expire when renewing fails — then
//! competes again. A graceful shutdown stops the program and releases the claim, so
//! another instance takes over at once.

use super::bus::{ClusterBus, RETRY_MAX, RETRY_MIN};
use super::engine::{Claim, EngineError};
use crate::broadcast::hub::{Hub, JoinError};
use crate::config::ClusterRole;
use crate::logging::{self, Level};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Longest pause before restarting a program that keeps exiting soon after it started.
const RESTART_MAX: Duration = Duration::from_secs(30);
/// A program that ran at least this long restarts without a pause.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// How the lease loop runs.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    /// `--clusterrole`.
    pub role: ClusterRole,
    /// `--leasems`.
    pub lease: Duration,
    /// `--closems` (it lengthens the termination ladder).
    pub close_ms: u64,
    /// Whether client input goes to the program (`--broadcastinput` other than none).
    pub input: bool,
}

impl LeaseSettings {
    /// How often a waiting instance tries to take the claim: `runner` instances first.
    fn poll(&self) -> Duration {
        let base = (self.lease / 8).clamp(Duration::from_millis(50), Duration::from_millis(250));
        match self.role {
            ClusterRole::Runner => base,
            _ => base * 2,
        }
    }

    /// How often the holder renews.
    fn renew_every(&self) -> Duration {
        self.lease / 5
    }

    /// How long before the claim's expiry the program must start stopping: the whole
    /// termination ladder (850 ms + 3 × `--closems` before SIGKILL) and a margin.
    fn stop_margin(&self) -> Duration {
        Duration::from_millis(1000 + 3 * self.close_ms)
    }
}

/// What ended a hold of the claim.
enum Held {
    /// The program ended by itself (its clients were told), after running this long.
    Ended(Duration),
    /// The claim was lost or could not be renewed; the program was stopped.
    Lost,
    /// The daemon is shutting down; the program has stopped and the claim is released.
    Shutdown,
    /// The program could not be started.
    NotStarted,
}

/// Runs the lease loop of one route until the daemon shuts down.
pub async fn run(
    hub: Arc<Hub>,
    bus: Arc<ClusterBus>,
    settings: LeaseSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    if settings.role == ClusterRole::Relay {
        return;
    }
    let mut pause = RETRY_MIN;
    let mut restart_pause = Duration::ZERO;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let token = new_token();
        let floor = bus.highest_epoch.load(Ordering::Relaxed);
        let sent = Instant::now();
        let wait = match bus.engine().acquire(&token, floor, settings.lease).await {
            Ok(Some(claim)) => {
                bus.recovered();
                pause = RETRY_MIN;
                match hold(&hub, &bus, claim, sent, settings).await {
                    Held::Shutdown => return,
                    Held::Lost => Duration::ZERO,
                    Held::Ended(ran) => {
                        restart_pause = if ran >= STABLE_RUN {
                            Duration::ZERO
                        } else {
                            (restart_pause * 2).clamp(Duration::from_secs(1), RESTART_MAX)
                        };
                        restart_pause
                    }
                    Held::NotStarted => {
                        restart_pause =
                            (restart_pause * 2).clamp(Duration::from_secs(1), RESTART_MAX);
                        restart_pause
                    }
                }
            }
            Ok(None) => {
                bus.recovered();
                pause = RETRY_MIN;
                settings.poll()
            }
            Err(err) => {
                bus.trouble(&err);
                let wait = pause;
                pause = (pause * 2).min(RETRY_MAX);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
    }
}

/// Holds `claim` (acquired with a request sent at `sent`): runs the program and renews
/// until something ends it.
async fn hold(
    hub: &Arc<Hub>,
    bus: &Arc<ClusterBus>,
    claim: Claim,
    sent: Instant,
    settings: LeaseSettings,
) -> Held {
    let epoch = claim.epoch;
    let guard = hub.session_guard();
    bus.hold(claim.clone());
    let started = Instant::now();
    let mut ended = match hub.start_epoch(epoch) {
        Ok(ended) => ended,
        Err(err) => {
            let why = match err {
                JoinError::Launch(message) => message,
                JoinError::NoForkSlot => "Max of possible forks already active".to_string(),
                JoinError::ShuttingDown => String::new(),
            };
            if !why.is_empty() {
                logging::server(Level::Error, &format!("Cluster {}: {why}", bus.label));
            }
            bus.let_go();
            let _ =
                tokio::time::timeout(settings.renew_every(), bus.engine().release(&claim)).await;
            drop(guard);
            return Held::NotStarted;
        }
    };
    logging::server(
        Level::Info,
        &format!(
            "Cluster {}: this instance runs the program (epoch {epoch})",
            bus.label
        ),
    );
    let input = settings
        .input
        .then(|| tokio::spawn(bus.clone().pump_input(claim.clone())));
    let renew_every = settings.renew_every();
    let mut valid_until = sent + settings.lease;
    let mut next_renew = sent + renew_every;
    let mut lost = false;
    loop {
        let stop_at = valid_until
            .checked_sub(settings.stop_margin())
            .unwrap_or(valid_until);
        tokio::select! {
            biased;
            _ = &mut ended => break,
            () = tokio::time::sleep_until(stop_at), if !lost => {
                logging::server(
                    Level::Error,
                    &format!("Cluster {}: the claim could not be renewed in time; stopping the program (epoch {epoch})", bus.label),
                );
                lost = true;
                bus.let_go();
                hub.stop_epoch(epoch);
            }
            () = tokio::time::sleep_until(next_renew), if !lost => {
                let sent = Instant::now();
                let deadline = (sent + renew_every).min(stop_at);
                match tokio::time::timeout_at(deadline, bus.engine().renew(&claim, settings.lease)).await {
                    Ok(Ok(())) => {
                        bus.recovered();
                        valid_until = sent + settings.lease;
                        next_renew = sent + renew_every;
                    }
                    Ok(Err(EngineError::Fenced)) => {
                        bus.recovered();
                        logging::server(
                            Level::Error,
                            &format!("Cluster {}: another instance holds the claim; stopping the program (epoch {epoch})", bus.label),
                        );
                        lost = true;
                        bus.let_go();
                        hub.stop_epoch(epoch);
                    }
                    Ok(Err(err)) => {
                        bus.trouble(&err);
                        next_renew = Instant::now() + RETRY_MIN * 2;
                    }
                    Err(_) => {
                        bus.trouble(&EngineError::Unreachable("the claim's renewal timed out".into()));
                        next_renew = Instant::now();
                    }
                }
            }
        }
    }
    if let Some(input) = input {
        input.abort();
    }
    bus.let_go();
    // Give the claim up at once, so another instance need not wait for it to expire.
    let _ = tokio::time::timeout(renew_every, bus.engine().release(&claim)).await;
    if bus.shutting_down() {
        logging::server(
            Level::Info,
            &format!("Cluster {}: claim released (epoch {epoch})", bus.label),
        );
        drop(guard);
        return Held::Shutdown;
    }
    drop(guard);
    if lost {
        Held::Lost
    } else {
        Held::Ended(started.elapsed())
    }
}

/// A token no other holder uses: host, process, time and a counter.
fn new_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{host}:{}:{nanos}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
