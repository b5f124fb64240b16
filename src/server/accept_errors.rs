//! Accept failures (out of descriptors, mostly) come in episodes: the same error on every
//! retry until connections close. One line when an episode starts and one when accepting
//! has worked again for a second, with the count, keep the log readable (while sessions
//! come and go at the limit, accepts fail and succeed by turns: that is one episode); the
//! 50 ms pause between retries keeps the loop from spinning.

use crate::logging::{self, Level};
use std::time::{Duration, Instant};

/// Pause after a failed accept before the next try.
pub const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How long accepting must work before an episode of failures is over.
const QUIET: Duration = Duration::from_secs(1);

/// The accept loop's record of the current episode of failures.
#[derive(Debug)]
pub struct AcceptErrors {
    episode: Option<Episode>,
    quiet: Duration,
}

impl Default for AcceptErrors {
    fn default() -> AcceptErrors {
        AcceptErrors {
            episode: None,
            quiet: QUIET,
        }
    }
}

#[derive(Debug)]
struct Episode {
    started: Instant,
    last_failure: Instant,
    failures: u64,
    last_error: String,
}

impl AcceptErrors {
    /// Records a failure; returns the line to log if it starts an episode.
    pub fn failed(&mut self, err: &std::io::Error) -> Option<String> {
        let text = err.to_string();
        match &mut self.episode {
            Some(episode) => {
                episode.failures += 1;
                episode.last_failure = Instant::now();
                episode.last_error = text;
                None
            }
            None => {
                let line = format!(
                    "Accept failed: {text}; retrying every {} ms",
                    RETRY_PAUSE.as_millis()
                );
                self.episode = Some(Episode {
                    started: Instant::now(),
                    last_failure: Instant::now(),
                    failures: 1,
                    last_error: text,
                });
                Some(line)
            }
        }
    }

    /// Records a successful accept; returns the line to log if it ends an episode (the
    /// last failure is at least a second old).
    pub fn succeeded(&mut self) -> Option<String> {
        if self.episode.as_ref()?.last_failure.elapsed() < self.quiet {
            return None;
        }
        let episode = self.episode.take()?;
        Some(format!(
            "Accepting again after {} failed attempt{} in {:.1} s (last error: {})",
            episode.failures,
            if episode.failures == 1 { "" } else { "s" },
            episode.started.elapsed().as_secs_f64(),
            episode.last_error
        ))
    }
}

/// Logs a failure (once per episode) and waits before the next try.
pub async fn after_failure(errors: &mut AcceptErrors, err: &std::io::Error) {
    if let Some(line) = errors.failed(err) {
        logging::server(Level::Error, &line);
    }
    tokio::time::sleep(RETRY_PAUSE).await;
}

/// Logs the end of an episode, if one was running.
pub fn after_success(errors: &mut AcceptErrors) {
    if let Some(line) = errors.succeeded() {
        logging::server(Level::Error, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_episode_with_a_count() {
        let mut errors = AcceptErrors {
            episode: None,
            quiet: Duration::ZERO,
        };
        let emfile = std::io::Error::from_raw_os_error(24);
        assert!(errors.succeeded().is_none());
        let first = errors.failed(&emfile).unwrap();
        assert!(
            first.starts_with("Accept failed: Too many open files"),
            "{first}"
        );
        for _ in 0..99 {
            assert!(errors.failed(&emfile).is_none());
        }
        let end = errors.succeeded().unwrap();
        assert!(end.contains("after 100 failed attempts"), "{end}");
        assert!(errors.succeeded().is_none());
        assert!(errors.failed(&emfile).is_some());
    }

    #[test]
    fn failures_and_successes_by_turns_are_one_episode() {
        let mut errors = AcceptErrors::default();
        let emfile = std::io::Error::from_raw_os_error(24);
        assert!(errors.failed(&emfile).is_some());
        for _ in 0..50 {
            assert!(errors.succeeded().is_none());
            assert!(errors.failed(&emfile).is_none());
        }
    }
}
