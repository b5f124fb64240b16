//! What every connection shares: the configuration, the fork limit, the shutdown signal,
//! and the count of running sessions that graceful shutdown waits for.

use crate::config::Config;
use crate::forks::ForkLimiter;
use crate::once::OnceGate;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, Notify};

/// Shared, read-mostly server state.
#[derive(Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// `--maxforks`.
    pub forks: ForkLimiter,
    /// `--maxclients`: a connected WebSocket client holds a slot.
    pub clients: ForkLimiter,
    /// `--broadcast`: the shared programs, one per route.
    pub hubs: Option<crate::broadcast::Hubs>,
    /// Becomes true when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Running sessions.
    pub sessions: SessionTracker,
    /// `--once`: the single session's place and its outcome.
    pub once: OnceGate,
    /// When the server started (the console page's Last-Modified).
    pub started: SystemTime,
    last_id: AtomicU64,
}

impl AppState {
    /// State for a server about to start.
    pub fn new(config: Config, shutdown: watch::Receiver<bool>) -> AppState {
        let forks = ForkLimiter::new(config.max_forks);
        let sessions = SessionTracker::default();
        AppState {
            once: OnceGate::new(config.once),
            hubs: crate::broadcast::Hubs::new(
                &config,
                forks.clone(),
                sessions.clone(),
                shutdown.clone(),
            ),
            clients: ForkLimiter::new(config.max_clients),
            forks,
            config,
            shutdown,
            sessions,
            started: SystemTime::now(),
            last_id: AtomicU64::new(0),
        }
    }

    /// A connection ID: the current time in nanoseconds, made unique even when two
    /// connections arrive within the same nanosecond.
    pub fn next_id(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let mut last = self.last_id.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_id.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(actual) => last = actual,
            }
        }
    }
}

/// Counts running sessions so shutdown can wait until every program has been stopped.
/// Clones count into the same total.
#[derive(Debug, Default, Clone)]
pub struct SessionTracker {
    inner: Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    active: AtomicUsize,
    idle: Notify,
}

/// Held by a running session; dropping it marks the session finished.
#[derive(Debug)]
pub struct SessionGuard {
    inner: Arc<TrackerInner>,
}

impl SessionTracker {
    /// Registers a session.
    pub fn enter(&self) -> SessionGuard {
        self.inner.active.fetch_add(1, Ordering::SeqCst);
        crate::metrics::session_started();
        SessionGuard {
            inner: self.inner.clone(),
        }
    }

    /// Waits until no session is running.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        crate::metrics::session_ended();
        if self.inner.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tracker_waits_for_sessions() {
        let tracker = SessionTracker::default();
        tracker.wait_idle().await;
        let guard = tracker.enter();
        let waiter = tokio::spawn({
            let inner = tracker.inner.clone();
            async move { SessionTracker { inner }.wait_idle().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(guard);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn ids_are_unique_and_increasing() {
        let (_tx, rx) = watch::channel(false);
        let config = crate::cli::parse(&["websocketd".into(), "cat".into()]).unwrap();
        let state = AppState::new(config, rx);
        let ids: Vec<u64> = (0..1000).map(|_| state.next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
