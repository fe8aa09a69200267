//! A worker pool: a fixed number of tokio tasks share one job channel and hand each job to a
//! sink, for as long as the service runs.
//!
//! Jobs come in through [`Pool::submit`]. Monitoring reads the pool through a [`Gauge`]
//! (how many jobs wait, how often a worker had nothing to do), and keeps its gauge for as
//! long as it likes, after the pool has shut down too.
//!
//! The promises: [`Pool::shutdown`] takes no new job, lets the workers finish every job
//! already submitted, and returns once every worker task has ended, so nothing touches the
//! sink afterwards; each job is done once, by one worker, with at most `size` jobs in the
//! sink at a time.
//!
//! Where it comes from: Tu et al., "Understanding Real-World Concurrency Bugs in Go" (ASPLOS
//! 2019), found that message passing caused more of the blocking bugs they studied than
//! shared memory did: goroutines waiting on a channel operation nobody would ever complete,
//! such as a receive from a channel nobody closes. A Rust channel closes by itself when its
//! last `Sender` is dropped, which makes the same leak one forgotten clone away.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bughunt_kit::sink::Sink;
//~ region
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio::time::{interval, MissedTickBehavior};
//~ alt: joinset-workers
//~ use tokio::sync::{mpsc, Mutex};
//~ use tokio::task::{JoinHandle, JoinSet};
//~ use tokio::time::{interval, MissedTickBehavior};
//~ alt: timeout-as-idle-tick
//~ use tokio::sync::{mpsc, Mutex};
//~ use tokio::task::JoinHandle;
//~ use tokio::time::timeout;
//~ wrong: spawn-per-job
//~ use tokio::sync::{mpsc, Mutex};
//~ use tokio::task::JoinHandle;
//~ use tokio::time::{interval, MissedTickBehavior};
//~ alt: dispatcher
//~ use tokio::sync::{mpsc, oneshot, Mutex};
//~ use tokio::task::JoinHandle;
//~ use tokio::time::{interval, MissedTickBehavior};
//~ end

/// How long a worker waits for a job before it counts an idle tick.
pub const IDLE_TICK_MS: u64 = 1_000;

/// One unit of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
}

/// The receiving end of the job channel, shared by the workers: one of them waits in `recv`
/// at a time, the others wait for the lock.
type SharedJobs = Arc<Mutex<mpsc::Receiver<Job>>>;

//~ site: gauge-holds-a-sender
/// What monitoring reads. Monitoring may keep a gauge for as long as it likes.
#[derive(Clone, Debug)]
pub struct Gauge {
    // FIX: a weak sender can read the channel's depth, but it does not keep the channel open.
    // Once the pool drops its `Sender`, the channel closes, whoever still holds a gauge.
    jobs: mpsc::WeakSender<Job>,
    idle_ticks: Arc<AtomicU64>,
}

impl Gauge {
    fn new(jobs: &mpsc::Sender<Job>, idle_ticks: Arc<AtomicU64>) -> Gauge {
        Gauge {
            jobs: jobs.downgrade(),
            idle_ticks,
        }
    }

    /// Jobs submitted and not yet taken by a worker.
    pub fn waiting(&self) -> usize {
        match self.jobs.upgrade() {
            Some(jobs) => jobs.max_capacity() - jobs.capacity(),
            // Nobody can send any more: the pool has shut down.
            None => 0,
        }
    }
//~ broken:
//~ /// What monitoring reads. Monitoring may keep a gauge for as long as it likes.
//~ #[derive(Clone, Debug)]
//~ pub struct Gauge {
//~     /// A handle on the job channel, to read how full it is.
//~     jobs: mpsc::Sender<Job>,
//~     idle_ticks: Arc<AtomicU64>,
//~ }
//~
//~ impl Gauge {
//~     fn new(jobs: &mpsc::Sender<Job>, idle_ticks: Arc<AtomicU64>) -> Gauge {
//~         Gauge {
//~             jobs: jobs.clone(),
//~             idle_ticks,
//~         }
//~     }
//~
//~     /// Jobs submitted and not yet taken by a worker.
//~     pub fn waiting(&self) -> usize {
//~         self.jobs.max_capacity() - self.jobs.capacity()
//~     }
//~ wrong: drop-own-gauge-first
//~ /// What monitoring reads. Monitoring may keep a gauge for as long as it likes.
//~ #[derive(Clone, Debug)]
//~ pub struct Gauge {
//~     /// A handle on the job channel, to read how full it is.
//~     jobs: mpsc::Sender<Job>,
//~     idle_ticks: Arc<AtomicU64>,
//~ }
//~
//~ impl Gauge {
//~     fn new(jobs: &mpsc::Sender<Job>, idle_ticks: Arc<AtomicU64>) -> Gauge {
//~         Gauge {
//~             jobs: jobs.clone(),
//~             idle_ticks,
//~         }
//~     }
//~
//~     /// Jobs submitted and not yet taken by a worker.
//~     pub fn waiting(&self) -> usize {
//~         self.jobs.max_capacity() - self.jobs.capacity()
//~     }
//~ wrong: abort-workers
//~ /// What monitoring reads. Monitoring may keep a gauge for as long as it likes.
//~ #[derive(Clone, Debug)]
//~ pub struct Gauge {
//~     /// A handle on the job channel, to read how full it is.
//~     jobs: mpsc::Sender<Job>,
//~     idle_ticks: Arc<AtomicU64>,
//~ }
//~
//~ impl Gauge {
//~     fn new(jobs: &mpsc::Sender<Job>, idle_ticks: Arc<AtomicU64>) -> Gauge {
//~         Gauge {
//~             jobs: jobs.clone(),
//~             idle_ticks,
//~         }
//~     }
//~
//~     /// Jobs submitted and not yet taken by a worker.
//~     pub fn waiting(&self) -> usize {
//~         self.jobs.max_capacity() - self.jobs.capacity()
//~     }
//~ wrong: join-with-deadline
//~ /// What monitoring reads. Monitoring may keep a gauge for as long as it likes.
//~ #[derive(Clone, Debug)]
//~ pub struct Gauge {
//~     /// A handle on the job channel, to read how full it is.
//~     jobs: mpsc::Sender<Job>,
//~     idle_ticks: Arc<AtomicU64>,
//~ }
//~
//~ impl Gauge {
//~     fn new(jobs: &mpsc::Sender<Job>, idle_ticks: Arc<AtomicU64>) -> Gauge {
//~         Gauge {
//~             jobs: jobs.clone(),
//~             idle_ticks,
//~         }
//~     }
//~
//~     /// Jobs submitted and not yet taken by a worker.
//~     pub fn waiting(&self) -> usize {
//~         self.jobs.max_capacity() - self.jobs.capacity()
//~     }
//~ wrong: exit-when-idle
//~ /// What monitoring reads. Monitoring may keep a gauge for as long as it likes.
//~ #[derive(Clone, Debug)]
//~ pub struct Gauge {
//~     /// A handle on the job channel, to read how full it is.
//~     jobs: mpsc::Sender<Job>,
//~     idle_ticks: Arc<AtomicU64>,
//~ }
//~
//~ impl Gauge {
//~     fn new(jobs: &mpsc::Sender<Job>, idle_ticks: Arc<AtomicU64>) -> Gauge {
//~         Gauge {
//~             jobs: jobs.clone(),
//~             idle_ticks,
//~         }
//~     }
//~
//~     /// Jobs submitted and not yet taken by a worker.
//~     pub fn waiting(&self) -> usize {
//~         self.jobs.max_capacity() - self.jobs.capacity()
//~     }
//~ wrong: stop-flag
//~ /// What monitoring reads. Monitoring may keep a gauge for as long as it likes.
//~ #[derive(Clone, Debug)]
//~ pub struct Gauge {
//~     /// A handle on the job channel, to read how full it is.
//~     jobs: mpsc::Sender<Job>,
//~     idle_ticks: Arc<AtomicU64>,
//~ }
//~
//~ impl Gauge {
//~     fn new(jobs: &mpsc::Sender<Job>, idle_ticks: Arc<AtomicU64>) -> Gauge {
//~         Gauge {
//~             jobs: jobs.clone(),
//~             idle_ticks,
//~         }
//~     }
//~
//~     /// Jobs submitted and not yet taken by a worker.
//~     pub fn waiting(&self) -> usize {
//~         self.jobs.max_capacity() - self.jobs.capacity()
//~     }
//~ wrong: gauge-reads-zero
//~ /// What monitoring reads. Monitoring may keep a gauge for as long as it likes.
//~ #[derive(Clone, Debug)]
//~ pub struct Gauge {
//~     // Holding any end of the channel keeps the workers waiting: hold none.
//~     idle_ticks: Arc<AtomicU64>,
//~ }
//~
//~ impl Gauge {
//~     fn new(_jobs: &mpsc::Sender<Job>, idle_ticks: Arc<AtomicU64>) -> Gauge {
//~         Gauge { idle_ticks }
//~     }
//~
//~     /// Jobs submitted and not yet taken by a worker.
//~     pub fn waiting(&self) -> usize {
//~         0
//~     }
//~ alt: close-the-receiver
//~ /// What monitoring reads. Monitoring may keep a gauge for as long as it likes.
//~ #[derive(Clone, Debug)]
//~ pub struct Gauge {
//~     /// A handle on the job channel, to read how full it is. It keeps the channel open, so
//~     /// shutdown closes the channel from the receiving end.
//~     jobs: mpsc::Sender<Job>,
//~     idle_ticks: Arc<AtomicU64>,
//~ }
//~
//~ impl Gauge {
//~     fn new(jobs: &mpsc::Sender<Job>, idle_ticks: Arc<AtomicU64>) -> Gauge {
//~         Gauge {
//~             jobs: jobs.clone(),
//~             idle_ticks,
//~         }
//~     }
//~
//~     /// Jobs submitted and not yet taken by a worker.
//~     pub fn waiting(&self) -> usize {
//~         self.jobs.max_capacity() - self.jobs.capacity()
//~     }
//~ alt: sender-taken-on-shutdown
//~ /// What monitoring reads. Monitoring may keep a gauge for as long as it likes.
//~ #[derive(Clone, Debug)]
//~ pub struct Gauge {
//~     /// A handle on the job channel while the pool runs; shutdown takes it out, so a gauge
//~     /// kept by monitoring holds no `Sender` once the pool has stopped.
//~     jobs: Arc<std::sync::Mutex<Option<mpsc::Sender<Job>>>>,
//~     idle_ticks: Arc<AtomicU64>,
//~ }
//~
//~ impl Gauge {
//~     fn new(jobs: &mpsc::Sender<Job>, idle_ticks: Arc<AtomicU64>) -> Gauge {
//~         Gauge {
//~             jobs: Arc::new(std::sync::Mutex::new(Some(jobs.clone()))),
//~             idle_ticks,
//~         }
//~     }
//~
//~     /// Lets go of the channel: every gauge, clones included, reads 0 from now on.
//~     fn let_go(&self) {
//~         self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
//~     }
//~
//~     /// Jobs submitted and not yet taken by a worker.
//~     pub fn waiting(&self) -> usize {
//~         let jobs = self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
//~         jobs.as_ref()
//~             .map_or(0, |jobs| jobs.max_capacity() - jobs.capacity())
//~     }
//~ end

    /// Times a worker waited [`IDLE_TICK_MS`] without a job.
    pub fn idle_ticks(&self) -> u64 {
        self.idle_ticks.load(Ordering::Relaxed)
    }
}

/// A running pool of workers. Call [`Pool::shutdown`] to stop it.
pub struct Pool {
    /// The pool's `Sender`. The channel closes when the last `Sender` is dropped: then each
    /// worker finishes what is queued, sees `None`, and ends.
    jobs: mpsc::Sender<Job>,
    gauge: Gauge,
    //~ region
    workers: Vec<JoinHandle<()>>,
    //~ alt: joinset-workers
    //~ workers: JoinSet<()>,
    //~ alt: close-the-receiver
    //~ workers: Vec<JoinHandle<()>>,
    //~ /// Kept to close the channel from the receiving end at shutdown.
    //~ receiver: SharedJobs,
    //~ wrong: stop-flag
    //~ workers: Vec<JoinHandle<()>>,
    //~ /// Set at shutdown; each worker looks at it before it takes a job.
    //~ stopping: Arc<std::sync::atomic::AtomicBool>,
    //~ end
}

impl Pool {
    /// Starts `size` workers on a job channel of `capacity` places.
    pub fn start(size: usize, capacity: usize, sink: Sink) -> Pool {
        let (jobs, receiver) = mpsc::channel(capacity);
        let receiver: SharedJobs = Arc::new(Mutex::new(receiver));
        let idle_ticks = Arc::new(AtomicU64::new(0));
        let gauge = Gauge::new(&jobs, Arc::clone(&idle_ticks));
        //~ region
        let workers = (1..=size)
            .map(|n| {
                let sink = sink.with_actor(format!("w{n}"));
                tokio::spawn(work(Arc::clone(&receiver), sink, Arc::clone(&idle_ticks)))
            })
            .collect();
        Pool {
            jobs,
            gauge,
            workers,
        }
        //~ alt: joinset-workers
        //~ let mut workers = JoinSet::new();
        //~ for n in 1..=size {
        //~     let sink = sink.with_actor(format!("w{n}"));
        //~     workers.spawn(work(Arc::clone(&receiver), sink, Arc::clone(&idle_ticks)));
        //~ }
        //~ Pool {
        //~     jobs,
        //~     gauge,
        //~     workers,
        //~ }
        //~ alt: close-the-receiver
        //~ let workers = (1..=size)
        //~     .map(|n| {
        //~         let sink = sink.with_actor(format!("w{n}"));
        //~         tokio::spawn(work(Arc::clone(&receiver), sink, Arc::clone(&idle_ticks)))
        //~     })
        //~     .collect();
        //~ Pool {
        //~     jobs,
        //~     gauge,
        //~     workers,
        //~     receiver,
        //~ }
        //~ alt: dispatcher
        //~ // One dispatcher takes the jobs off the channel and hands each to a worker that has
        //~ // asked for one; it is joined with the workers, first.
        //~ let (ready, asks) = mpsc::channel(size);
        //~ let mut workers = vec![tokio::spawn(dispatch(receiver, asks))];
        //~ workers.extend((1..=size).map(|n| {
        //~     let sink = sink.with_actor(format!("w{n}"));
        //~     tokio::spawn(work(ready.clone(), sink, Arc::clone(&idle_ticks)))
        //~ }));
        //~ Pool {
        //~     jobs,
        //~     gauge,
        //~     workers,
        //~ }
        //~ wrong: stop-flag
        //~ let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        //~ let workers = (1..=size)
        //~     .map(|n| {
        //~         let sink = sink.with_actor(format!("w{n}"));
        //~         let stopping = Arc::clone(&stopping);
        //~         tokio::spawn(work(Arc::clone(&receiver), sink, Arc::clone(&idle_ticks), stopping))
        //~     })
        //~     .collect();
        //~ Pool {
        //~     jobs,
        //~     gauge,
        //~     workers,
        //~     stopping,
        //~ }
        //~ end
    }

    /// A gauge on this pool, for monitoring.
    pub fn gauge(&self) -> Gauge {
        self.gauge.clone()
    }

    /// Queues `job`, waiting for room if the channel is full. Gives the job back only if no
    /// worker is left to take it.
    pub async fn submit(&self, job: Job) -> Result<(), Job> {
        self.jobs.send(job).await.map_err(|refused| refused.0)
    }

    /// Stops taking jobs, lets the workers finish every job already submitted, and returns
    /// once every worker task has ended.
    pub async fn shutdown(self) {
        //~ site: shutdown-without-join
        let Pool { jobs, workers, .. } = self;
        // The pool's `Sender` goes: once the queue is empty, each worker's `recv` says `None`.
        drop(jobs);
        // FIX: and wait, here, until each worker has really ended. Dropping the sender only
        // asks them to stop; they may still be draining the queue or halfway through a job.
        for worker in workers {
            join(worker).await;
        }
        //~ broken:
        //~ let Pool { jobs, .. } = self;
        //~ // The pool's `Sender` goes: once the queue is empty, each worker's `recv` says `None`.
        //~ drop(jobs);
        //~ // The workers drain the queue and end by themselves; no need to hold the caller up.
        //~ wrong: drop-own-gauge-first
        //~ let Pool {
        //~     jobs,
        //~     gauge,
        //~     workers,
        //~ } = self;
        //~ // Our own gauge holds a `Sender` too: drop it with ours, so the channel can close.
        //~ drop(gauge);
        //~ drop(jobs);
        //~ for worker in workers {
        //~     join(worker).await;
        //~ }
        //~ wrong: abort-workers
        //~ let Pool { jobs, workers, .. } = self;
        //~ drop(jobs);
        //~ // The gauge keeps the channel open, so the workers would wait for ever: stop them.
        //~ for worker in workers {
        //~     worker.abort();
        //~     let _ = worker.await;
        //~ }
        //~ wrong: join-with-deadline
        //~ let Pool { jobs, workers, .. } = self;
        //~ drop(jobs);
        //~ // Never hang the service: give the workers two seconds to finish.
        //~ let all_ended = async {
        //~     for worker in workers {
        //~         join(worker).await;
        //~     }
        //~ };
        //~ let _ = tokio::time::timeout(Duration::from_millis(2_000), all_ended).await;
        //~ wrong: sleep-then-return
        //~ let Pool { jobs, workers, .. } = self;
        //~ drop(jobs);
        //~ // Give the workers time to finish the queue; then they end by themselves.
        //~ tokio::time::sleep(Duration::from_millis(3_000)).await;
        //~ drop(workers);
        //~ wrong: stop-flag
        //~ let Pool {
        //~     jobs,
        //~     workers,
        //~     stopping,
        //~     ..
        //~ } = self;
        //~ // The gauge keeps the channel open, so tell the workers to stop ourselves.
        //~ stopping.store(true, Ordering::Release);
        //~ drop(jobs);
        //~ for worker in workers {
        //~     join(worker).await;
        //~ }
        //~ alt: joinset-workers
        //~ let Pool {
        //~     jobs, mut workers, ..
        //~ } = self;
        //~ drop(jobs);
        //~ while let Some(ended) = workers.join_next().await {
        //~     if let Err(error) = ended {
        //~         if error.is_panic() {
        //~             std::panic::resume_unwind(error.into_panic());
        //~         }
        //~     }
        //~ }
        //~ alt: close-the-receiver
        //~ let Pool {
        //~     jobs,
        //~     workers,
        //~     receiver,
        //~     ..
        //~ } = self;
        //~ drop(jobs);
        //~ // Monitoring's gauges hold senders too: close from the receiving end. What is queued
        //~ // is still received; then `recv` says `None`. The lock comes free at the latest when
        //~ // the waiting worker's idle tick drops its `recv`.
        //~ receiver.lock().await.close();
        //~ drop(receiver);
        //~ for worker in workers {
        //~     join(worker).await;
        //~ }
        //~ alt: sender-taken-on-shutdown
        //~ let Pool {
        //~     jobs,
        //~     gauge,
        //~     workers,
        //~ } = self;
        //~ // Every gauge shares one slot: emptying it drops the last `Sender` a gauge had.
        //~ gauge.let_go();
        //~ drop(jobs);
        //~ for worker in workers {
        //~     join(worker).await;
        //~ }
        //~ end
    }
}

/// Waits for `worker` to end. A panic in the worker is raised again here, not swallowed.
async fn join(worker: JoinHandle<()>) {
    if let Err(error) = worker.await {
        if error.is_panic() {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

/// Takes the next job. The lock is held while waiting, so one worker waits at a time.
async fn next(jobs: &Mutex<mpsc::Receiver<Job>>) -> Option<Job> {
    jobs.lock().await.recv().await
}

//~ site: ignores-closed-channel
/// One worker: takes jobs one at a time until the channel is closed and empty.
async fn work(jobs: SharedJobs, sink: Sink, idle_ticks: Arc<AtomicU64>) {
    let mut idle = interval(Duration::from_millis(IDLE_TICK_MS));
    idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick comes a whole period from now, not at once.
    idle.reset();
    loop {
        tokio::select! {
            biased;
            job = next(&jobs) => match job {
                Some(job) => {
                    sink.process(job.id).await;
                    idle.reset();
                }
                // FIX: `None` means every `Sender` is gone and the queue is empty: no job
                // can ever come again, so the worker ends.
                None => break,
            },
            _ = idle.tick() => {
                idle_ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
//~ broken:
//~ /// One worker: takes jobs one at a time until the channel is closed and empty.
//~ async fn work(jobs: SharedJobs, sink: Sink, idle_ticks: Arc<AtomicU64>) {
//~     let mut idle = interval(Duration::from_millis(IDLE_TICK_MS));
//~     idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
//~     // The first tick comes a whole period from now, not at once.
//~     idle.reset();
//~     loop {
//~         tokio::select! {
//~             biased;
//~             Some(job) = next(&jobs) => {
//~                 sink.process(job.id).await;
//~                 idle.reset();
//~             }
//~             _ = idle.tick() => {
//~                 idle_ticks.fetch_add(1, Ordering::Relaxed);
//~             }
//~         }
//~     }
//~ }
//~ wrong: select-else-break
//~ /// One worker: takes jobs one at a time until the channel is closed and empty.
//~ async fn work(jobs: SharedJobs, sink: Sink, idle_ticks: Arc<AtomicU64>) {
//~     let mut idle = interval(Duration::from_millis(IDLE_TICK_MS));
//~     idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
//~     // The first tick comes a whole period from now, not at once.
//~     idle.reset();
//~     loop {
//~         tokio::select! {
//~             biased;
//~             Some(job) = next(&jobs) => {
//~                 sink.process(job.id).await;
//~                 idle.reset();
//~             }
//~             _ = idle.tick() => {
//~                 idle_ticks.fetch_add(1, Ordering::Relaxed);
//~             }
//~             // The channel is closed: the `Some` branch is disabled, so we end up here.
//~             else => break,
//~         }
//~     }
//~ }
//~ wrong: spawn-per-job
//~ /// One worker: takes jobs one at a time until the channel is closed and empty.
//~ async fn work(jobs: SharedJobs, sink: Sink, idle_ticks: Arc<AtomicU64>) {
//~     let mut idle = interval(Duration::from_millis(IDLE_TICK_MS));
//~     idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
//~     // The first tick comes a whole period from now, not at once.
//~     idle.reset();
//~     loop {
//~         tokio::select! {
//~             biased;
//~             job = next(&jobs) => match job {
//~                 Some(job) => {
//~                     // Hand the job off and go back for the next one at once: a slow job
//~                     // no longer holds the queue up.
//~                     let sink = sink.clone();
//~                     tokio::spawn(async move { sink.process(job.id).await });
//~                     idle.reset();
//~                 }
//~                 None => break,
//~             },
//~             _ = idle.tick() => {
//~                 idle_ticks.fetch_add(1, Ordering::Relaxed);
//~             }
//~         }
//~     }
//~ }
//~ wrong: exit-when-idle
//~ /// One worker: takes jobs one at a time until the channel is closed and empty.
//~ async fn work(jobs: SharedJobs, sink: Sink, idle_ticks: Arc<AtomicU64>) {
//~     let mut idle = interval(Duration::from_millis(IDLE_TICK_MS));
//~     idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
//~     // The first tick comes a whole period from now, not at once.
//~     idle.reset();
//~     loop {
//~         tokio::select! {
//~             biased;
//~             job = next(&jobs) => match job {
//~                 Some(job) => {
//~                     sink.process(job.id).await;
//~                     idle.reset();
//~                 }
//~                 None => break,
//~             },
//~             _ = idle.tick() => {
//~                 // The gauge keeps the channel open, so `None` may never come: a worker
//~                 // with nothing to do for a whole tick ends.
//~                 idle_ticks.fetch_add(1, Ordering::Relaxed);
//~                 break;
//~             }
//~         }
//~     }
//~ }
//~ wrong: stop-flag
//~ /// One worker: takes jobs one at a time until it is told to stop.
//~ async fn work(
//~     jobs: SharedJobs,
//~     sink: Sink,
//~     idle_ticks: Arc<AtomicU64>,
//~     stopping: Arc<std::sync::atomic::AtomicBool>,
//~ ) {
//~     let mut idle = interval(Duration::from_millis(IDLE_TICK_MS));
//~     idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
//~     // The first tick comes a whole period from now, not at once.
//~     idle.reset();
//~     while !stopping.load(Ordering::Acquire) {
//~         tokio::select! {
//~             biased;
//~             job = next(&jobs) => match job {
//~                 Some(job) => {
//~                     sink.process(job.id).await;
//~                     idle.reset();
//~                 }
//~                 None => break,
//~             },
//~             _ = idle.tick() => {
//~                 idle_ticks.fetch_add(1, Ordering::Relaxed);
//~             }
//~         }
//~     }
//~ }
//~ alt: dispatcher
//~ /// The dispatcher: takes each job off the channel and hands it to a worker that has asked
//~ /// for one, until the channel is closed and empty. Then it drops the workers' asks, and
//~ /// each worker, told that no job will come, ends.
//~ async fn dispatch(jobs: SharedJobs, mut asks: mpsc::Receiver<oneshot::Sender<Job>>) {
//~     while let Some(job) = next(&jobs).await {
//~         // While every worker is busy, the job waits here, off the channel.
//~         let Some(worker) = asks.recv().await else { return };
//~         let _ = worker.send(job);
//~     }
//~ }
//~
//~ /// One worker: asks the dispatcher for a job, does it, and asks again, until the
//~ /// dispatcher has ended.
//~ async fn work(ready: mpsc::Sender<oneshot::Sender<Job>>, sink: Sink, idle_ticks: Arc<AtomicU64>) {
//~     let mut idle = interval(Duration::from_millis(IDLE_TICK_MS));
//~     idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
//~     // The first tick comes a whole period from now, not at once.
//~     idle.reset();
//~     loop {
//~         let (hand, job) = oneshot::channel();
//~         if ready.send(hand).await.is_err() {
//~             return;
//~         }
//~         tokio::pin!(job);
//~         loop {
//~             tokio::select! {
//~                 biased;
//~                 job = &mut job => match job {
//~                     Ok(job) => {
//~                         sink.process(job.id).await;
//~                         idle.reset();
//~                         break;
//~                     }
//~                     // The dispatcher has ended: the channel is closed and empty.
//~                     Err(_) => return,
//~                 },
//~                 _ = idle.tick() => {
//~                     idle_ticks.fetch_add(1, Ordering::Relaxed);
//~                 }
//~             }
//~         }
//~     }
//~ }
//~ alt: timeout-as-idle-tick
//~ /// One worker: takes jobs one at a time until the channel is closed and empty.
//~ async fn work(jobs: SharedJobs, sink: Sink, idle_ticks: Arc<AtomicU64>) {
//~     loop {
//~         match timeout(Duration::from_millis(IDLE_TICK_MS), next(&jobs)).await {
//~             Ok(Some(job)) => sink.process(job.id).await,
//~             Ok(None) => return,
//~             Err(_) => {
//~                 idle_ticks.fetch_add(1, Ordering::Relaxed);
//~             }
//~         }
//~     }
//~ }
//~ end
