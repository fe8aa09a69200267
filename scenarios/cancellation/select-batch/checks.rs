//! Checks for the batcher, as properties over generated histories: nothing sent is lost when
//! the flush timer fires mid-batch, every message goes out within the flush interval, and
//! the batcher sends what it holds and ends once the stream closes.
//!
//! A history is a flush interval that is not a round number (97, 137, 250 or 1_130 ms),
//! messages sent at uneven times (bursts, trickles, silences; ids past 100 that may repeat),
//! and the moment the producer closes the stream. Each history runs on a fresh tokio runtime
//! with paused time; every wait the harness makes is bounded, and a bound that runs out is a
//! failure, never ignored.
//!
//! A message and a timer are never ready at the same instant, whatever timers the batcher
//! keeps: every timer a batcher can set runs a whole number of flush intervals from its start
//! or from an arrival (or from a flush, which happens at one of those), so no two arrivals,
//! and not the close, share a remainder modulo the interval, and none falls on a multiple of
//! it. The downstream takes every batch at once, so the batcher never waits on it. That keeps
//! every verdict the same on every run, whichever branch `select!` happens to try first.
//!
//! One stage has a slow downstream, which must slow the batcher down and never cost a batch.
//! It stalls only where waiting on it cannot put two branches of a `select!` ready at once:
//! after a silence longer than the flush interval (so nothing is pending), twice
//! `BATCH_SIZE` messages arrive at one instant while the downstream, with room for one batch,
//! takes nothing; the second full batch finds no room, and no message arrives until the
//! downstream takes the first again. A batcher that waits for room meets, when its send
//! returns, at most the timer ready, never a message with it.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::paused;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout_at, Instant};

/// How long after the stream closes the batcher may take to send the rest and end.
const END_BOUND_MS: u64 = 750;
/// Both channels' capacity: more than any history sends, so nobody ever waits for room
/// (but the batcher on a slow downstream, which has room for `SLOW_DOWNSTREAM_CAPACITY`).
const CHANNEL_CAPACITY: usize = 61;
/// How many batches a slow downstream's channel holds.
const SLOW_DOWNSTREAM_CAPACITY: usize = 1;
/// How many messages arrive at once while the downstream stalls: two full batches, one more
/// than it has room for.
const BURST: usize = 2 * BATCH_SIZE;
/// Flush intervals to try: none a round number.
const FLUSH_INTERVALS_MS: [u64; 4] = [97, 137, 250, 1_130];
/// Histories per property; a history costs a fraction of a millisecond.
const CASES: u32 = 56;

/// One message: sent `after_ms` after the previous one (or the start), with a fresh id, or
/// the id of an earlier message (`repeats`, counted back from it): payloads repeat.
#[derive(Clone, Copy, Debug)]
struct Gap {
    after_ms: u64,
    repeats: Option<usize>,
}

/// The first message id: ids past 100, so none is a small number by luck.
const FIRST_ID: u64 = 101;

/// A slow downstream, after message `after` of the stream (0: before the first): a silence
/// of `quiet_ms` (longer than the flush interval), then the downstream stops taking
/// batches; `burst_after_ms` later, `BURST` messages arrive at one instant; `resume_after_ms`
/// after them the downstream takes batches again, and only then does the stream go on.
#[derive(Clone, Copy, Debug)]
struct Stall {
    after: usize,
    quiet_ms: u64,
    burst_after_ms: u64,
    resume_after_ms: u64,
}

#[derive(Clone, Debug)]
struct History {
    flush_interval_ms: u64,
    messages: Vec<Gap>,
    /// How long after the last message the producer closes the stream.
    close_after_ms: u64,
    stall: Option<Stall>,
}

/// A history's times, worked out: each message's send time, the close, and when the
/// downstream stalls and resumes.
struct Timeline {
    sends: Vec<(u64, u64)>,
    close_at_ms: u64,
    stall: Option<(u64, u64)>,
}

impl History {
    /// Moves each time on by a millisecond or two where needed, so that no two events share
    /// a remainder modulo the flush interval and none is a multiple of it.
    fn timeline(&self) -> Timeline {
        let interval = self.flush_interval_ms;
        let mut taken = BTreeSet::new();
        let mut place = |mut at_ms: u64| {
            while at_ms.is_multiple_of(interval) || taken.contains(&(at_ms % interval)) {
                at_ms += 1;
            }
            taken.insert(at_ms % interval);
            at_ms
        };
        let mut at_ms = 0;
        let mut sends: Vec<(u64, u64)> = Vec::new();
        let mut stalled = None;
        for place_in_stream in 0..=self.messages.len() {
            if let Some(stall) = self.stall.filter(|stall| stall.after == place_in_stream) {
                let from_ms = place(at_ms + stall.quiet_ms.max(interval + 1));
                // The whole burst at one instant: one remainder for all of it.
                at_ms = place(from_ms + stall.burst_after_ms.max(1));
                for _ in 0..BURST {
                    sends.push((at_ms, FIRST_ID + sends.len() as u64));
                }
                at_ms = place(at_ms + stall.resume_after_ms.max(1));
                stalled = Some((from_ms, at_ms));
            }
            let Some(gap) = self.messages.get(place_in_stream) else {
                break;
            };
            at_ms = place(at_ms + gap.after_ms.max(1));
            let id = match gap.repeats {
                Some(back) if back < sends.len() => sends[sends.len() - 1 - back].1,
                _ => FIRST_ID + sends.len() as u64,
            };
            sends.push((at_ms, id));
        }
        let close_at_ms = place(at_ms + self.close_after_ms.max(1));
        Timeline {
            sends,
            close_at_ms,
            stall: stalled,
        }
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timeline = self.timeline();
        let mut steps: Vec<String> = Vec::new();
        let mut stall = timeline.stall;
        let mut burst: Option<(u64, u64)> = None;
        for (at_ms, id) in &timeline.sends {
            if let Some((from_ms, until_ms)) = stall.filter(|(from_ms, _)| from_ms < at_ms) {
                steps.push(format!(
                    "at {from_ms} ms the downstream stops taking batches until {until_ms} ms (its \
                     channel has room for {SLOW_DOWNSTREAM_CAPACITY})"
                ));
                stall = None;
            }
            // A burst is one step: "send m101 to m108 at 102 ms".
            match burst {
                Some((burst_ms, first)) if burst_ms == *at_ms => {
                    steps.pop();
                    steps.push(format!("send m{first} to m{id} at {at_ms} ms"));
                }
                _ => {
                    burst = Some((*at_ms, *id));
                    steps.push(format!("send m{id} at {at_ms} ms"));
                }
            }
        }
        steps.push(format!("close the stream at {} ms", timeline.close_at_ms));
        write!(
            f,
            "flush interval {} ms, batches of {BATCH_SIZE}: {}",
            self.flush_interval_ms,
            prop::numbered(&steps)
        )
    }
}

/// How a stage's histories end.
#[derive(Clone, Copy)]
enum Close {
    /// Long enough after the last message that a batcher keeping its promises holds nothing.
    Quiet,
    /// At any moment, a partial batch or not.
    Any,
}

/// How a stage's messages come.
#[derive(Clone, Copy)]
enum Pace {
    /// Bursts and silences.
    Mixed,
    /// Mostly a trickle a little faster than the flush interval, with bursts and silences
    /// in between.
    Trickle,
}

fn histories(pace: Pace, close: Close) -> impl Strategy<Value = History> {
    let interval = prop::proptest::sample::select(FLUSH_INTERVALS_MS.to_vec());
    let fraction = match pace {
        // Per mille of the flush interval.
        Pace::Mixed => prop_oneof![2 => 1u64..150, 2 => 150u64..900, 1 => 900u64..2_500].boxed(),
        Pace::Trickle => prop_oneof![
            4 => 350u64..950,
            1 => 1u64..350,
            2 => 1u64..150,
            1 => 900u64..2_500
        ]
        .boxed(),
    };
    let repeats = prop_oneof![4 => Just(None), 1 => (0usize..6).prop_map(Some)];
    let gaps = prop::proptest::collection::vec((fraction, repeats), 1..13);
    let close_fraction = match close {
        Close::Quiet => (1_100u64..2_000).boxed(),
        Close::Any => prop_oneof![3 => 1u64..900, 1 => 900u64..2_000].boxed(),
    };
    (interval, gaps, close_fraction).prop_map(|(interval, gaps, close)| History {
        flush_interval_ms: interval,
        messages: gaps
            .into_iter()
            .map(|(per_mille, repeats)| Gap {
                after_ms: interval * per_mille / 1_000,
                repeats,
            })
            .collect(),
        close_after_ms: interval * close / 1_000,
        stall: None,
    })
}

/// Histories with a slow downstream somewhere in the stream (see [`Stall`]).
fn slow_downstream_histories() -> impl Strategy<Value = History> {
    let stall = (
        0usize..13,
        1_050u64..2_000,
        prop_oneof![3 => 1u64..300, 1 => 300u64..900],
        prop_oneof![2 => 1u64..1_000, 2 => 1_000u64..3_000],
    );
    (histories(Pace::Mixed, Close::Quiet), stall).prop_map(
        |(mut history, (after, quiet, burst_after, resume_after))| {
            let interval = history.flush_interval_ms;
            history.stall = Some(Stall {
                after: after.min(history.messages.len()),
                quiet_ms: interval * quiet / 1_000,
                burst_after_ms: interval * burst_after / 1_000,
                resume_after_ms: interval * resume_after / 1_000,
            });
            history
        },
    )
}

/// What one history did.
struct Run {
    flush_interval_ms: u64,
    /// (when, id), in the order sent.
    sent: Vec<(u64, u64)>,
    /// (when it came out downstream, the batch), in order.
    batches: Vec<(u64, Vec<u64>)>,
    close_at_ms: u64,
    /// When `join` returned; None if it had not within `END_BOUND_MS` of the close.
    ended_at_ms: Option<u64>,
    /// After `join` returned, with every ready task run.
    tasks_alive: u64,
    /// A send the batcher refused before the close: it had stopped reading.
    refused: Option<(u64, u64)>,
    /// When the downstream stopped taking batches, and when it took them again.
    stall: Option<(u64, u64)>,
}

fn play(history: &History, trace: &Trace) -> Run {
    let timeline = history.timeline();
    let interval = Duration::from_millis(history.flush_interval_ms);
    paused::block_on(async {
        let start = Instant::now();
        let now_ms = move || start.elapsed().as_millis() as u64;
        let (producer, messages) = mpsc::channel(CHANNEL_CAPACITY);
        let downstream_capacity = if timeline.stall.is_some() {
            SLOW_DOWNSTREAM_CAPACITY
        } else {
            CHANNEL_CAPACITY
        };
        let (batches_out, mut batches_in) = mpsc::channel(downstream_capacity);
        let batcher = Batcher::spawn(messages, batches_out, interval);
        let end_by = start + Duration::from_millis(timeline.close_at_ms + END_BOUND_MS);
        let refused = RefCell::new(None);
        let batches = RefCell::new(Vec::new());

        let produce = async {
            let mut producer = Some(producer);
            for &(at_ms, id) in &timeline.sends {
                sleep_until(start + Duration::from_millis(at_ms)).await;
                trace.set_time_ms(at_ms);
                trace
                    .event("producer", EventKind::Send)
                    .to("batcher")
                    .msg(id)
                    .record();
                let Some(open) = producer.as_ref() else { break };
                if open.send(id).await.is_err() {
                    trace
                        .event("batcher", EventKind::Reject)
                        .msg(id)
                        .note("the batcher stopped reading before the stream closed")
                        .record();
                    *refused.borrow_mut() = Some((at_ms, id));
                    producer = None;
                }
            }
            sleep_until(start + Duration::from_millis(timeline.close_at_ms)).await;
            trace.set_time_ms(timeline.close_at_ms);
            trace
                .event("producer", EventKind::Shutdown)
                .to("batcher")
                .note("closes the stream")
                .record();
            drop(producer);
            let ended = timeout_at(end_by, batcher.join()).await.is_ok();
            trace.set_time_ms(now_ms());
            if ended {
                trace.event("batcher", EventKind::Exit).record();
                Some(now_ms())
            } else {
                trace
                    .event("batcher", EventKind::Leak)
                    .note(format!(
                        "still running {END_BOUND_MS} ms after the stream closed"
                    ))
                    .record();
                None
            }
        };
        let take = |batch: Vec<u64>| {
            let at_ms = now_ms();
            trace.set_time_ms(at_ms);
            let mut batches = batches.borrow_mut();
            for id in &batch {
                trace
                    .event("downstream", EventKind::Process)
                    .msg(*id)
                    .note(format!("batch #{} {batch:?}", batches.len() + 1))
                    .record();
            }
            batches.push((at_ms, batch));
        };
        let collect = async {
            if let Some((from_ms, until_ms)) = timeline.stall {
                // A slow downstream: nothing is taken from `from_ms` to `until_ms`, and the
                // batches channel fills up.
                let from = start + Duration::from_millis(from_ms);
                while let Ok(Some(batch)) = timeout_at(from, batches_in.recv()).await {
                    take(batch);
                }
                trace.set_time_ms(now_ms());
                trace
                    .event("downstream", EventKind::Stall)
                    .note(format!(
                        "takes no batch until {until_ms} ms; its channel has room for \
                         {SLOW_DOWNSTREAM_CAPACITY}"
                    ))
                    .record();
                sleep_until(start + Duration::from_millis(until_ms)).await;
            }
            // Bounded like the batcher: past `end_by`, whatever has not come out never will.
            while let Ok(Some(batch)) = timeout_at(end_by, batches_in.recv()).await {
                take(batch);
            }
        };
        let (ended_at_ms, ()) = tokio::join!(produce, collect);
        let tasks_alive = if ended_at_ms.is_some() {
            paused::tasks_alive_after_settling().await
        } else {
            0
        };
        if tasks_alive > 0 {
            trace
                .event("runtime", EventKind::Leak)
                .note(format!("{tasks_alive} task(s) still alive after join()"))
                .record();
        }
        Run {
            flush_interval_ms: history.flush_interval_ms,
            sent: timeline.sends.clone(),
            batches: batches.into_inner(),
            close_at_ms: timeline.close_at_ms,
            ended_at_ms,
            tasks_alive,
            refused: refused.into_inner(),
            stall: timeline.stall,
        }
    })
}

impl Run {
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

    /// When each message came out, by its place in the stream; None if it did not.
    fn out_times(&self) -> Vec<Option<u64>> {
        let mut out: Vec<Option<u64>> = vec![None; self.sent.len()];
        let mut next = 0;
        for (at_ms, batch) in &self.batches {
            for id in batch {
                // Matched in order: the first message with this id that is not out yet.
                if let Some(place) = (next..self.sent.len())
                    .chain(0..next)
                    .find(|&place| self.sent[place].1 == *id && out[place].is_none())
                {
                    out[place] = Some(*at_ms);
                    next = place + 1;
                }
            }
        }
        out
    }
}

/// Promise 1: every message comes out, once, in the order it went in.
fn none_lost(run: &Run, trace: &Trace) -> Result<(), String> {
    let flush = run.flush_interval_ms;
    if let Some((at_ms, id)) = run.refused {
        return Err(format!(
            "at {at_ms} ms m{id} could not be sent: the batcher had stopped reading, although \
             the stream stayed open until {} ms; {}",
            run.close_at_ms,
            run.describe_batches()
        ));
    }
    let out_times = run.out_times();
    if let Some(place) = out_times.iter().position(Option::is_none) {
        let (sent_ms, id) = run.sent[place];
        trace
            .event("verdict", EventKind::Lost)
            .msg(id)
            .note("never came out")
            .record();
        let last_out = run.batches.last().map_or(0, |(at_ms, _)| *at_ms);
        let ending = match run.ended_at_ms {
            Some(ended_ms) => format!("the batcher ended at {ended_ms} ms"),
            None => format!("the batcher was still running {END_BOUND_MS} ms later"),
        };
        let when = if last_out < sent_ms {
            "nothing came out after it was sent".to_owned()
        } else {
            format!("batches kept coming out until {last_out} ms")
        };
        let slow = match run.stall {
            Some((from_ms, until_ms)) => format!(
                ", and the downstream took no batch from {from_ms} to {until_ms} ms (its channel \
                 has room for {SLOW_DOWNSTREAM_CAPACITY})"
            ),
            None => String::new(),
        };
        return Err(format!(
            "m{id}, message {} of the stream, was sent at {sent_ms} ms and never came out in any \
             batch: {when}, the stream closed at {} ms and {ending}, with a flush every {flush} \
             ms{slow}; {}",
            place + 1,
            run.close_at_ms,
            run.describe_batches()
        ));
    }
    let went_in: Vec<u64> = run.sent.iter().map(|(_, id)| *id).collect();
    let came_out: Vec<u64> = run
        .batches
        .iter()
        .flat_map(|(_, batch)| batch.iter().copied())
        .collect();
    if came_out.len() > went_in.len() {
        return Err(format!(
            "{} messages went in and {} came out: some came out more than once; {}",
            went_in.len(),
            came_out.len(),
            run.describe_batches()
        ));
    }
    if came_out != went_in {
        return Err(format!(
            "messages went in as {went_in:?} and came out as {came_out:?}: the batcher must keep \
             their order; {}",
            run.describe_batches()
        ));
    }
    Ok(())
}

/// Promise 2: batches hold at most `BATCH_SIZE`, a full one goes out at once, and no
/// message waits longer than the flush interval.
fn on_time(run: &Run) -> Result<(), String> {
    let flush = run.flush_interval_ms;
    let mut place = 0;
    for (out_ms, batch) in &run.batches {
        if batch.len() > BATCH_SIZE {
            return Err(format!(
                "a batch of {} came out at {out_ms} ms: a batch holds {BATCH_SIZE} at most; {}",
                batch.len(),
                run.describe_batches()
            ));
        }
        let last = place + batch.len() - 1;
        if batch.len() == BATCH_SIZE && run.sent[last].0 < *out_ms {
            return Err(format!(
                "the batch {batch:?} was full at {} ms, when m{} came, and went out only at \
                 {out_ms} ms: a full batch goes out at once; {}",
                run.sent[last].0,
                run.sent[last].1,
                run.describe_batches()
            ));
        }
        for &(sent_ms, id) in &run.sent[place..=last] {
            let waited_ms = out_ms - sent_ms;
            if waited_ms > flush {
                return Err(format!(
                    "m{id} was sent at {sent_ms} ms and came out at {out_ms} ms, {waited_ms} ms \
                     later: no message may wait longer than the flush interval, {flush} ms; {}",
                    run.describe_batches()
                ));
            }
        }
        place = last + 1;
    }
    Ok(())
}

/// Promise 3: once the stream closes, the batcher ends, within its bound, leaving no task.
fn ends(run: &Run) -> Result<(), String> {
    let Some(ended_ms) = run.ended_at_ms else {
        return Err(format!(
            "the producer closed the stream at {} ms and everything it sent had come out, but \
             the batcher was still running {END_BOUND_MS} ms later: a task that outlives its \
             input never ends, and `join` never returns; {}",
            run.close_at_ms,
            run.describe_batches()
        ));
    };
    if run.tasks_alive > 0 {
        return Err(format!(
            "the producer closed the stream at {} ms and join() returned at {ended_ms} ms, but \
             {} task(s) were still alive after it, with every ready task run: something the \
             batcher started outlived it",
            run.close_at_ms, run.tasks_alive
        ));
    }
    Ok(())
}

fn judge(run: &Run, trace: &Trace, upto: usize) -> Result<(), String> {
    none_lost(run, trace)?;
    if upto >= 2 {
        on_time(run)?;
    }
    if upto >= 3 {
        ends(run)?;
    }
    Ok(())
}

fn property(ctx: &mut Ctx, name: &str, pace: Pace, close: Close, upto: usize) {
    prop::for_all(
        ctx,
        name,
        CASES,
        histories(pace, close),
        |history| history.to_string(),
        |history, trace| judge(&play(history, trace), trace, upto),
    );
}

fn slow_downstream_loses_nothing(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "a slow downstream delays batches and loses none",
        CASES,
        slow_downstream_histories(),
        |history| history.to_string(),
        |history, trace| {
            // Late, yes: a message waits while the downstream takes nothing. Lost, never; and
            // the batcher still ends.
            let run = play(history, trace);
            none_lost(&run, trace)?;
            ends(&run)
        },
    );
}

fn no_message_lost(ctx: &mut Ctx) {
    property(
        ctx,
        "no message is lost when the timer fires mid-batch",
        Pace::Mixed,
        Close::Quiet,
        1,
    );
}

fn flushed_within_interval(ctx: &mut Ctx) {
    property(
        ctx,
        "every message goes out within the flush interval",
        Pace::Trickle,
        Close::Quiet,
        2,
    );
}

fn ends_when_stream_closes(ctx: &mut Ctx) {
    property(
        ctx,
        "the batcher sends what it holds and ends when the stream closes",
        Pace::Mixed,
        Close::Any,
        3,
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
                mentor: "Not every message came out exactly once, in the order it went in. \
                         Follow the one the run names from the moment `recv()` handed it over: \
                         where was it when the flush timer fired? When another branch wins the \
                         select!, what happens to the losing branch's future, and to everything \
                         it was holding? (Changing which branch is polled first, with \
                         `biased;`, doesn't change what happens to the loser.)",
                run: no_message_lost,
            },
            Stage {
                id: "flushed-within-interval",
                title: "No message waits longer than the flush interval",
                mentor: "Close! Nothing is lost now. But a batch came out too late or too big: a \
                         message waited longer than the flush interval, a full batch waited at \
                         all, or a batch held more than BATCH_SIZE. When does your timer fire, \
                         and what moves it? A sleep, interval or timeout made afresh on every \
                         turn of the loop, or pushed back by every message, starts over while \
                         messages keep coming; a partial batch held inside a future is out of \
                         the timer's reach; and a full batch should not wait for the timer.",
                run: flushed_within_interval,
            },
            Stage {
                id: "ends-when-stream-closes",
                title: "When the stream closes, the rest goes out and the batcher ends",
                mentor: "Better! Batches are whole and on time. But when the producer closes the \
                         stream, the batcher must send what it holds, end, and leave nothing \
                         running. What does `recv()` return once the stream is closed, and what \
                         does your loop do with it? What else did the batcher start, and who \
                         stops it?",
                run: ends_when_stream_closes,
            },
            Stage {
                id: "slow-downstream-loses-nothing",
                title: "A slow downstream delays batches and loses none",
                mentor: "Last one! A downstream can be slow: for a while it takes nothing, and \
                         its channel has room for one batch. A batch your batcher cannot hand \
                         over yet still holds messages that went in. Follow the lost one: what \
                         did your batcher do with its batch when the channel was full? Waiting \
                         for room is backpressure: the batcher slows down, the input channel \
                         (bounded) holds what comes meanwhile, and nothing is lost.",
                run: slow_downstream_loses_nothing,
            },
        ],
    );
}
