//! `--once`: the daemon serves a single WebSocket session, then shuts down gracefully and
//! exits with the program's exit status. While that session runs, further upgrades are
//! refused (503); plain HTTP content (`--staticdir`, `--cgidir`) is still served, so a page
//! that opened the session can keep loading what it needs.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// Exit code when the session's program could not be started or its status is unknown.
pub const EXIT_NO_STATUS: i32 = 1;

/// The single session's place: taken by the first upgrade, and the exit code once it ended.
#[derive(Debug)]
pub struct OnceGate {
    enabled: bool,
    taken: AtomicBool,
    ended: watch::Sender<Option<i32>>,
}

impl OnceGate {
    /// A gate for `--once` (`enabled`), or one that lets every session through.
    pub fn new(enabled: bool) -> OnceGate {
        OnceGate {
            enabled,
            taken: AtomicBool::new(false),
            ended: watch::Sender::new(None),
        }
    }

    /// Takes the one session's place; false when another session has it (answer 503).
    /// Always true without `--once`.
    pub fn claim(&self) -> bool {
        !self.enabled
            || self
                .taken
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// Whether the one session's place is taken (so an upgrade need not be checked further).
    pub fn taken(&self) -> bool {
        self.enabled && self.taken.load(Ordering::SeqCst)
    }

    /// Gives the place back: the upgrade that claimed it never became a session.
    pub fn release(&self) {
        if self.enabled && self.ended.borrow().is_none() {
            self.taken.store(false, Ordering::SeqCst);
        }
    }

    /// Records how the session's program ended; the server then shuts down.
    pub fn finish(&self, status: Option<ExitStatus>) {
        if self.enabled {
            self.ended.send_replace(Some(exit_code(status)));
        }
    }

    /// Completes when the session has ended; never without `--once`.
    pub async fn ended(&self) {
        let mut ended = self.ended.subscribe();
        if ended.wait_for(Option::is_some).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The daemon's exit code after the session: the program's.
    pub fn exit_code(&self) -> Option<i32> {
        *self.ended.borrow()
    }
}

/// A program's exit status as a process exit code, the way shells report it: the exit
/// code, or 128 + the signal that ended it.
pub fn exit_code(status: Option<ExitStatus>) -> i32 {
    match status.map(|s| (s.code(), s.signal())) {
        Some((Some(code), _)) => code,
        Some((None, Some(signal))) => 128 + signal,
        _ => EXIT_NO_STATUS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_until_released() {
        let gate = OnceGate::new(true);
        assert!(gate.claim());
        assert!(!gate.claim());
        gate.release();
        assert!(gate.claim());
        gate.finish(Some(ExitStatus::from_raw(3 << 8)));
        gate.release();
        assert!(!gate.claim());
        assert_eq!(gate.exit_code(), Some(3));
    }

    #[test]
    fn without_once_everyone_passes() {
        let gate = OnceGate::new(false);
        assert!(gate.claim() && gate.claim());
        gate.finish(None);
        assert_eq!(gate.exit_code(), None);
    }

    #[test]
    fn codes_as_shells_report_them() {
        assert_eq!(exit_code(Some(ExitStatus::from_raw(0))), 0);
        assert_eq!(exit_code(Some(ExitStatus::from_raw(9))), 137);
        assert_eq!(exit_code(None), EXIT_NO_STATUS);
    }
}
