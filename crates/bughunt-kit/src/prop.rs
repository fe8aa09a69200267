//! Properties over generated histories: a stage states a promise and checks it on many
//! histories drawn from a fixed seed, not on one hand-written story.
//!
//! A stage that replays one scenario passes every fix that happens to survive that scenario.
//! A property ("no acked message is lost", "depth never exceeds the bound") is checked instead
//! on histories that a [`proptest`] strategy generates: sends, receives, acks, crashes, clock
//! advances by uneven amounts, several consumers. The seed is fixed (derived from the
//! property's name), so a check is the same on every run. When a history breaks the
//! property, proptest shrinks it to the smallest one that still does, and that history is
//! run once more with the stage's trace recording: the learner sees *the shortest way to break
//! their fix*, drawn.
//!
//! ```ignore
//! use bughunt_kit::prop::{self, proptest::prelude::*};
//!
//! fn nothing_acked_is_lost(ctx: &mut Ctx) {
//!     prop::for_all(ctx, "no acked message is lost", 200, ops(), prop::numbered, |ops, trace| {
//!         let mut queue = Queue::new(...);
//!         for op in ops { /* drive the queue, record into trace, Err(...) on a broken promise */ }
//!         Ok(())
//!     });
//! }
//! ```
//!
//! A history is a plain value (`Vec<Op>` and the like) that the check applies to the
//! learner's code from scratch: nothing survives from one history to the next but what the
//! learner's code keeps in statics, and such state is itself a bug the search finds.
//!
//! Where the semantics are fully specified, compare the learner's answers with a small model
//! written in the check; where they are not (redelivery order, batching), check invariants
//! only, so every correct design passes.

use std::fmt::{Debug, Display};
use std::panic::{self, AssertUnwindSafe};

pub use proptest;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::check::Ctx;
use crate::trace::Trace;

/// The most shrinking steps one property may take after a failure.
pub const SHRINK_ITERATIONS_MAX: u32 = 4_096;

/// The most histories any property may try: a bound on the check's time.
pub const CASES_MAX: u32 = 2_000;

/// The 32-byte seed of a property: derived from its name, so every run of a check draws the
/// same histories and two properties of one check draw different ones.
pub fn seed_of(name: &str) -> [u8; 32] {
    // FNV-1a, spread over the 32 bytes: stable across Rust versions, unlike `DefaultHasher`.
    let mut seed = [0u8; 32];
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (round, chunk) in seed.chunks_mut(8).enumerate() {
        for byte in name.bytes().chain([round as u8]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        chunk.copy_from_slice(&hash.to_le_bytes());
    }
    seed
}

/// Numbers the steps of a history: "1. send m1; 2. c1 receives; ...".
pub fn numbered<T: Display>(steps: &[T]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(index, step)| format!("{}. {step}", index + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = crate::check::panic_text(payload);
    if text.is_empty() {
        "the code panicked".to_owned()
    } else {
        text
    }
}

/// Runs `holds` on one history, turning a panic in the code under test into a failure.
fn attempt<V, F>(holds: &F, history: &V, trace: &Trace) -> Result<(), String>
where
    F: Fn(&V, &Trace) -> Result<(), String>,
{
    match panic::catch_unwind(AssertUnwindSafe(|| holds(history, trace))) {
        Ok(outcome) => outcome,
        Err(payload) => Err(format!(
            "the code panicked: {}",
            panic_text(payload.as_ref())
        )),
    }
}

/// What a property search found.
#[derive(Debug)]
pub enum Verdict<V> {
    /// Every history held.
    Held { cases: u32 },
    /// `history`, shrunk as far as it goes, breaks the property with `message`.
    Broken { history: V, message: String },
}

/// Searches `cases` histories of `histories` (seeded from `name`) for one that breaks
/// `holds`, and shrinks it. No trace is kept: see [`for_all`].
pub fn search<S, F>(name: &str, cases: u32, histories: S, holds: &F) -> Verdict<S::Value>
where
    S: Strategy,
    S::Value: Clone + Debug,
    F: Fn(&S::Value, &Trace) -> Result<(), String>,
{
    let config = Config {
        cases: cases.clamp(1, CASES_MAX),
        max_shrink_iters: SHRINK_ITERATIONS_MAX,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        max_global_rejects: cases.clamp(1, CASES_MAX) * 4,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_of(name));
    let mut runner = TestRunner::new_with_rng(config, rng);
    let outcome = runner.run(&histories, |history| {
        attempt(holds, &history, &Trace::new()).map_err(TestCaseError::fail)
    });
    match outcome {
        Ok(()) => Verdict::Held { cases },
        Err(TestError::Fail(reason, history)) => Verdict::Broken {
            history,
            message: reason.message().to_owned(),
        },
        Err(TestError::Abort(reason)) => {
            panic!("bughunt-kit: the histories of `{name}` could not be generated: {reason}")
        }
    }
}

/// Checks that `holds` holds on `cases` histories drawn from `histories`; on the first that
/// breaks it, shrinks it, runs the shortest breaking history once more with the stage's
/// trace recording, and fails the stage with that history told in `tell`'s words.
///
/// `holds` applies one history to fresh instances of the code under test, records what
/// happens into the trace it is given, and returns `Err` with what went wrong, in the words of
/// that run (message ids, times, actors). A panic in the code under test is a failure too.
pub fn for_all<S, T, F>(ctx: &mut Ctx, name: &str, cases: u32, histories: S, tell: T, holds: F)
where
    S: Strategy,
    S::Value: Clone + Debug,
    T: Fn(&S::Value) -> String,
    F: Fn(&S::Value, &Trace) -> Result<(), String>,
{
    let cases = cases.clamp(1, CASES_MAX);
    ctx.replay(format!(
        "property \"{name}\": {cases} histories from a fixed seed (proptest, ChaCha), shrunk on failure"
    ));
    match search(name, cases, histories, &holds) {
        Verdict::Held { .. } => {}
        Verdict::Broken { history, message } => {
            // Told again with the stage's trace, so what is drawn is this very history. Code
            // that answers differently the second time (state kept in a static, a random
            // select!) keeps the message of the search.
            let message = match attempt(&holds, &history, &ctx.trace) {
                Err(again) => again,
                Ok(()) => format!(
                    "{message} (and the same history passed when run again: something in your \
                     code varies from run to run, such as state kept in a static or a \
                     thread-local, or a select! without `biased;` that picks among ready \
                     branches at random)"
                ),
            };
            // The message is a sentence of its own, however the stage ended it.
            let stop = if message.trim_end().ends_with(['.', '!', '?', ':']) {
                ""
            } else {
                "."
            };
            panic!(
                "{}{stop}\nThe shortest way I found to break it: {}",
                message.trim_end(),
                tell(&history)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A counter that forgets every increment past 7: the search finds it, shrinks the
    /// history to exactly eight increments, and reports it in words.
    #[test]
    fn finds_and_shrinks_a_broken_promise() {
        let holds = |steps: &Vec<u8>, trace: &Trace| {
            let mut counted = 0u32;
            for (index, _) in steps.iter().enumerate() {
                trace
                    .event("counter", crate::trace::EventKind::Note)
                    .record();
                if index < 7 {
                    counted += 1;
                }
            }
            if counted as usize == steps.len() {
                Ok(())
            } else {
                Err(format!("{} increments, counted {counted}", steps.len()))
            }
        };
        let verdict = search(
            "counter",
            200,
            proptest::collection::vec(any::<u8>(), 0..40),
            &holds,
        );
        match verdict {
            Verdict::Broken { history, message } => {
                assert_eq!(
                    history.len(),
                    8,
                    "shrunk to the smallest history: {history:?}"
                );
                assert_eq!(message, "8 increments, counted 7");
            }
            Verdict::Held { .. } => panic!("the search missed a counter that stops at 7"),
        }
    }

    /// The same name draws the same histories: a check is repeatable.
    #[test]
    fn the_same_name_draws_the_same_histories() {
        let seen = |name: &str| {
            let drawn = std::sync::Mutex::new(Vec::new());
            let holds = |value: &u64, _: &Trace| {
                drawn.lock().unwrap().push(*value);
                Ok(())
            };
            search(name, 20, any::<u64>(), &holds);
            drawn.into_inner().unwrap()
        };
        assert_eq!(seen("a property"), seen("a property"));
        assert_ne!(seen("a property"), seen("another property"));
    }

    /// A failing property fails the stage, draws the shrunk history into the stage's trace,
    /// and tells it.
    #[test]
    fn a_broken_property_fails_the_stage_with_its_story() {
        let mut ctx = Ctx::default();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            for_all(
                &mut ctx,
                "no value above 100",
                100,
                0u32..1_000,
                |value| format!("send {value}"),
                |value, trace| {
                    trace
                        .event("producer", crate::trace::EventKind::Send)
                        .msg(u64::from(*value))
                        .record();
                    if *value > 100 {
                        Err(format!("{value} got through"))
                    } else {
                        Ok(())
                    }
                },
            )
        }));
        let message = panic_text(outcome.unwrap_err().as_ref());
        assert!(message.starts_with("101 got through"), "{message}");
        assert!(message.contains("break it: send 101"), "{message}");
        assert_eq!(
            ctx.trace.events().len(),
            1,
            "only the shrunk history is drawn"
        );
    }

    /// A panic in the code under test is a failure, told with its message.
    #[test]
    fn a_panic_is_a_failure() {
        let verdict = search("panics", 50, 0u8..10, &|value: &u8, _: &Trace| {
            assert!(*value < 5, "value {value} is too big");
            Ok(())
        });
        match verdict {
            Verdict::Broken { history, message } => {
                assert_eq!(history, 5);
                assert!(message.contains("value 5 is too big"), "{message}");
            }
            Verdict::Held { .. } => panic!("a panic must fail the property"),
        }
    }
}
