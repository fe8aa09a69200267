//! Checks for `request-reply-window`: `quote_all` returns, with one quote per request, and
//! joins its pricer, for every batch, every pair of capacities and every schedule.
//!
//! Each stage is a property over generated workloads: capacities of 0 (a rendezvous), 1, 2, 3 or 5 for each
//! channel (chosen apart, so the two differ), batches whose sizes straddle what the two
//! channels hold together (ids past 100, skus that repeat). Each workload runs under
//! shuttle: the first stage's under every schedule up to a budget (a depth-first search),
//! the second's under random schedules from a fixed seed. shuttle fails a schedule in which
//! every thread is blocked (a deadlock) and one that runs longer than its step bound (a
//! thread spinning for something that never comes). The program's `Log` says, before each
//! call that can block, what the thread waits for; the story of the failing schedule is
//! drawn from those lines, and a deadlock is told as where each blocked thread stopped, in
//! the program's own words. Never a wall-clock timeout.

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

    /// The workers that said they were done or stopped, in the order they did.
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
                "main-thread" => BROKER.to_owned(),
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
        trace.event(BROKER, EventKind::Stall).note("no progress").record();
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



/// Two channels and the batch sent through them.
#[derive(Clone, Debug)]
struct Workload {
    settings: Settings,
    batch: Vec<Request>,
}

/// How many times the broker's thread yields after `quote_all` returns, so that a pricer it
/// left running shows itself by logging.
const OUTLIVE_YIELDS: usize = 20;

fn run_workload(workload: &Workload, story: &Story) {
    let quotes = quote_all(workload.batch.clone(), workload.settings, &story.log());
    let returned_at = story.lines().len();
    story.line(BROKER, EventKind::Note, None, format!("quote_all returned {} quotes", quotes.len()));
    for _ in 0..OUTLIVE_YIELDS {
        bughunt_kit::thread::yield_now();
    }
    let late = story
        .lines()
        .iter()
        .skip(returned_at + 1)
        .find(|line| line.actor != BROKER && line.actor != "check")
        .map(|line| (line.actor.clone(), line.note.clone()));
    if let Some((actor, note)) = late {
        story.fail(None, format!(
            "the {actor} was still running after quote_all returned (it then logged \"{note}\"): \
             quote_all must join the threads it started before it returns"
        ));
    }
    let batch = &workload.batch;
    for request in batch {
        let theirs: Vec<&Quote> = quotes.iter().filter(|quote| quote.id == request.id).collect();
        let want = price(request).price_cents;
        match theirs.as_slice() {
            [] => story.fail(Some(request.id), format!(
                "quote_all returned {} quotes for {} requests, and none for request {}: its quote \
                 was lost",
                quotes.len(),
                batch.len(),
                request.id
            )),
            [quote] if quote.price_cents != want => story.fail(Some(request.id), format!(
                "the quote for request {} says {} cents, and its price is {want}",
                request.id, quote.price_cents
            )),
            [_] => {}
            many => story.fail(Some(request.id), format!(
                "request {} was quoted {} times",
                request.id,
                many.len()
            )),
        }
    }
    if let Some(stray) = quotes.iter().find(|quote| batch.iter().all(|request| request.id != quote.id)) {
        story.fail(Some(stray.id), format!("quote_all returned a quote for request {}, which was not asked for", stray.id));
    }
}

/// Workloads whose batch size is drawn from `size(requests_capacity + replies_capacity)`.
fn workloads(size: fn(usize) -> std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Workload> {
    let capacities = || proptest::sample::select(vec![0usize, 1, 2, 3, 5]);
    (capacities(), capacities(), 100u64..400, 1u64..4)
        .prop_flat_map(move |(requests_capacity, replies_capacity, first, gap)| {
            (
                Just(Settings { requests_capacity, replies_capacity }),
                Just((first, gap)),
                proptest::collection::vec(0u64..3, size(requests_capacity + replies_capacity)),
            )
        })
        .prop_map(|(settings, (first, gap), skus)| Workload {
            settings,
            batch: skus
                .into_iter()
                .enumerate()
                .map(|(i, sku)| Request { id: first + gap * i as u64, sku: 7 + sku * 1_000 })
                .collect(),
        })
}

fn tell(workload: &Workload) -> String {
    let Settings { requests_capacity, replies_capacity } = workload.settings;
    let ids: Vec<String> = workload.batch.iter().map(|request| request.id.to_string()).collect();
    format!(
        "`requests` holds {requests_capacity}, `replies` holds {replies_capacity}; a batch of {} \
         request{} ({})",
        workload.batch.len(),
        if workload.batch.len() == 1 { "" } else { "s" },
        ids.join(", ")
    )
}

fn workload_holds(search: Search) -> impl Fn(&Workload, &Trace) -> Result<(), String> {
    move |workload, trace| {
        let run = workload.clone();
        search_schedules(search, trace, move |story| run_workload(&run, story))
            .map(|_| ())
            .map_err(|detail| format!("{detail} (found by {})", search.describe()))
    }
}

const SMALL_WORKLOADS: u32 = 8;
const SMALL_SEARCH: Search = Search::Exhaustive { schedules_max: 500 };
const LARGE_WORKLOADS: u32 = 16;
const LARGE_SEARCH: Search = Search::Random { seed: 0x7265_706c, schedules: 32 };

/// No more requests than the two channels hold together, plus one.
fn within_the_buffers(both: usize) -> std::ops::RangeInclusive<usize> {
    1..=both + 1
}

/// More requests than that: up to ten more.
fn beyond_the_buffers(both: usize) -> std::ops::RangeInclusive<usize> {
    both + 2..=both + 11
}

fn small_batches(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "a batch the channels can hold is quoted whole",
        SMALL_WORKLOADS,
        workloads(within_the_buffers),
        tell,
        workload_holds(SMALL_SEARCH),
    );
    ctx.replay(format!(
        "{SMALL_WORKLOADS} generated workloads (no more requests than the channels hold, plus \
         one), each under {}",
        SMALL_SEARCH.describe()
    ));
}

fn large_batches(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "a batch larger than the channels is quoted whole",
        LARGE_WORKLOADS,
        workloads(beyond_the_buffers),
        tell,
        workload_holds(LARGE_SEARCH),
    );
    ctx.replay(format!(
        "{LARGE_WORKLOADS} generated workloads (more requests than the channels hold), each \
         under {}",
        LARGE_SEARCH.describe()
    ));
}

#[test]
fn checks() {
    run_stages(
        "request-reply-window",
        &[
            Stage {
                id: "small-batches-quoted",
                title: "A batch that the two channels can hold is quoted whole",
                mentor: "Even a batch that the two channels can hold together did not come \
                         back as promised (every quote once, the pricer joined): the story \
                         below shows what each thread said last. Who is waiting for whom, and \
                         for what? Does the pricer wait for anything the broker will only send \
                         once it has its quotes? Is any quote thrown away on the way? (A timer \
                         is no way out: these checks explore schedules, not time, so a \
                         `recv_timeout` here never times out.)",
                run: small_batches,
            },
            Stage {
                id: "large-batches-quoted",
                title: "A batch larger than both channels is quoted whole",
                mentor: "Better: small batches come back. A batch larger than the two channels \
                         did not (the story below is the smallest I found). When `requests` \
                         is full the broker waits for the pricer; when `replies` is full the \
                         pricer waits for the broker. How many unanswered requests does it \
                         take for both to be waiting at once, and does the broker ever have \
                         that many? A bigger buffer only moves the hang to a bigger batch.",
                run: large_batches,
            },
        ],
    );
}
