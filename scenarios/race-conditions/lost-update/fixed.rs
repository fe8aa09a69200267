//! Progress counters for a consumer group.
//!
//! Each consumer counts the messages it receives and the messages it finishes; a monitor
//! reads both counts to report how many messages are in flight (the group's lag), and takes
//! reports of the counts since its last report. A snapshot and a report are each one instant
//! of both counts. They all share one `Progress` through an
//! `Arc`, each from its own thread, and every read and write of the counts goes through one
//! mutex.

//~ region
use bughunt_kit::sync::{Mutex, MutexGuard};
//~ wrong: std-mutex
//~ // std's own mutex: the same API, and no crate to learn.
//~ use std::sync::{Mutex, MutexGuard};
//~ wrong: atomic-load-then-store
//~ use bughunt_kit::sync::atomic::{AtomicU64, Ordering};
//~ wrong: separate-atomics
//~ use bughunt_kit::sync::atomic::{AtomicU64, Ordering};
//~ wrong: compare-exchange-once
//~ use bughunt_kit::sync::atomic::{AtomicU64, Ordering};
//~ wrong: processed-first-snapshot
//~ use bughunt_kit::sync::atomic::{AtomicU64, Ordering};
//~ wrong: load-then-store-zero
//~ use bughunt_kit::sync::atomic::{AtomicU64, Ordering};
//~ wrong: retry-once-snapshot
//~ use bughunt_kit::sync::atomic::{AtomicU64, Ordering};
//~ wrong: lock-per-field
//~ use bughunt_kit::sync::Mutex;
//~ alt: packed-atomic
//~ use bughunt_kit::sync::atomic::{AtomicU64, Ordering};
//~ alt: rwlock
//~ use bughunt_kit::sync::{RwLock, RwLockWriteGuard};
//~ alt: spin-lock
//~ use bughunt_kit::sync::atomic::{AtomicBool, AtomicU64, Ordering};
//~ use bughunt_kit::thread;
//~ alt: owner-thread
//~ use bughunt_kit::sync::{mpsc, Mutex};
//~ use bughunt_kit::thread;
//~ wrong: swap-per-count-report
//~ use bughunt_kit::sync::atomic::{AtomicU64, Ordering};
//~ wrong: swap-processed-first
//~ use bughunt_kit::sync::atomic::{AtomicU64, Ordering};
//~ end

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
    //~ region
    counts: Mutex<Counts>,
    //~ wrong: atomic-load-then-store
    //~ received: AtomicU64,
    //~ processed: AtomicU64,
    //~ wrong: separate-atomics
    //~ received: AtomicU64,
    //~ processed: AtomicU64,
    //~ wrong: compare-exchange-once
    //~ received: AtomicU64,
    //~ processed: AtomicU64,
    //~ wrong: processed-first-snapshot
    //~ received: AtomicU64,
    //~ processed: AtomicU64,
    //~ wrong: load-then-store-zero
    //~ received: AtomicU64,
    //~ processed: AtomicU64,
    //~ wrong: retry-once-snapshot
    //~ received: AtomicU64,
    //~ processed: AtomicU64,
    //~ wrong: lock-per-field
    //~ received: Mutex<u64>,
    //~ processed: Mutex<u64>,
    //~ alt: packed-atomic
    //~ /// Both counts in one word, so one load reads them at one instant: `received` in the
    //~ /// high 32 bits, `processed` in the low 32 (4 billion messages before either wraps).
    //~ both: AtomicU64,
    //~ alt: rwlock
    //~ counts: RwLock<Counts>,
    //~ alt: spin-lock
    //~ /// Held (true) by the one thread that reads or changes the counts.
    //~ busy: AtomicBool,
    //~ received: AtomicU64,
    //~ processed: AtomicU64,
    //~ alt: owner-thread
    //~ /// To the thread that owns the counts; dropping it ends that thread.
    //~ owner: Mutex<mpsc::SyncSender<Request>>,
    //~ wrong: swap-per-count-report
    //~ received: AtomicU64,
    //~ processed: AtomicU64,
    //~ wrong: swap-processed-first
    //~ received: AtomicU64,
    //~ processed: AtomicU64,
    //~ end
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        //~ region
        Self {
            counts: Mutex::new(Counts::default()),
        }
        //~ wrong: atomic-load-then-store
        //~ Self {
        //~     received: AtomicU64::new(0),
        //~     processed: AtomicU64::new(0),
        //~ }
        //~ wrong: separate-atomics
        //~ Self {
        //~     received: AtomicU64::new(0),
        //~     processed: AtomicU64::new(0),
        //~ }
        //~ wrong: compare-exchange-once
        //~ Self {
        //~     received: AtomicU64::new(0),
        //~     processed: AtomicU64::new(0),
        //~ }
        //~ wrong: processed-first-snapshot
        //~ Self {
        //~     received: AtomicU64::new(0),
        //~     processed: AtomicU64::new(0),
        //~ }
        //~ wrong: load-then-store-zero
        //~ Self {
        //~     received: AtomicU64::new(0),
        //~     processed: AtomicU64::new(0),
        //~ }
        //~ wrong: retry-once-snapshot
        //~ Self {
        //~     received: AtomicU64::new(0),
        //~     processed: AtomicU64::new(0),
        //~ }
        //~ wrong: lock-per-field
        //~ Self {
        //~     received: Mutex::new(0),
        //~     processed: Mutex::new(0),
        //~ }
        //~ alt: packed-atomic
        //~ Self {
        //~     both: AtomicU64::new(0),
        //~ }
        //~ alt: rwlock
        //~ Self {
        //~     counts: RwLock::new(Counts::default()),
        //~ }
        //~ alt: spin-lock
        //~ Self {
        //~     busy: AtomicBool::new(false),
        //~     received: AtomicU64::new(0),
        //~     processed: AtomicU64::new(0),
        //~ }
        //~ alt: owner-thread
        //~ let (owner, requests) = mpsc::sync_channel(REQUESTS_MAX);
        //~ thread::spawn(move || {
        //~     let mut counts = Counts::default();
        //~     // Ends when `Progress` is dropped: its sender goes, and `recv` fails.
        //~     while let Ok(request) = requests.recv() {
        //~         match request {
        //~             Request::Received => counts.received += 1,
        //~             Request::Processed => counts.processed += 1,
        //~             Request::Snapshot(reply) => {
        //~                 let _ = reply.send(counts);
        //~             }
        //~             Request::TakeAndReset(reply) => {
        //~                 let _ = reply.send(std::mem::take(&mut counts));
        //~             }
        //~         }
        //~     }
        //~ });
        //~ Self {
        //~     owner: Mutex::new(owner),
        //~ }
        //~ wrong: swap-per-count-report
        //~ Self {
        //~     received: AtomicU64::new(0),
        //~     processed: AtomicU64::new(0),
        //~ }
        //~ wrong: swap-processed-first
        //~ Self {
        //~     received: AtomicU64::new(0),
        //~     processed: AtomicU64::new(0),
        //~ }
        //~ end
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
        //~ wrong: lock-held-while-reading
        //~ // Hold the lock for the whole update, so no other consumer can slip in between.
        //~ let mut guard = self.lock();
        //~ let mut counts = self.snapshot();
        //~ counts.received += 1;
        //~ *guard = counts;
        //~ wrong: atomic-load-then-store
        //~ // Each count is its own atomic now, so a receive can no longer clobber a finish.
        //~ let received = self.received.load(Ordering::SeqCst);
        //~ self.received.store(received + 1, Ordering::SeqCst);
        //~ wrong: separate-atomics
        //~ // fetch_add reads and writes in one indivisible step: no update can be lost.
        //~ self.received.fetch_add(1, Ordering::SeqCst);
        //~ wrong: compare-exchange-once
        //~ // The write lands only if nobody changed the count since we read it.
        //~ let seen = self.received.load(Ordering::SeqCst);
        //~ let _ = self.received.compare_exchange(seen, seen + 1, Ordering::SeqCst, Ordering::SeqCst);
        //~ wrong: processed-first-snapshot
        //~ self.received.fetch_add(1, Ordering::SeqCst);
        //~ wrong: load-then-store-zero
        //~ self.received.fetch_add(1, Ordering::SeqCst);
        //~ wrong: retry-once-snapshot
        //~ self.received.fetch_add(1, Ordering::SeqCst);
        //~ wrong: lock-per-field
        //~ // One lock per count: a receive never waits for a finish.
        //~ *self.received.lock().unwrap() += 1;
        //~ alt: packed-atomic
        //~ self.both.fetch_add(1 << 32, Ordering::SeqCst);
        //~ alt: rwlock
        //~ self.write().received += 1;
        //~ alt: spin-lock
        //~ self.with_lock(|| {
        //~     let received = self.received.load(Ordering::Relaxed);
        //~     self.received.store(received + 1, Ordering::Relaxed);
        //~ });
        //~ alt: owner-thread
        //~ self.tell(Request::Received);
        //~ wrong: swap-per-count-report
        //~ self.received.fetch_add(1, Ordering::SeqCst);
        //~ wrong: swap-processed-first
        //~ self.received.fetch_add(1, Ordering::SeqCst);
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
        //~ wrong: lock-held-while-reading
        //~ let mut guard = self.lock();
        //~ let mut counts = self.snapshot();
        //~ counts.processed += 1;
        //~ *guard = counts;
        //~ wrong: atomic-load-then-store
        //~ let processed = self.processed.load(Ordering::SeqCst);
        //~ self.processed.store(processed + 1, Ordering::SeqCst);
        //~ wrong: separate-atomics
        //~ self.processed.fetch_add(1, Ordering::SeqCst);
        //~ wrong: compare-exchange-once
        //~ let seen = self.processed.load(Ordering::SeqCst);
        //~ let _ = self.processed.compare_exchange(seen, seen + 1, Ordering::SeqCst, Ordering::SeqCst);
        //~ wrong: processed-first-snapshot
        //~ self.processed.fetch_add(1, Ordering::SeqCst);
        //~ wrong: load-then-store-zero
        //~ self.processed.fetch_add(1, Ordering::SeqCst);
        //~ wrong: retry-once-snapshot
        //~ self.processed.fetch_add(1, Ordering::SeqCst);
        //~ wrong: lock-per-field
        //~ *self.processed.lock().unwrap() += 1;
        //~ alt: packed-atomic
        //~ self.both.fetch_add(1, Ordering::SeqCst);
        //~ alt: rwlock
        //~ self.write().processed += 1;
        //~ alt: spin-lock
        //~ self.with_lock(|| {
        //~     let processed = self.processed.load(Ordering::Relaxed);
        //~     self.processed.store(processed + 1, Ordering::Relaxed);
        //~ });
        //~ alt: owner-thread
        //~ self.tell(Request::Processed);
        //~ wrong: swap-per-count-report
        //~ self.processed.fetch_add(1, Ordering::SeqCst);
        //~ wrong: swap-processed-first
        //~ self.processed.fetch_add(1, Ordering::SeqCst);
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
        //~ wrong: atomic-load-then-store
        //~ Counts {
        //~     received: self.received.load(Ordering::SeqCst),
        //~     processed: self.processed.load(Ordering::SeqCst),
        //~ }
        //~ wrong: separate-atomics
        //~ Counts {
        //~     received: self.received.load(Ordering::SeqCst),
        //~     processed: self.processed.load(Ordering::SeqCst),
        //~ }
        //~ wrong: compare-exchange-once
        //~ Counts {
        //~     received: self.received.load(Ordering::SeqCst),
        //~     processed: self.processed.load(Ordering::SeqCst),
        //~ }
        //~ wrong: processed-first-snapshot
        //~ // processed first: every message counted in it was received before, so the pair
        //~ // can never show more finished than received.
        //~ let processed = self.processed.load(Ordering::SeqCst);
        //~ let received = self.received.load(Ordering::SeqCst);
        //~ Counts {
        //~     received,
        //~     processed,
        //~ }
        //~ wrong: load-then-store-zero
        //~ // Counts only grow: if `received` is the same before and after reading `processed`,
        //~ // it held that value at the instant `processed` was read, so the pair is that instant.
        //~ loop {
        //~     let received = self.received.load(Ordering::SeqCst);
        //~     let processed = self.processed.load(Ordering::SeqCst);
        //~     if self.received.load(Ordering::SeqCst) == received {
        //~         return Counts {
        //~             received,
        //~             processed,
        //~         };
        //~     }
        //~ }
        //~ wrong: retry-once-snapshot
        //~ // If received moved while we read processed, read both again: updates are rare, so
        //~ // the second pair is calm.
        //~ let received = self.received.load(Ordering::SeqCst);
        //~ let processed = self.processed.load(Ordering::SeqCst);
        //~ if self.received.load(Ordering::SeqCst) == received {
        //~     return Counts {
        //~         received,
        //~         processed,
        //~     };
        //~ }
        //~ Counts {
        //~     received: self.received.load(Ordering::SeqCst),
        //~     processed: self.processed.load(Ordering::SeqCst),
        //~ }
        //~ wrong: lock-per-field
        //~ let received = *self.received.lock().unwrap();
        //~ let processed = *self.processed.lock().unwrap();
        //~ Counts {
        //~     received,
        //~     processed,
        //~ }
        //~ alt: packed-atomic
        //~ let both = self.both.load(Ordering::SeqCst);
        //~ Counts {
        //~     received: both >> 32,
        //~     processed: both & 0xFFFF_FFFF,
        //~ }
        //~ alt: rwlock
        //~ *self.counts.read().unwrap()
        //~ alt: spin-lock
        //~ self.with_lock(|| Counts {
        //~     received: self.received.load(Ordering::Relaxed),
        //~     processed: self.processed.load(Ordering::Relaxed),
        //~ })
        //~ alt: owner-thread
        //~ let (reply, answer) = mpsc::sync_channel(1);
        //~ self.tell(Request::Snapshot(reply));
        //~ answer.recv().expect("the thread that owns the counts is gone")
        //~ wrong: swap-per-count-report
        //~ // Counts only grow: if `received` is the same before and after reading `processed`,
        //~ // it held that value at the instant `processed` was read, so the pair is that instant.
        //~ loop {
        //~     let received = self.received.load(Ordering::SeqCst);
        //~     let processed = self.processed.load(Ordering::SeqCst);
        //~     if self.received.load(Ordering::SeqCst) == received {
        //~         return Counts {
        //~             received,
        //~             processed,
        //~         };
        //~     }
        //~ }
        //~ wrong: swap-processed-first
        //~ // Counts only grow: if `received` is the same before and after reading `processed`,
        //~ // it held that value at the instant `processed` was read, so the pair is that instant.
        //~ loop {
        //~     let received = self.received.load(Ordering::SeqCst);
        //~     let processed = self.processed.load(Ordering::SeqCst);
        //~     if self.received.load(Ordering::SeqCst) == received {
        //~         return Counts {
        //~             received,
        //~             processed,
        //~         };
        //~     }
        //~ }
        //~ end
    }

    /// The counts since the last report, as one report: both counts as of one instant, at
    /// which the counts start again from zero. Like a snapshot, a report is read as a pair
    /// (received minus processed is the lag since the last report), so its two counts must
    /// have been true together.
    pub fn take_and_reset(&self) -> Counts {
        //~ site: split-reset
        // FIX: the report and the reset happen under one guard. Taken under two, an update
        // landing between them was neither in the report nor in the counts after the reset.
        std::mem::take(&mut *self.lock())
        //~ broken:
        //~ let report = self.snapshot();
        //~ *self.lock() = Counts::default();
        //~ report
        //~ wrong: atomic-load-then-store
        //~ Counts {
        //~     received: self.received.swap(0, Ordering::SeqCst),
        //~     processed: self.processed.swap(0, Ordering::SeqCst),
        //~ }
        //~ wrong: separate-atomics
        //~ Counts {
        //~     received: self.received.swap(0, Ordering::SeqCst),
        //~     processed: self.processed.swap(0, Ordering::SeqCst),
        //~ }
        //~ wrong: compare-exchange-once
        //~ Counts {
        //~     received: self.received.swap(0, Ordering::SeqCst),
        //~     processed: self.processed.swap(0, Ordering::SeqCst),
        //~ }
        //~ wrong: processed-first-snapshot
        //~ Counts {
        //~     received: self.received.swap(0, Ordering::SeqCst),
        //~     processed: self.processed.swap(0, Ordering::SeqCst),
        //~ }
        //~ wrong: retry-once-snapshot
        //~ Counts {
        //~     received: self.received.swap(0, Ordering::SeqCst),
        //~     processed: self.processed.swap(0, Ordering::SeqCst),
        //~ }
        //~ wrong: load-then-store-zero
        //~ // The snapshot is one instant (see above), so the report is exact; then start again.
        //~ let report = self.snapshot();
        //~ self.received.store(0, Ordering::SeqCst);
        //~ self.processed.store(0, Ordering::SeqCst);
        //~ report
        //~ wrong: lock-per-field
        //~ Counts {
        //~     received: std::mem::take(&mut *self.received.lock().unwrap()),
        //~     processed: std::mem::take(&mut *self.processed.lock().unwrap()),
        //~ }
        //~ alt: packed-atomic
        //~ let both = self.both.swap(0, Ordering::SeqCst);
        //~ Counts {
        //~     received: both >> 32,
        //~     processed: both & 0xFFFF_FFFF,
        //~ }
        //~ alt: rwlock
        //~ std::mem::take(&mut *self.write())
        //~ alt: spin-lock
        //~ self.with_lock(|| Counts {
        //~     received: self.received.swap(0, Ordering::Relaxed),
        //~     processed: self.processed.swap(0, Ordering::Relaxed),
        //~ })
        //~ alt: owner-thread
        //~ let (reply, answer) = mpsc::sync_channel(1);
        //~ self.tell(Request::TakeAndReset(reply));
        //~ answer.recv().expect("the thread that owns the counts is gone")
        //~ wrong: swap-per-count-report
        //~ // swap reads and zeroes a count in one step: every update is in this report or
        //~ // in the counts left for the next one, never in neither.
        //~ Counts {
        //~     received: self.received.swap(0, Ordering::SeqCst),
        //~     processed: self.processed.swap(0, Ordering::SeqCst),
        //~ }
        //~ wrong: swap-processed-first
        //~ // processed first: a finish counted in this report was received before the swap
        //~ // of received, so the report never shows more finished than received.
        //~ let processed = self.processed.swap(0, Ordering::SeqCst);
        //~ let received = self.received.swap(0, Ordering::SeqCst);
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

    //~ region
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .expect("a thread panicked while holding the progress lock")
    }
    //~ wrong: atomic-load-then-store
    //~ wrong: separate-atomics
    //~ wrong: compare-exchange-once
    //~ wrong: processed-first-snapshot
    //~ wrong: lock-per-field
    //~ wrong: load-then-store-zero
    //~ wrong: retry-once-snapshot
    //~ alt: packed-atomic
    //~ alt: rwlock
    //~ fn write(&self) -> RwLockWriteGuard<'_, Counts> {
    //~     self.counts.write().unwrap()
    //~ }
    //~ alt: spin-lock
    //~ /// Runs `f` while this thread holds `busy`; waits for it politely (yielding) if
    //~ /// another thread does.
    //~ fn with_lock<T>(&self, f: impl FnOnce() -> T) -> T {
    //~     while self
    //~         .busy
    //~         .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
    //~         .is_err()
    //~     {
    //~         thread::yield_now();
    //~     }
    //~     let value = f();
    //~     self.busy.store(false, Ordering::Release);
    //~     value
    //~ }
    //~ alt: owner-thread
    //~ fn tell(&self, request: Request) {
    //~     self.owner
    //~         .lock()
    //~         .unwrap()
    //~         .send(request)
    //~         .expect("the thread that owns the counts is gone");
    //~ }
    //~ wrong: swap-per-count-report
    //~ wrong: swap-processed-first
    //~ end
}
//~ region
//~ alt: owner-thread
//~
//~ /// The most requests waiting for the owner thread; a sender waits beyond that.
//~ const REQUESTS_MAX: usize = 64;
//~
//~ /// What the owner thread of the counts is asked to do.
//~ enum Request {
//~     Received,
//~     Processed,
//~     Snapshot(mpsc::SyncSender<Counts>),
//~     TakeAndReset(mpsc::SyncSender<Counts>),
//~ }
//~ end
