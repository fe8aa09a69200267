//! Checks for the payment service's circuit breaker: it opens on failures in a row and only
//! on them, stays open for exactly its open timeout from the instant it opened, and then lets
//! one probe through at a time, whose answer alone decides.
//!
//! Every stage is a property checked over histories drawn from a fixed seed: consumers c1, c2
//! and c3 ask the breaker, call the service when let through, and report how the call went;
//! the clock moves by uneven amounts, to just before, at and just after the end of the open
//! timeout. A small model of the breaker's promise says, at each ask, whether the call must
//! go through; the learner's breaker must agree every time. The first two stages call one at
//! a time (each call answers before the next ask); the last lets calls overlap.

use std::fmt;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::clock::Clock;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

const FAILURE_THRESHOLD: u32 = 3;
const OPEN_TIMEOUT_MS: u64 = 30_000;
/// Thresholds the histories use.
const THRESHOLDS: [u32; 4] = [FAILURE_THRESHOLD, 1, 2, 5];
/// Open timeouts the histories use: the usual one, and ones that are not whole seconds.
const TIMEOUTS_MS: [u64; 5] = [OPEN_TIMEOUT_MS, 1_500, 2_750, 999, 7];
const HOUR_MS: u64 = 3_600_000;
/// The open timeout of the first stage: a week, longer than any of its histories, so that
/// what it sees is how the breaker opens, not how it closes again.
const WEEK_MS: u64 = 7 * 24 * HOUR_MS;
const CASES: u32 = 1_000;
const OPS_MAX: usize = 30;
const CONSUMERS: [&str; 3] = ["c1", "c2", "c3"];
/// How many of the breaker's last events a failure quotes.
const STORY_MAX: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// A consumer asks the breaker; if let through, it calls and the call answers at once.
    Call {
        consumer: usize,
        ok: bool,
    },
    /// A consumer asks the breaker; if let through, the call stays out until its answer.
    Begin {
        consumer: usize,
    },
    /// A call the consumer has out answers (the probe, if it holds it; else its oldest).
    Answer {
        consumer: usize,
        ok: bool,
    },
    Wait {
        ms: u64,
    },
    /// The clock moves to the end of the open timeout, plus `offset_ms` (-1, 0, +1).
    ToTimeoutEnd {
        offset_ms: i8,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Call { consumer, ok: true } => {
                write!(f, "{} calls, and the service answers", CONSUMERS[consumer])
            }
            Op::Call {
                consumer,
                ok: false,
            } => {
                write!(f, "{} calls, and the call fails", CONSUMERS[consumer])
            }
            Op::Begin { consumer } => {
                write!(f, "{} starts a call that stays out", CONSUMERS[consumer])
            }
            Op::Answer { consumer, ok: true } => {
                write!(f, "{}'s call out answers", CONSUMERS[consumer])
            }
            Op::Answer {
                consumer,
                ok: false,
            } => {
                write!(f, "{}'s call out fails", CONSUMERS[consumer])
            }
            Op::Wait { ms } => write!(f, "wait {ms} ms"),
            Op::ToTimeoutEnd { offset_ms: 0 } => write!(f, "wait until the open timeout ends"),
            Op::ToTimeoutEnd { offset_ms: -1 } => {
                write!(f, "wait until 1 ms before the open timeout ends")
            }
            Op::ToTimeoutEnd { offset_ms } => {
                write!(f, "wait until {offset_ms} ms after the open timeout ends")
            }
        }
    }
}

/// What a stage's histories hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// One call at a time, waits of up to an hour, an open timeout of a week.
    Failures,
    /// One call at a time, waits around the open timeout.
    Timeout,
    /// Calls that overlap: asked for while others are still out.
    Overlapping,
}

#[derive(Clone, Debug)]
struct History {
    threshold: u32,
    timeout_ms: u64,
    ops: Vec<Op>,
}

fn tell(history: &History) -> String {
    format!(
        "failure threshold {}, open timeout {} ms: {}",
        history.threshold,
        history.timeout_ms,
        prop::numbered(&history.ops)
    )
}

/// Decodes one raw number into an operation. Histories are drawn as raw numbers, which
/// proptest generates and shrinks far faster than a tree of strategies; 0, where shrinking
/// goes, is a failing call.
fn decode(shape: Shape, timeout_ms: u64, raw: u32) -> Op {
    // 0: a failing call, 1: a call that answers, 2: a wait, 3: to the timeout's end,
    // 4: a call that stays out, 5: an answer that fails, 6: an answer that succeeds.
    const FAILURES: [u8; 8] = [0, 0, 0, 1, 1, 2, 2, 2];
    const TIMEOUT: [u8; 10] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3];
    const OVERLAPPING: [u8; 16] = [0, 1, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 2, 2, 2, 3];
    let kinds: &[u8] = match shape {
        Shape::Failures => &FAILURES,
        Shape::Timeout => &TIMEOUT,
        Shape::Overlapping => &OVERLAPPING,
    };
    let rest = raw / kinds.len() as u32;
    let consumer = match shape {
        Shape::Overlapping => rest as usize % CONSUMERS.len(),
        _ => 0,
    };
    match kinds[raw as usize % kinds.len()] {
        0 => Op::Call {
            consumer,
            ok: false,
        },
        1 => Op::Call { consumer, ok: true },
        2 => {
            let spread = u64::from(rest / 5);
            let ms = match (shape, rest % 5) {
                (Shape::Failures, 0 | 1) => 1 + spread % 997,
                (Shape::Failures, _) => 1 + spread % HOUR_MS,
                (_, 0 | 1) => 1 + spread % 997,
                (_, 2) => timeout_ms.saturating_sub(1).max(1),
                (_, 3) => timeout_ms,
                _ => 1 + spread % (2 * timeout_ms),
            };
            Op::Wait { ms }
        }
        3 => Op::ToTimeoutEnd {
            offset_ms: (rest % 3) as i8 - 1,
        },
        4 => Op::Begin { consumer },
        5 => Op::Answer {
            consumer,
            ok: false,
        },
        _ => Op::Answer { consumer, ok: true },
    }
}

fn histories(shape: Shape) -> impl Strategy<Value = History> {
    (
        0..THRESHOLDS.len(),
        0..TIMEOUTS_MS.len(),
        prop::proptest::collection::vec(any::<u32>(), 1..=OPS_MAX),
    )
        .prop_map(move |(threshold, timeout, raw_ops)| {
            let timeout_ms = match shape {
                Shape::Failures => WEEK_MS,
                _ => TIMEOUTS_MS[timeout],
            };
            History {
                threshold: THRESHOLDS[threshold],
                timeout_ms,
                ops: raw_ops
                    .iter()
                    .map(|raw| decode(shape, timeout_ms, *raw))
                    .collect(),
            }
        })
}

/// What the breaker must be, by its promise.
#[derive(Clone, Debug)]
enum Model {
    Closed { failures_in_a_row: u32 },
    Open { at_ms: u64, why: String },
    HalfOpen { probe: u64, by: usize, at_ms: u64 },
}

/// A call let through and not yet answered.
#[derive(Clone, Copy, Debug)]
struct Out {
    id: u64,
    at_ms: u64,
}

/// One history acted out on the learner's breaker, beside the model of its promise.
struct Run<'t> {
    trace: &'t Trace,
    clock: Clock,
    breaker: Breaker,
    threshold: u32,
    timeout_ms: u64,
    model: Model,
    /// The calls each consumer has out, oldest first.
    out: [Vec<Out>; 3],
    next_call: u64,
    /// What the breaker saw, in words.
    story: Vec<String>,
}

fn nth(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

impl<'t> Run<'t> {
    fn new(trace: &'t Trace, threshold: u32, timeout_ms: u64) -> Self {
        let clock = Clock::new();
        Self {
            trace,
            breaker: Breaker::new(clock.clone(), threshold, timeout_ms),
            clock,
            threshold,
            timeout_ms,
            model: Model::Closed {
                failures_in_a_row: 0,
            },
            out: Default::default(),
            next_call: 1,
            story: Vec::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn wait(&mut self, ms: u64) {
        self.trace.set_time_ms(self.clock.advance_ms(ms));
    }

    fn log(&mut self, what: String) {
        let now_ms = self.now_ms();
        self.story.push(format!("at {now_ms} ms {what}"));
    }

    fn story(&self) -> String {
        let skip = self.story.len().saturating_sub(STORY_MAX);
        let earlier = if skip > 0 { "…; " } else { "" };
        format!("{earlier}{}", self.story[skip..].join("; "))
    }

    /// The instant from which an open breaker lets the probe through.
    fn timeout_end_ms(&self, at_ms: u64) -> u64 {
        at_ms.saturating_add(self.timeout_ms)
    }

    fn fail(&self, detail: String) -> String {
        self.trace
            .event("verdict", EventKind::Note)
            .note(detail.clone())
            .record();
        format!("{detail}. What the breaker saw: {}.", self.story())
    }

    /// Draws one event of the run: who, to whom, what and when (calls are numbered in the
    /// note).
    fn draw(&self, from: &str, to: &str, note: String) {
        let now_ms = self.now_ms();
        self.trace
            .event(from, EventKind::Note)
            .to(to)
            .note(format!("{note} at {now_ms} ms"))
            .record();
    }

    /// `who` asks the breaker; the model says whether the call must go through.
    fn ask(&mut self, who: usize) -> Result<Option<u64>, String> {
        let name = CONSUMERS[who];
        let now_ms = self.now_ms();
        let call = self.next_call;
        let must_pass = match &self.model {
            Model::Closed { .. } => true,
            Model::Open { at_ms, .. } => now_ms >= self.timeout_end_ms(*at_ms),
            Model::HalfOpen { .. } => false,
        };
        let passed = self.breaker.try_acquire();
        if passed != must_pass {
            let detail = if passed {
                self.draw(name, "payments", format!("call {call} let through"));
                self.wrongly_let_through(name, now_ms)
            } else {
                self.draw("breaker", name, format!("call {call} refused"));
                self.wrongly_refused(name, now_ms)
            };
            return Err(self.fail(detail));
        }
        if !passed {
            self.draw("breaker", name, "refused".to_owned());
            self.log(format!("{name} was refused"));
            return Ok(None);
        }
        self.next_call += 1;
        self.draw(name, "payments", format!("call {call} let through"));
        if let Model::Open { .. } = self.model {
            self.model = Model::HalfOpen {
                probe: call,
                by: who,
                at_ms: now_ms,
            };
            self.log(format!(
                "{name}'s call {call} went through: the open timeout was over, so it is the probe"
            ));
        } else {
            self.log(format!("{name}'s call {call} went through"));
        }
        self.out[who].push(Out {
            id: call,
            at_ms: now_ms,
        });
        Ok(Some(call))
    }

    fn wrongly_let_through(&self, name: &str, now_ms: u64) -> String {
        match &self.model {
            Model::Open { at_ms, why } => {
                let end_ms = self.timeout_end_ms(*at_ms);
                format!(
                    "at {now_ms} ms the breaker let {name}'s call through, but it opened at \
                     {at_ms} ms ({why}) and must refuse every call until its open timeout of {} \
                     ms ends, at {end_ms} ms ({} ms later)",
                    self.timeout_ms,
                    end_ms - now_ms
                )
            }
            Model::HalfOpen { probe, by, at_ms } => format!(
                "at {now_ms} ms the breaker let {name}'s call through while {}'s probe (call \
                 {probe}, let through at {at_ms} ms) had not answered yet: a half-open breaker \
                 lets one probe through and refuses every other call until it answers, or the \
                 payment service, just recovering, gets the whole backlog at once",
                CONSUMERS[*by]
            ),
            Model::Closed { .. } => format!(
                "at {now_ms} ms the breaker let {name}'s call through, as a closed breaker must, \
                 yet the check thought it had to refuse it"
            ),
        }
    }

    fn wrongly_refused(&self, name: &str, now_ms: u64) -> String {
        match &self.model {
            Model::Closed { failures_in_a_row } => format!(
                "at {now_ms} ms the breaker refused {name}'s call, but it must still be closed: \
                 it has seen {failures_in_a_row} failure(s) in a row since it last closed or \
                 saw a success, and it opens at the {} failure in a row",
                nth(self.threshold)
            ),
            Model::Open { at_ms, why } => {
                let end_ms = self.timeout_end_ms(*at_ms);
                let late = now_ms - end_ms;
                let when = if late == 0 {
                    "at this very instant".to_owned()
                } else {
                    format!("{late} ms ago")
                };
                format!(
                    "at {now_ms} ms the breaker refused {name}'s call, but it opened at {at_ms} ms \
                     ({why}) and its open timeout of {} ms ended at {end_ms} ms, {when}: from \
                     that instant on, the next call goes through as the probe",
                    self.timeout_ms
                )
            }
            Model::HalfOpen { .. } => format!(
                "at {now_ms} ms the breaker refused {name}'s call, as a half-open breaker must, \
                 yet the check thought it had to let it through"
            ),
        }
    }

    /// `who`'s call `out` answers; the breaker hears it and the model moves.
    fn answer(&mut self, who: usize, out: Out, ok: bool) {
        let name = CONSUMERS[who];
        let call = out.id;
        if ok {
            self.breaker.on_success();
            self.draw("payments", name, format!("call {call} answered"));
        } else {
            self.breaker.on_failure();
            self.draw("payments", name, format!("call {call} failed"));
        }
        let now_ms = self.now_ms();
        let what = if ok { "answered" } else { "failed" };
        let (next, said) = match self.model.clone() {
            Model::Closed { failures_in_a_row } if ok => (
                Model::Closed {
                    failures_in_a_row: 0,
                },
                if failures_in_a_row > 0 {
                    format!("{name}'s call {call} answered: the run of {failures_in_a_row} failure(s) in a row ends")
                } else {
                    format!("{name}'s call {call} answered")
                },
            ),
            Model::Closed { failures_in_a_row } => {
                let failures_in_a_row = failures_in_a_row + 1;
                if failures_in_a_row >= self.threshold {
                    (
                        Model::Open {
                            at_ms: now_ms,
                            why: format!(
                                "at the {} failure in a row, {name}'s call {call}",
                                nth(failures_in_a_row)
                            ),
                        },
                        format!(
                            "{name}'s call {call} failed, the {} in a row: the breaker opens",
                            nth(failures_in_a_row)
                        ),
                    )
                } else {
                    (
                        Model::Closed { failures_in_a_row },
                        format!(
                            "{name}'s call {call} failed, the {} in a row",
                            nth(failures_in_a_row)
                        ),
                    )
                }
            }
            open @ Model::Open { .. } => (
                open,
                format!(
                    "{name}'s call {call}, let through at {} ms, before the breaker opened, \
                     {what} late: an open breaker ignores it",
                    out.at_ms
                ),
            ),
            Model::HalfOpen { .. } if ok => (
                Model::Closed {
                    failures_in_a_row: 0,
                },
                format!("{name}'s probe (call {call}) answered: the breaker closes"),
            ),
            Model::HalfOpen { .. } => (
                Model::Open {
                    at_ms: now_ms,
                    why: format!("when {name}'s probe, call {call}, failed"),
                },
                format!("{name}'s probe (call {call}) failed: the breaker opens again"),
            ),
        };
        self.model = next;
        self.log(said);
    }

    /// The call of `who` that answers now, if one may: in a half-open breaker only the
    /// probe's answer comes (others wait for it), and none comes to an open breaker whose
    /// timeout is over before its probe goes out (whether that answer counts as open or
    /// half-open is the breaker's design, not its promise).
    fn answering(&self, who: usize) -> Option<usize> {
        let now_ms = self.now_ms();
        match &self.model {
            Model::HalfOpen { probe, .. } => self.out[who].iter().position(|out| out.id == *probe),
            Model::Open { at_ms, .. } if now_ms >= self.timeout_end_ms(*at_ms) => None,
            _ => (!self.out[who].is_empty()).then_some(0),
        }
    }

    fn apply(&mut self, history: &History) -> Result<(), String> {
        for op in &history.ops {
            match *op {
                Op::Call { consumer, ok } => {
                    if self.ask(consumer)?.is_some() {
                        let out = self.out[consumer].pop().expect("just let through");
                        self.answer(consumer, out, ok);
                    }
                }
                Op::Begin { consumer } => {
                    self.ask(consumer)?;
                }
                Op::Answer { consumer, ok } => {
                    if let Some(index) = self.answering(consumer) {
                        let out = self.out[consumer].remove(index);
                        self.answer(consumer, out, ok);
                    }
                }
                Op::Wait { ms } => self.wait(ms),
                Op::ToTimeoutEnd { offset_ms } => {
                    if let Model::Open { at_ms, .. } = self.model {
                        let target_ms = self
                            .timeout_end_ms(at_ms)
                            .saturating_add_signed(i64::from(offset_ms));
                        let now_ms = self.now_ms();
                        if target_ms > now_ms {
                            self.wait(target_ms - now_ms);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn holds(ctx: &mut Ctx, name: &str, shape: Shape) {
    prop::for_all(
        ctx,
        name,
        CASES,
        histories(shape),
        tell,
        |history, trace| Run::new(trace, history.threshold, history.timeout_ms).apply(history),
    );
}

fn opens_after_consecutive_failures(ctx: &mut Ctx) {
    holds(
        ctx,
        "opens at the threshold-th failure in a row",
        Shape::Failures,
    );
}

fn open_for_exactly_the_timeout(ctx: &mut Ctx) {
    holds(
        ctx,
        "open for exactly the timeout from the instant it opened",
        Shape::Timeout,
    );
}

fn one_probe_at_a_time(ctx: &mut Ctx) {
    holds(
        ctx,
        "one probe at a time, and late answers change nothing",
        Shape::Overlapping,
    );
}

#[test]
fn checks() {
    run_stages(
        "half-open-probe",
        &[
            Stage {
                id: "opens-after-consecutive-failures",
                title: "The breaker opens at the threshold-th failure in a row, and only then",
                mentor: "A breaker opens on failures *in a row*: a payment service that fails \
                         now and then but answers the calls in between is not down, and cutting \
                         it off fails every job for nothing. Follow the count of failures in the \
                         story below: what should a success do to it, and at which failure \
                         should the breaker open?",
                run: opens_after_consecutive_failures,
            },
            Stage {
                id: "open-for-exactly-the-timeout",
                title: "Open for exactly the open timeout, counted from the instant it opened",
                mentor: "Your breaker opens when it should. Now the open state: every call is \
                         refused from the instant the breaker opened until exactly \
                         open_timeout_ms later, and from that instant the next call goes \
                         through as the probe. A failed probe opens it again for a full timeout \
                         from that failure; a successful one closes it with a count of zero. \
                         From which instant does your breaker count its timeout, does a probe \
                         get through when it ends, and what does the probe's answer do?",
                run: open_for_exactly_the_timeout,
            },
            Stage {
                id: "one-probe-at-a-time",
                title: "One probe at a time while half-open; late answers change nothing",
                mentor: "Close! With one call at a time everything holds. But consumers call \
                         at the same time: while the probe is out, a half-open breaker must \
                         refuse every other call until the probe answers, or a service that is \
                         just recovering gets the whole backlog at once and falls over again. \
                         And a call let through before the breaker opened can answer late: \
                         that answer must neither close the breaker nor start its timeout \
                         again. Only the probe decides.",
                run: one_probe_at_a_time,
            },
        ],
    );
}
