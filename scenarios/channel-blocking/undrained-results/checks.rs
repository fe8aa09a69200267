//! Checks for `undrained-results`: `run_pool` returns, with one answer per job or an error
//! naming an empty file, and joins every worker, for every batch, pool and schedule.
//!
//! Each stage is a property over generated workloads: one to three workers, a `results`
//! capacity of 1, 3, 5 or 6 (none a power of two but 1), batches whose job counts straddle the
//! capacity, ids past 100, sizes that repeat, and in the last stage one or two empty files
//! anywhere in the batch. Each workload runs under shuttle: the first stage's under every
//! schedule up to a budget (a depth-first search), the others' under random schedules from a
//! fixed seed. shuttle fails a schedule in which every thread is blocked (a deadlock) and one
//! that runs longer than its step bound (a thread spinning for something that never comes).
//! The program's `Log` says, before each call that can block, what the thread waits for; the
//! story of the failing schedule is drawn from those lines, and a deadlock is told as where
//! each blocked thread stopped, in the program's own words. Never a wall-clock timeout.

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::Search;
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::story::{self, Story, Voice};
use bughunt_kit::trace::Trace;
use hunt::*;

/// The story is told as the program speaks: see [`Voice::channels`].
const VOICE: Voice = Voice::channels(COORDINATOR);

/// The program's log, written into `story`.
fn log(story: &Story) -> Log {
    let story = story.clone();
    Log::new(move |thread, what| story.said(thread, what))
}

/// A pool and the batch it runs.
#[derive(Clone, Debug)]
struct Workload {
    settings: Settings,
    batch: Vec<Job>,
}

fn run_workload(workload: &Workload, story: &Story) {
    let outcome = run_pool(workload.batch.clone(), workload.settings, &log(story));
    let late = story.outlived(match &outcome {
        Ok(answers) => format!("run_pool returned Ok with {} answers", answers.len()),
        Err(JobError::EmptyFile { id }) => format!("run_pool returned EmptyFile for job {id}"),
    });
    if let Some((who, note)) = late {
        story.fail(None, format!(
            "{who} was still running after run_pool returned (it then logged \"{note}\"): \
             run_pool must join every worker it started before it returns"
        ));
    }
    let empty: Vec<u64> = workload.batch.iter().filter(|job| job.size_bytes == 0).map(|job| job.id).collect();
    match outcome {
        Ok(answers) if !empty.is_empty() => story.fail(Some(empty[0]), format!(
            "job {} is an empty file, and run_pool returned Ok with {} answers: the failure was \
             not reported",
            empty[0],
            answers.len()
        )),
        Ok(answers) => check_answers(&workload.batch, &answers, story),
        Err(JobError::EmptyFile { id }) if empty.contains(&id) => {}
        Err(JobError::EmptyFile { id }) => story.fail(Some(id), format!(
            "run_pool returned EmptyFile for job {id}, which is not an empty file of the batch"
        )),
    }
}

/// Exactly one answer per job, each right.
fn check_answers(batch: &[Job], answers: &[Done], story: &Story) {
    for job in batch {
        let theirs: Vec<&Done> = answers.iter().filter(|done| done.id == job.id).collect();
        let want = checksum(job).map(|done| done.checksum).unwrap_or_default();
        match theirs.as_slice() {
            [] => story.fail(Some(job.id), format!(
                "run_pool returned {} answers for a batch of {} jobs, and none for job {}: its \
                 answer was lost",
                answers.len(),
                batch.len(),
                job.id
            )),
            [done] if done.checksum != want => story.fail(Some(job.id), format!(
                "job {}'s answer says checksum {}, and its checksum is {want}",
                job.id, done.checksum
            )),
            [_] => {}
            many => story.fail(Some(job.id), format!("job {}'s answer came back {} times", job.id, many.len())),
        }
    }
    if let Some(stray) = answers.iter().find(|done| batch.iter().all(|job| job.id != done.id)) {
        story.fail(Some(stray.id), format!("run_pool returned an answer for job {}, which was not in the batch", stray.id));
    }
}

/// Workloads whose batch size is drawn from `size(capacity)` and with `empty_files` jobs of
/// size 0 placed anywhere.
fn workloads(
    size: fn(usize) -> std::ops::RangeInclusive<usize>,
    empty_files: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Workload> {
    (proptest::sample::select(vec![1usize, 3, 5, 6]), 1usize..=3, 100u64..400, 1u64..4)
        .prop_flat_map(move |(capacity, workers, first, gap)| {
            (
                Just(Settings { workers, results_capacity: capacity }),
                Just((first, gap)),
                proptest::collection::vec(1usize..4, size(capacity)),
                proptest::collection::vec(any::<proptest::sample::Index>(), empty_files.clone()),
            )
        })
        .prop_map(|(settings, (first, gap), sizes, empties)| {
            let mut batch: Vec<Job> = sizes
                .into_iter()
                .enumerate()
                .map(|(i, size)| Job { id: first + gap * i as u64, size_bytes: [0, 512, 4_096, 65_537][size] })
                .collect();
            for index in empties {
                if !batch.is_empty() {
                    let at = index.index(batch.len());
                    batch[at].size_bytes = 0;
                }
            }
            Workload { settings, batch }
        })
}

fn tell(workload: &Workload) -> String {
    let Settings { workers, results_capacity } = workload.settings;
    let pool = format!(
        "{workers} worker{}, `results` holds {results_capacity} answer{}",
        if workers == 1 { "" } else { "s" },
        if results_capacity == 1 { "" } else { "s" }
    );
    if workload.batch.is_empty() {
        return format!("{pool}; an empty batch");
    }
    let jobs: Vec<String> = workload
        .batch
        .iter()
        .map(|job| match job.size_bytes {
            0 => format!("job {} (an empty file)", job.id),
            size => format!("job {} ({size} bytes)", job.id),
        })
        .collect();
    format!("{pool}; a batch of {} jobs: {}", workload.batch.len(), jobs.join(", "))
}

fn workload_holds(search: Search) -> impl Fn(&Workload, &Trace) -> Result<(), String> {
    move |workload, trace| {
        let run = workload.clone();
        story::search_schedules(VOICE, search, trace, move |story| run_workload(&run, story))
            .map(|_| ())
    }
}

const SMALL_WORKLOADS: u32 = 8;
const SMALL_SEARCH: Search = Search::Exhaustive { schedules_max: 500 };
const LARGE_WORKLOADS: u32 = 16;
const LARGE_SEARCH: Search = Search::Random { seed: 0x6472_6169, schedules: 32 };

fn within_the_buffer(capacity: usize) -> std::ops::RangeInclusive<usize> {
    0..=capacity
}

fn beyond_the_buffer(capacity: usize) -> std::ops::RangeInclusive<usize> {
    capacity + 1..=capacity + 10
}

/// Batches whose answers all fit in `results` come back whole.
fn batch_within_the_buffer(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "a batch that fits in the buffer comes back whole",
        SMALL_WORKLOADS,
        workloads(within_the_buffer, 0..=0),
        tell,
        workload_holds(SMALL_SEARCH),
    );
    ctx.replay(format!(
        "{SMALL_WORKLOADS} generated workloads (up to as many jobs as `results` holds), each under {}",
        SMALL_SEARCH.describe()
    ));
}

/// Batches with more answers than `results` holds come back whole.
fn batch_larger_than_the_buffer(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "a batch larger than the buffer comes back whole",
        LARGE_WORKLOADS,
        workloads(beyond_the_buffer, 0..=0),
        tell,
        workload_holds(LARGE_SEARCH),
    );
    ctx.replay(format!(
        "{LARGE_WORKLOADS} generated workloads (more jobs than `results` holds), each under {}",
        LARGE_SEARCH.describe()
    ));
}

/// A batch with an empty file ends in an error naming one, without hanging, every worker joined.
fn failed_job_is_reported(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "an empty file ends the batch with an error",
        LARGE_WORKLOADS,
        workloads(beyond_the_buffer, 1..=2),
        tell,
        workload_holds(LARGE_SEARCH),
    );
    ctx.replay(format!(
        "{LARGE_WORKLOADS} generated workloads with one or two empty files, each under {}",
        LARGE_SEARCH.describe()
    ));
}

#[test]
fn checks() {
    run_stages(
        "undrained-results",
        &[
            Stage {
                id: "batch-within-the-buffer",
                title: "A batch whose answers fit in `results` comes back whole",
                mentor: "Even a batch whose answers all fit in `results` did not come back \
                         whole: the story below shows what each thread said last. The \
                         coordinator reads `results` until `recv` says the channel is closed: \
                         when does that happen, and which senders of `results` are still alive \
                         once the last worker is done?",
                run: batch_within_the_buffer,
            },
            Stage {
                id: "batch-larger-than-the-buffer",
                title: "A batch with more answers than `results` holds comes back whole",
                mentor: "Better: a batch that fits in the buffer comes back. One with more \
                         answers than `results` holds did not (the story below is the smallest \
                         I found). A worker that finds `results` full waits for room: who is \
                         taking answers out at that moment, and what is that thread waiting \
                         for? A bigger buffer only moves the hang to a bigger batch, and an \
                         answer dropped because the buffer was full is an answer lost.",
                run: batch_larger_than_the_buffer,
            },
            Stage {
                id: "failed-job-is-reported",
                title: "An empty file ends the batch with an error, without hanging, every worker joined",
                mentor: "Nearly there: batches of good files come back whole. A batch with an \
                         empty file did not end as promised (an error naming an empty file, \
                         returned without hanging, every worker joined): the story below is the \
                         smallest I found. Once the coordinator stops reading, what happens to \
                         a worker waiting for room on `results`? What does its `send` return \
                         when nobody can ever receive again, and when does that become true?",
                run: failed_job_is_reported,
            },
        ],
    );
}
