//! Checks for the visibility-timeout queue: crashes lose nothing, acks delete for good (late
//! ones too), a message is hidden for exactly its visibility timeout, and depth counts every
//! unacked message.
//!
//! Every stage is a property checked over histories drawn from a fixed seed: sends, receives
//! by three consumers, acks (some after the deadline, by a slow consumer), crashes, and the
//! clock moving by uneven amounts, to just before, at and just after deadlines, with
//! visibility timeouts that are not whole seconds. The last two stages compare the queue with
//! a small model of its promise; which visible message a receive hands out is left to the
//! queue, as its doc comment says.

use std::collections::BTreeMap;
use std::fmt;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::clock::Clock;
use bughunt_kit::invariant::{self, Invariant, Violation};
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

const VISIBILITY_TIMEOUT_MS: u64 = 30_000;
/// Timeouts the histories use: the usual one, and ones that are not whole seconds.
const TIMEOUTS_MS: [u64; 6] = [VISIBILITY_TIMEOUT_MS, 1_500, 2_750, 999, 12_345, 7];
const CASES: u32 = 96;
const OPS_MAX: usize = 28;
/// Rounds of "wait a full timeout, receive and ack everything" that end a history.
const DRAIN_ROUNDS: u64 = 3;
const CONSUMERS: [&str; 3] = ["c1", "c2", "c3"];
/// Jobs done before some histories start, so that their ids are past 100.
const WARMUP_JOBS: u64 = 101;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Send,
    /// A consumer receives a message and holds it, working on it.
    Receive {
        consumer: usize,
    },
    /// A consumer acks the oldest message it holds, maybe after its deadline.
    Ack {
        consumer: usize,
    },
    /// A consumer crashes: what it holds is never acked.
    Crash {
        consumer: usize,
    },
    Wait {
        ms: u64,
    },
    /// The clock moves to the next deadline of a held message, plus `offset_ms` (-1, 0, +1).
    ToDeadline {
        offset_ms: i8,
    },
}

#[derive(Clone, Debug)]
struct History {
    timeout_ms: u64,
    /// Jobs sent, received and acked before the history, so that its ids start past 100.
    warmup: u64,
    ops: Vec<Op>,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Send => write!(f, "send a job"),
            Op::Receive { consumer } => write!(f, "{} receives", CONSUMERS[consumer]),
            Op::Ack { consumer } => write!(f, "{} acks its oldest job", CONSUMERS[consumer]),
            Op::Crash { consumer } => write!(f, "{} crashes", CONSUMERS[consumer]),
            Op::Wait { ms } => write!(f, "wait {ms} ms"),
            Op::ToDeadline { offset_ms: 0 } => write!(f, "wait until the next deadline"),
            Op::ToDeadline { offset_ms: -1 } => {
                write!(f, "wait until 1 ms before the next deadline")
            }
            Op::ToDeadline { offset_ms } => {
                write!(f, "wait until {offset_ms} ms after the next deadline")
            }
        }
    }
}

fn tell(history: &History) -> String {
    let warmup = match history.warmup {
        0 => String::new(),
        jobs => format!(
            " (after {jobs} jobs sent, received and acked, so ids start at {})",
            jobs + 1
        ),
    };
    format!(
        "visibility timeout {} ms{warmup}: {}; then every consumer still holding a job \
         crashes, and c1 waits out the timeout and receives and acks everything, \
         {DRAIN_ROUNDS} times",
        history.timeout_ms,
        prop::numbered(&history.ops)
    )
}

/// Decodes one raw number into an operation. Histories are drawn as raw numbers, which
/// proptest generates and shrinks far faster than a tree of strategies; 0, where shrinking
/// goes, is a send.
fn decode(timeout_ms: u64, raw: u32) -> Op {
    const KINDS: [u8; 16] = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 4, 4, 4, 5, 5];
    let rest = raw / KINDS.len() as u32;
    let consumer = rest as usize % CONSUMERS.len();
    match KINDS[raw as usize % KINDS.len()] {
        0 => Op::Send,
        1 => Op::Receive { consumer },
        2 => Op::Ack { consumer },
        3 => Op::Crash { consumer },
        4 => {
            let spread = u64::from(rest / 5);
            let ms = match rest % 5 {
                0 | 1 => 1 + spread % 997,
                2 => timeout_ms.saturating_sub(1).max(1),
                3 => timeout_ms,
                _ => 1 + spread % (2 * timeout_ms),
            };
            Op::Wait { ms }
        }
        _ => Op::ToDeadline {
            offset_ms: (rest % 3) as i8 - 1,
        },
    }
}

fn histories() -> impl Strategy<Value = History> {
    (
        0..TIMEOUTS_MS.len(),
        0..8u8,
        prop::proptest::collection::vec(any::<u32>(), 1..=OPS_MAX),
    )
        .prop_map(|(timeout, warmup, raw_ops)| {
            let timeout_ms = TIMEOUTS_MS[timeout];
            History {
                timeout_ms,
                warmup: if warmup == 7 { WARMUP_JOBS } else { 0 },
                ops: raw_ops.iter().map(|raw| decode(timeout_ms, *raw)).collect(),
            }
        })
}

/// What the model knows of one message.
#[derive(Clone, Debug)]
struct Known {
    body: String,
    /// The instant it is visible from: 0 until its first receive, then that receive's
    /// deadline.
    visible_from_ms: u64,
    acked: bool,
    /// The last receive: who, and when.
    last_receive: Option<(usize, u64)>,
    story: Vec<String>,
}

/// Which promises a stage checks as the history runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Promise {
    NothingLost,
    AckedNeverReturns,
    HiddenExactly,
    DepthCounts,
}

/// One history acted out on the learner's queue, beside the model of what it promises.
struct Run<'t> {
    trace: &'t Trace,
    promise: Promise,
    clock: Clock,
    queue: Queue,
    timeout_ms: u64,
    known: BTreeMap<u64, Known>,
    /// What each consumer holds, oldest first.
    held: [Vec<u64>; 3],
    step: usize,
}

impl<'t> Run<'t> {
    fn new(trace: &'t Trace, promise: Promise, timeout_ms: u64) -> Self {
        let clock = Clock::new();
        Self {
            trace,
            promise,
            queue: Queue::new(clock.clone(), timeout_ms),
            clock,
            timeout_ms,
            known: BTreeMap::new(),
            held: Default::default(),
            step: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn tell(&mut self, id: u64, what: String) {
        let now_ms = self.now_ms();
        if let Some(known) = self.known.get_mut(&id) {
            known.story.push(format!("at {now_ms} ms {what}"));
        }
    }

    fn story_of(&self, id: u64) -> String {
        self.known
            .get(&id)
            .map(|known| known.story.join("; "))
            .unwrap_or_default()
    }

    fn fail(&self, invariant: Invariant, id: u64, detail: String) -> String {
        invariant::mark(
            self.trace,
            &[Violation {
                invariant,
                msg: Some(id),
                detail: detail.clone(),
            }],
        );
        detail
    }

    fn wait(&mut self, ms: u64) {
        self.trace.set_time_ms(self.clock.advance_ms(ms));
    }

    /// The earliest deadline still ahead of a message somebody holds.
    fn next_deadline_ms(&self) -> Option<u64> {
        let now_ms = self.now_ms();
        self.held
            .iter()
            .flatten()
            .filter_map(|id| self.known.get(id))
            .filter(|known| !known.acked && known.visible_from_ms > now_ms)
            .map(|known| known.visible_from_ms)
            .min()
    }

    /// Sends, receives and acks `jobs` jobs without drawing them.
    fn warm_up(&mut self, jobs: u64) -> Result<(), String> {
        for _ in 0..jobs {
            let id = self.queue.send("warm-up job");
            let received = self.queue.receive().map(|message| message.id);
            if received != Some(id) {
                return Err(format!(
                    "before the history, c1 sent m{id} to an otherwise empty queue and received \
                     {}",
                    received.map_or("nothing".to_owned(), |other| format!("m{other}"))
                ));
            }
            self.queue.ack(id);
            self.known.insert(
                id,
                Known {
                    body: "warm-up job".to_owned(),
                    visible_from_ms: 0,
                    acked: true,
                    last_receive: Some((0, 0)),
                    story: vec![format!(
                        "m{id} was sent, received and acked before the history"
                    )],
                },
            );
        }
        Ok(())
    }

    fn send(&mut self) {
        // Bodies repeat: two jobs can say the same thing and still be two jobs.
        let body = format!("resize photo {}", self.known.len() % 3 + 1);
        let id = self.queue.send(body.clone());
        self.trace
            .event("producer", EventKind::Send)
            .to("queue")
            .msg(id)
            .note(body.clone())
            .record();
        self.known.insert(
            id,
            Known {
                body,
                visible_from_ms: 0,
                acked: false,
                last_receive: None,
                story: Vec::new(),
            },
        );
        self.tell(id, format!("m{id} was sent"));
    }

    /// Why `id` is visible now, in words.
    fn why_visible(&self, id: u64) -> String {
        match self.known[&id].last_receive {
            None => format!("m{id} was sent and never received"),
            Some((who, at_ms)) => format!(
                "m{id} was last received by {} at {at_ms} ms, so its timeout of {} ms ended at \
                 {} ms",
                CONSUMERS[who], self.timeout_ms, self.known[&id].visible_from_ms
            ),
        }
    }

    /// `who` asks the queue for a message; the model checks the answer under
    /// [`Promise::HiddenExactly`] and [`Promise::AckedNeverReturns`].
    fn receive(&mut self, who: usize) -> Result<Option<u64>, String> {
        let name = CONSUMERS[who];
        let now_ms = self.now_ms();
        let visible: Vec<u64> = self
            .known
            .iter()
            .filter(|(_, known)| !known.acked && known.visible_from_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        let Some(message) = self.queue.receive() else {
            self.trace
                .event(name, EventKind::Note)
                .to("queue")
                .note("receive: nothing visible")
                .record();
            if self.promise == Promise::HiddenExactly {
                if let Some(&id) = visible.first() {
                    return Err(self.fail(
                        Invariant::AtLeastOnce,
                        id,
                        format!(
                            "at {now_ms} ms {name} asked for a message and got nothing, but {}: \
                             it is visible from that instant on. Its story: {}",
                            self.why_visible(id),
                            self.story_of(id)
                        ),
                    ));
                }
            }
            return Ok(None);
        };
        let id = message.id;
        let Some(known) = self.known.get(&id) else {
            return Err(format!(
                "{name} received m{id} at {now_ms} ms, an id `send` never returned"
            ));
        };
        let first = known.last_receive.is_none();
        self.trace
            .event(
                "queue",
                if first {
                    EventKind::Deliver
                } else {
                    EventKind::Redeliver
                },
            )
            .to(name)
            .msg(id)
            .record();
        self.tell(id, format!("{name} received m{id}"));
        let known = &self.known[&id];
        if known.acked && self.promise != Promise::NothingLost {
            return Err(self.fail(
                Invariant::NoDeliveryAfterAck,
                id,
                format!(
                    "m{id} was acked and {name} received it again at {now_ms} ms: an acked job is \
                     done, and doing it twice is a second charge, a second email. Its story: {}",
                    self.story_of(id)
                ),
            ));
        }
        if self.promise == Promise::HiddenExactly {
            if message.body != known.body {
                return Err(format!(
                    "{name} received m{id} with the body {:?}; it was sent as {:?}",
                    message.body, known.body
                ));
            }
            if known.visible_from_ms > now_ms {
                let (holder, at_ms) = known.last_receive.expect("hidden means received");
                let twice = if holder == who {
                    format!("{name} now holds the same job twice")
                } else {
                    format!("{name} and {} now work on the same job", CONSUMERS[holder])
                };
                return Err(self.fail(
                    Invariant::ExactlyOnceEffects,
                    id,
                    format!(
                        "{name} received m{id} at {now_ms} ms, but {} had received it at {at_ms} \
                         ms and its visibility timeout of {} ms ends at {} ms: {twice}. Its \
                         story: {}",
                        CONSUMERS[holder],
                        self.timeout_ms,
                        known.visible_from_ms,
                        self.story_of(id)
                    ),
                ));
            }
            let deadline_ms = self.queue.ack_deadline_ms();
            let expected_ms = now_ms.saturating_add(self.timeout_ms);
            if deadline_ms != expected_ms {
                return Err(format!(
                    "{name} received m{id} at {now_ms} ms and ack_deadline_ms() said {deadline_ms}; \
                     with a visibility timeout of {} ms the deadline of a receive at {now_ms} ms \
                     is {expected_ms}",
                    self.timeout_ms
                ));
            }
        }
        let known = self.known.get_mut(&id).expect("known above");
        known.visible_from_ms = now_ms.saturating_add(self.timeout_ms);
        known.last_receive = Some((who, now_ms));
        Ok(Some(id))
    }

    fn ack(&mut self, who: usize, id: u64) {
        let name = CONSUMERS[who];
        let now_ms = self.now_ms();
        self.queue.ack(id);
        self.trace
            .event(name, EventKind::Ack)
            .to("queue")
            .msg(id)
            .record();
        let late = self.known.get(&id).and_then(|known| {
            let deadline_ms = known.visible_from_ms;
            (known.last_receive.map(|(holder, _)| holder) != Some(who) || deadline_ms <= now_ms)
                .then_some(deadline_ms)
        });
        match late {
            Some(deadline_ms) => self.tell(
                id,
                format!(
                    "{name} acked m{id}, late: its deadline of {deadline_ms} ms had passed \
                     (a slow consumer, done after all)"
                ),
            ),
            None => self.tell(id, format!("{name} acked m{id}")),
        }
        if let Some(known) = self.known.get_mut(&id) {
            known.acked = true;
        }
    }

    fn crash(&mut self, who: usize) {
        let name = CONSUMERS[who];
        let dropped = std::mem::take(&mut self.held[who]);
        for id in &dropped {
            self.tell(*id, format!("{name} crashed holding m{id}, before its ack"));
        }
        let mut event = self
            .trace
            .event(name, EventKind::Crash)
            .note(format!("{name} crashes and restarts"));
        if let Some(id) = dropped.first() {
            event = event.msg(*id);
        }
        event.record();
    }

    fn check_depth(&self, after: &Op) -> Result<(), String> {
        if self.promise != Promise::DepthCounts {
            return Ok(());
        }
        let unacked: Vec<u64> = self
            .known
            .iter()
            .filter(|(_, known)| !known.acked)
            .map(|(id, _)| *id)
            .collect();
        let depth = self.queue.depth();
        if depth == unacked.len() {
            return Ok(());
        }
        let now_ms = self.now_ms();
        let shown: Vec<String> = unacked
            .iter()
            .map(|id| {
                let known = &self.known[id];
                match known.last_receive {
                    None => format!("m{id} (never received)"),
                    Some(_) if known.visible_from_ms > now_ms => {
                        format!(
                            "m{id} (received, hidden until {} ms)",
                            known.visible_from_ms
                        )
                    }
                    Some(_) => format!("m{id} (received, not acked, visible again)"),
                }
            })
            .collect();
        Err(format!(
            "after step {} ({after}), at {now_ms} ms, depth() is {depth}, but {} message(s) are \
             the queue's to deliver: {}",
            self.step,
            unacked.len(),
            if shown.is_empty() {
                "none".to_owned()
            } else {
                shown.join(", ")
            }
        ))
    }

    fn apply(&mut self, history: &History) -> Result<(), String> {
        self.warm_up(history.warmup)?;
        for op in &history.ops {
            self.step += 1;
            match *op {
                Op::Send => self.send(),
                Op::Receive { consumer } => {
                    if let Some(id) = self.receive(consumer)? {
                        self.held[consumer].push(id);
                    }
                }
                Op::Ack { consumer } => {
                    if !self.held[consumer].is_empty() {
                        let id = self.held[consumer].remove(0);
                        self.ack(consumer, id);
                    }
                }
                Op::Crash { consumer } => self.crash(consumer),
                Op::Wait { ms } => self.wait(ms),
                Op::ToDeadline { offset_ms } => {
                    if let Some(deadline_ms) = self.next_deadline_ms() {
                        let target_ms = deadline_ms.saturating_add_signed(i64::from(offset_ms));
                        let now_ms = self.now_ms();
                        if target_ms > now_ms {
                            self.wait(target_ms - now_ms);
                        }
                    }
                }
            }
            self.check_depth(op)?;
        }
        self.drain()
    }

    /// Every consumer crashes, then c1 waits out the timeout and takes and acks everything
    /// visible, a few rounds; every message sent must have been acked by the end.
    fn drain(&mut self) -> Result<(), String> {
        for who in 0..CONSUMERS.len() {
            if !self.held[who].is_empty() {
                self.crash(who);
            }
        }
        let receives_max = 2 * self.known.len() + 4;
        for _ in 0..DRAIN_ROUNDS {
            self.wait(self.timeout_ms);
            for _ in 0..receives_max {
                let Some(id) = self.receive(0)? else { break };
                self.ack(0, id);
            }
        }
        let lost: Vec<u64> = self
            .known
            .iter()
            .filter(|(_, known)| !known.acked)
            .map(|(id, _)| *id)
            .collect();
        let Some(&id) = lost.first() else {
            return Ok(());
        };
        let depth = self.queue.depth();
        let fate = if depth == 0 {
            format!("depth() says 0: the queue has forgotten m{id}")
        } else {
            format!(
                "depth() still says {depth}: the queue counts it, but keeps it hidden long after \
                 its timeout of {} ms",
                self.timeout_ms
            )
        };
        Err(self.fail(
            Invariant::AtLeastOnce,
            id,
            format!(
                "m{id} was never acked: {}; then c1 waited out the timeout {DRAIN_ROUNDS} times, \
                 receiving and acking everything visible, until {} ms, and m{id} never came back. \
                 {fate}",
                self.story_of(id),
                self.now_ms()
            ),
        ))
    }
}

fn holds(ctx: &mut Ctx, name: &str, promise: Promise) {
    prop::for_all(ctx, name, CASES, histories(), tell, |history, trace| {
        Run::new(trace, promise, history.timeout_ms).apply(history)
    });
}

fn crash_after_receive(ctx: &mut Ctx) {
    holds(ctx, "no message is lost", Promise::NothingLost);
}

fn acked_never_returns(ctx: &mut Ctx) {
    holds(
        ctx,
        "an acked message never comes back",
        Promise::AckedNeverReturns,
    );
}

fn hidden_exactly_until_deadline(ctx: &mut Ctx) {
    holds(
        ctx,
        "hidden for exactly the visibility timeout",
        Promise::HiddenExactly,
    );
}

fn depth_counts_every_unacked(ctx: &mut Ctx) {
    holds(
        ctx,
        "depth counts every unacked message",
        Promise::DepthCounts,
    );
}

#[test]
fn checks() {
    run_stages(
        "visibility-timeout",
        &[
            Stage {
                id: "crash-after-receive",
                title: "A consumer that crashes before its ack loses nothing",
                mentor: "A message must survive whatever its consumer does between receive and \
                         ack, crashing included. Follow the message named below: where was it \
                         after its last receive, and once its visibility timeout was over, could \
                         anyone get it back?",
                run: crash_after_receive,
            },
            Stage {
                id: "acked-never-returns",
                title: "An acked message never comes back, even when the ack is late",
                mentor: "Close! Nothing is lost now, but a finished job came back. When the ack \
                         came, where did the message live in your queue, and did ack look there? \
                         Mind acks that come after the deadline, from a slow consumer: the job \
                         is done all the same.",
                run: acked_never_returns,
            },
            Stage {
                id: "hidden-exactly-until-deadline",
                title: "A message is hidden for exactly its visibility timeout",
                mentor: "Better! Nothing is lost and nothing finished comes back. But a job \
                         somebody is working on must be hidden from everyone else until its \
                         deadline, and visible again from that very millisecond, every \
                         delivery with a deadline of its own. When does your queue hide a \
                         message, and from which instant does it show it again?",
                run: hidden_exactly_until_deadline,
            },
            Stage {
                id: "depth-counts-every-unacked",
                title: "depth() counts every message not yet acked",
                mentor: "Last one! depth() is what an autoscaler or an alarm reads. Which \
                         messages are still the queue's to deliver: only the waiting ones, or \
                         also the ones received and not yet acked?",
                run: depth_counts_every_unacked,
            },
        ],
    );
}
