//! Checks for `inflight-counter`: at the moment `flush`'s wait returns, every job has
//! finished, never more than `max_in_flight` run at once, and `flush` returns, for every
//! batch and every schedule.
//!
//! Each stage is a property over generated batches (document ids past 100 with gaps, bounds
//! of one to three jobs in flight), each batch run under shuttle's random schedules from a
//! fixed seed (many for a single job, in which the job must outrun the dispatcher by several
//! steps to show an early count).
//! shuttle fails a schedule in which every thread is blocked (a deadlock); the program's
//! `Log` says, before each call that can block, what the thread waits for. What the
//! dispatcher saw when its wait returned is in `Flushed::indexed_at_wait`: the checks assert
//! it (how many jobs had finished, and which), not only that the program ended. Never a
//! wall-clock timeout.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex as StdMutex;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::{explore, Explored, Search};
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// The document a log line is about: the number after "document ".
fn document_in(what: &str) -> Option<u64> {
    let rest = &what[what.find("document ")? + 9..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The document a worker thread runs: the number in its name.
fn document_of(thread: &str) -> Option<u64> {
    thread.strip_prefix("job-")?.parse().ok()
}

/// One line of the story of the schedule being explored.
struct Line {
    actor: String,
    kind: EventKind,
    msg: Option<u64>,
    note: String,
}

/// The story of the schedule being explored, in the order things happened. A std mutex, not
/// the checker's: recording must add no thread switches of its own, and it is never held
/// across one.
#[derive(Clone, Default)]
struct Story {
    lines: std::sync::Arc<StdMutex<Vec<Line>>>,
}

impl Story {
    fn lines(&self) -> std::sync::MutexGuard<'_, Vec<Line>> {
        self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn restart(&self) {
        self.lines().clear();
    }

    fn line(&self, actor: &str, kind: EventKind, msg: Option<u64>, note: impl Into<String>) {
        self.lines().push(Line { actor: actor.to_owned(), kind, msg, note: note.into() });
    }

    /// The program's log, written into this story.
    fn log(&self) -> Log {
        let story = self.clone();
        Log::new(move |thread, what| {
            let kind = if what.contains("waits") {
                EventKind::Stall
            } else if what.starts_with("indexes") {
                EventKind::Process
            } else if what == "done" {
                EventKind::Exit
            } else {
                EventKind::Note
            };
            story.line(thread, kind, document_in(&what).or_else(|| document_of(thread)), what);
        })
    }

    /// What each thread last said, in the order the threads first spoke.
    fn last_lines(&self) -> Vec<String> {
        let lines = self.lines();
        let mut actors: Vec<&str> = Vec::new();
        for line in lines.iter() {
            if line.actor != "check" && !actors.contains(&line.actor.as_str()) {
                actors.push(&line.actor);
            }
        }
        actors
            .iter()
            .filter_map(|actor| {
                let last = lines.iter().rev().find(|line| line.actor == *actor)?;
                Some(format!("{} {}", called(actor), last.note))
            })
            .collect()
    }

    /// What `actor` last said it was doing.
    fn last_of(&self, actor: &str) -> Option<String> {
        self.lines().iter().rev().find(|line| line.actor == actor).map(|line| line.note.clone())
    }

    /// The threads that said they were done or stopped, in the order they did.
    fn finished(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter(|line| line.note == "done")
            .map(|line| line.actor.clone())
            .collect()
    }

    /// Records the verdict and fails the schedule with `detail`.
    fn fail(&self, msg: Option<u64>, detail: String) -> ! {
        self.line("check", EventKind::Lost, msg, detail.clone());
        panic!("{detail}");
    }

    fn draw_into(&self, trace: &Trace) {
        for line in self.lines().iter() {
            let event = trace.event(line.actor.clone(), line.kind).note(line.note.clone());
            match line.msg {
                Some(msg) => event.msg(msg).record(),
                None => event.record(),
            }
        }
    }
}

/// A thread as a sentence names it: "the dispatcher", but "job-101".
fn called(thread: &str) -> String {
    if thread.starts_with("job-") || thread.starts_with("an unnamed") {
        thread.to_owned()
    } else {
        format!("the {thread}")
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        String::new()
    }
}

/// The threads shuttle names in "deadlock! blocked tasks: [a (task 0), b (task 1, detached)]".
fn blocked_threads(text: &str) -> Vec<String> {
    let Some(start) = text.find("blocked tasks: [") else {
        return Vec::new();
    };
    let list = &text[start + "blocked tasks: [".len()..];
    let list = &list[..list.rfind(']').unwrap_or(list.len())];
    list.split("), ")
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let name = item.split(" (task").next().unwrap_or(item).trim();
            let task = item.split("(task ").nth(1).unwrap_or("").trim_end_matches(')');
            match name {
                "main-thread" => DISPATCHER.to_owned(),
                "<unknown>" => format!("an unnamed thread (task {task})"),
                name => name.to_owned(),
            }
        })
        .collect()
}

/// Runs `test` under the schedules of `search`. On a failure, draws the failing schedule into
/// `trace` and returns what went wrong, in words.
fn search_schedules(
    search: Search,
    trace: &Trace,
    test: impl Fn(&Story) + Send + Sync + 'static,
) -> Result<Explored, String> {
    let story = Story::default();
    let explored = story.clone();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        explore(search, move || {
            explored.restart();
            test(&explored);
        })
    }));
    // A replay string cannot replay a generated batch: the batch, the search and its seed
    // can, and the check repeats them on every run.
    bughunt_kit::explore::take_replay();
    let payload = match outcome {
        Ok(explored) => return Ok(explored),
        Err(payload) => payload,
    };
    story.draw_into(trace);
    let text = panic_text(payload.as_ref());
    if text.contains("deadlock") {
        let mut stopped = Vec::new();
        for thread in blocked_threads(&text) {
            match story.last_of(&thread) {
                Some(what) => {
                    trace.event(thread.clone(), EventKind::Stall).note(format!("stopped here: {what}")).record();
                    stopped.push(format!("{} {what}", called(&thread)));
                }
                None => {
                    trace.event(thread.clone(), EventKind::Stall).note("stopped (it logged nothing)").record();
                    stopped.push(format!("{thread} is blocked (it logged nothing)"));
                }
            }
        }
        let finished = story.finished();
        let gone = if finished.is_empty() {
            String::new()
        } else {
            format!(" ({} had already finished)", finished.join(", "))
        };
        return Err(match stopped.as_slice() {
            [] => "deadlock: every thread still running is blocked, and none can wake another".to_owned(),
            [only] => format!(
                "deadlock: {only}, and no other thread is left that could ever do its half{gone}. \
                 Nothing else will ever happen in this run"
            ),
            _ => format!(
                "deadlock: every thread still running is blocked, each waiting for another: {}{gone}. \
                 Nothing else will ever happen in this run",
                stopped.join("; ")
            ),
        });
    }
    if text.contains("max_steps") {
        trace.event(DISPATCHER, EventKind::Stall).note("no progress").record();
        return Err(format!(
            "a schedule ran {} steps without finishing, although every thread that yields let \
             the others run first: some thread keeps trying something that can never succeed \
             (a poll loop whose partner is not there). What each thread said last: {}",
            bughunt_kit::explore::STEPS_MAX,
            story.last_lines().join("; ")
        ));
    }
    Err(text)
}



/// A batch to flush.
#[derive(Clone, Debug)]
struct Batch {
    ids: Vec<u64>,
    max_in_flight: usize,
}

/// What a stage asserts about one run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Promise {
    /// Every job had finished when the wait returned.
    EveryJobSeen,
    /// Also: never more than `max_in_flight` jobs at once.
    Bounded,
}

/// What `job` had done by the time the dispatcher's wait returned, from the story.
fn where_job_was(story: &Story, id: u64) -> String {
    let lines = story.lines();
    let returned = lines
        .iter()
        .position(|line| line.actor == DISPATCHER && line.note.starts_with("wait returned"))
        .unwrap_or(lines.len());
    let name = worker_name(id);
    match lines[..returned].iter().rev().find(|line| line.actor == name) {
        None => format!("{name} had not started"),
        Some(line) if line.note == "done" => format!("{name} had said it was done, and its document was not in the index yet"),
        Some(line) => format!("{name} was still running (it had said \"{}\")", line.note),
    }
}

fn run_batch(batch: &Batch, promise: Promise, story: &Story) {
    let flushed = flush(&batch.ids, batch.max_in_flight, &story.log());
    story.line(DISPATCHER, EventKind::Note, None, "flush returned");
    let missing: Vec<u64> = batch.ids.iter().copied().filter(|id| !flushed.indexed_at_wait.contains(id)).collect();
    if !missing.is_empty() {
        let wheres: Vec<String> = missing.iter().map(|id| where_job_was(story, *id)).collect();
        story.fail(Some(missing[0]), format!(
            "the dispatcher's wait returned when {} of the {} jobs had finished (missing from the index: {}): {}",
            batch.ids.len() - missing.len(),
            batch.ids.len(),
            missing.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
            wheres.join("; ")
        ));
    }
    for id in &batch.ids {
        let times = flushed.indexed_at_wait.iter().filter(|seen| *seen == id).count();
        if times != 1 {
            story.fail(Some(*id), format!("document {id} was indexed {times} times; each job runs once"));
        }
    }
    if let Some(stray) = flushed.indexed_at_wait.iter().find(|seen| !batch.ids.contains(seen)) {
        story.fail(Some(*stray), format!("document {stray} was indexed, and it was not in the batch"));
    }
    if promise == Promise::Bounded && flushed.most_running > batch.max_in_flight {
        story.fail(None, format!(
            "{} jobs ran at once, and the bound was {} in flight",
            flushed.most_running, batch.max_in_flight
        ));
    }
}

fn batches(jobs: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Batch> {
    (100u64..400, 1u64..5, jobs, 1usize..=3).prop_map(|(first, gap, count, max_in_flight)| Batch {
        ids: (0..count as u64).map(|i| first + gap * i).collect(),
        max_in_flight,
    })
}

fn tell(batch: &Batch) -> String {
    let ids: Vec<String> = batch.ids.iter().map(u64::to_string).collect();
    format!(
        "a batch of {} job{} (documents {}), at most {} in flight",
        batch.ids.len(),
        if batch.ids.len() == 1 { "" } else { "s" },
        ids.join(", "),
        batch.max_in_flight
    )
}

fn batch_holds(search: Search, promise: Promise) -> impl Fn(&Batch, &Trace) -> Result<(), String> {
    move |batch, trace| {
        let batch = batch.clone();
        search_schedules(search, trace, move |story| run_batch(&batch, promise, story))
            .map(|_| ())
            .map_err(|detail| format!("{detail} (found by {})", search.describe()))
    }
}

const ONE_JOB_BATCHES: u32 = 3;
const ONE_JOB_SEARCH: Search = Search::Random { seed: 0x6f6e_6531, schedules: 160 };
const BATCHES: u32 = 6;
const SEARCH: Search = Search::Random { seed: 0x7767_6164, schedules: 24 };

/// A batch of one job: the wait sees it finished, under many schedules.
fn one_job_flush(ctx: &mut Ctx) {
    prop::for_all(ctx, "one job is finished when the wait returns", ONE_JOB_BATCHES, batches(1..=1), tell, batch_holds(ONE_JOB_SEARCH, Promise::EveryJobSeen));
    ctx.replay(format!("{ONE_JOB_BATCHES} generated batches of one job, each under {}", ONE_JOB_SEARCH.describe()));
}

/// Batches of two to five jobs: the wait sees every one finished.
fn every_job_before_wait_returns(ctx: &mut Ctx) {
    prop::for_all(ctx, "every job is finished when the wait returns", BATCHES, batches(2..=5), tell, batch_holds(SEARCH, Promise::EveryJobSeen));
    ctx.replay(format!("{BATCHES} generated batches of two to five jobs, each under {}", SEARCH.describe()));
}

/// And never more than `max_in_flight` at once.
fn in_flight_bound(ctx: &mut Ctx) {
    prop::for_all(ctx, "never more jobs at once than the bound", BATCHES, batches(2..=5), tell, batch_holds(SEARCH, Promise::Bounded));
    ctx.replay(format!("{BATCHES} generated batches of two to five jobs, each under {}", SEARCH.describe()));
}

#[test]
fn checks() {
    run_stages(
        "inflight-counter",
        &[
            Stage {
                id: "one-job-flush",
                title: "A batch of one job is finished when the wait returns",
                mentor: "With a single job, the dispatcher's wait did not end as promised \
                         (returned with the job finished and its document in the index): the \
                         story below shows where the job was at that moment. `wait` trusts the \
                         count: when is the job counted in, when is it counted out, and could \
                         the count be zero while the job still has work to do?",
                run: one_job_flush,
            },
            Stage {
                id: "every-job-before-wait-returns",
                title: "Every job of a batch is finished when the wait returns",
                mentor: "Better: one job is waited for. With several jobs, the dispatcher's wait \
                         did not end as promised (every job finished when it returned, and it \
                         returned): the story below is the smallest batch I found. What does a \
                         wake-up on the condition tell the waiter, and what must it look at \
                         again after each one?",
                run: every_job_before_wait_returns,
            },
            Stage {
                id: "in-flight-bound",
                title: "Never more jobs at once than `max_in_flight`",
                mentor: "Every job is waited for, but more jobs ran at once than the bound \
                         allows: the story below shows them. Before starting a job, the \
                         dispatcher waits for room: for how many jobs in flight is there room?",
                run: in_flight_bound,
            },
        ],
    );
}
