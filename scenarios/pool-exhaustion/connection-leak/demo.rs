//! Three consumers share one queue of 120 ledger entries and one handler with its pool.
//! Every 15th entry has a negative amount, which the ledger refuses; inserts take 20 to
//! 60 ms. A message answered Busy goes to the back of the queue; a refused one goes to the
//! dead-letter queue. The run stops when the queue is empty, or at 30 s.
//!
//! Everything runs on tokio's paused clock, so the 30 s cost no real time, and the consumers
//! take messages in a fixed order, so the run is the same every time.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::Duration;

use super::hunt::*;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::invariant::{Invariant, Violation};
use bughunt_kit::paused;
use bughunt_kit::sink::Sink;
use bughunt_kit::trace::{EventKind, Trace};
use tokio::time::{sleep, timeout, Instant};

const MESSAGE_COUNT: u64 = 120;
const REFUSED_EVERY: u64 = 15;
const RUN_FOR_MS: u64 = 30_000;
const FIRST_ID: u64 = 101;

/// (id, amount, insert ms), in queue order.
fn messages() -> Vec<(u64, i64, u64)> {
    (0..MESSAGE_COUNT)
        .map(|n| {
            let refused = (n + 1) % REFUSED_EVERY == 0;
            let amount = if refused {
                -25
            } else {
                10 + (n as i64 * 7) % 90
            };
            (FIRST_ID + n, amount, 20 + (n * 37) % 41)
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    written: Vec<u64>,
    dead_lettered: Vec<u64>,
    busy: u64,
}

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let trace = Trace::new();
    let plan = messages();
    // The sinks are made on the paused runtime, so their times count from that clock's start.
    let (tally, idle, left) = paused::block_on(async {
        let ledger = Sink::with_work_times(
            trace.clone(),
            20,
            plan.iter().map(|(id, _, insert_ms)| (*id, *insert_ms)),
        )
        .with_actor("handler");
        let audit_log = Sink::new(trace.clone(), 0).with_actor("handler");
        consume(&trace, &ledger, &audit_log, &plan).await
    });
    let mut violations = Vec::new();
    for id in &left {
        violations.push(Violation {
            invariant: Invariant::AtLeastOnce,
            msg: Some(*id),
            detail: format!(
                "m{id} was never written: Busy, requeued, Busy again, until the run ended"
            ),
        });
    }
    let lost = POOL_SIZE.saturating_sub(idle) as u64;
    if lost > 0 {
        violations.push(Violation {
            invariant: Invariant::AtLeastOnce,
            msg: None,
            detail: format!(
                "{lost} of the pool's {POOL_SIZE} connections never came back: refused \
                 entries took them with them, and every later acquire waited in vain"
            ),
        });
    }
    DemoRun::new(&trace, violations)
        .count("messages sent", plan.len() as u64)
        .count("written", tally.written.len() as u64)
        .count("refused, dead-lettered", tally.dead_lettered.len() as u64)
        .bad_count("connections lost", lost)
        .bad_count("Busy answers (requeued)", tally.busy)
        .bad_count("good messages never written", left.len() as u64)
}

async fn consume(
    trace: &Trace,
    ledger: &Sink,
    audit_log: &Sink,
    plan: &[(u64, i64, u64)],
) -> (Tally, usize, Vec<u64>) {
    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let handler = Handler::new(Database {
        ledger: ledger.clone(),
        audit_log: audit_log.clone(),
    });
    let queue: RefCell<VecDeque<Message>> = RefCell::new(
        plan.iter()
            .map(|(id, amount, _)| Message {
                id: *id,
                amount: *amount,
            })
            .collect(),
    );
    let in_hand = Cell::new(0usize);
    let tally = RefCell::new(Tally::default());
    let consumer = |number: usize| {
        let (handler, queue, in_hand, tally) = (&handler, &queue, &in_hand, &tally);
        async move {
            let me = format!("c{number}");
            loop {
                let next = queue.borrow_mut().pop_front();
                let Some(message) = next else {
                    if in_hand.get() == 0 {
                        return;
                    }
                    // Another consumer may still requeue a message: look again soon.
                    sleep(Duration::from_millis(1)).await;
                    continue;
                };
                in_hand.set(in_hand.get() + 1);
                trace.set_time_ms(now_ms());
                trace
                    .event(me.clone(), EventKind::Send)
                    .to("handler")
                    .msg(message.id)
                    .note(format!(
                        "handle(m{}, amount {})",
                        message.id, message.amount
                    ))
                    .record();
                let answer = handler.handle(&message).await;
                trace.set_time_ms(now_ms());
                let mut tally = tally.borrow_mut();
                match answer {
                    Ok(()) => {
                        tally.written.push(message.id);
                        trace
                            .event("handler", EventKind::Ack)
                            .to(me.clone())
                            .msg(message.id)
                            .note("Ok")
                            .record();
                    }
                    Err(HandleError::Rejected) => {
                        tally.dead_lettered.push(message.id);
                        trace
                            .event("handler", EventKind::Note)
                            .to(me.clone())
                            .msg(message.id)
                            .note("Rejected: dead-lettered")
                            .record();
                    }
                    Err(HandleError::Busy) => {
                        tally.busy += 1;
                        trace
                            .event("handler", EventKind::Reject)
                            .to(me.clone())
                            .msg(message.id)
                            .note(format!(
                                "Busy: requeued ({} of {POOL_SIZE} connections idle)",
                                handler.idle_connections()
                            ))
                            .record();
                        queue.borrow_mut().push_back(message);
                    }
                }
                in_hand.set(in_hand.get() - 1);
            }
        }
    };
    let consumers = async {
        tokio::join!(consumer(1), consumer(2), consumer(3));
    };
    let _ = timeout(Duration::from_millis(RUN_FOR_MS), consumers).await;
    trace.set_time_ms(now_ms());
    let idle = handler.idle_connections();
    trace
        .event("pool", EventKind::Note)
        .note(format!("{idle} of {POOL_SIZE} connections idle at the end"))
        .record();
    let tally = tally.into_inner();
    let left: Vec<u64> = plan
        .iter()
        .filter(|(id, amount, _)| *amount >= 0 && !tally.written.contains(id))
        .map(|(id, _, _)| *id)
        .collect();
    (tally, idle, left)
}
