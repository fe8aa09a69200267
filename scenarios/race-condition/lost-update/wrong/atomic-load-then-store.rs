//! Progress counters for a consumer group.
//!
//! Each consumer counts the messages it receives and the messages it finishes; a monitor
//! reads both counts to report how many messages are in flight (the group's lag). They all
//! share one `Progress` through an `Arc`, each from its own thread. The counts are atomics,
//! so no thread ever waits for a lock.

use bughunt_kit::sync::atomic::{AtomicU64, Ordering};

/// Both counts, as one reader saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages a consumer has received.
    pub received: u64,
    /// Messages a consumer has finished.
    pub processed: u64,
}

impl Counts {
    /// Messages received and not finished yet.
    pub fn in_flight(&self) -> u64 {
        self.received - self.processed
    }
}

/// The counts of one consumer group, shared by its consumers and its monitor.
pub struct Progress {
    received: AtomicU64,
    processed: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Self {
            received: AtomicU64::new(0),
            processed: AtomicU64::new(0),
        }
    }

    /// A consumer received a message.
    pub fn record_received(&self) {
        // Each count is its own atomic now, so a receive can no longer clobber a finish.
        let received = self.received.load(Ordering::SeqCst);
        self.received.store(received + 1, Ordering::SeqCst);
    }

    /// A consumer finished a message.
    pub fn record_processed(&self) {
        let processed = self.processed.load(Ordering::SeqCst);
        self.processed.store(processed + 1, Ordering::SeqCst);
    }

    /// Both counts as of one instant.
    pub fn snapshot(&self) -> Counts {
        Counts {
            received: self.received.load(Ordering::SeqCst),
            processed: self.processed.load(Ordering::SeqCst),
        }
    }
}
