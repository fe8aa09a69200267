//! Checks for consumer-starvation/bounded-queue: while the consumer is stalled the queue
//! holds no more than its capacity, the producer hears about every job it did not take
//! (and gets that job back), and every job it did take reaches the consumer, in order.

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::invariant;
use bughunt_kit::trace::EventKind;
use hunt::*;

/// The most jobs a check drains from a queue: far more than any check offers, so a queue
/// that keeps answering `Some` cannot hang the check.
const DRAIN_MAX: usize = 1_000;
/// What the queue is made for while its consumer is stalled and far more jobs are offered.
const STALLED_CAPACITY: usize = 8;
/// Jobs offered to that queue, many times its capacity.
const STALLED_OFFERED: u64 = 100;
/// What the queue is made for in the stages that count every job, one by one.
const CAPACITY: usize = 4;
/// Jobs offered to that queue while its consumer is stalled: more than fit.
const OFFERED: u64 = 10;

/// Offers job `id` and records what happened: a send, then a reject if the job came back.
fn offer(ctx: &Ctx, queue: &mut Queue, id: u64) -> Result<(), Full> {
    ctx.trace
        .event("producer", EventKind::Send)
        .to("queue")
        .msg(id)
        .record();
    let outcome = queue.try_send(Job { id });
    match &outcome {
        Ok(()) => ctx
            .trace
            .event("queue", EventKind::Note)
            .msg(id)
            .note(format!("accepted, depth {}", queue.depth()))
            .record(),
        Err(Full(job)) => ctx
            .trace
            .event("queue", EventKind::Reject)
            .to("producer")
            .msg(job.id)
            .note("full: the job goes back to the producer")
            .record(),
    }
    outcome
}

/// Lets the consumer take every waiting job, recording each delivery.
fn drain(ctx: &Ctx, queue: &mut Queue) -> Vec<u64> {
    let mut received = Vec::new();
    while received.len() < DRAIN_MAX {
        let Some(job) = queue.receive() else { break };
        ctx.trace
            .event("queue", EventKind::Deliver)
            .to("consumer")
            .msg(job.id)
            .record();
        received.push(job.id);
    }
    received
}

fn ids(list: &[u64]) -> String {
    let named: Vec<String> = list.iter().map(|id| format!("m{id}")).collect();
    format!("[{}]", named.join(", "))
}

/// A stalled consumer takes nothing while the producer offers far more jobs than fit: the
/// depth, sampled after every offer, must never pass the capacity.
fn depth_bounded_stalled_consumer(ctx: &mut Ctx) {
    let mut queue = Queue::with_capacity(STALLED_CAPACITY);
    ctx.trace
        .event("consumer", EventKind::Stall)
        .note(format!(
            "takes nothing while the producer offers {STALLED_OFFERED} jobs"
        ))
        .record();
    let mut depth_samples = Vec::new();
    let mut first_over = None;
    for id in 1..=STALLED_OFFERED {
        // A refused job is simply not offered again here: this stage is about depth only.
        let _ = offer(ctx, &mut queue, id);
        let depth = queue.depth();
        if depth > STALLED_CAPACITY && first_over.is_none() {
            first_over = Some(id);
        }
        depth_samples.push(depth as u64);
    }
    let mut violations = invariant::depth_bounded(&depth_samples, STALLED_CAPACITY as u64);
    if let (Some(violation), Some(id)) = (violations.first_mut(), first_over) {
        violation.detail = format!(
            "{}: m{id} was taken while {STALLED_CAPACITY} jobs already waited for a stalled \
             consumer, instead of going back to the producer as a sign to slow down",
            violation.detail
        );
    }
    ctx.require(violations);
}

/// With the consumer stalled, a queue of capacity `CAPACITY` must take the first `CAPACITY`
/// of m1..m`OFFERED` and hand each of the others back to the producer as
/// `Err(Full(that job))`.
fn producer_told(ctx: &mut Ctx) {
    let mut queue = Queue::with_capacity(CAPACITY);
    ctx.trace
        .event("consumer", EventKind::Stall)
        .note("takes nothing")
        .record();
    let mut accepted: Vec<u64> = Vec::new();
    for id in 1..=OFFERED {
        let full_before = accepted.len() >= CAPACITY;
        match offer(ctx, &mut queue, id) {
            Ok(()) if full_before => {
                let waiting = drain(ctx, &mut queue);
                let evicted: Vec<u64> = accepted
                    .iter()
                    .copied()
                    .filter(|old| !waiting.contains(old))
                    .collect();
                if !waiting.contains(&id) {
                    ctx.trace
                        .event("queue", EventKind::Lost)
                        .msg(id)
                        .note("dropped, yet try_send said Ok")
                        .record();
                    panic!(
                        "try_send(m{id}) returned Ok with the queue full ({CAPACITY} of \
                         {CAPACITY}), but m{id} is not in the queue (it holds {}): m{id} was \
                         dropped while the producer was told it was queued",
                        ids(&waiting)
                    );
                }
                if let Some(old) = evicted.first() {
                    ctx.trace
                        .event("queue", EventKind::Lost)
                        .msg(*old)
                        .note(format!("evicted to make room for m{id}"))
                        .record();
                    panic!(
                        "try_send(m{id}) returned Ok with the queue full ({CAPACITY} of \
                         {CAPACITY}); the queue now holds {}: m{old} was accepted earlier and \
                         was evicted to make room, and nobody was told",
                        ids(&waiting)
                    );
                }
                panic!(
                    "try_send(m{id}) returned Ok with the queue full ({CAPACITY} of {CAPACITY}); \
                     it now holds {} jobs",
                    waiting.len()
                );
            }
            Ok(()) => accepted.push(id),
            Err(Full(job)) => {
                assert_eq!(
                    job.id, id,
                    "try_send(m{id}) was refused but handed back m{} instead: the producer must \
                     get its own job back to hold it and offer it again",
                    job.id
                );
                assert!(
                    full_before,
                    "m{id} was refused while only {} of {CAPACITY} places were taken ({}): the \
                     queue must take jobs up to its capacity",
                    accepted.len(),
                    ids(&accepted)
                );
            }
        }
    }
    assert_eq!(
        accepted.len(),
        CAPACITY,
        "the queue took {} jobs ({}) with a capacity of {CAPACITY}",
        accepted.len(),
        ids(&accepted)
    );
}

/// After the stall the consumer receives exactly the accepted jobs, oldest first; the
/// drained queue takes jobs again, and one receive frees exactly one place.
fn nothing_silently_dropped(ctx: &mut Ctx) {
    let mut queue = Queue::with_capacity(CAPACITY);
    ctx.trace
        .event("consumer", EventKind::Stall)
        .note(format!("takes nothing while m1..m{OFFERED} are offered"))
        .record();
    let mut accepted = Vec::new();
    for id in 1..=OFFERED {
        if offer(ctx, &mut queue, id).is_ok() {
            accepted.push(id);
        }
    }
    ctx.trace
        .event("consumer", EventKind::Note)
        .note("resumes and drains the queue")
        .record();
    let received = drain(ctx, &mut queue);
    if let Some(missing) = accepted.iter().find(|id| !received.contains(id)) {
        ctx.trace
            .event("queue", EventKind::Lost)
            .msg(*missing)
            .note("accepted, never delivered")
            .record();
        panic!(
            "m{missing} was accepted (try_send returned Ok) and never reached the consumer: it \
             received {} after the queue accepted {}",
            ids(&received),
            ids(&accepted)
        );
    }
    assert_eq!(
        received,
        accepted,
        "the consumer received {} but the queue accepted {} in that order: a queue hands out \
         the oldest job first",
        ids(&received),
        ids(&accepted)
    );

    // The queue is empty again: the bound is about jobs waiting now, so it must take jobs.
    let first_new = OFFERED + 1;
    let last_new = OFFERED + CAPACITY as u64;
    let one_more = last_new + 1;
    let mut refilled = Vec::new();
    for id in first_new..=last_new {
        assert!(
            offer(ctx, &mut queue, id).is_ok(),
            "the consumer drained the queue, yet try_send(m{id}) was refused with {} job(s) \
             waiting: the bound must count jobs waiting now, not jobs ever sent",
            refilled.len()
        );
        refilled.push(id);
    }
    assert!(
        offer(ctx, &mut queue, one_more).is_err(),
        "try_send(m{one_more}) was accepted with {} already filling the {CAPACITY} places",
        ids(&refilled)
    );
    let first = queue.receive();
    let first_id = first.as_ref().map(|job| job.id);
    if let Some(id) = first_id {
        ctx.trace
            .event("queue", EventKind::Deliver)
            .to("consumer")
            .msg(id)
            .record();
    }
    assert_eq!(
        first_id,
        Some(first_new),
        "after {} were accepted, the consumer received {first_id:?} instead of m{first_new}",
        ids(&refilled)
    );
    assert!(
        offer(ctx, &mut queue, one_more).is_ok(),
        "the consumer took m{first_new}, freeing one place, yet try_send(m{one_more}) was \
         refused again"
    );
    let rest = drain(ctx, &mut queue);
    let expected: Vec<u64> = (first_new + 1..=one_more).collect();
    assert_eq!(
        rest,
        expected,
        "after m{first_new} left, the consumer received {} instead of {}",
        ids(&rest),
        ids(&expected)
    );
}

#[test]
fn checks() {
    run_stages(
        "bounded-queue",
        &[
            Stage {
                id: "depth-bounded-stalled-consumer",
                title: "The queue stays within its capacity while the consumer is stalled",
                mentor: "The consumer stopped and the producer kept going. What in this queue \
                         stops it from growing, and does it stop at the capacity or one job \
                         past it? Look at what `with_capacity` really promises.",
                run: depth_bounded_stalled_consumer,
            },
            Stage {
                id: "producer-told",
                title: "Every job the queue cannot take goes back to the producer",
                mentor: "Close! The depth is bounded now, but someone paid for it without \
                         knowing. An Ok is a promise to the producer; if the job is not kept, \
                         the producer must hear `Err(Full(job))`, with its own job, so it can \
                         slow down and offer it again.",
                run: producer_told,
            },
            Stage {
                id: "nothing-silently-dropped",
                title: "Accepted jobs reach the consumer in order, and room comes back",
                mentor: "Better! But now look at what happens after the consumer catches up. \
                         Backpressure has to let go when the queue drains: bound what is \
                         waiting now, and hand jobs out oldest first.",
                run: nothing_silently_dropped,
            },
        ],
    );
}
