//! A job consumer: one tokio task takes jobs from a channel and hands each one to a sink,
//! one at a time, for as long as the service runs.
//!
//! The producer owns the sending end of the channel and keeps it open for the life of the
//! service; jobs can arrive at any moment. When the service stops, it calls
//! [`Consumer::shutdown`] and waits for it. The promise: when `shutdown` returns, the consumer
//! task is gone (nothing will touch the sink again, so the caller can close it), and a job
//! the consumer had already started was finished, not cut off halfway.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bughunt_kit::sink::Sink;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One unit of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
}

/// A running consumer. Call [`Consumer::shutdown`] to stop it.
pub struct Consumer {
    /// Set by `shutdown`; the task checks it before taking each job.
    stopping: Arc<AtomicBool>,
    /// The consumer task. It owns the receiving end of the jobs channel.
    task: JoinHandle<()>,
}

impl Consumer {
    /// Starts a task that processes the jobs from `jobs` in order, one at a time.
    pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
        let stopping = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(consume(jobs, sink, Arc::clone(&stopping)));
        Consumer { stopping, task }
    }

    /// Stops the consumer and returns once its task has ended.
    pub async fn shutdown(self) {
        self.stopping.store(true, Ordering::Release);
        join(self.task).await;
    }
}

async fn consume(mut jobs: mpsc::Receiver<Job>, sink: Sink, stopping: Arc<AtomicBool>) {
    while !stopping.load(Ordering::Acquire) {
        let Some(job) = jobs.recv().await else { break };
        sink.process(job.id).await;
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
