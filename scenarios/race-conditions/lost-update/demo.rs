//! The demo for race-conditions/lost-update: two consumers of one group each receive and
//! finish a message while a monitor watches, under every schedule of their threads.
//!
//! The search is shuttle's depth-first one (`crate::schedules`): every order in which the
//! threads' steps can interleave. The wrong way loses an update in some of them: the demo
//! draws the first such schedule, where two calls overlap (one begins before the other
//! returns). The right way keeps both counts exact in every schedule there is.

use super::hunt::*;
use crate::schedules::{every_schedule, sync::Arc, thread};
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::trace::{EventKind, Trace};

/// The consumers, each with the message it handles.
const CONSUMERS: [(&str, u64); 2] = [("c1", 1), ("c2", 2)];
/// A bound on the search, far above the schedules of three short threads.
const SCHEDULES_MAX: usize = 20_000;

fn step(trace: &Trace, actor: &str, msg: u64, what: &str) {
    trace
        .event(actor, EventKind::Note)
        .to("progress")
        .msg(msg)
        .note(what)
        .record();
}

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let explored = every_schedule(SCHEDULES_MAX, |trace| {
        let progress = Arc::new(Progress::new());
        let consumers: Vec<_> = CONSUMERS
            .iter()
            .map(|&(name, msg)| {
                let progress = progress.clone();
                let trace = trace.clone();
                thread::spawn(move || {
                    step(&trace, name, msg, "record_received() begins");
                    progress.record_received();
                    step(&trace, name, msg, "record_received() returns");
                    trace.event(name, EventKind::Process).msg(msg).record();
                    step(&trace, name, msg, "record_processed() begins");
                    progress.record_processed();
                    step(&trace, name, msg, "record_processed() returns");
                })
            })
            .collect();
        for consumer in consumers {
            consumer.join().expect("a consumer thread panicked");
        }
        let counts = progress.snapshot();
        trace
            .event("monitor", EventKind::Note)
            .to("progress")
            .note(format!(
                "snapshot: received {}, processed {}",
                counts.received, counts.processed
            ))
            .record();
        let expected = CONSUMERS.len() as u64;
        if counts.received == expected && counts.processed == expected {
            Ok(())
        } else {
            trace
                .event("monitor", EventKind::Lost)
                .note("an update was lost")
                .record();
            Err(format!(
                "c1 and c2 each received and finished one message, and the counts say received {}, processed {}: an update was lost",
                counts.received, counts.processed
            ))
        }
    });
    explored.demo_run()
}
