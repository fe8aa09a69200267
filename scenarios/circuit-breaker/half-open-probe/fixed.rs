//! A circuit breaker in front of the payment service that a queue consumer charges cards
//! through.
//!
//! Before each call, a consumer asks [`Breaker::try_acquire`]; if it may go, it calls the
//! service and then reports how the call went with [`Breaker::on_success`] or
//! [`Breaker::on_failure`]. Several consumers share one breaker, so calls overlap: one may be
//! asked for while others are still out. The breaker promises:
//!
//! - **closed**: every call goes through. A failure adds one to a count of failures in a row;
//!   a success sets it back to zero. When the count reaches `failure_threshold`, the breaker
//!   opens at that instant;
//! - **open**: every call is refused, from the instant it opened until exactly
//!   `opened_at + open_timeout_ms` (not one millisecond less, not one more);
//! - **half-open**: the first call asked for from that instant on goes through as the *probe*,
//!   and every other call is refused until the probe's answer comes. A successful probe
//!   closes the breaker with a count of zero; a failed one opens it again at the instant of
//!   that failure, for a full `open_timeout_ms`;
//! - an answer counts in the state the breaker is in when it comes. A call let through while
//!   closed can answer late, after the breaker opened: an open breaker ignores such answers
//!   (it neither closes nor starts its timeout again).
//!
//! Time is a simulated [`Clock`]: it moves only when the caller advances it. One owner drives
//! the breaker, so there is no locking; overlapping calls are calls asked for before earlier
//! ones have answered.

use bughunt_kit::clock::Clock;

//~ region
/// Where the breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed,
    Open,
    /// The probe is out; its answer decides.
    HalfOpen,
}
//~ alt: deadline-and-flag
//~ // No state enum: the deadline and the probe flag say it all.
//~ alt: outcome-log
//~ use std::collections::VecDeque;
//~
//~ /// Where the breaker stands.
//~ #[derive(Clone, Copy, Debug, PartialEq, Eq)]
//~ enum State {
//~     Closed,
//~     Open,
//~     /// The probe is out; its answer decides.
//~     HalfOpen,
//~ }
//~ alt: phase-with-data
//~ /// Where the breaker stands, with what each state needs to know.
//~ #[derive(Clone, Copy, Debug, PartialEq, Eq)]
//~ enum Phase {
//~     Closed { failures_in_a_row: u32 },
//~     Open { until_ms: u64 },
//~     Probing,
//~ }
//~ end

/// A circuit breaker: closed, open or half-open, on a simulated clock.
#[derive(Debug)]
pub struct Breaker {
    clock: Clock,
    /// Failures in a row that open a closed breaker (at least 1).
    failure_threshold: u32,
    /// How long the breaker stays open before it lets a probe through.
    open_timeout_ms: u64,
    //~ region
    state: State,
    /// Failures in a row since the last success, while closed.
    consecutive_failures: u32,
    /// The instant the breaker last opened: its open timeout counts from here.
    opened_at_ms: u64,
    //~ alt: probe-flag
    //~ state: State,
    //~ consecutive_failures: u32,
    //~ opened_at_ms: u64,
    //~ /// Half-open only: the probe has gone out and not answered yet.
    //~ probe_out: bool,
    //~ alt: deadline-and-flag
    //~ failures_in_a_row: u32,
    //~ /// Set while open: calls are refused until this instant.
    //~ open_until_ms: Option<u64>,
    //~ /// The probe of a half-open breaker is out.
    //~ probing: bool,
    //~ alt: outcome-log
    //~ state: State,
    //~ /// While closed, the last answers (true: success), at most `failure_threshold` of them.
    //~ recent: VecDeque<bool>,
    //~ /// The instant from which an open breaker lets a probe through.
    //~ probe_from_ms: u64,
    //~ alt: phase-with-data
    //~ phase: Phase,
    //~ end
}

impl Breaker {
    /// A closed breaker on `clock` that opens after `failure_threshold` failures in a row
    /// (0 counts as 1) and stays open for `open_timeout_ms` of that clock.
    pub fn new(clock: Clock, failure_threshold: u32, open_timeout_ms: u64) -> Self {
        Self {
            clock,
            failure_threshold: failure_threshold.max(1),
            open_timeout_ms,
            //~ region
            state: State::Closed,
            consecutive_failures: 0,
            opened_at_ms: 0,
            //~ alt: probe-flag
            //~ state: State::Closed,
            //~ consecutive_failures: 0,
            //~ opened_at_ms: 0,
            //~ probe_out: false,
            //~ alt: deadline-and-flag
            //~ failures_in_a_row: 0,
            //~ open_until_ms: None,
            //~ probing: false,
            //~ alt: outcome-log
            //~ state: State::Closed,
            //~ recent: VecDeque::new(),
            //~ probe_from_ms: 0,
            //~ alt: phase-with-data
            //~ phase: Phase::Closed {
            //~     failures_in_a_row: 0,
            //~ },
            //~ end
        }
    }

    /// May a call go to the payment service now? `true` lets it through: the caller must
    /// then report its answer with [`Breaker::on_success`] or [`Breaker::on_failure`].
    pub fn try_acquire(&mut self) -> bool {
        let now_ms = self.clock.now_ms();
        //~ site: every-call-in-half-open
        match self.state {
            State::Closed => true,
            State::Open => {
                if now_ms < self.opened_at_ms.saturating_add(self.open_timeout_ms) {
                    return false;
                }
                // FIX: the timeout is over, and this call is the one probe. The breaker is
                // half-open from here until the probe answers.
                self.state = State::HalfOpen;
                true
            }
            // FIX: the probe is out. Everyone else waits for its answer: a service that is
            // just recovering gets one call, not the whole backlog at once.
            State::HalfOpen => false,
        }
        //~ broken:
        //~ if self.state == State::Open
        //~     && now_ms >= self.opened_at_ms.saturating_add(self.open_timeout_ms)
        //~ {
        //~     // The open timeout is over: time to see whether the service is back.
        //~     self.state = State::HalfOpen;
        //~ }
        //~ self.state != State::Open
        //~ wrong: half-open-refuses-probe-too
        //~ if self.state == State::Open
        //~     && now_ms >= self.opened_at_ms.saturating_add(self.open_timeout_ms)
        //~ {
        //~     // The open timeout is over: time to see whether the service is back.
        //~     self.state = State::HalfOpen;
        //~ }
        //~ // Only a closed breaker lets calls through.
        //~ self.state == State::Closed
        //~ wrong: reopen-one-ms-late
        //~ match self.state {
        //~     State::Closed => true,
        //~     State::Open => {
        //~         // Still open while the timeout runs, up to and including its last instant.
        //~         if now_ms <= self.opened_at_ms.saturating_add(self.open_timeout_ms) {
        //~             return false;
        //~         }
        //~         self.state = State::HalfOpen;
        //~         true
        //~     }
        //~     State::HalfOpen => false,
        //~ }
        //~ alt: probe-flag
        //~ if self.state == State::Open
        //~     && now_ms >= self.opened_at_ms.saturating_add(self.open_timeout_ms)
        //~ {
        //~     // The open timeout is over: half-open, no probe out yet.
        //~     self.state = State::HalfOpen;
        //~     self.probe_out = false;
        //~ }
        //~ match self.state {
        //~     State::Closed => true,
        //~     State::Open => false,
        //~     State::HalfOpen if self.probe_out => false,
        //~     State::HalfOpen => {
        //~         self.probe_out = true;
        //~         true
        //~     }
        //~ }
        //~ alt: deadline-and-flag
        //~ if self.probing {
        //~     return false;
        //~ }
        //~ match self.open_until_ms {
        //~     None => true,
        //~     Some(until_ms) if now_ms < until_ms => false,
        //~     Some(_) => {
        //~         self.probing = true;
        //~         true
        //~     }
        //~ }
        //~ alt: outcome-log
        //~ match self.state {
        //~     State::Closed => true,
        //~     State::Open if now_ms >= self.probe_from_ms => {
        //~         self.state = State::HalfOpen;
        //~         true
        //~     }
        //~     State::Open | State::HalfOpen => false,
        //~ }
        //~ alt: phase-with-data
        //~ match self.phase {
        //~     Phase::Closed { .. } => true,
        //~     Phase::Open { until_ms } if until_ms <= now_ms => {
        //~         self.phase = Phase::Probing;
        //~         true
        //~     }
        //~     Phase::Open { .. } | Phase::Probing => false,
        //~ }
        //~ end
    }

    /// A call let through answered well.
    pub fn on_success(&mut self) {
        //~ site: failures-never-reset
        match self.state {
            // FIX: only failures *in a row* open the breaker: a success ends the run.
            State::Closed => self.consecutive_failures = 0,
            // FIX: the probe answered: the service is back. Closed, with a clean count.
            State::HalfOpen => {
                self.state = State::Closed;
                self.consecutive_failures = 0;
            }
            // A late answer from a call let through before the breaker opened: ignored.
            State::Open => {}
        }
        //~ broken:
        //~ match self.state {
        //~     // Nothing to do: the breaker is closed already.
        //~     State::Closed => {}
        //~     State::HalfOpen => {
        //~         self.state = State::Closed;
        //~         self.consecutive_failures = 0;
        //~     }
        //~     State::Open => {}
        //~ }
        //~ wrong: success-decrements-failures
        //~ match self.state {
        //~     // A success makes up for one failure.
        //~     State::Closed => self.consecutive_failures = self.consecutive_failures.saturating_sub(1),
        //~     State::HalfOpen => {
        //~         self.state = State::Closed;
        //~         self.consecutive_failures = 0;
        //~     }
        //~     State::Open => {}
        //~ }
        //~ wrong: probe-success-keeps-count
        //~ match self.state {
        //~     State::Closed => self.consecutive_failures = 0,
        //~     // The probe answered: the service is back.
        //~     State::HalfOpen => self.state = State::Closed,
        //~     State::Open => {}
        //~ }
        //~ wrong: late-success-closes
        //~ // Any success means the service answers again: closed, with a clean count.
        //~ self.state = State::Closed;
        //~ self.consecutive_failures = 0;
        //~ alt: probe-flag
        //~ match self.state {
        //~     State::Closed => self.consecutive_failures = 0,
        //~     State::HalfOpen => {
        //~         self.state = State::Closed;
        //~         self.consecutive_failures = 0;
        //~         self.probe_out = false;
        //~     }
        //~     State::Open => {}
        //~ }
        //~ alt: deadline-and-flag
        //~ if self.probing {
        //~     self.probing = false;
        //~     self.open_until_ms = None;
        //~     self.failures_in_a_row = 0;
        //~ } else if self.open_until_ms.is_none() {
        //~     self.failures_in_a_row = 0;
        //~ }
        //~ alt: outcome-log
        //~ match self.state {
        //~     State::Closed => {
        //~         self.recent.push_back(true);
        //~         if self.recent.len() > self.failure_threshold as usize {
        //~             self.recent.pop_front();
        //~         }
        //~     }
        //~     State::HalfOpen => {
        //~         self.state = State::Closed;
        //~         self.recent.clear();
        //~     }
        //~     State::Open => {}
        //~ }
        //~ alt: phase-with-data
        //~ match self.phase {
        //~     Phase::Closed { .. } | Phase::Probing => {
        //~         self.phase = Phase::Closed {
        //~             failures_in_a_row: 0,
        //~         }
        //~     }
        //~     Phase::Open { .. } => {}
        //~ }
        //~ end
    }

    /// A call let through failed (an error, a timeout).
    pub fn on_failure(&mut self) {
        let now_ms = self.clock.now_ms();
        //~ site: timeout-from-first-failure
        match self.state {
            State::Closed => {
                self.consecutive_failures += 1;
                if self.consecutive_failures >= self.failure_threshold {
                    self.state = State::Open;
                    // FIX: the open timeout counts from the moment the breaker opens, not
                    // from the first failure of the run that opened it.
                    self.opened_at_ms = now_ms;
                }
            }
            // FIX: the probe failed: open again, for a full timeout from now.
            State::HalfOpen => {
                self.state = State::Open;
                self.opened_at_ms = now_ms;
            }
            // A late answer from a call let through before the breaker opened: ignored.
            State::Open => {}
        }
        //~ broken:
        //~ match self.state {
        //~     State::Closed => {
        //~         if self.consecutive_failures == 0 {
        //~             // The service has been failing since the first failure of this run.
        //~             self.opened_at_ms = now_ms;
        //~         }
        //~         self.consecutive_failures += 1;
        //~         if self.consecutive_failures >= self.failure_threshold {
        //~             self.state = State::Open;
        //~         }
        //~     }
        //~     State::HalfOpen => {
        //~         self.state = State::Open;
        //~         self.opened_at_ms = now_ms;
        //~     }
        //~     State::Open => {}
        //~ }
        //~ wrong: threshold-off-by-one
        //~ match self.state {
        //~     State::Closed => {
        //~         self.consecutive_failures += 1;
        //~         // Open once the failures are past the threshold.
        //~         if self.consecutive_failures > self.failure_threshold {
        //~             self.state = State::Open;
        //~             self.opened_at_ms = now_ms;
        //~         }
        //~     }
        //~     State::HalfOpen => {
        //~         self.state = State::Open;
        //~         self.opened_at_ms = now_ms;
        //~     }
        //~     State::Open => {}
        //~ }
        //~ wrong: probe-failure-keeps-old-timer
        //~ match self.state {
        //~     State::Closed => {
        //~         self.consecutive_failures += 1;
        //~         if self.consecutive_failures >= self.failure_threshold {
        //~             self.state = State::Open;
        //~             self.opened_at_ms = now_ms;
        //~         }
        //~     }
        //~     // The probe failed: the service is still down, back to open.
        //~     State::HalfOpen => self.state = State::Open,
        //~     State::Open => {}
        //~ }
        //~ wrong: late-failure-restarts-timer
        //~ // Every failure counts; enough of them in a row and the breaker opens, from now.
        //~ self.consecutive_failures += 1;
        //~ if self.state == State::HalfOpen || self.consecutive_failures >= self.failure_threshold {
        //~     self.state = State::Open;
        //~     self.opened_at_ms = now_ms;
        //~ }
        //~ alt: probe-flag
        //~ match self.state {
        //~     State::Closed => {
        //~         self.consecutive_failures += 1;
        //~         if self.consecutive_failures >= self.failure_threshold {
        //~             self.state = State::Open;
        //~             self.opened_at_ms = now_ms;
        //~         }
        //~     }
        //~     State::HalfOpen => {
        //~         self.state = State::Open;
        //~         self.opened_at_ms = now_ms;
        //~         self.probe_out = false;
        //~     }
        //~     State::Open => {}
        //~ }
        //~ alt: deadline-and-flag
        //~ let reopen_ms = now_ms.saturating_add(self.open_timeout_ms);
        //~ if self.probing {
        //~     self.probing = false;
        //~     self.open_until_ms = Some(reopen_ms);
        //~ } else if self.open_until_ms.is_none() {
        //~     self.failures_in_a_row += 1;
        //~     if self.failures_in_a_row >= self.failure_threshold {
        //~         self.open_until_ms = Some(reopen_ms);
        //~     }
        //~ }
        //~ alt: outcome-log
        //~ let reopen_ms = now_ms.saturating_add(self.open_timeout_ms);
        //~ match self.state {
        //~     State::Closed => {
        //~         self.recent.push_back(false);
        //~         if self.recent.len() > self.failure_threshold as usize {
        //~             self.recent.pop_front();
        //~         }
        //~         let full = self.recent.len() == self.failure_threshold as usize;
        //~         if full && self.recent.iter().all(|ok| !ok) {
        //~             self.state = State::Open;
        //~             self.probe_from_ms = reopen_ms;
        //~         }
        //~     }
        //~     State::HalfOpen => {
        //~         self.state = State::Open;
        //~         self.probe_from_ms = reopen_ms;
        //~     }
        //~     State::Open => {}
        //~ }
        //~ alt: phase-with-data
        //~ let reopen = Phase::Open {
        //~     until_ms: now_ms.saturating_add(self.open_timeout_ms),
        //~ };
        //~ self.phase = match self.phase {
        //~     Phase::Closed { failures_in_a_row } => {
        //~         let failures_in_a_row = failures_in_a_row + 1;
        //~         if failures_in_a_row >= self.failure_threshold {
        //~             reopen
        //~         } else {
        //~             Phase::Closed { failures_in_a_row }
        //~         }
        //~     }
        //~     Phase::Probing => reopen,
        //~     open @ Phase::Open { .. } => open,
        //~ };
        //~ end
    }
}
