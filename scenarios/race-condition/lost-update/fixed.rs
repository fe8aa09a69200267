//! Progress counters for a consumer group.
//!
//! Each consumer counts the messages it receives and the messages it finishes; a monitor
//! reads both counts to report how many messages are in flight (the group's lag). They all
//! share one `Progress` through an `Arc`, each from its own thread, and every read and write
//! of the counts goes through one mutex.

use bughunt_kit::sync::{Mutex, MutexGuard};

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
    counts: Mutex<Counts>,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Self {
            counts: Mutex::new(Counts::default()),
        }
    }

    /// A consumer received a message.
    pub fn record_received(&self) {
        //~ site: two-lock-scopes
        // FIX: change the count in place, under the guard, and nowhere else. A copy of the
        // counts taken earlier and saved back as a whole (the old `save`) erased any update
        // that landed in the meantime: a lost update. Every access being locked is not
        // enough: the whole read-modify-write must be one critical section.
        self.lock().received += 1;
        //~ broken:
        //~ let mut counts = self.snapshot();
        //~ counts.received += 1;
        //~ self.save(counts);
        //~ end
    }

    /// A consumer finished a message.
    pub fn record_processed(&self) {
        //~ site: two-lock-scopes
        // FIX: same here: one critical section from the read to the write.
        self.lock().processed += 1;
        //~ broken:
        //~ let mut counts = self.snapshot();
        //~ counts.processed += 1;
        //~ self.save(counts);
        //~ end
    }

    /// Both counts as of one instant.
    pub fn snapshot(&self) -> Counts {
        //~ site: torn-snapshot
        // FIX: both counts are copied out of one guard, so they describe one instant. A pair
        // read under two guards can mix two moments, and report a state that never existed.
        *self.lock()
        //~ broken:
        //~ let received = self.lock().received;
        //~ let processed = self.lock().processed;
        //~ Counts {
        //~     received,
        //~     processed,
        //~ }
        //~ end
    }
    //~ site: two-lock-scopes
    //~ broken:
    //~
    //~ fn save(&self, counts: Counts) {
    //~     *self.lock() = counts;
    //~ }
    //~ end

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .expect("a thread panicked while holding the progress lock")
    }
}
