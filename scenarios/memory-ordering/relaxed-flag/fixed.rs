//! A one-message slot between a producer thread and consumer threads, without a lock.
//!
//! The producer publishes one message into the slot; one consumer takes it. A router may
//! peek at the waiting message first, without taking it, to choose the consumer it is for.
//! The slot is two atomics: the message itself, and a flag saying it is there. Nothing ever
//! waits: a consumer that finds the slot empty goes and does something else.

//~ region
use bughunt_kit::sync::atomic::{AtomicBool, AtomicU64, Ordering};
//~ wrong: std-atomics
//~ // std's atomics: the orderings mean the same everywhere.
//~ use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
//~ wrong: fence-on-one-side
//~ use bughunt_kit::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
//~ alt: fences
//~ use bughunt_kit::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
//~ alt: mutex-option
//~ use bughunt_kit::sync::Mutex;
//~ alt: spin-lock
//~ use bughunt_kit::sync::atomic::{AtomicBool, AtomicU64, Ordering};
//~ use bughunt_kit::thread;
//~ end

/// Holds at most one message; the producer publishes once and a consumer takes it once.
pub struct Slot {
    //~ region
    /// The message body. Meaningful only while `ready` is true.
    payload: AtomicU64,
    /// Set by the producer once `payload` holds the message; cleared by the consumer that
    /// takes it.
    ready: AtomicBool,
    //~ alt: mutex-option
    //~ /// The waiting message, if any: the lock orders every access for us.
    //~ message: Mutex<Option<u64>>,
    //~ alt: spin-lock
    //~ payload: AtomicU64,
    //~ ready: AtomicBool,
    //~ /// Held (true) by the one thread that reads or changes `payload` and `ready`.
    //~ busy: AtomicBool,
    //~ end
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

impl Slot {
    pub fn new() -> Self {
        //~ region
        Self {
            payload: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        }
        //~ alt: mutex-option
        //~ Self {
        //~     message: Mutex::new(None),
        //~ }
        //~ alt: spin-lock
        //~ Self {
        //~     payload: AtomicU64::new(0),
        //~     ready: AtomicBool::new(false),
        //~     busy: AtomicBool::new(false),
        //~ }
        //~ end
    }

    /// Puts `value` in the slot for a consumer. Called once, by the producer.
    pub fn publish(&self, value: u64) {
        //~ region
        self.payload.store(value, Ordering::Relaxed);
        //~ wrong: seqcst-payload
        //~ // SeqCst: the strongest ordering, so every thread sees the payload write in order.
        //~ self.payload.store(value, Ordering::SeqCst);
        //~ alt: seqcst-everywhere
        //~ self.payload.store(value, Ordering::SeqCst);
        //~ alt: mutex-option
        //~ *self.message.lock().unwrap() = Some(value);
        //~ alt: spin-lock
        //~ self.lock();
        //~ self.payload.store(value, Ordering::Relaxed);
        //~ wrong: flag-before-payload
        //~ end
        //~ site: relaxed-publish
        // FIX: Release. Every write this thread made before this store (the payload) becomes
        // visible to any thread whose Acquire load reads `true` from it. With Relaxed, the
        // flag and the payload are unrelated locations: another core may see the flag set
        // and still read the payload from before the publish. The payload itself can stay
        // Relaxed: the flag's Release/Acquire pair is what orders it.
        self.ready.store(true, Ordering::Release);
        //~ broken:
        //~ self.ready.store(true, Ordering::Relaxed);
        //~ wrong: seqcst-payload
        //~ self.ready.store(true, Ordering::Relaxed);
        //~ wrong: release-store-relaxed-loads
        //~ // Release: the payload write above is published together with the flag, so
        //~ // whoever sees the flag set sees the payload.
        //~ self.ready.store(true, Ordering::Release);
        //~ wrong: fence-on-one-side
        //~ // The fence keeps the payload write above the flag write: nobody can see them
        //~ // in the other order.
        //~ fence(Ordering::Release);
        //~ self.ready.store(true, Ordering::Relaxed);
        //~ wrong: acquire-store
        //~ // Acquire and Release on both sides of the flag: acquire it when setting it too.
        //~ self.ready.store(true, Ordering::Acquire);
        //~ wrong: flag-before-payload
        //~ // Release on the flag, Acquire on every load of it: the pair orders the payload.
        //~ self.ready.store(true, Ordering::Release);
        //~ self.payload.store(value, Ordering::Relaxed);
        //~ alt: seqcst-everywhere
        //~ self.ready.store(true, Ordering::SeqCst);
        //~ alt: fences
        //~ // A release fence before a Relaxed store publishes like a Release store.
        //~ fence(Ordering::Release);
        //~ self.ready.store(true, Ordering::Relaxed);
        //~ alt: acqrel-swap
        //~ self.ready.swap(true, Ordering::AcqRel);
        //~ alt: mutex-option
        //~ alt: spin-lock
        //~ self.ready.store(true, Ordering::Relaxed);
        //~ self.unlock();
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
        //~ wrong: seqcst-payload
        //~ if self.ready.swap(false, Ordering::Relaxed) {
        //~ wrong: release-store-relaxed-loads
        //~ if self.ready.swap(false, Ordering::Relaxed) {
        //~ wrong: fence-on-one-side
        //~ if self.ready.swap(false, Ordering::Relaxed) {
        //~ wrong: load-then-clear
        //~ // Look first, and clear the flag only when there is something to take.
        //~ if self.ready.load(Ordering::Acquire) {
        //~     self.ready.store(false, Ordering::Relaxed);
        //~ alt: seqcst-everywhere
        //~ if self.ready.swap(false, Ordering::SeqCst) {
        //~ alt: fences
        //~ if self.ready.swap(false, Ordering::Relaxed) {
        //~     // An acquire fence after the Relaxed load that saw the flag acquires it.
        //~     fence(Ordering::Acquire);
        //~ alt: acqrel-swap
        //~ if self.ready.swap(false, Ordering::AcqRel) {
        //~ alt: mutex-option
        //~ if let Some(body) = self.message.lock().unwrap().take() {
        //~ alt: spin-lock
        //~ self.lock();
        //~ let taken = self.ready.swap(false, Ordering::Relaxed);
        //~ let body = self.payload.load(Ordering::Relaxed);
        //~ self.unlock();
        //~ if taken {
        //~ end
            //~ region
            Some(self.payload.load(Ordering::Relaxed))
            //~ wrong: seqcst-payload
            //~ Some(self.payload.load(Ordering::SeqCst))
            //~ alt: seqcst-everywhere
            //~ Some(self.payload.load(Ordering::SeqCst))
            //~ alt: mutex-option
            //~ Some(body)
            //~ alt: spin-lock
            //~ Some(body)
            //~ end
        } else {
            None
        }
    }

    /// The waiting message, left in the slot for a consumer to take.
    pub fn peek(&self) -> Option<u64> {
        //~ site: body-read-before-flag
        //~ broken:
        //~ let body = self.payload.load(Ordering::Relaxed);
        //~ alt: spin-lock
        //~ self.lock();
        //~ let waiting = self.ready.load(Ordering::Relaxed);
        //~ let body = self.payload.load(Ordering::Relaxed);
        //~ self.unlock();
        //~ end
        //~ site: relaxed-publish
        // FIX: Acquire here too. A look is a reader like any other: the Release store orders
        // nothing for a load of the flag that is not Acquire.
        if self.ready.load(Ordering::Acquire) {
        //~ broken:
        //~ if self.ready.load(Ordering::Relaxed) {
        //~ wrong: seqcst-payload
        //~ if self.ready.load(Ordering::Relaxed) {
        //~ wrong: release-store-relaxed-loads
        //~ if self.ready.load(Ordering::Relaxed) {
        //~ wrong: acquire-only-in-take
        //~ if self.ready.load(Ordering::Relaxed) {
        //~ wrong: fence-on-one-side
        //~ if self.ready.load(Ordering::Relaxed) {
        //~ alt: seqcst-everywhere
        //~ if self.ready.load(Ordering::SeqCst) {
        //~ alt: fences
        //~ if self.ready.load(Ordering::Relaxed) {
        //~     fence(Ordering::Acquire);
        //~ alt: mutex-option
        //~ if let Some(body) = *self.message.lock().unwrap() {
        //~ alt: spin-lock
        //~ if waiting {
        //~ end
            //~ site: body-read-before-flag
            // FIX: the payload is read only once the flag has said it is there. A read made
            // before the check may predate the publish, whatever the check then finds.
            Some(self.payload.load(Ordering::Relaxed))
            //~ broken:
            //~ Some(body)
            //~ wrong: seqcst-payload
            //~ Some(self.payload.load(Ordering::SeqCst))
            //~ alt: seqcst-everywhere
            //~ Some(self.payload.load(Ordering::SeqCst))
            //~ alt: mutex-option
            //~ Some(body)
            //~ alt: spin-lock
            //~ Some(body)
            //~ end
        } else {
            None
        }
    }
    //~ region
    //~ alt: spin-lock
    //~
    //~ /// Takes `busy`, waiting politely (yielding to the thread that holds it) while it is
    //~ /// taken. Acquire: what the last holder wrote is visible from here.
    //~ fn lock(&self) {
    //~     while self
    //~         .busy
    //~         .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
    //~         .is_err()
    //~     {
    //~         thread::yield_now();
    //~     }
    //~ }
    //~
    //~ /// Gives `busy` back. Release: what this holder wrote is visible to the next one.
    //~ fn unlock(&self) {
    //~     self.busy.store(false, Ordering::Release);
    //~ }
    //~ end
}
