//! Checks for `queue-and-stats`: under every schedule the workers and the reporter finish,
//! every job is done exactly once, and every report is one consistent moment.
//!
//! Each stage is a property over generated workloads: 1 to 6 jobs (ids past 100, some
//! failing once or twice, so `requeue` runs), one or two workers and a reporter asking for 1
//! to 3 reports, run under shuttle: the first stage under every schedule up to a budget (a
//! depth-first search), the second under random schedules from a fixed seed. shuttle fails a
//! schedule in which every thread is blocked (a deadlock) and one that runs longer than its
//! step bound (a thread spinning on something that never comes): never a wall-clock timeout.
//! Every `Lock` says on the program's `Log` which lock a thread is about to wait for, and
//! when it holds or releases one; the checks keep, per thread, what it holds, so a deadlock
//! is told as who holds what and waits for what, and its cycle drawn, in the program's names.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex as StdMutex;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::{explore, Explored, Search};
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::sync::Arc;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// One line of the story of the schedule being explored.
struct Line {
    actor: String,
    kind: EventKind,
    msg: Option<u64>,
    note: String,
}

/// What the threads hold and wait for, and what they said. A std mutex, not the checker's:
/// recording must add no thread switches of its own, and it is never held across one.
#[derive(Default)]
struct State {
    lines: Vec<Line>,
    /// Per thread, the locks it holds, in the order it took them.
    holds: BTreeMap<String, Vec<&'static str>>,
    /// Per thread, the lock it said it waits for and has not got yet.
    waits: BTreeMap<String, &'static str>,
    /// Threads in the order they first spoke.
    actors: Vec<String>,
}

#[derive(Clone, Default)]
struct Story {
    state: std::sync::Arc<StdMutex<State>>,
}

/// "`queue`, `stats`", or "nothing".
fn held(locks: &[&'static str]) -> String {
    if locks.is_empty() {
        "nothing".to_owned()
    } else {
        locks.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
    }
}

/// The job a line is about: the number after "job ".
fn job_in(what: &str) -> Option<u64> {
    let rest = &what[what.find("job ")? + 4..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl Story {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn restart(&self) {
        *self.state() = State::default();
    }

    fn line(&self, actor: &str, kind: EventKind, note: impl Into<String>) {
        let note = note.into();
        let mut state = self.state();
        if actor != "check" && !state.actors.iter().any(|known| known == actor) {
            state.actors.push(actor.to_owned());
        }
        state.lines.push(Line { actor: actor.to_owned(), kind, msg: job_in(&note), note });
    }

    /// The program's log, written into this story with what each thread holds.
    fn log(&self) -> Log {
        let story = self.clone();
        Log::new(move |thread, step| story.step(thread, step))
    }

    fn step(&self, thread: &str, step: Step) {
        let thread = if thread == "main-thread" { "main" } else { thread };
        let (kind, note) = {
            let mut state = self.state();
            let holds = state.holds.entry(thread.to_owned()).or_default();
            match step {
                Step::Waits(lock) => {
                    let note = format!("holds {}, waits for `{lock}`", held(holds));
                    state.waits.insert(thread.to_owned(), lock);
                    (EventKind::Note, note)
                }
                Step::Holds(lock) => {
                    holds.push(lock);
                    let note = format!("holds {}", held(holds));
                    state.waits.remove(thread);
                    (EventKind::Process, note)
                }
                // A guard dropped while its thread unwinds from a failed schedule (shuttle
                // panics a thread that locks a mutex it holds) is no part of the story: the
                // report must show what the thread held when it stopped.
                Step::Releases(_) if std::thread::panicking() => return,
                Step::Releases(lock) => {
                    if let Some(at) = holds.iter().rposition(|name| *name == lock) {
                        holds.remove(at);
                    }
                    (EventKind::Ack, format!("releases `{lock}`; holds {}", held(holds)))
                }
                Step::Says(what) => (EventKind::Note, what),
            }
        };
        self.line(thread, kind, note);
    }

    /// Who holds `lock` now.
    fn holder(state: &State, lock: &str) -> Vec<String> {
        state.holds.iter().filter(|(_, locks)| locks.contains(&lock)).map(|(thread, _)| thread.clone()).collect()
    }

    /// The deadlock, in words: each thread waiting for a lock, what it holds, what it waits
    /// for and who holds that; then the cycle they make. None if no thread waits for a lock.
    fn deadlock(&self) -> Option<String> {
        let state = self.state();
        let waiting: Vec<(&String, &&'static str)> =
            state.actors.iter().filter_map(|actor| state.waits.get_key_value(actor)).collect();
        if waiting.is_empty() {
            return None;
        }
        let mut who = Vec::new();
        for (thread, lock) in &waiting {
            let holds = state.holds.get(*thread).map(Vec::as_slice).unwrap_or(&[]);
            let by = Story::holder(&state, lock);
            let by = if by.iter().any(|holder| holder == *thread) {
                "which it holds itself (a mutex is not reentrant)".to_owned()
            } else if by.is_empty() {
                "which nobody holds".to_owned()
            } else {
                format!("held by {}", by.iter().map(|holder| called(holder)).collect::<Vec<_>>().join(" and "))
            };
            who.push(format!("{} holds {} and waits for `{lock}`, {by}", called(thread), held(holds)));
        }
        // Follow "waits for a lock held by" from the first waiting thread until a thread repeats.
        let mut path: Vec<String> = vec![waiting[0].0.clone()];
        let mut cycle = None;
        for _ in 0..=waiting.len() {
            let at = path.last().expect("the path starts with a thread").clone();
            let Some(lock) = state.waits.get(&at) else { break };
            let Some(next) = Story::holder(&state, lock).into_iter().next() else { break };
            if let Some(start) = path.iter().position(|thread| *thread == next) {
                let mut arrows = Vec::new();
                for pair in path[start..].iter().zip(path[start..].iter().skip(1).chain(std::iter::once(&next))) {
                    let lock = state.waits.get(pair.0).copied().unwrap_or("?");
                    arrows.push(format!("{} ─ waits for `{lock}` (held by {}) ─►", pair.0, pair.1));
                }
                cycle = Some(format!("{} {next}", arrows.join(" ")));
                break;
            }
            path.push(next);
        }
        let drawn = match cycle {
            Some(cycle) => format!(": a cycle, {cycle}"),
            None => String::new(),
        };
        Some(format!("deadlock: {}{drawn}. Nothing else will ever happen in this run", who.join("; ")))
    }

    /// What each thread last said, in the order the threads first spoke.
    fn last_lines(&self) -> Vec<String> {
        let state = self.state();
        state
            .actors
            .iter()
            .filter_map(|actor| {
                let last = state.lines.iter().rev().find(|line| line.actor == *actor)?;
                Some(format!("{} {}", called(actor), last.note))
            })
            .collect()
    }

    /// The jobs said completed, in order.
    fn completed(&self) -> Vec<u64> {
        self.state()
            .lines
            .iter()
            .filter(|line| line.note.starts_with("completes job"))
            .filter_map(|line| line.msg)
            .collect()
    }

    /// Records the verdict and fails the schedule with `detail`.
    fn fail(&self, detail: String) -> ! {
        self.line("check", EventKind::Lost, detail.clone());
        panic!("{detail}");
    }

    fn draw_into(&self, trace: &Trace) {
        for line in self.state().lines.iter() {
            let event = trace.event(line.actor.clone(), line.kind).note(line.note.clone());
            match line.msg {
                Some(msg) => event.msg(msg).record(),
                None => event.record(),
            }
        }
    }
}

/// A thread as a sentence names it: "the reporter", but "w1".
fn called(thread: &str) -> String {
    let numbered = thread.len() > 1 && thread[1..].chars().all(|c| c.is_ascii_digit());
    if numbered {
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

/// Runs `test` under the schedules of `search`. On a failure, draws the failing schedule into
/// `trace` and returns what went wrong, in words.
fn search_schedules(search: Search, trace: &Trace, test: impl Fn(&Story) + Send + Sync + 'static) -> Result<Explored, String> {
    let story = Story::default();
    let explored = story.clone();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        explore(search, move || {
            explored.restart();
            test(&explored);
        })
    }));
    // A replay string cannot replay a generated workload: the workload, the search and its
    // seed can, and the check repeats them on every run.
    bughunt_kit::explore::take_replay();
    let payload = match outcome {
        Ok(explored) => return Ok(explored),
        Err(payload) => payload,
    };
    story.draw_into(trace);
    let text = panic_text(payload.as_ref());
    if text.contains("deadlock") {
        let Some(told) = story.deadlock() else {
            return Err(format!(
                "deadlock: every thread still running is blocked, and no thread waits for a \
                 lock: what each thread said last: {}",
                story.last_lines().join("; ")
            ));
        };
        // The report must name every thread of the cycle: a report that does not is the
        // checks' own bug, and says so rather than teach half a story.
        if let Err(gap) = names_every_waiter(&story, &told) {
            return Err(format!("{told} (and a bug in these checks: {gap})"));
        }
        let state = story.state();
        for (thread, lock) in &state.waits {
            let holds = state.holds.get(thread).map(Vec::as_slice).unwrap_or(&[]);
            trace
                .event(thread.clone(), EventKind::Stall)
                .note(format!("stopped here: holds {}, waits for `{lock}`", held(holds)))
                .record();
        }
        return Err(told);
    }
    if text.contains("max_steps") {
        return Err(format!(
            "a schedule ran {} steps without finishing, although every thread that yields let \
             the others run first: some thread keeps trying something that can never succeed. \
             What each thread said last: {}",
            bughunt_kit::explore::STEPS_MAX,
            story.last_lines().join("; ")
        ));
    }
    Err(text)
}

/// The jobs, the workers and the reports asked for.
#[derive(Clone, Debug)]
struct Workload {
    jobs: Vec<Job>,
    workers: usize,
    reports: usize,
}

fn workloads() -> impl Strategy<Value = Workload> {
    (proptest::collection::vec(0u32..3, 1..=5), 100u64..400, 1u64..4, 1usize..=2, 1usize..=3).prop_map(
        |(failures, first, gap, workers, reports)| Workload {
            jobs: failures
                .into_iter()
                .enumerate()
                .map(|(i, failures)| Job { id: first + gap * i as u64, failures })
                .collect(),
            workers,
            reports,
        },
    )
}

fn tell(workload: &Workload) -> String {
    let jobs: Vec<String> = workload
        .jobs
        .iter()
        .map(|job| match job.failures {
            0 => job.id.to_string(),
            1 => format!("{} (fails once)", job.id),
            n => format!("{} (fails {n} times)", job.id),
        })
        .collect();
    format!(
        "job{} {}; {} worker{}; a reporter asking for {} report{}",
        if jobs.len() == 1 { "" } else { "s" },
        jobs.join(", "),
        workload.workers,
        if workload.workers == 1 { "" } else { "s" },
        workload.reports,
        if workload.reports == 1 { "" } else { "s" },
    )
}

/// Pushes the jobs, runs the workers and the reporter to the end, and returns the reports
/// and the final one.
fn run_workload(workload: &Workload, story: &Story) -> (Vec<Report>, Report) {
    let dispatcher = Arc::new(Dispatcher::new(story.log()));
    for job in &workload.jobs {
        dispatcher.push(*job);
    }
    let mut threads = Vec::new();
    for n in 1..=workload.workers {
        let dispatcher = dispatcher.clone();
        let thread = bughunt_kit::thread::Builder::new()
            .name(format!("w{n}"))
            .spawn(move || {
                work(&dispatcher);
                Vec::new()
            })
            .expect("a worker could not start");
        threads.push(thread);
    }
    let reports = workload.reports;
    let reporter = {
        let dispatcher = dispatcher.clone();
        bughunt_kit::thread::Builder::new()
            .name("reporter".into())
            .spawn(move || (0..reports).map(|_| dispatcher.report()).collect::<Vec<Report>>())
            .expect("the reporter could not start")
    };
    threads.push(reporter);
    let mut seen = Vec::new();
    for thread in threads {
        seen.extend(thread.join().expect("a thread panicked"));
    }
    story.line("main", EventKind::Note, "every thread has finished");
    let last = dispatcher.report();
    (seen, last)
}

/// Every job done exactly once, and the last report says so.
fn all_done(workload: &Workload, story: &Story, last: &Report) {
    let completed = story.completed();
    for job in &workload.jobs {
        match completed.iter().filter(|id| **id == job.id).count() {
            1 => {}
            0 => story.fail(format!("every thread finished, and job {} was never completed", job.id)),
            n => story.fail(format!("job {} was completed {n} times", job.id)),
        }
    }
    let jobs = workload.jobs.len() as u64;
    let retries: u64 = workload.jobs.iter().map(|job| u64::from(job.failures)).sum();
    let want = Report { backlog: 0, pushed: jobs, taken: jobs + retries, requeued: retries, done: jobs };
    if *last != want {
        story.fail(format!(
            "after every thread finished, the counters say {last:?}; {jobs} jobs failing {retries} \
             attempts in all make {want:?}"
        ));
    }
}

/// What is wrong with a report, if anything.
fn inconsistent(report: &Report) -> Option<String> {
    let Report { backlog, pushed, taken, requeued, done } = *report;
    if backlog as u64 + taken != pushed + requeued {
        return Some(format!(
            "a report says backlog {backlog} + taken {taken} = {}, and pushed {pushed} + requeued \
             {requeued} = {}: it read the queue and the counters at two different moments",
            backlog as u64 + taken,
            pushed + requeued
        ));
    }
    if done + requeued > taken {
        return Some(format!(
            "a report says done {done} + requeued {requeued} > taken {taken}: more jobs finished \
             than were taken"
        ));
    }
    None
}

fn finishes_holds(search: Search) -> impl Fn(&Workload, &Trace) -> Result<(), String> {
    move |workload, trace| {
        let run = workload.clone();
        search_schedules(search, trace, move |story| {
            let (_, last) = run_workload(&run, story);
            all_done(&run, story, &last);
        })
        .map(|_| ())
        .map_err(|detail| format!("{detail} (found by {})", search.describe()))
    }
}

fn consistent_holds(search: Search) -> impl Fn(&Workload, &Trace) -> Result<(), String> {
    move |workload, trace| {
        let run = workload.clone();
        search_schedules(search, trace, move |story| {
            let (reports, last) = run_workload(&run, story);
            all_done(&run, story, &last);
            for report in &reports {
                if let Some(wrong) = inconsistent(report) {
                    story.fail(wrong);
                }
            }
        })
        .map(|_| ())
        .map_err(|detail| format!("{detail} (found by {})", search.describe()))
    }
}

const FINISH_WORKLOADS: u32 = 10;
const FINISH_SEARCH: Search = Search::Random { seed: 0x6465_6164, schedules: 48 };
const CONSISTENT_WORKLOADS: u32 = 10;
const CONSISTENT_SEARCH: Search = Search::Random { seed: 0x636f_6e73, schedules: 48 };

fn every_schedule_finishes(ctx: &mut Ctx) {
    prop::for_all(ctx, "every schedule finishes, every job done once", FINISH_WORKLOADS, workloads(), tell, finishes_holds(FINISH_SEARCH));
    ctx.replay(format!("{FINISH_WORKLOADS} generated workloads, each under {}", FINISH_SEARCH.describe()));
}

fn reports_consistent(ctx: &mut Ctx) {
    prop::for_all(ctx, "every report is one consistent moment", CONSISTENT_WORKLOADS, workloads(), tell, consistent_holds(CONSISTENT_SEARCH));
    ctx.replay(format!("{CONSISTENT_WORKLOADS} generated workloads, each under {}", CONSISTENT_SEARCH.describe()));
}

#[test]
fn checks() {
    run_stages(
        "queue-and-stats",
        &[
            Stage {
                id: "every-schedule-finishes",
                title: "Under every schedule, the workers and the reporter finish, every job done once",
                mentor: "Some schedule stopped for good: the story below ends with each \
                         blocked thread, what it holds and what it waits for. Which locks does \
                         each path take, and in which order? Two paths that take the same two \
                         locks in opposite orders can each hold one and wait for the other. A \
                         helper called with a lock held takes its own locks in that order too. \
                         (A timer is no way out: these checks explore schedules, not time.)",
                run: every_schedule_finishes,
            },
            Stage {
                id: "reports-consistent",
                title: "Every report is one consistent moment of the queue and its counters",
                mentor: "No schedule hangs, and a report mixed two moments: the backlog and \
                         the counters it shows were never true together. Between the two \
                         reads (or the two writes) of that run, which thread changed the \
                         queue or the counters? What would have to be held for the report to \
                         see both at once, and in which order?",
                run: reports_consistent,
            },
        ],
    );
}

/// Whether `told` names every waiting thread, what it holds and what it waits for.
fn names_every_waiter(story: &Story, told: &str) -> Result<(), String> {
    let state = story.state();
    for (thread, lock) in &state.waits {
        let holds = state.holds.get(thread).map(Vec::as_slice).unwrap_or(&[]);
        let part = format!("{} holds {} and waits for `{lock}`", called(thread), held(holds));
        if !told.contains(&part) {
            return Err(format!("the deadlock report \"{told}\" does not say \"{part}\""));
        }
    }
    Ok(())
}

/// The deadlock report names every thread of the cycle, what it holds and what it waits for,
/// and draws the cycle.
#[test]
fn deadlock_report_names_the_cycle() {
    let story = Story::default();
    for (thread, step) in [
        ("w1", Step::Waits("queue")),
        ("w1", Step::Holds("queue")),
        ("reporter", Step::Waits("stats")),
        ("reporter", Step::Holds("stats")),
        ("w1", Step::Waits("stats")),
        ("reporter", Step::Waits("queue")),
    ] {
        story.step(thread, step);
    }
    let told = story.deadlock().unwrap_or_default();
    names_every_waiter(&story, &told).unwrap();
    for part in [
        "w1 holds `queue` and waits for `stats`, held by the reporter",
        "the reporter holds `stats` and waits for `queue`, held by w1",
        "a cycle, w1 ─ waits for `stats` (held by reporter) ─► reporter ─ waits for `queue` (held by w1) ─► w1",
    ] {
        assert!(told.contains(part), "the deadlock report \"{told}\" does not say \"{part}\"");
    }
    let story = Story::default();
    for step in [Step::Waits("queue"), Step::Holds("queue"), Step::Waits("queue")] {
        story.step("w2", step);
    }
    let told = story.deadlock().unwrap_or_default();
    assert!(
        told.contains("w2 holds `queue` and waits for `queue`, which it holds itself"),
        "the deadlock report \"{told}\" does not say that w2 waits for the lock it holds"
    );
}
