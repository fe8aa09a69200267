//! # Promises: one property over generated histories, one promise per stage
//!
//! A hunt whose program runs on paused time (a pool, a server, a consumer that is
//! cancelled) makes a few promises in order: it returns in time, it leaves nothing running,
//! it accounts for every item. Its checks generate histories from a seed, play each one on a
//! fresh runtime and judge what came of it. Each stage speaks for one promise only.
//!
//! ## How to use it
//! List the promises in stage order in a [`Promises`], with the property's name (one for
//! every stage: the name is the seed, so every stage draws the same histories) and how many
//! histories to draw. Each stage then calls [`Promises::check`] with its own number, the
//! strategy that draws histories and the function that plays one:
//!
//! ```ignore
//! const PROMISES: Promises<History, Outcome> = Promises {
//!     name: "a pool's shutdown keeps its promises",
//!     cases: 48,
//!     each: &[returned, |_, outcome| nothing_left_running(outcome), every_job_done],
//! };
//! fn property(ctx: &mut Ctx, stage: usize) {
//!     PROMISES.check(ctx, stage, histories(), play);
//! }
//! // Stage { id: "no-task-left", run: |ctx| property(ctx, 2), .. }
//! ```
//!
//! ## Why a stage says nothing about an earlier promise
//! On a history that breaks an earlier promise, a stage has nothing to say ([`judge`]).
//! Every stage draws the same histories, and the earlier stage passed on all of them, so the
//! shortest history a stage reports breaks its own promise and no earlier one, and its
//! mentor's words fit the run.
//!
//! ## Limits
//! Playing a history is the template's own code; this module neither starts a runtime nor
//! bounds a wait (see [`crate::paused`] for both).

use std::fmt::{Debug, Display};

use proptest::strategy::Strategy;

use crate::check::Ctx;
use crate::prop;
use crate::trace::Trace;

/// A promise, judged on a history and on what came of playing it: `Err` says how it was
/// broken, in words.
pub type Promise<H, O> = fn(&H, &O) -> Result<(), String>;

/// A template's promises, in stage order, and the histories they are judged on.
pub struct Promises<H: 'static, O: 'static> {
    /// The property's name, the same for every stage: it seeds the histories.
    pub name: &'static str,
    /// How many histories each stage draws.
    pub cases: u32,
    /// The promises; stage `n` judges `each[n - 1]`.
    pub each: &'static [Promise<H, O>],
}

impl<H, O> Promises<H, O>
where
    H: Clone + Debug + Display,
{
    /// Checks promise `stage` (counted from 1) over the histories `histories` draws, each
    /// played by `play`; fails the stage with the shortest history that breaks it, told by
    /// its `Display`.
    pub fn check<S>(
        &self,
        ctx: &mut Ctx,
        stage: usize,
        histories: S,
        play: impl Fn(&H, &Trace) -> O,
    ) where
        S: Strategy<Value = H>,
    {
        prop::for_all(
            ctx,
            self.name,
            self.cases,
            histories,
            |history| history.to_string(),
            |history, trace| {
                judge(self.each, stage, history, &play(history, trace)).map_err(sentence)
            },
        );
    }
}

/// Judges promise `stage` (counted from 1) alone: `Ok` on a history that breaks an earlier
/// promise, which is an earlier stage's to tell.
pub fn judge<H, O>(
    promises: &[Promise<H, O>],
    stage: usize,
    history: &H,
    outcome: &O,
) -> Result<(), String> {
    assert!(
        (1..=promises.len()).contains(&stage),
        "stage {stage} of {} promises: stages count from 1",
        promises.len()
    );
    if promises[..stage - 1]
        .iter()
        .any(|promise| promise(history, outcome).is_err())
    {
        return Ok(());
    }
    promises[stage - 1](history, outcome)
}

/// Every call of a history whose callers each make their calls one after another, as
/// `(id, caller, call)`: ids count from `first_id` through the first caller's calls, then the
/// next caller's, so an id names a call without saying when it runs.
pub fn numbered_calls<C: Clone>(callers: &[Vec<C>], first_id: u64) -> Vec<(u64, usize, C)> {
    callers
        .iter()
        .enumerate()
        .flat_map(|(caller, calls)| calls.iter().map(move |call| (caller, call.clone())))
        .zip(first_id..)
        .map(|((caller, call), id)| (id, caller, call))
        .collect()
}

/// Ends a failure message as a sentence: the kit goes on with the shortest history.
pub fn sentence(message: String) -> String {
    if message.ends_with('.') {
        message
    } else {
        message + "."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls are numbered caller by caller, from the first id.
    #[test]
    fn calls_are_numbered_caller_by_caller() {
        let callers = vec![vec!['a', 'b'], vec![], vec!['c']];
        assert_eq!(
            numbered_calls(&callers, 101),
            vec![(101, 0, 'a'), (102, 0, 'b'), (103, 2, 'c')]
        );
    }
    use proptest::prelude::*;

    /// Numbers handed to a counter.
    #[derive(Clone, Debug)]
    struct Numbers(Vec<u8>);

    impl Display for Numbers {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{} numbers", self.0.len())
        }
    }

    /// How many of a history's numbers came out, and how many it had.
    const COUNTED: Promises<Numbers, (usize, usize)> = Promises {
        name: "a counter counts",
        cases: 64,
        each: &[
            |_, (counted, _)| {
                if *counted < 6 {
                    Ok(())
                } else {
                    Err(format!("counted {counted}, past 5"))
                }
            },
            |_, (counted, had)| {
                if counted == had {
                    Ok(())
                } else {
                    Err(format!("{had} numbers, counted {counted}"))
                }
            },
        ],
    };

    /// A counter that loses every number past the third.
    fn play(history: &Numbers, _: &Trace) -> (usize, usize) {
        (history.0.len().min(3), history.0.len())
    }

    fn failure(stage: usize) -> String {
        let outcome = std::panic::catch_unwind(|| {
            COUNTED.check(
                &mut Ctx::default(),
                stage,
                proptest::collection::vec(any::<u8>(), 0..9).prop_map(Numbers),
                play,
            )
        });
        let payload = outcome.expect_err("the counter loses numbers");
        payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default()
    }

    /// A stage passes on histories that break only an earlier promise, and fails on the
    /// shortest that breaks its own, told as a sentence.
    #[test]
    fn a_stage_speaks_for_its_own_promise() {
        let counted = |n: usize| (n.min(3), n);
        let numbers = |n: usize| Numbers(vec![0; n]);
        assert_eq!(
            judge(COUNTED.each, 2, &numbers(7), &(6, 7)),
            Ok(()),
            "promise 1 is broken: not stage 2's to say"
        );
        assert_eq!(
            judge(COUNTED.each, 2, &numbers(4), &counted(4)),
            Err("4 numbers, counted 3".to_owned())
        );
        assert_eq!(judge(COUNTED.each, 1, &numbers(4), &counted(4)), Ok(()));
        let told = failure(2);
        assert!(told.starts_with("4 numbers, counted 3.\n"), "{told}");
        assert!(
            told.ends_with("The shortest way I found to break it: 4 numbers"),
            "the shortest history is told: {told}"
        );
    }

    #[test]
    fn sentences_end_once() {
        assert_eq!(sentence("it broke".into()), "it broke.");
        assert_eq!(sentence("it broke.".into()), "it broke.");
    }
}
