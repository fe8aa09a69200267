//! The demo for consumer-starvation/bounded-queue: a producer ten times faster than its
//! consumer, and a consumer that stalls for a while.
//!
//! Time moves in ticks. Each tick the producer offers up to `OFFERS_PER_TICK` jobs and the
//! consumer, unless the plan stalls it, takes up to `TAKES_PER_TICK`. A job the queue hands
//! back goes into the producer's one-job retry slot, and the producer offers nothing new
//! until the queue has taken it: that is the producer slowing down. The run ends when all
//! `JOBS` have been offered and the queue is drained (or after `TICKS_MAX`).

use super::hunt::*;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::invariant;
use bughunt_kit::trace::{EventKind, Trace};

/// Jobs the producer has to get through.
const JOBS: u64 = 1_000;
/// Offers the producer makes per tick, at most.
const OFFERS_PER_TICK: u64 = 100;
/// Jobs the consumer takes per tick, at most.
const TAKES_PER_TICK: u64 = 10;
/// What the queue is made for.
const CAPACITY: usize = 50;
/// One tick of simulated time.
const TICK_MS: u64 = 1_000;
/// A bound on the run, far above the ~110 ticks either form needs.
const TICKS_MAX: u64 = 1_000;
/// The consumer's name in the fault plan.
const CONSUMER: &str = "c1";

pub fn run(plan: &FaultPlan) -> DemoRun {
    let trace = Trace::new();
    let mut queue = Queue::with_capacity(CAPACITY);
    // The producer's own bound: one refused job held, never a pile of them.
    let mut retry_slot: Option<Job> = None;
    let mut next_id = 1;
    let mut accepted = 0;
    let mut pushed_back = 0;
    let mut depth_samples: Vec<u64> = Vec::new();
    let mut depth_per_tick: Vec<u64> = Vec::new();
    let mut tick = 0;

    while tick < TICKS_MAX && (next_id <= JOBS || retry_slot.is_some() || queue.depth() > 0) {
        trace.set_time_ms(tick * TICK_MS);

        for _ in 0..OFFERS_PER_TICK {
            let job = match retry_slot.take() {
                Some(job) => job,
                None if next_id <= JOBS => {
                    next_id += 1;
                    Job { id: next_id - 1 }
                }
                None => break,
            };
            let id = job.id;
            trace
                .event("producer", EventKind::Send)
                .to("queue")
                .msg(id)
                .record();
            match queue.try_send(job) {
                Ok(()) => accepted += 1,
                Err(Full(job)) => {
                    pushed_back += 1;
                    trace
                        .event("queue", EventKind::Reject)
                        .to("producer")
                        .msg(job.id)
                        .note("full: the producer holds the job and stops for this tick")
                        .record();
                    retry_slot = Some(job);
                    break;
                }
            }
            depth_samples.push(queue.depth() as u64);
        }

        if plan.is_stalled(CONSUMER, tick) {
            trace
                .event(CONSUMER, EventKind::Stall)
                .note(format!("takes nothing; {} jobs waiting", queue.depth()))
                .record();
        } else {
            for _ in 0..TAKES_PER_TICK {
                let Some(job) = queue.receive() else { break };
                trace
                    .event("queue", EventKind::Deliver)
                    .to(CONSUMER)
                    .msg(job.id)
                    .record();
            }
        }
        depth_samples.push(queue.depth() as u64);
        depth_per_tick.push(queue.depth() as u64);
        tick += 1;
    }

    let depth_max = depth_samples.iter().copied().max().unwrap_or(0);
    let violations = invariant::depth_bounded(&depth_samples, CAPACITY as u64);
    DemoRun::new(&trace, violations)
        // The first job offered once the queue holds its capacity: accepted by the broken
        // queue, handed back by the fixed one.
        .focus_msg(CAPACITY as u64 + 1)
        .series("queue depth", "tick", Some(CAPACITY as u64), depth_per_tick)
        .count("jobs offered", next_id - 1)
        .count("accepted", accepted)
        .count("capacity", CAPACITY as u64)
        .count("max depth", depth_max)
        .count("pushed back (producer told)", pushed_back)
        .count("ticks to drain", tick)
        .bad_count(
            "depth over the bound",
            depth_max.saturating_sub(CAPACITY as u64),
        )
}
