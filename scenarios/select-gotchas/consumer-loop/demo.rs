//! A steady trickle into the consumer loop: 200 messages, one every 60 ms from 30 ms on, a
//! little faster than the 100 ms flush interval, then shutdown at 12_050 ms. The downstream
//! takes every batch at once. A watcher notes each message still unwritten a whole interval
//! after it was sent, and the run counts how long every message waited.
//!
//! Everything runs on tokio's paused clock, so the 12 s cost no real time. No message
//! arrives at the instant of a flush tick (a send is at 30 + 60k ms, a tick at 100k ms), so
//! the loop never has two branches ready at once and the run is the same every time,
//! whichever branch `select!` would try first.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use super::hunt::*;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::invariant::{Invariant, Violation};
use bughunt_kit::paused;
use bughunt_kit::trace::{EventKind, Trace};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout_at, Instant};

const MESSAGE_COUNT: u64 = 200;
const FIRST_SEND_MS: u64 = 30;
const GAP_MS: u64 = 60;
const SHUTDOWN_AT_MS: u64 = 12_050;
/// How long after shutdown the run waits for the loop to return, at most.
const RETURN_BOUND_MS: u64 = 1_000;
const INPUT_CAPACITY: usize = 16;
const OUT_CAPACITY: usize = 64;
const FIRST_ID: u64 = 101;

/// (id, sent at ms), in order.
fn messages() -> Vec<(u64, u64)> {
    (0..MESSAGE_COUNT)
        .map(|n| (FIRST_ID + n, FIRST_SEND_MS + n * GAP_MS))
        .collect()
}

struct Outcome {
    /// Each batch written, and when.
    batches: Vec<(u64, Vec<u64>)>,
    returned: bool,
}

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let trace = Trace::new();
    let plan = messages();
    let outcome = paused::block_on(trickle(&trace, &plan));
    let written_at: BTreeMap<u64, u64> = outcome
        .batches
        .iter()
        .flat_map(|(at_ms, batch)| batch.iter().map(move |id| (*id, *at_ms)))
        .collect();
    let mut waits = Vec::new();
    let mut violations = Vec::new();
    let mut never_written = 0;
    for (id, sent_ms) in &plan {
        let Some(out_ms) = written_at.get(id) else {
            never_written += 1;
            violations.push(Violation {
                invariant: Invariant::AtLeastOnce,
                msg: None,
                detail: format!("m{id}, sent at {sent_ms} ms, was never written"),
            });
            continue;
        };
        let waited = out_ms - sent_ms;
        waits.push(waited);
        if waited > FLUSH_EVERY_MS {
            let quiet = if outcome
                .batches
                .iter()
                .all(|(at_ms, _)| at_ms <= sent_ms || at_ms >= out_ms)
            {
                ": nothing at all was written in between, the flush timer never fired"
            } else {
                ""
            };
            violations.push(Violation {
                invariant: Invariant::LatencyBounded,
                msg: None,
                detail: format!(
                    "m{id} was sent at {sent_ms} ms and written at {out_ms} ms, {waited} ms \
                     later, over the {FLUSH_EVERY_MS} ms flush interval{quiet}"
                ),
            });
        }
    }
    if !outcome.returned {
        violations.push(Violation {
            invariant: Invariant::ShutdownWithinBound,
            msg: None,
            detail: format!("the loop had not returned {RETURN_BOUND_MS} ms after shutdown"),
        });
    }
    let within = waits.iter().filter(|w| **w <= FLUSH_EVERY_MS).count() as u64;
    let late = waits.len() as u64 - within;
    let by_timer = outcome
        .batches
        .iter()
        .filter(|(at_ms, batch)| *at_ms < SHUTDOWN_AT_MS && batch.len() < BATCH_MAX)
        .count() as u64;
    DemoRun::new(&trace, violations)
        .focus_from_seq(0)
        .count("messages sent", plan.len() as u64)
        .count("batches written", outcome.batches.len() as u64)
        .count("batches written by the flush timer", by_timer)
        .count(
            &format!("written within the {FLUSH_EVERY_MS} ms interval"),
            within,
        )
        .count(
            "longest wait of a message (simulated ms)",
            waits.iter().copied().max().unwrap_or(0),
        )
        .bad_count("waited longer than the interval", late)
        .bad_count("never written", never_written)
        .bad_count(
            "loops that never returned after shutdown",
            u64::from(!outcome.returned),
        )
        .series(
            "wait before being written (ms)",
            "message",
            Some(FLUSH_EVERY_MS),
            waits,
        )
}

async fn trickle(trace: &Trace, plan: &[(u64, u64)]) -> Outcome {
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    let now_ms = || start.elapsed().as_millis() as u64;
    let (sender, mut input) = mpsc::channel(INPUT_CAPACITY);
    let (stop, shutdown) = oneshot::channel();
    let (out, mut written) = mpsc::channel::<Vec<u64>>(OUT_CAPACITY);
    let batches: RefCell<Vec<(u64, Vec<u64>)>> = RefCell::new(Vec::new());
    let producer = async {
        for (id, sent_ms) in plan {
            sleep_until(at(*sent_ms)).await;
            trace.set_time_ms(*sent_ms);
            trace
                .event("producer", EventKind::Send)
                .to("consumer")
                .msg(*id)
                .record();
            let _ = sender.send(*id).await;
        }
        sleep_until(at(SHUTDOWN_AT_MS)).await;
        trace.set_time_ms(SHUTDOWN_AT_MS);
        trace
            .event("service", EventKind::Shutdown)
            .to("consumer")
            .note("signals shutdown")
            .record();
        let _ = stop.send(());
        // The input stays open: only the shutdown may end the loop.
        std::future::pending::<()>().await;
        drop(sender);
    };
    // A whole interval (and a millisecond, so never at a tick) after each send: is the
    // message still waiting?
    let watcher = async {
        for (id, sent_ms) in plan {
            let due_ms = sent_ms + FLUSH_EVERY_MS + 1;
            sleep_until(at(due_ms)).await;
            let out = batches.borrow().iter().any(|(_, batch)| batch.contains(id));
            if !out {
                trace.set_time_ms(due_ms);
                trace
                    .event("check", EventKind::Note)
                    .msg(*id)
                    .note(format!(
                        "m{id} has waited over {FLUSH_EVERY_MS} ms, still unwritten: no flush"
                    ))
                    .record();
            }
        }
        std::future::pending::<()>().await;
    };
    let run = async {
        let returned = tokio::select! {
            biased;
            finished = timeout_at(
                at(SHUTDOWN_AT_MS + RETURN_BOUND_MS),
                consume(&mut input, shutdown, out),
            ) => finished.is_ok(),
            () = producer => unreachable!("the producer never ends"),
            () = watcher => unreachable!("the watcher never ends"),
        };
        // Let the downstream take what the loop wrote last, without moving the clock, so
        // the story tells the write before the return.
        paused::settle().await;
        trace.set_time_ms(now_ms());
        if returned {
            trace.event("consumer", EventKind::Exit).record();
        } else {
            trace
                .event("consumer", EventKind::Leak)
                .note(format!("still running {RETURN_BOUND_MS} ms after shutdown"))
                .record();
        }
        returned
    };
    let collect = async {
        while let Some(batch) = written.recv().await {
            let at_ms = now_ms();
            trace.set_time_ms(at_ms);
            let mut event = trace
                .event("downstream", EventKind::Process)
                .note(format!("batch {batch:?}"));
            if let Some(first) = batch.first() {
                event = event.msg(*first);
            }
            event.record();
            batches.borrow_mut().push((at_ms, batch));
        }
    };
    let (returned, ()) = tokio::join!(run, collect);
    Outcome {
        batches: batches.into_inner(),
        returned,
    }
}
