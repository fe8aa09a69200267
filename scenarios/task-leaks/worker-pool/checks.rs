//! Checks for the worker pool, as properties over generated histories.
//!
//! A history is a pool of one to four workers on a channel of 3, 5, 6 or 7 places, one or
//! two producers submitting jobs at uneven times with uneven work times (backlogs, bursts
//! and pauses longer than a worker's idle tick), and a shutdown at an uneven moment after the
//! last submit, often with jobs still queued or in the sink. Monitoring takes a gauge from the
//! pool at the start and keeps it throughout, as a metrics exporter does. Each history runs
//! on a fresh tokio runtime with paused time (`bughunt_kit::paused::block_on`); every wait
//! the harness makes is bounded, and a bound that runs out fails the stage.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::history::Promises;
use bughunt_kit::paused;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::sink::{Sink, Work};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::time::{sleep_until, timeout_at, Instant};

/// How long shutdown may take beyond the work of every job submitted.
const SHUTDOWN_BOUND_MS: u64 = 4_750;
/// The first job id: ids past 100, so none is a small number by luck.
const FIRST_ID: u64 = 101;
/// Histories per property (a history costs well under a millisecond).
const CASES: u32 = 48;

#[derive(Clone, Copy, Debug)]
struct JobPlan {
    after_ms: u64,
    work_ms: u64,
}

#[derive(Clone, Debug)]
struct History {
    size: usize,
    capacity: usize,
    /// One list of jobs per producer.
    producers: Vec<Vec<JobPlan>>,
    /// After the last submit has returned.
    shutdown_after_ms: u64,
}

#[derive(Clone, Copy, Debug)]
struct Planned {
    id: u64,
    producer: usize,
    at_ms: u64,
    work_ms: u64,
}

impl History {
    fn jobs(&self) -> Vec<Planned> {
        let mut next_id = FIRST_ID;
        let mut all = Vec::new();
        for (producer, plans) in self.producers.iter().enumerate() {
            let mut at_ms = 0;
            for plan in plans {
                at_ms += plan.after_ms;
                all.push(Planned {
                    id: next_id,
                    producer,
                    at_ms,
                    work_ms: plan.work_ms,
                });
                next_id += 1;
            }
        }
        all
    }

    /// How long shutdown may take: the bound plus every job's work, as if one worker did
    /// them all after the call.
    fn bound_ms(&self) -> u64 {
        SHUTDOWN_BOUND_MS + self.jobs().iter().map(|job| job.work_ms).sum::<u64>()
    }
}

fn producer_name(producer: usize) -> String {
    format!("p{}", producer + 1)
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps: Vec<(u64, String)> = self
            .jobs()
            .iter()
            .map(|job| {
                (
                    job.at_ms,
                    format!(
                        "at {} ms {} submits m{} (needs {} ms of work)",
                        job.at_ms,
                        producer_name(job.producer),
                        job.id,
                        job.work_ms
                    ),
                )
            })
            .collect();
        steps.sort_by_key(|(at_ms, _)| *at_ms);
        let mut steps: Vec<String> = steps.into_iter().map(|(_, step)| step).collect();
        steps.push(format!(
            "{} ms after the last submit returns, the service calls shutdown()",
            self.shutdown_after_ms
        ));
        write!(
            f,
            "a pool of {} worker(s) on a channel of {}, monitoring holding a gauge: {}",
            self.size,
            self.capacity,
            prop::numbered(&steps)
        )
    }
}

fn job_plan() -> impl Strategy<Value = JobPlan> {
    // Submits land on even milliseconds and the shutdown on an odd one. Some gaps are longer
    // than a worker's idle tick.
    let after = prop_oneof![2 => 0u64..4, 1 => 0u64..900];
    let work_ms = prop_oneof![4 => 1u64..700, 1 => 700u64..3_000];
    (after, work_ms).prop_map(|(after, work_ms)| JobPlan {
        after_ms: after * 2,
        work_ms,
    })
}

fn histories() -> impl Strategy<Value = History> {
    let shutdown_after = prop_oneof![3 => 0u64..40, 1 => 0u64..1_500];
    (
        1usize..5,
        prop::proptest::sample::select(vec![3usize, 5, 6, 7]),
        prop::proptest::collection::vec(prop::proptest::collection::vec(job_plan(), 0..8), 1..3),
        shutdown_after,
    )
        .prop_map(|(size, capacity, producers, shutdown_after)| History {
            size,
            capacity,
            producers,
            shutdown_after_ms: shutdown_after * 2 + 1,
        })
}

/// What one submit came to.
#[derive(Clone, Debug)]
enum Submitted {
    Accepted {
        at_ms: u64,
    },
    Refused {
        at_ms: u64,
    },
    /// Still waiting for room when the bound ran out.
    Stuck,
}

struct Outcome {
    submits: BTreeMap<u64, Submitted>,
    shutdown_at_ms: u64,
    /// What the gauge said when shutdown was called.
    waiting_at_shutdown: usize,
    /// None: shutdown had not returned by its bound.
    returned_at_ms: Option<u64>,
    /// Right after shutdown returned (or gave up), with every ready task run.
    tasks_alive: u64,
    /// Jobs still being worked on at that moment.
    in_sink_then: Vec<u64>,
    /// Every job's work, looked at once every job could have finished.
    works: Vec<Work>,
}

fn play(history: &History, trace: &Trace) -> Outcome {
    let jobs = history.jobs();
    paused::block_on(async {
        let start = Instant::now();
        let now_ms = || start.elapsed().as_millis() as u64;
        let sink = Sink::with_work_times(
            trace.clone(),
            1,
            jobs.iter().map(|job| (job.id, job.work_ms)),
        );
        let pool = Pool::start(history.size, history.capacity, sink.clone());
        // Monitoring keeps its gauge for the whole run, after shutdown too.
        let gauge = pool.gauge();
        let last_send_ms = jobs.iter().map(|job| job.at_ms).max().unwrap_or(0);
        let submit_deadline = start + Duration::from_millis(last_send_ms + history.bound_ms());
        let submits = RefCell::new(BTreeMap::new());
        let produce = |producer: usize| {
            let mine: Vec<Planned> = jobs
                .iter()
                .filter(|job| job.producer == producer)
                .copied()
                .collect();
            let (pool, submits, gauge) = (&pool, &submits, &gauge);
            async move {
                for job in mine {
                    sleep_until(start + Duration::from_millis(job.at_ms)).await;
                    trace.set_time_ms(job.at_ms);
                    trace
                        .event(producer_name(producer), EventKind::Send)
                        .to("pool")
                        .msg(job.id)
                        .note(format!("submit (gauge: {} waiting)", gauge.waiting()))
                        .record();
                    let outcome =
                        match timeout_at(submit_deadline, pool.submit(Job { id: job.id })).await {
                            Ok(Ok(())) => Submitted::Accepted { at_ms: now_ms() },
                            Ok(Err(_)) => {
                                trace.set_time_ms(now_ms());
                                trace
                                    .event("pool", EventKind::Note)
                                    .to(producer_name(producer))
                                    .msg(job.id)
                                    .note("submit gave the job back")
                                    .record();
                                Submitted::Refused { at_ms: now_ms() }
                            }
                            Err(_) => Submitted::Stuck,
                        };
                    submits.borrow_mut().insert(job.id, outcome);
                }
            }
        };
        let second = history.producers.len() > 1;
        tokio::join!(produce(0), async {
            if second {
                produce(1).await;
            }
        });
        let shutdown_at_ms = now_ms() + history.shutdown_after_ms;
        sleep_until(start + Duration::from_millis(shutdown_at_ms)).await;
        trace.set_time_ms(shutdown_at_ms);
        let waiting_at_shutdown = gauge.waiting();
        trace
            .event("service", EventKind::Shutdown)
            .to("pool")
            .note(format!(
                "shutdown(), with {waiting_at_shutdown} job(s) waiting; monitoring still holds \
                 its gauge"
            ))
            .record();
        let deadline = start + Duration::from_millis(shutdown_at_ms + history.bound_ms());
        let returned = timeout_at(deadline, pool.shutdown()).await.is_ok();
        let stopped_ms = now_ms();
        trace.set_time_ms(stopped_ms);
        let returned_at_ms = if returned {
            trace
                .event("pool", EventKind::Exit)
                .to("service")
                .note("shutdown() returned")
                .record();
            Some(stopped_ms)
        } else {
            trace
                .event("pool", EventKind::Leak)
                .note("shutdown() had not returned by its bound")
                .record();
            None
        };
        let tasks_alive = paused::tasks_alive_after_settling().await;
        if tasks_alive > 0 && returned {
            trace
                .event("runtime", EventKind::Leak)
                .note(format!(
                    "{tasks_alive} task(s) still alive after shutdown() returned"
                ))
                .record();
        }
        // Let whatever still runs run on, so a job left in the sink shows whether it was
        // still being worked on (it finishes) or was dropped (it never does).
        sleep_until(deadline + Duration::from_millis(history.bound_ms())).await;
        drop(gauge);
        let works = sink.works();
        let in_sink_then = still_working(&works, stopped_ms);
        Outcome {
            submits: submits.into_inner(),
            shutdown_at_ms,
            waiting_at_shutdown,
            returned_at_ms,
            tasks_alive,
            in_sink_then,
            works,
        }
    })
}

/// The jobs whose work had started by `at_ms` and was still going on then (it finished
/// later): work that was stopped, and so never finished, is not among them.
fn still_working(works: &[Work], at_ms: u64) -> Vec<u64> {
    works
        .iter()
        .filter(|work| work.started_ms <= at_ms && work.finished_ms.is_some_and(|end| end > at_ms))
        .map(|work| work.job)
        .collect()
}

fn names(ids: &[u64]) -> String {
    let named: Vec<String> = ids.iter().map(|id| format!("m{id}")).collect();
    named.join(", ")
}

fn accepted(outcome: &Outcome) -> Vec<u64> {
    outcome
        .submits
        .iter()
        .filter(|(_, submitted)| matches!(submitted, Submitted::Accepted { .. }))
        .map(|(id, _)| *id)
        .collect()
}

/// Promise 1: shutdown returns within its bound.
fn returned(history: &History, outcome: &Outcome) -> Result<(), String> {
    if outcome.returned_at_ms.is_some() {
        return Ok(());
    }
    let accepted = accepted(outcome);
    let finished: Vec<u64> = outcome
        .works
        .iter()
        .filter(|work| {
            work.finished_ms
                .is_some_and(|end| end <= outcome.shutdown_at_ms + history.bound_ms())
        })
        .map(|work| work.job)
        .collect();
    let all_done = accepted.iter().all(|id| finished.contains(id));
    let then = if accepted.is_empty() {
        "no job had been submitted".to_owned()
    } else if all_done {
        format!(
            "every job submitted ({}) had been done by then, so the workers were waiting for a \
             job that could never come",
            names(&accepted)
        )
    } else {
        let left: Vec<u64> = accepted
            .iter()
            .copied()
            .filter(|id| !finished.contains(id))
            .collect();
        format!(
            "{} of the jobs submitted were never done ({})",
            left.len(),
            names(&left)
        )
    };
    Err(format!(
        "shutdown() was called at {} ms, with monitoring still holding its gauge, and had not \
         returned {} ms later ({SHUTDOWN_BOUND_MS} ms plus the work of every job submitted); \
         {then}",
        outcome.shutdown_at_ms,
        history.bound_ms()
    ))
}

/// Promise 2: once shutdown has returned, no task of the pool is alive.
fn nothing_left_running(outcome: &Outcome) -> Result<(), String> {
    let Some(returned_ms) = outcome.returned_at_ms else {
        return Ok(());
    };
    if outcome.tasks_alive == 0 {
        return Ok(());
    }
    let doing = if outcome.in_sink_then.is_empty() {
        "no job was being worked on then, so they were waiting, not working".to_owned()
    } else {
        format!("still working on {} then", names(&outcome.in_sink_then))
    };
    let later: Vec<String> = outcome
        .works
        .iter()
        .filter(|work| work.started_ms >= returned_ms)
        .map(|work| {
            format!(
                "{} started m{} at {} ms",
                work.actor, work.job, work.started_ms
            )
        })
        .collect();
    let later = if later.is_empty() {
        String::new()
    } else {
        format!("; after shutdown() had returned, {}", later.join(", "))
    };
    Err(format!(
        "shutdown() was called at {} ms and returned at {returned_ms} ms, and once the runtime \
         had run every task that was ready, {} task(s) were still alive: {doing}{later}",
        outcome.shutdown_at_ms, outcome.tasks_alive
    ))
}

/// Promise 3: every submit was taken; every job taken was done once, before shutdown
/// returned, with at most `size` jobs in the sink at a time; the gauge told the truth.
fn every_job_done(history: &History, outcome: &Outcome) -> Result<(), String> {
    for (id, submitted) in &outcome.submits {
        match submitted {
            Submitted::Accepted { .. } => {}
            Submitted::Refused { at_ms } => {
                return Err(format!(
                    "submit gave m{id} back at {at_ms} ms, while the pool was running (shutdown \
                     came only at {} ms): no worker was left to take it",
                    outcome.shutdown_at_ms
                ))
            }
            Submitted::Stuck => {
                return Err(format!(
                    "submit of m{id} was still waiting for room in the channel {} ms later, \
                     with the pool running: nothing was taking jobs any more",
                    history.bound_ms()
                ))
            }
        }
    }
    let returned_ms = outcome.returned_at_ms.unwrap_or(u64::MAX);
    for id in accepted(outcome) {
        let works: Vec<&Work> = outcome.works.iter().filter(|work| work.job == id).collect();
        let sent_ms = match outcome.submits.get(&id) {
            Some(Submitted::Accepted { at_ms }) => *at_ms,
            _ => 0,
        };
        match works.as_slice() {
            [] => {
                return Err(format!(
                    "m{id} was submitted at {sent_ms} ms and never done: shutdown() (called at \
                     {} ms, returned at {returned_ms} ms) let it go without a word",
                    outcome.shutdown_at_ms
                ))
            }
            [work] => match work.finished_ms {
                None => {
                    return Err(format!(
                        "{} started m{id} at {} ms (it needs {} ms) and never finished it: the \
                         work was dropped halfway when shutdown() (called at {} ms) stopped the \
                         worker",
                        work.actor, work.started_ms, work.work_ms, outcome.shutdown_at_ms
                    ))
                }
                Some(end) if end > returned_ms => {
                    return Err(format!(
                        "shutdown() returned at {returned_ms} ms, and m{id} was finished only at \
                         {end} ms by {}: shutdown returned before the work it promised was done",
                        work.actor
                    ))
                }
                Some(_) => {}
            },
            more => {
                let by: Vec<String> = more
                    .iter()
                    .map(|work| format!("{} at {} ms", work.actor, work.started_ms))
                    .collect();
                return Err(format!(
                    "m{id} was done {} times ({}): each job is done once",
                    more.len(),
                    by.join(", ")
                ));
            }
        }
    }
    // When shutdown is called, the gauge says how many jobs wait in the channel: those
    // accepted and not started, but for jobs the pool has taken off the channel for a worker
    // and not started yet. A pool holds at most one such job per worker (a dispatcher holding
    // the next job while every worker is busy, or jobs handed over and about to start); more
    // would be a queue of its own that the gauge does not show. A job that starts at that very
    // instant may be counted either way.
    let accepted_count = accepted(outcome).len();
    let started_before = |inclusive: bool| {
        outcome
            .works
            .iter()
            .filter(|work| {
                work.started_ms < outcome.shutdown_at_ms
                    || (inclusive && work.started_ms == outcome.shutdown_at_ms)
            })
            .count()
    };
    let most = accepted_count.saturating_sub(started_before(false));
    let fewest = accepted_count
        .saturating_sub(started_before(true))
        .saturating_sub(history.size);
    if !(fewest..=most).contains(&outcome.waiting_at_shutdown) {
        return Err(format!(
            "when shutdown() was called at {} ms, {accepted_count} job(s) had been submitted and \
             {} started, so {most} were waiting; a gauge may leave out the jobs taken off the \
             channel for a worker and not started yet, at most one per worker ({}), so it had \
             to say between {fewest} and {most}, and it said {}",
            outcome.shutdown_at_ms,
            started_before(false),
            history.size,
            outcome.waiting_at_shutdown
        ));
    }
    for work in &outcome.works {
        let busy: Vec<&Work> = outcome
            .works
            .iter()
            .filter(|other| {
                other.started_ms <= work.started_ms
                    && other.finished_ms.is_none_or(|end| end > work.started_ms)
            })
            .collect();
        if busy.len() > history.size {
            let ids: Vec<u64> = busy.iter().map(|other| other.job).collect();
            return Err(format!(
                "at {} ms {} jobs were in the sink at once ({}), in a pool of {} worker(s)",
                work.started_ms,
                busy.len(),
                names(&ids),
                history.size
            ));
        }
    }
    Ok(())
}

/// Every stage draws the same histories and speaks for its own promise only: see
/// [`bughunt_kit::history`].
const PROMISES: Promises<History, Outcome> = Promises {
    name: "a pool's shutdown keeps its promises",
    cases: CASES,
    each: &[returned, |_, outcome| nothing_left_running(outcome), every_job_done],
};

fn property(ctx: &mut Ctx, stage: usize) {
    PROMISES.check(ctx, stage, histories(), play);
}

#[test]
fn checks() {
    run_stages(
        "worker-pool",
        &[
            Stage {
                id: "shutdown-returns",
                title: "Shutdown returns while monitoring holds a gauge",
                mentor: "Shutdown never came back. Once it has dropped the pool's sender, what \
                         has to happen for a worker's wait to end? Is the pool's sender really \
                         the last way into the channel: who else holds one, and for how long? \
                         And when the channel does close, does the worker's loop notice?",
                run: |ctx| property(ctx, 1),
            },
            Stage {
                id: "no-task-left",
                title: "When shutdown returns, every worker has ended",
                mentor: "Close! Shutdown returns now, but tasks of the pool were still alive \
                         after it did. Closing the channel only asks the workers to stop: what \
                         does your shutdown wait for before it returns, and does that cover \
                         every task the pool started? A deadline that gives up, or a task \
                         nobody joins, leaves work running behind the caller's back.",
                run: |ctx| property(ctx, 2),
            },
            Stage {
                id: "every-job-done",
                title: "Every job submitted is done once, before shutdown returns",
                mentor: "Better! Shutdown is prompt and leaves nothing running, but the jobs \
                         don't add up. Once `submit` has returned Ok, the producer believes the \
                         job will be done. Which jobs were still queued, or halfway through, \
                         when your workers stopped, and what became of them? (While the pool \
                         runs, `submit` must not give a job back, each job is done once, and \
                         the gauge still says how many jobs wait.)",
                run: |ctx| property(ctx, 3),
            },
        ],
    );
}
