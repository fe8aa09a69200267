//! Message ids for a queue's producers.
//!
//! Producer threads stamp every message they send with an id from one shared `IdAllocator`.
//! The allocator hands out the ids of a range leased for this process (`first..limit`, as in
//! hi/lo id allocation: when the range is spent the process leases the next one, elsewhere).
//! Consumers treat the ids as sequence numbers, so the allocator promises:
//!
//! - every id it hands out is in its range, and is handed out once;
//! - ids are dense: the ids handed out so far are always `first..first + k` for some `k`, so a
//!   consumer that sees a gap knows a message is missing, not that an id was skipped;
//! - a request is refused only when fewer ids are left than it asked for;
//! - `high_water()` is one past the highest id a producer has reported sent (`first` before
//!   any), and never goes backwards: a consumer that restarts resumes from it.
//!
//! Provenance: the atomicity violations that Tu et al. ("Understanding Real-World Concurrency
//! Bugs in Go", ASPLOS 2019) found behind most of the non-blocking bugs they studied, in the
//! shape every id generator has: read the counter, then write it back.

use std::ops::Range;

//~ region
use bughunt_kit::sync::atomic::{AtomicU64, Ordering};
//~ wrong: std-atomic
//~ // std's atomics: the same methods, and they are what production code uses.
//~ use std::sync::atomic::{AtomicU64, Ordering};
//~ wrong: lock-around-load-only
//~ use bughunt_kit::sync::atomic::{AtomicU64, Ordering};
//~ use bughunt_kit::sync::Mutex;
//~ alt: mutex-state
//~ use bughunt_kit::sync::Mutex;
//~ alt: spin-lock
//~ use bughunt_kit::sync::atomic::{AtomicBool, AtomicU64, Ordering};
//~ use bughunt_kit::thread;
//~ end

/// The ids of one leased range, shared by every producer of the process.
pub struct IdAllocator {
    /// The first id of the range.
    first: u64,
    /// One past the last id of the range.
    limit: u64,
    //~ region
    /// The next id to hand out: every id below it has been handed out.
    next: AtomicU64,
    /// One past the highest id reported sent.
    high: AtomicU64,
    //~ wrong: lock-around-load-only
    //~ next: AtomicU64,
    //~ high: AtomicU64,
    //~ /// Taken while reading `next`, so no two producers read it at once.
    //~ lock: Mutex<()>,
    //~ alt: mutex-state
    //~ state: Mutex<State>,
    //~ alt: spin-lock
    //~ /// True while a producer works on `next` and `high`.
    //~ busy: AtomicBool,
    //~ next: AtomicU64,
    //~ high: AtomicU64,
    //~ end
}

impl IdAllocator {
    /// An allocator for the ids `first..limit`.
    pub fn new(first: u64, limit: u64) -> Self {
        assert!(first <= limit, "the range {first}..{limit} is backwards");
        IdAllocator {
            first,
            limit,
            //~ region
            next: AtomicU64::new(first),
            high: AtomicU64::new(first),
            //~ wrong: lock-around-load-only
            //~ next: AtomicU64::new(first),
            //~ high: AtomicU64::new(first),
            //~ lock: Mutex::new(()),
            //~ alt: mutex-state
            //~ state: Mutex::new(State {
            //~     next: first,
            //~     high: first,
            //~ }),
            //~ alt: spin-lock
            //~ busy: AtomicBool::new(false),
            //~ next: AtomicU64::new(first),
            //~ high: AtomicU64::new(first),
            //~ end
        }
    }

    /// The first id of the range.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// A fresh id, or `None` when every id of the range has been handed out.
    pub fn next_id(&self) -> Option<u64> {
        //~ site: load-then-store
        // FIX: reading `next` and moving it on are one atomic step, so no two producers can
        // read the same value; when the range is spent the closure refuses and nothing moves.
        self.next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |next| {
                (next < self.limit).then_some(next + 1)
            })
            .ok()
        //~ broken:
        //~ let id = self.next.load(Ordering::SeqCst);
        //~ if id >= self.limit {
        //~     return None;
        //~ }
        //~ self.next.store(id + 1, Ordering::SeqCst);
        //~ Some(id)
        //~ wrong: check-then-fetch-add
        //~ // fetch_add takes the id in one atomic step; the check before it keeps ids in range.
        //~ if self.next.load(Ordering::SeqCst) >= self.limit {
        //~     return None;
        //~ }
        //~ Some(self.next.fetch_add(1, Ordering::SeqCst))
        //~ wrong: compare-exchange-once
        //~ let id = self.next.load(Ordering::SeqCst);
        //~ if id >= self.limit {
        //~     return None;
        //~ }
        //~ // compare_exchange refuses a stale write: if another producer moved `next` since we
        //~ // read it, we took nothing, and the producer asks again later.
        //~ self.next
        //~     .compare_exchange(id, id + 1, Ordering::SeqCst, Ordering::SeqCst)
        //~     .ok()
        //~ wrong: cas-retry-once
        //~ // A failed exchange means another producer got in first: read again and retry. Two
        //~ // producers colliding twice in a row is rare enough to report as busy.
        //~ for _ in 0..2 {
        //~     let id = self.next.load(Ordering::SeqCst);
        //~     if id >= self.limit {
        //~         return None;
        //~     }
        //~     if self
        //~         .next
        //~         .compare_exchange(id, id + 1, Ordering::SeqCst, Ordering::SeqCst)
        //~         .is_ok()
        //~     {
        //~         return Some(id);
        //~     }
        //~ }
        //~ None
        //~ wrong: lock-around-load-only
        //~ let id = {
        //~     let _reading = self.lock.lock().unwrap();
        //~     self.next.load(Ordering::SeqCst)
        //~ };
        //~ if id >= self.limit {
        //~     return None;
        //~ }
        //~ self.next.store(id + 1, Ordering::SeqCst);
        //~ Some(id)
        //~ alt: mutex-state
        //~ let mut state = self.state.lock().unwrap();
        //~ if state.next >= self.limit {
        //~     return None;
        //~ }
        //~ state.next += 1;
        //~ Some(state.next - 1)
        //~ alt: cas-loop
        //~ let mut id = self.next.load(Ordering::SeqCst);
        //~ loop {
        //~     if id >= self.limit {
        //~         return None;
        //~     }
        //~     match self
        //~         .next
        //~         .compare_exchange_weak(id, id + 1, Ordering::SeqCst, Ordering::SeqCst)
        //~     {
        //~         Ok(_) => return Some(id),
        //~         Err(now) => id = now,
        //~     }
        //~ }
        //~ alt: spin-lock
        //~ self.with_lock(|| {
        //~     let id = self.next.load(Ordering::Relaxed);
        //~     if id >= self.limit {
        //~         return None;
        //~     }
        //~     self.next.store(id + 1, Ordering::Relaxed);
        //~     Some(id)
        //~ })
        //~ end
    }

    /// `n` consecutive fresh ids (`n >= 1`) for a batch, or `None` when fewer than `n` ids are
    /// left (and then nothing is taken).
    pub fn reserve_block(&self, n: u64) -> Option<Range<u64>> {
        //~ site: block-in-two-steps
        // FIX: the room check and the move are one atomic step, and the block starts where
        // that step found `next`: a value read earlier may already belong to someone else.
        let start = self
            .next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |next| {
                (next + n <= self.limit).then_some(next + n)
            })
            .ok()?;
        Some(start..start + n)
        //~ broken:
        //~ let start = self.next.load(Ordering::SeqCst);
        //~ if start + n > self.limit {
        //~     return None;
        //~ }
        //~ self.next.fetch_add(n, Ordering::SeqCst);
        //~ Some(start..start + n)
        //~ wrong: block-of-single-ids
        //~ // A block is n ids: take them with next_id(), which is atomic.
        //~ if self.next.load(Ordering::SeqCst) + n > self.limit {
        //~     return None;
        //~ }
        //~ let start = self.next_id()?;
        //~ for _ in 1..n {
        //~     self.next_id()?;
        //~ }
        //~ Some(start..start + n)
        //~ wrong: fetch-sub-to-undo
        //~ let start = self.next.fetch_add(n, Ordering::SeqCst);
        //~ if start + n > self.limit {
        //~     // Too few ids left: give the n back, so `next` is where it was.
        //~     self.next.fetch_sub(n, Ordering::SeqCst);
        //~     return None;
        //~ }
        //~ Some(start..start + n)
        //~ alt: mutex-state
        //~ let mut state = self.state.lock().unwrap();
        //~ if state.next + n > self.limit {
        //~     return None;
        //~ }
        //~ state.next += n;
        //~ Some(state.next - n..state.next)
        //~ alt: cas-loop
        //~ let mut start = self.next.load(Ordering::SeqCst);
        //~ loop {
        //~     if start + n > self.limit {
        //~         return None;
        //~     }
        //~     match self
        //~         .next
        //~         .compare_exchange_weak(start, start + n, Ordering::SeqCst, Ordering::SeqCst)
        //~     {
        //~         Ok(_) => return Some(start..start + n),
        //~         Err(now) => start = now,
        //~     }
        //~ }
        //~ alt: spin-lock
        //~ self.with_lock(|| {
        //~     let start = self.next.load(Ordering::Relaxed);
        //~     if start + n > self.limit {
        //~         return None;
        //~     }
        //~     self.next.store(start + n, Ordering::Relaxed);
        //~     Some(start..start + n)
        //~ })
        //~ end
    }

    /// A producer has sent the message stamped `id`.
    pub fn mark_sent(&self, id: u64) {
        //~ site: high-water-backwards
        // FIX: raising the mark is one atomic step; a check and a store in two steps let a
        // lower id overwrite a higher one written in between, and the mark went backwards.
        self.high.fetch_max(id + 1, Ordering::SeqCst);
        //~ broken:
        //~ if self.high.load(Ordering::SeqCst) <= id {
        //~     self.high.store(id + 1, Ordering::SeqCst);
        //~ }
        //~ wrong: max-cas-once
        //~ let seen = self.high.load(Ordering::SeqCst);
        //~ if seen <= id {
        //~     // The exchange stores only if nobody moved the mark since we read it.
        //~     let _ = self
        //~         .high
        //~         .compare_exchange(seen, id + 1, Ordering::SeqCst, Ordering::SeqCst);
        //~ }
        //~ wrong: mark-is-next-id
        //~ // Every id below `next` was handed out to be sent, so the mark is `next` itself:
        //~ // nothing to record here, and nothing to race on.
        //~ let _ = id;
        //~ alt: mutex-state
        //~ let mut state = self.state.lock().unwrap();
        //~ state.high = state.high.max(id + 1);
        //~ alt: cas-loop
        //~ let mut seen = self.high.load(Ordering::SeqCst);
        //~ while seen <= id {
        //~     match self
        //~         .high
        //~         .compare_exchange_weak(seen, id + 1, Ordering::SeqCst, Ordering::SeqCst)
        //~     {
        //~         Ok(_) => break,
        //~         Err(now) => seen = now,
        //~     }
        //~ }
        //~ alt: spin-lock
        //~ self.with_lock(|| {
        //~     if self.high.load(Ordering::Relaxed) <= id {
        //~         self.high.store(id + 1, Ordering::Relaxed);
        //~     }
        //~ })
        //~ end
    }

    /// One past the highest id reported sent, or `first()` before any was.
    pub fn high_water(&self) -> u64 {
        //~ region
        self.high.load(Ordering::SeqCst)
        //~ wrong: mark-is-next-id
        //~ self.next.load(Ordering::SeqCst)
        //~ alt: mutex-state
        //~ self.state.lock().unwrap().high
        //~ alt: spin-lock
        //~ self.with_lock(|| self.high.load(Ordering::Relaxed))
        //~ end
    }
}
//~ region
//~ alt: mutex-state
//~
//~ /// The allocator's counters, changed under one lock.
//~ struct State {
//~     next: u64,
//~     high: u64,
//~ }
//~ alt: spin-lock
//~
//~ impl IdAllocator {
//~     /// Runs `work` while holding the allocator's spin lock; a producer that finds it taken
//~     /// yields until the holder is done.
//~     fn with_lock<T>(&self, work: impl FnOnce() -> T) -> T {
//~         while self
//~             .busy
//~             .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
//~             .is_err()
//~         {
//~             thread::yield_now();
//~         }
//~         let result = work();
//~         self.busy.store(false, Ordering::Release);
//~         result
//~     }
//~ }
//~ end
