//! Checks for `rendezvous-handoff`: `run` returns, with one answer per job, for every batch
//! and every schedule of its threads.
//!
//! Each stage is a property over generated batches (ids past 100, sizes that repeat). Every
//! batch is run under shuttle: the small batches of the first stage under every schedule (a
//! depth-first search), the larger ones of the second under random schedules from a fixed
//! seed. shuttle fails a schedule in which every thread is blocked (a deadlock) and one that
//! runs longer than its step bound (a thread spinning for something that never comes). The
//! program's `Log` says, before each call that can block, what the thread waits for; the
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
const VOICE: Voice = Voice::channels(DISPATCHER);

/// The program's log, written into `story`.
fn log(story: &Story) -> Log {
    let story = story.clone();
    Log::new(move |thread, what| story.said(thread, what))
}

/// Runs `batch` through `run` and checks the answers: exactly one per job, each right.
fn run_batch(batch: &[Job], story: &Story) {
    let answers = run(batch.to_vec(), &log(story));
    let late = story.outlived(format!("run returned {} answers", answers.len()));
    if let Some((who, note)) = late {
        story.fail(None, format!(
            "{who} was still running after run returned (it then logged \"{note}\"): run \
             must join the threads it started before it returns"
        ));
    }
    for job in batch {
        let theirs: Vec<&Done> = answers.iter().filter(|done| done.id == job.id).collect();
        match theirs.as_slice() {
            [] => story.fail(Some(job.id), format!(
                "run returned {} answers for a batch of {} jobs, and none for job {}: its answer was lost",
                answers.len(),
                batch.len(),
                job.id
            )),
            [done] if done.checksum != checksum(job) => story.fail(Some(job.id), format!(
                "job {}'s answer says checksum {}, and its checksum is {}",
                job.id,
                done.checksum,
                checksum(job)
            )),
            [_] => {}
            many => story.fail(Some(job.id), format!(
                "job {}'s answer came back {} times",
                job.id,
                many.len()
            )),
        }
    }
    if let Some(stray) = answers.iter().find(|done| batch.iter().all(|job| job.id != done.id)) {
        story.fail(Some(stray.id), format!("run returned an answer for job {}, which was not in the batch", stray.id));
    }
}

fn batches(jobs: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<Job>> {
    // Ids past 100 with gaps; sizes from a few values, so payloads repeat.
    (100u64..400, 1u64..4, proptest::collection::vec(0usize..4, jobs)).prop_map(|(first, gap, sizes)| {
        sizes
            .into_iter()
            .enumerate()
            .map(|(i, size)| Job { id: first + gap * i as u64, size_bytes: [0, 512, 4_096, 65_537][size] })
            .collect()
    })
}

fn tell(batch: &Vec<Job>) -> String {
    if batch.is_empty() {
        return "an empty batch".into();
    }
    let jobs: Vec<String> = batch.iter().map(|job| format!("job {} ({} bytes)", job.id, job.size_bytes)).collect();
    format!("a batch of {} job{}: {}", batch.len(), if batch.len() == 1 { "" } else { "s" }, jobs.join(", "))
}

fn batch_holds(search: Search) -> impl Fn(&Vec<Job>, &Trace) -> Result<(), String> {
    move |batch, trace| {
        let jobs = batch.clone();
        story::search_schedules(VOICE, search, trace, move |story| run_batch(&jobs, story))
            .map(|_| ())
    }
}

const SMALL_BATCHES: u32 = 6;
const SMALL_SEARCH: Search = Search::Exhaustive { schedules_max: 2_000 };
const LARGE_BATCHES: u32 = 16;
const LARGE_SEARCH: Search = Search::Random { seed: 0x7265_6e64, schedules: 32 };

/// A batch of one job, or none, returns its answer under every schedule.
fn one_job_hand_off(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "a batch of at most one job comes back whole",
        SMALL_BATCHES,
        batches(0..=1),
        tell,
        batch_holds(SMALL_SEARCH),
    );
    ctx.replay(format!(
        "{SMALL_BATCHES} generated batches of none or one job, each under {}",
        SMALL_SEARCH.describe()
    ));
}

/// Batches of two to nine jobs return one answer per job.
fn batches_of_any_size(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "a batch of any size comes back whole",
        LARGE_BATCHES,
        batches(2..=9),
        tell,
        batch_holds(LARGE_SEARCH),
    );
    ctx.replay(format!(
        "{LARGE_BATCHES} generated batches of two to nine jobs, each under {}",
        LARGE_SEARCH.describe()
    ));
}

#[test]
fn checks() {
    run_stages(
        "rendezvous-handoff",
        &[
            Stage {
                id: "one-job-hand-off",
                title: "A batch of one job, or none, comes back under every schedule",
                mentor: "A batch of at most one job did not come back as promised (every \
                         answer once, no thread left running): the story below shows what each \
                         thread said last. A rendezvous channel \
                         (`sync_channel(0)`) holds nothing, so a send on it waits until \
                         someone is receiving: at the moment of each send, is there a thread \
                         that will receive it? And how does the worker learn that the batch is \
                         over?",
                run: one_job_hand_off,
            },
            Stage {
                id: "batches-of-any-size",
                title: "A batch of any size comes back, one answer per job",
                mentor: "Better: a single job goes through. With more jobs in the batch, the \
                         run did not come back whole: the story below is the smallest batch I \
                         found that breaks it. While the dispatcher is still handing jobs \
                         over, where do the worker's answers go, and who is there to take \
                         them? A channel with room for a few messages only moves the hang to \
                         a bigger batch.",
                run: batches_of_any_size,
            },
        ],
    );
}
