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

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::Search;
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::prelude::*;
use bughunt_kit::story::{self, Story, Voice};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// A line is about the document it names, or the one its thread indexes (`job-101`); a
/// thread that says "done" has finished.
const VOICE: Voice = Voice {
    item: "document",
    thread_item: |thread| thread.strip_prefix("job-")?.parse().ok(),
    kind: |what| {
        if what.contains("waits") {
            EventKind::Stall
        } else if what.starts_with("indexes") {
            EventKind::Process
        } else if what == "done" {
            EventKind::Exit
        } else {
            EventKind::Note
        }
    },
    finished: |what| what == "done",
    ..Voice::channels(DISPATCHER)
};

/// The program's log, written into `story`.
fn log(story: &Story) -> Log {
    let story = story.clone();
    Log::new(move |thread, what| story.said(thread, what))
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
    let flushed = flush(&batch.ids, batch.max_in_flight, &log(story));
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
        story::search_schedules(VOICE, search, trace, move |story| run_batch(&batch, promise, story))
            .map(|_| ())
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
