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

//~ site: pop-on-receive
use std::collections::{BTreeMap, VecDeque};
//~ broken:
//~ use std::collections::VecDeque;
//~ end
use std::time::Duration;

use bughunt_kit::clock::Clock;

/// A job as a consumer receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Given by `send`, counting from 1; the same on every delivery of this job.
    pub id: u64,
    pub body: String,
}

//~ site: pop-on-receive
/// A received message the queue still holds, hidden until its consumer acks it or its
/// ack deadline comes.
#[derive(Debug)]
struct InFlight {
    message: Message,
    visible_again_at_ms: u64,
}

/// The queue: jobs waiting to be received, oldest first, and jobs being worked on.
//~ broken:
//~ /// The queue: jobs waiting to be received, oldest first.
//~ end
#[derive(Debug)]
pub struct Queue {
    clock: Clock,
    /// How long a received message stays hidden.
    visibility_timeout: Duration,
    ready: VecDeque<Message>,
    //~ site: pop-on-receive
    // FIX: a received message is not deleted, it moves here until its ack. A BTreeMap, not a
    // HashMap, so expired messages come back in id order, the same order on every run.
    in_flight: BTreeMap<u64, InFlight>,
    //~ broken:
    //~ end
    next_id: u64,
}

impl Queue {
    /// An empty queue on `clock`. A received message stays hidden for
    /// `visibility_timeout_ms` milliseconds of that clock.
    pub fn new(clock: Clock, visibility_timeout_ms: u64) -> Self {
        Self {
            clock,
            //~ site: timeout-in-seconds
            // FIX: the argument counts milliseconds, like the clock, so it becomes a Duration
            // of milliseconds: read as seconds, every message would hide a thousand times longer.
            visibility_timeout: Duration::from_millis(visibility_timeout_ms),
            //~ broken:
            //~ visibility_timeout: Duration::from_secs(visibility_timeout_ms),
            //~ end
            ready: VecDeque::new(),
            //~ site: pop-on-receive
            in_flight: BTreeMap::new(),
            //~ broken:
            //~ end
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
        //~ site: pop-on-receive
        // FIX: a consumer that crashed never acks. Once its deadline has come (`<=`: visible
        // again from exactly that instant), its message goes back to the front of the line,
        // ahead of newer jobs, oldest id first.
        let now_ms = self.clock.now_ms();
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, flight)| flight.visible_again_at_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in expired.into_iter().rev() {
            if let Some(flight) = self.in_flight.remove(&id) {
                self.ready.push_front(flight.message);
            }
        }
        let message = self.ready.pop_front()?;
        // FIX: hide the message instead of deleting it; the queue keeps its copy until the
        // ack. Every delivery starts a fresh deadline, redeliveries included.
        self.in_flight.insert(
            message.id,
            InFlight {
                message: message.clone(),
                visible_again_at_ms: self.ack_deadline_ms(),
            },
        );
        Some(message)
        //~ broken:
        //~ self.ready.pop_front()
        //~ end
    }

    /// The job `id` is done: delete it for good.
    pub fn ack(&mut self, id: u64) {
        //~ site: pop-on-receive
        // FIX: between receive and ack a message lives in `in_flight`, not in `ready`: the
        // ack deletes it there, or its deadline would bring it back.
        self.in_flight.remove(&id);
        //~ broken:
        //~ self.ready.retain(|message| message.id != id);
        //~ end
    }

    /// Messages the queue is responsible for: visible ones and received-but-unacked ones.
    pub fn depth(&self) -> usize {
        //~ site: pop-on-receive
        // FIX: in-flight messages are still the queue's to deliver.
        self.ready.len() + self.in_flight.len()
        //~ broken:
        //~ self.ready.len()
        //~ end
    }

    /// The instant, in simulated ms, by which a message received now must be acked: from
    /// that instant on, the message is offered to consumers again.
    pub fn ack_deadline_ms(&self) -> u64 {
        //~ site: timeout-as-deadline
        // FIX: a deadline is an instant on the clock, and a timeout a length of time: the
        // timeout counts from now, the moment of this receive, not from the clock's zero.
        let timeout_ms = u64::try_from(self.visibility_timeout.as_millis()).unwrap_or(u64::MAX);
        self.clock.now_ms().saturating_add(timeout_ms)
        //~ broken:
        //~ u64::try_from(self.visibility_timeout.as_millis()).unwrap_or(u64::MAX)
        //~ end
    }
}
