//! The demo for join-misuse/rebalance-barrier: a group of two consumers and the coordinator
//! meet at the `revoked` barrier, under the first 1,000 schedules of the three threads.
//!
//! The search is shuttle's depth-first one (`crate::schedules`). The wrong way sizes the
//! barrier for the consumers only: two threads get through and the third is left waiting
//! for a round that never fills, and the demo draws where each thread stopped (the lines
//! each thread logs before a call that can block). The right way counts the coordinator in,
//! and every thread leaves having seen both reports, in every schedule explored.

use super::hunt::*;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::trace::{EventKind, Trace};
use crate::schedules::every_schedule;

/// Two consumers: the smallest group in which the barrier's count can be one short.
const PLAN: [Revoke; 2] = [Revoke::Commits, Revoke::Commits];
/// The generation the group is in.
const GENERATION: u64 = 41;
/// A bound on the search: three threads have more schedules than a demo can show, and the
/// wrong way breaks in the first one.
const SCHEDULES_MAX: usize = 1_000;

/// The program's log, drawn: each line a thread writes before a call that can block.
fn log_into(trace: &Trace) -> Log {
    let trace = trace.clone();
    Log::new(move |thread, what| {
        let kind = if what.contains("waits") {
            EventKind::Stall
        } else if what.starts_with("revokes") {
            EventKind::Ack
        } else if what.starts_with("left") {
            EventKind::Deliver
        } else {
            EventKind::Note
        };
        trace.event(thread, kind).note(what).record();
    })
}

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let explored = every_schedule(SCHEDULES_MAX, |trace| {
        let outcome = rebalance(&PLAN, GENERATION, &log_into(trace));
        trace
            .event(COORDINATOR, EventKind::Note)
            .note(format!("rebalance returned {:?}", outcome.result))
            .record();
        let early: Vec<String> = outcome
            .seen
            .iter()
            .filter(|seen| seen.reports < PLAN.len())
            .map(|seen| format!("{} left having seen {} of {} reports", seen.thread, seen.reports, PLAN.len()))
            .collect();
        if early.is_empty() && outcome.seen.len() == PLAN.len() + 1 {
            Ok(())
        } else {
            trace.event(COORDINATOR, EventKind::Lost).note("a thread left the barrier too early").record();
            Err(early.join("; "))
        }
    });
    explored.demo_run()
}
