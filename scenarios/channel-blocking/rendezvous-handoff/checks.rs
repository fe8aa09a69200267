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

use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex as StdMutex;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::{explore, Explored, Search};
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

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
            let kind = if what.contains("waits to send") || what.contains("waits to hand") {
                EventKind::Send
            } else if what.contains("waits for a") {
                EventKind::Deliver
            } else {
                EventKind::Note
            };
            story.line(thread, kind, job_in(&what), what);
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
            .filter(|line| line.note.starts_with("done") || line.note.starts_with("stops"))
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

/// A thread as a sentence names it: "the coordinator", but "w1".
fn called(thread: &str) -> String {
    let numbered = thread.len() > 1 && thread[1..].chars().all(|c| c.is_ascii_digit());
    if numbered || thread.starts_with("an unnamed") {
        thread.to_owned()
    } else {
        format!("the {thread}")
    }
}

/// The job a log line is about: the number after "job ".
fn job_in(what: &str) -> Option<u64> {
    let rest = &what[what.find("job ")? + 4..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
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

/// How many times the dispatcher's thread yields after `run` returns, so that a thread it
/// left running shows itself by logging.
const OUTLIVE_YIELDS: usize = 20;

/// Runs `batch` through `run` and checks the answers: exactly one per job, each right.
fn run_batch(batch: &[Job], story: &Story) {
    let answers = run(batch.to_vec(), &story.log());
    let returned_at = story.lines().len();
    story.line(DISPATCHER, EventKind::Note, None, format!("run returned {} answers", answers.len()));
    for _ in 0..OUTLIVE_YIELDS {
        bughunt_kit::thread::yield_now();
    }
    let late = story
        .lines()
        .iter()
        .skip(returned_at + 1)
        .find(|line| line.actor != DISPATCHER && line.actor != "check")
        .map(|line| (line.actor.clone(), line.note.clone()));
    if let Some((actor, note)) = late {
        story.fail(None, format!(
            "the {actor} was still running after run returned (it then logged \"{note}\"): run \
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
        search_schedules(search, trace, move |story| run_batch(&jobs, story))
            .map(|_| ())
            .map_err(|detail| format!("{detail} (found by {})", search.describe()))
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
