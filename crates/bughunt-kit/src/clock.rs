//! A simulated clock.
//!
//! Time moves only when someone calls [`Clock::advance_ms`]. Clones share one time line, so
//! the queue under test and the check that drives it always agree on "now". Because nothing
//! sleeps, a check can stand one millisecond before a deadline and look.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Milliseconds since the start of a simulation, shared by every clone.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    now_ms: Arc<AtomicU64>,
}

impl Clock {
    /// A clock standing at 0 ms.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current simulated time in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    /// Moves time forward by `ms` and returns the new time.
    ///
    /// Time never goes backwards; advancing past `u64::MAX` saturates.
    pub fn advance_ms(&self, ms: u64) -> u64 {
        let mut current = self.now_ms.load(Ordering::SeqCst);
        loop {
            let next = current.saturating_add(ms);
            match self
                .now_ms
                .compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clones share one time line: advancing one is seen by the other.
    #[test]
    fn clones_share_time() {
        let clock = Clock::new();
        let seen_by_queue = clock.clone();
        assert_eq!(seen_by_queue.now_ms(), 0);
        assert_eq!(clock.advance_ms(250), 250);
        assert_eq!(seen_by_queue.now_ms(), 250);
        seen_by_queue.advance_ms(1);
        assert_eq!(clock.now_ms(), 251);
    }

    /// Advancing saturates instead of wrapping around to the past.
    #[test]
    fn never_goes_backwards() {
        let clock = Clock::new();
        clock.advance_ms(u64::MAX - 1);
        assert_eq!(clock.advance_ms(10), u64::MAX);
    }
}
