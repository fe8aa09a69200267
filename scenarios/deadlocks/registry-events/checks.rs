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

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::Search;
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::story::{self, Story, Voice};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// The thread that calls `Membership` (the checks' main thread).
const PUBLISHER: &str = "publisher";

/// The checks' own thread is the publisher; a line is about the event it names.
const VOICE: Voice = Voice { item: "event", ..Voice::new(PUBLISHER) };

/// The program's log, written into `story` with what each thread holds and waits for.
fn log(story: &Story) -> Log {
    let story = story.clone();
    Log::new(move |thread, step| match step {
        Step::Waits(lock) => story.waits(thread, lock),
        Step::Holds(lock) => story.holds(thread, lock),
        Step::Releases(lock) => story.releases(thread, lock),
        Step::WaitsToSend(channel, seq) => story.waits_to_send(thread, channel, seq),
        Step::Sent(channel, seq) => story.sent(thread, channel, seq),
        Step::WaitsToReceive(channel) => story.waits_to_receive(thread, channel),
        Step::Received(channel, seq) => story.received(thread, channel, seq),
        Step::Says(what) => story.said(thread, what),
    })
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
    let membership = Membership::new(workload.capacity, log(story));
    for op in &workload.ops {
        match op {
            Op::Join(id) => membership.join(*id),
            Op::Update(id) => membership.update(*id),
            Op::Leave(id) => membership.leave(*id),
            Op::LeaveAll(ids) => membership.leave_all(ids),
        }
    }
    let registry = membership.close();
    story.line(PUBLISHER, EventKind::Note, None, "close returned");
    let (members, events) = model(&workload.ops);
    for want in &events {
        let seen: Vec<usize> =
            registry.handled.iter().enumerate().filter(|(_, event)| *event == want).map(|(at, _)| at).collect();
        match seen.as_slice() {
            [] => story.fail(None, format!(
                "event {} ({:?} of member {}) was never handled: the handler saw {} of {} events",
                want.seq,
                want.change,
                want.member,
                registry.handled.len(),
                events.len()
            )),
            [_] => {}
            many => story.fail(None, format!("event {} was handled {} times", want.seq, many.len())),
        }
    }
    if registry.handled != events {
        let got: Vec<String> = registry.handled.iter().map(|event| event.seq.to_string()).collect();
        story.fail(None, format!(
            "the handler saw events in the order {}, and they happened in the order 1 to {}",
            got.join(", "),
            events.len()
        ));
    }
    if registry.members != members {
        story.fail(None, format!(
            "after close, the registry holds {:?}; the changes make {:?}",
            registry.members, members
        ));
    }
}

fn handled_holds(search: Search) -> impl Fn(&Workload, &Trace) -> Result<(), String> {
    move |workload, trace| {
        let run = workload.clone();
        story::search_schedules(VOICE, search, trace, move |story| run_workload(&run, story))
            .map(|_| ())
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
                         come out as promised (the story below says how). If it ends with \
                         blocked threads, what each holds and what it waits for: when `events` \
                         is full the publisher waits for the handler to receive; what does the \
                         handler need before it can receive the next event, and who holds it \
                         at that moment? A bigger buffer only moves the hang to a bigger burst. \
                         If the events came out of order: what decides the order in which they \
                         reach `events`?",
                run: past_capacity,
            },
        ],
    );
}
