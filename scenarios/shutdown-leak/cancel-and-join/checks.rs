//! Checks for the job consumer, as properties over generated histories.
//!
//! A history is one to three consumers, each with its own channel (of 3, 5, 6 or 7 places),
//! jobs sent at uneven times with uneven work times (some take an hour: a job that outlasts
//! any grace period), and a shutdown at an uneven time, with jobs still queued and more
//! arriving while the consumer stops. The producer keeps its senders open throughout, as a
//! live service does. Each history runs on a fresh tokio runtime with paused time
//! (`bughunt_kit::paused::block_on`), so an hour of work costs nothing; every wait the
//! harness makes is bounded, and a bound that runs out fails the stage.
//!
//! No property depends on which branch of a `select!` tokio happens to try first: where a
//! stop and a queued job are both ready, taking the job (and doing it) and stopping (and
//! handing it back) both keep every promise, and the bounds allow for either.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::paused;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::sink::{Sink, Work};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout_at, Instant};

/// How long the service waits for an idle consumer's `shutdown` before calling it stuck.
const SHUTDOWN_BOUND_MS: u64 = 4_750;
/// A job that outlasts any grace period.
const HOUR_MS: u64 = 3_600_000;
/// The first job id: ids past 100, so none is a small number by luck.
const FIRST_ID: u64 = 101;
/// Histories per property: enough to meet every kind of shutdown, within the time budget
/// (a history costs about half a millisecond). Returning needs only an idle consumer; the
/// later promises need a job in hand, or a send while stopping, at the right moment.
const CASES_FEW: u32 = 28;
const CASES_MANY: u32 = 40;

/// One job: sent `after_ms` after the previous one on the same channel, and needing
/// `work_ms` in the sink.
#[derive(Clone, Copy, Debug)]
struct JobPlan {
    after_ms: u64,
    work_ms: u64,
}

/// One consumer's part of a history.
#[derive(Clone, Debug)]
struct ConsumerPlan {
    jobs: Vec<JobPlan>,
    shutdown_at_ms: u64,
}

#[derive(Clone, Debug)]
struct History {
    capacity: usize,
    consumers: Vec<ConsumerPlan>,
}

/// A job of a history, with its id, channel and send time worked out.
#[derive(Clone, Copy, Debug)]
struct Planned {
    id: u64,
    consumer: usize,
    at_ms: u64,
    work_ms: u64,
}

impl History {
    fn jobs(&self) -> Vec<Planned> {
        let mut next_id = FIRST_ID;
        let mut all = Vec::new();
        for (consumer, plan) in self.consumers.iter().enumerate() {
            let mut at_ms = 0;
            for job in &plan.jobs {
                at_ms += job.after_ms;
                all.push(Planned {
                    id: next_id,
                    consumer,
                    at_ms,
                    work_ms: job.work_ms,
                });
                next_id += 1;
            }
        }
        all
    }

    /// How long `consumer`'s shutdown may take: the bound, plus the work of every job it
    /// could have been given (a consumer may finish them all rather than hand them back).
    fn bound_ms(&self, consumer: usize) -> u64 {
        SHUTDOWN_BOUND_MS
            + self.consumers[consumer]
                .jobs
                .iter()
                .map(|job| job.work_ms)
                .sum::<u64>()
    }
}

fn name(consumer: usize) -> String {
    format!("c{}", consumer + 1)
}

fn duration(ms: u64) -> String {
    if ms == HOUR_MS {
        "an hour".to_owned()
    } else {
        format!("{ms} ms")
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jobs = self.jobs();
        let mut parts = Vec::new();
        for (consumer, plan) in self.consumers.iter().enumerate() {
            let mut steps: Vec<(u64, String)> = jobs
                .iter()
                .filter(|job| job.consumer == consumer)
                .map(|job| {
                    (
                        job.at_ms,
                        format!(
                            "at {} ms m{} is sent to {} (needs {})",
                            job.at_ms,
                            job.id,
                            name(consumer),
                            duration(job.work_ms)
                        ),
                    )
                })
                .collect();
            steps.push((
                plan.shutdown_at_ms,
                format!(
                    "at {} ms the service calls {}'s shutdown()",
                    plan.shutdown_at_ms,
                    name(consumer)
                ),
            ));
            steps.sort_by_key(|(at_ms, _)| *at_ms);
            parts.extend(steps.into_iter().map(|(_, step)| step));
        }
        write!(
            f,
            "{} consumer(s), each with a channel of {}: {}",
            self.consumers.len(),
            self.capacity,
            prop::numbered(&parts)
        )
    }
}

fn job_plan() -> impl Strategy<Value = JobPlan> {
    let work_ms = prop_oneof![4 => 1u64..700, 1 => Just(HOUR_MS)];
    // Sends land on even milliseconds and shutdowns on odd ones: a send and a shutdown never
    // come at the same instant.
    (0u64..400, work_ms).prop_map(|(after, work_ms)| JobPlan {
        after_ms: after * 2,
        work_ms,
    })
}

fn consumer_plan() -> impl Strategy<Value = ConsumerPlan> {
    (
        prop::proptest::collection::vec(job_plan(), 0..7),
        0u64..1_500,
    )
        .prop_map(|(jobs, shutdown)| ConsumerPlan {
            jobs,
            shutdown_at_ms: shutdown * 2 + 1,
        })
}

fn histories() -> impl Strategy<Value = History> {
    (
        prop::proptest::sample::select(vec![3usize, 5, 6, 7]),
        prop::proptest::collection::vec(consumer_plan(), 1..4),
    )
        .prop_map(|(capacity, consumers)| History {
            capacity,
            consumers,
        })
}

/// What became of one consumer's shutdown.
#[derive(Clone, Debug, Default)]
struct Stopped {
    shutdown_at_ms: u64,
    /// None: it had not returned by its bound.
    returned_at_ms: Option<u64>,
    handed_back: Vec<u64>,
    /// Jobs the channel took (send returned Ok), with when.
    accepted: Vec<(u64, u64)>,
    /// Jobs whose send was still waiting for room when the lane's bound ran out.
    never_sent: Vec<u64>,
}

/// What one history did.
struct Outcome {
    stopped: Vec<Stopped>,
    /// Right after the last shutdown returned (or gave up), with every ready task run.
    tasks_alive: u64,
    /// Every job's work, looked at once every job could have finished.
    works: Vec<Work>,
}

/// Plays `history` against fresh consumers, recording into `trace`.
fn play(history: &History, trace: &Trace) -> Outcome {
    let jobs = history.jobs();
    paused::block_on(async {
        let start = Instant::now();
        let sink = Sink::with_work_times(
            trace.clone(),
            1,
            jobs.iter().map(|job| (job.id, job.work_ms)),
        );
        let now_ms = || start.elapsed().as_millis() as u64;
        let mut lanes = Vec::new();
        for (consumer, plan) in history.consumers.iter().enumerate() {
            let (producer, receiver) = mpsc::channel(history.capacity);
            let handle = Consumer::spawn(receiver, sink.with_actor(name(consumer)));
            let mine: Vec<Planned> = jobs
                .iter()
                .filter(|job| job.consumer == consumer)
                .copied()
                .collect();
            let deadline =
                start + Duration::from_millis(plan.shutdown_at_ms + history.bound_ms(consumer));
            lanes.push(Some(lane(
                trace, start, consumer, plan, mine, producer, handle, deadline,
            )));
        }
        lanes.resize_with(3, || None);
        let mut lanes = lanes.into_iter();
        let (a, b, c) = (lanes.next(), lanes.next(), lanes.next());
        let run = |lane: Option<Option<_>>| async move {
            match lane.flatten() {
                Some(lane) => Some(lane.await),
                None => None,
            }
        };
        let (a, b, c) = tokio::join!(run(a), run(b), run(c));
        let stopped: Vec<Stopped> = [a, b, c].into_iter().flatten().collect();
        let tasks_alive = paused::tasks_alive_after_settling().await;
        trace.set_time_ms(now_ms());
        if tasks_alive > 0 {
            trace
                .event("runtime", EventKind::Leak)
                .note(format!(
                    "{tasks_alive} task(s) still alive after every shutdown() returned"
                ))
                .record();
        }
        // Let whatever is still running run on, so that a job left in the sink shows whether
        // it was still being worked on (it finishes) or was dropped (it never does).
        let all_done_ms = jobs.iter().map(|job| job.at_ms + job.work_ms).sum::<u64>()
            + history
                .consumers
                .iter()
                .map(|plan| plan.shutdown_at_ms)
                .max()
                .unwrap_or(0)
            + SHUTDOWN_BOUND_MS;
        sleep_until(start + Duration::from_millis(all_done_ms)).await;
        Outcome {
            stopped,
            tasks_alive,
            works: sink.works(),
        }
    })
}

/// One consumer's part of the run: the producer sends its jobs on time while the service
/// calls shutdown on time, both in this one task (no task of the harness is alive after).
#[allow(clippy::too_many_arguments)]
async fn lane(
    trace: &Trace,
    start: Instant,
    consumer: usize,
    plan: &ConsumerPlan,
    jobs: Vec<Planned>,
    producer: mpsc::Sender<Job>,
    handle: Consumer,
    deadline: Instant,
) -> Stopped {
    let me = name(consumer);
    let stopped = RefCell::new(Stopped {
        shutdown_at_ms: plan.shutdown_at_ms,
        ..Stopped::default()
    });
    let now_ms = || start.elapsed().as_millis() as u64;
    let sends = async {
        for job in &jobs {
            sleep_until(start + Duration::from_millis(job.at_ms)).await;
            trace.set_time_ms(job.at_ms);
            trace
                .event("producer", EventKind::Send)
                .to(me.clone())
                .msg(job.id)
                .record();
            match timeout_at(deadline, producer.send(Job { id: job.id })).await {
                Ok(Ok(())) => stopped.borrow_mut().accepted.push((job.id, now_ms())),
                Ok(Err(_)) => {
                    trace.set_time_ms(now_ms());
                    trace
                        .event(me.clone(), EventKind::Reject)
                        .to("producer")
                        .msg(job.id)
                        .note("the channel is closed: the producer keeps the job")
                        .record();
                }
                Err(_) => stopped.borrow_mut().never_sent.push(job.id),
            }
        }
    };
    let stop = async {
        sleep_until(start + Duration::from_millis(plan.shutdown_at_ms)).await;
        trace.set_time_ms(plan.shutdown_at_ms);
        trace
            .event("service", EventKind::Shutdown)
            .to(me.clone())
            .note("shutdown(), with the producer's sender still open")
            .record();
        let returned = timeout_at(deadline, handle.shutdown()).await;
        let at_ms = now_ms();
        trace.set_time_ms(at_ms);
        match returned {
            Ok(left) => {
                let ids: Vec<u64> = left.iter().map(|job| job.id).collect();
                let note = if ids.is_empty() {
                    "shutdown() returned".to_owned()
                } else {
                    format!("shutdown() returned, handing back {}", names(&ids))
                };
                trace.event(me.clone(), EventKind::Exit).note(note).record();
                let mut stopped = stopped.borrow_mut();
                stopped.returned_at_ms = Some(at_ms);
                stopped.handed_back = ids;
            }
            Err(_) => trace
                .event(me.clone(), EventKind::Leak)
                .note("shutdown() had not returned by its bound")
                .record(),
        }
    };
    tokio::join!(sends, stop);
    // The producer lets go only now: until shutdown is over, the channel stays open.
    drop(producer);
    stopped.into_inner()
}

fn names(ids: &[u64]) -> String {
    let named: Vec<String> = ids.iter().map(|id| format!("m{id}")).collect();
    named.join(", ")
}

/// What `consumer` was doing at `at_ms`, in words.
fn doing_at(works: &[Work], consumer: usize, at_ms: u64) -> String {
    let me = name(consumer);
    let mine: Vec<&Work> = works.iter().filter(|work| work.actor == me).collect();
    if let Some(work) = mine
        .iter()
        .find(|work| work.started_ms <= at_ms && work.finished_ms.is_none_or(|end| end > at_ms))
    {
        return format!(
            "{me} was in the middle of m{} (work started at {} ms and needs {})",
            work.job,
            work.started_ms,
            duration(work.work_ms)
        );
    }
    match mine
        .iter()
        .filter(|work| work.finished_ms.is_some_and(|end| end <= at_ms))
        .max_by_key(|work| work.finished_ms)
    {
        Some(work) => format!(
            "{me} had no job in the sink (its last one, m{}, was done at {} ms)",
            work.job,
            work.finished_ms.unwrap_or(0)
        ),
        None => format!("{me} had never started a job"),
    }
}

/// Promise 1: every shutdown returns within its bound.
fn returned(history: &History, outcome: &Outcome) -> Result<(), String> {
    for (consumer, stopped) in outcome.stopped.iter().enumerate() {
        if stopped.returned_at_ms.is_none() {
            let bound_ms = history.bound_ms(consumer);
            return Err(format!(
                "{}'s shutdown() was called at {} ms, with the producer's sender still open, and \
                 had not returned {bound_ms} ms later ({SHUTDOWN_BOUND_MS} ms, plus the work of \
                 every job it was ever sent); when it was called, {}",
                name(consumer),
                stopped.shutdown_at_ms,
                doing_at(&outcome.works, consumer, stopped.shutdown_at_ms)
            ));
        }
    }
    Ok(())
}

/// Promise 2: when shutdown returns, the consumer's task is gone.
fn nothing_left_running(outcome: &Outcome) -> Result<(), String> {
    for (consumer, stopped) in outcome.stopped.iter().enumerate() {
        let Some(returned_ms) = stopped.returned_at_ms else {
            continue;
        };
        let me = name(consumer);
        let mine = outcome.works.iter().filter(|work| work.actor == me);
        for work in mine {
            if work.started_ms > returned_ms {
                return Err(format!(
                    "{me}'s shutdown() returned at {returned_ms} ms, and at {} ms {me} started \
                     m{} in the sink: its task was still running, and still taking jobs",
                    work.started_ms, work.job
                ));
            }
            if let Some(finished_ms) = work.finished_ms {
                if work.started_ms <= returned_ms && finished_ms > returned_ms {
                    return Err(format!(
                        "{me}'s shutdown() was called at {} ms and returned at {returned_ms} ms \
                         while work {me} had started was still running: m{} was in the middle \
                         of its work (started at {} ms, needs {}) and was finished at \
                         {finished_ms} ms, after shutdown() had returned",
                        stopped.shutdown_at_ms,
                        work.job,
                        work.started_ms,
                        duration(work.work_ms)
                    ));
                }
            }
        }
    }
    for (consumer, stopped) in outcome.stopped.iter().enumerate() {
        if let (Some(returned_ms), Some(id)) = (stopped.returned_at_ms, stopped.never_sent.first())
        {
            return Err(format!(
                "{}'s shutdown() returned at {returned_ms} ms, and m{id}, sent to its full channel, \
                 was still waiting for room long after: the channel was neither read nor closed, \
                 so something still held its receiving end",
                name(consumer)
            ));
        }
    }
    if outcome.tasks_alive > 0 {
        let returns: Vec<String> = outcome
            .stopped
            .iter()
            .enumerate()
            .map(|(consumer, stopped)| {
                format!(
                    "{}'s at {} ms",
                    name(consumer),
                    stopped.returned_at_ms.unwrap_or(0)
                )
            })
            .collect();
        let unfinished: Vec<&Work> = outcome
            .works
            .iter()
            .filter(|work| work.finished_ms.is_none())
            .collect();
        let doing = match unfinished.first() {
            Some(work) => format!(
                "m{} was started by {} at {} ms and never finished, and the task that had it \
                 was still there",
                work.job, work.actor, work.started_ms
            ),
            None => "no job was in the sink, so the task(s) were waiting for something: a \
                     job, a signal or a timer"
                .to_owned(),
        };
        return Err(format!(
            "every shutdown() had returned ({}), and {} task(s) were still alive after the \
             runtime had run every task that was ready: {doing}",
            returns.join(", "),
            outcome.tasks_alive
        ));
    }
    Ok(())
}

/// Promise 3: a job that started is finished, never cut off.
fn none_cut_off(outcome: &Outcome) -> Result<(), String> {
    for work in &outcome.works {
        if work.finished_ms.is_some() {
            continue;
        }
        let consumer = outcome
            .stopped
            .iter()
            .enumerate()
            .find(|(consumer, _)| name(*consumer) == work.actor);
        let when = match consumer {
            Some((_, stopped)) => format!(
                "; {}'s shutdown() was called at {} ms and returned at {} ms",
                work.actor,
                stopped.shutdown_at_ms,
                stopped.returned_at_ms.unwrap_or(0)
            ),
            None => String::new(),
        };
        return Err(format!(
            "m{} started in the sink at {} ms and needed {}{when}, and m{} never finished, not \
             even an hour later, with no task left to finish it: its work was dropped halfway, a \
             half-written row, a charge without its receipt",
            work.job,
            work.started_ms,
            duration(work.work_ms),
            work.job
        ));
    }
    Ok(())
}

/// Promise 4: every job the channel took is done once or handed back once; each consumer
/// did its jobs one at a time, in the order they were sent.
fn every_job_accounted(outcome: &Outcome) -> Result<(), String> {
    let mut done: BTreeMap<u64, u32> = BTreeMap::new();
    for work in &outcome.works {
        if work.finished_ms.is_some() {
            *done.entry(work.job).or_default() += 1;
        }
    }
    for (consumer, stopped) in outcome.stopped.iter().enumerate() {
        let me = name(consumer);
        for &(id, sent_ms) in &stopped.accepted {
            let times_done = done.get(&id).copied().unwrap_or(0);
            let times_back = stopped
                .handed_back
                .iter()
                .filter(|&&back| back == id)
                .count();
            let returned_ms = stopped.returned_at_ms.unwrap_or(0);
            match (times_done, times_back) {
                (1, 0) | (0, 1) => {}
                (0, 0) => {
                    let when = if sent_ms > stopped.shutdown_at_ms {
                        format!(
                            "while {me} was stopping ({me}'s shutdown() was called at {} ms and \
                             returned at {returned_ms} ms)",
                            stopped.shutdown_at_ms
                        )
                    } else {
                        format!(
                            "before {me}'s shutdown() was called at {} ms (it returned at \
                             {returned_ms} ms)",
                            stopped.shutdown_at_ms
                        )
                    };
                    let back = if stopped.handed_back.is_empty() {
                        "handed back nothing".to_owned()
                    } else {
                        format!("handed back {}", names(&stopped.handed_back))
                    };
                    return Err(format!(
                        "m{id} went into {me}'s channel at {sent_ms} ms, {when}; it was never \
                         done, and shutdown() {back}: m{id} was dropped without a word"
                    ));
                }
                (done_times, back_times) => {
                    return Err(format!(
                        "m{id} went into {me}'s channel at {sent_ms} ms; it was done \
                         {done_times} time(s) and handed back {back_times} time(s) by shutdown(): \
                         a job is either done or handed back, once"
                    ));
                }
            }
        }
        let mine: Vec<&Work> = outcome
            .works
            .iter()
            .filter(|work| work.actor == me)
            .collect();
        for pair in mine.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            if first.finished_ms.is_none_or(|end| end > second.started_ms) {
                return Err(format!(
                    "{me} started m{} at {} ms while m{} (started at {} ms) was still in the \
                     sink: the consumer does its jobs one at a time",
                    second.job, second.started_ms, first.job, first.started_ms
                ));
            }
        }
        let order: Vec<u64> = mine.iter().map(|work| work.job).collect();
        let mut sent_order: Vec<u64> = stopped
            .accepted
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| order.contains(id))
            .collect();
        sent_order.dedup();
        if order != sent_order {
            return Err(format!(
                "{me} was sent {} in that order and did them as {}: the consumer does its jobs in \
                 the order they come",
                names(&sent_order),
                names(&order)
            ));
        }
    }
    Ok(())
}

/// The promises in stage order: a history is judged by every promise up to `upto`, so the
/// message is always about the first promise this run broke.
fn judge(history: &History, outcome: &Outcome, upto: usize) -> Result<(), String> {
    let promises: [&dyn Fn() -> Result<(), String>; 4] = [
        &|| returned(history, outcome),
        &|| nothing_left_running(outcome),
        &|| none_cut_off(outcome),
        &|| every_job_accounted(outcome),
    ];
    for promise in promises.iter().take(upto) {
        promise()?;
    }
    Ok(())
}

fn property(ctx: &mut Ctx, name: &str, cases: u32, upto: usize) {
    prop::for_all(
        ctx,
        name,
        cases,
        histories(),
        |history| history.to_string(),
        |history, trace| judge(history, &play(history, trace), upto),
    );
}

fn shutdown_returns(ctx: &mut Ctx) {
    property(ctx, "shutdown returns within its bound", CASES_FEW, 1);
}

fn no_task_left(ctx: &mut Ctx) {
    property(
        ctx,
        "after shutdown returns, no task is alive",
        CASES_MANY,
        2,
    );
}

fn in_flight_finishes(ctx: &mut Ctx) {
    property(
        ctx,
        "a job in hand is finished, never cut off",
        CASES_FEW,
        3,
    );
}

fn nothing_queued_is_lost(ctx: &mut Ctx) {
    property(
        ctx,
        "every job the channel took is done or handed back, once",
        CASES_MANY,
        4,
    );
}

#[test]
fn checks() {
    run_stages(
        "cancel-and-join",
        &[
            Stage {
                id: "shutdown-returns",
                title: "Shutdown returns while the producer is still connected",
                mentor: "The service asked the consumer to stop, and shutdown never came back. \
                         Where is the consumer task waiting at that moment, and what would \
                         have to happen for that wait to end? Does shutdown make it happen, \
                         with the producer still holding its sender? A flag the loop reads \
                         between jobs, or a drain that waits for the channel to close, waits \
                         as long as the producer lives.",
                run: shutdown_returns,
            },
            Stage {
                id: "no-task-left",
                title: "When shutdown returns, the consumer task is gone",
                mentor: "Close! Shutdown returns now, but something the consumer started was \
                         still running after it did. Telling a task to stop is half of \
                         shutdown; the other half is waiting until it has. What does your \
                         shutdown wait for, and is that the end of every task the consumer \
                         spawned? A deadline that gives up, a signal you don't wait out, or a \
                         task per job that nobody joins all leave work running behind the \
                         caller's back.",
                run: no_task_left,
            },
            Stage {
                id: "in-flight-finishes",
                title: "A job already in the sink finishes before shutdown returns",
                mentor: "Better! Nothing is left running. But a job that had started never \
                         finished. Which await was the work at when the stop came, and what \
                         dropped the future doing it? Killing the task drops it wherever it \
                         awaits, and so does racing the stop signal against the work itself. \
                         Where is the one place the consumer can stop without leaving a job \
                         half done?",
                run: in_flight_finishes,
            },
            Stage {
                id: "nothing-queued-is-lost",
                title: "Every job the channel took is done or handed back",
                mentor: "Nearly there! Shutdown is prompt and clean, but the jobs don't add \
                         up. Once `send` has returned Ok, the producer believes the job is taken \
                         care of: it must be done once, or handed back by shutdown once. When \
                         the consumer stops, which jobs are still in its channel, and which can \
                         still arrive while it stops? (The consumer also promises one job at a \
                         time, in the order they came.)",
                run: nothing_queued_is_lost,
            },
        ],
    );
}
