//! Checks for the batch exporter, as properties over generated histories.
//!
//! A history is up to fourteen items arriving at uneven times (bursts that fill a batch and
//! more, pauses), each with its own downstream time (a few ms, seconds, or an hour), and a
//! cancel at an uneven moment: in the middle of a batch, in the middle of an item, between
//! items or while idle. Items keep arriving after the cancel. Each history runs on a fresh
//! tokio runtime with paused time; every wait the harness makes is bounded, and a bound that
//! runs out fails the stage.

use std::collections::BTreeSet;
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

/// The first item id: ids past 100, so none is a small number by luck.
const FIRST_ID: u64 = 101;
/// Histories per property.
const CASES: u32 = 48;

#[derive(Clone, Copy, Debug)]
struct Plan {
    after_ms: u64,
    work_ms: u64,
}

#[derive(Clone, Debug)]
struct History {
    items: Vec<Plan>,
    cancel_at_ms: u64,
}

#[derive(Clone, Copy, Debug)]
struct Planned {
    id: u64,
    at_ms: u64,
    work_ms: u64,
}

impl History {
    fn items(&self) -> Vec<Planned> {
        let mut at_ms = 0;
        self.items
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

    /// How long the harness waits for `run` at most: long enough to tell late from never.
    fn patience_ms(&self) -> u64 {
        self.cancel_at_ms
            + CANCEL_BOUND_MS
            + 5_000
            + self.items().iter().map(|item| item.work_ms).sum::<u64>()
    }

    /// When each item is sent by an exporter that sends items in order, one at a time, each
    /// the moment it has come and the previous one is sent. Only the items due before the
    /// cancel.
    fn due_before_cancel(&self) -> Vec<(Planned, u64)> {
        let mut due = Vec::new();
        let mut free_ms = 0;
        for item in self.items() {
            let start_ms = free_ms.max(item.at_ms);
            if start_ms >= self.cancel_at_ms {
                break;
            }
            due.push((item, start_ms));
            free_ms = start_ms + item.work_ms;
        }
        due
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps: Vec<(u64, String)> = self
            .items()
            .iter()
            .map(|item| {
                (
                    item.at_ms,
                    format!(
                        "at {} ms item {} is queued (the downstream needs {} ms for it)",
                        item.at_ms, item.id, item.work_ms
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
            "an exporter with batches of up to {BATCH_SIZE}: {}",
            prop::numbered(&steps)
        )
    }
}

fn plan() -> impl Strategy<Value = Plan> {
    // Arrivals and work times are even, the cancel odd: nothing happens at the very instant
    // of the cancel. Some items take the downstream an hour.
    let after = prop_oneof![3 => 0u64..4, 2 => 0u64..700];
    let work = prop_oneof![4 => 1u64..400, 2 => 400u64..3_000, 1 => Just(1_800_000u64)];
    (after, work).prop_map(|(after, work)| Plan {
        after_ms: after * 2,
        work_ms: work * 2,
    })
}

fn histories() -> impl Strategy<Value = History> {
    let cancel = prop_oneof![2 => 0u64..2_500, 1 => 0u64..9_000];
    (prop::proptest::collection::vec(plan(), 0..15), cancel).prop_map(|(items, cancel)| {
        History {
            items,
            cancel_at_ms: cancel * 2 + 1,
        }
    })
}

struct Outcome {
    /// When `run` returned, with its report; None: not within the harness's patience.
    returned: Option<(u64, Report)>,
    /// Right after `run` returned (or the harness gave up), with every ready task run.
    tasks_alive: u64,
    /// Items still in the queue at the end, never taken.
    left: Vec<u64>,
    /// Every item's downstream work, looked at long after every one could have finished.
    works: Vec<Work>,
}

fn play(history: &History, trace: &Trace) -> Outcome {
    let items = history.items();
    paused::block_on(async {
        let start = Instant::now();
        let now_ms = || start.elapsed().as_millis() as u64;
        let downstream = Sink::with_work_times(
            trace.clone(),
            2,
            items.iter().map(|item| (item.id, item.work_ms)),
        )
        .with_actor("exporter");
        let token = CancellationToken::new();
        let (queue, receiver) = mpsc::channel(64);
        let mut exporter = tokio::spawn({
            let token = token.clone();
            let downstream = downstream.clone();
            async move {
                let mut receiver = receiver;
                let report = run(token, &mut receiver, downstream).await;
                (report, receiver)
            }
        });
        let feed = async {
            for item in &items {
                sleep_until(start + Duration::from_millis(item.at_ms)).await;
                trace.set_time_ms(item.at_ms);
                trace
                    .event("producer", EventKind::Send)
                    .to("queue")
                    .msg(item.id)
                    .record();
                let _ = queue.try_send(Item { id: item.id });
            }
            std::future::pending::<()>().await;
        };
        let patience = start + Duration::from_millis(history.patience_ms());
        let service = async {
            sleep_until(start + Duration::from_millis(history.cancel_at_ms)).await;
            trace.set_time_ms(history.cancel_at_ms);
            trace
                .event("service", EventKind::Shutdown)
                .to("exporter")
                .note("cancels the token")
                .record();
            token.cancel();
            let returned = match timeout_at(patience, &mut exporter).await {
                Ok(Ok((report, receiver))) => {
                    let at_ms = now_ms();
                    trace.set_time_ms(at_ms);
                    trace
                        .event("exporter", EventKind::Exit)
                        .to("service")
                        .note(format!(
                            "run() returns: done {:?}, returned {:?}",
                            report.done, report.returned
                        ))
                        .record();
                    Some((at_ms, report, receiver))
                }
                Ok(Err(error)) => std::panic::resume_unwind(error.into_panic()),
                Err(_) => {
                    trace.set_time_ms(now_ms());
                    trace
                        .event("exporter", EventKind::Leak)
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
            // Let whatever still runs run on, and every item arrive.
            let last_at_ms = items.iter().map(|item| item.at_ms).max().unwrap_or(0);
            let settled = patience + Duration::from_millis(history.patience_ms());
            sleep_until(settled.max(start + Duration::from_millis(last_at_ms + 1))).await;
            (returned, tasks_alive)
        };
        let (returned, tasks_alive) = tokio::select! {
            biased;
            ended = service => ended,
            _ = feed => unreachable!("the producer never ends"),
        };
        let mut left = Vec::new();
        let returned = returned.map(|(at_ms, report, mut receiver)| {
            while let Ok(item) = receiver.try_recv() {
                left.push(item.id);
            }
            (at_ms, report)
        });
        Outcome {
            returned,
            tasks_alive,
            left,
            works: downstream.works(),
        }
    })
}

fn in_hand_at(works: &[Work], at_ms: u64) -> Option<&Work> {
    works
        .iter()
        .find(|work| work.started_ms < at_ms && work.finished_ms.is_none_or(|end| end > at_ms))
}

fn ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    let named: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    named.join(", ")
}

/// Promise 1: `run` returns within the bound of the cancel.
fn returns_within_bound(history: &History, outcome: &Outcome) -> Result<(), String> {
    let cancel_ms = history.cancel_at_ms;
    let bound_ms = cancel_ms + CANCEL_BOUND_MS;
    if outcome
        .returned
        .as_ref()
        .is_some_and(|(at_ms, _)| *at_ms <= bound_ms)
    {
        return Ok(());
    }
    let in_hand = match in_hand_at(&outcome.works, cancel_ms) {
        Some(work) => format!(
            "item {} was in hand then (started at {} ms, {} ms of work)",
            work.job, work.started_ms, work.work_ms
        ),
        None => "no item was in hand then".to_owned(),
    };
    let after: Vec<u64> = outcome
        .works
        .iter()
        .filter(|work| work.started_ms > cancel_ms)
        .map(|work| work.job)
        .collect();
    let after = if after.is_empty() {
        String::new()
    } else {
        format!("; after the cancel the exporter still started item(s) {}", ids(&after))
    };
    let when = match &outcome.returned {
        Some((at_ms, _)) => format!(
            "run() returned only at {at_ms} ms, {} ms after it",
            at_ms - cancel_ms
        ),
        None => format!(
            "run() had not returned {} ms later",
            history.patience_ms() - cancel_ms
        ),
    };
    Err(format!(
        "the token was cancelled at {cancel_ms} ms and {when} (the bound is {CANCEL_BOUND_MS} \
         ms); {in_hand}{after}"
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
    let working: Vec<u64> = outcome
        .works
        .iter()
        .filter(|work| {
            work.started_ms <= *returned_ms
                && work.finished_ms.is_some_and(|end| end > *returned_ms)
        })
        .map(|work| work.job)
        .collect();
    Err(format!(
        "run() returned at {returned_ms} ms, and once the runtime had run every task that was \
         ready, {} task(s) it had started were still alive (still sending item(s) {} to the \
         downstream)",
        outcome.tasks_alive,
        ids(&working)
    ))
}

/// Promise 3: every item taken is done or returned, exactly one of them and truly; until the
/// cancel, items are sent in order as soon as the exporter is free.
fn every_item_accounted(history: &History, outcome: &Outcome) -> Result<(), String> {
    let Some((returned_ms, report)) = &outcome.returned else {
        return Ok(());
    };
    let cancel_ms = history.cancel_at_ms;
    let done: BTreeSet<u64> = report.done.iter().copied().collect();
    let returned: BTreeSet<u64> = report.returned.iter().copied().collect();
    if done.len() != report.done.len() || returned.len() != report.returned.len() {
        return Err(format!(
            "the report lists an item twice: done {:?}, returned {:?}",
            report.done, report.returned
        ));
    }
    if let Some(id) = done.intersection(&returned).next() {
        return Err(format!(
            "item {id} is reported both done and returned: it would be sent again"
        ));
    }
    for work in &outcome.works {
        let finished = work.finished_ms.is_some_and(|end| end <= *returned_ms);
        if done.contains(&work.job) && !finished {
            let what = match work.finished_ms {
                None => "its send was abandoned halfway".to_owned(),
                Some(end) => format!("its send finished only at {end} ms"),
            };
            return Err(format!(
                "item {} is reported done, but when run() returned at {returned_ms} ms the \
                 downstream did not have it: its send started at {} ms ({} ms of work) and {what}; \
                 the caller will never send it again",
                work.job, work.started_ms, work.work_ms
            ));
        }
        if work.finished_ms.is_some() && !done.contains(&work.job) {
            let said = if returned.contains(&work.job) {
                "reported returned, so it would be sent a second time"
            } else {
                "not in the report at all"
            };
            return Err(format!(
                "the downstream got item {} whole (sent from {} ms), but it is {said}",
                work.job, work.started_ms
            ));
        }
    }
    for item in history.items() {
        let places = [
            done.contains(&item.id),
            returned.contains(&item.id),
            outcome.left.contains(&item.id),
        ];
        if places.iter().filter(|here| **here).count() == 1 {
            continue;
        }
        let sent = outcome
            .works
            .iter()
            .find(|work| work.job == item.id)
            .map_or(String::new(), |work| {
                format!(
                    "; its send started at {} ms and was abandoned",
                    work.started_ms
                )
            });
        return Err(format!(
            "item {} was queued at {} ms and taken by the exporter, but it is neither done, nor \
             returned, nor still in the queue: it is lost (the cancel came at {cancel_ms} ms; done: \
             {}; returned: {}){sent}",
            item.id,
            item.at_ms,
            ids(&report.done),
            ids(&report.returned)
        ));
    }
    for (item, start_ms) in history.due_before_cancel() {
        let work = outcome.works.iter().find(|work| work.job == item.id);
        if work.is_some_and(|work| work.started_ms == start_ms) {
            continue;
        }
        let what = match work {
            Some(work) => format!("its send started at {} ms", work.started_ms),
            None => "it was never sent".to_owned(),
        };
        return Err(format!(
            "item {} was queued at {} ms and the exporter was free for it from {start_ms} ms, \
             before the cancel at {cancel_ms} ms; {what}",
            item.id, item.at_ms
        ));
    }
    Ok(())
}

/// Every stage draws the same histories and speaks for its own promise only: see
/// [`bughunt_kit::history`].
const PROMISES: Promises<History, Outcome> = Promises {
    name: "a cancelled exporter stops in time and accounts for every item",
    cases: CASES,
    each: &[returns_within_bound, |_, outcome| no_task_left(outcome), every_item_accounted],
};

fn property(ctx: &mut Ctx, stage: usize) {
    PROMISES.check(ctx, stage, histories(), play);
}

#[test]
fn checks() {
    run_stages(
        "batch-exporter",
        &[
            Stage {
                id: "returns-within-bound",
                title: "run() returns within its bound of the cancel",
                mentor: "The token was cancelled and run() took longer than its bound to \
                         return. Where was the exporter when the cancel came: between batches, \
                         between items, or waiting on the downstream? At which of those places \
                         does your code notice the cancel, and at which does it only notice \
                         once the wait is over?",
                run: |ctx| property(ctx, 1),
            },
            Stage {
                id: "no-task-left",
                title: "When run() returns, nothing it started still runs",
                mentor: "Close! run() returns in time now, but something it started was still \
                         running after it did. Work handed to a task nobody waits for goes on \
                         behind the caller's back: what did your cancel path leave running?",
                run: |ctx| property(ctx, 2),
            },
            Stage {
                id: "every-item-accounted",
                title: "Every item taken is done or returned, truly and once",
                mentor: "Better! run() stops in time, but the report does not add up. Every \
                         item taken from the queue must come back as done (the downstream has \
                         it whole) or returned (the caller will send it again). Which items \
                         were in the batch, or in hand, when the cancel came, and where did \
                         each one end up? (Until the cancel, each item is sent in order, as \
                         soon as the exporter is free.)",
                run: |ctx| property(ctx, 3),
            },
        ],
    );
}
