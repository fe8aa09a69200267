//! Checks for the request/reply client, as properties over generated histories.
//!
//! A history is one to three callers, each making calls one after another at uneven moments.
//! The backend's time for each request is uneven too: often well under the timeout, often
//! just over it, sometimes a day (a backend that hangs). Some callers give up on a call
//! before its timeout, by dropping its future, as a caller with a deadline of its own does.
//! Each history runs on a fresh tokio runtime with paused time, so a day costs nothing;
//! every wait the harness makes is bounded, and a bound that runs out fails the stage.
//!
//! Work times are odd numbers of milliseconds and the timeout, give-up times and pauses are
//! even, so an answer never comes at the very instant a call gives up on it: which of the two
//! came first is always clear, and the checks can say what each call should have returned.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::history::Promises;
use bughunt_kit::paused;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::sink::Sink;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::time::{sleep, sleep_until, timeout_at, Instant};

/// The timeout the client promises (the same constant as the program's).
const REPLY_TIMEOUT_MS: u64 = 1_500;
/// How long past its timeout the harness waits for a call before calling it stuck.
const STUCK_AFTER_MS: u64 = 4_750;
/// A backend that hangs: a day.
const DAY_MS: u64 = 86_400_001;
/// The first request id: ids past 100, so none is a small number by luck.
const FIRST_ID: u64 = 101;
/// How often monitoring reads `in_flight()` while calls run.
const SAMPLE_EVERY_MS: u64 = 250;
/// Histories per property (a history costs well under a millisecond).
const CASES: u32 = 40;

#[derive(Clone, Copy, Debug)]
struct CallPlan {
    /// After the caller's previous call ended (or the start).
    after_ms: u64,
    work_ms: u64,
    /// The caller drops the call this long after making it, if it has not returned.
    give_up_ms: Option<u64>,
}

#[derive(Clone, Debug)]
struct History {
    callers: Vec<Vec<CallPlan>>,
}

fn caller_name(caller: usize) -> String {
    format!("caller{}", caller + 1)
}

fn duration(ms: u64) -> String {
    if ms == DAY_MS {
        "a day (it hangs)".to_owned()
    } else {
        format!("{ms} ms")
    }
}

impl History {
    /// (id, caller, plan) of every call, ids in caller order.
    fn calls(&self) -> Vec<(u64, usize, CallPlan)> {
        bughunt_kit::history::numbered_calls(&self.callers, FIRST_ID)
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps = Vec::new();
        for (id, caller, plan) in self.calls() {
            let give_up = match plan.give_up_ms {
                Some(ms) => format!(", giving up after {ms} ms"),
                None => String::new(),
            };
            steps.push(format!(
                "{} waits {} ms, then calls m{id} (the backend needs {}{give_up})",
                caller_name(caller),
                plan.after_ms,
                duration(plan.work_ms)
            ));
        }
        write!(
            f,
            "{} caller(s), each call after the caller's previous one, timeout {REPLY_TIMEOUT_MS} \
             ms: {}",
            self.callers.len(),
            prop::numbered(&steps)
        )
    }
}

fn call_plan() -> impl Strategy<Value = CallPlan> {
    let work_ms = prop_oneof![
        3 => (0u64..REPLY_TIMEOUT_MS).prop_map(|half| half * 2 + 1),
        1 => Just(DAY_MS),
    ];
    let give_up_ms = prop_oneof![
        3 => Just(None),
        1 => (1u64..REPLY_TIMEOUT_MS / 2).prop_map(|half| Some(half * 2)),
    ];
    (0u64..1_200, work_ms, give_up_ms).prop_map(|(after, work_ms, give_up_ms)| CallPlan {
        after_ms: after * 2,
        work_ms,
        give_up_ms,
    })
}

fn histories() -> impl Strategy<Value = History> {
    prop::proptest::collection::vec(prop::proptest::collection::vec(call_plan(), 1..5), 1..4)
        .prop_map(|callers| History { callers })
}

#[derive(Clone, Debug)]
enum Ended {
    Answered {
        reply_to: u64,
        at_ms: u64,
    },
    TimedOut {
        at_ms: u64,
    },
    /// The caller dropped the call at `at_ms`.
    GivenUp {
        at_ms: u64,
    },
    /// Not returned `STUCK_AFTER_MS` past its timeout.
    Stuck,
}

#[derive(Clone, Debug)]
struct Call {
    id: u64,
    caller: usize,
    plan: CallPlan,
    started_ms: u64,
    ended: Ended,
}

struct Outcome {
    calls: Vec<Call>,
    /// When the last call ended (or was given up, or found stuck).
    all_ended_ms: u64,
    tasks_alive: u64,
    in_flight: Vec<u64>,
    /// What `in_flight()` said while calls ran: (when, what).
    samples: Vec<(u64, Vec<u64>)>,
    /// Requests the backend was still working on then.
    in_backend: Vec<u64>,
}

/// `watch`: monitoring reads `in_flight()` while calls run, and what the backend was still
/// doing is found out (only the last stage looks at either).
fn play(history: &History, trace: &Trace, watch: bool) -> Outcome {
    let calls = history.calls();
    paused::block_on(async {
        let start = Instant::now();
        let now_ms = || start.elapsed().as_millis() as u64;
        let sink = Sink::with_work_times(
            trace.clone(),
            1,
            calls.iter().map(|(id, _, plan)| (*id, plan.work_ms)),
        )
        .with_actor("backend");
        let client = Client::new(sink.clone());
        let record = RefCell::new(Vec::new());
        let lane = |caller: usize| {
            let mine: Vec<(u64, CallPlan)> = calls
                .iter()
                .filter(|(_, of, _)| *of == caller)
                .map(|(id, _, plan)| (*id, *plan))
                .collect();
            let (client, record) = (&client, &record);
            async move {
                let me = caller_name(caller);
                for (id, plan) in mine {
                    sleep(Duration::from_millis(plan.after_ms)).await;
                    let started_ms = now_ms();
                    trace.set_time_ms(started_ms);
                    trace
                        .event(me.clone(), EventKind::Send)
                        .to("client")
                        .msg(id)
                        .note(match plan.give_up_ms {
                            Some(ms) => format!("call(m{id}); gives up after {ms} ms"),
                            None => format!("call(m{id})"),
                        })
                        .record();
                    let waits_ms = plan.give_up_ms.unwrap_or(REPLY_TIMEOUT_MS + STUCK_AFTER_MS);
                    let deadline = start + Duration::from_millis(started_ms + waits_ms);
                    let returned = timeout_at(deadline, client.call(Request { id })).await;
                    let at_ms = now_ms();
                    trace.set_time_ms(at_ms);
                    let ended = match returned {
                        Ok(Ok(reply)) => {
                            let note = if reply.request == id {
                                "answered".to_owned()
                            } else {
                                format!("answered with the reply to m{}", reply.request)
                            };
                            trace
                                .event("client", EventKind::Deliver)
                                .to(me.clone())
                                .msg(reply.request)
                                .note(note)
                                .record();
                            Ended::Answered {
                                reply_to: reply.request,
                                at_ms,
                            }
                        }
                        Ok(Err(TimedOut)) => {
                            trace
                                .event("client", EventKind::Note)
                                .to(me.clone())
                                .msg(id)
                                .note("returned TimedOut")
                                .record();
                            Ended::TimedOut { at_ms }
                        }
                        Err(_) if plan.give_up_ms.is_some() => {
                            trace
                                .event(me.clone(), EventKind::Note)
                                .msg(id)
                                .note("gives up: drops the call")
                                .record();
                            Ended::GivenUp { at_ms }
                        }
                        Err(_) => {
                            trace
                                .event("client", EventKind::Leak)
                                .msg(id)
                                .note("the call had not returned")
                                .record();
                            Ended::Stuck
                        }
                    };
                    record.borrow_mut().push(Call {
                        id,
                        caller,
                        plan,
                        started_ms,
                        ended,
                    });
                }
            }
        };
        let callers = history.callers.len();
        let all_ended = Cell::new(false);
        let samples = RefCell::new(Vec::new());
        let monitor = async {
            let mut at_ms = 0;
            loop {
                at_ms += SAMPLE_EVERY_MS;
                if !watch {
                    break;
                }
                sleep_until(start + Duration::from_millis(at_ms)).await;
                if all_ended.get() {
                    break;
                }
                samples.borrow_mut().push((at_ms, client.in_flight()));
            }
        };
        let calls_made = async {
            tokio::join!(
                lane(0),
                async {
                    if callers > 1 {
                        lane(1).await;
                    }
                },
                async {
                    if callers > 2 {
                        lane(2).await;
                    }
                },
            );
            all_ended.set(true);
            // Right after the last call ended: let what is ready run, then count.
            let all_ended_ms = now_ms();
            let tasks_alive = paused::tasks_alive_after_settling().await;
            (all_ended_ms, tasks_alive, client.in_flight())
        };
        let ((all_ended_ms, tasks_alive, in_flight), ()) = tokio::join!(calls_made, monitor);
        if tasks_alive > 0 {
            trace
                .event("runtime", EventKind::Leak)
                .note(format!(
                    "{tasks_alive} task(s) still alive after every call ended"
                ))
                .record();
        }
        // Let the clock run past any backend's time: work still going on when the last call
        // ended finishes by then; work that was stopped never does.
        if watch {
            sleep(Duration::from_millis(DAY_MS + 1)).await;
        }
        let in_backend = sink
            .works()
            .iter()
            .filter(|work| {
                work.started_ms <= all_ended_ms
                    && work.finished_ms.is_some_and(|end| end > all_ended_ms)
            })
            .map(|work| work.job)
            .collect();
        let mut calls = record.into_inner();
        calls.sort_by_key(|call| call.id);
        Outcome {
            calls,
            all_ended_ms,
            tasks_alive,
            in_flight,
            samples: samples.into_inner(),
            in_backend,
        }
    })
}

fn names(ids: &[u64]) -> String {
    let named: Vec<String> = ids.iter().map(|id| format!("m{id}")).collect();
    named.join(", ")
}

/// Promise 1: every call returns within its timeout.
fn in_time(outcome: &Outcome) -> Result<(), String> {
    for call in &outcome.calls {
        let due_ms = call.started_ms + REPLY_TIMEOUT_MS;
        let who = caller_name(call.caller);
        let late = match call.ended {
            Ended::Answered { at_ms, .. } | Ended::TimedOut { at_ms } if at_ms > due_ms => {
                format!("returned only at {at_ms} ms")
            }
            Ended::Stuck => format!(
                "had still not returned {} ms later",
                REPLY_TIMEOUT_MS + STUCK_AFTER_MS
            ),
            _ => continue,
        };
        return Err(format!(
            "{who} called m{} at {} ms; the backend needed {}; the call {late}, past its \
             timeout of {REPLY_TIMEOUT_MS} ms (due by {due_ms} ms)",
            call.id,
            call.started_ms,
            duration(call.plan.work_ms)
        ));
    }
    Ok(())
}

/// Promise 2: each call gets the answer to its own request when the backend gave it in
/// time, and `TimedOut` when it did not.
fn right_answer(outcome: &Outcome) -> Result<(), String> {
    for call in &outcome.calls {
        let who = caller_name(call.caller);
        let answered_ms = call.started_ms + call.plan.work_ms;
        let in_time = call.plan.work_ms < REPLY_TIMEOUT_MS;
        match call.ended {
            Ended::Answered { reply_to, at_ms } if reply_to != call.id => {
                let other = outcome.calls.iter().find(|other| other.id == reply_to);
                let whose = match other {
                    Some(other) => format!(
                        "m{reply_to} was {}'s call, made at {} ms{}",
                        caller_name(other.caller),
                        other.started_ms,
                        match other.ended {
                            Ended::TimedOut { at_ms } =>
                                format!(", which had timed out at {at_ms} ms"),
                            Ended::GivenUp { at_ms } =>
                                format!(", which its caller gave up at {at_ms} ms"),
                            _ => String::new(),
                        }
                    ),
                    None => format!("no call asked for m{reply_to}"),
                };
                let over_before = other.is_some_and(|other| match other.ended {
                    Ended::TimedOut { at_ms: ended } | Ended::GivenUp { at_ms: ended } => {
                        ended < at_ms
                    }
                    _ => false,
                });
                let verdict = if over_before {
                    "a late answer went to the wrong request"
                } else {
                    "an answer meant for another call went to this one"
                };
                return Err(format!(
                    "{who} called m{} at {} ms and at {at_ms} ms got back the answer to \
                     m{reply_to}: {whose}; {verdict}",
                    call.id, call.started_ms
                ));
            }
            Ended::TimedOut { at_ms } if in_time => {
                return Err(format!(
                    "{who} called m{} at {} ms; the backend answered it at {answered_ms} ms, \
                     {} ms into the call, within the {REPLY_TIMEOUT_MS} ms timeout, yet the \
                     call returned TimedOut at {at_ms} ms",
                    call.id, call.started_ms, call.plan.work_ms
                ));
            }
            Ended::GivenUp { at_ms } if answered_ms < at_ms => {
                return Err(format!(
                    "{who} called m{} at {} ms; the backend answered it at {answered_ms} ms, \
                     but the call was still waiting when {who} gave up on it at {at_ms} ms",
                    call.id, call.started_ms
                ));
            }
            Ended::Answered { at_ms, .. } if !in_time => {
                return Err(format!(
                    "{who} called m{} at {} ms and got an answer at {at_ms} ms, though the \
                     backend needed {}, more than the {REPLY_TIMEOUT_MS} ms timeout",
                    call.id,
                    call.started_ms,
                    duration(call.plan.work_ms)
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Promise 3: once every call has ended, nothing of them is left.
fn nothing_left(outcome: &Outcome) -> Result<(), String> {
    listed_while_running(outcome)?;
    if outcome.tasks_alive == 0 && outcome.in_flight.is_empty() {
        return Ok(());
    }
    let mut left = Vec::new();
    if outcome.tasks_alive > 0 {
        let working = if outcome.in_backend.is_empty() {
            "none of them was in the backend: they were waiting".to_owned()
        } else {
            let how: Vec<String> = outcome
                .in_backend
                .iter()
                .map(|id| {
                    let call = outcome.calls.iter().find(|call| call.id == *id);
                    match call {
                        Some(call) => format!(
                            "m{id} (needs {}; its call {})",
                            duration(call.plan.work_ms),
                            match call.ended {
                                Ended::TimedOut { at_ms } => format!("timed out at {at_ms} ms"),
                                Ended::GivenUp { at_ms } =>
                                    format!("was given up by its caller at {at_ms} ms"),
                                Ended::Answered { at_ms, .. } => format!("returned at {at_ms} ms"),
                                Ended::Stuck => "never returned".to_owned(),
                            }
                        ),
                        None => format!("m{id}"),
                    }
                })
                .collect();
            format!("the backend was still working on {}", how.join(", "))
        };
        left.push(format!(
            "{} task(s) were still alive; {working}",
            outcome.tasks_alive
        ));
    }
    if !outcome.in_flight.is_empty() {
        let listed: Vec<String> = outcome
            .in_flight
            .iter()
            .map(
                |id| match outcome.calls.iter().find(|call| call.id == *id) {
                    Some(call) => format!(
                        "m{id} (whose call {})",
                        match call.ended {
                            Ended::Answered { at_ms, .. } => format!("returned at {at_ms} ms"),
                            Ended::TimedOut { at_ms } => format!("timed out at {at_ms} ms"),
                            Ended::GivenUp { at_ms } =>
                                format!("was given up by its caller at {at_ms} ms"),
                            Ended::Stuck => "never returned".to_owned(),
                        }
                    ),
                    None => format!("m{id} (which no call asked for)"),
                },
            )
            .collect();
        left.push(format!(
            "client.in_flight() still listed {}",
            listed.join(", ")
        ));
    }
    Err(format!(
        "every call had ended by {} ms (returned, or given up by its caller), and once the \
         runtime had run every ready task, {}",
        outcome.all_ended_ms,
        left.join("; and ")
    ))
}

/// While calls run, `in_flight()` lists exactly the calls in progress. A call that starts or
/// ends at the very millisecond of a reading may be listed or not.
fn listed_while_running(outcome: &Outcome) -> Result<(), String> {
    for (at_ms, listed) in &outcome.samples {
        for call in &outcome.calls {
            let ended_ms = match call.ended {
                Ended::Answered { at_ms, .. }
                | Ended::TimedOut { at_ms }
                | Ended::GivenUp { at_ms } => at_ms,
                Ended::Stuck => u64::MAX,
            };
            let is_listed = listed.contains(&call.id);
            let how = match call.ended {
                Ended::Answered { .. } => "returned its answer",
                Ended::TimedOut { .. } => "timed out",
                Ended::GivenUp { .. } => "was given up by its caller",
                Ended::Stuck => "never returned",
            };
            if call.started_ms < *at_ms && *at_ms < ended_ms && !is_listed {
                return Err(format!(
                    "at {at_ms} ms, m{} was being called ({} called it at {} ms; it {how} \
                     at {ended_ms} ms), but in_flight() listed {}",
                    call.id,
                    caller_name(call.caller),
                    call.started_ms,
                    if listed.is_empty() {
                        "nothing".to_owned()
                    } else {
                        names(listed)
                    }
                ));
            }
            if is_listed && ended_ms < *at_ms {
                return Err(format!(
                    "at {at_ms} ms, in_flight() still listed m{}, whose call {how} at \
                     {ended_ms} ms",
                    call.id
                ));
            }
        }
    }
    Ok(())
}

/// Every stage draws the same histories and speaks for its own promise only: see
/// [`bughunt_kit::history`].
const PROMISES: Promises<History, Outcome> = Promises {
    name: "calls keep their promises",
    cases: CASES,
    each: &[|_, outcome| in_time(outcome), |_, outcome| right_answer(outcome), |_, outcome| nothing_left(outcome)],
};

fn property(ctx: &mut Ctx, stage: usize) {
    PROMISES.check(ctx, stage, histories(), |history, trace| play(history, trace, stage >= 3));
}

#[test]
fn checks() {
    run_stages(
        "request-timeout",
        &[
            Stage {
                id: "calls-return-in-time",
                title: "Every call returns within its timeout",
                mentor: "A call came back later than its timeout promises, or not at all. What \
                         did that call wait for after its timeout had run out? A timeout bounds \
                         only what is inside it: anything the call awaits after it, or before \
                         it, adds to the caller's wait.",
                run: |ctx| property(ctx, 1),
            },
            Stage {
                id: "reply-goes-to-its-caller",
                title: "Each call gets its own answer in time, or TimedOut",
                mentor: "Close! Every call returns in time now, but one returned the wrong \
                         thing. When a call times out, where does its answer go when it comes \
                         late, and who reads it? With several callers at once, can one call \
                         take, or throw away, an answer meant for another?",
                run: |ctx| property(ctx, 2),
            },
            Stage {
                id: "nothing-left-behind",
                title: "Nothing outlives its call; in_flight lists the calls in progress",
                mentor: "Better! The answers are right, but something outlived its call. \
                         When a call times out, or its caller drops it halfway, who tells the \
                         task working on it that nobody is waiting any more? And what takes the \
                         call off `in_flight` if the code after the `.await` never runs? \
                         (Monitoring reads `in_flight` while calls run, too: it must list each \
                         call in progress, and only those.)",
                run: |ctx| property(ctx, 3),
            },
        ],
    );
}
