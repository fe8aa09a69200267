//! Checks for the pooled message handler, as properties over generated histories.
//!
//! A history is a few consumers (up to two more than the pool has connections), each
//! handling messages one after another at uneven moments. Each message's insert takes its own
//! time: often well under the acquire timeout, often longer, sometimes a day (a query that
//! hangs); some amounts are negative, so the ledger refuses them; and some consumers give up
//! on a message halfway, dropping the `handle` future, as a consumer with a deadline of its
//! own does. Each history runs on a fresh tokio runtime with paused time, so a day costs
//! nothing; every wait the harness makes is bounded, and a bound that runs out fails a stage.
//!
//! The checks see the handler only from outside: when each call was made and returned, what
//! it answered, what the database had written by then, and how many connections the pool
//! says are idle once every call is over. So any correct pool passes: a semaphore, a `Notify`,
//! a channel of connections, polling against a deadline.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::history::Promises;
use bughunt_kit::paused;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::sink::Sink;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::time::{sleep, timeout_at, Instant};

/// The pool's size and timeout (the same constants as the program's).
const POOL_SIZE: usize = 2;
const ACQUIRE_TIMEOUT_MS: u64 = 400;
/// How long past its due time the harness waits for a call before calling it stuck.
const STUCK_AFTER_MS: u64 = 5_000;
/// A query that hangs: a day.
const DAY_MS: u64 = 86_400_001;
/// The first message id: ids past 100, so none is a small number by luck.
const FIRST_ID: u64 = 101;
/// Histories per property (a history costs well under a millisecond).
const CASES: u32 = 512;
/// At most this many consumers (the harness joins a fixed number of lanes).
const MAX_CONSUMERS: usize = 6;

#[derive(Clone, Copy, Debug)]
struct CallPlan {
    /// After the consumer's previous call ended (or the start).
    after_ms: u64,
    /// How long the ledger's insert takes.
    insert_ms: u64,
    amount: i64,
    /// The consumer drops the call this long after making it, if it has not returned.
    give_up_ms: Option<u64>,
}

#[derive(Clone, Debug)]
struct History {
    consumers: Vec<Vec<CallPlan>>,
}

fn consumer_name(consumer: usize) -> String {
    format!("c{}", consumer + 1)
}

fn duration(ms: u64) -> String {
    if ms == DAY_MS {
        "a day (it hangs)".to_owned()
    } else {
        format!("{ms} ms")
    }
}

impl History {
    /// (id, consumer, plan) of every call, ids in consumer order.
    fn calls(&self) -> Vec<(u64, usize, CallPlan)> {
        bughunt_kit::history::numbered_calls(&self.consumers, FIRST_ID)
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps = Vec::new();
        for (id, consumer, plan) in self.calls() {
            let give_up = match plan.give_up_ms {
                Some(ms) => format!(", giving up after {ms} ms"),
                None => String::new(),
            };
            steps.push(format!(
                "{} waits {} ms, then handles m{id} (amount {}, the insert takes {}{give_up})",
                consumer_name(consumer),
                plan.after_ms,
                plan.amount,
                duration(plan.insert_ms)
            ));
        }
        write!(
            f,
            "{} consumer(s), each message after the consumer's previous one, a pool of \
             {POOL_SIZE}, acquire timeout {ACQUIRE_TIMEOUT_MS} ms: {}",
            self.consumers.len(),
            prop::numbered(&steps)
        )
    }
}

fn call_plan() -> impl Strategy<Value = CallPlan> {
    // Odd insert times against an even timeout and even pauses: a connection never comes
    // free at the very instant a wait for it runs out.
    let insert_ms = prop_oneof![
        2 => (0u64..ACQUIRE_TIMEOUT_MS / 2).prop_map(|half| half * 2 + 1),
        2 => (ACQUIRE_TIMEOUT_MS / 2..ACQUIRE_TIMEOUT_MS * 2).prop_map(|half| half * 2 + 1),
        1 => Just(DAY_MS),
    ];
    let after_ms = prop_oneof![
        1 => Just(0u64),
        1 => (1u64..300).prop_map(|half| half * 2),
    ];
    let amount = prop_oneof![3 => 0i64..500, 1 => -500i64..0];
    let give_up_ms = prop_oneof![
        4 => Just(None),
        1 => (1u64..ACQUIRE_TIMEOUT_MS * 2).prop_map(|half| Some(half * 2)),
    ];
    (after_ms, insert_ms, amount, give_up_ms).prop_map(
        |(after_ms, insert_ms, amount, give_up_ms)| CallPlan {
            after_ms,
            insert_ms,
            amount,
            give_up_ms,
        },
    )
}

fn histories() -> impl Strategy<Value = History> {
    let most = (POOL_SIZE + 2).min(MAX_CONSUMERS);
    prop::proptest::collection::vec(prop::proptest::collection::vec(call_plan(), 1..5), 1..=most)
        .prop_map(|consumers| History { consumers })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    Ok,
    Busy,
    Rejected,
    /// The consumer dropped the call.
    GivenUp,
    /// Not returned `STUCK_AFTER_MS` past its due time: the harness dropped it.
    Stuck,
}

#[derive(Clone, Debug)]
struct Call {
    id: u64,
    consumer: usize,
    plan: CallPlan,
    started_ms: u64,
    ended_ms: u64,
    ended: Ended,
    /// When it returned: had the ledger's insert started, and had both writes finished?
    insert_started: bool,
    written: bool,
    audited: bool,
}

impl Call {
    /// When it is due back at the latest: its wait for a connection, then its own insert.
    fn due_ms(&self) -> u64 {
        self.started_ms + ACQUIRE_TIMEOUT_MS + self.plan.insert_ms
    }
}

struct Outcome {
    calls: Vec<Call>,
    /// When the last call ended (or was given up, or found stuck).
    all_ended_ms: u64,
    idle: usize,
}

fn play(history: &History, trace: &Trace) -> Outcome {
    let calls = history.calls();
    paused::block_on(async {
        let start = Instant::now();
        let now_ms = || start.elapsed().as_millis() as u64;
        let ledger = Sink::with_work_times(
            trace.clone(),
            1,
            calls.iter().map(|(id, _, plan)| (*id, plan.insert_ms)),
        )
        .with_actor("ledger");
        let audit_log = Sink::new(trace.clone(), 0).with_actor("audit");
        let handler = Handler::new(Database {
            ledger: ledger.clone(),
            audit_log: audit_log.clone(),
        });
        let record = RefCell::new(Vec::new());
        let lane = |consumer: usize| {
            let mine: Vec<(u64, CallPlan)> = calls
                .iter()
                .filter(|(_, of, _)| *of == consumer)
                .map(|(id, _, plan)| (*id, *plan))
                .collect();
            let (handler, record, ledger, audit_log) = (&handler, &record, &ledger, &audit_log);
            async move {
                let me = consumer_name(consumer);
                for (id, plan) in mine {
                    sleep(Duration::from_millis(plan.after_ms)).await;
                    let started_ms = now_ms();
                    trace.set_time_ms(started_ms);
                    trace
                        .event(me.clone(), EventKind::Send)
                        .to("handler")
                        .msg(id)
                        .note(match plan.give_up_ms {
                            Some(ms) => format!(
                                "handle(m{id}, amount {}); gives up after {ms} ms",
                                plan.amount
                            ),
                            None => format!("handle(m{id}, amount {})", plan.amount),
                        })
                        .record();
                    let waits_ms = match plan.give_up_ms {
                        Some(ms) => ms,
                        None => ACQUIRE_TIMEOUT_MS + plan.insert_ms + STUCK_AFTER_MS,
                    };
                    let deadline = start + Duration::from_millis(started_ms + waits_ms);
                    let message = Message {
                        id,
                        amount: plan.amount,
                    };
                    let returned = timeout_at(deadline, handler.handle(&message)).await;
                    let ended_ms = now_ms();
                    trace.set_time_ms(ended_ms);
                    let (ended, kind, note) = match returned {
                        Ok(Ok(())) => (Ended::Ok, EventKind::Ack, "Ok"),
                        Ok(Err(HandleError::Busy)) => {
                            (Ended::Busy, EventKind::Reject, "Busy: requeued")
                        }
                        Ok(Err(HandleError::Rejected)) => {
                            (Ended::Rejected, EventKind::Note, "Rejected: dead-lettered")
                        }
                        Err(_) if plan.give_up_ms.is_some() => {
                            (Ended::GivenUp, EventKind::Note, "gives up: drops the call")
                        }
                        Err(_) => (Ended::Stuck, EventKind::Leak, "the call had not returned"),
                    };
                    let actor = if matches!(ended, Ended::GivenUp | Ended::Stuck) {
                        me.clone()
                    } else {
                        "handler".to_owned()
                    };
                    trace
                        .event(actor, kind)
                        .to(me.clone())
                        .msg(id)
                        .note(note)
                        .record();
                    record.borrow_mut().push(Call {
                        id,
                        consumer,
                        plan,
                        started_ms,
                        ended_ms,
                        ended,
                        insert_started: ledger.started().contains(&id),
                        written: ledger.finished().contains(&id),
                        audited: audit_log.finished().contains(&id),
                    });
                }
            }
        };
        let consumers = history.consumers.len();
        let lane = &lane;
        let maybe = |consumer: usize| async move {
            if consumer < consumers {
                lane(consumer).await;
            }
        };
        tokio::join!(maybe(0), maybe(1), maybe(2), maybe(3), maybe(4), maybe(5));
        let all_ended_ms = now_ms();
        // Let whatever is ready run (a guard's drop, a wake-up), without moving the clock.
        paused::settle().await;
        let idle = handler.idle_connections();
        trace.set_time_ms(all_ended_ms);
        trace
            .event("pool", EventKind::Note)
            .note(format!("{idle} of {POOL_SIZE} connections idle"))
            .record();
        let mut calls = record.into_inner();
        calls.sort_by_key(|call| call.id);
        Outcome {
            calls,
            all_ended_ms,
            idle,
        }
    })
}

/// Why each call that did not end the happy way ended, in a few words each.
fn off_the_happy_path(outcome: &Outcome) -> Vec<String> {
    outcome
        .calls
        .iter()
        .filter_map(|call| {
            let at = call.ended_ms;
            let id = call.id;
            match call.ended {
                Ended::Rejected => Some(format!("m{id} was refused by the ledger at {at} ms")),
                Ended::GivenUp => Some(format!(
                    "m{id} was dropped by its consumer at {at} ms, mid-call"
                )),
                Ended::Stuck => Some(format!("m{id} was stuck and dropped at {at} ms")),
                Ended::Ok | Ended::Busy => None,
            }
        })
        .collect()
}

/// Promise 1: once every call is over, however it ended, every connection is back.
fn connections_back(outcome: &Outcome) -> Result<(), String> {
    if outcome.idle == POOL_SIZE {
        return Ok(());
    }
    if outcome.idle > POOL_SIZE {
        return Err(format!(
            "every call had ended by {} ms, and the pool had {} idle connections: more than \
             the {POOL_SIZE} (POOL_SIZE) the database allows. A pool that opens more than its \
             size only moves the limit: the database refuses the extra connection, and \
             whatever needed it is still there",
            outcome.all_ended_ms, outcome.idle
        ));
    }
    let missing = POOL_SIZE.saturating_sub(outcome.idle);
    let how = off_the_happy_path(outcome);
    let how = if how.is_empty() {
        String::new()
    } else {
        format!(" ({})", how.join("; "))
    };
    Err(format!(
        "every call had ended by {} ms, yet the pool had only {} of its {POOL_SIZE} connections \
         idle: {missing} never came back{how}, and every later acquire waits for it in vain",
        outcome.all_ended_ms, outcome.idle
    ))
}

/// How many calls were in progress at `at_ms`: both ends counted, so a call that ends at the
/// very instant another starts counts as in progress; but one consumer makes one call at a
/// time, so its call that ends and its next that starts at that instant count once.
fn in_progress(outcome: &Outcome, at_ms: u64) -> usize {
    let consumers: BTreeSet<usize> = outcome
        .calls
        .iter()
        .filter(|call| call.started_ms <= at_ms && at_ms <= call.ended_ms)
        .map(|call| call.consumer)
        .collect();
    consumers.len()
}

/// The most calls in progress at once while `call` was.
fn most_in_progress(outcome: &Outcome, call: &Call) -> usize {
    std::iter::once(call.started_ms)
        .chain(
            outcome
                .calls
                .iter()
                .map(|other| other.started_ms)
                .filter(|at| (call.started_ms..=call.ended_ms).contains(at)),
        )
        .map(|at| in_progress(outcome, at))
        .max()
        .unwrap_or(1)
}

/// Promise 2: each answer is true. `Busy` only when every connection was in use (more calls
/// in progress than connections) and with nothing written; `Ok` with both writes done;
/// `Rejected` only for a negative amount.
fn answers_true(outcome: &Outcome) -> Result<(), String> {
    for call in &outcome.calls {
        let who = consumer_name(call.consumer);
        let made = format!("{who} handed m{} over at {} ms", call.id, call.started_ms);
        match call.ended {
            Ended::Busy => {
                let most = most_in_progress(outcome, call);
                if most <= POOL_SIZE {
                    let written = if call.insert_started {
                        "; and its entry had already gone to the ledger, so handled again it is \
                         written twice"
                    } else {
                        ""
                    };
                    return Err(format!(
                        "{made}; it returned Busy at {} ms, yet at most {most} call(s) were in \
                         progress at any moment of it, this one included, and the pool has \
                         {POOL_SIZE} connections: one connection each, so one was always free \
                         for it{written}",
                        call.ended_ms
                    ));
                }
                if call.insert_started {
                    return Err(format!(
                        "{made}; it returned Busy at {} ms, which tells the consumer to requeue \
                         it, but its entry had already gone to the ledger: handled again, it \
                         is written twice",
                        call.ended_ms
                    ));
                }
            }
            Ended::Ok if call.plan.amount < 0 => {
                return Err(format!(
                    "{made} with amount {}; the ledger refused the entry, yet the call returned \
                     Ok at {} ms: the consumer acks a message that was never written",
                    call.plan.amount, call.ended_ms
                ));
            }
            Ended::Ok if !call.written || !call.audited => {
                let missing = if call.written {
                    "its audit entry"
                } else {
                    "its ledger entry"
                };
                return Err(format!(
                    "{made}; it returned Ok at {} ms, but {missing} had not been written by \
                     then",
                    call.ended_ms
                ));
            }
            Ended::Rejected if call.plan.amount >= 0 => {
                return Err(format!(
                    "{made} with amount {}; it returned Rejected at {} ms, but the ledger \
                     refuses only negative amounts",
                    call.plan.amount, call.ended_ms
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Promise 3: no call waits longer than the acquire timeout for a connection, and a call
/// that answers `Busy` has waited that long first.
fn waits_bounded(outcome: &Outcome) -> Result<(), String> {
    for call in &outcome.calls {
        let who = consumer_name(call.consumer);
        let made = format!("{who} handed m{} over at {} ms", call.id, call.started_ms);
        match call.ended {
            Ended::Stuck => {
                return Err(format!(
                    "{made} (its insert takes {}); it should have been back by {} ms (the \
                     {ACQUIRE_TIMEOUT_MS} ms acquire timeout, then its insert), but it had \
                     still not returned at {} ms: it waited for a connection with no bound",
                    duration(call.plan.insert_ms),
                    call.due_ms(),
                    call.ended_ms
                ));
            }
            Ended::Busy if call.ended_ms > call.started_ms + ACQUIRE_TIMEOUT_MS => {
                return Err(format!(
                    "{made}; it returned Busy only at {} ms, {} ms after it was made: it waited \
                     for a connection longer than the {ACQUIRE_TIMEOUT_MS} ms acquire timeout",
                    call.ended_ms,
                    call.ended_ms - call.started_ms
                ));
            }
            Ended::Busy if call.ended_ms < call.started_ms + ACQUIRE_TIMEOUT_MS => {
                return Err(format!(
                    "{made}; it returned Busy at {} ms, after waiting only {} ms of the \
                     {ACQUIRE_TIMEOUT_MS} ms acquire timeout: a connection that came free \
                     within the timeout would have served it",
                    call.ended_ms,
                    call.ended_ms - call.started_ms
                ));
            }
            Ended::Ok | Ended::Rejected if call.ended_ms > call.due_ms() => {
                return Err(format!(
                    "{made} (its insert takes {}); it returned at {} ms, past {} ms, the \
                     {ACQUIRE_TIMEOUT_MS} ms acquire timeout plus its insert: it waited {} ms \
                     for a connection, until one came back. A wait with no bound lasts as long \
                     as the query holding the connection: a day, if that query hangs",
                    duration(call.plan.insert_ms),
                    call.ended_ms,
                    call.due_ms(),
                    call.ended_ms - call.started_ms - call.plan.insert_ms
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every stage draws the same histories and speaks for its own promise only: see
/// [`bughunt_kit::history`].
const PROMISES: Promises<History, Outcome> = Promises {
    name: "the pool keeps its promises",
    cases: CASES,
    each: &[
        |_, outcome| connections_back(outcome),
        |_, outcome| answers_true(outcome),
        |_, outcome| waits_bounded(outcome),
    ],
};

fn property(ctx: &mut Ctx, stage: usize) {
    PROMISES.check(ctx, stage, histories(), play);
}

#[test]
fn checks() {
    run_stages(
        "connection-leak",
        &[
            Stage {
                id: "every-connection-comes-back",
                title: "Every connection goes back to the pool, however its call ends",
                mentor: "Once every call was over, the pool was short of connections. Follow a \
                         call that does not end the happy way: the ledger refuses its entry, or \
                         its consumer gives up and drops the call at an `.await`. Which line \
                         gives its connection back then? Code after a `?`, an early `return` or \
                         an `.await` the future is dropped at never runs; dropping a connection \
                         does not return it either. What runs however a scope ends? (And the \
                         pool holds exactly `POOL_SIZE` connections, the most the database \
                         allows.)",
                run: |ctx| property(ctx, 1),
            },
            Stage {
                id: "busy-only-when-the-pool-is-full",
                title: "Busy only when every connection is in use, and every answer is true",
                mentor: "Better! Connections come back now, but a call's answer was not true. \
                         Busy tells the consumer that every connection was taken and nothing \
                         was written, so it can requeue the message: was that so? How many \
                         connections does one call hold at once, and what happens when every \
                         call holds one and asks for another? And does Ok still mean the entry \
                         and its audit are written?",
                run: |ctx| property(ctx, 2),
            },
            Stage {
                id: "waits-are-bounded",
                title: "A call waits for a connection for the acquire timeout, no longer, no less",
                mentor: "Close! The answers are right, but a call waited for a connection \
                         longer than the acquire timeout, or gave up before it ran out. When \
                         every connection is held by a query that hangs, what ends the wait of \
                         the next call? A bounded wait that answers Busy lets the consumer \
                         requeue the message and move on; a wait with no bound, or one that \
                         starts over, piles every consumer up behind one slow query.",
                run: |ctx| property(ctx, 3),
            },
        ],
    );
}
