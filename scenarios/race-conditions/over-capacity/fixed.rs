//! A bounded work queue between producer and consumer threads.
//!
//! Producers offer jobs with `try_push`, which refuses when the queue is full so the producer
//! can shed load or push back on its own caller; a batch producer first reserves room for its
//! whole batch with `try_reserve(n)` and then fills the slots with `push_reserved`, so the
//! batch goes in whole or not at all. Consumers take jobs with `try_pop`. The queue promises:
//!
//! - its depth (jobs queued plus slots reserved) never exceeds its capacity, at any instant;
//! - every job accepted is popped exactly once: none lost, none handed to two consumers;
//! - a push or a reservation is refused only when the queue is too full at that moment, and a
//!   pop finds nothing only when no job is queued at that moment.
//!
//! Every producer fills all the slots it reserved.
//!
//! Provenance: the check-then-act atomicity violations of Lu et al. ("Learning from Mistakes:
//! A Comprehensive Study on Real World Concurrency Bug Characteristics", ASPLOS 2008), which
//! found atomicity and order violations behind almost all of the non-deadlock bugs it studied,
//! in the form a bounded queue invites: `if len < capacity` under one lock, `push` under another.

use std::collections::VecDeque;

//~ region
use bughunt_kit::sync::{Mutex, MutexGuard};
//~ wrong: std-mutex
//~ // std's mutex: the same API, and no checker types in production code.
//~ use std::sync::{Mutex, MutexGuard};
//~ alt: atomic-slots
//~ use bughunt_kit::sync::atomic::{AtomicUsize, Ordering};
//~ use bughunt_kit::sync::Mutex;
//~ alt: two-locks-held-together
//~ use bughunt_kit::sync::Mutex;
//~ end

/// Room for jobs a producer has reserved and not pushed yet.
#[derive(Debug)]
pub struct Reservation {
    left: usize,
}

impl Reservation {
    /// Slots of this reservation not filled yet.
    pub fn left(&self) -> usize {
        self.left
    }
}

//~ region
/// What the lock protects: the jobs, and the slots reserved for jobs not pushed yet.
#[derive(Default)]
struct State {
    jobs: VecDeque<u64>,
    reserved: usize,
}

impl State {
    fn depth(&self) -> usize {
        self.jobs.len() + self.reserved
    }
}
//~ alt: ring-buffer
//~ /// A fixed ring of slots: `len` jobs from `head`, and slots reserved for jobs not pushed yet.
//~ struct State {
//~     ring: Vec<u64>,
//~     head: usize,
//~     len: usize,
//~     reserved: usize,
//~ }
//~
//~ impl State {
//~     fn depth(&self) -> usize {
//~         self.len + self.reserved
//~     }
//~
//~     fn put(&mut self, job: u64) {
//~         let at = (self.head + self.len) % self.ring.len();
//~         self.ring[at] = job;
//~         self.len += 1;
//~     }
//~
//~     fn take(&mut self) -> Option<u64> {
//~         if self.len == 0 {
//~             return None;
//~         }
//~         let job = self.ring[self.head];
//~         self.head = (self.head + 1) % self.ring.len();
//~         self.len -= 1;
//~         Some(job)
//~     }
//~ }
//~ alt: atomic-slots
//~ // No State: the slots are counted by an atomic, the jobs sit behind their own lock.
//~ end

/// A queue of job ids holding at most `capacity` jobs and reservations.
pub struct WorkQueue {
    capacity: usize,
    //~ region
    state: Mutex<State>,
    //~ alt: atomic-slots
    //~ /// Jobs queued plus slots reserved: taken before a job goes in, given back after it
    //~ /// comes out, so it is never below the jobs actually queued.
    //~ slots: AtomicUsize,
    //~ jobs: Mutex<VecDeque<u64>>,
    //~ alt: two-locks-held-together
    //~ /// Slots reserved; always locked before `jobs` when both are needed.
    //~ reserved: Mutex<usize>,
    //~ jobs: Mutex<VecDeque<u64>>,
    //~ end
}

impl WorkQueue {
    /// An empty queue for at most `capacity` jobs and reservations.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a queue needs room for one job");
        WorkQueue {
            capacity,
            //~ region
            state: Mutex::new(State::default()),
            //~ alt: ring-buffer
            //~ state: Mutex::new(State {
            //~     ring: vec![0; capacity],
            //~     head: 0,
            //~     len: 0,
            //~     reserved: 0,
            //~ }),
            //~ alt: atomic-slots
            //~ slots: AtomicUsize::new(0),
            //~ jobs: Mutex::new(VecDeque::new()),
            //~ alt: two-locks-held-together
            //~ reserved: Mutex::new(0),
            //~ jobs: Mutex::new(VecDeque::new()),
            //~ end
        }
    }

    /// The most jobs and reservations the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    //~ region
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
    //~ alt: atomic-slots
    //~ /// Takes `n` slots if that many are free, in one compare-exchange loop.
    //~ fn take_slots(&self, n: usize) -> bool {
    //~     let mut used = self.slots.load(Ordering::SeqCst);
    //~     loop {
    //~         if used + n > self.capacity {
    //~             return false;
    //~         }
    //~         match self
    //~             .slots
    //~             .compare_exchange_weak(used, used + n, Ordering::SeqCst, Ordering::SeqCst)
    //~         {
    //~             Ok(_) => return true,
    //~             Err(now) => used = now,
    //~         }
    //~     }
    //~ }
    //~ alt: two-locks-held-together
    //~ // Both locks, always in the same order (reserved, then jobs), held together.
    //~ end

    /// Jobs queued plus slots reserved, as of one instant.
    pub fn depth(&self) -> usize {
        //~ region
        self.lock().depth()
        //~ alt: atomic-slots
        //~ self.slots.load(Ordering::SeqCst)
        //~ alt: two-locks-held-together
        //~ let reserved = self.reserved.lock().unwrap();
        //~ let jobs = self.jobs.lock().unwrap();
        //~ jobs.len() + *reserved
        //~ end
    }

    /// Queues `job`, or gives it back (`Err`) when the queue is full.
    pub fn try_push(&self, job: u64) -> Result<(), u64> {
        //~ site: check-then-push
        // FIX: the room check and the push happen under one guard: no other producer can fill
        // the last slot between them.
        let mut state = self.lock();
        if state.depth() >= self.capacity {
            return Err(job);
        }
        state.jobs.push_back(job);
        Ok(())
        //~ broken:
        //~ if self.depth() >= self.capacity {
        //~     return Err(job);
        //~ }
        //~ self.lock().jobs.push_back(job);
        //~ Ok(())
        //~ wrong: try-lock-push
        //~ // A producer never waits for the lock: if another producer holds it, report busy
        //~ // and let the caller retry, as for a full queue.
        //~ let Ok(mut state) = self.state.try_lock() else {
        //~     return Err(job);
        //~ };
        //~ if state.depth() >= self.capacity {
        //~     return Err(job);
        //~ }
        //~ state.jobs.push_back(job);
        //~ Ok(())
        //~ wrong: push-ignores-reserved
        //~ let mut state = self.lock();
        //~ if state.jobs.len() >= self.capacity {
        //~     return Err(job);
        //~ }
        //~ state.jobs.push_back(job);
        //~ Ok(())
        //~ wrong: fast-path-far-from-full
        //~ // Far from full, two pushes cannot overfill the queue, so skip holding the lock
        //~ // for the check; only the last slot needs the careful path.
        //~ if self.depth() + 1 < self.capacity {
        //~     self.lock().jobs.push_back(job);
        //~     return Ok(());
        //~ }
        //~ let mut state = self.lock();
        //~ if state.depth() >= self.capacity {
        //~     return Err(job);
        //~ }
        //~ state.jobs.push_back(job);
        //~ Ok(())
        //~ alt: ring-buffer
        //~ let mut state = self.lock();
        //~ if state.depth() >= self.capacity {
        //~     return Err(job);
        //~ }
        //~ state.put(job);
        //~ Ok(())
        //~ alt: atomic-slots
        //~ if !self.take_slots(1) {
        //~     return Err(job);
        //~ }
        //~ self.jobs.lock().unwrap().push_back(job);
        //~ Ok(())
        //~ alt: two-locks-held-together
        //~ let reserved = self.reserved.lock().unwrap();
        //~ let mut jobs = self.jobs.lock().unwrap();
        //~ if jobs.len() + *reserved >= self.capacity {
        //~     return Err(job);
        //~ }
        //~ jobs.push_back(job);
        //~ Ok(())
        //~ end
    }

    /// Reserves room for `n` jobs, or `None` (reserving nothing) when fewer than `n` slots
    /// are free.
    pub fn try_reserve(&self, n: usize) -> Option<Reservation> {
        //~ site: reserve-after-check
        // FIX: the room check and the reservation happen under one guard.
        let mut state = self.lock();
        if state.depth() + n > self.capacity {
            return None;
        }
        state.reserved += n;
        Some(Reservation { left: n })
        //~ broken:
        //~ if self.depth() + n > self.capacity {
        //~     return None;
        //~ }
        //~ self.lock().reserved += n;
        //~ Some(Reservation { left: n })
        //~ wrong: reserve-checks-jobs-only
        //~ let mut state = self.lock();
        //~ if state.jobs.len() + n > self.capacity {
        //~     return None;
        //~ }
        //~ state.reserved += n;
        //~ Some(Reservation { left: n })
        //~ alt: ring-buffer
        //~ let mut state = self.lock();
        //~ if state.depth() + n > self.capacity {
        //~     return None;
        //~ }
        //~ state.reserved += n;
        //~ Some(Reservation { left: n })
        //~ alt: atomic-slots
        //~ self.take_slots(n).then_some(Reservation { left: n })
        //~ alt: two-locks-held-together
        //~ let mut reserved = self.reserved.lock().unwrap();
        //~ let jobs = self.jobs.lock().unwrap();
        //~ if jobs.len() + *reserved + n > self.capacity {
        //~     return None;
        //~ }
        //~ *reserved += n;
        //~ Some(Reservation { left: n })
        //~ end
    }

    /// Queues `job` in one of the slots of `reservation`. Never refuses: the room was
    /// reserved. Panics when the reservation has no slot left.
    pub fn push_reserved(&self, reservation: &mut Reservation, job: u64) {
        assert!(reservation.left > 0, "this reservation has no slot left");
        reservation.left -= 1;
        //~ region
        let mut state = self.lock();
        state.reserved -= 1;
        state.jobs.push_back(job);
        //~ alt: ring-buffer
        //~ let mut state = self.lock();
        //~ state.reserved -= 1;
        //~ state.put(job);
        //~ alt: atomic-slots
        //~ // The slot was taken when it was reserved; it now holds a job.
        //~ self.jobs.lock().unwrap().push_back(job);
        //~ alt: two-locks-held-together
        //~ let mut reserved = self.reserved.lock().unwrap();
        //~ let mut jobs = self.jobs.lock().unwrap();
        //~ *reserved -= 1;
        //~ jobs.push_back(job);
        //~ end
    }

    /// Takes the oldest job, or `None` when no job is queued.
    pub fn try_pop(&self) -> Option<u64> {
        //~ site: peek-then-take
        // FIX: the job is looked at and removed under one guard, so no two consumers can take
        // the same job, and the job removed is the job returned.
        self.lock().jobs.pop_front()
        //~ broken:
        //~ let job = *self.lock().jobs.front()?;
        //~ self.lock().jobs.pop_front();
        //~ Some(job)
        //~ wrong: remove-what-was-seen
        //~ // Remove the very job we looked at, wherever it is now, not whatever is in front.
        //~ let job = *self.lock().jobs.front()?;
        //~ let mut state = self.lock();
        //~ if let Some(at) = state.jobs.iter().position(|queued| *queued == job) {
        //~     state.jobs.remove(at);
        //~ }
        //~ Some(job)
        //~ alt: ring-buffer
        //~ self.lock().take()
        //~ alt: atomic-slots
        //~ let job = self.jobs.lock().unwrap().pop_front()?;
        //~ // Given back only once the job is out, so the count never falls below the queue.
        //~ self.slots.fetch_sub(1, Ordering::SeqCst);
        //~ Some(job)
        //~ alt: two-locks-held-together
        //~ self.jobs.lock().unwrap().pop_front()
        //~ end
    }
}
