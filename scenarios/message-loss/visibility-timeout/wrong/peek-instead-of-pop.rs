// Wrong fix: receive peeks instead of popping, so nothing is lost, but nothing is ever
// hidden either: every consumer that asks gets the same job at once.

//! An in-memory work queue with explicit acknowledgements, in the style of Amazon SQS.
//!
//! Producers `send` jobs; consumers `receive` one, do the work, then `ack` it. Consumers
//! crash: a process is killed mid-job, a deploy restarts it, a machine dies. The queue
//! promises that such a crash delays a job but never loses it:
//!
//! - a received message stays hidden from every consumer until `visibility_timeout_ms` has
//!   passed since that receive, so two consumers never work on it at once;
//! - if it has not been acked by then, it is visible again from exactly
//!   `received_at + visibility_timeout_ms`, and the next `receive` can hand it out;
//! - an acked message is deleted and never delivered again.
//!
//! Time is a simulated [`Clock`]: it moves only when the caller advances it. One owner drives
//! the queue, so there is no locking; the subject here is crashes, not threads.

use std::collections::VecDeque;

use bughunt_kit::clock::Clock;

/// A job as a consumer receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Given by `send`, counting from 1; the same on every delivery of this job.
    pub id: u64,
    pub body: String,
}

/// The queue: jobs waiting to be received, oldest first.
#[derive(Debug)]
pub struct Queue {
    clock: Clock,
    visibility_timeout_ms: u64,
    ready: VecDeque<Message>,
    next_id: u64,
}

impl Queue {
    /// An empty queue on `clock`. A received message stays hidden for `visibility_timeout_ms`.
    pub fn new(clock: Clock, visibility_timeout_ms: u64) -> Self {
        Self {
            clock,
            visibility_timeout_ms,
            ready: VecDeque::new(),
            next_id: 1,
        }
    }

    /// Enqueues a job and returns its id.
    pub fn send(&mut self, body: impl Into<String>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.ready.push_back(Message {
            id,
            body: body.into(),
        });
        id
    }

    /// Hands out the oldest visible message, or `None` when nothing is visible.
    ///
    /// The consumer owns the job until it calls [`Queue::ack`] or until
    /// [`Queue::ack_deadline_ms`] as it stood at this receive, whichever comes first.
    pub fn receive(&mut self) -> Option<Message> {
        self.ready.front().cloned()
    }

    /// The job `id` is done: delete it for good.
    pub fn ack(&mut self, id: u64) {
        self.ready.retain(|message| message.id != id);
    }

    /// Messages the queue is responsible for: visible ones and received-but-unacked ones.
    pub fn depth(&self) -> usize {
        self.ready.len()
    }

    /// The instant, in simulated ms, by which a message received now must be acked: from
    /// that instant on, the message is offered to consumers again.
    pub fn ack_deadline_ms(&self) -> u64 {
        self.clock.now_ms().saturating_add(self.visibility_timeout_ms)
    }
}
