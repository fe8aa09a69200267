//! Checks for `rebalance-barrier`: every thread leaves the barrier, and none leaves it before
//! every consumer has filed its report, for every plan and every schedule.
//!
//! Each stage is a property over generated plans (one to three consumers, revokes that commit
//! or fail, generations past 100), each plan run under every schedule shuttle's depth-first
//! search finds (up to a budget). shuttle fails a schedule in which every thread is blocked
//! (a deadlock); the program's `Log` says, before each call that can block, what the thread
//! waits for, so a deadlock is told as where each blocked thread stopped, in the program's
//! own words. What each thread saw when it left the barrier is in `Outcome::seen`: the
//! checks assert it, not only that the program ended. Never a wall-clock timeout.

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::Search;
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::story::{self, called, Story, Voice};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// Lines are about no one message; a thread that says "left…" has left the barrier.
const VOICE: Voice = Voice {
    item: "",
    kind: |what| {
        if what.contains("waits") {
            EventKind::Stall
        } else if what.starts_with("revokes") {
            EventKind::Ack
        } else if what.starts_with("left") {
            EventKind::Deliver
        } else {
            EventKind::Note
        }
    },
    finished: |what| what.starts_with("left"),
    finished_as: "had already left the barrier",
    ..Voice::channels(COORDINATOR)
};

/// The program's log, written into `story`.
fn log(story: &Story) -> Log {
    let story = story.clone();
    Log::new(move |thread, what| story.said(thread, what))
}

/// A plan to run: the consumers' revokes and the generation the group is in.
#[derive(Clone, Debug)]
struct Plan {
    revokes: Vec<Revoke>,
    generation: u64,
}

/// What a stage asserts about one run's outcome.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Promise {
    /// Only that every thread left and `rebalance` returned its result.
    Returns,
    /// Also that every thread saw every report when it left the barrier.
    NobodyEarly,
}

/// Runs `plan` through `rebalance` and checks what it returned.
fn run_plan(plan: &Plan, promise: Promise, story: &Story) {
    let outcome = rebalance(&plan.revokes, plan.generation, &log(story));
    let consumers = plan.revokes.len();
    story.line(COORDINATOR, EventKind::Note, None, format!("rebalance returned {:?}", outcome.result));
    let failed: Vec<String> = (0..consumers)
        .filter(|&index| plan.revokes[index] == Revoke::Fails)
        .map(consumer_name)
        .collect();
    match &outcome.result {
        Ok(generation) if failed.is_empty() && *generation == plan.generation + 1 => {}
        Ok(generation) if failed.is_empty() => story.fail(None, format!(
            "rebalance moved the group from generation {} to {generation}; the next generation is {}",
            plan.generation,
            plan.generation + 1
        )),
        Ok(generation) => story.fail(None, format!(
            "the revoke of {} failed, and rebalance still started generation {generation}: it must return Err naming them",
            failed.join(", ")
        )),
        Err(names) => {
            let mut names = names.clone();
            names.sort();
            let mut expected = failed.clone();
            expected.sort();
            if failed.is_empty() {
                story.fail(None, format!("every revoke committed, and rebalance returned Err({names:?})"));
            }
            if names != expected {
                story.fail(None, format!(
                    "the revoke of {} failed, and rebalance reported {names:?}",
                    failed.join(", ")
                ));
            }
        }
    }
    let mut threads: Vec<String> = (0..consumers).map(consumer_name).collect();
    threads.push(COORDINATOR.to_owned());
    for thread in &threads {
        let count = outcome.seen.iter().filter(|seen| &seen.thread == thread).count();
        if count != 1 {
            story.fail(None, format!(
                "Outcome::seen has {count} entries for {}: every thread leaves the barrier exactly once",
                called(thread)
            ));
        }
    }
    if promise == Promise::Returns {
        return;
    }
    if let Some(early) = outcome.seen.iter().find(|seen| seen.reports < consumers) {
        let filed: Vec<String> = story
            .lines()
            .iter()
            .take_while(|line| !(line.actor == early.thread && line.note.starts_with("left")))
            .filter(|line| line.note.starts_with("revokes"))
            .map(|line| line.actor.clone())
            .collect();
        story.fail(None, format!(
            "{} left the barrier when only {} of the {consumers} consumers had filed their report \
             (consumers that had begun their revoke by then: {}): it would start the new \
             generation while a partition still had its old owner",
            called(&early.thread),
            early.reports,
            if filed.is_empty() { "none".to_owned() } else { filed.join(", ") }
        ));
    }
}

fn plans(consumers: std::ops::RangeInclusive<usize>, failures: bool) -> impl Strategy<Value = Plan> {
    (100u64..1_000, proptest::collection::vec(any::<bool>(), consumers), any::<proptest::sample::Index>()).prop_map(
        move |(generation, fails, forced)| {
            let mut revokes: Vec<Revoke> = fails
                .iter()
                .map(|fail| if failures && *fail { Revoke::Fails } else { Revoke::Commits })
                .collect();
            if failures && !revokes.contains(&Revoke::Fails) {
                let at = forced.index(revokes.len());
                revokes[at] = Revoke::Fails;
            }
            Plan { revokes, generation }
        },
    )
}

fn tell(plan: &Plan) -> String {
    let consumers: Vec<String> = plan
        .revokes
        .iter()
        .enumerate()
        .map(|(index, revoke)| match revoke {
            Revoke::Commits => format!("{} commits its offsets", consumer_name(index)),
            Revoke::Fails => format!("{}'s offset commit fails", consumer_name(index)),
        })
        .collect();
    format!(
        "a group of {} consumer{} in generation {}: {}",
        plan.revokes.len(),
        if plan.revokes.len() == 1 { "" } else { "s" },
        plan.generation,
        consumers.join(", ")
    )
}

fn plan_holds(promise: Promise) -> impl Fn(&Plan, &Trace) -> Result<(), String> {
    move |plan, trace| {
        let plan = plan.clone();
        story::search_schedules(VOICE, SEARCH, trace, move |story| run_plan(&plan, promise, story))
            .map(|_| ())
    }
}

const PLANS: u32 = 4;
const SEARCH: Search = Search::Exhaustive { schedules_max: 300 };

/// Every thread leaves the barrier and `rebalance` returns, when every revoke commits.
fn every_thread_leaves(ctx: &mut Ctx) {
    prop::for_all(ctx, "every thread leaves the barrier", PLANS, plans(1..=3, false), tell, plan_holds(Promise::Returns));
    ctx.replay(format!("{PLANS} generated groups of one to three consumers, each under {}", SEARCH.describe()));
}

/// No thread leaves the barrier before every consumer has filed its report.
fn nobody_starts_early(ctx: &mut Ctx) {
    prop::for_all(ctx, "nobody leaves the barrier early", PLANS, plans(1..=3, false), tell, plan_holds(Promise::NobodyEarly));
    ctx.replay(format!("{PLANS} generated groups of one to three consumers, each under {}", SEARCH.describe()));
}

/// A failed revoke is reported, every thread still leaves, and nobody leaves early.
fn a_failed_revoke_is_reported(ctx: &mut Ctx) {
    prop::for_all(ctx, "a failed revoke is reported", PLANS, plans(1..=3, true), tell, plan_holds(Promise::NobodyEarly));
    ctx.replay(format!(
        "{PLANS} generated groups of one to three consumers, at least one of whose revokes fails, each under {}",
        SEARCH.describe()
    ));
}

#[test]
fn checks() {
    run_stages(
        "rebalance-barrier",
        &[
            Stage {
                id: "every-thread-leaves",
                title: "Every consumer and the coordinator leave the barrier",
                mentor: "A rebalance in which every revoke commits did not come back: the story \
                         below shows where each thread stopped. A barrier opens when as many \
                         threads have called `wait` as it was created for: how many threads \
                         call `wait` on `revoked`, and how many does it wait for?",
                run: every_thread_leaves,
            },
            Stage {
                id: "nobody-starts-early",
                title: "Nobody leaves the barrier before every consumer has reported",
                mentor: "Better: every thread gets out. But one of them got out before every \
                         consumer had filed its report, so it would start the new generation \
                         while some partition still had its old owner. The story below shows \
                         the order. Which threads have to arrive before the barrier opens, and \
                         does each file its report before it arrives?",
                run: nobody_starts_early,
            },
            Stage {
                id: "a-failed-revoke-is-reported",
                title: "A consumer whose revoke fails is reported, and nobody waits for it forever",
                mentor: "When a consumer's revoke fails, the rebalance did not end as promised \
                         (every thread leaves, every report is filed before anyone leaves, and \
                         `rebalance` returns Err naming the failed consumers): the story below \
                         shows it. The barrier counts the failed consumer too: does it still \
                         arrive, and has it said that it failed by the time it does?",
                run: a_failed_revoke_is_reported,
            },
        ],
    );
}
