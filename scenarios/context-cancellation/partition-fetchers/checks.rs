//! Checks for the partition consumer, as properties over generated histories.
//!
//! A history is one to four partitions, each getting messages at uneven times with uneven
//! work times (some an hour long), the service cancelling its token at an uneven moment
//! (often with a message in hand, messages waiting, or a partition idle), and the service
//! calling `stopped()` at once or a while later. Messages keep arriving after the cancel, as
//! they do in a real log. Each history runs on a fresh tokio runtime with paused time; every
//! wait the harness makes is bounded, and a bound that runs out fails the stage.

use std::cell::RefCell;
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

/// How long `stopped()` may take beyond the longest message's work.
const STOP_BOUND_MS: u64 = 1_750;
/// The first message id: ids past 100, so none is a small number by luck.
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
    /// One list of messages per partition.
    partitions: Vec<Vec<Plan>>,
    cancel_at_ms: u64,
    /// After the cancel.
    stopped_after_ms: u64,
}

#[derive(Clone, Copy, Debug)]
struct Planned {
    id: u64,
    partition: u32,
    at_ms: u64,
    work_ms: u64,
}

impl History {
    fn messages(&self) -> Vec<Planned> {
        let mut next_id = FIRST_ID;
        let mut all = Vec::new();
        for (index, plans) in self.partitions.iter().enumerate() {
            let mut at_ms = 0;
            for plan in plans {
                at_ms += plan.after_ms;
                all.push(Planned {
                    id: next_id,
                    partition: index as u32 + 1,
                    at_ms,
                    work_ms: plan.work_ms,
                });
                next_id += 1;
            }
        }
        all.sort_by_key(|message| (message.at_ms, message.id));
        all
    }

    fn stopped_at_ms(&self) -> u64 {
        self.cancel_at_ms + self.stopped_after_ms
    }

    /// When `stopped()` must have returned: the longest work, plus the bound.
    fn deadline_ms(&self) -> u64 {
        let longest = self
            .messages()
            .iter()
            .map(|message| message.work_ms)
            .max()
            .unwrap_or(0);
        self.stopped_at_ms() + longest + STOP_BOUND_MS
    }

    /// When each message is taken by a fetcher that works through its partition in order
    /// and takes the next message the moment it is free and the message has come. Only the
    /// messages due before the cancel.
    fn due_before_cancel(&self) -> Vec<(Planned, u64)> {
        let mut due = Vec::new();
        for number in 1..=self.partitions.len() as u32 {
            let mut free_ms = 0;
            for message in self
                .messages()
                .into_iter()
                .filter(|message| message.partition == number)
            {
                let start_ms = free_ms.max(message.at_ms);
                if start_ms >= self.cancel_at_ms {
                    break;
                }
                due.push((message, start_ms));
                free_ms = start_ms + message.work_ms;
            }
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
                        "at {} ms m{} arrives on partition {} (needs {} ms of work)",
                        message.at_ms, message.id, message.partition, message.work_ms
                    ),
                )
            })
            .collect();
        steps.push((
            self.cancel_at_ms,
            format!("at {} ms the service cancels its token", self.cancel_at_ms),
        ));
        steps.push((
            self.stopped_at_ms(),
            format!(
                "at {} ms the service calls stopped()",
                self.stopped_at_ms()
            ),
        ));
        steps.sort_by_key(|(at_ms, _)| *at_ms);
        let steps: Vec<String> = steps.into_iter().map(|(_, step)| step).collect();
        write!(
            f,
            "a consumer of {} partition(s), heartbeat every {HEARTBEAT_MS} ms: {}",
            self.partitions.len(),
            prop::numbered(&steps)
        )
    }
}

fn plan() -> impl Strategy<Value = Plan> {
    // Arrivals and work times are even, the cancel odd: nothing happens at the very instant
    // of the cancel. Some work takes an hour.
    let after = prop_oneof![2 => 0u64..5, 2 => 0u64..2_000];
    let work = prop_oneof![4 => 1u64..1_500, 1 => 1_500u64..4_000, 1 => Just(1_800_000u64)];
    (after, work).prop_map(|(after, work)| Plan {
        after_ms: after * 2,
        work_ms: work * 2,
    })
}

fn histories() -> impl Strategy<Value = History> {
    let cancel = prop_oneof![2 => 0u64..3_000, 1 => 0u64..8_000];
    let stopped_after = prop_oneof![2 => Just(0u64), 1 => 1u64..6_000];
    (
        prop::proptest::collection::vec(prop::proptest::collection::vec(plan(), 0..6), 1..5),
        cancel,
        stopped_after,
    )
        .prop_map(|(partitions, cancel, stopped_after)| History {
            partitions,
            cancel_at_ms: cancel * 2 + 1,
            stopped_after_ms: stopped_after * 2,
        })
}

struct Outcome {
    /// None: `stopped()` had not returned by the deadline.
    returned_at_ms: Option<u64>,
    /// Right after `stopped()` returned (or gave up), with every ready task run.
    tasks_alive: u64,
    /// Every message's work, looked at long after every one could have finished.
    works: Vec<Work>,
    /// When each beat came.
    beats_ms: Vec<u64>,
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
        let service = CancellationToken::new();
        let mut senders = Vec::new();
        let mut partitions = Vec::new();
        for index in 0..history.partitions.len() {
            let (sender, receiver) = mpsc::channel(64);
            senders.push(sender);
            partitions.push(Partition {
                number: index as u32 + 1,
                messages: receiver,
            });
        }
        let (beats, mut beats_seen) = mpsc::unbounded_channel();
        let consumer = Consumer::start(&service, partitions, sink.clone(), beats);
        let beats_ms = RefCell::new(Vec::new());
        let coordinator = async {
            while let Some(beat) = beats_seen.recv().await {
                trace.set_time_ms(now_ms());
                trace
                    .event("heartbeat", EventKind::Note)
                    .to("coordinator")
                    .note(format!("beat {beat}"))
                    .record();
                beats_ms.borrow_mut().push(now_ms());
            }
            std::future::pending::<()>().await;
        };
        let log = async {
            for message in &messages {
                sleep_until(start + Duration::from_millis(message.at_ms)).await;
                trace.set_time_ms(message.at_ms);
                trace
                    .event("log", EventKind::Send)
                    .to(format!("f{}", message.partition))
                    .msg(message.id)
                    .note(format!("partition {}", message.partition))
                    .record();
                let _ = senders[message.partition as usize - 1].try_send(Message { id: message.id });
            }
            std::future::pending::<()>().await;
        };
        let deadline = start + Duration::from_millis(history.deadline_ms());
        let service_side = async {
            sleep_until(start + Duration::from_millis(history.cancel_at_ms)).await;
            trace.set_time_ms(history.cancel_at_ms);
            trace
                .event("service", EventKind::Shutdown)
                .to("consumer")
                .note("cancels its token")
                .record();
            service.cancel();
            sleep_until(start + Duration::from_millis(history.stopped_at_ms())).await;
            trace.set_time_ms(history.stopped_at_ms());
            trace
                .event("service", EventKind::Note)
                .to("consumer")
                .note("stopped()")
                .record();
            let returned = timeout_at(deadline, consumer.stopped()).await.is_ok();
            let stopped_ms = now_ms();
            trace.set_time_ms(stopped_ms);
            let returned_at_ms = if returned {
                trace
                    .event("consumer", EventKind::Exit)
                    .to("service")
                    .note("stopped() returned")
                    .record();
                Some(stopped_ms)
            } else {
                trace
                    .event("consumer", EventKind::Leak)
                    .note("stopped() had not returned by its bound")
                    .record();
                None
            };
            let tasks_alive = paused::tasks_alive_after_settling().await;
            if tasks_alive > 0 && returned {
                trace
                    .event("runtime", EventKind::Leak)
                    .note(format!(
                        "{tasks_alive} task(s) still alive after stopped() returned"
                    ))
                    .record();
            }
            // Let whatever still runs run on, so work that was cut off shows as never
            // finished, and work still going on shows as finished later.
            sleep_until(deadline + Duration::from_millis(history.deadline_ms())).await;
            (returned_at_ms, tasks_alive)
        };
        let (returned_at_ms, tasks_alive) = tokio::select! {
            biased;
            ended = service_side => ended,
            _ = coordinator => unreachable!("the coordinator never ends"),
            _ = log => unreachable!("the log never ends"),
        };
        Outcome {
            returned_at_ms,
            tasks_alive,
            works: sink.works(),
            beats_ms: beats_ms.into_inner(),
        }
    })
}

fn after_cancel(history: &History, outcome: &Outcome) -> (Vec<String>, Vec<u64>) {
    let works = outcome
        .works
        .iter()
        .filter(|work| work.started_ms > history.cancel_at_ms)
        .map(|work| {
            format!(
                "{} took m{} at {} ms",
                work.actor, work.job, work.started_ms
            )
        })
        .collect();
    let beats = outcome
        .beats_ms
        .iter()
        .copied()
        .filter(|at_ms| *at_ms > history.cancel_at_ms)
        .collect();
    (works, beats)
}

fn beats_told(beats: &[u64]) -> String {
    let times: Vec<String> = beats.iter().map(|at_ms| format!("{at_ms} ms")).collect();
    format!("the heartbeat beat at {}", times.join(", "))
}

/// Promise 1: once the service's token is cancelled, `stopped()` returns.
fn stopped_returns(history: &History, outcome: &Outcome) -> Result<(), String> {
    if outcome.returned_at_ms.is_some() {
        return Ok(());
    }
    let (works, beats) = after_cancel(history, outcome);
    let mut still = works;
    if !beats.is_empty() {
        still.push(beats_told(&beats));
    }
    let still = if still.is_empty() {
        "nothing visible happened after the cancel, so some task was still waiting (for a \
         message or a tick) without looking at the token"
            .to_owned()
    } else {
        format!("after the cancel, {}", still.join("; "))
    };
    Err(format!(
        "the service cancelled its token at {} ms and called stopped() at {} ms; stopped() had \
         not returned at {} ms ({STOP_BOUND_MS} ms beyond the longest message's work); {still}",
        history.cancel_at_ms,
        history.stopped_at_ms(),
        history.deadline_ms()
    ))
}

/// Promise 2: once `stopped()` has returned, no task of the consumer is alive.
fn no_task_left(outcome: &Outcome) -> Result<(), String> {
    let Some(returned_ms) = outcome.returned_at_ms else {
        return Ok(());
    };
    if outcome.tasks_alive == 0 {
        return Ok(());
    }
    let working: Vec<String> = outcome
        .works
        .iter()
        .filter(|work| {
            work.started_ms <= returned_ms && work.finished_ms.is_none_or(|end| end > returned_ms)
        })
        .map(|work| format!("{} was working on m{}", work.actor, work.job))
        .collect();
    let doing = if working.is_empty() {
        "no message was being worked on then, so they were waiting, not working".to_owned()
    } else {
        working.join(", ")
    };
    Err(format!(
        "stopped() returned at {returned_ms} ms, and once the runtime had run every task that \
         was ready, {} task(s) of the consumer were still alive: {doing}",
        outcome.tasks_alive
    ))
}

/// Promise 3: until the cancel, every message is taken on time, in order, and finished;
/// nothing taken is cut off, and all of it is finished before `stopped()` returns; the
/// heartbeat beats at least every period.
fn every_message_accounted(history: &History, outcome: &Outcome) -> Result<(), String> {
    let returned_ms = outcome.returned_at_ms.unwrap_or(u64::MAX);
    for work in &outcome.works {
        match work.finished_ms {
            None => {
                return Err(format!(
                    "{} took m{} at {} ms (it needs {} ms) and never finished it: the work was \
                     cut off halfway (the cancel came at {} ms, stopped() at {} ms); the message \
                     is neither done nor left in its partition",
                    work.actor,
                    work.job,
                    work.started_ms,
                    work.work_ms,
                    history.cancel_at_ms,
                    history.stopped_at_ms()
                ))
            }
            Some(end) if end > returned_ms => {
                return Err(format!(
                    "stopped() returned at {returned_ms} ms, but {} finished m{} only at {end} ms",
                    work.actor, work.job
                ))
            }
            Some(_) => {}
        }
        let times = outcome
            .works
            .iter()
            .filter(|other| other.job == work.job)
            .count();
        if times > 1 {
            return Err(format!("m{} was worked on {times} times", work.job));
        }
    }
    for (message, start_ms) in history.due_before_cancel() {
        let actor = format!("f{}", message.partition);
        let work = outcome.works.iter().find(|work| work.job == message.id);
        match work {
            Some(work) if work.started_ms == start_ms && work.actor == actor => {}
            Some(work) => {
                return Err(format!(
                    "m{} arrived on partition {} at {} ms and its fetcher was free from {start_ms} \
                     ms, before the cancel at {} ms; {} took it at {} ms",
                    message.id,
                    message.partition,
                    message.at_ms,
                    history.cancel_at_ms,
                    work.actor,
                    work.started_ms
                ))
            }
            None => {
                return Err(format!(
                    "m{} arrived on partition {} at {} ms and its fetcher was free from {start_ms} \
                     ms, before the cancel at {} ms; nobody ever took it",
                    message.id, message.partition, message.at_ms, history.cancel_at_ms
                ))
            }
        }
    }
    let mut last_ms = 0;
    for at_ms in outcome
        .beats_ms
        .iter()
        .copied()
        .filter(|at_ms| *at_ms < history.cancel_at_ms)
        .chain([history.cancel_at_ms])
    {
        if at_ms - last_ms > HEARTBEAT_MS {
            return Err(format!(
                "no beat came between {last_ms} ms and {at_ms} ms, while the consumer was running \
                 (the heartbeat is due every {HEARTBEAT_MS} ms)"
            ));
        }
        last_ms = at_ms;
    }
    Ok(())
}

/// Promise 4: the cancel alone stops every task: nothing new starts after it, even before
/// `stopped()` is called.
fn stops_at_cancel(history: &History, outcome: &Outcome) -> Result<(), String> {
    let (works, beats) = after_cancel(history, outcome);
    if works.is_empty() && beats.is_empty() {
        return Ok(());
    }
    let mut late = works;
    if !beats.is_empty() {
        late.push(beats_told(&beats));
    }
    Err(format!(
        "the service cancelled its token at {} ms (and called stopped() at {} ms); after the \
         cancel, {}",
        history.cancel_at_ms,
        history.stopped_at_ms(),
        late.join("; ")
    ))
}

/// Every stage draws the same histories and speaks for its own promise only: see
/// [`bughunt_kit::history`].
const PROMISES: Promises<History, Outcome> = Promises {
    name: "a cancelled consumer stops every task it started",
    cases: CASES,
    each: &[stopped_returns, |_, outcome| no_task_left(outcome), every_message_accounted, stops_at_cancel],
};

fn property(ctx: &mut Ctx, stage: usize) {
    PROMISES.check(ctx, stage, histories(), play);
}

#[test]
fn checks() {
    run_stages(
        "partition-fetchers",
        &[
            Stage {
                id: "stopped-returns",
                title: "Once the service cancels, stopped() returns",
                mentor: "The service cancelled its token and stopped() did not come back in \
                         time: some task of the consumer did not stop. Which token does each \
                         task you spawn listen to, and is it connected to the service's? And \
                         where does each task wait (for a message, for a tick): does that wait \
                         end when the token is cancelled, or only when something else happens?",
                run: |ctx| property(ctx, 1),
            },
            Stage {
                id: "no-task-left",
                title: "When stopped() returns, every task has ended",
                mentor: "Close! stopped() returns now, but tasks of the consumer were still \
                         alive after it did. What does stopped() wait for before it returns, \
                         and does that cover every task the consumer started? A deadline that \
                         gives up leaves the tasks running behind the caller's back.",
                run: |ctx| property(ctx, 2),
            },
            Stage {
                id: "every-message-accounted",
                title: "No message taken is cut off; until the cancel, the consumer keeps up",
                mentor: "Better! Every task ends, but the messages don't add up. A message a \
                         fetcher has taken is gone from its partition: if its work stops \
                         halfway, who will ever finish it? Stop between messages, never in the \
                         middle of one. (Until the cancel, each fetcher takes its messages in \
                         order as soon as it is free, and the heartbeat keeps beating.)",
                run: |ctx| property(ctx, 3),
            },
            Stage {
                id: "stops-at-cancel",
                title: "The cancel alone stops every task, at once",
                mentor: "Nearly! Everything ends in the end, but work went on after the \
                         service had cancelled. The service may call stopped() much later, or \
                         never: does each task hear the cancel itself, the moment it comes, or \
                         does it find out only when it next looks, or when stopped() tells it?",
                run: |ctx| property(ctx, 4),
            },
        ],
    );
}
