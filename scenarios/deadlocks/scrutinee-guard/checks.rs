//! Checks for `scrutinee-guard`: one consumer, then two, settle every message exactly once,
//! with the attempts it really had, and nobody waits forever.
//!
//! Each stage is a property over generated workloads: a `max_attempts` of 2 to 4, 1 to 6
//! messages (ids past 100) each failing 0 to `max_attempts + 1` times (so some are retried
//! more than once and some dead-lettered), run under shuttle: one consumer (its one schedule:
//! a guard that outlives its statement deadlocks a thread with itself, in any schedule), then
//! two consumers sharing the tracker under random schedules from a fixed seed. shuttle fails a
//! schedule in which a thread waits for a lock it holds itself or every thread is blocked (a
//! deadlock), and one that runs longer than its step bound: never a wall-clock timeout.
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

/// The message a line is about: the number after "message ".
fn job_in(what: &str) -> Option<u64> {
    let rest = &what[what.find("message ")? + 8..];
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
                "which it holds itself: a guard from its earlier lock is still alive, and a mutex is not reentrant".to_owned()
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

/// A thread as a sentence names it: "the main thread", but "c1".
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

/// The tracker's limit, the messages and how often each fails, and how they are dealt.
#[derive(Clone, Debug)]
struct Workload {
    max_attempts: u32,
    /// (message id, failing attempts before one succeeds).
    messages: Vec<(u64, u32)>,
    consumers: usize,
}

fn workloads(consumers: usize) -> impl Strategy<Value = Workload> {
    (2u32..=4, 100u64..400, 1u64..4)
        .prop_flat_map(move |(max_attempts, first, gap)| {
            (Just((max_attempts, first, gap)), proptest::collection::vec(0..=max_attempts + 1, 1..=6))
        })
        .prop_map(move |((max_attempts, first, gap), failures)| Workload {
            max_attempts,
            messages: failures.into_iter().enumerate().map(|(i, fails)| (first + gap * i as u64, fails)).collect(),
            consumers,
        })
}

fn tell(workload: &Workload) -> String {
    let messages: Vec<String> = workload
        .messages
        .iter()
        .map(|(id, fails)| match fails {
            0 => format!("{id}"),
            1 => format!("{id} (fails once)"),
            n => format!("{id} (fails {n} times)"),
        })
        .collect();
    format!(
        "max_attempts {}; message{} {}; {} consumer{}",
        workload.max_attempts,
        if messages.len() == 1 { "" } else { "s" },
        messages.join(", "),
        workload.consumers,
        if workload.consumers == 1 { "" } else { "s" },
    )
}

/// Deals the messages to the consumers, runs them to the end and checks what was settled.
fn run_workload(workload: &Workload, story: &Story) {
    let tracker = Arc::new(Tracker::new(workload.max_attempts, story.log()));
    let fails: std::sync::Arc<BTreeMap<u64, u32>> = std::sync::Arc::new(workload.messages.iter().copied().collect());
    let mut threads = Vec::new();
    for n in 0..workload.consumers {
        let mine: Vec<u64> = workload
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| i % workload.consumers == n)
            .map(|(_, (id, _))| *id)
            .collect();
        let tracker = tracker.clone();
        let fails = fails.clone();
        threads.push(
            bughunt_kit::thread::Builder::new()
                .name(format!("c{}", n + 1))
                .spawn(move || consume(&tracker, &mine, move |id, attempt| attempt > fails.get(&id).copied().unwrap_or(0)))
                .expect("a consumer could not start"),
        );
    }
    for thread in threads {
        thread.join().expect("a consumer panicked");
    }
    story.line("main", EventKind::Note, "every consumer has finished");
    let settled = tracker.settled();
    for &(id, fails) in &workload.messages {
        let (attempts, dead) = if fails >= workload.max_attempts {
            (workload.max_attempts, true)
        } else {
            (fails + 1, false)
        };
        let how = |dead: bool| if dead { "dead-lettered" } else { "acked" };
        let theirs: Vec<&Settled> = settled.iter().filter(|s| s.id == id).collect();
        match theirs.as_slice() {
            [] => story.fail(format!("every consumer finished, and message {id} was never settled")),
            [one] if one.attempts != attempts || one.dead != dead => story.fail(format!(
                "message {id} was {} after {} attempts; failing {fails} times with max_attempts {}, \
                 it had to be {} after {attempts}",
                how(one.dead),
                one.attempts,
                workload.max_attempts,
                how(dead)
            )),
            [_] => {}
            many => story.fail(format!("message {id} was settled {} times", many.len())),
        }
    }
    let left = tracker.unsettled();
    if !left.is_empty() {
        let left: Vec<String> = left.iter().map(u64::to_string).collect();
        story.fail(format!(
            "every message was settled, and the tracker still counts attempts for message{} {}: \
             a settled message must leave `attempts`",
            if left.len() == 1 { "" } else { "s" },
            left.join(", ")
        ));
    }
    let waiting = tracker.retries_waiting();
    if waiting > 0 {
        story.fail(format!("every consumer finished, and {waiting} retries are still waiting in `retry`"));
    }
}

fn settles_holds(search: Search) -> impl Fn(&Workload, &Trace) -> Result<(), String> {
    move |workload, trace| {
        let run = workload.clone();
        search_schedules(search, trace, move |story| run_workload(&run, story))
            .map(|_| ())
            .map_err(|detail| format!("{detail} (found by {})", search.describe()))
    }
}

const ONE_WORKLOADS: u32 = 16;
const ONE_SEARCH: Search = Search::Exhaustive { schedules_max: 50 };
const TWO_WORKLOADS: u32 = 12;
const TWO_SEARCH: Search = Search::Random { seed: 0x7363_7275, schedules: 32 };

fn one_consumer(ctx: &mut Ctx) {
    prop::for_all(ctx, "one consumer settles every message", ONE_WORKLOADS, workloads(1), tell, settles_holds(ONE_SEARCH));
    ctx.replay(format!("{ONE_WORKLOADS} generated workloads, each under {}", ONE_SEARCH.describe()));
}

fn two_consumers(ctx: &mut Ctx) {
    prop::for_all(ctx, "two consumers settle every message", TWO_WORKLOADS, workloads(2), tell, settles_holds(TWO_SEARCH));
    ctx.replay(format!("{TWO_WORKLOADS} generated workloads, each under {}", TWO_SEARCH.describe()));
}

#[test]
fn checks() {
    run_stages(
        "scrutinee-guard",
        &[
            Stage {
                id: "one-consumer-settles-everything",
                title: "One consumer settles every message, with the attempts it had",
                mentor: "Even one consumer alone did not get through its messages as \
                         promised: the story below ends where it stopped. If it waits for a \
                         lock it holds itself, where was that guard made, and when is it \
                         dropped? A guard made inside a `match`, `if let` or `while let` \
                         scrutinee is a temporary: in edition 2021 it lives to the end of the \
                         whole `match`, `if let ... else` or loop body, not to the end of the \
                         line. If nothing hangs, look at what was settled and what was left \
                         behind.",
                run: one_consumer,
            },
            Stage {
                id: "two-consumers-settle-everything",
                title: "Two consumers sharing the tracker settle every message, with the attempts it had",
                mentor: "One consumer alone is fine; two sharing the tracker are not. Between \
                         the moment a consumer reads the counts and the moment it writes them \
                         back, what can the other consumer change, and is that change kept? \
                         Releasing a guard early is only safe if nothing you decided under it \
                         is written back after.",
                run: two_consumers,
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
        ("c1", Step::Waits("retry")),
        ("c1", Step::Holds("retry")),
        ("c2", Step::Waits("attempts")),
        ("c2", Step::Holds("attempts")),
        ("c1", Step::Waits("attempts")),
        ("c2", Step::Waits("retry")),
    ] {
        story.step(thread, step);
    }
    let told = story.deadlock().unwrap_or_default();
    names_every_waiter(&story, &told).unwrap();
    for part in [
        "c1 holds `retry` and waits for `attempts`, held by c2",
        "c2 holds `attempts` and waits for `retry`, held by c1",
        "a cycle, c1 ─ waits for `attempts` (held by c2) ─► c2 ─ waits for `retry` (held by c1) ─► c1",
    ] {
        assert!(told.contains(part), "the deadlock report \"{told}\" does not say \"{part}\"");
    }
    let story = Story::default();
    for step in [Step::Waits("attempts"), Step::Holds("attempts"), Step::Waits("attempts")] {
        story.step("c1", step);
    }
    let told = story.deadlock().unwrap_or_default();
    names_every_waiter(&story, &told).unwrap();
    assert!(
        told.contains("c1 holds `attempts` and waits for `attempts`, which it holds itself"),
        "the deadlock report \"{told}\" does not say that c1 waits for the lock it holds"
    );
}
