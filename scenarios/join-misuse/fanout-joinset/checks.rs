//! Checks for `fanout-joinset`: every shard answered exactly once, all fetches at the same
//! time, and no task left alive, as properties over generated sets of shards.
//!
//! A history is one to six shards with ids past 100, uneven work times (odd milliseconds,
//! some over two seconds) and some that fail. Each runs on a fresh tokio runtime with paused
//! time (`bughunt_kit::paused`), so a slow shard costs nothing; the wait for `gather` is
//! bounded, and a bound that runs out fails the stage. When `gather` returns, the check lets
//! every ready task finish and counts the tasks still alive.

use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::paused;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::time::Instant;

/// How long past the slowest shard the check waits for `gather` before calling it stuck.
const STUCK_AFTER_MS: u64 = 60_000;
/// Histories per property.
const CASES: u32 = 48;

#[derive(Clone, Debug)]
struct History {
    shards: Vec<Shard>,
}

impl History {
    fn slowest_ms(&self) -> u64 {
        self.shards.iter().map(|shard| shard.work_ms).max().unwrap_or(0)
    }
}

fn describe(shard: &Shard) -> String {
    format!(
        "shard {} ({} ms{})",
        shard.id,
        shard.work_ms,
        if shard.fails { ", fails" } else { "" }
    )
}

fn tell(history: &History) -> String {
    if history.shards.is_empty() {
        return "no shards".into();
    }
    let shards: Vec<String> = history.shards.iter().map(describe).collect();
    format!("{} shard{}: {}", history.shards.len(), if history.shards.len() == 1 { "" } else { "s" }, shards.join(", "))
}

fn histories() -> impl Strategy<Value = History> {
    let work = prop_oneof![1u64..400, 400u64..1_900, 2_001u64..5_000].prop_map(|ms| ms | 1);
    (100u64..300, 1u64..4, prop::proptest::collection::vec((work, prop::proptest::bool::weighted(0.3)), 1..=6)).prop_map(
        |(first, gap, shards)| History {
            shards: shards
                .into_iter()
                .enumerate()
                .map(|(i, (work_ms, fails))| Shard { id: first + gap * i as u64, work_ms, fails })
                .collect(),
        },
    )
}

struct Outcome {
    /// None when `gather` had not returned by the bound.
    gathered: Option<Gathered>,
    elapsed_ms: u64,
    tasks_alive: u64,
}

fn play(history: &History, trace: &Trace) -> Outcome {
    paused::block_on(async {
        let start = Instant::now();
        for shard in &history.shards {
            trace.set_time_ms(0);
            trace
                .event("gather", EventKind::Send)
                .to(format!("shard {}", shard.id))
                .msg(shard.id)
                .note(format!("fetch: {} ms{}", shard.work_ms, if shard.fails { ", will fail" } else { "" }))
                .record();
        }
        let bound = Duration::from_millis(history.slowest_ms() + STUCK_AFTER_MS);
        let gathered = tokio::time::timeout(bound, gather(history.shards.clone())).await.ok();
        let elapsed_ms = start.elapsed().as_millis() as u64;
        trace.set_time_ms(elapsed_ms);
        match &gathered {
            Some(gathered) => {
                for page in &gathered.pages {
                    trace.event("gather", EventKind::Deliver).msg(page.shard).note(format!("page of shard {}", page.shard)).record();
                }
                for error in &gathered.errors {
                    trace.event("gather", EventKind::Reject).msg(error.shard).note(format!("error of shard {}", error.shard)).record();
                }
                trace
                    .event("gather", EventKind::Exit)
                    .note(format!("returned after {elapsed_ms} ms: {} pages, {} errors", gathered.pages.len(), gathered.errors.len()))
                    .record();
            }
            None => trace.event("gather", EventKind::Stall).note(format!("had not returned after {elapsed_ms} ms")).record(),
        }
        let tasks_alive = paused::tasks_alive_after_settling().await;
        Outcome { gathered, elapsed_ms, tasks_alive }
    })
}

fn every_result_once(history: &History, outcome: &Outcome) -> Result<(), String> {
    let Some(gathered) = &outcome.gathered else {
        return Err(format!(
            "gather had not returned {} ms after the slowest shard ({} ms) answered",
            STUCK_AFTER_MS,
            history.slowest_ms()
        ));
    };
    for shard in &history.shards {
        let pages = gathered.pages.iter().filter(|page| page.shard == shard.id).count();
        let errors = gathered.errors.iter().filter(|error| error.shard == shard.id).count();
        let expected = if shard.fails { "its error" } else { "its page" };
        match (shard.fails, pages, errors) {
            (false, 1, 0) | (true, 0, 1) => {}
            (_, 0, 0) => {
                return Err(format!(
                    "gather returned after {} ms without any answer for {}: {expected} was lost",
                    outcome.elapsed_ms,
                    describe(shard)
                ))
            }
            _ => {
                return Err(format!(
                    "gather returned {pages} page(s) and {errors} error(s) for {}; it should return {expected}, once",
                    describe(shard)
                ))
            }
        }
    }
    if let Some(page) = gathered.pages.iter().find(|page| page.hits != hits_of(page.shard)) {
        return Err(format!("shard {}'s page says {} hits, and the shard reported {}", page.shard, page.hits, hits_of(page.shard)));
    }
    Ok(())
}

fn fans_out(history: &History, outcome: &Outcome) -> Result<(), String> {
    every_result_once(history, outcome)?;
    let slowest = history.slowest_ms();
    if outcome.elapsed_ms > slowest + 1 {
        let sum: u64 = history.shards.iter().map(|shard| shard.work_ms).sum();
        return Err(format!(
            "gather took {} ms; the slowest shard takes {slowest} ms (and all of them one after another, {sum} ms): the fetches did not all run at the same time",
            outcome.elapsed_ms
        ));
    }
    Ok(())
}

fn no_task_left(history: &History, outcome: &Outcome) -> Result<(), String> {
    fans_out(history, outcome)?;
    if outcome.tasks_alive > 0 {
        return Err(format!(
            "{} task(s) were still alive after gather returned (and every ready task was let run): gather must not leave anything it spawned running",
            outcome.tasks_alive
        ));
    }
    Ok(())
}

fn holds(check: fn(&History, &Outcome) -> Result<(), String>) -> impl Fn(&History, &Trace) -> Result<(), String> {
    move |history, trace| {
        let outcome = play(history, trace);
        check(history, &outcome)
    }
}

fn stage_every_result_once(ctx: &mut Ctx) {
    prop::for_all(ctx, "every shard is answered exactly once", CASES, histories(), tell, holds(every_result_once));
    ctx.replay(format!("{CASES} generated sets of one to six shards, on paused time"));
}

fn stage_fan_out(ctx: &mut Ctx) {
    prop::for_all(ctx, "gather takes as long as the slowest shard", CASES, histories(), tell, holds(fans_out));
    ctx.replay(format!("{CASES} generated sets of one to six shards, on paused time"));
}

fn stage_no_task_left(ctx: &mut Ctx) {
    prop::for_all(ctx, "no task is alive when gather returns", CASES, histories(), tell, holds(no_task_left));
    ctx.replay(format!("{CASES} generated sets of one to six shards, on paused time"));
}

#[test]
fn checks() {
    run_stages(
        "fanout-joinset",
        &[
            Stage {
                id: "every-result-once",
                title: "Every shard is answered exactly once: its page, or its error",
                mentor: "`gather` did not return one answer per shard: the story below is the \
                         smallest set of shards I found. For each shard, where does its answer \
                         go when it is an error, and what happens to the shards still running \
                         when `gather` returns? If it never returned: what is it still waiting \
                         for once every shard has answered?",
                run: stage_every_result_once,
            },
            Stage {
                id: "fan-out-in-parallel",
                title: "gather takes as long as the slowest shard, not the sum",
                mentor: "Every shard is answered, but `gather` took longer than its slowest \
                         shard: some fetch waited for another before it started. When is each \
                         fetch started, and what does `gather` wait for before starting the \
                         next one?",
                run: stage_fan_out,
            },
            Stage {
                id: "no-task-left",
                title: "No task is alive when gather returns",
                mentor: "Every shard is answered in time, but something `gather` spawned was \
                         still running after it returned. Which tasks did it start, and which \
                         of them does it wait for or stop?",
                run: stage_no_task_left,
            },
        ],
    );
}
