//! An in-memory work queue with explicit acknowledgements, in the style of Amazon SQS.
//!
//! Producers `send` jobs; consumers `receive` one, do the work, then `ack` it. Consumers
//! crash: a process is killed mid-job, a deploy restarts it, a machine dies. The queue
//! promises that such a crash delays a job but never loses it:
//!
//! - a received message stays hidden from every consumer until `visibility_timeout_ms` has
//!   passed since that receive, so two consumers never work on it at once;
//! - if it has not been acked by then, it is visible again from exactly
//!   `received_at + visibility_timeout_ms`, and the next `receive` can hand it out, hidden
//!   again for a full timeout from that new receive;
//! - an acked message is deleted and never delivered again. That holds for a late ack too: a
//!   slow consumer that acks after its deadline (maybe after the job went to someone else)
//!   has still done the job;
//! - `receive` hands out some visible message whenever one is visible; which one, when
//!   several are, is the queue's choice.
//!
//! Time is a simulated [`Clock`]: it moves only when the caller advances it. One owner drives
//! the queue, so there is no locking; the subject here is crashes, not threads.

//~ site: pop-on-receive
use std::collections::{BTreeMap, VecDeque};
//~ broken:
//~ use std::collections::VecDeque;
//~ alt: heap-of-deadlines
//~ use std::cmp::Reverse;
//~ use std::collections::{BTreeMap, BinaryHeap, VecDeque};
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
//~ alt: scan-one-list
//~ /// The queue: every job not yet acked, oldest first, each visible or hidden.
//~ alt: index-by-visible-at
//~ /// The queue: jobs never received, oldest first, and received jobs by the instant they
//~ /// are visible again.
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
    //~ alt: scan-one-list
    //~ /// id → the instant a received job is visible again; a job not in here was never
    //~ /// received. Every job stays in `ready` until its ack.
    //~ hidden_until_ms: BTreeMap<u64, u64>,
    //~ alt: heap-of-deadlines
    //~ in_flight: BTreeMap<u64, InFlight>,
    //~ /// (deadline, id) of every delivery, earliest first. An entry whose deadline is no
    //~ /// longer its message's (acked, or redelivered since) is stale and skipped.
    //~ deadlines: BinaryHeap<Reverse<(u64, u64)>>,
    //~ alt: index-by-visible-at
    //~ /// (visible again at, id) → job: the first entry is the next to come back.
    //~ by_visible_at_ms: BTreeMap<(u64, u64), Message>,
    //~ /// id → its key in `by_visible_at_ms`, for the ack.
    //~ visible_at_ms_of: BTreeMap<u64, u64>,
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
            //~ wrong: timeout-rounded-to-seconds
            //~ // Visibility timeouts are whole seconds, as SQS configures them.
            //~ visibility_timeout: Duration::from_secs(visibility_timeout_ms / 1_000),
            //~ end
            ready: VecDeque::new(),
            //~ site: pop-on-receive
            in_flight: BTreeMap::new(),
            //~ broken:
            //~ alt: scan-one-list
            //~ hidden_until_ms: BTreeMap::new(),
            //~ alt: heap-of-deadlines
            //~ in_flight: BTreeMap::new(),
            //~ deadlines: BinaryHeap::new(),
            //~ alt: index-by-visible-at
            //~ by_visible_at_ms: BTreeMap::new(),
            //~ visible_at_ms_of: BTreeMap::new(),
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

    /// Hands out a visible message, or `None` when nothing is visible. Which one, when
    /// several are visible, is the queue's choice.
    ///
    /// The consumer owns the job until it calls [`Queue::ack`] or until
    /// [`Queue::ack_deadline_ms`] as it stood at this receive, whichever comes first.
    pub fn receive(&mut self) -> Option<Message> {
        //~ site: pop-on-receive
        // FIX: a consumer that crashed never acks. Once a deadline has come (`<=`: visible
        // again from exactly that instant), that message is handed out again, ahead of newer
        // jobs. It stays in `in_flight`, where `ack` looks, until its ack.
        let now_ms = self.clock.now_ms();
        let expired = self
            .in_flight
            .iter()
            .find(|(_, flight)| flight.visible_again_at_ms <= now_ms)
            .map(|(id, _)| *id);
        let message = match expired {
            Some(id) => self.in_flight.remove(&id)?.message,
            None => self.ready.pop_front()?,
        };
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
        //~ wrong: peek-instead-of-pop
        //~ // Nothing leaves the queue before its ack.
        //~ self.ready.front().cloned()
        //~ wrong: deadline-off-by-one
        //~ let now_ms = self.clock.now_ms();
        //~ let expired = self
        //~     .in_flight
        //~     .iter()
        //~     .find(|(_, flight)| flight.visible_again_at_ms < now_ms)
        //~     .map(|(id, _)| *id);
        //~ let message = match expired {
        //~     Some(id) => self.in_flight.remove(&id)?.message,
        //~     None => self.ready.pop_front()?,
        //~ };
        //~ self.in_flight.insert(
        //~     message.id,
        //~     InFlight {
        //~         message: message.clone(),
        //~         visible_again_at_ms: self.ack_deadline_ms(),
        //~     },
        //~ );
        //~ Some(message)
        //~ wrong: first-in-flight-only
        //~ // The oldest job in flight is the first to time out, so it is the one to look at.
        //~ let now_ms = self.clock.now_ms();
        //~ let expired = self
        //~     .in_flight
        //~     .iter()
        //~     .next()
        //~     .filter(|(_, flight)| flight.visible_again_at_ms <= now_ms)
        //~     .map(|(id, _)| *id);
        //~ let message = match expired {
        //~     Some(id) => self.in_flight.remove(&id)?.message,
        //~     None => self.ready.pop_front()?,
        //~ };
        //~ self.in_flight.insert(
        //~     message.id,
        //~     InFlight {
        //~         message: message.clone(),
        //~         visible_again_at_ms: self.ack_deadline_ms(),
        //~     },
        //~ );
        //~ Some(message)
        //~ wrong: redelivery-keeps-old-deadline
        //~ let now_ms = self.clock.now_ms();
        //~ let expired = self
        //~     .in_flight
        //~     .iter()
        //~     .find(|(_, flight)| flight.visible_again_at_ms <= now_ms)
        //~     .map(|(id, _)| *id);
        //~ // A job's deadline is set when it is first handed out.
        //~ let (message, visible_again_at_ms) = match expired {
        //~     Some(id) => {
        //~         let flight = self.in_flight.remove(&id)?;
        //~         (flight.message, flight.visible_again_at_ms)
        //~     }
        //~     None => (self.ready.pop_front()?, self.ack_deadline_ms()),
        //~ };
        //~ self.in_flight.insert(
        //~     message.id,
        //~     InFlight {
        //~         message: message.clone(),
        //~         visible_again_at_ms,
        //~     },
        //~ );
        //~ Some(message)
        //~ wrong: expired-back-to-ready
        //~ // Expired jobs go back to the front of the line, oldest id first.
        //~ let now_ms = self.clock.now_ms();
        //~ let expired: Vec<u64> = self
        //~     .in_flight
        //~     .iter()
        //~     .filter(|(_, flight)| flight.visible_again_at_ms <= now_ms)
        //~     .map(|(id, _)| *id)
        //~     .collect();
        //~ for id in expired.into_iter().rev() {
        //~     if let Some(flight) = self.in_flight.remove(&id) {
        //~         self.ready.push_front(flight.message);
        //~     }
        //~ }
        //~ let message = self.ready.pop_front()?;
        //~ self.in_flight.insert(
        //~     message.id,
        //~     InFlight {
        //~         message: message.clone(),
        //~         visible_again_at_ms: self.ack_deadline_ms(),
        //~     },
        //~ );
        //~ Some(message)
        //~ alt: back-to-ready-and-ack-anywhere
        //~ // Expired jobs go back to the front of the line, oldest id first; `ack` looks for
        //~ // a job in both places.
        //~ let now_ms = self.clock.now_ms();
        //~ let expired: Vec<u64> = self
        //~     .in_flight
        //~     .iter()
        //~     .filter(|(_, flight)| flight.visible_again_at_ms <= now_ms)
        //~     .map(|(id, _)| *id)
        //~     .collect();
        //~ for id in expired.into_iter().rev() {
        //~     if let Some(flight) = self.in_flight.remove(&id) {
        //~         self.ready.push_front(flight.message);
        //~     }
        //~ }
        //~ let message = self.ready.pop_front()?;
        //~ self.in_flight.insert(
        //~     message.id,
        //~     InFlight {
        //~         message: message.clone(),
        //~         visible_again_at_ms: self.ack_deadline_ms(),
        //~     },
        //~ );
        //~ Some(message)
        //~ alt: scan-one-list
        //~ // One pass over every unacked job, oldest first: the first one not hidden now.
        //~ let now_ms = self.clock.now_ms();
        //~ let deadline_ms = self.ack_deadline_ms();
        //~ let hidden_until_ms = &mut self.hidden_until_ms;
        //~ let message = self.ready.iter().find(|message| {
        //~     hidden_until_ms
        //~         .get(&message.id)
        //~         .is_none_or(|until_ms| *until_ms <= now_ms)
        //~ })?;
        //~ hidden_until_ms.insert(message.id, deadline_ms);
        //~ Some(message.clone())
        //~ alt: heap-of-deadlines
        //~ // The earliest deadline is on top; stale entries (acked or redelivered since) are
        //~ // thrown away on the way.
        //~ let now_ms = self.clock.now_ms();
        //~ let mut expired = None;
        //~ while let Some(Reverse((deadline_ms, id))) = self.deadlines.peek().copied() {
        //~     if deadline_ms > now_ms {
        //~         break;
        //~     }
        //~     self.deadlines.pop();
        //~     let current = self
        //~         .in_flight
        //~         .get(&id)
        //~         .is_some_and(|flight| flight.visible_again_at_ms == deadline_ms);
        //~     if current {
        //~         expired = Some(id);
        //~         break;
        //~     }
        //~ }
        //~ let message = match expired {
        //~     Some(id) => self.in_flight.remove(&id)?.message,
        //~     None => self.ready.pop_front()?,
        //~ };
        //~ let deadline_ms = self.ack_deadline_ms();
        //~ self.deadlines.push(Reverse((deadline_ms, message.id)));
        //~ self.in_flight.insert(
        //~     message.id,
        //~     InFlight {
        //~         message: message.clone(),
        //~         visible_again_at_ms: deadline_ms,
        //~     },
        //~ );
        //~ Some(message)
        //~ alt: index-by-visible-at
        //~ // The received job that comes back first is the first key; if its instant has
        //~ // come it goes out again, else the oldest job never received does.
        //~ let now_ms = self.clock.now_ms();
        //~ let due = self
        //~     .by_visible_at_ms
        //~     .first_key_value()
        //~     .map(|(key, _)| *key)
        //~     .filter(|(visible_at_ms, _)| *visible_at_ms <= now_ms);
        //~ let message = match due {
        //~     Some(key) => self.by_visible_at_ms.remove(&key)?,
        //~     None => self.ready.pop_front()?,
        //~ };
        //~ let deadline_ms = self.ack_deadline_ms();
        //~ self.visible_at_ms_of.insert(message.id, deadline_ms);
        //~ self.by_visible_at_ms
        //~     .insert((deadline_ms, message.id), message.clone());
        //~ Some(message)
        //~ end
    }

    /// The job `id` is done: delete it for good, wherever it is. A late ack counts too.
    pub fn ack(&mut self, id: u64) {
        //~ site: pop-on-receive
        // FIX: between receive and ack a message lives in `in_flight`, not in `ready`: the
        // ack deletes it there, or its deadline would bring it back.
        self.in_flight.remove(&id);
        //~ broken:
        //~ self.ready.retain(|message| message.id != id);
        //~ wrong: peek-instead-of-pop
        //~ self.ready.retain(|message| message.id != id);
        //~ wrong: ack-forgets-in-flight
        //~ self.ready.retain(|message| message.id != id);
        //~ wrong: late-ack-ignored
        //~ // Past its deadline the job belongs to whoever receives it next: a late ack is
        //~ // stale and changes nothing.
        //~ let now_ms = self.clock.now_ms();
        //~ if self
        //~     .in_flight
        //~     .get(&id)
        //~     .is_some_and(|flight| flight.visible_again_at_ms > now_ms)
        //~ {
        //~     self.in_flight.remove(&id);
        //~ }
        //~ alt: back-to-ready-and-ack-anywhere
        //~ self.in_flight.remove(&id);
        //~ self.ready.retain(|message| message.id != id);
        //~ alt: scan-one-list
        //~ self.ready.retain(|message| message.id != id);
        //~ self.hidden_until_ms.remove(&id);
        //~ alt: index-by-visible-at
        //~ if let Some(visible_at_ms) = self.visible_at_ms_of.remove(&id) {
        //~     self.by_visible_at_ms.remove(&(visible_at_ms, id));
        //~ }
        //~ end
    }

    /// Messages the queue is responsible for: visible ones and received-but-unacked ones.
    pub fn depth(&self) -> usize {
        //~ site: pop-on-receive
        // FIX: in-flight messages are still the queue's to deliver.
        self.ready.len() + self.in_flight.len()
        //~ broken:
        //~ self.ready.len()
        //~ wrong: peek-instead-of-pop
        //~ self.ready.len()
        //~ wrong: depth-counts-ready-only
        //~ // Jobs waiting to be received: the backlog.
        //~ self.ready.len()
        //~ alt: scan-one-list
        //~ self.ready.len()
        //~ alt: index-by-visible-at
        //~ self.ready.len() + self.by_visible_at_ms.len()
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
