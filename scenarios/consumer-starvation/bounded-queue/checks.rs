//! Checks for consumer-starvation/bounded-queue, as properties over generated histories:
//! queues of capacities that are mostly not powers of two, several producers offering jobs
//! one at a time and in bursts, several consumers taking them one at a time, in small
//! batches, slowly, or stalling while a producer bursts.
//!
//! The queue's semantics are fully specified (see the promises in its doc comment), so the
//! last stage compares every answer with a model: a `VecDeque` of job ids and the capacity.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// Capacities a history may use: mostly not powers of two, so a bound that rounds or that
/// wastes a slot shows.
const CAPACITIES: [usize; 10] = [1, 2, 3, 5, 6, 7, 9, 10, 12, 13];
/// The first job's id: past 100, so no id doubles as a small index by luck.
const FIRST_ID: u64 = 101;
/// The most operations in one history.
const OPS_MAX: usize = 24;
/// The most jobs in one burst.
const BURST_MAX: u8 = 20;
/// The most jobs a check drains at the end: far more than any queue here can hold, so a
/// queue that keeps answering `Some` cannot hang the check.
const DRAIN_MAX: usize = 1_000;

/// One step of a history.
#[derive(Clone, Debug)]
enum Op {
    /// Producer `producer` offers one job.
    Offer { producer: u8 },
    /// Producer `producer` offers `jobs` jobs, one after another.
    Burst { producer: u8, jobs: u8 },
    /// Consumer `consumer` takes one job.
    Take { consumer: u8 },
    /// Consumer `consumer` takes up to `jobs` jobs: slow but not stalled.
    TakeSome { consumer: u8, jobs: u8 },
    /// Consumer `consumer` stalls while producer `producer` offers `jobs` jobs.
    Stall {
        consumer: u8,
        producer: u8,
        jobs: u8,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Offer { producer } => write!(f, "p{producer} offers a job"),
            Op::Burst { producer, jobs } => write!(f, "p{producer} offers {jobs} jobs"),
            Op::Take { consumer } => write!(f, "c{consumer} takes a job"),
            Op::TakeSome { consumer, jobs } => write!(f, "c{consumer} takes up to {jobs} jobs"),
            Op::Stall {
                consumer,
                producer,
                jobs,
            } => write!(f, "c{consumer} stalls while p{producer} offers {jobs} jobs"),
        }
    }
}

/// A queue's capacity and what happens to it.
#[derive(Clone, Debug)]
struct History {
    capacity: usize,
    ops: Vec<Op>,
}

fn tell(history: &History) -> String {
    format!(
        "a queue made for {} job(s); {}; then a consumer drains it",
        history.capacity,
        prop::numbered(&history.ops)
    )
}

fn histories() -> impl Strategy<Value = History> {
    let op = prop_oneof![
        3 => (1..=3u8).prop_map(|producer| Op::Offer { producer }),
        2 => (1..=3u8, 2..=BURST_MAX).prop_map(|(producer, jobs)| Op::Burst { producer, jobs }),
        3 => (1..=2u8).prop_map(|consumer| Op::Take { consumer }),
        2 => (1..=2u8, 2..=5u8).prop_map(|(consumer, jobs)| Op::TakeSome { consumer, jobs }),
        1 => (1..=2u8, 1..=3u8, 2..=BURST_MAX)
            .prop_map(|(consumer, producer, jobs)| Op::Stall { consumer, producer, jobs }),
    ];
    (
        prop::proptest::sample::select(&CAPACITIES[..]),
        prop::proptest::collection::vec(op, 1..OPS_MAX),
    )
        .prop_map(|(capacity, ops)| History { capacity, ops })
}

fn ids(list: &[u64]) -> String {
    if list.is_empty() {
        return "none".to_owned();
    }
    let named: Vec<String> = list.iter().map(|id| format!("m{id}")).collect();
    format!("[{}]", named.join(", "))
}

/// Which promise a stage holds the queue to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Promise {
    /// Depth never exceeds the capacity.
    Bounded,
    /// A producer told Ok never loses its job; a producer refused gets its own job back.
    Told,
    /// Every answer is the model's: Ok exactly while there is room, oldest first.
    Model,
}

/// One history played against the learner's queue and the model beside it.
struct Run<'a> {
    trace: &'a Trace,
    promise: Promise,
    queue: Queue,
    capacity: usize,
    next_id: u64,
    /// The model: the ids waiting, oldest first.
    model: VecDeque<u64>,
    /// Every job the queue said Ok to, in order.
    accepted: Vec<u64>,
    /// Every job handed to a consumer, in order.
    received: Vec<u64>,
    accepted_set: BTreeSet<u64>,
    received_set: BTreeSet<u64>,
}

impl Run<'_> {
    fn offer(&mut self, producer: u8) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        let who = format!("p{producer}");
        self.trace
            .event(who.clone(), EventKind::Send)
            .to("queue")
            .msg(id)
            .record();
        let waiting = |run: &Run| -> Vec<u64> { run.model.iter().copied().collect() };
        let waiting_before = self.model.len();
        let room = waiting_before < self.capacity;
        let outcome = self.queue.try_send(Job { id });
        let depth = self.queue.depth();
        match outcome {
            Ok(()) => {
                self.trace
                    .event("queue", EventKind::Note)
                    .msg(id)
                    .note(format!("Ok, depth {depth}"))
                    .record();
                self.accepted.push(id);
                self.accepted_set.insert(id);
                if self.promise == Promise::Model && !room {
                    return Err(format!(
                        "try_send(m{id}) from {who} returned Ok with {} of {} places taken by {}: \
                         the queue is full and must hand m{id} back",
                        waiting_before,
                        self.capacity,
                        ids(&waiting(self))
                    ));
                }
                if room {
                    self.model.push_back(id);
                }
            }
            Err(Full(job)) => {
                self.trace
                    .event("queue", EventKind::Reject)
                    .to(who.clone())
                    .msg(job.id)
                    .note("full: handed back")
                    .record();
                if self.promise != Promise::Bounded && job.id != id {
                    self.trace
                        .event("verdict", EventKind::Lost)
                        .msg(id)
                        .note(format!("{who} got m{} back instead", job.id))
                        .record();
                    return Err(format!(
                        "try_send(m{id}) from {who} was refused, but the job handed back was \
                         m{}: the queue kept m{id} and gave away a job it had already said Ok \
                         to. Err must mean \"your job was not taken\", with that very job",
                        job.id
                    ));
                }
                if self.promise == Promise::Model && room {
                    return Err(format!(
                        "try_send(m{id}) from {who} was refused with only {} of {} places \
                         taken ({}): nothing may be refused while there is room",
                        waiting_before,
                        self.capacity,
                        ids(&waiting(self))
                    ));
                }
            }
        }
        if depth > self.capacity {
            self.trace
                .event("verdict", EventKind::Note)
                .msg(id)
                .note(format!("depth {depth} > capacity {}", self.capacity))
                .record();
            return Err(format!(
                "after try_send(m{id}) from {who}, {depth} jobs wait in a queue made for {}",
                self.capacity
            ));
        }
        if self.promise == Promise::Model && depth != self.model.len() {
            return Err(format!(
                "after try_send(m{id}) from {who}, depth() is {depth} but {} jobs wait ({})",
                self.model.len(),
                ids(&self.model.iter().copied().collect::<Vec<_>>())
            ));
        }
        Ok(())
    }

    /// Consumer `consumer` asks for one job; false when the queue said it had none.
    fn take(&mut self, consumer: &str) -> Result<bool, String> {
        let waiting: Vec<u64> = self.model.iter().copied().collect();
        let got = self.queue.receive().map(|job| job.id);
        let expected = self.model.front().copied();
        if let Some(id) = got {
            self.trace
                .event("queue", EventKind::Deliver)
                .to(consumer)
                .msg(id)
                .record();
            if self.promise != Promise::Bounded && self.received_set.contains(&id) {
                self.trace
                    .event("verdict", EventKind::Duplicate)
                    .msg(id)
                    .record();
                return Err(format!("{consumer} received m{id} a second time"));
            }
            if self.promise != Promise::Bounded && !self.accepted_set.contains(&id) {
                return Err(format!(
                    "{consumer} received m{id}, which the queue had never said Ok to: its \
                     producer was handed it back in Err(Full) and holds it too"
                ));
            }
            self.received.push(id);
            self.received_set.insert(id);
            if let Some(position) = self.model.iter().position(|waiting| *waiting == id) {
                self.model.remove(position);
            }
        }
        if self.promise == Promise::Model && got != expected {
            return Err(match (got, expected) {
                (Some(id), Some(oldest)) => format!(
                    "{consumer} received m{id}, but the oldest waiting job was m{oldest} \
                     (waiting, oldest first: {}): a queue hands out the oldest job first",
                    ids(&waiting)
                ),
                (None, Some(oldest)) => format!(
                    "{consumer} asked for a job and got none, while m{oldest} waited (oldest \
                     first: {})",
                    ids(&waiting)
                ),
                (Some(id), None) => {
                    format!("{consumer} received m{id} from a queue that should have been empty")
                }
                (None, None) => unreachable!(),
            });
        }
        let depth = self.queue.depth();
        if self.promise == Promise::Model && depth != self.model.len() {
            return Err(format!(
                "after {consumer} took a job, depth() is {depth} but {} jobs wait",
                self.model.len()
            ));
        }
        Ok(got.is_some())
    }

    fn play(&mut self, ops: &[Op]) -> Result<(), String> {
        for op in ops {
            match op {
                Op::Offer { producer } => self.offer(*producer)?,
                Op::Burst { producer, jobs } => {
                    for _ in 0..*jobs {
                        self.offer(*producer)?;
                    }
                }
                Op::Take { consumer } => {
                    self.take(&format!("c{consumer}"))?;
                }
                Op::TakeSome { consumer, jobs } => {
                    for _ in 0..*jobs {
                        if !self.take(&format!("c{consumer}"))? {
                            break;
                        }
                    }
                }
                Op::Stall {
                    consumer,
                    producer,
                    jobs,
                } => {
                    self.trace
                        .event(format!("c{consumer}"), EventKind::Stall)
                        .note(format!(
                            "takes nothing while p{producer} offers {jobs} jobs"
                        ))
                        .record();
                    for _ in 0..*jobs {
                        self.offer(*producer)?;
                    }
                }
            }
        }
        // The consumers catch up: whatever the queue still holds comes out.
        for _ in 0..DRAIN_MAX {
            if !self.take("c1")? {
                break;
            }
        }
        if self.promise == Promise::Bounded {
            return Ok(());
        }
        let lost: Vec<u64> = self
            .accepted
            .iter()
            .copied()
            .filter(|id| !self.received_set.contains(id))
            .collect();
        if let Some(first) = lost.first() {
            for id in &lost {
                self.trace
                    .event("verdict", EventKind::Lost)
                    .msg(*id)
                    .note("accepted, never delivered")
                    .record();
            }
            return Err(format!(
                "m{first} was accepted (try_send returned Ok) and never reached a consumer, \
                 even after the queue was drained: {} of the {} accepted jobs were lost ({}), \
                 and no producer was told",
                lost.len(),
                self.accepted.len(),
                ids(&lost)
            ));
        }
        Ok(())
    }
}

fn holds(history: &History, trace: &Trace, promise: Promise) -> Result<(), String> {
    let mut run = Run {
        trace,
        promise,
        queue: Queue::with_capacity(history.capacity),
        capacity: history.capacity,
        next_id: FIRST_ID,
        model: VecDeque::new(),
        accepted: Vec::new(),
        received: Vec::new(),
        accepted_set: BTreeSet::new(),
        received_set: BTreeSet::new(),
    };
    run.play(&history.ops)
}

fn depth_bounded_stalled_consumer(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "the depth never exceeds the capacity",
        60,
        histories(),
        tell,
        |history, trace| holds(history, trace, Promise::Bounded),
    );
}

fn producer_told(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "a producer told Ok never loses its job, a producer refused gets it back",
        60,
        histories(),
        tell,
        |history, trace| holds(history, trace, Promise::Told),
    );
}

fn nothing_silently_dropped(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "Ok exactly while there is room, oldest first",
        60,
        histories(),
        tell,
        |history, trace| holds(history, trace, Promise::Model),
    );
}

#[test]
fn checks() {
    run_stages(
        "bounded-queue",
        &[
            Stage {
                id: "depth-bounded-stalled-consumer",
                title: "The queue never holds more jobs than its capacity",
                mentor: "Producers kept offering while the consumers fell behind. What in this \
                         queue stops it from growing, and does it stop exactly at the capacity \
                         it was made with, whatever that number is? Look at what \
                         `with_capacity` really promises.",
                run: depth_bounded_stalled_consumer,
            },
            Stage {
                id: "producer-told",
                title: "A job told Ok is never lost; a job refused goes back to its producer",
                mentor: "The depth is bounded now, but did someone pay for it without knowing? \
                         An Ok is a promise to the producer; if the job is not kept, the \
                         producer must hear `Err(Full(job))`, with its own job, so it can slow \
                         down and offer it again.",
                run: producer_told,
            },
            Stage {
                id: "nothing-silently-dropped",
                title: "Jobs are taken exactly while there is room, and handed out oldest first",
                mentor: "Nothing is lost, but does the queue say no only when it is really \
                         full? Count the jobs waiting at the moment of a refusal, and check \
                         that room comes back as consumers take jobs, and that they get the \
                         oldest first.",
                run: nothing_silently_dropped,
            },
        ],
    );
}
