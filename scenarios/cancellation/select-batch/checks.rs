//! Checks for the batcher: nothing sent is lost when the flush timer wins a `select!`, a
//! partial batch goes out within the flush interval, and the batcher ends once the stream
//! closes.
//!
//! Everything runs on tokio's paused clock, and the scripts are timed so that a message and
//! a timer are never ready at the same instant. The flush interval is 100 ms, and within a
//! script every message is sent at its own offset within its 100 ms period (1, 72, 43 and 14
//! ms for the trickle), never at 0, and the stream closes at offset 50. A timer the batcher
//! sets runs from its start (offset 0) or from an arrival (that arrival's offset), so it
//! cannot fire at the instant another message arrives. That keeps the verdict the same on
//! every run, whichever branch `select!` happens to try first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::invariant::{self, Violation};
use bughunt_kit::paused;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

const FLUSH_INTERVAL_MS: u64 = 100;
/// How long after the stream closes the batcher may take to send the rest and end.
const END_BOUND_MS: u64 = 1_000;
/// Both channels' capacity: more than any script sends, so nobody ever waits for room.
const CHANNEL_CAPACITY: usize = 16;

#[derive(Clone, Copy)]
enum Step {
    Send(u64),
    Close,
}
use Step::{Close, Send};

/// Batches as they came out downstream: (when, in ms; the batch).
type Batches = Vec<(u64, Vec<u64>)>;

/// What came out of one scripted run.
struct Run {
    sent_at_ms: BTreeMap<u64, u64>,
    /// Each batch that came out, with when, in order.
    batches: Batches,
    closed_at_ms: u64,
    /// The batcher ended within `END_BOUND_MS` of the close.
    ended: bool,
}

impl Run {
    fn came_out(&self) -> Vec<u64> {
        self.batches
            .iter()
            .flat_map(|(_, batch)| batch.iter().copied())
            .collect()
    }

    fn describe_batches(&self) -> String {
        if self.batches.is_empty() {
            return "no batch came out at all".to_owned();
        }
        let shown: Vec<String> = self
            .batches
            .iter()
            .map(|(at_ms, batch)| format!("{batch:?} at {at_ms} ms"))
            .collect();
        format!("batches out: {}", shown.join(", "))
    }
}

fn names(ids: &[u64]) -> String {
    let named: Vec<String> = ids.iter().map(|id| format!("m{id}")).collect();
    named.join(", ")
}

/// Runs a batcher with a 100 ms flush interval against `script` (each step at its time in
/// ms), collects every batch it sends with the time it came out, and after the close waits
/// up to `END_BOUND_MS` for the batcher to end.
fn run_script(trace: &Trace, script: &[(u64, Step)]) -> Run {
    paused::block_on(async {
        let start = Instant::now();
        let now_ms = move || start.elapsed().as_millis() as u64;
        let (producer, messages) = mpsc::channel(CHANNEL_CAPACITY);
        let (batches_out, mut batches_in) = mpsc::channel(CHANNEL_CAPACITY);
        let batcher = Batcher::spawn(
            messages,
            batches_out,
            Duration::from_millis(FLUSH_INTERVAL_MS),
        );

        let collected: Arc<Mutex<Batches>> = Arc::default();
        let downstream = tokio::spawn({
            let trace = trace.clone();
            let collected = Arc::clone(&collected);
            async move {
                while let Some(batch) = batches_in.recv().await {
                    let at_ms = now_ms();
                    trace.set_time_ms(at_ms);
                    let mut collected = collected.lock().unwrap_or_else(|p| p.into_inner());
                    for id in &batch {
                        trace
                            .event("downstream", EventKind::Process)
                            .msg(*id)
                            .note(format!("batch #{} {batch:?}", collected.len() + 1))
                            .record();
                    }
                    collected.push((at_ms, batch));
                }
            }
        });

        let mut sent_at_ms = BTreeMap::new();
        let mut closed_at_ms = 0;
        let mut producer = Some(producer);
        for &(at_ms, step) in script {
            sleep_until(start + Duration::from_millis(at_ms)).await;
            trace.set_time_ms(at_ms);
            match step {
                Send(id) => {
                    trace
                        .event("producer", EventKind::Send)
                        .to("batcher")
                        .msg(id)
                        .record();
                    sent_at_ms.insert(id, at_ms);
                    let open = producer.as_ref().expect("the script sends after its close");
                    open.send(id).await.unwrap_or_else(|_| {
                        panic!(
                            "the batcher stopped reading at {at_ms} ms, before the stream \
                             closed: m{id} could not be sent"
                        )
                    });
                }
                Close => {
                    trace
                        .event("producer", EventKind::Shutdown)
                        .to("batcher")
                        .note("closes the stream")
                        .record();
                    producer = None;
                    closed_at_ms = at_ms;
                }
            }
        }

        let bound = Duration::from_millis(END_BOUND_MS);
        let ended = timeout(bound, batcher.join()).await.is_ok();
        if ended {
            // The batcher is gone, so the batches channel is closed: the downstream drains it.
            let _ = timeout(bound, downstream).await;
        }
        trace.set_time_ms(now_ms());
        if ended {
            trace.event("batcher", EventKind::Exit).record();
        } else {
            trace
                .event("batcher", EventKind::Leak)
                .note(format!(
                    "still running {END_BOUND_MS} ms after the stream closed"
                ))
                .record();
        }
        let batches = collected.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Run {
            sent_at_ms,
            batches,
            closed_at_ms,
            ended,
        }
    })
}

/// Draws the violations into the trace and fails the stage with `message`.
fn fail(ctx: &Ctx, violations: &[Violation], message: String) -> ! {
    invariant::mark(&ctx.trace, violations);
    panic!("{message}");
}

/// Every message sent comes out in some batch, once, in order.
fn require_each_once_in_order(ctx: &Ctx, run: &Run) {
    let lost = invariant::at_least_once(&ctx.trace);
    if !lost.is_empty() {
        let ids: Vec<u64> = lost.iter().filter_map(|v| v.msg).collect();
        let when: Vec<String> = ids
            .iter()
            .map(|id| format!("m{id} at {} ms", run.sent_at_ms[id]))
            .collect();
        fail(
            ctx,
            &lost,
            format!(
                "{} never came out in any batch (sent {}; the stream stayed open until {} ms, \
                 with a flush every {FLUSH_INTERVAL_MS} ms); {}",
                names(&ids),
                when.join(", "),
                run.closed_at_ms,
                run.describe_batches()
            ),
        );
    }
    let duplicated = invariant::exactly_once_effects(&ctx.trace);
    if !duplicated.is_empty() {
        let ids: Vec<u64> = duplicated.iter().filter_map(|v| v.msg).collect();
        fail(
            ctx,
            &duplicated,
            format!(
                "{} came out more than once; {}",
                names(&ids),
                run.describe_batches()
            ),
        );
    }
    let went_in: Vec<u64> = run.sent_at_ms.keys().copied().collect();
    let came_out = run.came_out();
    assert!(
        came_out == went_in,
        "messages went in as {went_in:?} and came out as {came_out:?}: the batcher must keep \
         their order; {}",
        run.describe_batches()
    );
}

/// m1 and m2 wait in a partial batch when the flush timer fires at 100 ms; m3..m6 fill a
/// whole batch at 106 ms; m7 waits alone when the timer fires at 300 ms.
fn no_message_lost(ctx: &mut Ctx) {
    let script = [
        (1, Send(1)),
        (2, Send(2)),
        (103, Send(3)),
        (104, Send(4)),
        (105, Send(5)),
        (106, Send(6)),
        (207, Send(7)),
        (350, Close),
    ];
    let run = run_script(&ctx.trace, &script);
    require_each_once_in_order(ctx, &run);
}

/// A trickle, one message every 71 ms: a whole batch takes longer than the flush interval to
/// fill, so the flush timer has to send the partial batches, and no message may wait longer
/// than the flush interval.
fn flushed_within_interval(ctx: &mut Ctx) {
    let script = [
        (1, Send(1)),
        (72, Send(2)),
        (143, Send(3)),
        (214, Send(4)),
        (450, Close),
    ];
    let run = run_script(&ctx.trace, &script);
    require_each_once_in_order(ctx, &run);
    for (out_ms, batch) in &run.batches {
        for id in batch {
            let sent_ms = run.sent_at_ms[id];
            let waited_ms = out_ms - sent_ms;
            assert!(
                waited_ms <= FLUSH_INTERVAL_MS,
                "m{id} was sent at {sent_ms} ms and came out at {out_ms} ms, {waited_ms} ms \
                 later: no message may wait longer than the flush interval, {FLUSH_INTERVAL_MS} \
                 ms. With one message every 71 ms, a batch of {BATCH_SIZE} takes {} ms to \
                 fill, so the flush has to come from the timer; {}",
                71 * (BATCH_SIZE as u64 - 1),
                run.describe_batches()
            );
        }
    }
}

/// The producer closes the stream at 50 ms with m1 and m2 in a partial batch: they go out
/// and the batcher ends.
fn ends_when_stream_closes(ctx: &mut Ctx) {
    let script = [(1, Send(1)), (2, Send(2)), (50, Close)];
    let run = run_script(&ctx.trace, &script);
    require_each_once_in_order(ctx, &run);
    assert!(
        run.ended,
        "the producer closed the stream at {} ms and m1, m2 went out, but the batcher was \
         still running {END_BOUND_MS} ms later: a task that outlives its input never ends, and \
         `join` never returns; {}",
        run.closed_at_ms,
        run.describe_batches()
    );
}

#[test]
fn checks() {
    run_stages(
        "select-batch",
        &[
            Stage {
                id: "no-message-lost",
                title: "Every message sent comes out in a batch, once, in order",
                mentor: "Some messages went into the batcher and never came out. When the flush \
                         timer wins the select!, what happens to the other branch's future, \
                         and to everything that future was holding? (Changing which branch is \
                         polled first, with `biased;`, doesn't change what happens to the loser.)",
                run: no_message_lost,
            },
            Stage {
                id: "flushed-within-interval",
                title: "A partial batch goes out within the flush interval",
                mentor: "Close! Nothing is lost now. But on a slow trickle, messages sit in a \
                         half-full batch far longer than flush_interval. Either the timer \
                         can't see the partial batch (it's still inside a future), or the timer \
                         never fires: a sleep or an interval created afresh on every turn of \
                         the loop starts over with each message.",
                run: flushed_within_interval,
            },
            Stage {
                id: "ends-when-stream-closes",
                title: "When the stream closes, the rest goes out and the batcher ends",
                mentor: "Better! Batches are whole and on time. But when the producer closes the \
                         stream, the batcher must send what it holds and end. What does \
                         `recv()` return once the stream is closed, and what does your select! \
                         do with it? A `Some(x) = ...` pattern just disables the branch, and \
                         the timer keeps the loop alive forever; returning at once throws the \
                         partial batch away.",
                run: ends_when_stream_closes,
            },
        ],
    );
}
