//! A dispatcher that hands a batch of jobs to its worker thread over rendezvous channels.
//!
//! `run` starts one worker and hands it the batch one job at a time over `jobs`, a
//! `sync_channel(0)`: a rendezvous channel holds nothing, so a send there waits until the
//! worker is receiving, and the dispatcher never has more than one job in flight. The worker
//! answers each job on `results`, a rendezvous channel too, with the job's checksum.
//!
//! `run` promises, for every batch (none, one or many jobs) and every schedule of its two
//! threads: it returns; it returns exactly one answer per job; and no thread outlives it.
//!
//! Before each call that can block, a thread says on the [`Log`] what it is about to wait
//! for, as a service writes a debug line: when a run hangs, the last line of each thread
//! says where it stopped.
//!
//! Where it comes from: Tu et al., "Understanding Real-World Concurrency Bugs in Go"
//! (ASPLOS 2019), found that in the six large Go projects they studied, more of the blocking
//! bugs came from message passing than from shared memory, many of them a send or a receive
//! on a channel whose partner never comes.

//~ region
use bughunt_kit::sync::mpsc::{sync_channel, Receiver, SyncSender};
//~ wrong: std-channel
//~ // std's channels: the same API, and no crate to learn.
//~ use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
//~ wrong: poll-first-hand-over
//~ use bughunt_kit::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
//~ alt: unbounded-results
//~ use bughunt_kit::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
//~ alt: answers-in-a-vec
//~ use bughunt_kit::sync::mpsc::{sync_channel, Receiver, SyncSender};
//~ use bughunt_kit::sync::Mutex;
//~ end
use bughunt_kit::sync::Arc;
use bughunt_kit::thread::{self, JoinHandle};

/// The name the dispatcher goes by in the log.
pub const DISPATCHER: &str = "dispatcher";
/// The worker thread's name, in the log and to the thread library.
pub const WORKER: &str = "worker";

/// One job of a batch: a file to checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    pub size_bytes: u64,
}

/// A job's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    pub id: u64,
    pub checksum: u64,
}

/// The work itself: cheap and pure, so a test can say what every answer must be.
pub fn checksum(job: &Job) -> u64 {
    job.size_bytes.wrapping_mul(0x9e37_79b9).rotate_left(7) ^ job.id
}

/// Where each thread says what it is about to wait for, before every call that can block.
/// A service would write these lines to its debug log; the checks draw them.
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

/// Runs the batch on a worker of its own and returns one answer per job.
pub fn run(batch: Vec<Job>, log: &Log) -> Vec<Done> {
    //~ region
    let (jobs, jobs_rx) = sync_channel::<Job>(0);
    let (results_tx, results) = sync_channel::<Done>(0);
    //~ wrong: results-buffer-of-four
    //~ let (jobs, jobs_rx) = sync_channel::<Job>(0);
    //~ // Room for a few answers, so the worker never waits for the dispatcher.
    //~ let (results_tx, results) = sync_channel::<Done>(4);
    //~ wrong: jobs-buffer-of-four
    //~ // Room for a few jobs, so the dispatcher never waits for the worker.
    //~ let (jobs, jobs_rx) = sync_channel::<Job>(4);
    //~ let (results_tx, results) = sync_channel::<Done>(0);
    //~ alt: unbounded-results
    //~ let (jobs, jobs_rx) = sync_channel::<Job>(0);
    //~ // Unbounded, and still bounded by the program: it never holds more than the batch.
    //~ let (results_tx, results) = channel::<Done>();
    //~ alt: answers-in-a-vec
    //~ let (jobs, jobs_rx) = sync_channel::<Job>(0);
    //~ let collected = Arc::new(Mutex::new(Vec::with_capacity(batch.len())));
    //~ let results_tx = collected.clone();
    //~ end
    let total = batch.len();
    let mut answers: Vec<Done> = Vec::with_capacity(total);
    //~ site: send-before-spawn
    let worker = start_worker(jobs_rx, results_tx, log.clone());
    //~ broken:
    //~ // Hand the first job over before the worker starts, so it has work the moment it runs.
    //~ let mut batch = batch.into_iter();
    //~ let first = batch.next();
    //~ if let Some(job) = first {
    //~     hand(&jobs, job, log);
    //~ }
    //~ let worker = start_worker(jobs_rx, results_tx, log.clone());
    //~ if first.is_some() {
    //~     answers.push(take_answer(&results, log));
    //~ }
    //~ wrong: poll-first-hand-over
    //~ // Offer the first job until the worker takes it, then start the worker.
    //~ let mut batch = batch.into_iter();
    //~ if let Some(mut job) = batch.next() {
    //~     log.line(DISPATCHER, format!("offers job {} on `jobs` until someone takes it", job.id));
    //~     while let Err(TrySendError::Full(back)) = jobs.try_send(job) {
    //~         job = back;
    //~         thread::yield_now();
    //~     }
    //~     answers.push(take_answer(&results, log));
    //~ }
    //~ let worker = start_worker(jobs_rx, results_tx, log.clone());
    //~ end
    //~ site: send-all-then-receive
    for job in batch {
        hand(&jobs, job, log);
        answers.push(take_answer(&results, log));
    }
    //~ broken:
    //~ for job in batch {
    //~     hand(&jobs, job, log);
    //~ }
    //~ // Every job is out; now collect the answers.
    //~ while answers.len() < total {
    //~     answers.push(take_answer(&results, log));
    //~ }
    //~ wrong: results-buffer-of-four
    //~ for job in batch {
    //~     hand(&jobs, job, log);
    //~ }
    //~ while answers.len() < total {
    //~     answers.push(take_answer(&results, log));
    //~ }
    //~ wrong: jobs-buffer-of-four
    //~ for job in batch {
    //~     hand(&jobs, job, log);
    //~ }
    //~ while answers.len() < total {
    //~     answers.push(take_answer(&results, log));
    //~ }
    //~ wrong: try-send-answers
    //~ for job in batch {
    //~     hand(&jobs, job, log);
    //~ }
    //~ while answers.len() < total {
    //~     answers.push(take_answer(&results, log));
    //~ }
    //~ alt: unbounded-results
    //~ for job in batch {
    //~     hand(&jobs, job, log);
    //~ }
    //~ while answers.len() < total {
    //~     answers.push(take_answer(&results, log));
    //~ }
    //~ alt: answers-in-a-vec
    //~ for job in batch {
    //~     hand(&jobs, job, log);
    //~ }
    //~ alt: feeder-thread
    //~ // A thread of its own hands the jobs over, so the dispatcher is free to take answers.
    //~ let feeder = thread::Builder::new()
    //~     .name("feeder".into())
    //~     .spawn({
    //~         let log = log.clone();
    //~         move || {
    //~             for job in batch {
    //~                 log.line("feeder", format!("waits to hand job {} to the worker on `jobs`", job.id));
    //~                 if jobs.send(job).is_err() {
    //~                     return;
    //~                 }
    //~             }
    //~             // Dropping `jobs` here tells the worker that the batch is over.
    //~         }
    //~     })
    //~     .expect("the feeder thread could not start");
    //~ while answers.len() < total {
    //~     answers.push(take_answer(&results, log));
    //~ }
    //~ log.line(DISPATCHER, "waits for the feeder to finish (join)".into());
    //~ feeder.join().expect("the feeder panicked");
    //~ end
    //~ site: sender-kept-alive
    // FIX: closing `jobs` is how the worker learns that the batch is over.
    drop(jobs);
    //~ broken:
    //~ // The worker stops by itself once it has nothing left to do.
    //~ alt: feeder-thread
    //~ // `jobs` went with the feeder, which dropped it when the batch was out.
    //~ wrong: detach-worker
    //~ // No need to wait for the worker: it stops by itself once `jobs` is dropped.
    //~ // (the JoinHandle is dropped here: the worker is detached)
    //~ return answers;
    //~ end
    log.line(DISPATCHER, "waits for the worker to finish (join)".into());
    worker.join().expect("the worker panicked");
    //~ region
    answers
    //~ alt: answers-in-a-vec
    //~ let mut collected = collected.lock().expect("the worker panicked while answering");
    //~ std::mem::take(&mut *collected)
    //~ end
}

/// Hands one job to the worker: waits until the worker takes it.
fn hand(jobs: &SyncSender<Job>, job: Job, log: &Log) {
    log.line(DISPATCHER, format!("waits to hand job {} to the worker on `jobs`", job.id));
    jobs.send(job).expect("the worker stopped before the batch was over");
}

/// Waits for the worker's next answer.
fn take_answer(results: &Receiver<Done>, log: &Log) -> Done {
    log.line(DISPATCHER, "waits for an answer on `results`".into());
    results.recv().expect("the worker stopped before answering")
}

//~ region
/// Starts the worker: it takes jobs until `jobs` is closed and answers each on `results`.
fn start_worker(jobs: Receiver<Job>, results: SyncSender<Done>, log: Log) -> JoinHandle<()> {
    thread::Builder::new()
        .name(WORKER.into())
        .spawn(move || loop {
            log.line(WORKER, "waits for a job on `jobs`".into());
            let Ok(job) = jobs.recv() else {
                log.line(WORKER, "done: `jobs` is closed".into());
                return;
            };
            let done = Done { id: job.id, checksum: checksum(&job) };
            log.line(WORKER, format!("waits to send job {}'s answer on `results`", job.id));
            if results.send(done).is_err() {
                return; // Nobody is listening any more.
            }
        })
        .expect("the worker thread could not start")
}
//~ wrong: try-send-answers
//~ /// Starts the worker: it takes jobs until `jobs` is closed and answers each on `results`.
//~ fn start_worker(jobs: Receiver<Job>, results: SyncSender<Done>, log: Log) -> JoinHandle<()> {
//~     thread::Builder::new()
//~         .name(WORKER.into())
//~         .spawn(move || loop {
//~             log.line(WORKER, "waits for a job on `jobs`".into());
//~             let Ok(job) = jobs.recv() else {
//~                 log.line(WORKER, "done: `jobs` is closed".into());
//~                 return;
//~             };
//~             let done = Done { id: job.id, checksum: checksum(&job) };
//~             // Never wait on `results`: if the dispatcher is busy, it is busy.
//~             let _ = results.try_send(done);
//~         })
//~         .expect("the worker thread could not start")
//~ }
//~ alt: unbounded-results
//~ /// Starts the worker: it takes jobs until `jobs` is closed and answers each on `results`.
//~ fn start_worker(jobs: Receiver<Job>, results: Sender<Done>, log: Log) -> JoinHandle<()> {
//~     thread::Builder::new()
//~         .name(WORKER.into())
//~         .spawn(move || loop {
//~             log.line(WORKER, "waits for a job on `jobs`".into());
//~             let Ok(job) = jobs.recv() else {
//~                 log.line(WORKER, "done: `jobs` is closed".into());
//~                 return;
//~             };
//~             let done = Done { id: job.id, checksum: checksum(&job) };
//~             // An unbounded send never waits.
//~             if results.send(done).is_err() {
//~                 return;
//~             }
//~         })
//~         .expect("the worker thread could not start")
//~ }
//~ alt: answers-in-a-vec
//~ /// Starts the worker: it takes jobs until `jobs` is closed and keeps each answer in `answers`.
//~ fn start_worker(jobs: Receiver<Job>, answers: Arc<Mutex<Vec<Done>>>, log: Log) -> JoinHandle<()> {
//~     thread::Builder::new()
//~         .name(WORKER.into())
//~         .spawn(move || loop {
//~             log.line(WORKER, "waits for a job on `jobs`".into());
//~             let Ok(job) = jobs.recv() else {
//~                 log.line(WORKER, "done: `jobs` is closed".into());
//~                 return;
//~             };
//~             let done = Done { id: job.id, checksum: checksum(&job) };
//~             answers.lock().expect("the dispatcher panicked").push(done);
//~         })
//~         .expect("the worker thread could not start")
//~ }
//~ end
