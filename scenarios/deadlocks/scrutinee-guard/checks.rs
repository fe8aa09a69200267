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

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::Search;
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::story::{self, Story, Voice};
use bughunt_kit::sync::Arc;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// The checks' own thread is "main"; a line is about the message it names.
const VOICE: Voice = Voice { item: "message", ..Voice::new("main") };

/// The program's log, written into `story` with what each thread holds and waits for.
fn log(story: &Story) -> Log {
    let story = story.clone();
    Log::new(move |thread, step| match step {
        Step::Waits(lock) => story.waits(thread, lock),
        Step::Holds(lock) => story.holds(thread, lock),
        Step::Releases(lock) => story.releases(thread, lock),
        Step::Says(what) => story.said(thread, what),
    })
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
    let tracker = Arc::new(Tracker::new(workload.max_attempts, log(story)));
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
    story.line("main", EventKind::Note, None, "every consumer has finished");
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
            [] => story.fail(None, format!("every consumer finished, and message {id} was never settled")),
            [one] if one.attempts != attempts || one.dead != dead => story.fail(None, format!(
                "message {id} was {} after {} attempts; failing {fails} times with max_attempts {}, \
                 it had to be {} after {attempts}",
                how(one.dead),
                one.attempts,
                workload.max_attempts,
                how(dead)
            )),
            [_] => {}
            many => story.fail(None, format!("message {id} was settled {} times", many.len())),
        }
    }
    let left = tracker.unsettled();
    if !left.is_empty() {
        let left: Vec<String> = left.iter().map(u64::to_string).collect();
        story.fail(None, format!(
            "every message was settled, and the tracker still counts attempts for message{} {}: \
             a settled message must leave `attempts`",
            if left.len() == 1 { "" } else { "s" },
            left.join(", ")
        ));
    }
    let waiting = tracker.retries_waiting();
    if waiting > 0 {
        story.fail(None, format!("every consumer finished, and {waiting} retries are still waiting in `retry`"));
    }
}

fn settles_holds(search: Search) -> impl Fn(&Workload, &Trace) -> Result<(), String> {
    move |workload, trace| {
        let run = workload.clone();
        story::search_schedules(VOICE, search, trace, move |story| run_workload(&run, story))
            .map(|_| ())
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
