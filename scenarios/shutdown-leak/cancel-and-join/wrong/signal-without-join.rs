//! A job consumer: one tokio task takes jobs from a channel and hands each one to a sink,
//! one at a time, for as long as the service runs.
//!
//! The producer owns the sending end of the channel and keeps it open for the life of the
//! service; jobs can arrive at any moment. When the service stops, it calls
//! [`Consumer::shutdown`] and waits for it. The promise: when `shutdown` returns, the consumer
//! task is gone (nothing will touch the sink again, so the caller can close it), and a job
//! the consumer had already started was finished, not cut off halfway.

use bughunt_kit::sink::Sink;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// One unit of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
}

/// A running consumer. Call [`Consumer::shutdown`] to stop it.
pub struct Consumer {
    stop: oneshot::Sender<()>,
    /// The consumer task. It owns the receiving end of the jobs channel.
    _task: JoinHandle<()>,
}

impl Consumer {
    /// Starts a task that processes the jobs from `jobs` in order, one at a time.
    pub fn spawn(jobs: mpsc::Receiver<Job>, sink: Sink) -> Consumer {
        let (stop, stop_requested) = oneshot::channel();
        let task = tokio::spawn(consume(jobs, sink, stop_requested));
        Consumer { stop, _task: task }
    }

    /// Stops the consumer and returns once its task has ended.
    pub async fn shutdown(self) {
        // The task sees the signal before its next job and ends by itself.
        let _ = self.stop.send(());
    }
}

async fn consume(
    mut jobs: mpsc::Receiver<Job>,
    sink: Sink,
    mut stop_requested: oneshot::Receiver<()>,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut stop_requested => break,
            next = jobs.recv() => next,
        };
        let Some(job) = next else { break };
        sink.process(job.id).await;
    }
}
