//! A job consumer: one tokio task takes jobs from a channel and hands each one to a sink,
//! one at a time, in order, for as long as the service runs.
//!
//! The producer owns the sending end of the channel and keeps it open for the life of the
//! service; jobs can arrive at any moment, even while the consumer is stopping. When the
//! service stops, it calls [`Consumer::shutdown`] and waits for it. The promises: when
//! `shutdown` returns, the consumer task is gone (nothing will touch the sink again, so the
//! caller can close it); a job the consumer had already started was finished, not cut off
//! halfway; and every job the channel took is either done or handed back by `shutdown`, so
//! the caller can requeue it. None is dropped in between.

use bughunt_kit::sink::Sink;
//~ site: recv-without-shutdown
// FIX: a oneshot channel carries the stop signal. Only one value is ever sent on it.
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
//~ broken:
//~ use tokio::sync::mpsc;
//~ use tokio::task::JoinHandle;
//~ wrong: stop-flag
//~ use std::sync::atomic::{AtomicBool, Ordering};
//~ use std::sync::Arc;
//~
//~ use tokio::sync::mpsc;
//~ use tokio::task::JoinHandle;
//~ alt: watch-then-drain
//~ use tokio::sync::{mpsc, watch};
//~ use tokio::task::JoinHandle;
//~ alt: dropped-sender-is-the-signal
//~ use tokio::sync::mpsc;
//~ use tokio::task::JoinHandle;
//~ alt: joinset-and-notify
//~ use std::sync::Arc;
//~
//~ use tokio::sync::{mpsc, Notify};
//~ use tokio::task::JoinSet;
//~ alt: oneshot-reply
//~ use tokio::sync::{mpsc, oneshot};
//~ wrong: notify-waiters
//~ use std::sync::Arc;
//~
//~ use tokio::sync::{mpsc, Notify};
//~ use tokio::task::JoinHandle;
//~ end

/// One unit of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
}

//~ site: recv-without-shutdown
/// A running consumer. Call [`Consumer::shutdown`] to stop it.
pub struct Consumer {
    // FIX: the consumer owns the sending half of the stop signal. Sending on it, or dropping
    // it, tells the task to stop before it takes its next job.
    stop: oneshot::Sender<()>,
    /// The consumer task. It owns the receiving end of the jobs channel and ends with the
    /// jobs it never started.
    task: JoinHandle<Vec<Job>>,
}

impl Consumer {
    /// Starts a task that processes the jobs from `jobs` in order, one at a time.
    pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
        let (stop, stop_requested) = oneshot::channel();
        let task = tokio::spawn(consume(jobs, sink, stop_requested));
        Consumer { stop, task }
    }

    /// Stops the consumer and returns once its task has ended, with the jobs it took from the
    /// channel and never started, so the caller can put them back.
    pub async fn shutdown(self) -> Vec<Job> {
        // FIX: ask the task to stop. Left alone, it waits in `recv()` until the producer
        // closes the channel, which it never does while the service runs. `send` fails only
        // if the task has already ended, and then there is nothing to ask.
        let _ = self.stop.send(());
//~ broken:
//~ /// A running consumer. Call [`Consumer::shutdown`] to stop it.
//~ pub struct Consumer {
//~     /// The consumer task. It owns the receiving end of the jobs channel and ends with the
//~     /// jobs it never started.
//~     task: JoinHandle<Vec<Job>>,
//~ }
//~
//~ impl Consumer {
//~     /// Starts a task that processes the jobs from `jobs` in order, one at a time.
//~     pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
//~         let task = tokio::spawn(consume(jobs, sink));
//~         Consumer { task }
//~     }
//~
//~     /// Stops the consumer and returns once its task has ended, with the jobs it took from the
//~     /// channel and never started, so the caller can put them back.
//~     pub async fn shutdown(self) -> Vec<Job> {
//~ wrong: stop-flag
//~ /// A running consumer. Call [`Consumer::shutdown`] to stop it.
//~ pub struct Consumer {
//~     /// Set by `shutdown`; the task looks at it before taking each job.
//~     stopping: Arc<AtomicBool>,
//~     task: JoinHandle<Vec<Job>>,
//~ }
//~
//~ impl Consumer {
//~     /// Starts a task that processes the jobs from `jobs` in order, one at a time.
//~     pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
//~         let stopping = Arc::new(AtomicBool::new(false));
//~         let task = tokio::spawn(consume(jobs, sink, Arc::clone(&stopping)));
//~         Consumer { stopping, task }
//~     }
//~
//~     /// Stops the consumer and returns once its task has ended, with the jobs it took from the
//~     /// channel and never started, so the caller can put them back.
//~     pub async fn shutdown(self) -> Vec<Job> {
//~         self.stopping.store(true, Ordering::Release);
//~ wrong: abort-the-task
//~ /// A running consumer. Call [`Consumer::shutdown`] to stop it.
//~ pub struct Consumer {
//~     task: JoinHandle<Vec<Job>>,
//~ }
//~
//~ impl Consumer {
//~     /// Starts a task that processes the jobs from `jobs` in order, one at a time.
//~     pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
//~         let task = tokio::spawn(consume(jobs, sink));
//~         Consumer { task }
//~     }
//~
//~     /// Stops the consumer and returns once its task has ended, with the jobs it took from the
//~     /// channel and never started, so the caller can put them back.
//~     pub async fn shutdown(self) -> Vec<Job> {
//~         // The task never ends by itself while the producer is alive, so end it here.
//~         self.task.abort();
//~ wrong: join-with-deadline
//~ /// How long `shutdown` waits for the consumer before giving up on it.
//~ const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);
//~
//~ /// A running consumer. Call [`Consumer::shutdown`] to stop it.
//~ pub struct Consumer {
//~     stop: oneshot::Sender<()>,
//~     task: JoinHandle<Vec<Job>>,
//~ }
//~
//~ impl Consumer {
//~     /// Starts a task that processes the jobs from `jobs` in order, one at a time.
//~     pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
//~         let (stop, stop_requested) = oneshot::channel();
//~         let task = tokio::spawn(consume(jobs, sink, stop_requested));
//~         Consumer { stop, task }
//~     }
//~
//~     /// Stops the consumer and returns once its task has ended, with the jobs it took from the
//~     /// channel and never started, so the caller can put them back.
//~     pub async fn shutdown(self) -> Vec<Job> {
//~         let _ = self.stop.send(());
//~         // Never hold the service's exit hostage to one slow job: wait a bounded time.
//~         tokio::time::timeout(SHUTDOWN_DEADLINE, join(self.task))
//~             .await
//~             .unwrap_or_default()
//~     }
//~ }
//~ alt: watch-then-drain
//~ /// A running consumer. Call [`Consumer::shutdown`] to stop it.
//~ pub struct Consumer {
//~     /// A cancellation token: `true` once the service is stopping. Every clone of the
//~     /// receiver sees it, however late it looks.
//~     stopping: watch::Sender<bool>,
//~     task: JoinHandle<()>,
//~ }
//~
//~ impl Consumer {
//~     /// Starts a task that processes the jobs from `jobs` in order, one at a time.
//~     pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
//~         let (stopping, stopping_seen) = watch::channel(false);
//~         let task = tokio::spawn(work_until_stopped(jobs, sink, stopping_seen));
//~         Consumer { stopping, task }
//~     }
//~
//~     /// Stops the consumer: the channel stops taking jobs, every job it already took is done,
//~     /// and then the task ends. Nothing is left to hand back.
//~     pub async fn shutdown(self) -> Vec<Job> {
//~         self.stopping.send_replace(true);
//~         if let Err(error) = self.task.await {
//~             if error.is_panic() {
//~                 std::panic::resume_unwind(error.into_panic());
//~             }
//~         }
//~         Vec::new()
//~     }
//~ }
//~
//~ async fn work_until_stopped(
//~     mut jobs: mpsc::Receiver<Job>,
//~     sink: Sink,
//~     mut stopping: watch::Receiver<bool>,
//~ ) {
//~     let mut draining = false;
//~     loop {
//~         let job = if draining {
//~             jobs.recv().await
//~         } else {
//~             tokio::select! {
//~                 biased;
//~                 _ = stopping.wait_for(|stop| *stop) => {
//~                     // Refuse new jobs; what the channel already holds is still done.
//~                     jobs.close();
//~                     draining = true;
//~                     continue;
//~                 }
//~                 job = jobs.recv() => job,
//~             }
//~         };
//~         match job {
//~             Some(job) => sink.process(job.id).await,
//~             None => return,
//~         }
//~     }
//~ }
//~ alt: dropped-sender-is-the-signal
//~ /// A running consumer. Call [`Consumer::shutdown`] to stop it.
//~ pub struct Consumer {
//~     /// Never sent on: dropping it closes the channel, and a closed channel is the signal.
//~     _running: mpsc::Sender<()>,
//~     task: JoinHandle<Vec<Job>>,
//~ }
//~
//~ impl Consumer {
//~     /// Starts a task that processes the jobs from `jobs` in order, one at a time.
//~     pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
//~         let (running, closed) = mpsc::channel(1);
//~         let task = tokio::spawn(serve_while_open(jobs, sink, closed));
//~         Consumer {
//~             _running: running,
//~             task,
//~         }
//~     }
//~
//~     /// Stops the consumer and returns once its task has ended, with the jobs it took from the
//~     /// channel and never started.
//~     pub async fn shutdown(self) -> Vec<Job> {
//~         let Consumer { _running, task } = self;
//~         drop(_running);
//~         match task.await {
//~             Ok(left) => left,
//~             Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
//~             Err(_) => Vec::new(),
//~         }
//~     }
//~ }
//~
//~ async fn serve_while_open(
//~     mut jobs: mpsc::Receiver<Job>,
//~     sink: Sink,
//~     mut closed: mpsc::Receiver<()>,
//~ ) -> Vec<Job> {
//~     loop {
//~         tokio::select! {
//~             biased;
//~             None = closed.recv() => break,
//~             job = jobs.recv() => match job {
//~                 Some(job) => sink.process(job.id).await,
//~                 None => break,
//~             },
//~         }
//~     }
//~     jobs.close();
//~     let mut left = Vec::with_capacity(jobs.len());
//~     while let Ok(job) = jobs.try_recv() {
//~         left.push(job);
//~     }
//~     left
//~ }
//~ alt: joinset-and-notify
//~ /// A running consumer. Call [`Consumer::shutdown`] to stop it.
//~ pub struct Consumer {
//~     /// `notify_one` keeps a permit when nobody waits yet, so a stop is never missed.
//~     stop: Arc<Notify>,
//~     /// Holds the one consumer task; dropping the set would abort it.
//~     tasks: JoinSet<Vec<Job>>,
//~ }
//~
//~ impl Consumer {
//~     /// Starts a task that processes the jobs from `jobs` in order, one at a time.
//~     pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
//~         let stop = Arc::new(Notify::new());
//~         let mut tasks = JoinSet::new();
//~         tasks.spawn(run(jobs, sink, Arc::clone(&stop)));
//~         Consumer { stop, tasks }
//~     }
//~
//~     /// Stops the consumer and returns once its task has ended, with the jobs it took from the
//~     /// channel and never started.
//~     pub async fn shutdown(mut self) -> Vec<Job> {
//~         self.stop.notify_one();
//~         let mut left = Vec::new();
//~         while let Some(ended) = self.tasks.join_next().await {
//~             match ended {
//~                 Ok(mut jobs) => left.append(&mut jobs),
//~                 Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
//~                 Err(_) => {}
//~             }
//~         }
//~         left
//~     }
//~ }
//~
//~ async fn run(mut jobs: mpsc::Receiver<Job>, sink: Sink, stop: Arc<Notify>) -> Vec<Job> {
//~     let mut left = Vec::new();
//~     loop {
//~         tokio::select! {
//~             biased;
//~             () = stop.notified() => {
//~                 jobs.close();
//~                 while let Some(job) = jobs.recv().await {
//~                     left.push(job);
//~                 }
//~                 return left;
//~             }
//~             job = jobs.recv() => match job {
//~                 Some(job) => sink.process(job.id).await,
//~                 None => return left,
//~             },
//~         }
//~     }
//~ }
//~ alt: oneshot-reply
//~ /// A request to stop, and where to send the jobs never started once the task is done.
//~ type StopRequest = oneshot::Sender<Vec<Job>>;
//~
//~ /// A running consumer. Call [`Consumer::shutdown`] to stop it.
//~ pub struct Consumer {
//~     control: mpsc::Sender<StopRequest>,
//~ }
//~
//~ impl Consumer {
//~     /// Starts a task that processes the jobs from `jobs` in order, one at a time.
//~     pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
//~         let (control, requests) = mpsc::channel(1);
//~         tokio::spawn(worker(jobs, sink, requests));
//~         Consumer { control }
//~     }
//~
//~     /// Stops the consumer and returns once it has answered that it is done, with the jobs
//~     /// it took from the channel and never started.
//~     pub async fn shutdown(self) -> Vec<Job> {
//~         let (reply, replied) = oneshot::channel();
//~         if self.control.send(reply).await.is_err() {
//~             return Vec::new();
//~         }
//~         replied.await.unwrap_or_default()
//~     }
//~ }
//~
//~ async fn worker(
//~     mut jobs: mpsc::Receiver<Job>,
//~     sink: Sink,
//~     mut requests: mpsc::Receiver<StopRequest>,
//~ ) {
//~     let reply = loop {
//~         tokio::select! {
//~             biased;
//~             request = requests.recv() => break request,
//~             job = jobs.recv() => match job {
//~                 Some(job) => sink.process(job.id).await,
//~                 None => break requests.recv().await,
//~             },
//~         }
//~     };
//~     jobs.close();
//~     let mut left = Vec::new();
//~     while let Some(job) = jobs.recv().await {
//~         left.push(job);
//~     }
//~     drop(jobs);
//~     // The reply is the worker's last act: once it is sent, nothing here touches the sink.
//~     if let Some(reply) = reply {
//~         let _ = reply.send(left);
//~     }
//~ }
//~ wrong: notify-waiters
//~ /// A running consumer. Call [`Consumer::shutdown`] to stop it.
//~ pub struct Consumer {
//~     stop: Arc<Notify>,
//~     task: JoinHandle<Vec<Job>>,
//~ }
//~
//~ impl Consumer {
//~     /// Starts a task that processes the jobs from `jobs` in order, one at a time.
//~     pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
//~         let stop = Arc::new(Notify::new());
//~         let task = tokio::spawn(run(jobs, sink, Arc::clone(&stop)));
//~         Consumer { stop, task }
//~     }
//~
//~     /// Stops the consumer and returns once its task has ended, with the jobs it took from the
//~     /// channel and never started.
//~     pub async fn shutdown(self) -> Vec<Job> {
//~         // Wake the consumer wherever it waits for the stop.
//~         self.stop.notify_waiters();
//~         match self.task.await {
//~             Ok(left) => left,
//~             Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
//~             Err(_) => Vec::new(),
//~         }
//~     }
//~ }
//~
//~ async fn run(mut jobs: mpsc::Receiver<Job>, sink: Sink, stop: Arc<Notify>) -> Vec<Job> {
//~     loop {
//~         tokio::select! {
//~             biased;
//~             () = stop.notified() => {
//~                 jobs.close();
//~                 let mut left = Vec::new();
//~                 while let Some(job) = jobs.recv().await {
//~                     left.push(job);
//~                 }
//~                 return left;
//~             }
//~             job = jobs.recv() => match job {
//~                 Some(job) => sink.process(job.id).await,
//~                 None => return Vec::new(),
//~             },
//~         }
//~     }
//~ }
//~ end
        //~ site: signal-without-join
        // FIX: then wait, here, until the task has really ended. Asking is not the same as
        // stopping: the task may be halfway through a job, or not even scheduled yet. Only
        // once the JoinHandle resolves is nothing left that could touch the sink.
        join(self.task).await
        //~ broken:
        //~ // The task finishes its job and exits by itself; don't hold the service up for it.
        //~ tokio::spawn(join(self.task));
        //~ Vec::new()
        //~ wrong: signal-only
        //~ // The task sees the signal before its next job and ends by itself.
        //~ drop(self.task);
        //~ Vec::new()
        //~ wrong: join-with-deadline
        //~ alt: watch-then-drain
        //~ alt: dropped-sender-is-the-signal
        //~ alt: joinset-and-notify
        //~ alt: oneshot-reply
        //~ wrong: notify-waiters
        //~ end
//~ site: recv-without-shutdown
    }
}

async fn consume(
    mut jobs: mpsc::Receiver<Job>,
    sink: Sink,
    mut stop_requested: oneshot::Receiver<()>,
) -> Vec<Job> {
    loop {
        // FIX: wait for the next job *or* the stop signal, whichever comes first. `recv()` is
        // cancel-safe: when the stop wins, no job was taken out of the channel and dropped.
        // `biased` looks at the stop first, so a busy channel cannot keep the consumer going.
        let next = tokio::select! {
            biased;
            _ = &mut stop_requested => break,
            next = jobs.recv() => next,
        };
        let Some(job) = next else { break };
//~ broken:
//~     }
//~ }
//~
//~ async fn consume(mut jobs: mpsc::Receiver<Job>, sink: Sink) -> Vec<Job> {
//~     while let Some(job) = jobs.recv().await {
//~ wrong: stop-flag
//~     }
//~ }
//~
//~ async fn consume(mut jobs: mpsc::Receiver<Job>, sink: Sink, stopping: Arc<AtomicBool>) -> Vec<Job> {
//~     while !stopping.load(Ordering::Acquire) {
//~         let Some(job) = jobs.recv().await else { break };
//~ wrong: abort-the-task
//~     }
//~ }
//~
//~ async fn consume(mut jobs: mpsc::Receiver<Job>, sink: Sink) -> Vec<Job> {
//~     while let Some(job) = jobs.recv().await {
//~ wrong: join-with-deadline
//~ async fn consume(
//~     mut jobs: mpsc::Receiver<Job>,
//~     sink: Sink,
//~     mut stop_requested: oneshot::Receiver<()>,
//~ ) -> Vec<Job> {
//~     loop {
//~         let next = tokio::select! {
//~             biased;
//~             _ = &mut stop_requested => break,
//~             next = jobs.recv() => next,
//~         };
//~         let Some(job) = next else { break };
//~ alt: watch-then-drain
//~ alt: dropped-sender-is-the-signal
//~ alt: joinset-and-notify
//~ alt: oneshot-reply
//~ wrong: notify-waiters
//~ end
        //~ site: stop-interrupts-work
        // FIX: once a job has started, nothing is raced against it: the work runs to its end,
        // and whatever happened meanwhile is looked at before the next job, not halfway
        // through this one.
        sink.process(job.id).await;
        //~ broken:
        //~ tokio::select! {
        //~     _ = &mut stop_requested => break,
        //~     _ = sink.process(job.id) => {}
        //~ }
        //~ wrong: spawn-per-job
        //~ // Jobs are independent: let each run at its own pace instead of queueing behind
        //~ // a slow one.
        //~ let sink = sink.clone();
        //~ tokio::spawn(async move { sink.process(job.id).await });
        //~ wrong: hand-back-before-close
        //~ // Hand the queue back the moment the stop comes, while the job in hand finishes.
        //~ let work = sink.process(job.id);
        //~ tokio::pin!(work);
        //~ tokio::select! {
        //~     biased;
        //~     () = &mut work => {}
        //~     _ = &mut stop_requested => {
        //~         let mut left = Vec::new();
        //~         while let Ok(job) = jobs.try_recv() {
        //~             left.push(job);
        //~         }
        //~         work.await;
        //~         return left;
        //~     }
        //~ }
        //~ alt: watch-then-drain
        //~ alt: dropped-sender-is-the-signal
        //~ alt: joinset-and-notify
        //~ alt: oneshot-reply
        //~ wrong: notify-waiters
        //~ end
//~ region
    }
    // FIX: the jobs still queued were accepted by the channel, so they are ours to account
    // for. Close the channel first, so that a job sent while we are stopping is refused
    // (its sender gets it back) instead of landing in a channel nobody will read, then take
    // every job it holds and hand them back.
    jobs.close();
    let mut left = Vec::with_capacity(jobs.len());
    while let Some(job) = jobs.recv().await {
        left.push(job);
    }
    left
}

/// Waits for `task` to end and returns what it handed back. A panic in the task is raised
/// again here, not swallowed.
async fn join(task: JoinHandle<Vec<Job>>) -> Vec<Job> {
    match task.await {
        Ok(left) => left,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Vec::new(),
    }
}
//~ wrong: drain-none
//~     }
//~     // Stopping between jobs is clean: whatever is still queued goes with the channel.
//~     Vec::new()
//~ }
//~
//~ /// Waits for `task` to end and returns what it handed back. A panic in the task is raised
//~ /// again here, not swallowed.
//~ async fn join(task: JoinHandle<Vec<Job>>) -> Vec<Job> {
//~     match task.await {
//~         Ok(left) => left,
//~         Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
//~         Err(_) => Vec::new(),
//~     }
//~ }
//~ wrong: recv-without-close
//~     }
//~     // Hand back whatever is still queued.
//~     let mut left = Vec::new();
//~     while let Some(job) = jobs.recv().await {
//~         left.push(job);
//~     }
//~     left
//~ }
//~
//~ /// Waits for `task` to end and returns what it handed back. A panic in the task is raised
//~ /// again here, not swallowed.
//~ async fn join(task: JoinHandle<Vec<Job>>) -> Vec<Job> {
//~     match task.await {
//~         Ok(left) => left,
//~         Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
//~         Err(_) => Vec::new(),
//~     }
//~ }
//~ alt: watch-then-drain
//~ alt: dropped-sender-is-the-signal
//~ alt: joinset-and-notify
//~ alt: oneshot-reply
//~ wrong: notify-waiters
//~ end
