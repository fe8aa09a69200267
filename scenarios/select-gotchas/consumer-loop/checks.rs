//! Checks for the consumer loop, as properties over generated histories: every message is
//! written on time, a flooded input cannot keep shutdown waiting, and a closed input ends
//! the loop.
//!
//! A history is messages sent at uneven times (a trickle a little faster than the flush
//! interval, bursts, silences), sometimes a flood (the input refilled as fast as the loop
//! empties it, for `FLOOD_BATCHES` batches, while the downstream takes `WRITE_MS` per
//! batch), and how it ends: shutdown signalled, or the input closed by the producer. Each
//! history runs on a fresh tokio runtime with paused time, and every wait is bounded: the
//! harness watches the loop for `WATCH_MS` after the end and no longer.
//!
//! A loop that spins never lets paused time move (tokio moves the clock only when every
//! task waits), so a timeout would never fire. The harness therefore polls `consume` itself,
//! in the check's own task, and counts the polls made at one instant of the paused clock:
//! past `SPIN_POLLS`, the loop is spinning, and the check stops polling it and says so. On
//! these histories the reference loop is polled at most 5 times at one instant, and a loop
//! that yields on every turn 26 times; a spinning one runs 128 turns a poll (tokio's
//! cooperative budget) and is polled again at once.
//!
//! The verdicts do not depend on which branch `select!` tries first when several are
//! ready: the bounds are met by a loop that picks at random, except with a chance below
//! 2^-40 per history (it would have to pick the flooded input over the shutdown, again and
//! again, for `SHUTDOWN_BOUND_MS / WRITE_MS` whole batches).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::paused;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, sleep_until, timeout_at, Instant};

/// How soon after shutdown is signalled, or the input closed, the loop must have returned.
const SHUTDOWN_BOUND_MS: u64 = 60;
/// How long the harness watches the loop after the end before it gives up on it.
const WATCH_MS: u64 = 2_000;
/// The input's capacity.
const INPUT_CAPACITY: usize = 16;
/// The downstream's capacity when it keeps up (it takes every batch at once).
const OUT_CAPACITY: usize = 64;
/// In a flood, the downstream has room for one batch and takes this long to write each.
const WRITE_MS: u64 = 5;
/// How many full batches a flood brings: it lasts about `FLOOD_BATCHES * WRITE_MS`.
const FLOOD_BATCHES: usize = 80;
/// Polls at one instant of the paused clock past which the loop is spinning.
const SPIN_POLLS: u32 = 1_000;
/// The first message id: ids past 100, so none is a small number by luck.
const FIRST_ID: u64 = 101;
/// Histories per property.
const CASES: u32 = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The check signals shutdown; the input stays open.
    Shutdown,
    /// The producer closes the input; shutdown is never signalled.
    Close,
}

#[derive(Clone, Debug)]
struct History {
    /// Each message, this long after the previous one (or the start).
    gaps_ms: Vec<u64>,
    /// A flood this long after the last message, and the end this long after it starts.
    flood: Option<(u64, u64)>,
    /// The end, this long after the last message (without a flood).
    end_after_ms: u64,
    end: End,
}

/// A history's times, worked out.
struct Timeline {
    sends: Vec<(u64, u64)>,
    /// When the flood starts, and how many messages it brings.
    flood: Option<(u64, usize)>,
    end_at_ms: u64,
}

impl History {
    fn timeline(&self) -> Timeline {
        let mut at_ms = 0;
        let mut sends = Vec::new();
        for gap in &self.gaps_ms {
            at_ms += gap.max(&1);
            sends.push((at_ms, FIRST_ID + sends.len() as u64));
        }
        match self.flood {
            Some((after_ms, end_after_ms)) => {
                let flood_at = at_ms + after_ms.max(1);
                Timeline {
                    sends,
                    flood: Some((flood_at, FLOOD_BATCHES * BATCH_MAX)),
                    end_at_ms: flood_at + end_after_ms.max(1),
                }
            }
            None => Timeline {
                sends,
                flood: None,
                end_at_ms: at_ms + self.end_after_ms.max(1),
            },
        }
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timeline = self.timeline();
        let mut steps: Vec<String> = timeline
            .sends
            .iter()
            .map(|(at_ms, id)| format!("send m{id} at {at_ms} ms"))
            .collect();
        if let Some((flood_at, count)) = timeline.flood {
            let first = FIRST_ID + timeline.sends.len() as u64;
            steps.push(format!(
                "from {flood_at} ms, flood the input with m{first} to m{} as fast as it takes \
                 them, while the downstream takes {WRITE_MS} ms per batch",
                first + count as u64 - 1
            ));
        }
        steps.push(match self.end {
            End::Shutdown => format!("signal shutdown at {} ms", timeline.end_at_ms),
            End::Close => format!("close the input at {} ms", timeline.end_at_ms),
        });
        write!(
            f,
            "flush every {FLUSH_EVERY_MS} ms, batches of {BATCH_MAX}: {}",
            prop::numbered(&steps)
        )
    }
}

/// Gaps between messages, per mille of the flush interval: mostly a trickle a little faster
/// than it, with bursts and silences.
fn gaps(count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u64>> {
    let per_mille = prop_oneof![
        4 => 300u64..950,
        1 => 1u64..300,
        1 => 950u64..2_500
    ];
    prop::proptest::collection::vec(per_mille, count).prop_map(|gaps| {
        gaps.into_iter()
            .map(|per_mille| FLUSH_EVERY_MS * per_mille / 1_000)
            .collect()
    })
}

fn quiet_histories(end: End) -> impl Strategy<Value = History> {
    (gaps(1..13), 1u64..2_000).prop_map(move |(gaps_ms, end_per_mille)| History {
        gaps_ms,
        flood: None,
        end_after_ms: FLUSH_EVERY_MS * end_per_mille / 1_000,
        end,
    })
}

fn flood_histories() -> impl Strategy<Value = History> {
    (gaps(0..4), 1u64..1_500, 1u64..150).prop_map(|(gaps_ms, after_per_mille, end_after_ms)| {
        History {
            gaps_ms,
            flood: Some((FLUSH_EVERY_MS * after_per_mille / 1_000, end_after_ms)),
            end_after_ms: 0,
            end: End::Shutdown,
        }
    })
}

/// How the loop's run ended, as far as the harness saw.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Returned(u64),
    /// Still running `WATCH_MS` after the end.
    Running,
    /// Polled `SPIN_POLLS` times at one instant.
    Spun(u64),
}

/// What one history did.
struct Run {
    /// (when, id), in the order the input took them.
    sent: Vec<(u64, u64)>,
    /// (when the downstream took it, the batch), in order.
    batches: Vec<(u64, Vec<u64>)>,
    /// What was still in the input after the loop returned.
    unread: Vec<u64>,
    end: End,
    end_at_ms: u64,
    flood: Option<(u64, usize)>,
    outcome: Outcome,
}

/// Polls a future and counts the polls made while the paused clock stands still.
struct SpinGuard<F: Future> {
    inner: Pin<Box<F>>,
    at: Option<Instant>,
    polls: u32,
}

impl<F: Future> Future for SpinGuard<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let now = Instant::now();
        let this = &mut *self;
        if this.at == Some(now) {
            this.polls += 1;
        } else {
            this.at = Some(now);
            this.polls = 1;
        }
        if this.polls > SPIN_POLLS {
            return Poll::Ready(None);
        }
        this.inner.as_mut().poll(cx).map(Some)
    }
}

fn play(history: &History, trace: &Trace) -> Run {
    let timeline = history.timeline();
    paused::block_on(async {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let now_ms = move || start.elapsed().as_millis() as u64;
        let (producer, mut input) = mpsc::channel::<u64>(INPUT_CAPACITY);
        let (stop, shutdown) = oneshot::channel::<()>();
        let slow = timeline.flood.is_some();
        let (out, mut written) = mpsc::channel::<Vec<u64>>(if slow { 1 } else { OUT_CAPACITY });
        let sent = RefCell::new(Vec::new());
        let batches = RefCell::new(Vec::new());
        let end_at_ms = timeline.end_at_ms;
        let watch_until = at(end_at_ms + WATCH_MS);
        let end = history.end;

        let produce = async {
            for &(at_ms, id) in &timeline.sends {
                sleep_until(at(at_ms)).await;
                trace.set_time_ms(at_ms);
                trace
                    .event("producer", EventKind::Send)
                    .to("consumer")
                    .msg(id)
                    .record();
                if producer.send(id).await.is_ok() {
                    sent.borrow_mut().push((at_ms, id));
                }
            }
            if let Some((flood_at, count)) = timeline.flood {
                sleep_until(at(flood_at)).await;
                trace.set_time_ms(flood_at);
                let first = FIRST_ID + timeline.sends.len() as u64;
                trace
                    .event("producer", EventKind::Send)
                    .to("consumer")
                    .note(format!(
                        "floods the input: m{first} onwards, as fast as it takes them"
                    ))
                    .record();
                let mut last = first;
                for id in first..first + count as u64 {
                    if producer.send(id).await.is_err() {
                        break;
                    }
                    sent.borrow_mut().push((now_ms(), id));
                    last = id;
                }
                trace.set_time_ms(now_ms());
                trace
                    .event("producer", EventKind::Note)
                    .note(format!("the flood ends: m{last} was the last"))
                    .record();
            }
            match end {
                End::Close => {
                    sleep_until(at(end_at_ms)).await;
                    trace.set_time_ms(end_at_ms);
                    trace
                        .event("producer", EventKind::Shutdown)
                        .to("consumer")
                        .note("closes the input")
                        .record();
                    drop(producer);
                }
                End::Shutdown => {
                    std::future::pending::<()>().await;
                    drop(producer);
                }
            }
            std::future::pending::<()>().await;
        };
        let signal = async {
            match end {
                End::Shutdown => {
                    sleep_until(at(end_at_ms)).await;
                    trace.set_time_ms(end_at_ms);
                    trace
                        .event("check", EventKind::Shutdown)
                        .to("consumer")
                        .note("signals shutdown")
                        .record();
                    let _ = stop.send(());
                }
                End::Close => {
                    // Held, never sent: only the closed input may end the loop.
                    std::future::pending::<()>().await;
                    drop(stop);
                }
            }
            std::future::pending::<()>().await;
        };
        let run = async {
            let outcome = {
                let guarded = SpinGuard {
                    inner: Box::pin(consume(&mut input, shutdown, out)),
                    at: None,
                    polls: 0,
                };
                tokio::select! {
                    biased;
                    finished = timeout_at(watch_until, guarded) => match finished {
                        Ok(Some(())) => Outcome::Returned(now_ms()),
                        Ok(None) => Outcome::Spun(now_ms()),
                        Err(_) => Outcome::Running,
                    },
                    () = produce => Outcome::Running,
                    () = signal => Outcome::Running,
                }
            };
            // Let the downstream take what the loop wrote last, without moving the clock,
            // so the story tells the write before the return.
            paused::settle().await;
            trace.set_time_ms(now_ms());
            match outcome {
                Outcome::Returned(_) => trace.event("consumer", EventKind::Exit).record(),
                Outcome::Running => trace
                    .event("consumer", EventKind::Leak)
                    .note(format!("still running {WATCH_MS} ms after the end"))
                    .record(),
                Outcome::Spun(_) => trace
                    .event("consumer", EventKind::Leak)
                    .note(format!(
                        "polled {SPIN_POLLS} times without the clock moving: it spins"
                    ))
                    .record(),
            }
            let mut unread = Vec::new();
            while let Ok(id) = input.try_recv() {
                unread.push(id);
            }
            (outcome, unread)
        };
        let collect = async {
            let mut shown = 0;
            while let Ok(Some(batch)) = timeout_at(watch_until, written.recv()).await {
                let at_ms = now_ms();
                // In a flood, only the batches written after shutdown are told.
                if !slow || (at_ms >= end_at_ms && shown < 8) {
                    shown += 1;
                    trace.set_time_ms(at_ms);
                    let mut event = trace
                        .event("downstream", EventKind::Process)
                        .note(format!("batch {batch:?}"));
                    if let Some(first) = batch.first() {
                        event = event.msg(*first);
                    }
                    event.record();
                }
                batches.borrow_mut().push((at_ms, batch));
                if slow {
                    sleep(Duration::from_millis(WRITE_MS)).await;
                }
            }
        };
        let ((outcome, unread), ()) = tokio::join!(run, collect);
        Run {
            sent: sent.into_inner(),
            batches: batches.into_inner(),
            unread,
            end,
            end_at_ms,
            flood: timeline.flood,
            outcome,
        }
    })
}

impl Run {
    fn describe_batches(&self) -> String {
        if self.batches.is_empty() {
            return "no batch was written at all".to_owned();
        }
        let shown: Vec<String> = self
            .batches
            .iter()
            .take(12)
            .map(|(at_ms, batch)| format!("{batch:?} at {at_ms} ms"))
            .collect();
        let more = self.batches.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("batches written: {}{more}", shown.join(", "))
    }

    fn the_end(&self) -> String {
        match self.end {
            End::Shutdown => format!("shutdown was signalled at {} ms", self.end_at_ms),
            End::Close => format!("the producer closed the input at {} ms", self.end_at_ms),
        }
    }
}

/// Promise: the loop returns within `SHUTDOWN_BOUND_MS` of the end.
fn returns_in_time(run: &Run) -> Result<(), String> {
    let end = run.the_end();
    // What it had read and not written when the harness gave up on it.
    let accounted: BTreeSet<u64> = run
        .batches
        .iter()
        .flat_map(|(_, batch)| batch.iter().copied())
        .chain(run.unread.iter().copied())
        .collect();
    let held: Vec<String> = run
        .sent
        .iter()
        .filter(|(_, id)| !accounted.contains(id))
        .map(|(_, id)| format!("m{id}"))
        .collect();
    let holding = if held.is_empty() {
        String::new()
    } else {
        format!(", holding {}, read and never written", held.join(", "))
    };
    let flood = match run.flood {
        Some((flood_at, _)) => {
            let last = run.sent.last().map_or(flood_at, |(at_ms, _)| *at_ms);
            format!(
                " while the input was flooded (from {flood_at} ms; the last message went in at \
                 {last} ms)"
            )
        }
        None => String::new(),
    };
    match run.outcome {
        Outcome::Returned(at_ms) if at_ms <= run.end_at_ms + SHUTDOWN_BOUND_MS => Ok(()),
        Outcome::Returned(at_ms) => {
            let after: Vec<&(u64, Vec<u64>)> = run
                .batches
                .iter()
                .filter(|(written_ms, _)| *written_ms > run.end_at_ms)
                .collect();
            let messages: usize = after.iter().map(|(_, batch)| batch.len()).sum();
            Err(format!(
                "{end}{flood}, and the loop returned only at {at_ms} ms, {} ms later: it must \
                 return within {SHUTDOWN_BOUND_MS} ms. Meanwhile it wrote {} more batch(es), \
                 {messages} messages it read after the signal",
                at_ms - run.end_at_ms,
                after.len()
            ))
        }
        Outcome::Running => Err(format!(
            "{end}{flood}, and the loop was still running {WATCH_MS} ms later{holding}: it \
             never returned; {}",
            run.describe_batches()
        )),
        Outcome::Spun(at_ms) => Err(format!(
            "{end}, and the loop never returned: at {at_ms} ms it had been polled {SPIN_POLLS} \
             times without the paused clock moving (a loop that waits for something is polled \
             a few times at one instant), so it never waited: it spins on a branch that is \
             always ready{holding}; {}",
            run.describe_batches()
        )),
    }
}

/// Promise: every message read is written once, in order; what was not read is still in
/// the input.
fn none_lost(run: &Run, trace: &Trace) -> Result<(), String> {
    let went_in: Vec<u64> = run.sent.iter().map(|(_, id)| *id).collect();
    let written: Vec<u64> = run
        .batches
        .iter()
        .flat_map(|(_, batch)| batch.iter().copied())
        .collect();
    let mut accounted = written.clone();
    accounted.extend(&run.unread);
    if accounted == went_in {
        return Ok(());
    }
    let seen: BTreeSet<u64> = accounted.iter().copied().collect();
    if let Some(&(sent_ms, id)) = run.sent.iter().find(|(_, id)| !seen.contains(id)) {
        trace
            .event("verdict", EventKind::Lost)
            .msg(id)
            .note("read, never written")
            .record();
        return Err(format!(
            "m{id}, sent at {sent_ms} ms, was read from the input but never written \
             downstream: {} and the loop returned with it still in hand; {}",
            run.the_end(),
            run.describe_batches()
        ));
    }
    Err(format!(
        "messages went in as {went_in:?}, and were written (then left unread) as \
         {accounted:?}: each must be written once, in the order it came; {}",
        run.describe_batches()
    ))
}

/// Promise: batches hold at most `BATCH_MAX`, a full one goes out at once, and no message
/// waits longer than `FLUSH_EVERY_MS`.
fn on_time(run: &Run) -> Result<(), String> {
    let sent_at: BTreeMap<u64, u64> = run.sent.iter().map(|(at_ms, id)| (*id, *at_ms)).collect();
    for (out_ms, batch) in &run.batches {
        if batch.len() > BATCH_MAX {
            return Err(format!(
                "a batch of {} was written at {out_ms} ms: a batch holds {BATCH_MAX} at most; {}",
                batch.len(),
                run.describe_batches()
            ));
        }
        if let (true, Some(last)) = (batch.len() == BATCH_MAX, batch.last()) {
            let full_ms = sent_at[last];
            if full_ms < *out_ms {
                return Err(format!(
                    "the batch {batch:?} was full at {full_ms} ms, when m{last} came, and was \
                     written only at {out_ms} ms: a full batch goes out at once; {}",
                    run.describe_batches()
                ));
            }
        }
        for id in batch {
            let sent_ms = sent_at[id];
            let waited = out_ms - sent_ms;
            if waited > FLUSH_EVERY_MS {
                let quiet = if run
                    .batches
                    .iter()
                    .all(|(at_ms, _)| *at_ms <= sent_ms || *at_ms >= *out_ms)
                {
                    format!(
                        "; nothing at all was written between {sent_ms} and {out_ms} ms: the \
                         flush timer never fired"
                    )
                } else {
                    String::new()
                };
                return Err(format!(
                    "m{id} was sent at {sent_ms} ms and written at {out_ms} ms, {waited} ms \
                     later: no message may wait longer than {FLUSH_EVERY_MS} ms{quiet}; {}",
                    run.describe_batches()
                ));
            }
        }
    }
    Ok(())
}

fn flushed_within_interval(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "every message is written within the flush interval",
        CASES,
        quiet_histories(End::Shutdown),
        |history| history.to_string(),
        |history, trace| {
            let run = play(history, trace);
            returns_in_time(&run)?;
            none_lost(&run, trace)?;
            on_time(&run)
        },
    );
}

fn shutdown_under_flood(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "shutdown is seen promptly while the input floods in",
        CASES,
        flood_histories(),
        |history| history.to_string(),
        |history, trace| {
            let run = play(history, trace);
            returns_in_time(&run)?;
            none_lost(&run, trace)
        },
    );
}

fn returns_when_input_closes(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "the loop writes what it holds and returns when the input closes",
        CASES,
        quiet_histories(End::Close),
        |history| history.to_string(),
        |history, trace| {
            let run = play(history, trace);
            returns_in_time(&run)?;
            none_lost(&run, trace)
        },
    );
}

#[test]
fn checks() {
    run_stages(
        "consumer-loop",
        &[
            Stage {
                id: "flushed-within-interval",
                title: "Every message is written within the flush interval",
                mentor: "A message waited too long, or was never written at all. Follow the \
                         one the run names: when did it arrive, and when did your flush timer \
                         fire after that? A sleep made inside the loop, or pushed back by every \
                         message, starts over each time a message wakes the loop, so on a \
                         steady trickle it never fires. And when shutdown comes, what happens \
                         to the batch you are holding?",
                run: flushed_within_interval,
            },
            Stage {
                id: "shutdown-under-flood",
                title: "Shutdown is seen promptly while the input floods in",
                mentor: "Better! Quiet traffic is written on time. But under a flood, shutdown \
                         was signalled and the loop kept reading. Which branch does your \
                         select! look at first, and is it ever not ready while the flood \
                         lasts? `biased;` polls the branches in the order written, every turn, \
                         whatever else you do between turns. And stopping means stopping: \
                         what the loop has not read yet can stay in the input.",
                run: shutdown_under_flood,
            },
            Stage {
                id: "returns-when-input-closes",
                title: "When the input closes, the loop writes what it holds and returns",
                mentor: "Last one! When the producer closes the input, the loop must write what \
                         it holds and return, without waiting for a shutdown that may never \
                         come. What does `recv()` give once the input is closed, and how often? \
                         A branch that matches `None` and does nothing is ready again at once, \
                         so the loop spins. A `Some(x) = ...` pattern disables the branch \
                         instead, and `else` runs only when every branch is disabled, which a \
                         timer and a shutdown never are.",
                run: returns_when_input_closes,
            },
        ],
    );
}
