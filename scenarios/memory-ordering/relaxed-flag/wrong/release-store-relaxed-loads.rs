//! A one-message slot between a producer thread and consumer threads, without a lock.
//!
//! The producer publishes one message into the slot; one consumer takes it. A router may
//! peek at the waiting message first, without taking it, to choose the consumer it is for.
//! The slot is two atomics: the message itself, and a flag saying it is there. Nothing ever
//! waits: a consumer that finds the slot empty goes and does something else.

use bughunt_kit::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Holds at most one message; the producer publishes once and a consumer takes it once.
pub struct Slot {
    /// The message body. Meaningful only while `ready` is true.
    payload: AtomicU64,
    /// Set by the producer once `payload` holds the message; cleared by the consumer that
    /// takes it.
    ready: AtomicBool,
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

impl Slot {
    pub fn new() -> Self {
        Self {
            payload: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        }
    }

    /// Puts `value` in the slot for a consumer. Called once, by the producer.
    pub fn publish(&self, value: u64) {
        self.payload.store(value, Ordering::Relaxed);
        // Release: the payload write above is published together with the flag, so
        // whoever sees the flag set sees the payload.
        self.ready.store(true, Ordering::Release);
    }

    /// Takes the message if it has been published and nobody took it yet.
    pub fn try_take(&self) -> Option<u64> {
        if self.ready.swap(false, Ordering::Relaxed) {
            Some(self.payload.load(Ordering::Relaxed))
        } else {
            None
        }
    }

    /// The waiting message, left in the slot for a consumer to take.
    pub fn peek(&self) -> Option<u64> {
        if self.ready.load(Ordering::Relaxed) {
            Some(self.payload.load(Ordering::Relaxed))
        } else {
            None
        }
    }
}
