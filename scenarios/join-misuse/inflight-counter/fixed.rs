//! An indexer's flush: start one thread per job, at most `max_in_flight` at a time, and wait
//! until every job is finished.
//!
//! [`InFlight`] is this crate's `sync.WaitGroup`: a count of jobs in flight under a Mutex, and
//! a Condvar that `done` signals on every decrement (the dispatcher's back-pressure and the
//! final `wait` both wait on it). `flush` counts a job in before it starts its thread; the
//! job's thread indexes the document (its effect: the id lands in `indexed`) and only then
//! counts itself out.
//!
//! `flush` promises, for every batch and every schedule of its threads:
//! - at the moment its `wait` returns, every job of the batch has finished: its id is in
//!   `indexed`, exactly once ([`Flushed::indexed_at_wait`] is what it saw then);
//! - never more than `max_in_flight` jobs run at once;
//! - it returns, and no thread outlives it.
//!
//! Before each call that can block, a thread says on the [`Log`] what it is about to wait
//! for, as a service writes a debug line: when a run hangs, the last line of each thread says
//! where it stopped.
//!
//! Where it comes from: Go's `wg.Add(1)` called inside the goroutine instead of before the
//! `go` statement, so `wg.Wait()` can see zero before a goroutine has started (the compiler
//! accepts it; since Go 1.25, `go vet` reports it). Tu et al., "Understanding Real-World Concurrency Bugs in
//! Go" (ASPLOS 2019), list WaitGroup misuse among the blocking and non-blocking bugs they
//! found.

//~ region
use bughunt_kit::sync::{Arc, Condvar, Mutex};
//~ wrong: std-condvar
//~ // std's condition variable: the same API, nothing to learn.
//~ use bughunt_kit::sync::Arc;
//~ use std::sync::{Condvar, Mutex};
//~ end
use bughunt_kit::thread::{self, JoinHandle};

/// The thread that calls `flush`, as the log names it.
pub const DISPATCHER: &str = "dispatcher";

/// The name of the thread that runs job `id`.
pub fn worker_name(id: u64) -> String {
    format!("job-{id}")
}

/// What a flush returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flushed {
    /// The ids in `indexed` at the moment `wait` returned, in the order they landed.
    pub indexed_at_wait: Vec<u64>,
    /// The most jobs that ran at once.
    pub most_running: usize,
}

/// Where each thread says what it is about to wait for, before every call that can block.
#[derive(Clone)]
pub struct Log {
    line: Arc<dyn Fn(&str, String) + Send + Sync>,
}

impl Log {
    pub fn new(line: impl Fn(&str, String) + Send + Sync + 'static) -> Log {
        Log { line: Arc::new(line) }
    }

    /// A log that writes nowhere.
    pub fn quiet() -> Log {
        Log::new(|_, _| {})
    }

    pub fn line(&self, thread: &str, what: String) {
        (self.line)(thread, what)
    }
}

/// A count of jobs in flight, and a condition that changes whenever one finishes.
pub struct InFlight {
    count: Mutex<usize>,
    changed: Condvar,
}

impl InFlight {
    pub fn new() -> InFlight {
        InFlight { count: Mutex::new(0), changed: Condvar::new() }
    }

    /// Counts one more job in flight.
    pub fn add(&self) {
        *self.count.lock().unwrap() += 1;
    }

    /// Counts one job out, and wakes whoever waits for the count to change. Counting out a
    /// job that was never counted in is a bug, and panics (as Go's WaitGroup does).
    pub fn done(&self) {
        let mut count = self.count.lock().unwrap();
        *count = count
            .checked_sub(1)
            .expect("InFlight::done with a count of zero: a job was counted out before it was counted in");
        self.changed.notify_all();
    }

    /// Waits until fewer than `limit` jobs are in flight.
    pub fn wait_below(&self, limit: usize) {
        let mut count = self.count.lock().unwrap();
        //~ region
        while *count >= limit {
            count = self.changed.wait(count).unwrap();
        }
        //~ wrong: backpressure-off-by-one
        //~ // Room while the count has not passed the limit.
        //~ while *count > limit {
        //~     count = self.changed.wait(count).unwrap();
        //~ }
        //~ end
        drop(count);
    }

    /// Waits until no job is in flight.
    pub fn wait(&self) {
        let mut count = self.count.lock().unwrap();
        //~ site: wait-without-loop
        // FIX: every wake-up says only "the count changed": look again.
        while *count > 0 {
            count = self.changed.wait(count).unwrap();
        }
        //~ broken:
        //~ // Sleep until the jobs are done.
        //~ if *count > 0 {
        //~     count = self.changed.wait(count).unwrap();
        //~ }
        //~ wrong: loop-on-copied-count
        //~ let in_flight = *count;
        //~ let mut finished = 0;
        //~ while finished < in_flight {
        //~     count = self.changed.wait(count).unwrap();
        //~     finished += 1;
        //~ }
        //~ end
        drop(count);
    }
}

impl Default for InFlight {
    fn default() -> InFlight {
        InFlight::new()
    }
}

/// Indexes every job of `jobs` (document ids), at most `max_in_flight` at a time, and returns
/// what it saw the moment every job was counted out.
pub fn flush(jobs: &[u64], max_in_flight: usize, log: &Log) -> Flushed {
    let in_flight = Arc::new(InFlight::new());
    let indexed: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    // (running now, most at once): what the bound promise is checked against.
    let running: Arc<Mutex<(usize, usize)>> = Arc::new(Mutex::new((0, 0)));
    let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(jobs.len());
    for &id in jobs {
        log.line(DISPATCHER, format!("waits for fewer than {max_in_flight} jobs in flight"));
        in_flight.wait_below(max_in_flight);
        //~ site: add-inside-worker
        // FIX: counted in before the thread exists, so `wait` can never see it missing.
        in_flight.add();
        //~ broken:
        //~ // Each job counts itself in when it starts (see the worker).
        //~ wrong: add-after-spawn
        //~ // Counted in right after its thread is started (see below).
        //~ wrong: yield-before-wait
        //~ // Each job counts itself in when it starts (see the worker).
        //~ end
        let worker = {
            let in_flight = in_flight.clone();
            let indexed = indexed.clone();
            let running = running.clone();
            let log = log.clone();
            let name = worker_name(id);
            move || {
                //~ site: add-inside-worker
                //~ broken:
                //~ in_flight.add();
                //~ wrong: yield-before-wait
                //~ in_flight.add();
                //~ end
                {
                    let mut running = running.lock().unwrap();
                    running.0 += 1;
                    running.1 = running.1.max(running.0);
                }
                log.line(&name, format!("indexes document {id}"));
                //~ site: done-before-effect
                indexed.lock().unwrap().push(id);
                running.lock().unwrap().0 -= 1;
                // FIX: counted out only once its document is in the index.
                in_flight.done();
                //~ broken:
                //~ // Counted out as soon as the work is done; the bookkeeping follows.
                //~ in_flight.done();
                //~ indexed.lock().unwrap().push(id);
                //~ running.lock().unwrap().0 -= 1;
                //~ wrong: let-underscore-guard
                //~ // A guard counts the job out whatever happens, panics included.
                //~ let _ = Counted(&in_flight);
                //~ indexed.lock().unwrap().push(id);
                //~ running.lock().unwrap().0 -= 1;
                //~ alt: done-guard
                //~ // A guard counts the job out whatever happens, panics included: when it
                //~ // goes out of scope, after the document is in.
                //~ let _counted = Counted(&in_flight);
                //~ indexed.lock().unwrap().push(id);
                //~ running.lock().unwrap().0 -= 1;
                //~ end
                log.line(&name, "done".into());
            }
        };
        handles.push(
            thread::Builder::new()
                .name(worker_name(id))
                .spawn(worker)
                .expect("a worker thread could not start"),
        );
        //~ site: add-inside-worker
        //~ broken:
        //~ wrong: add-after-spawn
        //~ in_flight.add();
        //~ end
    }
    //~ region
    log.line(DISPATCHER, "waits until no job is in flight".into());
    in_flight.wait();
    //~ wrong: yield-before-wait
    //~ // Give the jobs just started a moment to count themselves in.
    //~ for _ in 0..3 {
    //~     thread::yield_now();
    //~ }
    //~ log.line(DISPATCHER, "waits until no job is in flight".into());
    //~ in_flight.wait();
    //~ alt: join-handles
    //~ // Joining every thread is waiting for every job, with nothing to count.
    //~ for handle in handles.drain(..) {
    //~     log.line(DISPATCHER, "waits for a job's thread to end (join)".into());
    //~     handle.join().expect("a job panicked");
    //~ }
    //~ alt: watch-the-index
    //~ // Done means indexed: wait until every id is in, looking again at every change.
    //~ log.line(DISPATCHER, "waits until every document is indexed".into());
    //~ while indexed.lock().unwrap().len() < jobs.len() {
    //~     thread::yield_now();
    //~ }
    //~ end
    let indexed_at_wait = indexed.lock().unwrap().clone();
    log.line(DISPATCHER, format!("wait returned: {} documents indexed", indexed_at_wait.len()));
    // Reap the threads: each has counted itself out, so none of these joins waits for work.
    for handle in handles {
        handle.join().expect("a job panicked");
    }
    let most_running = running.lock().unwrap().1;
    Flushed { indexed_at_wait, most_running }
}

//~ region
//~ wrong: let-underscore-guard
//~ /// Counts a job out when dropped.
//~ struct Counted<'a>(&'a InFlight);
//~
//~ impl Drop for Counted<'_> {
//~     fn drop(&mut self) {
//~         self.0.done();
//~     }
//~ }
//~ alt: done-guard
//~ /// Counts a job out when dropped.
//~ struct Counted<'a>(&'a InFlight);
//~
//~ impl Drop for Counted<'_> {
//~     fn drop(&mut self) {
//~         self.0.done();
//~     }
//~ }
//~ end
