//! A redelivery tracker: counts each message's delivery attempts, retries failed ones, and
//! dead-letters a message that failed `max_attempts` times.
//!
//! Consumers call `begin` when a message is delivered to them (it returns which attempt this
//! is), then `ack` it or `nack` it. A nacked message goes to the retry queue, unless it has
//! had its `max_attempts`, in which case it is dead-lettered. `drain_retries` redelivers
//! every message in the retry queue until the queue is empty. Two consumers share one
//! tracker.
//!
//! The tracker promises, for any messages and any schedule of the consumers: no consumer
//! waits forever; every message is settled exactly once (acked, or dead-lettered after
//! exactly `max_attempts` attempts) with the attempts it really had; and nothing is left
//! unsettled or in the retry queue once the consumers are done.
//!
//! Every lock is a `Lock`: a mutex with a name that says on the [`Log`], before each attempt,
//! which lock the thread is about to wait for, and when it holds or releases one. Its guard
//! is a value like any other: it unlocks when it is dropped, and a guard created inside a
//! `match`, `if let` or `while let` scrutinee is a temporary that Rust (edition 2021, which
//! this crate uses) drops only at the end of the whole `match`, `if let ... else` or loop.
//!
//! Where it comes from: Qin et al., "Understanding Memory and Thread Safety Practices and
//! Issues in Real-World Rust Programs" (PLDI 2020), found that most of the blocking bugs they
//! studied in Rust programs were double locks, many of them a guard that lived longer than
//! the programmer thought, as in a `match` on a locked value.

use std::collections::{BTreeMap, VecDeque};
use std::ops::{Deref, DerefMut};

//~ region
use bughunt_kit::sync::{Arc, Mutex, MutexGuard};
//~ wrong: std-mutex
//~ // std's mutex: the same API, one less crate in the picture.
//~ use bughunt_kit::sync::Arc;
//~ use std::sync::{Mutex, MutexGuard};
//~ end
use bughunt_kit::thread;

/// What a thread says on the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// About to wait for the lock of this name.
    Waits(&'static str),
    /// Now holds the lock of this name.
    Holds(&'static str),
    /// Has released the lock of this name.
    Releases(&'static str),
    /// Anything else worth a line.
    Says(String),
}

/// Where each thread says what it holds, waits for and does. A service would write these
/// lines to its debug log; the checks draw them.
#[derive(Clone)]
pub struct Log {
    line: Arc<dyn Fn(&str, Step) + Send + Sync>,
}

impl Log {
    pub fn new(line: impl Fn(&str, Step) + Send + Sync + 'static) -> Log {
        Log { line: Arc::new(line) }
    }

    /// A log that writes nowhere.
    pub fn quiet() -> Log {
        Log::new(|_, _| {})
    }

    /// Writes `step` in the name of the current thread.
    pub fn step(&self, step: Step) {
        let current = thread::current();
        (self.line)(current.name().unwrap_or("main"), step)
    }

    pub fn says(&self, what: String) {
        self.step(Step::Says(what))
    }
}

/// A mutex with a name, that logs every wait, acquisition and release.
pub struct Lock<T> {
    name: &'static str,
    inner: Mutex<T>,
    log: Log,
}

/// A held `Lock`: releases it (and says so) when dropped.
pub struct Guard<'a, T> {
    name: &'static str,
    log: &'a Log,
    inner: MutexGuard<'a, T>,
}

impl<T> Lock<T> {
    pub fn new(name: &'static str, value: T, log: Log) -> Lock<T> {
        Lock { name, inner: Mutex::new(value), log }
    }

    /// Waits for the lock. A thread that panicked while holding it left the data as it
    /// was; the dispatcher's data has no invariant a panic can break halfway.
    pub fn lock(&self) -> Guard<'_, T> {
        self.log.step(Step::Waits(self.name));
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.log.step(Step::Holds(self.name));
        Guard { name: self.name, log: &self.log, inner }
    }

    /// Takes the lock only if it is free now.
    pub fn try_lock(&self) -> Option<Guard<'_, T>> {
        let inner = self.inner.try_lock().ok()?;
        self.log.step(Step::Holds(self.name));
        Some(Guard { name: self.name, log: &self.log, inner })
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.log.step(Step::Releases(self.name));
    }
}


/// How a message was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settled {
    pub id: u64,
    /// Deliveries it had.
    pub attempts: u32,
    /// True if it was dead-lettered, false if acked.
    pub dead: bool,
}

/// Attempts per unsettled message, the retry queue and what was settled. No method ever
/// holds two of these locks at once.
pub struct Tracker {
    max_attempts: u32,
    attempts: Lock<BTreeMap<u64, u32>>,
    retry: Lock<VecDeque<u64>>,
    settled: Lock<Vec<Settled>>,
    log: Log,
}

impl Tracker {
    pub fn new(max_attempts: u32, log: Log) -> Tracker {
        Tracker {
            max_attempts,
            attempts: Lock::new("attempts", BTreeMap::new(), log.clone()),
            retry: Lock::new("retry", VecDeque::new(), log.clone()),
            settled: Lock::new("settled", Vec::new(), log.clone()),
            log,
        }
    }

    /// The attempt failed: the message is retried, or dead-lettered after `max_attempts`.
    pub fn nack(&self, id: u64) {
        //~ site: match-guard-lives-through-the-arms
        // FIX: the guard in a local, and dropped before the arms take other locks; the
        // dead-letter arm removes through that same guard.
        let mut attempts = self.attempts.lock();
        match attempts.get(&id).copied() {
            Some(n) if n >= self.max_attempts => {
                attempts.remove(&id);
                drop(attempts);
                self.log.says(format!("dead-letters message {id} after {n} attempts"));
                self.settled.lock().push(Settled { id, attempts: n, dead: true });
            }
            _ => {
                drop(attempts);
                self.retry.lock().push_back(id);
            }
        }
        //~ broken:
        //~ match self.attempts.lock().get(&id) {
        //~     Some(&n) if n >= self.max_attempts => {
        //~         self.attempts.lock().remove(&id);
        //~         self.log.says(format!("dead-letters message {id} after {n} attempts"));
        //~         self.settled.lock().push(Settled { id, attempts: n, dead: true });
        //~     }
        //~     _ => self.retry.lock().push_back(id),
        //~ }
        //~ wrong: copied-in-the-scrutinee
        //~ // `.copied()`: the scrutinee is a plain number, no borrow of the map is left.
        //~ match self.attempts.lock().get(&id).copied() {
        //~     Some(n) if n >= self.max_attempts => {
        //~         self.attempts.lock().remove(&id);
        //~         self.log.says(format!("dead-letters message {id} after {n} attempts"));
        //~         self.settled.lock().push(Settled { id, attempts: n, dead: true });
        //~     }
        //~     _ => self.retry.lock().push_back(id),
        //~ }
        //~ wrong: try-lock-in-the-arm
        //~ match self.attempts.lock().get(&id) {
        //~     Some(&n) if n >= self.max_attempts => {
        //~         // Never wait for `attempts` here: take it only if it is free.
        //~         if let Some(mut attempts) = self.attempts.try_lock() {
        //~             attempts.remove(&id);
        //~         }
        //~         self.log.says(format!("dead-letters message {id} after {n} attempts"));
        //~         self.settled.lock().push(Settled { id, attempts: n, dead: true });
        //~     }
        //~     _ => self.retry.lock().push_back(id),
        //~ }
        //~ alt: copy-out-first
        //~ // A `let` statement ends at its `;`, and its temporary guard with it.
        //~ let so_far = self.attempts.lock().get(&id).copied();
        //~ match so_far {
        //~     Some(n) if n >= self.max_attempts => {
        //~         self.attempts.lock().remove(&id);
        //~         self.log.says(format!("dead-letters message {id} after {n} attempts"));
        //~         self.settled.lock().push(Settled { id, attempts: n, dead: true });
        //~     }
        //~     _ => self.retry.lock().push_back(id),
        //~ }
        //~ end
    }

    /// Counts a delivery of `id`; returns which attempt this is (1 for the first).
    pub fn begin(&self, id: u64) -> u32 {
        //~ site: if-let-else-relocks
        // FIX: one guard, in a local, for the lookup and the insert: in edition 2021 a
        // guard made in an `if let` scrutinee lives through the `else` block too.
        let mut attempts = self.attempts.lock();
        if let Some(n) = attempts.get_mut(&id) {
            *n += 1;
            *n
        } else {
            attempts.insert(id, 1);
            1
        }
        //~ broken:
        //~ if let Some(n) = self.attempts.lock().get_mut(&id) {
        //~     *n += 1;
        //~     *n
        //~ } else {
        //~     self.attempts.lock().insert(id, 1);
        //~     1
        //~ }
        //~ wrong: clone-the-map
        //~ // Hold no guard while deciding: copy the map, change the copy, put it back.
        //~ let mut copy = self.attempts.lock().clone();
        //~ let n = copy.entry(id).or_insert(0);
        //~ *n += 1;
        //~ let attempt = *n;
        //~ *self.attempts.lock() = copy;
        //~ attempt
        //~ alt: entry-api
        //~ // One expression, one guard: the entry API finds or inserts in a single lookup.
        //~ let mut attempts = self.attempts.lock();
        //~ let n = attempts.entry(id).or_insert(0);
        //~ *n += 1;
        //~ *n
        //~ end
    }

    /// The message was handled: it is settled, with the attempts it had.
    pub fn ack(&self, id: u64) {
        // The guard is a temporary of this statement: dropped at the `;`.
        let attempts = self.attempts.lock().remove(&id).unwrap_or(0);
        self.log.says(format!("acks message {id} after {attempts} attempts"));
        self.settled.lock().push(Settled { id, attempts, dead: false });
    }

    /// Redelivers every message of the retry queue to `handle`, until the queue is empty
    /// (a message that fails again goes back into it).
    pub fn drain_retries(&self, handle: &impl Fn(u64, u32) -> bool) {
        //~ site: while-let-relocks-the-queue
        // FIX: pop in a statement of its own: its guard is dropped at the `;`, before the
        // redelivery (whose nack pushes onto `retry`) runs. A `while let` scrutinee's guard
        // lives through the whole body, in every edition.
        loop {
            let next = self.retry.lock().pop_front();
            let Some(id) = next else { break };
            self.deliver(id, handle);
        }
        //~ broken:
        //~ while let Some(id) = self.retry.lock().pop_front() {
        //~     self.deliver(id, handle);
        //~ }
        //~ wrong: block-around-the-scrutinee
        //~ // A block of its own ends the guard's life before the body runs.
        //~ while let Some(id) = { self.retry.lock().pop_front() } {
        //~     self.deliver(id, handle);
        //~ }
        //~ wrong: take-the-queue-once
        //~ // Take the whole queue under one lock, released before any redelivery.
        //~ let batch = std::mem::take(&mut *self.retry.lock());
        //~ for id in batch {
        //~     self.deliver(id, handle);
        //~ }
        //~ alt: copy-out-first
        //~ loop {
        //~     let Some(id) = self.retry.lock().pop_front() else { break };
        //~     self.deliver(id, handle);
        //~ }
        //~ alt: batch-until-empty
        //~ // Take the whole queue at once, redeliver it, and go again until nothing came back.
        //~ loop {
        //~     let batch = std::mem::take(&mut *self.retry.lock());
        //~     if batch.is_empty() {
        //~         break;
        //~     }
        //~     for id in batch {
        //~         self.deliver(id, handle);
        //~     }
        //~ }
        //~ end
    }

    /// Delivers `id` to `handle` (the message id and the attempt; true if it succeeded), then
    /// acks or nacks it.
    pub fn deliver(&self, id: u64, handle: &impl Fn(u64, u32) -> bool) {
        let attempt = self.begin(id);
        self.log.says(format!("attempt {attempt} at message {id}"));
        if handle(id, attempt) {
            self.ack(id)
        } else {
            self.nack(id)
        }
    }

    /// What was settled, in the order it was.
    pub fn settled(&self) -> Vec<Settled> {
        self.settled.lock().clone()
    }

    /// Messages delivered and not settled.
    pub fn unsettled(&self) -> Vec<u64> {
        self.attempts.lock().keys().copied().collect()
    }

    /// Messages waiting in the retry queue.
    pub fn retries_waiting(&self) -> usize {
        self.retry.lock().len()
    }
}

/// A consumer: delivers each of its messages once, then drains the retry queue.
pub fn consume(tracker: &Tracker, messages: &[u64], handle: impl Fn(u64, u32) -> bool) {
    for &id in messages {
        tracker.deliver(id, &handle);
    }
    tracker.drain_retries(&handle);
    tracker.log.says("done".into());
}
