//! A consumer's retry policy for calls to a downstream service that can go down.
//!
//! Each consumer takes a message from the queue and calls the downstream with it (a payment
//! API, a database). When the call fails, the consumer asks its [`Retrier`] what to do: call
//! again at some instant, or give up and move the message to the dead-letter queue. Many
//! consumers run at once, each with its own `Retrier`, and when the downstream goes down they
//! all fail together. The policy promises:
//!
//! - **backoff**: during an outage, however long, a consumer calls the downstream on average
//!   at most four times per `MAX_DELAY_MS`: a downstream that is down, or just recovering, is
//!   not flooded by the very clients that wait for it;
//! - **a cap**: no retry is planned more than `MAX_DELAY_MS` after the failure, so once the
//!   downstream is back, every consumer is back within `MAX_DELAY_MS`;
//! - **spread**: consumers that failed at the same instant do not retry at the same instants.
//!   Each `Retrier` is given its own seeded [`Rng`] to draw its jitter from; consumers given
//!   different seeds must not keep calling together;
//! - **a deadline**: a message is retried until `GIVE_UP_AFTER_MS` after its first failure.
//!   A failure at or after that instant sends it to the dead-letter queue; one before it never
//!   does.
//!
//! Time is a simulated [`Clock`]: it moves only when the caller advances it, so an outage of
//! ten minutes takes no time at all to check.

use std::collections::BTreeMap;

use bughunt_kit::clock::Clock;
use bughunt_kit::jitter::Rng;

/// The ceiling of the first retry's delay; each failure of a message doubles it.
pub const BASE_DELAY_MS: u64 = 100;
/// No retry waits longer than this after a failure.
pub const MAX_DELAY_MS: u64 = 5_000;
/// A message is retried until this long after its first failure, then dead-lettered.
pub const GIVE_UP_AFTER_MS: u64 = 600_000;

/// What a consumer does after a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Call the downstream again with this message at this instant (simulated ms).
    RetryAt(u64),
    /// Stop retrying: move the message to the dead-letter queue.
    DeadLetter,
}

/// Where one message stands: it has failed, and will be retried.
#[derive(Debug)]
struct Failing {
    /// When its first call failed: the deadline counts from here.
    first_failure_at_ms: u64,
    /// Failed calls so far.
    failures: u32,
}

/// One consumer's retry policy. Not shared: each consumer has its own.
#[derive(Debug)]
pub struct Retrier {
    clock: Clock,
    rng: Rng,
    //~ region
    /// Messages that have failed and not yet succeeded or been dead-lettered, by id.
    failing: BTreeMap<u64, Failing>,
    //~ alt: one-message-at-a-time
    //~ /// The one message this consumer is retrying, if any. A consumer works on one message
    //~ /// at a time, so a failure of another id means this one is settled.
    //~ current: Option<(u64, Failing)>,
    //~ end
    //~ region
    //~ alt: retry-budget
    //~ /// Retries this consumer may still make at once; one more is earned every
    //~ /// `TOKEN_EVERY_MS`, up to `BURST`.
    //~ tokens: u64,
    //~ /// The instant up to which tokens have been counted (and, once tokens run out, spent).
    //~ tokens_counted_at_ms: u64,
    //~ alt: decorrelated-jitter
    //~ /// The delay last drawn for each failing message: the next is drawn from it.
    //~ last_delay_ms: BTreeMap<u64, u64>,
    //~ wrong: one-deadline-per-consumer
    //~ /// When the current run of failures began.
    //~ failing_since_ms: Option<u64>,
    //~ end
}

impl Retrier {
    /// A policy on `clock`, drawing its jitter from `rng`.
    pub fn new(clock: Clock, rng: Rng) -> Self {
        Self {
            //~ region
            rng,
            //~ wrong: seed-from-the-clock
            //~ // Seeded from the time, so that no two runs draw the same jitter.
            //~ rng: Rng::seeded(clock.now_ms() ^ 0x5eed),
            //~ wrong: one-seed-for-all
            //~ rng: Rng::seeded(0x5eed),
            //~ end
            clock,
            //~ region
            failing: BTreeMap::new(),
            //~ alt: one-message-at-a-time
            //~ current: None,
            //~ end
            //~ region
            //~ alt: retry-budget
            //~ tokens: BURST,
            //~ tokens_counted_at_ms: 0,
            //~ alt: decorrelated-jitter
            //~ last_delay_ms: BTreeMap::new(),
            //~ wrong: one-deadline-per-consumer
            //~ failing_since_ms: None,
            //~ end
        }
    }

    /// How long to wait before the next call with message `id`, which has just failed.
    fn delay_ms(&mut self, id: u64) -> u64 {
        //~ site: constant-delay
        // FIX: exponential backoff. Each failure doubles the delay (100 ms, 200 ms, 400 ms,
        // ...), so a short blip costs a retry or two and a long outage sees fewer and fewer
        // calls. `saturating_*`: the hundredth failure of a long outage must not overflow.
        let failures = self.failing.get(&id).map_or(1, |failing| failing.failures);
        let backoff_ms = BASE_DELAY_MS.saturating_mul(2u64.saturating_pow(failures - 1));
        //~ broken:
        //~ let backoff_ms = BASE_DELAY_MS;
        //~ wrong: shift-overflows
        //~ let failures = self.failing.get(&id).map_or(1, |failing| failing.failures);
        //~ let backoff_ms = BASE_DELAY_MS << (failures - 1);
        //~ alt: one-message-at-a-time
        //~ let failures = self
        //~     .current
        //~     .as_ref()
        //~     .filter(|(current, _)| *current == id)
        //~     .map_or(1, |(_, failing)| failing.failures);
        //~ let backoff_ms = BASE_DELAY_MS.saturating_mul(2u64.saturating_pow(failures - 1));
        //~ end
        //~ site: no-cap
        // FIX: a cap. Without it, an outage of ten minutes leaves a consumer waiting ten
        // more after the downstream is back.
        let ceiling_ms = backoff_ms.min(MAX_DELAY_MS);
        //~ broken:
        //~ let ceiling_ms = backoff_ms;
        //~ end
        //~ site: no-jitter
        // FIX: full jitter. A random delay between 0 and the ceiling, drawn from this
        // consumer's own generator: consumers that failed together now retry apart, and the
        // downstream sees a trickle instead of a wave every time the ceiling comes round.
        self.rng.up_to(ceiling_ms)
        //~ broken:
        //~ ceiling_ms
        //~ wrong: jitter-on-top
        //~ // The full backoff, plus up to as much again at random.
        //~ ceiling_ms + self.rng.up_to(ceiling_ms)
        //~ wrong: a-few-ms-of-jitter
        //~ // Shave a few random milliseconds off, so that no two consumers call together.
        //~ ceiling_ms - self.rng.up_to(ceiling_ms.min(10))
        //~ alt: equal-jitter
        //~ // Half the ceiling for sure, the other half at random.
        //~ ceiling_ms / 2 + self.rng.up_to(ceiling_ms - ceiling_ms / 2)
        //~ alt: decorrelated-jitter
        //~ // Decorrelated jitter: each delay drawn between the base and three times the last
        //~ // one, capped. The exponent and the ceiling above are not used.
        //~ let _ = ceiling_ms;
        //~ let last_ms = self.last_delay_ms.get(&id).copied().unwrap_or(BASE_DELAY_MS);
        //~ let delay_ms = self
        //~     .rng
        //~     .between(BASE_DELAY_MS, last_ms.saturating_mul(3))
        //~     .min(MAX_DELAY_MS);
        //~ self.last_delay_ms.insert(id, delay_ms);
        //~ delay_ms
        //~ alt: retry-budget
        //~ // A token bucket: up to BURST retries at once, then one per TOKEN_EVERY_MS,
        //~ // whatever the message; each retry jittered by up to what is left of the cap. No
        //~ // exponent: the bucket is what bounds the calls.
        //~ let _ = ceiling_ms;
        //~ let now_ms = self.clock.now_ms();
        //~ if now_ms > self.tokens_counted_at_ms {
        //~     let earned = (now_ms - self.tokens_counted_at_ms) / TOKEN_EVERY_MS;
        //~     self.tokens = (self.tokens + earned).min(BURST);
        //~     self.tokens_counted_at_ms = if self.tokens == BURST {
        //~         now_ms
        //~     } else {
        //~         self.tokens_counted_at_ms + earned * TOKEN_EVERY_MS
        //~     };
        //~ }
        //~ let wait_ms = if self.tokens > 0 {
        //~     self.tokens -= 1;
        //~     0
        //~ } else {
        //~     // Spend the next token before it is earned: wait for it.
        //~     self.tokens_counted_at_ms += TOKEN_EVERY_MS;
        //~     self.tokens_counted_at_ms - now_ms
        //~ };
        //~ wait_ms + self.rng.up_to(MAX_DELAY_MS - TOKEN_EVERY_MS)
        //~ end
    }

    /// The call with message `id` just failed. Returns when to call again, or that the
    /// message goes to the dead-letter queue (and is forgotten here).
    pub fn failed(&mut self, id: u64) -> Next {
        let now_ms = self.clock.now_ms();
        //~ region
        let failing = self.failing.entry(id).or_insert(Failing {
            first_failure_at_ms: now_ms,
            failures: 0,
        });
        //~ alt: one-message-at-a-time
        //~ if self.current.as_ref().is_none_or(|(current, _)| *current != id) {
        //~     let first = Failing {
        //~         first_failure_at_ms: now_ms,
        //~         failures: 0,
        //~     };
        //~     self.current = Some((id, first));
        //~ }
        //~ let Some((_, failing)) = self.current.as_mut() else {
        //~     unreachable!("set just above");
        //~ };
        //~ end
        failing.failures += 1;
        //~ site: no-deadline
        // FIX: a bound on the retries. A message that still fails ten minutes after its
        // first failure (a poison message, or an outage that outlasts the deadline) goes to
        // the dead-letter queue, where a person can look at it, instead of being retried
        // forever and holding its consumer with it.
        if now_ms.saturating_sub(failing.first_failure_at_ms) >= GIVE_UP_AFTER_MS {
            self.forget(id);
            return Next::DeadLetter;
        }
        //~ broken:
        //~ wrong: deadline-from-last-failure
        //~ // Give up once the downstream has been failing for too long.
        //~ let since_ms = now_ms.saturating_sub(failing.first_failure_at_ms);
        //~ failing.first_failure_at_ms = now_ms;
        //~ if since_ms >= GIVE_UP_AFTER_MS {
        //~     self.forget(id);
        //~     return Next::DeadLetter;
        //~ }
        //~ wrong: give-up-after-attempts
        //~ // Enough attempts to cover the deadline at the longest delay.
        //~ if u64::from(failing.failures) >= GIVE_UP_AFTER_MS / MAX_DELAY_MS {
        //~     self.forget(id);
        //~     return Next::DeadLetter;
        //~ }
        //~ wrong: deadline-off-by-one
        //~ if now_ms.saturating_sub(failing.first_failure_at_ms) > GIVE_UP_AFTER_MS {
        //~     self.forget(id);
        //~     return Next::DeadLetter;
        //~ }
        //~ wrong: one-deadline-per-consumer
        //~ let since_ms = *self.failing_since_ms.get_or_insert(now_ms);
        //~ if now_ms.saturating_sub(since_ms) >= GIVE_UP_AFTER_MS {
        //~     self.forget(id);
        //~     return Next::DeadLetter;
        //~ }
        //~ end
        let delay_ms = self.delay_ms(id);
        Next::RetryAt(now_ms.saturating_add(delay_ms))
    }

    /// The call with message `id` succeeded: its failures are over.
    pub fn succeeded(&mut self, id: u64) {
        self.forget(id);
        //~ region
        //~ wrong: one-deadline-per-consumer
        //~ self.failing_since_ms = None;
        //~ end
    }

    fn forget(&mut self, id: u64) {
        //~ region
        self.failing.remove(&id);
        //~ alt: one-message-at-a-time
        //~ if self.current.as_ref().is_some_and(|(current, _)| *current == id) {
        //~     self.current = None;
        //~ }
        //~ end
        //~ region
        //~ alt: decorrelated-jitter
        //~ self.last_delay_ms.remove(&id);
        //~ end
    }
}

//~ region
//~ alt: retry-budget
//~ /// Retries a consumer may make back to back.
//~ const BURST: u64 = 3;
//~ /// One retry token earned per this many ms: the steady rate of retries in an outage.
//~ const TOKEN_EVERY_MS: u64 = MAX_DELAY_MS / 2;
//~ end
