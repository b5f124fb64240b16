//! `--maxforks`: how many programs (WebSocket sessions and CGI scripts) may run at once.
//! A running program holds a permit; dropping the permit frees the slot.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The fork limit shared by every connection.
#[derive(Debug, Clone)]
pub struct ForkLimiter {
    slots: Option<Arc<Semaphore>>,
}

/// A taken slot, released on drop.
#[derive(Debug)]
pub struct ForkSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl ForkLimiter {
    /// A limiter allowing `max` programs at once; `None` means unlimited.
    pub fn new(max: Option<usize>) -> ForkLimiter {
        ForkLimiter {
            slots: max.map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)))),
        }
    }

    /// Takes a slot, or `None` when every slot is in use.
    pub fn try_take(&self) -> Option<ForkSlot> {
        match &self.slots {
            None => Some(ForkSlot { _permit: None }),
            Some(slots) => slots
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|permit| ForkSlot {
                    _permit: Some(permit),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_free_on_drop() {
        let limiter = ForkLimiter::new(Some(1));
        let first = limiter.try_take();
        assert!(first.is_some());
        assert!(limiter.try_take().is_none());
        drop(first);
        assert!(limiter.try_take().is_some());
        let unlimited = ForkLimiter::new(None);
        let held: Vec<_> = (0..100).map(|_| unlimited.try_take()).collect();
        assert!(held.iter().all(Option::is_some));
    }
}
