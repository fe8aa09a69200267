//! A correct at-least-once broker, for scenarios whose bug is not in the queue.
//!
//! When the lesson is about the consumer (duplicates after a lost ack) the queue around it
//! must behave like SQS: a received message becomes invisible for a visibility timeout and
//! comes back if no ack arrives in time. This is that queue, on the simulated clock.
//! It is bounded: [`Broker::send`] refuses messages past [`BROKER_DEPTH_MAX`].

use std::collections::{BTreeMap, VecDeque};

use crate::clock::Clock;

/// The most messages a broker holds, ready and in flight together.
pub const BROKER_DEPTH_MAX: usize = 100_000;

/// A message as a consumer receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The id the broker gave the message; the same on every redelivery.
    pub id: u64,
    pub body: String,
    /// 1 on the first delivery, 2 on the first redelivery, and so on.
    pub attempt: u32,
}

/// The broker is full; the message is handed back.
#[derive(Debug, PartialEq, Eq)]
pub struct Full(pub String);

#[derive(Debug)]
struct Stored {
    id: u64,
    body: String,
    attempts: u32,
}

/// An at-least-once queue with a visibility timeout.
#[derive(Debug)]
pub struct Broker {
    clock: Clock,
    visibility_timeout_ms: u64,
    ready: VecDeque<Stored>,
    /// id → (message, the time it becomes visible again)
    in_flight: BTreeMap<u64, (Stored, u64)>,
    next_id: u64,
}

impl Broker {
    /// An empty broker on `clock`.
    pub fn new(clock: Clock, visibility_timeout_ms: u64) -> Self {
        Self {
            clock,
            visibility_timeout_ms,
            ready: VecDeque::new(),
            in_flight: BTreeMap::new(),
            next_id: 1,
        }
    }

    /// The same broker, giving its first message the id `first_id` (ids count from 1 by
    /// default): checks use it so that ids past 100 show up without sending 100 messages.
    pub fn with_first_id(mut self, first_id: u64) -> Self {
        self.next_id = first_id;
        self
    }

    /// Lets the next `count` ids go to messages this queue never sees (other queues of the
    /// same broker take ids too): ids are unique and increasing, not dense, so checks can
    /// send messages whose ids are far apart without sending everything between.
    pub fn skip_ids(&mut self, count: u64) {
        self.next_id = self.next_id.saturating_add(count);
    }

    /// Enqueues a message and returns its id (ids count from 1).
    pub fn send(&mut self, body: impl Into<String>) -> Result<u64, Full> {
        let body = body.into();
        if self.depth() >= BROKER_DEPTH_MAX {
            return Err(Full(body));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ready.push_back(Stored {
            id,
            body,
            attempts: 0,
        });
        Ok(id)
    }

    /// The next visible message, now invisible until its timeout passes or it is acked.
    /// Messages whose timeout has passed come back first, oldest id first.
    pub fn receive(&mut self) -> Option<Delivery> {
        let now = self.clock.now_ms();
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, (_, visible_at))| *visible_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired.into_iter().rev() {
            if let Some((stored, _)) = self.in_flight.remove(&id) {
                self.ready.push_front(stored);
            }
        }
        let mut stored = self.ready.pop_front()?;
        stored.attempts += 1;
        let delivery = Delivery {
            id: stored.id,
            body: stored.body.clone(),
            attempt: stored.attempts,
        };
        self.in_flight.insert(
            stored.id,
            (stored, now.saturating_add(self.visibility_timeout_ms)),
        );
        Some(delivery)
    }

    /// Deletes an in-flight message. False if it was not in flight (already acked, or
    /// its timeout passed and it was received again by someone else... or never sent).
    pub fn ack(&mut self, id: u64) -> bool {
        self.in_flight.remove(&id).is_some()
    }

    /// Messages held, ready and in flight.
    pub fn depth(&self) -> usize {
        self.ready.len() + self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unacked messages come back after the timeout, not before; acked ones never do.
    #[test]
    fn at_least_once_with_visibility_timeout() {
        let clock = Clock::new();
        let mut broker = Broker::new(clock.clone(), 100);
        let first = broker.send("a").unwrap();
        let second = broker.send("b").unwrap();
        assert_eq!(broker.receive().unwrap().id, first);
        let delivered = broker.receive().unwrap();
        assert_eq!(delivered.id, second);
        assert!(broker.ack(second));
        clock.advance_ms(99);
        assert_eq!(
            broker.receive(),
            None,
            "nothing is visible before the timeout"
        );
        clock.advance_ms(1);
        let again = broker.receive().unwrap();
        assert_eq!((again.id, again.attempt), (first, 2));
        assert!(broker.ack(first));
        clock.advance_ms(1_000);
        assert_eq!(broker.receive(), None);
        assert_eq!(broker.depth(), 0);
        assert!(!broker.ack(first), "a second ack finds nothing");
    }

    /// Skipped ids are never handed out: the next message's id is past them.
    #[test]
    fn skipped_ids_are_not_used() {
        let mut broker = Broker::new(Clock::new(), 1_000).with_first_id(5);
        let first = broker.send("a").unwrap();
        broker.skip_ids(63);
        let second = broker.send("b").unwrap();
        assert_eq!((first, second), (5, 69));
    }
}
