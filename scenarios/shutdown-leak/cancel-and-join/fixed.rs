//! A job consumer: one tokio task takes jobs from a channel and hands each one to a sink,
//! one at a time, for as long as the service runs.
//!
//! The producer owns the sending end of the channel and keeps it open for the life of the
//! service; jobs can arrive at any moment. When the service stops, it calls
//! [`Consumer::shutdown`] and waits for it. The promise: when `shutdown` returns, the consumer
//! task is gone (nothing will touch the sink again, so the caller can close it), and a job
//! the consumer had already started was finished, not cut off halfway.

use bughunt_kit::sink::Sink;
//~ site: recv-without-shutdown
// FIX: a oneshot channel carries the stop signal. Only one value is ever sent on it.
use tokio::sync::{mpsc, oneshot};
//~ broken:
//~ use tokio::sync::mpsc;
//~ end
use tokio::task::JoinHandle;

/// One unit of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
}

/// A running consumer. Call [`Consumer::shutdown`] to stop it.
pub struct Consumer {
    //~ site: recv-without-shutdown
    // FIX: the consumer owns the sending half of the stop signal. Sending on it, or dropping
    // it, tells the task to stop before it takes its next job.
    stop: oneshot::Sender<()>,
    //~ broken:
    //~ end
    /// The consumer task. It owns the receiving end of the jobs channel.
    task: JoinHandle<()>,
}

impl Consumer {
    /// Starts a task that processes the jobs from `jobs` in order, one at a time.
    pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
        //~ site: recv-without-shutdown
        let (stop, stop_requested) = oneshot::channel();
        let task = tokio::spawn(consume(jobs, sink, stop_requested));
        Consumer { stop, task }
        //~ broken:
        //~ let task = tokio::spawn(consume(jobs, sink));
        //~ Consumer { task }
        //~ end
    }

    /// Stops the consumer and returns once its task has ended.
    pub async fn shutdown(self) {
        //~ site: recv-without-shutdown
        // FIX: ask the task to stop. Left alone, it waits in `recv()` until the producer
        // closes the channel, which it never does while the service runs. `send` fails only
        // if the task has already ended, and then there is nothing to ask.
        let _ = self.stop.send(());
        //~ broken:
        //~ end
        //~ site: signal-without-join
        // FIX: then wait, here, until the task has really ended. Asking is not the same as
        // stopping: the task may be halfway through a job, or not even scheduled yet. Only
        // once the JoinHandle resolves is nothing left that could touch the sink.
        join(self.task).await;
        //~ broken:
        //~ // The task finishes its job and exits by itself; don't hold the service up for it.
        //~ tokio::spawn(join(self.task));
        //~ end
    }
}

//~ site: recv-without-shutdown
async fn consume(
    mut jobs: mpsc::Receiver<Job>,
    sink: Sink,
    mut stop_requested: oneshot::Receiver<()>,
) {
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
//~ async fn consume(mut jobs: mpsc::Receiver<Job>, sink: Sink) {
//~     while let Some(job) = jobs.recv().await {
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
        //~ end
    }
}

/// Waits for `task` to end. A panic in the task is raised again here, not swallowed.
async fn join(task: JoinHandle<()>) {
    if let Err(error) = task.await {
        if error.is_panic() {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}
