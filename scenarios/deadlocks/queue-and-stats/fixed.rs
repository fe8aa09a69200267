//! A job dispatcher: workers take jobs from a shared queue, a reporter reads how far they are.
//!
//! `Dispatcher` keeps two locks: `queue`, the jobs waiting, and `stats`, the counters
//! (pushed, taken, requeued, done). Workers `take` a job, then either `complete` it or
//! `requeue` it (a failed first attempt goes back to the front of the queue); a reporter
//! thread calls `report` now and then.
//!
//! The dispatcher promises, for any jobs and any schedule of the threads: no thread waits
//! forever (every worker finishes once the queue is empty, the reporter finishes its
//! reports); every job is done exactly once; and every `Report` is one consistent moment:
//! `backlog + taken == pushed + requeued`, and no more jobs done than taken and not requeued.
//! A report is consistent only if it reads the queue and the counters together, so `report`
//! holds both locks at once, and so do `take` and `requeue`, which change both.
//!
//! Both locks are `Lock`s: a mutex with a name that says on the [`Log`], before each
//! attempt, which lock the thread is about to wait for, and when it holds or releases one,
//! as a service writes a debug line. When a run hangs, those lines say who held what.
//!
//! Where it comes from: lock-order inversion is the textbook deadlock (Coffman et al., 1971:
//! a cycle of threads, each holding what the next one waits for); most of the deadlocks Lu et
//! al. found in MySQL, Apache, Mozilla and OpenOffice ("Learning from Mistakes", ASPLOS 2008)
//! involved two threads and two resources, as here.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

//~ region
use bughunt_kit::sync::{Arc, Mutex, MutexGuard};
//~ wrong: std-mutex
//~ // std's mutex: the same API, one less crate in the picture.
//~ use bughunt_kit::sync::Arc;
//~ use std::sync::{Mutex, MutexGuard};
//~ end
use bughunt_kit::thread;

/// A job: an id and how many attempts it takes to succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    /// Attempts still to fail (each is requeued) before one succeeds.
    pub failures: u32,
}

/// One moment of the dispatcher, as the reporter sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Jobs waiting in the queue.
    pub backlog: usize,
    pub pushed: u64,
    pub taken: u64,
    pub requeued: u64,
    pub done: u64,
}

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

/// The counters. `backlog` is not among them: the queue's length is the backlog.
#[derive(Debug, Default)]
pub struct Stats {
    pub pushed: u64,
    pub taken: u64,
    pub requeued: u64,
    pub done: u64,
    /// The longest backlog a completion saw.
    pub backlog_max: usize,
    //~ region
    //~ alt: backlog-counted-in-stats
    //~ /// Jobs in the queue, counted with the other counters so a report needs `stats` alone.
    //~ pub backlog: usize,
    //~ end
}

/// The queue and its counters. Lock order: `queue`, then `stats`.
pub struct Dispatcher {
    //~ region
    queue: Lock<VecDeque<Job>>,
    stats: Lock<Stats>,
    //~ alt: one-lock-for-both
    //~ // One lock for the queue and its counters: nothing to order.
    //~ state: Lock<(VecDeque<Job>, Stats)>,
    //~ end
    log: Log,
}

impl Dispatcher {
    pub fn new(log: Log) -> Dispatcher {
        Dispatcher {
            //~ region
            queue: Lock::new("queue", VecDeque::new(), log.clone()),
            stats: Lock::new("stats", Stats::default(), log.clone()),
            //~ alt: one-lock-for-both
            //~ state: Lock::new("state", (VecDeque::new(), Stats::default()), log.clone()),
            //~ end
            log,
        }
    }

    /// Adds a job at the back of the queue.
    pub fn push(&self, job: Job) {
        //~ region
        let mut queue = self.queue.lock();
        let mut stats = self.stats.lock();
        //~ alt: stats-first-everywhere
        //~ let mut stats = self.stats.lock();
        //~ let mut queue = self.queue.lock();
        //~ alt: one-lock-for-both
        //~ let mut both = self.state.lock();
        //~ let (queue, stats) = &mut *both;
        //~ alt: backlog-counted-in-stats
        //~ let mut queue = self.queue.lock();
        //~ let mut stats = self.stats.lock();
        //~ stats.backlog += 1;
        //~ end
        queue.push_back(job);
        stats.pushed += 1;
    }

    /// Takes the job at the front of the queue, if any.
    pub fn take(&self) -> Option<Job> {
        //~ region
        let mut queue = self.queue.lock();
        let job = queue.pop_front()?;
        let mut stats = self.stats.lock();
        stats.taken += 1;
        Some(job)
        //~ wrong: take-releases-queue-first
        //~ // Never hold two locks: pop, release `queue`, then count.
        //~ let job = self.queue.lock().pop_front()?;
        //~ self.stats.lock().taken += 1;
        //~ Some(job)
        //~ alt: stats-first-everywhere
        //~ // The one order is `stats`, then `queue`, on every path.
        //~ let mut stats = self.stats.lock();
        //~ let mut queue = self.queue.lock();
        //~ let job = queue.pop_front()?;
        //~ stats.taken += 1;
        //~ Some(job)
        //~ alt: one-lock-for-both
        //~ let mut both = self.state.lock();
        //~ let (queue, stats) = &mut *both;
        //~ let job = queue.pop_front()?;
        //~ stats.taken += 1;
        //~ Some(job)
        //~ alt: backlog-counted-in-stats
        //~ // One lock at a time: the counters change together under `stats`, and the backlog
        //~ // they count shrinks only after the queue did, so it never goes below zero.
        //~ let job = self.queue.lock().pop_front()?;
        //~ let mut stats = self.stats.lock();
        //~ stats.taken += 1;
        //~ stats.backlog -= 1;
        //~ Some(job)
        //~ end
    }

    /// One consistent moment of the queue and its counters.
    pub fn report(&self) -> Report {
        //~ site: reporter-takes-stats-first
        // FIX: the same order as every other path: `queue`, then `stats`.
        let queue = self.queue.lock();
        let stats = self.stats.lock();
        Report {
            backlog: queue.len(),
            pushed: stats.pushed,
            taken: stats.taken,
            requeued: stats.requeued,
            done: stats.done,
        }
        //~ broken:
        //~ // The counters are what the reporter is about; the backlog goes with them.
        //~ let stats = self.stats.lock();
        //~ let queue = self.queue.lock();
        //~ Report {
        //~     backlog: queue.len(),
        //~     pushed: stats.pushed,
        //~     taken: stats.taken,
        //~     requeued: stats.requeued,
        //~     done: stats.done,
        //~ }
        //~ wrong: report-copies-stats-first
        //~ // Copy the counters out, release `stats`, then read the backlog: never two locks.
        //~ let stats = self.stats.lock();
        //~ let (pushed, taken, requeued, done) = (stats.pushed, stats.taken, stats.requeued, stats.done);
        //~ drop(stats);
        //~ let backlog = self.queue.lock().len();
        //~ Report { backlog, pushed, taken, requeued, done }
        //~ wrong: spin-try-lock-holding-stats
        //~ // Never block on `queue` while holding `stats`: try until it is free.
        //~ let stats = self.stats.lock();
        //~ let queue = loop {
        //~     match self.queue.try_lock() {
        //~         Some(queue) => break queue,
        //~         None => thread::yield_now(),
        //~     }
        //~ };
        //~ Report {
        //~     backlog: queue.len(),
        //~     pushed: stats.pushed,
        //~     taken: stats.taken,
        //~     requeued: stats.requeued,
        //~     done: stats.done,
        //~ }
        //~ wrong: try-lock-or-last-backlog
        //~ // If `queue` is busy, the backlog the last completion saw will do.
        //~ let stats = self.stats.lock();
        //~ let backlog = match self.queue.try_lock() {
        //~     Some(queue) => queue.len(),
        //~     None => stats.backlog_max,
        //~ };
        //~ Report {
        //~     backlog,
        //~     pushed: stats.pushed,
        //~     taken: stats.taken,
        //~     requeued: stats.requeued,
        //~     done: stats.done,
        //~ }
        //~ alt: back-off-and-retry
        //~ // Hold `stats`, try `queue`; if it is busy, release `stats` and start over after the
        //~ // other thread has had its turn. Nobody ever waits while holding a lock here.
        //~ loop {
        //~     let stats = self.stats.lock();
        //~     if let Some(queue) = self.queue.try_lock() {
        //~         return Report {
        //~             backlog: queue.len(),
        //~             pushed: stats.pushed,
        //~             taken: stats.taken,
        //~             requeued: stats.requeued,
        //~             done: stats.done,
        //~         };
        //~     }
        //~     drop(stats);
        //~     // The holder of `queue` needs no lock we hold; waiting for `queue` itself, with
        //~     // nothing held, cannot close a cycle.
        //~     drop(self.queue.lock());
        //~ }
        //~ alt: stats-first-everywhere
        //~ let stats = self.stats.lock();
        //~ let queue = self.queue.lock();
        //~ Report {
        //~     backlog: queue.len(),
        //~     pushed: stats.pushed,
        //~     taken: stats.taken,
        //~     requeued: stats.requeued,
        //~     done: stats.done,
        //~ }
        //~ alt: one-lock-for-both
        //~ let both = self.state.lock();
        //~ let (queue, stats) = &*both;
        //~ Report {
        //~     backlog: queue.len(),
        //~     pushed: stats.pushed,
        //~     taken: stats.taken,
        //~     requeued: stats.requeued,
        //~     done: stats.done,
        //~ }
        //~ alt: backlog-counted-in-stats
        //~ // Everything a report says is in `stats`: one lock, one moment.
        //~ let stats = self.stats.lock();
        //~ Report {
        //~     backlog: stats.backlog,
        //~     pushed: stats.pushed,
        //~     taken: stats.taken,
        //~     requeued: stats.requeued,
        //~     done: stats.done,
        //~ }
        //~ end
    }

    /// A job whose attempt failed goes back to the front of the queue, to be retried first.
    pub fn requeue(&self, job: Job) {
        //~ site: requeue-takes-stats-first
        // FIX: `queue`, then `stats`, like every other path.
        let mut queue = self.queue.lock();
        let mut stats = self.stats.lock();
        stats.requeued += 1;
        queue.push_front(job);
        //~ broken:
        //~ // Count the retry, then put the job back.
        //~ let mut stats = self.stats.lock();
        //~ stats.requeued += 1;
        //~ self.queue.lock().push_front(job);
        //~ wrong: requeue-in-two-steps
        //~ // One lock at a time: count the retry, release `stats`, then put the job back.
        //~ self.stats.lock().requeued += 1;
        //~ self.queue.lock().push_front(job);
        //~ alt: stats-first-everywhere
        //~ let mut stats = self.stats.lock();
        //~ stats.requeued += 1;
        //~ self.queue.lock().push_front(job);
        //~ alt: one-lock-for-both
        //~ let mut both = self.state.lock();
        //~ let (queue, stats) = &mut *both;
        //~ stats.requeued += 1;
        //~ queue.push_front(job);
        //~ alt: backlog-counted-in-stats
        //~ // Count the job back before it is in the queue, so the backlog counted is never
        //~ // below the queue's length; one lock at a time.
        //~ {
        //~     let mut stats = self.stats.lock();
        //~     stats.requeued += 1;
        //~     stats.backlog += 1;
        //~ }
        //~ self.queue.lock().push_front(job);
        //~ end
    }

    /// Counts a job done, and notes the backlog it left behind.
    pub fn complete(&self, job: Job) {
        self.log.says(format!("completes job {}", job.id));
        //~ site: helper-locks-queue-under-stats
        // FIX: read the backlog before taking `stats`: `backlog` takes `queue`, which must
        // never be waited for while `stats` is held.
        let backlog = self.backlog();
        let mut stats = self.stats.lock();
        stats.done += 1;
        stats.backlog_max = stats.backlog_max.max(backlog);
        //~ broken:
        //~ let mut stats = self.stats.lock();
        //~ stats.done += 1;
        //~ stats.backlog_max = stats.backlog_max.max(self.backlog());
        //~ alt: stats-first-everywhere
        //~ let mut stats = self.stats.lock();
        //~ stats.done += 1;
        //~ stats.backlog_max = stats.backlog_max.max(self.backlog());
        //~ alt: one-lock-for-both
        //~ let mut both = self.state.lock();
        //~ let (queue, stats) = &mut *both;
        //~ stats.done += 1;
        //~ stats.backlog_max = stats.backlog_max.max(queue.len());
        //~ alt: backlog-counted-in-stats
        //~ let mut stats = self.stats.lock();
        //~ stats.done += 1;
        //~ stats.backlog_max = stats.backlog_max.max(stats.backlog);
        //~ end
    }

    /// The jobs waiting now.
    pub fn backlog(&self) -> usize {
        //~ region
        self.queue.lock().len()
        //~ alt: one-lock-for-both
        //~ self.state.lock().0.len()
        //~ end
    }

}

/// A worker: takes jobs until the queue is empty; a failing attempt is requeued.
pub fn work(dispatcher: &Dispatcher) {
    while let Some(mut job) = dispatcher.take() {
        if job.failures > 0 {
            job.failures -= 1;
            dispatcher.log.says(format!("an attempt at job {} failed: requeues it", job.id));
            dispatcher.requeue(job);
        } else {
            dispatcher.complete(job);
        }
    }
    dispatcher.log.says("done: the queue is empty".into());
}
