//! Checks for the prefetching consumer, as properties over generated histories.
//!
//! A history is up to twelve messages arriving at uneven times (bursts that fill the
//! prefetch window and more, pauses), each with its own work time (a few ms, seconds, or an
//! hour), and a cancel at an uneven moment: with a message in hand, with messages buffered,
//! with deliveries still in the channel, or idle. The broker is the check's own: it leases up
//! to `PREFETCH` messages ahead, refuses settlements after `close`, and does not redeliver a
//! released message to the same session (another consumer takes it). Each history runs on a
//! fresh tokio runtime with paused time; every wait is bounded.

use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::history::Promises;
use bughunt_kit::paused;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::sink::{Sink, Work};
use bughunt_kit::tokio_util::sync::CancellationToken;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout_at, Instant};

/// The first message id: ids past 100, so none is a small number by luck.
const FIRST_ID: u64 = 101;
/// Histories per property.
const CASES: u32 = 48;
/// How long a leased message stays invisible when nobody settles it.
const LEASE_MS: u64 = 1_800_000;

#[derive(Clone, Copy, Debug)]
struct Plan {
    after_ms: u64,
    work_ms: u64,
}

#[derive(Clone, Debug)]
struct History {
    messages: Vec<Plan>,
    cancel_at_ms: u64,
}

#[derive(Clone, Copy, Debug)]
struct Planned {
    id: u64,
    at_ms: u64,
    work_ms: u64,
}

impl History {
    fn messages(&self) -> Vec<Planned> {
        let mut at_ms = 0;
        self.messages
            .iter()
            .enumerate()
            .map(|(n, plan)| {
                at_ms += plan.after_ms;
                Planned {
                    id: FIRST_ID + n as u64,
                    at_ms,
                    work_ms: plan.work_ms,
                }
            })
            .collect()
    }

    fn patience_ms(&self) -> u64 {
        self.cancel_at_ms + 5_000 + self.messages().iter().map(|m| m.work_ms).sum::<u64>()
    }

    /// When each message is started by a consumer that works through them in order, each
    /// the moment it has come and the previous one is done. Only those due before the cancel.
    fn due_before_cancel(&self) -> Vec<(Planned, u64)> {
        let mut due = Vec::new();
        let mut free_ms = 0;
        for message in self.messages() {
            let start_ms = free_ms.max(message.at_ms);
            if start_ms >= self.cancel_at_ms {
                break;
            }
            due.push((message, start_ms));
            free_ms = start_ms + message.work_ms;
        }
        due
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps: Vec<(u64, String)> = self
            .messages()
            .iter()
            .map(|message| {
                (
                    message.at_ms,
                    format!(
                        "at {} ms m{} is published (needs {} ms of work)",
                        message.at_ms, message.id, message.work_ms
                    ),
                )
            })
            .collect();
        steps.push((
            self.cancel_at_ms,
            format!("at {} ms the token is cancelled", self.cancel_at_ms),
        ));
        steps.sort_by_key(|(at_ms, _)| *at_ms);
        let steps: Vec<String> = steps.into_iter().map(|(_, step)| step).collect();
        write!(
            f,
            "a consumer with a prefetch of {PREFETCH}: {}",
            prop::numbered(&steps)
        )
    }
}

fn plan() -> impl Strategy<Value = Plan> {
    // Arrivals and work times are even, the cancel odd. Some work takes an hour.
    let after = prop_oneof![3 => 0u64..4, 2 => 0u64..700];
    let work = prop_oneof![4 => 1u64..400, 2 => 400u64..3_000, 1 => Just(1_800_000u64)];
    (after, work).prop_map(|(after, work)| Plan {
        after_ms: after * 2,
        work_ms: work * 2,
    })
}

fn histories() -> impl Strategy<Value = History> {
    let cancel = prop_oneof![2 => 0u64..2_500, 1 => 0u64..9_000];
    (prop::proptest::collection::vec(plan(), 0..13), cancel).prop_map(|(messages, cancel)| {
        History {
            messages,
            cancel_at_ms: cancel * 2 + 1,
        }
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ack,
    Release,
}

#[derive(Clone, Copy, Debug)]
struct Settled {
    id: u64,
    kind: Kind,
    at_ms: u64,
}

/// The check's broker: what it leased, and what it was told.
#[derive(Debug, Default)]
struct Broker {
    ready: VecDeque<u64>,
    leased: BTreeSet<u64>,
    delivered: Vec<(u64, u64)>,
    settled: Vec<Settled>,
    /// Settlements that came after `close`, or for a message not leased.
    refused: Vec<(Settle, u64)>,
    closed_at_ms: Option<u64>,
    channel_closed: bool,
}

impl Broker {
    fn deliver(&mut self, deliveries: &mpsc::Sender<Delivery>, trace: &Trace, now_ms: u64) {
        while self.closed_at_ms.is_none()
            && !self.channel_closed
            && self.leased.len() < PREFETCH
        {
            let Some(id) = self.ready.front().copied() else {
                break;
            };
            match deliveries.try_send(Delivery { id }) {
                Ok(()) => {
                    self.ready.pop_front();
                    self.leased.insert(id);
                    self.delivered.push((id, now_ms));
                    trace.set_time_ms(now_ms);
                    trace
                        .event("broker", EventKind::Deliver)
                        .to("consumer")
                        .msg(id)
                        .note("leased")
                        .record();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => self.channel_closed = true,
                Err(mpsc::error::TrySendError::Full(_)) => break,
            }
        }
    }

    fn apply(&mut self, settle: Settle, trace: &Trace, now_ms: u64) {
        trace.set_time_ms(now_ms);
        if self.closed_at_ms.is_some() {
            if settle == Settle::Close {
                // A second close is harmless.
                return;
            }
            self.refused.push((settle, now_ms));
            trace
                .event("consumer", EventKind::Reject)
                .to("broker")
                .note(format!("{settle:?} refused: the session is closed"))
                .record();
            return;
        }
        let (id, kind, event) = match settle {
            Settle::Close => {
                self.closed_at_ms = Some(now_ms);
                trace
                    .event("consumer", EventKind::Note)
                    .to("broker")
                    .note(format!("close (still leased: {:?})", self.leased))
                    .record();
                return;
            }
            Settle::Ack(id) => (id, Kind::Ack, EventKind::Ack),
            Settle::Release(id) => (id, Kind::Release, EventKind::Redeliver),
        };
        if !self.leased.remove(&id) {
            self.refused.push((settle, now_ms));
            trace
                .event("consumer", EventKind::Reject)
                .to("broker")
                .msg(id)
                .note(format!("{settle:?} refused: not leased to this session"))
                .record();
            return;
        }
        self.settled.push(Settled { id, kind, at_ms: now_ms });
        trace
            .event("consumer", event)
            .to("broker")
            .msg(id)
            .note(match kind {
                Kind::Ack => "ack",
                Kind::Release => "release: back on the queue for another consumer",
            })
            .record();
    }
}

struct Outcome {
    returned: Option<(u64, Report)>,
    tasks_alive: u64,
    works: Vec<Work>,
    broker: Broker,
}

fn play(history: &History, trace: &Trace) -> Outcome {
    let messages = history.messages();
    paused::block_on(async {
        let start = Instant::now();
        let now_ms = || start.elapsed().as_millis() as u64;
        let sink = Sink::with_work_times(
            trace.clone(),
            2,
            messages.iter().map(|message| (message.id, message.work_ms)),
        );
        let token = CancellationToken::new();
        let (deliveries, receiver) = mpsc::channel(PREFETCH);
        let (settle, mut settlements) = mpsc::unbounded_channel();
        let session = Session::new(receiver, settle);
        let mut consumer = tokio::spawn(run(token.clone(), session, sink.clone()));
        let broker = RefCell::new(Broker::default());
        let broker_side = async {
            let mut arrivals = messages.iter().peekable();
            let mut settle_open = true;
            loop {
                broker.borrow_mut().deliver(&deliveries, trace, now_ms());
                let next_at = arrivals
                    .peek()
                    .map(|message| start + Duration::from_millis(message.at_ms));
                tokio::select! {
                    biased;
                    settle = settlements.recv(), if settle_open => match settle {
                        Some(settle) => broker.borrow_mut().apply(settle, trace, now_ms()),
                        None => {
                            settle_open = false;
                            let mut broker = broker.borrow_mut();
                            if broker.closed_at_ms.is_none() {
                                broker.closed_at_ms = Some(now_ms());
                            }
                        }
                    },
                    _ = sleep_until(next_at.unwrap_or(start)), if next_at.is_some() => {
                        if let Some(message) = arrivals.next() {
                            trace.set_time_ms(message.at_ms);
                            trace
                                .event("producer", EventKind::Send)
                                .to("broker")
                                .msg(message.id)
                                .record();
                            broker.borrow_mut().ready.push_back(message.id);
                        }
                    }
                    else => std::future::pending::<()>().await,
                }
            }
        };
        let patience = start + Duration::from_millis(history.patience_ms());
        let service = async {
            sleep_until(start + Duration::from_millis(history.cancel_at_ms)).await;
            trace.set_time_ms(history.cancel_at_ms);
            trace
                .event("service", EventKind::Shutdown)
                .to("consumer")
                .note("cancels the token")
                .record();
            token.cancel();
            let returned = match timeout_at(patience, &mut consumer).await {
                Ok(Ok(report)) => {
                    let at_ms = now_ms();
                    trace.set_time_ms(at_ms);
                    trace
                        .event("consumer", EventKind::Exit)
                        .to("service")
                        .note(format!(
                            "run() returns: acked {:?}, released {:?}",
                            report.acked, report.released
                        ))
                        .record();
                    Some((at_ms, report))
                }
                Ok(Err(error)) => std::panic::resume_unwind(error.into_panic()),
                Err(_) => {
                    trace.set_time_ms(now_ms());
                    trace
                        .event("consumer", EventKind::Leak)
                        .note("run() had not returned")
                        .record();
                    None
                }
            };
            let tasks_alive = paused::tasks_alive_after_settling().await;
            if tasks_alive > 0 && returned.is_some() {
                trace
                    .event("runtime", EventKind::Leak)
                    .note(format!("{tasks_alive} task(s) still alive after run() returned"))
                    .record();
            }
            let last_at_ms = messages.iter().map(|m| m.at_ms).max().unwrap_or(0);
            let settled = patience + Duration::from_millis(history.patience_ms());
            sleep_until(settled.max(start + Duration::from_millis(last_at_ms + 1))).await;
            (returned, tasks_alive)
        };
        let (returned, tasks_alive) = tokio::select! {
            biased;
            ended = service => ended,
            _ = broker_side => unreachable!("the broker never ends"),
        };
        Outcome {
            returned,
            tasks_alive,
            works: sink.works(),
            broker: broker.into_inner(),
        }
    })
}

fn ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    let named: Vec<String> = ids.iter().map(|id| format!("m{id}")).collect();
    named.join(", ")
}

/// Promise 1: after the cancel, `run` starts nothing new and returns once the message in
/// hand is finished (or given up).
fn stops_after_the_message_in_hand(history: &History, outcome: &Outcome) -> Result<(), String> {
    let cancel_ms = history.cancel_at_ms;
    let in_hand = outcome
        .works
        .iter()
        .find(|work| work.started_ms < cancel_ms && work.finished_ms.is_none_or(|end| end > cancel_ms));
    let bound_ms = in_hand
        .and_then(|work| work.finished_ms)
        .unwrap_or(cancel_ms)
        .max(cancel_ms);
    let started_after: Vec<u64> = outcome
        .works
        .iter()
        .filter(|work| work.started_ms > cancel_ms)
        .map(|work| work.job)
        .collect();
    let on_time = outcome
        .returned
        .as_ref()
        .is_some_and(|(at_ms, _)| *at_ms <= bound_ms);
    if on_time && started_after.is_empty() {
        return Ok(());
    }
    let hand = match in_hand {
        Some(work) => format!(
            "m{} was in hand at the cancel (started at {} ms, {} ms of work)",
            work.job, work.started_ms, work.work_ms
        ),
        None => "no message was in hand at the cancel".to_owned(),
    };
    let after = if started_after.is_empty() {
        String::new()
    } else {
        format!("; after the cancel, the consumer started {}", ids(&started_after))
    };
    let when = match &outcome.returned {
        Some((at_ms, _)) => format!("run() returned at {at_ms} ms"),
        None => format!("run() had not returned at {} ms", history.patience_ms()),
    };
    Err(format!(
        "the token was cancelled at {cancel_ms} ms; {hand}, so run() was due back by \
         {bound_ms} ms; {when}{after}"
    ))
}

/// Promise 2: once `run` has returned, nothing it started is still running.
fn no_task_left(outcome: &Outcome) -> Result<(), String> {
    let Some((returned_ms, _)) = &outcome.returned else {
        return Ok(());
    };
    if outcome.tasks_alive == 0 {
        return Ok(());
    }
    Err(format!(
        "run() returned at {returned_ms} ms, and once the runtime had run every task that was \
         ready, {} task(s) it had started were still alive",
        outcome.tasks_alive
    ))
}

/// Promise 3: every message delivered is settled, truly, before the session closes.
fn every_delivery_settled(history: &History, outcome: &Outcome) -> Result<(), String> {
    let Some((returned_ms, report)) = &outcome.returned else {
        return Ok(());
    };
    let broker = &outcome.broker;
    let cancel_ms = history.cancel_at_ms;
    if let Some((settle, at_ms)) = broker.refused.first() {
        let why = match broker.closed_at_ms {
            Some(closed_ms) if closed_ms <= *at_ms => {
                format!("the session had been closed at {closed_ms} ms")
            }
            _ => "that message was not leased to the session (settled already)".to_owned(),
        };
        let (word, id) = match settle {
            Settle::Ack(id) => ("an ack", *id),
            Settle::Release(id) => ("a release", *id),
            Settle::Close => ("a close", 0),
        };
        let left = if broker.leased.contains(&id) {
            format!(
                "; m{id} stays leased, invisible to every consumer, until its lease runs out \
                 {LEASE_MS} ms after its delivery"
            )
        } else {
            String::new()
        };
        return Err(format!(
            "at {at_ms} ms the consumer sent {word} of m{id} and the broker refused it: {why}{left}"
        ));
    }
    let work_of = |id: u64| outcome.works.iter().find(|work| work.job == id);
    for settled in &broker.settled {
        let work = work_of(settled.id);
        match settled.kind {
            Kind::Ack => {
                let done = work.and_then(|work| work.finished_ms);
                if done.is_none_or(|end| end > settled.at_ms) {
                    let what = match (work, done) {
                        (None, _) => "its work never started".to_owned(),
                        (Some(_), None) => "its work was never finished".to_owned(),
                        (Some(_), Some(end)) => format!("its work finished only at {end} ms"),
                    };
                    return Err(format!(
                        "m{} was acked at {} ms, but {what}: an ack says done, and the broker \
                         has dropped it",
                        settled.id, settled.at_ms
                    ));
                }
            }
            Kind::Release => {
                if let Some(end) = work.and_then(|work| work.finished_ms) {
                    return Err(format!(
                        "m{} was processed (its work was done at {end} ms) and then released at \
                         {} ms: another consumer will process it again",
                        settled.id, settled.at_ms
                    ));
                }
            }
        }
    }
    let leased: Vec<u64> = broker.leased.iter().copied().collect();
    if !leased.is_empty() {
        let told: Vec<String> = leased
            .iter()
            .map(|id| {
                let at = broker
                    .delivered
                    .iter()
                    .find(|(delivered, _)| delivered == id)
                    .map_or(0, |(_, at_ms)| *at_ms);
                let state = match work_of(*id) {
                    Some(work) if work.finished_ms.is_none() => {
                        format!("its work started at {} ms and was abandoned", work.started_ms)
                    }
                    Some(work) => format!(
                        "its work was done at {} ms but it was never acked",
                        work.finished_ms.unwrap_or(0)
                    ),
                    None => "never started".to_owned(),
                };
                format!("m{id} (delivered at {at} ms, {state})")
            })
            .collect();
        return Err(format!(
            "the token was cancelled at {cancel_ms} ms and run() returned at {returned_ms} ms, \
             leaving {} message(s) still leased to the session, neither acked nor released: {}; \
             nobody can take them until their lease runs out, {LEASE_MS} ms after delivery",
            leased.len(),
            told.join(", ")
        ));
    }
    let acked: BTreeSet<u64> = broker
        .settled
        .iter()
        .filter(|settled| settled.kind == Kind::Ack)
        .map(|settled| settled.id)
        .collect();
    let released: BTreeSet<u64> = broker
        .settled
        .iter()
        .filter(|settled| settled.kind == Kind::Release)
        .map(|settled| settled.id)
        .collect();
    let said_acked: BTreeSet<u64> = report.acked.iter().copied().collect();
    let said_released: BTreeSet<u64> = report.released.iter().copied().collect();
    if said_acked != acked
        || said_released != released
        || said_acked.len() != report.acked.len()
        || said_released.len() != report.released.len()
    {
        return Err(format!(
            "the report says acked {:?}, released {:?}, but the broker was told: acked {:?}, \
             released {:?}",
            report.acked, report.released, acked, released
        ));
    }
    for (message, start_ms) in history.due_before_cancel() {
        let work = work_of(message.id);
        if work.is_some_and(|work| work.started_ms == start_ms) {
            continue;
        }
        let what = match work {
            Some(work) => format!("its work started at {} ms", work.started_ms),
            None => "it was never started".to_owned(),
        };
        return Err(format!(
            "m{} was published at {} ms and the consumer was free for it from {start_ms} ms, \
             before the cancel at {cancel_ms} ms; {what}",
            message.id, message.at_ms
        ));
    }
    Ok(())
}

/// Every stage draws the same histories and speaks for its own promise only: see
/// [`bughunt_kit::history`].
const PROMISES: Promises<History, Outcome> = Promises {
    name: "a cancelled consumer settles every message it was leased",
    cases: CASES,
    each: &[stops_after_the_message_in_hand, |_, outcome| no_task_left(outcome), every_delivery_settled],
};

fn property(ctx: &mut Ctx, stage: usize) {
    PROMISES.check(ctx, stage, histories(), play);
}

#[test]
fn checks() {
    run_stages(
        "prefetch-release",
        &[
            Stage {
                id: "stops-after-the-message-in-hand",
                title: "After the cancel, no new message starts",
                mentor: "The token was cancelled and the consumer went on: it started another \
                         message, or returned late. Where does your loop look at the token: \
                         only while it waits for a delivery, or also before it takes the next \
                         message from its own buffer? And on the way out, does anything wait \
                         for the broker, which keeps the delivery channel open?",
                run: |ctx| property(ctx, 1),
            },
            Stage {
                id: "no-task-left",
                title: "When run() returns, nothing it started still runs",
                mentor: "Close! run() returns in time, but something it started was still \
                         running after it did. What did your cancel path hand to a task nobody \
                         waits for?",
                run: |ctx| property(ctx, 2),
            },
            Stage {
                id: "every-delivery-settled",
                title: "Every message leased is acked or released, truly, before the session closes",
                mentor: "Better! The consumer stops, but what it held was not settled. Every \
                         message the broker delivered is leased to this session until it is \
                         acked (done) or released (not done): list the places a leased message \
                         can be when the cancel comes (in hand, in your buffer, still in the \
                         delivery channel). Did each one get the right word, and did the broker \
                         hear it before the session closed?",
                run: |ctx| property(ctx, 3),
            },
        ],
    );
}
