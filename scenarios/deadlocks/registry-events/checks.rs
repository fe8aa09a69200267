//! Checks for `registry-events`: every change's event is handled exactly once, in order, and
//! nobody waits forever, for bursts of changes within and past the capacity of `events`.
//!
//! Each stage is a property over generated workloads: a capacity of 1, 2, 3 or 5 for
//! `events`, and a run of changes (joins, updates, leaves, a batch of leaves; ids past 100)
//! whose events stay within that capacity (first stage, every schedule up to a budget: a
//! depth-first search) or go past it, up to twice it and six more (second stage, PCT
//! schedules from a fixed seed: random priorities, so one thread can be starved long). The
//! publisher is the thread that calls `Membership`; the handler is the program's. shuttle
//! fails a schedule in which every thread is blocked (a deadlock) and one that runs longer
//! than its step bound: never a wall-clock timeout. Every `Lock` says which lock a thread is
//! about to wait for, holds and releases, and every send and receive on `events` is said
//! first; the checks keep, per thread, what it holds and waits for, so a deadlock is told as
//! who holds what and waits for what (a lock, or room on the channel that only its receiver
//! makes), with the cycle drawn, in the program's names.

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
    /// Per thread, the channel and event it said it waits to send and has not sent yet.
    sending: BTreeMap<String, (&'static str, u64)>,
    /// Per thread, the channel it said it waits to receive from.
    receiving: BTreeMap<String, &'static str>,
    /// Per channel, the thread that receives from it.
    receivers: BTreeMap<&'static str, String>,
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

/// The thread that calls `Membership` (the checks' main thread).
const PUBLISHER: &str = "publisher";

/// The event a line is about: the number after "event ".
fn job_in(what: &str) -> Option<u64> {
    let rest = &what[what.find("event ")? + 6..];
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
        let thread = if thread == "main-thread" { PUBLISHER } else { thread };
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
                Step::WaitsToSend(channel, seq) => {
                    let note = format!("holds {}, waits to send event {seq} on `{channel}`", held(holds));
                    state.sending.insert(thread.to_owned(), (channel, seq));
                    (EventKind::Send, note)
                }
                Step::Sent(channel, seq) => {
                    state.sending.remove(thread);
                    (EventKind::Note, format!("sent event {seq} on `{channel}`"))
                }
                Step::WaitsToReceive(channel) => {
                    let note = format!("holds {}, waits for an event on `{channel}`", held(holds));
                    state.receiving.insert(thread.to_owned(), channel);
                    state.receivers.insert(channel, thread.to_owned());
                    (EventKind::Note, note)
                }
                Step::Received(channel, seq) => {
                    state.receiving.remove(thread);
                    (EventKind::Deliver, format!("received event {seq} from `{channel}`"))
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

    /// What `thread` waits for, and the thread that could end the wait: the holder of the
    /// lock it waits for, or the receiver of the channel it waits to send on.
    fn blocked_on(state: &State, thread: &str) -> Option<(String, Option<String>)> {
        if let Some(lock) = state.waits.get(thread) {
            let by = Story::holder(state, lock).into_iter().next();
            return Some((format!("`{lock}`"), by));
        }
        if let Some((channel, seq)) = state.sending.get(thread) {
            let by = state.receivers.get(channel).cloned();
            return Some((format!("room on `{channel}` for event {seq}"), by));
        }
        None
    }

    /// The deadlock, in words: each thread waiting for a lock or to send, what it holds, what
    /// it waits for and who could end that wait; then the cycle they make. None if no thread
    /// waits for a lock or to send.
    fn deadlock(&self) -> Option<String> {
        let state = self.state();
        let waiting: Vec<String> = state
            .actors
            .iter()
            .filter(|actor| state.waits.contains_key(*actor) || state.sending.contains_key(*actor))
            .cloned()
            .collect();
        if waiting.is_empty() {
            return None;
        }
        let mut who = Vec::new();
        for thread in &waiting {
            let holds = state.holds.get(thread).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(lock) = state.waits.get(thread) {
                let by = Story::holder(&state, lock);
                let by = if by.iter().any(|holder| holder == thread) {
                    "which it holds itself".to_owned()
                } else if by.is_empty() {
                    "which nobody holds".to_owned()
                } else {
                    format!("held by {}", by.iter().map(|holder| called(holder)).collect::<Vec<_>>().join(" and "))
                };
                who.push(format!("{} holds {} and waits for `{lock}`, {by}", called(thread), held(holds)));
            } else if let Some((channel, seq)) = state.sending.get(thread) {
                let by = match state.receivers.get(channel) {
                    Some(receiver) => format!("which only {} makes, by receiving", called(receiver)),
                    None => "and nobody receives from it".to_owned(),
                };
                who.push(format!(
                    "{} holds {} and waits to send event {seq} on `{channel}`, which is full: it needs room, {by}",
                    called(thread),
                    held(holds)
                ));
            }
        }
        for (thread, channel) in &state.receiving {
            if !waiting.contains(thread) {
                who.push(format!("{} waits for an event on `{channel}`", called(thread)));
            }
        }
        // Follow "waits for something only X can give" from the first waiting thread until a
        // thread repeats.
        let mut path: Vec<String> = vec![waiting[0].clone()];
        let mut cycle = None;
        for _ in 0..=waiting.len() {
            let at = path.last().expect("the path starts with a thread").clone();
            let Some((what, Some(next))) = Story::blocked_on(&state, &at) else { break };
            let _ = what;
            if let Some(start) = path.iter().position(|thread| *thread == next) {
                let mut arrows = Vec::new();
                let ring: Vec<&String> = path[start..].iter().chain(std::iter::once(&next)).collect();
                for pair in ring.windows(2) {
                    let (what, _) = Story::blocked_on(&state, pair[0]).unwrap_or_default();
                    arrows.push(format!("{} ─ waits for {what} (from {}) ─►", pair[0], pair[1]));
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
        for thread in state.waits.keys().chain(state.sending.keys()) {
            let holds = state.holds.get(thread).map(Vec::as_slice).unwrap_or(&[]);
            let (what, _) = Story::blocked_on(&state, thread).unwrap_or_default();
            trace
                .event(thread.clone(), EventKind::Stall)
                .note(format!("stopped here: holds {}, waits for {what}", held(holds)))
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

/// One change the publisher makes.
#[derive(Clone, Debug)]
enum Op {
    Join(u64),
    Update(u64),
    Leave(u64),
    LeaveAll(Vec<u64>),
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Join(id) => write!(f, "{id} joins"),
            Op::Update(id) => write!(f, "{id} is updated"),
            Op::Leave(id) => write!(f, "{id} leaves"),
            Op::LeaveAll(ids) => {
                let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
                write!(f, "{} leave together", ids.join(", "))
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Workload {
    capacity: usize,
    ops: Vec<Op>,
}

/// What the registry must end with, and the events it must have handled, in order.
fn model(ops: &[Op]) -> (BTreeMap<u64, u64>, Vec<Event>) {
    let mut members = BTreeMap::new();
    let mut events = Vec::new();
    let mut event = |member, change| {
        let seq = events.len() as u64 + 1;
        events.push(Event { seq, member, change });
    };
    for op in ops {
        match op {
            Op::Join(id) => {
                members.insert(*id, 1);
                event(*id, Change::Joined);
            }
            Op::Update(id) => {
                if let Some(version) = members.get_mut(id) {
                    *version += 1;
                    event(*id, Change::Updated);
                }
            }
            Op::Leave(id) => {
                if members.remove(id).is_some() {
                    event(*id, Change::Left);
                }
            }
            Op::LeaveAll(ids) => {
                for id in ids {
                    if members.remove(id).is_some() {
                        event(*id, Change::Left);
                    }
                }
            }
        }
    }
    (members, events)
}

/// Runs of changes on members 100.., each producing between `events.start()` and
/// `events.end()` events (by the model).
fn workloads(events: fn(usize) -> std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Workload> {
    let op = |base: u64| {
        let id = (0u64..4).prop_map(move |i| base + i * 7);
        prop_oneof![
            3 => id.clone().prop_map(Op::Join),
            2 => id.clone().prop_map(Op::Update),
            1 => id.clone().prop_map(Op::Leave),
            2 => proptest::collection::vec(id, 2..=4).prop_map(|mut ids| {
                ids.sort_unstable();
                ids.dedup();
                Op::LeaveAll(ids)
            }),
        ]
    };
    (proptest::sample::select(vec![1usize, 2, 3, 5]), 100u64..300)
        .prop_flat_map(move |(capacity, base)| (Just(capacity), proptest::collection::vec(op(base), events(capacity))))
        .prop_map(|(capacity, ops)| Workload { capacity, ops })
        .prop_filter("events in the range of the stage", move |workload| {
            events(workload.capacity).contains(&model(&workload.ops).1.len())
        })
}

fn tell(workload: &Workload) -> String {
    let (_, events) = model(&workload.ops);
    format!(
        "`events` holds {}; the publisher makes {} change{} ({} event{}): {}",
        workload.capacity,
        workload.ops.len(),
        if workload.ops.len() == 1 { "" } else { "s" },
        events.len(),
        if events.len() == 1 { "" } else { "s" },
        prop::numbered(&workload.ops)
    )
}

fn run_workload(workload: &Workload, story: &Story) {
    let membership = Membership::new(workload.capacity, story.log());
    for op in &workload.ops {
        match op {
            Op::Join(id) => membership.join(*id),
            Op::Update(id) => membership.update(*id),
            Op::Leave(id) => membership.leave(*id),
            Op::LeaveAll(ids) => membership.leave_all(ids),
        }
    }
    let registry = membership.close();
    story.line(PUBLISHER, EventKind::Note, "close returned");
    let (members, events) = model(&workload.ops);
    for want in &events {
        let seen: Vec<usize> =
            registry.handled.iter().enumerate().filter(|(_, event)| *event == want).map(|(at, _)| at).collect();
        match seen.as_slice() {
            [] => story.fail(format!(
                "event {} ({:?} of member {}) was never handled: the handler saw {} of {} events",
                want.seq,
                want.change,
                want.member,
                registry.handled.len(),
                events.len()
            )),
            [_] => {}
            many => story.fail(format!("event {} was handled {} times", want.seq, many.len())),
        }
    }
    if registry.handled != events {
        let got: Vec<String> = registry.handled.iter().map(|event| event.seq.to_string()).collect();
        story.fail(format!(
            "the handler saw events in the order {}, and they happened in the order 1 to {}",
            got.join(", "),
            events.len()
        ));
    }
    if registry.members != members {
        story.fail(format!(
            "after close, the registry holds {:?}; the changes make {:?}",
            registry.members, members
        ));
    }
}

fn handled_holds(search: Search) -> impl Fn(&Workload, &Trace) -> Result<(), String> {
    move |workload, trace| {
        let run = workload.clone();
        search_schedules(search, trace, move |story| run_workload(&run, story))
            .map(|_| ())
            .map_err(|detail| format!("{detail} (found by {})", search.describe()))
    }
}

/// At most as many events as `events` holds.
fn within(capacity: usize) -> std::ops::RangeInclusive<usize> {
    1..=capacity
}

/// More events than `events` holds: one more, up to twice as many and six more.
fn past(capacity: usize) -> std::ops::RangeInclusive<usize> {
    capacity + 1..=2 * capacity + 6
}

const WITHIN_WORKLOADS: u32 = 8;
const WITHIN_SEARCH: Search = Search::Exhaustive { schedules_max: 150 };
const PAST_WORKLOADS: u32 = 12;
const PAST_SEARCH: Search = Search::Pct { seed: 0x6574_6364, depth: 3, schedules: 32 };

fn within_capacity(ctx: &mut Ctx) {
    prop::for_all(ctx, "events within the capacity are each handled once, in order", WITHIN_WORKLOADS, workloads(within), tell, handled_holds(WITHIN_SEARCH));
    ctx.replay(format!("{WITHIN_WORKLOADS} generated workloads, each under {}", WITHIN_SEARCH.describe()));
}

fn past_capacity(ctx: &mut Ctx) {
    prop::for_all(ctx, "bursts past the capacity are each handled once, in order", PAST_WORKLOADS, workloads(past), tell, handled_holds(PAST_SEARCH));
    ctx.replay(format!("{PAST_WORKLOADS} generated workloads, each under {}", PAST_SEARCH.describe()));
}

#[test]
fn checks() {
    run_stages(
        "registry-events",
        &[
            Stage {
                id: "events-within-capacity-handled",
                title: "Changes whose events fit in `events` are each handled once, in order",
                mentor: "Even a burst of changes that fits in `events` did not come out as \
                         promised: every event handled once, in the order of the changes, \
                         and the registry right after close. Is any event thrown away on the \
                         way, or skipped by the handler? Does anything give up instead of \
                         waiting? (A timer is no way out: these checks explore schedules, not \
                         time.)",
                run: within_capacity,
            },
            Stage {
                id: "bursts-past-capacity-handled",
                title: "Bursts of changes past the capacity of `events` are each handled once, in order",
                mentor: "Small bursts go through; a burst larger than `events` holds did not \
                         (the story below ends with each blocked thread, what it holds and \
                         what it waits for). When `events` is full the publisher waits for \
                         the handler to receive; what does the handler need before it can \
                         receive the next event, and who holds it at that moment? A bigger \
                         buffer only moves the hang to a bigger burst.",
                run: past_capacity,
            },
        ],
    );
}

/// Whether `told` names every blocked thread, what it holds and what it waits for.
fn names_every_waiter(story: &Story, told: &str) -> Result<(), String> {
    let state = story.state();
    for (thread, lock) in &state.waits {
        let holds = state.holds.get(thread).map(Vec::as_slice).unwrap_or(&[]);
        let part = format!("{} holds {} and waits for `{lock}`", called(thread), held(holds));
        if !told.contains(&part) {
            return Err(format!("the deadlock report \"{told}\" does not say \"{part}\""));
        }
    }
    for (thread, (channel, seq)) in &state.sending {
        let holds = state.holds.get(thread).map(Vec::as_slice).unwrap_or(&[]);
        let part = format!("{} holds {} and waits to send event {seq} on `{channel}`", called(thread), held(holds));
        if !told.contains(&part) {
            return Err(format!("the deadlock report \"{told}\" does not say \"{part}\""));
        }
    }
    Ok(())
}

/// The deadlock report names both threads of the lock-and-channel cycle, what each holds and
/// what each waits for, and draws the cycle.
#[test]
fn deadlock_report_names_the_cycle() {
    let story = Story::default();
    for (thread, step) in [
        (HANDLER, Step::WaitsToReceive("events")),
        ("publisher", Step::Waits("registry")),
        ("publisher", Step::Holds("registry")),
        ("publisher", Step::WaitsToSend("events", 3)),
        (HANDLER, Step::Received("events", 1)),
        (HANDLER, Step::Waits("registry")),
    ] {
        story.step(thread, step);
    }
    let told = story.deadlock().unwrap_or_default();
    names_every_waiter(&story, &told).unwrap();
    for part in [
        "the publisher holds `registry` and waits to send event 3 on `events`, which is full: it needs room, which only the handler makes",
        "the handler holds nothing and waits for `registry`, held by the publisher",
        "a cycle, ",
        "publisher ─ waits for room on `events` for event 3 (from handler) ─►",
        "handler ─ waits for `registry` (from publisher) ─►",
    ] {
        assert!(told.contains(part), "the deadlock report \"{told}\" does not say \"{part}\"");
    }
}
