//! 1000 jobs and three consumers taking turns, one receive each, the clock moving a fixed
//! step per turn. A consumer the plan crashes drops the job it holds, restarts at once and
//! takes its next turn, as a supervised worker would.

use std::collections::BTreeSet;

use super::hunt::*;
use bughunt_kit::clock::Clock;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::invariant;
use bughunt_kit::trace::{EventKind, Trace};

const MESSAGE_COUNT: u64 = 1_000;
const CONSUMERS: [&str; 3] = ["c1", "c2", "c3"];
const VISIBILITY_TIMEOUT_MS: u64 = 5_000;
const TURN_MS: u64 = 100;
/// Far more turns than a correct queue needs (about one per message, plus the timeouts of
/// the crashed ones), so a queue that never empties still ends the demo.
const TURNS_MAX: u64 = 20_000;

pub fn run(plan: &FaultPlan) -> DemoRun {
    let clock = Clock::new();
    let trace = Trace::new();
    let mut queue = Queue::new(clock.clone(), VISIBILITY_TIMEOUT_MS);
    for n in 1..=MESSAGE_COUNT {
        let id = queue.send(format!("resize photo {n}"));
        trace
            .event("producer", EventKind::Send)
            .to("queue")
            .msg(id)
            .record();
    }

    let mut receive_counts = [0u64; CONSUMERS.len()];
    let mut delivered = BTreeSet::new();
    let (mut processed, mut redelivered, mut crashes) = (0u64, 0u64, 0u64);
    for turn in 0..TURNS_MAX {
        if queue.depth() == 0 {
            break;
        }
        trace.set_time_ms(clock.advance_ms(TURN_MS));
        let slot = (turn % CONSUMERS.len() as u64) as usize;
        let consumer = CONSUMERS[slot];
        let Some(message) = queue.receive() else {
            continue;
        };
        let id = message.id;
        let kind = if delivered.insert(id) {
            EventKind::Deliver
        } else {
            redelivered += 1;
            EventKind::Redeliver
        };
        trace.event("queue", kind).to(consumer).msg(id).record();

        receive_counts[slot] += 1;
        if plan.crashes_after_receive(consumer, receive_counts[slot]) {
            crashes += 1;
            trace
                .event(consumer, EventKind::Crash)
                .msg(id)
                .note(format!(
                    "{consumer} crashed holding m{id}, before its ack; it restarts"
                ))
                .record();
            continue;
        }
        trace.event(consumer, EventKind::Process).msg(id).record();
        processed += 1;
        queue.ack(id);
        trace
            .event(consumer, EventKind::Ack)
            .to("queue")
            .msg(id)
            .record();
    }

    let lost = invariant::at_least_once(&trace);
    let lost_count = lost.len() as u64;
    let mut violations = lost;
    violations.extend(invariant::no_delivery_after_ack(&trace));
    DemoRun::new(&trace, violations)
        .count("sent", MESSAGE_COUNT)
        .count("processed", processed)
        .count("crashed holding a job", crashes)
        .count("redelivered", redelivered)
        .bad_count("LOST", lost_count)
}
