//! The demo for race-conditions/duplicate-ids: two producers each stamp one message with an id
//! from the same allocator, under every schedule of their threads.
//!
//! The search is shuttle's depth-first one (`crate::schedules`): every order in which the
//! threads' steps can interleave. The wrong way hands the same id to both producers in some of
//! them: the demo draws the first such schedule, where the two `next_id()` calls overlap (one
//! begins before the other returns). The right way hands out 101 and 102, once each, in every
//! schedule there is.

use super::hunt::*;
use crate::schedules::{every_schedule, sync::Arc, thread};
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::trace::{EventKind, Trace};

/// The producers, each with the message it stamps.
const PRODUCERS: [(&str, u64); 2] = [("p1", 1), ("p2", 2)];
/// The range of ids the allocator hands out.
const FIRST_ID: u64 = 101;
const LIMIT_ID: u64 = 108;
/// A bound on the search, far above the schedules of two short threads.
const SCHEDULES_MAX: usize = 20_000;

fn step(trace: &Trace, actor: &str, msg: u64, what: &str) {
    trace
        .event(actor, EventKind::Note)
        .to("ids")
        .msg(msg)
        .note(what)
        .record();
}

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let explored = every_schedule(SCHEDULES_MAX, |trace| {
        let ids = Arc::new(IdAllocator::new(FIRST_ID, LIMIT_ID));
        let producers: Vec<_> = PRODUCERS
            .iter()
            .map(|&(name, msg)| {
                let ids = ids.clone();
                let trace = trace.clone();
                thread::spawn(move || {
                    step(&trace, name, msg, "next_id() begins");
                    let id = ids.next_id();
                    let told = match id {
                        Some(id) => format!("next_id() returns {id}"),
                        None => "next_id() refuses".to_owned(),
                    };
                    step(&trace, name, msg, &told);
                    if let Some(id) = id {
                        trace
                            .event(name, EventKind::Send)
                            .to("queue")
                            .msg(msg)
                            .note(format!("sends m{msg} stamped {id}"))
                            .record();
                    }
                    id
                })
            })
            .collect();
        let got: Vec<Option<u64>> = producers
            .into_iter()
            .map(|producer| producer.join().expect("a producer thread panicked"))
            .collect();
        let next = ids.next_id();
        trace
            .event("main", EventKind::Note)
            .to("ids")
            .note(match next {
                Some(id) => format!("afterwards, next_id() returns {id}"),
                None => "afterwards, next_id() refuses".to_owned(),
            })
            .record();
        let stamped = |p: usize| match got[p] {
            Some(id) => id.to_string(),
            None => "nothing".to_owned(),
        };
        if got[0].is_some() && got[0] == got[1] {
            trace
                .event("queue", EventKind::Lost)
                .note("two messages with one id")
                .record();
            return Err(format!(
                "p1 and p2 each asked for an id at once and both got {}: two messages carry the same id, and a consumer that drops duplicates by id drops one of them",
                stamped(0)
            ));
        }
        let mut handed: Vec<u64> = got.iter().flatten().copied().collect();
        handed.sort_unstable();
        if handed != [FIRST_ID, FIRST_ID + 1] || next != Some(FIRST_ID + 2) {
            trace
                .event("queue", EventKind::Lost)
                .note("ids not handed out once each, in order")
                .record();
            return Err(format!(
                "p1 got {} and p2 got {}, and the next id is {next:?}: want 101 and 102 once each, then 103",
                stamped(0),
                stamped(1)
            ));
        }
        Ok(())
    });
    explored.demo_run()
}
