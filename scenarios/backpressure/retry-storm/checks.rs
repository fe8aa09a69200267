//! Checks for the retry policy: during an outage the consumers back off, no retry waits past
//! the cap, consumers that failed together do not retry together, and a message is
//! dead-lettered exactly at its deadline.
//!
//! Every stage runs a fleet of consumers on the simulated clock, each with a `Retrier` of its
//! own and a `Rng` seeded apart from the others, against a downstream that is down for a
//! while (outages of seconds to minutes) or rejects some messages for good. Calls take time
//! (none, a millisecond, a slow timeout), drawn per history. Only what the policy promises is
//! checked: how its delays are drawn (full, equal or decorrelated jitter, a token bucket) is
//! its own business.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::clock::Clock;
use bughunt_kit::jitter::Rng;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// Consumers in the fleet stages.
const FLEET: usize = 20;
/// A wave: this many consumers of the fleet (three quarters) making the same retry at once.
const WAVE: usize = FLEET * 3 / 4;
/// Consumers whose calls are drawn in a failing stage's trace.
const TOLD: usize = 2;
/// Events drawn for each told consumer: the start of the story, not all of it.
const TOLD_EVENTS_MAX: usize = 40;
/// How long one call may take in the histories: from at once to a slow timeout.
const CALL_MS: [u64; 5] = [0, 1, 40, 900, 2_500];
/// The most calls one history may make before the check stops it.
const CALLS_MAX: usize = 200_000;

fn name(consumer: usize) -> String {
    format!("c{}", consumer + 1)
}

/// "1 failed call", "3 failed calls".
fn calls_word(count: u32) -> String {
    if count == 1 {
        "1 failed call".to_owned()
    } else {
        format!("{count} failed calls")
    }
}

/// How long a call takes.
#[derive(Clone, Copy, Debug)]
enum CallTime {
    Ms(u64),
    /// The call fails exactly at its message's deadline, plus this offset (-1, 0, +1); a
    /// message that has not failed yet takes 1 ms.
    ToDeadline(i8),
}

/// What the downstream does with a call.
#[derive(Clone, Debug, Default)]
struct Downstream {
    /// Down from the first instant to the second (excluded): every call started then fails.
    outage_ms: (u64, u64),
    /// Message id → how many of its calls fail before one succeeds (`u32::MAX`: never).
    rejects: BTreeMap<u64, u32>,
}

impl Downstream {
    fn fails(&self, at_ms: u64, id: u64, calls_before: u32) -> bool {
        let (from_ms, to_ms) = self.outage_ms;
        (from_ms..to_ms).contains(&at_ms)
            || self
                .rejects
                .get(&id)
                .is_some_and(|fails| calls_before < *fails)
    }
}

/// What one step of the fleet did, for a stage to judge.
#[derive(Clone, Copy, Debug)]
enum Happened {
    /// A consumer started a call.
    Called,
    /// A call failed, and the consumer's retrier said what next.
    Failed {
        consumer: usize,
        id: u64,
        at_ms: u64,
        next: Next,
    },
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Call,
    Done { failed: bool },
}

struct Consumer {
    retrier: Retrier,
    backlog: VecDeque<u64>,
    current: Option<u64>,
    /// Instants of every call this consumer started.
    calls_ms: Vec<u64>,
    drawn: usize,
}

/// A fleet of consumers, each with its own retrier, calling one downstream on one clock.
struct Fleet<'t> {
    trace: &'t Trace,
    clock: Clock,
    downstream: Downstream,
    call_times: Vec<CallTime>,
    consumers: Vec<Consumer>,
    /// (instant, order of scheduling) → what happens then, to whom.
    agenda: BTreeMap<(u64, u64), (usize, Step)>,
    scheduled: u64,
    /// Calls made so far, per message id.
    calls_of: BTreeMap<u64, u32>,
    /// First failure of each message, for the deadline.
    first_failure_ms: BTreeMap<u64, u64>,
    calls: usize,
}

impl<'t> Fleet<'t> {
    /// `backlogs[c]` are the message ids consumer c works through, in order; `seed` seeds
    /// every consumer's generator, each differently.
    fn new(
        trace: &'t Trace,
        seed: u64,
        backlogs: Vec<Vec<u64>>,
        downstream: Downstream,
        call_times: Vec<CallTime>,
    ) -> Self {
        let clock = Clock::new();
        let mut seeds = Rng::seeded(seed);
        let consumers = backlogs
            .into_iter()
            .map(|backlog| Consumer {
                retrier: Retrier::new(clock.clone(), Rng::seeded(seeds.next_u64())),
                backlog: backlog.into(),
                current: None,
                calls_ms: Vec::new(),
                drawn: 0,
            })
            .collect();
        let mut fleet = Self {
            trace,
            clock,
            downstream,
            call_times,
            consumers,
            agenda: BTreeMap::new(),
            scheduled: 0,
            calls_of: BTreeMap::new(),
            first_failure_ms: BTreeMap::new(),
            calls: 0,
        };
        for consumer in 0..fleet.consumers.len() {
            fleet.take_next(consumer, 0);
        }
        fleet
    }

    fn schedule(&mut self, at_ms: u64, consumer: usize, step: Step) {
        self.scheduled += 1;
        self.agenda
            .insert((at_ms, self.scheduled), (consumer, step));
    }

    fn take_next(&mut self, consumer: usize, at_ms: u64) {
        let next = self.consumers[consumer].backlog.pop_front();
        self.consumers[consumer].current = next;
        if next.is_some() {
            self.schedule(at_ms, consumer, Step::Call);
        }
    }

    /// Draws `what` between `consumer` and `other` (`toward` the other, or back from it),
    /// for the first few events of the told consumers only: the start of the story.
    fn draw(&mut self, consumer: usize, toward: bool, other: &str, id: u64, what: String) {
        let told = &mut self.consumers[consumer];
        if consumer >= TOLD || told.drawn >= TOLD_EVENTS_MAX {
            return;
        }
        told.drawn += 1;
        let (from, to) = if toward {
            (name(consumer), other.to_owned())
        } else {
            (other.to_owned(), name(consumer))
        };
        self.trace
            .event(from, EventKind::Note)
            .to(to)
            .msg(id)
            .note(what)
            .record();
    }

    fn call_ms(&self, id: u64, at_ms: u64) -> u64 {
        let index = self.calls % self.call_times.len().max(1);
        match self
            .call_times
            .get(index)
            .copied()
            .unwrap_or(CallTime::Ms(0))
        {
            CallTime::Ms(ms) => ms,
            CallTime::ToDeadline(offset_ms) => self
                .first_failure_ms
                .get(&id)
                .map(|first_ms| {
                    (first_ms + GIVE_UP_AFTER_MS).saturating_add_signed(i64::from(offset_ms))
                })
                .filter(|end_ms| *end_ms >= at_ms)
                .map_or(1, |end_ms| end_ms - at_ms),
        }
    }

    /// Runs the next step before `until_ms`, if any; `None` when the fleet is done (or
    /// waits past `until_ms`).
    fn step(&mut self, until_ms: u64) -> Result<Option<Happened>, String> {
        let Some((&(at_ms, order), &(consumer, step))) = self.agenda.first_key_value() else {
            return Ok(None);
        };
        if at_ms >= until_ms {
            return Ok(None);
        }
        self.agenda.remove(&(at_ms, order));
        let now_ms = self.clock.now_ms();
        if at_ms > now_ms {
            self.trace
                .set_time_ms(self.clock.advance_ms(at_ms - now_ms));
        }
        let Some(id) = self.consumers[consumer].current else {
            return self.step(until_ms);
        };
        match step {
            Step::Call => {
                self.calls += 1;
                if self.calls > CALLS_MAX {
                    return Err(format!(
                        "the consumers made more than {CALLS_MAX} calls and the check stopped \
                         them, {at_ms} ms into the history"
                    ));
                }
                let calls_before = self.calls_of.get(&id).copied().unwrap_or(0);
                *self.calls_of.entry(id).or_default() += 1;
                let failed = self.downstream.fails(at_ms, id, calls_before);
                let took_ms = self.call_ms(id, at_ms);
                self.consumers[consumer].calls_ms.push(at_ms);
                self.draw(
                    consumer,
                    true,
                    "downstream",
                    id,
                    format!("call {}", calls_before + 1),
                );
                self.schedule(at_ms + took_ms, consumer, Step::Done { failed });
                Ok(Some(Happened::Called))
            }
            Step::Done { failed: false } => {
                self.consumers[consumer].retrier.succeeded(id);
                self.draw(consumer, false, "downstream", id, "done".to_owned());
                self.take_next(consumer, at_ms);
                self.step(until_ms)
            }
            Step::Done { failed: true } => {
                self.first_failure_ms.entry(id).or_insert(at_ms);
                let next = self.consumers[consumer].retrier.failed(id);
                match next {
                    Next::RetryAt(retry_ms) => {
                        self.draw(
                            consumer,
                            false,
                            "downstream",
                            id,
                            format!("failed; retry at {retry_ms} ms"),
                        );
                        self.schedule(retry_ms.max(at_ms), consumer, Step::Call);
                    }
                    Next::DeadLetter => {
                        self.draw(
                            consumer,
                            true,
                            "dead-letter queue",
                            id,
                            "failed for good".to_owned(),
                        );
                        self.take_next(consumer, at_ms);
                    }
                }
                Ok(Some(Happened::Failed {
                    consumer,
                    id,
                    at_ms,
                    next,
                }))
            }
        }
    }

    /// Marks, at the end of the drawn story, what broke the promise.
    fn mark(&self, consumer: usize, id: Option<u64>, what: String) {
        let mut event = self.trace.event(name(consumer), EventKind::Note).note(what);
        if let Some(id) = id {
            event = event.msg(id);
        }
        event.record();
    }
}

/// A fleet history: which generators, how long the outage, how long calls take.
#[derive(Clone, Debug)]
struct Outage {
    seed: u64,
    outage_ms: u64,
    call_ms: u64,
}

fn outages(seconds: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Outage> {
    (any::<u64>(), seconds, 0..CALL_MS.len()).prop_map(|(seed, outage_s, call)| Outage {
        seed,
        outage_ms: outage_s * 1_000,
        call_ms: CALL_MS[call],
    })
}

fn tell_outage(consumers: usize) -> impl Fn(&Outage) -> String {
    move |outage| {
        format!(
            "{consumers} consumers (generators seeded from {:#x}), one message each, all \
             calling at 0 ms; the downstream is down until {} ms; every call takes {} ms",
            outage.seed, outage.outage_ms, outage.call_ms
        )
    }
}

fn fleet_in_outage<'t>(trace: &'t Trace, outage: &Outage, consumers: usize) -> Fleet<'t> {
    let backlogs = (1..=consumers as u64).map(|id| vec![id]).collect();
    Fleet::new(
        trace,
        outage.seed,
        backlogs,
        Downstream {
            outage_ms: (0, outage.outage_ms),
            rejects: BTreeMap::new(),
        },
        vec![CallTime::Ms(outage.call_ms)],
    )
}

/// Calls per second of the first `seconds` seconds, as "10, 9, 10, ...".
fn per_second(calls_ms: &[u64], seconds: u64) -> String {
    (0..seconds)
        .map(|second| {
            calls_ms
                .iter()
                .filter(|at_ms| **at_ms / 1_000 == second)
                .count()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn calls_bounded(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "calls per second bounded during an outage",
        24,
        outages(120..=540),
        tell_outage(FLEET),
        |outage, trace| {
            let allowed_each = outage.outage_ms * 4 / MAX_DELAY_MS;
            let allowed = allowed_each as usize * FLEET;
            let mut fleet = fleet_in_outage(trace, outage, FLEET);
            let mut calls = 0;
            while let Some(happened) = fleet.step(outage.outage_ms)? {
                if let Happened::Called = happened {
                    calls += 1;
                    if calls > allowed {
                        break;
                    }
                }
            }
            if calls <= allowed {
                return Ok(());
            }
            let now_ms = fleet.clock.now_ms();
            let c1 = &fleet.consumers[0].calls_ms;
            fleet.mark(
                0,
                None,
                format!("{calls} calls by the fleet in {now_ms} ms"),
            );
            Err(format!(
                "the downstream was down for {} s and the {FLEET} consumers, each with one \
                 message, had made {calls} calls only {now_ms} ms into it: more than the \
                 {allowed} the whole outage allows (4 per MAX_DELAY_MS of {MAX_DELAY_MS} ms, \
                 {allowed_each} each). c1 alone made {} calls; its calls in each of the first \
                 seconds: {}. Each of those calls is load on a service that is already down.",
                outage.outage_ms / 1_000,
                c1.len(),
                per_second(c1, (now_ms / 1_000 + 1).min(8)),
            ))
        },
    );
}

fn back_within_cap(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "every retry within the cap",
        64,
        outages(5..=580),
        tell_outage(3),
        |outage, trace| {
            let mut fleet = fleet_in_outage(trace, outage, 3);
            while let Some(happened) = fleet.step(u64::MAX)? {
                let Happened::Failed {
                    consumer,
                    id,
                    at_ms,
                    next: Next::RetryAt(retry_ms),
                } = happened
                else {
                    continue;
                };
                let waits_ms = retry_ms.saturating_sub(at_ms);
                if waits_ms > MAX_DELAY_MS {
                    let failures = fleet.calls_of[&id];
                    let who = name(consumer);
                    fleet.mark(
                        consumer,
                        Some(id),
                        format!("waits {waits_ms} ms: past the cap"),
                    );
                    return Err(format!(
                        "{who}'s call with m{id} failed at {at_ms} ms (its failure number \
                         {failures}) and its retrier planned the next call at {retry_ms} ms, \
                         {waits_ms} ms later; the cap is MAX_DELAY_MS = {MAX_DELAY_MS} ms. Had \
                         the downstream come back a moment after that failure, {who} would have \
                         left it idle, and m{id} waiting, for {} s.",
                        waits_ms / 1_000
                    ));
                }
            }
            Ok(())
        },
    );
}

/// The window in which fewer than [`WAVE`] consumers may make their `k`-th call: a twentieth of the
/// largest delay a doubling backoff allows before that call, at least 1 ms.
fn window_ms(k: usize) -> u64 {
    let doublings = u32::try_from(k.saturating_sub(2)).unwrap_or(u32::MAX);
    let ceiling_ms = BASE_DELAY_MS
        .saturating_mul(2u64.saturating_pow(doublings))
        .min(MAX_DELAY_MS);
    (ceiling_ms / 20).max(1)
}

fn retries_spread(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "retries of a fleet spread apart",
        32,
        outages(20..=90),
        tell_outage(FLEET),
        |outage, trace| {
            let mut fleet = fleet_in_outage(trace, outage, FLEET);
            while fleet.step(outage.outage_ms)?.is_some() {}
            let cohorts = fleet
                .consumers
                .iter()
                .map(|consumer| consumer.calls_ms.len())
                .min()
                .unwrap_or(0);
            for k in 2..=cohorts {
                let window_ms = window_ms(k);
                let mut kth: Vec<(u64, usize)> = fleet
                    .consumers
                    .iter()
                    .enumerate()
                    .map(|(consumer, calls)| (calls.calls_ms[k - 1], consumer))
                    .collect();
                kth.sort();
                for (start, &(from_ms, _)) in kth.iter().enumerate() {
                    let bunch: Vec<&(u64, usize)> = kth[start..]
                        .iter()
                        .take_while(|(at_ms, _)| *at_ms <= from_ms + window_ms)
                        .collect();
                    if bunch.len() >= WAVE {
                        let last_ms = bunch.last().map_or(from_ms, |(at_ms, _)| *at_ms);
                        let mut who: Vec<usize> =
                            bunch.iter().map(|(_, consumer)| *consumer).collect();
                        who.sort();
                        let who: Vec<String> = who.into_iter().map(name).collect();
                        let how_many = if bunch.len() == FLEET {
                            format!("all {FLEET}")
                        } else {
                            format!("{} of them", bunch.len())
                        };
                        let when = if last_ms == from_ms {
                            format!("all at {from_ms} ms")
                        } else {
                            format!("between {from_ms} and {last_ms} ms")
                        };
                        fleet.mark(
                            bunch[0].1,
                            None,
                            format!("{} consumers call within {window_ms} ms", bunch.len()),
                        );
                        return Err(format!(
                            "the {FLEET} consumers all failed at 0 ms, when the outage began, \
                             and {how_many} ({}) made their call number {k} {when}: three \
                             quarters of the fleet or more within {window_ms} ms, a twentieth of \
                             that retry's backoff. Every retry of the outage is a \
                             wave like this one; the moment the downstream comes back, the \
                             wave is what meets it.",
                            who.join(", "),
                        ));
                    }
                }
            }
            Ok(())
        },
    );
}

/// A history for the deadline: two consumers working through messages, some failing a few
/// times, some for good, calls of uneven length, some ending right at a deadline.
#[derive(Clone, Debug)]
struct Backlog {
    seed: u64,
    /// Per message, in send order: how many calls fail before one succeeds (`u32::MAX`:
    /// never).
    rejects: Vec<u32>,
    call_times: Vec<CallTime>,
}

fn decode_rejects(raw: u8) -> u32 {
    match raw % 6 {
        0 => 0,
        1 => 1,
        2 => 3,
        3 => 40,
        _ => u32::MAX,
    }
}

fn decode_call(raw: u32) -> CallTime {
    match raw % 8 {
        0 => CallTime::ToDeadline(0),
        1 => CallTime::ToDeadline(-1),
        2 => CallTime::ToDeadline(1),
        3 => CallTime::Ms(0),
        4 => CallTime::Ms(1 + u64::from(raw / 8) % 999),
        5 => CallTime::Ms(30_000),
        _ => CallTime::Ms(u64::from(raw / 8) % 60_000),
    }
}

fn backlogs() -> impl Strategy<Value = Backlog> {
    (
        any::<u64>(),
        prop::proptest::collection::vec(any::<u8>(), 1..=6),
        prop::proptest::collection::vec(any::<u32>(), 1..=6),
    )
        .prop_map(|(seed, rejects, calls)| Backlog {
            seed,
            rejects: rejects.into_iter().map(decode_rejects).collect(),
            call_times: calls.into_iter().map(decode_call).collect(),
        })
}

fn tell_backlog(backlog: &Backlog) -> String {
    let messages: Vec<String> = backlog
        .rejects
        .iter()
        .enumerate()
        .map(|(index, fails)| {
            let who = name(index % 2);
            match *fails {
                0 => format!("m{} ({who}) succeeds at once", index + 1),
                1 => format!("m{} ({who}) fails once, then succeeds", index + 1),
                u32::MAX => format!("m{} ({who}) fails every time", index + 1),
                fails => format!("m{} ({who}) fails {fails} times, then succeeds", index + 1),
            }
        })
        .collect();
    let calls: Vec<String> = backlog
        .call_times
        .iter()
        .map(|call| match call {
            CallTime::Ms(ms) => format!("{ms} ms"),
            CallTime::ToDeadline(0) => "until the message's deadline".to_owned(),
            CallTime::ToDeadline(offset) => {
                format!("until {offset:+} ms from the message's deadline")
            }
        })
        .collect();
    format!(
        "{}; calls take, in turn: {} (generators seeded from {:#x})",
        messages.join(", "),
        calls.join(", "),
        backlog.seed
    )
}

fn dead_letters_at_deadline(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "dead-lettered exactly at the deadline",
        256,
        backlogs(),
        tell_backlog,
        |backlog, trace| {
            let mut backlogs = vec![Vec::new(), Vec::new()];
            let mut rejects = BTreeMap::new();
            for (index, fails) in backlog.rejects.iter().enumerate() {
                let id = index as u64 + 1;
                backlogs[index % 2].push(id);
                rejects.insert(id, *fails);
            }
            let mut fleet = Fleet::new(
                trace,
                backlog.seed,
                backlogs,
                Downstream {
                    outage_ms: (0, 0),
                    rejects,
                },
                backlog.call_times.clone(),
            );
            let mut dead: BTreeSet<u64> = BTreeSet::new();
            while let Some(happened) = fleet.step(u64::MAX)? {
                let Happened::Failed {
                    consumer,
                    id,
                    at_ms,
                    next,
                } = happened
                else {
                    continue;
                };
                let first_ms = fleet.first_failure_ms[&id];
                let deadline_ms = first_ms + GIVE_UP_AFTER_MS;
                let failures = fleet.calls_of[&id];
                let who = name(consumer);
                match next {
                    Next::DeadLetter if at_ms < deadline_ms => {
                        fleet.mark(
                            consumer,
                            Some(id),
                            "dead-lettered before its deadline".to_owned(),
                        );
                        return Err(format!(
                            "{who} dead-lettered m{id} at {at_ms} ms, after {}: its first call failed at {first_ms} ms, so it is to be \
                             retried until {deadline_ms} ms (GIVE_UP_AFTER_MS = \
                             {GIVE_UP_AFTER_MS} after it), and it was given up {} ms early. A \
                             downstream that is back a minute later finds the message already in \
                             the dead-letter queue.",
                            calls_word(failures),
                            deadline_ms - at_ms
                        ));
                    }
                    Next::DeadLetter => {
                        dead.insert(id);
                    }
                    Next::RetryAt(retry_ms) if at_ms >= deadline_ms => {
                        fleet.mark(consumer, Some(id), "retried past its deadline".to_owned());
                        return Err(format!(
                            "m{id}'s call failed at {at_ms} ms, its failure number {failures}; \
                             its first failure was at {first_ms} ms, so its deadline was \
                             {deadline_ms} ms (GIVE_UP_AFTER_MS = {GIVE_UP_AFTER_MS} after it), \
                             and {who} still planned a retry at {retry_ms} ms instead of moving \
                             it to the dead-letter queue. Past its deadline nothing stops the \
                             retries: a message the downstream rejects for good is retried \
                             forever, and {who}, holding it, takes no other message."
                        ));
                    }
                    Next::RetryAt(_) => {}
                }
            }
            Ok(())
        },
    );
}

#[test]
fn checks() {
    run_stages(
        "retry-storm",
        &[
            Stage {
                id: "calls-per-second-bounded",
                title: "During an outage, each consumer backs off: calls per second stay low",
                mentor: "The downstream is down, and every consumer keeps calling it. How long \
                         does your consumer wait after its first failure, and after its tenth? \
                         A retry that comes as soon after the hundredth failure as after the \
                         first turns every outage into a flood (the hundredth failure must \
                         still compute its delay without overflowing).",
                run: calls_bounded,
            },
            Stage {
                id: "back-within-the-cap",
                title: "No retry waits more than MAX_DELAY_MS after a failure",
                mentor: "Better! The calls thin out during an outage. But the downstream comes \
                         back some time, and then the waiting is pure loss. After the \
                         downstream's longest outage, how long can your consumer sit out before \
                         its next call? No planned delay, jitter included, may pass \
                         MAX_DELAY_MS.",
                run: back_within_cap,
            },
            Stage {
                id: "retries-spread-apart",
                title: "Consumers that failed together do not retry together",
                mentor: "Close! One consumer backs off well. Now twenty of them fail at the same \
                         instant, when the outage begins: when does each one retry? If the \
                         delays are the same for all of them, the whole fleet calls at the same \
                         instants, every time. Each retrier is given its own generator for a \
                         reason, and a few milliseconds of jitter on a delay of seconds still \
                         leave a wave: the spread has to grow with the delay.",
                run: retries_spread,
            },
            Stage {
                id: "dead-letters-at-the-deadline",
                title: "A message is dead-lettered at GIVE_UP_AFTER_MS after its first failure, not before",
                mentor: "Last one! Retries need a bound too. A message the downstream rejects \
                         for good must leave for the dead-letter queue once GIVE_UP_AFTER_MS has \
                         passed since its first failure, and not one millisecond sooner: from \
                         which instant does your retrier count, and is that instant kept for \
                         each message on its own?",
                run: dead_letters_at_deadline,
            },
        ],
    );
}
