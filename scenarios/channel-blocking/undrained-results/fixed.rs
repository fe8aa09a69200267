//! A worker pool that checksums a batch of files and collects the answers on one bounded
//! channel.
//!
//! `run_pool` splits the batch into one share per worker, starts the workers, and collects
//! their answers on `results`, a `sync_channel(results_capacity)`: the buffer lets the workers
//! run a little ahead of the coordinator without an unbounded queue. A worker that finds
//! `results` full waits for room, so the coordinator must keep taking answers for as long as
//! any worker may send one.
//!
//! `run_pool` promises, for every batch, every pool size and capacity, and every schedule:
//! - it returns;
//! - when every job succeeds, `Ok` with exactly one answer per job;
//! - when a job fails (an empty file), `Err` naming a failed job; it need not wait for the
//!   other jobs, and the workers still sending must stop instead of waiting for room;
//! - no worker outlives it: it joins every worker it started.
//!
//! Before each call that can block, a thread says on the [`Log`] what it is about to wait
//! for, as a service writes a debug line: when a run hangs, the last line of each thread
//! says where it stopped.
//!
//! Where it comes from: the Go pattern of workers sending results on a channel that the
//! coordinator reads only after `wg.Wait()` returns, which hangs as soon as the results
//! outnumber the buffer; and the first example of Tu et al., "Understanding Real-World
//! Concurrency Bugs in Go" (ASPLOS 2019), Kubernetes' finishRequest: a goroutine blocked
//! forever sending its result on a channel its parent had stopped reading.

//~ region
use bughunt_kit::sync::mpsc::{sync_channel, Receiver, SyncSender};
//~ wrong: std-channel
//~ // std's channels: the same API, and no crate to learn.
//~ use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
//~ end
use bughunt_kit::sync::Arc;
use bughunt_kit::thread::{self, JoinHandle};

/// The name the coordinator (the thread that calls `run_pool`) goes by in the log.
pub const COORDINATOR: &str = "coordinator";

/// One job of a batch: a file to checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    pub size_bytes: u64,
}

/// A job's answer when it succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    pub id: u64,
    pub checksum: u64,
}

/// Why a job failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobError {
    /// The file was empty: there is nothing to checksum.
    EmptyFile { id: u64 },
}

/// What a worker sends back for each job.
pub type Answer = Result<Done, JobError>;

/// How big the pool is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Worker threads to start (at least one is started).
    pub workers: usize,
    /// Answers `results` holds before a sending worker waits.
    pub results_capacity: usize,
}

/// The work itself: cheap and pure, so a test can say what every answer must be.
pub fn checksum(job: &Job) -> Answer {
    if job.size_bytes == 0 {
        return Err(JobError::EmptyFile { id: job.id });
    }
    Ok(Done {
        id: job.id,
        checksum: job.size_bytes.wrapping_mul(0x9e37_79b9).rotate_left(11) ^ job.id,
    })
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

/// Runs the batch on a pool of workers; see the crate docs for what it promises.
pub fn run_pool(batch: Vec<Job>, settings: Settings, log: &Log) -> Result<Vec<Done>, JobError> {
    //~ region
    let (results_tx, results) = sync_channel::<Answer>(settings.results_capacity);
    //~ wrong: buffer-four-times
    //~ // Four times the room: the workers never wait for the coordinator.
    //~ let (results_tx, results) = sync_channel::<Answer>(settings.results_capacity * 4);
    //~ alt: results-sized-to-batch
    //~ // Room for every answer of the batch: no worker ever waits, and the batch bounds it.
    //~ let (results_tx, results) = sync_channel::<Answer>(batch.len());
    //~ end
    let share = batch.len().div_ceil(settings.workers.max(1)).max(1);
    let workers: Vec<JoinHandle<()>> = batch
        .chunks(share)
        .enumerate()
        .map(|(index, jobs)| start_worker(index + 1, jobs.to_vec(), results_tx.clone(), log.clone()))
        .collect();
    //~ site: results-sender-kept
    // FIX: the workers hold the only senders now, so `results` closes when the last one is done.
    drop(results_tx);
    //~ broken:
    //~ // `results_tx` is dropped at the end of `run_pool`, with everything else.
    //~ end
    //~ site: join-before-drain
    let mut answers = Vec::with_capacity(batch.len());
    loop {
        log.line(COORDINATOR, "waits for an answer on `results`".into());
        let Ok(answer) = results.recv() else {
            break; // `results` is closed: every worker is done.
        };
        match answer {
            Ok(done) => answers.push(done),
            Err(failed) => return give_up(results, workers, failed, log),
        }
    }
    join_all(workers, log);
    Ok(answers)
    //~ broken:
    //~ // Let the workers finish first; then every answer is there to read.
    //~ join_all(workers, log);
    //~ let mut answers = Vec::with_capacity(batch.len());
    //~ loop {
    //~     log.line(COORDINATOR, "waits for an answer on `results`".into());
    //~     let Ok(answer) = results.recv() else {
    //~         break;
    //~     };
    //~     match answer {
    //~         Ok(done) => answers.push(done),
    //~         Err(failed) => return give_up(results, Vec::new(), failed, log),
    //~     }
    //~ }
    //~ Ok(answers)
    //~ wrong: buffer-four-times
    //~ join_all(workers, log);
    //~ let mut answers = Vec::with_capacity(batch.len());
    //~ loop {
    //~     log.line(COORDINATOR, "waits for an answer on `results`".into());
    //~     let Ok(answer) = results.recv() else {
    //~         break;
    //~     };
    //~     match answer {
    //~         Ok(done) => answers.push(done),
    //~         Err(failed) => return give_up(results, Vec::new(), failed, log),
    //~     }
    //~ }
    //~ Ok(answers)
    //~ wrong: try-send-answers
    //~ join_all(workers, log);
    //~ let mut answers = Vec::with_capacity(batch.len());
    //~ loop {
    //~     log.line(COORDINATOR, "waits for an answer on `results`".into());
    //~     let Ok(answer) = results.recv() else {
    //~         break;
    //~     };
    //~     match answer {
    //~         Ok(done) => answers.push(done),
    //~         Err(failed) => return give_up(results, Vec::new(), failed, log),
    //~     }
    //~ }
    //~ Ok(answers)
    //~ alt: results-sized-to-batch
    //~ join_all(workers, log);
    //~ let mut answers = Vec::with_capacity(batch.len());
    //~ loop {
    //~     log.line(COORDINATOR, "waits for an answer on `results`".into());
    //~     let Ok(answer) = results.recv() else {
    //~         break;
    //~     };
    //~     match answer {
    //~         Ok(done) => answers.push(done),
    //~         Err(failed) => return give_up(results, Vec::new(), failed, log),
    //~     }
    //~ }
    //~ Ok(answers)
    //~ wrong: join-in-turn
    //~ // Take one share of answers, then join the worker whose share that was.
    //~ let mut answers = Vec::with_capacity(batch.len());
    //~ for (index, worker) in workers.into_iter().enumerate() {
    //~     let its_share = share.min(batch.len() - index * share);
    //~     for _ in 0..its_share {
    //~         log.line(COORDINATOR, "waits for an answer on `results`".into());
    //~         let Ok(answer) = results.recv() else {
    //~             break;
    //~         };
    //~         match answer {
    //~             Ok(done) => answers.push(done),
    //~             Err(failed) => return give_up(results, Vec::new(), failed, log),
    //~         }
    //~     }
    //~     log.line(COORDINATOR, format!("waits for w{} to finish (join)", index + 1));
    //~     worker.join().expect("a worker panicked");
    //~ }
    //~ Ok(answers)
    //~ alt: collector-thread
    //~ // A thread of its own drains `results` while the coordinator joins the workers.
    //~ let collector = thread::Builder::new()
    //~     .name("collector".into())
    //~     .spawn({
    //~         let log = log.clone();
    //~         move || -> Result<Vec<Done>, JobError> {
    //~             let mut answers = Vec::new();
    //~             loop {
    //~                 log.line("collector", "waits for an answer on `results`".into());
    //~                 let Ok(answer) = results.recv() else {
    //~                     return Ok(answers);
    //~                 };
    //~                 // Returning drops `results`: a worker still sending gets an error.
    //~                 answers.push(answer?);
    //~             }
    //~         }
    //~     })
    //~     .expect("the collector thread could not start");
    //~ join_all(workers, log);
    //~ log.line(COORDINATOR, "waits for the collector to finish (join)".into());
    //~ collector.join().expect("the collector panicked")
    //~ end
}

/// Stops the pool after a failed job and reports it.
fn give_up(results: Receiver<Answer>, workers: Vec<JoinHandle<()>>, failed: JobError, log: &Log) -> Result<Vec<Done>, JobError> {
    //~ site: keep-receiver-on-error
    // FIX: close `results` first: a worker waiting for room gets an error and stops.
    drop(results);
    join_all(workers, log);
    //~ broken:
    //~ join_all(workers, log);
    //~ drop(results);
    //~ wrong: drain-what-is-there
    //~ // Empty the channel, so that no worker is stuck on a full buffer, then join.
    //~ while results.try_recv().is_ok() {}
    //~ join_all(workers, log);
    //~ drop(results);
    //~ wrong: return-without-joining
    //~ // The workers stop by themselves once `results` is gone.
    //~ drop(results);
    //~ drop(workers);
    //~ alt: drain-until-closed
    //~ // Take (and ignore) every answer still coming: the workers finish their shares.
    //~ while results.recv().is_ok() {}
    //~ join_all(workers, log);
    //~ end
    Err(failed)
}

/// Joins the workers in order.
fn join_all(workers: Vec<JoinHandle<()>>, log: &Log) {
    for (index, worker) in workers.into_iter().enumerate() {
        log.line(COORDINATOR, format!("waits for w{} to finish (join)", index + 1));
        worker.join().expect("a worker panicked");
    }
}

/// Starts worker `number` on its share of the batch: one answer per job, in order.
fn start_worker(number: usize, jobs: Vec<Job>, results: SyncSender<Answer>, log: Log) -> JoinHandle<()> {
    let name = format!("w{number}");
    thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            for job in jobs {
                let answer = checksum(&job);
                //~ region
                log.line(&name, format!("waits to send job {}'s answer on `results`", job.id));
                if results.send(answer).is_err() {
                    log.line(&name, "stops: nobody takes answers any more".into());
                    return;
                }
                //~ wrong: try-send-answers
                //~ // Never wait on `results`: if it is full, the coordinator is busy anyway.
                //~ let _ = results.try_send(answer);
                //~ wrong: spin-on-full
                //~ // Never block: offer the answer until there is room, letting others run.
                //~ log.line(&name, format!("offers job {}'s answer on `results` until there is room", job.id));
                //~ while results.try_send(answer).is_err() {
                //~     thread::yield_now();
                //~ }
                //~ end
            }
            log.line(&name, "done".into());
        })
        .expect("a worker thread could not start")
}
