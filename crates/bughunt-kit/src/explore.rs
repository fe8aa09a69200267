//! Schedule exploration: run a concurrent test under every schedule that matters.
//!
//! [`every_schedule`] is the one entry point checks use. Under the `shuttle` feature it is a
//! depth-first search of every schedule (exhaustive, so a race is found on every run and a
//! correct fix is proven, not sampled); under `loom` it is loom's model checker with a
//! preemption bound of 2, which also covers weak memory orderings. Without either feature
//! the closure runs once on real threads, which proves nothing: checks that need schedules
//! only build with a checker feature on.

/// The most schedules the shuttle search may try before it gives up (and fails).
pub const SHUTTLE_SCHEDULES_MAX: usize = 100_000;

/// The loom preemption bound: enough for every bug in this catalog, small enough to be quick.
pub const LOOM_PREEMPTION_BOUND: usize = 2;

/// What the explorer is, for a report: "shuttle exhaustive search" and so on.
pub fn explorer_name() -> &'static str {
    if cfg!(feature = "shuttle") {
        "shuttle, exhaustive depth-first search"
    } else if cfg!(feature = "loom") {
        "loom, preemption bound 2"
    } else {
        "one run on real threads (no checker feature)"
    }
}

/// Runs `test` under every schedule the checker explores; panics on the first failing one.
pub fn every_schedule<F>(test: F)
where
    F: Fn() + Send + Sync + 'static,
{
    #[cfg(all(feature = "shuttle", not(feature = "loom")))]
    {
        shuttle::check_dfs(test, Some(SHUTTLE_SCHEDULES_MAX));
    }
    #[cfg(all(feature = "loom", not(feature = "shuttle")))]
    {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(LOOM_PREEMPTION_BOUND);
        builder.check(test);
    }
    #[cfg(not(any(feature = "shuttle", feature = "loom")))]
    {
        test();
    }
}
