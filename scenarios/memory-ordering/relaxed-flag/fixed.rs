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
        //~ site: relaxed-publish
        // FIX: Release. Every write this thread made before this store (the payload) becomes
        // visible to any thread whose Acquire load reads `true` from it. With Relaxed, the
        // flag and the payload are unrelated locations: another core may see the flag set
        // and still read the payload from before the publish. The payload itself can stay
        // Relaxed: the flag's Release/Acquire pair is what orders it.
        self.ready.store(true, Ordering::Release);
        //~ broken:
        //~ self.ready.store(true, Ordering::Relaxed);
        //~ end
    }

    /// Takes the message if it has been published and nobody took it yet.
    pub fn try_take(&self) -> Option<u64> {
        //~ site: relaxed-publish
        // FIX: Acquire. Reading `true` from the producer's Release store synchronizes with
        // it: everything the producer wrote before setting the flag (the payload) is visible
        // to this thread from here on. Release on the producer's side alone does nothing;
        // only the pair orders the two threads.
        if self.ready.swap(false, Ordering::Acquire) {
        //~ broken:
        //~ if self.ready.swap(false, Ordering::Relaxed) {
        //~ end
            Some(self.payload.load(Ordering::Relaxed))
        } else {
            None
        }
    }

    /// The waiting message, left in the slot for a consumer to take.
    pub fn peek(&self) -> Option<u64> {
        //~ site: body-read-before-flag
        //~ broken:
        //~ let body = self.payload.load(Ordering::Relaxed);
        //~ end
        //~ site: relaxed-publish
        // FIX: Acquire here too. A look is a reader like any other: the Release store orders
        // nothing for a load of the flag that is not Acquire.
        if self.ready.load(Ordering::Acquire) {
        //~ broken:
        //~ if self.ready.load(Ordering::Relaxed) {
        //~ end
            //~ site: body-read-before-flag
            // FIX: the payload is read only once the flag has said it is there. A read made
            // before the check may predate the publish, whatever the check then finds.
            Some(self.payload.load(Ordering::Relaxed))
            //~ broken:
            //~ Some(body)
            //~ end
        } else {
            None
        }
    }
}
