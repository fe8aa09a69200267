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

thread_local! {
    static LAST_FAILING_SCHEDULE: std::cell::RefCell<Option<String>> =
        const { std::cell::RefCell::new(None) };
}

/// How to see the last failure of [`every_schedule`] on this thread again, once: the check
/// runner puts it in the report of the failing stage.
pub fn take_replay() -> Option<String> {
    LAST_FAILING_SCHEDULE.with(|slot| slot.borrow_mut().take())
}

/// Runs `test` under every schedule the checker explores; panics on the first failing one.
pub fn every_schedule<F>(test: F)
where
    F: Fn() + Send + Sync + 'static,
{
    #[cfg(all(feature = "shuttle", not(feature = "loom")))]
    {
        shuttle_search(test);
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

/// Shuttle's exhaustive search, keeping the failing schedule so the report can say how to
/// replay it (shuttle writes it to a file in a folder of our own, read back on failure).
#[cfg(all(feature = "shuttle", not(feature = "loom")))]
fn shuttle_search<F>(test: F)
where
    F: Fn() + Send + Sync + 'static,
{
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicU64, Ordering};

    static SEARCHES: AtomicU64 = AtomicU64::new(0);
    let folder = std::env::temp_dir().join(format!(
        "bughunt-shuttle-{}-{}",
        std::process::id(),
        SEARCHES.fetch_add(1, Ordering::SeqCst)
    ));
    let persisted = std::fs::create_dir_all(&folder).is_ok();
    let mut config = shuttle::Config::new();
    if persisted {
        config.failure_persistence = shuttle::FailurePersistence::File(Some(folder.clone()));
    }
    let scheduler = shuttle::scheduler::DfsScheduler::new(Some(SHUTTLE_SCHEDULES_MAX), false);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        shuttle::Runner::new(scheduler, config).run(test);
    }));
    let schedule = std::fs::read_dir(&folder)
        .ok()
        .and_then(|mut entries| entries.next())
        .and_then(|entry| entry.ok())
        .and_then(|entry| std::fs::read_to_string(entry.path()).ok());
    let _ = std::fs::remove_dir_all(&folder);
    if let Err(panic) = outcome {
        if let Some(schedule) = schedule {
            let schedule = schedule.trim().to_owned();
            let replay = format!(
                "{}: this schedule fails on every run; replay it with shuttle::replay(test, \"{schedule}\")",
                explorer_name()
            );
            LAST_FAILING_SCHEDULE.with(|slot| *slot.borrow_mut() = Some(replay));
        }
        resume_unwind(panic);
    }
}
