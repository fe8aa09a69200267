//! Schedule exploration: run a concurrent test under the schedules that matter.
//!
//! A stage picks a [`Search`] for each workload it runs and hands it to [`explore`], which
//! says afterwards what ran ([`Explored`]): the report names the search, its budget and how
//! many schedules it tried, so a learner (and a reviewer) knows what a pass proves.
//!
//! - Under the `shuttle` feature, [`Search::Exhaustive`] is a depth-first search of every
//!   schedule of the workload (a proof for that workload, when it finishes within its
//!   budget); [`Search::Pct`] and [`Search::Random`] sample schedules from a fixed seed (the
//!   same ones on every run), for workloads too large to enumerate. Every search is *fair to
//!   a thread that yields*: a thread that calls `thread::yield_now()` lets another runnable
//!   thread take a step before it runs again (the depth-first and random searches skip it
//!   once; PCT lowers its priority), so a correct program that spins politely, waiting for
//!   another thread, is never failed by a schedule that starves that thread. And every
//!   execution has a step bound, [`STEPS_MAX`]: a thread that waits for something that never
//!   happens fails the run instead of hanging it.
//! - Under `loom`, every search is loom's model checker with a preemption bound of
//!   [`LOOM_PREEMPTION_BOUND`]: all executions with at most that many preemptions, including
//!   the values a load may read under the C11 memory model as loom implements it (not every
//!   relaxed behaviour: loom does not model load buffering, for one). A loom thread that
//!   calls `yield_now()` is not run again while another thread can run, and loom fails an
//!   execution that branches more than its `max_branches` (1000) times, so a spin loop without
//!   a yield fails and one with a yield passes. [`Search::Bounded`] lowers the bound for
//!   workloads of three threads or more: with two threads spinning on one lock and two
//!   preemptions, loom 0.7 can explore the spinners handing the turn to each other forever.
//!   loom 0.7 also lets a plain store slip between the read and the write of another
//!   thread's read-modify-write on the same atomic (tokio-rs/loom#254), so a check must not
//!   conclude anything from a store racing a swap.
//! - Without either feature the closure runs once on real threads, which proves nothing:
//!   checks that need schedules only build with a checker feature on.
//!
//! [`every_schedule`] is the exhaustive search with its default budget, for stages that need
//! nothing else.

/// The most schedules the exhaustive shuttle search may try.
pub const SHUTTLE_SCHEDULES_MAX: usize = 100_000;

/// The loom preemption bound: enough for every bug in this catalog, small enough to be quick.
pub const LOOM_PREEMPTION_BOUND: usize = 2;

/// The most executions one loom search may try before it stops (a bound on time; a search
/// that reaches it says so).
pub const LOOM_EXECUTIONS_MAX: usize = 100_000;

/// The most scheduling steps one shuttle execution may take before it fails: far more than
/// any workload of the catalog needs, even with polite spinning under a fair search.
pub const STEPS_MAX: usize = 20_000;

/// How to search the schedules of one workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// Every schedule (shuttle: depth-first, fair to yields; loom: its model checker), up to
    /// `schedules_max` of them.
    Exhaustive { schedules_max: usize },
    /// shuttle: `schedules` schedules of the PCT algorithm (probabilistic concurrency testing:
    /// random thread priorities and `depth - 1` random priority changes per schedule) from a
    /// fixed seed. Under loom: the exhaustive search.
    Pct {
        seed: u64,
        depth: usize,
        schedules: usize,
    },
    /// shuttle: `schedules` uniformly random schedules from a fixed seed, fair to yields.
    /// Under loom: the exhaustive search.
    Random { seed: u64, schedules: usize },
    /// loom: every execution with at most `preemptions` preemptions, up to `schedules_max`
    /// executions; for workloads with more threads than the default bound can explore in
    /// time (or at all: with two threads spinning on one lock and two preemptions, loom 0.7
    /// can explore the spinners handing the turn to each other forever). Under shuttle: the
    /// exhaustive search, up to `schedules_max` schedules.
    Bounded {
        preemptions: usize,
        schedules_max: usize,
    },
}

impl Search {
    /// The exhaustive search with its default budget.
    pub const fn exhaustive() -> Search {
        Search::Exhaustive {
            schedules_max: if cfg!(feature = "loom") {
                LOOM_EXECUTIONS_MAX
            } else {
                SHUTTLE_SCHEDULES_MAX
            },
        }
    }

    /// What this search is under the checker this crate is built with, and its budget.
    pub fn describe(&self) -> String {
        if cfg!(feature = "loom") {
            let (bound, cap) = self.loom_bounds();
            return format!(
                "loom: every execution with at most {bound} preemption{} (up to {cap}), a \
                 yielding thread runs only when no other can, at most 1000 branches per \
                 execution",
                if bound == 1 { "" } else { "s" }
            );
        }
        if !cfg!(feature = "shuttle") {
            return "one run on real threads (no checker feature): nothing is explored".into();
        }
        match self {
            Search::Exhaustive { schedules_max } | Search::Bounded { schedules_max, .. } => {
                format!(
                "shuttle: depth-first search of every schedule (up to {schedules_max}), a thread \
                 that yields lets another take a step first, at most {STEPS_MAX} steps per \
                 schedule"
            )
            }
            Search::Pct {
                seed,
                depth,
                schedules,
            } => format!(
                "shuttle: {schedules} PCT schedules of depth {depth} from seed {seed}, a thread \
                 that yields loses its priority, at most {STEPS_MAX} steps per schedule"
            ),
            Search::Random { seed, schedules } => format!(
                "shuttle: {schedules} random schedules from seed {seed}, a thread that yields \
                 lets another take a step first, at most {STEPS_MAX} steps per schedule"
            ),
        }
    }
}

impl Search {
    /// The preemption bound and the most executions of this search under loom.
    fn loom_bounds(&self) -> (usize, usize) {
        match self {
            Search::Exhaustive { schedules_max } => (LOOM_PREEMPTION_BOUND, *schedules_max),
            Search::Bounded {
                preemptions,
                schedules_max,
            } => (*preemptions, *schedules_max),
            _ => (LOOM_PREEMPTION_BOUND, LOOM_EXECUTIONS_MAX),
        }
    }
}

/// What a search did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explored {
    /// How many schedules (shuttle) or executions (loom) ran.
    pub schedules: usize,
    /// False when an exhaustive search stopped at its budget before it ran out of schedules.
    pub complete: bool,
}

/// What the explorer is, for a report: the exhaustive search of [`every_schedule`].
pub fn explorer_name() -> &'static str {
    if cfg!(feature = "shuttle") {
        "shuttle, exhaustive depth-first search, fair to threads that yield"
    } else if cfg!(feature = "loom") {
        "loom, preemption bound 2"
    } else {
        "one run on real threads (no checker feature)"
    }
}

thread_local! {
    static LAST_FAILING_SCHEDULE: std::cell::RefCell<Option<String>> =
        const { std::cell::RefCell::new(None) };
    static LAST_SEARCH_HUNG: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a search on this thread, since this was last asked, failed on a schedule that
/// never ended: shuttle found every thread blocked (a deadlock), or a schedule ran past
/// [`STEPS_MAX`]. Stages word their own failures; this is the checker's own account.
pub fn take_hung() -> bool {
    LAST_SEARCH_HUNG.with(|hung| hung.replace(false))
}

/// How to see the last failure of [`explore`] on this thread again, once: the check runner
/// puts it in the report of the failing stage.
pub fn take_replay() -> Option<String> {
    LAST_FAILING_SCHEDULE.with(|slot| slot.borrow_mut().take())
}

/// The last failing schedule of [`explore`] on this thread, step by step, once: each step
/// names the learner's line a thread stood at, and under loom what it read or wrote (empty
/// without a checker). The check runner puts it in the report of the failing stage.
pub fn take_steps() -> Vec<crate::report::Step> {
    crate::steps::take_steps()
}

/// Runs `test` under every schedule the checker explores; panics on the first failing one.
pub fn every_schedule<F>(test: F)
where
    F: Fn() + Send + Sync + 'static,
{
    explore(Search::exhaustive(), test);
}

/// Runs `test` under the schedules `search` chooses; panics on the first failing one, and
/// otherwise says how many ran.
pub fn explore<F>(search: Search, test: F) -> Explored
where
    F: Fn() + Send + Sync + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    // Counted outside the checker (a std atomic is invisible to it, and adds no switches).
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = {
        let ran = ran.clone();
        move || {
            ran.fetch_add(1, Ordering::Relaxed);
            test();
        }
    };
    #[cfg(all(feature = "shuttle", not(feature = "loom")))]
    {
        shuttle_search(search, counted);
    }
    #[cfg(all(feature = "loom", not(feature = "shuttle")))]
    {
        let (bound, cap) = search.loom_bounds();
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(bound);
        builder.max_permutations = Some(cap);
        builder.max_duration = None;
        // Each execution writes down what the learner's code did (`crate::steps::loom`); the
        // last one written is the one that failed.
        crate::steps::loom::begin_search();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            builder.check(move || {
                crate::steps::loom::begin_execution();
                counted();
            })
        }));
        crate::steps::loom::end_search(outcome.is_err());
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
    #[cfg(not(any(feature = "shuttle", feature = "loom")))]
    {
        counted();
    }
    let schedules = ran.load(Ordering::Relaxed);
    let complete = match search {
        Search::Exhaustive { schedules_max } | Search::Bounded { schedules_max, .. } => {
            cfg!(any(feature = "shuttle", feature = "loom")) && schedules < schedules_max
        }
        _ => false,
    };
    let _ = search;
    Explored {
        schedules,
        complete,
    }
}

/// A scheduler that never runs a thread that has just yielded while another thread can run:
/// the yield is a promise that the thread waits for someone else, and a search that ignored
/// it would explore (forever) a spinning thread starving the one it waits for. It skips the
/// yielder once; the thread runs again as soon as any other has taken a step.
#[cfg(all(feature = "shuttle", not(feature = "loom")))]
struct FairToYields<S> {
    inner: S,
}

#[cfg(all(feature = "shuttle", not(feature = "loom")))]
impl<S: shuttle::scheduler::Scheduler> shuttle::scheduler::Scheduler for FairToYields<S> {
    fn new_execution(&mut self) -> Option<shuttle::scheduler::Schedule> {
        self.inner.new_execution()
    }

    fn next_task(
        &mut self,
        runnable: &[&shuttle::scheduler::Task],
        current: Option<shuttle::scheduler::TaskId>,
        is_yielding: bool,
    ) -> Option<shuttle::scheduler::TaskId> {
        if is_yielding && runnable.len() > 1 {
            if let Some(current) = current {
                let others: Vec<&shuttle::scheduler::Task> = runnable
                    .iter()
                    .copied()
                    .filter(|task| task.id() != current)
                    .collect();
                if !others.is_empty() {
                    return self.inner.next_task(&others, Some(current), is_yielding);
                }
            }
        }
        self.inner.next_task(runnable, current, is_yielding)
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}

/// Shuttle's search, keeping the failing schedule so the report can say how to replay it
/// (shuttle writes it to a file in a folder of our own, read back on failure).
#[cfg(all(feature = "shuttle", not(feature = "loom")))]
fn shuttle_search<F>(search: Search, test: F)
where
    F: Fn() + Send + Sync + 'static,
{
    use shuttle::scheduler::{DfsScheduler, PctScheduler, RandomScheduler};
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    // A replay belongs to the search that failed last; shuttle writes no file when a failing
    // schedule is as long as the last one it wrote on this thread, and then there is none.
    take_replay();
    crate::steps::shuttle::forget_steps();
    static SEARCHES: AtomicU64 = AtomicU64::new(0);
    let folder = std::env::temp_dir().join(format!(
        "bughunt-shuttle-{}-{}",
        std::process::id(),
        SEARCHES.fetch_add(1, Ordering::SeqCst)
    ));
    let persisted = std::fs::create_dir_all(&folder).is_ok();
    let mut config = shuttle::Config::new();
    config.max_steps = shuttle::MaxSteps::FailAfter(STEPS_MAX);
    config.silence_warnings = true;
    config.failure_persistence = if persisted {
        shuttle::FailurePersistence::File(Some(folder.clone()))
    } else {
        shuttle::FailurePersistence::None
    };
    // The search writes down its decisions, so a failing execution can be replayed once,
    // step by step, for the report (`crate::steps`).
    let decisions = crate::steps::shuttle::Decisions::default();
    let test = Arc::new(test);
    let searched = test.clone();
    let searched = move || searched();
    let outcome = catch_unwind(AssertUnwindSafe(|| match search {
        Search::Exhaustive { schedules_max } | Search::Bounded { schedules_max, .. } => {
            let scheduler = FairToYields {
                inner: DfsScheduler::new(Some(schedules_max), false),
            };
            shuttle::Runner::new(
                crate::steps::shuttle::Recording::new(scheduler, &decisions),
                config,
            )
            .run(searched);
        }
        Search::Pct {
            seed,
            depth,
            schedules,
        } => {
            let scheduler = PctScheduler::new_from_seed(seed, depth.max(1), schedules);
            shuttle::Runner::new(
                crate::steps::shuttle::Recording::new(scheduler, &decisions),
                config,
            )
            .run(searched);
        }
        Search::Random { seed, schedules } => {
            let scheduler = FairToYields {
                inner: RandomScheduler::new_from_seed(seed, schedules),
            };
            shuttle::Runner::new(
                crate::steps::shuttle::Recording::new(scheduler, &decisions),
                config,
            )
            .run(searched);
        }
    }));
    let schedule = std::fs::read_dir(&folder)
        .ok()
        .and_then(|mut entries| entries.next())
        .and_then(|entry| entry.ok())
        .and_then(|entry| std::fs::read_to_string(entry.path()).ok());
    let _ = std::fs::remove_dir_all(&folder);
    if let Err(panic) = outcome {
        let text = crate::check::panic_text(panic.as_ref());
        if text.contains("deadlock!") || text.contains("max_steps") || text.contains("step bound") {
            LAST_SEARCH_HUNG.with(|hung| hung.set(true));
        }
        crate::steps::shuttle::remember_failure(&decisions, test.clone());
        if let Some(schedule) = schedule {
            let schedule = schedule.trim().to_owned();
            let replay = format!(
                "{}: this schedule fails on every run; replay it with shuttle::replay(test, \"{schedule}\")",
                search.describe()
            );
            LAST_FAILING_SCHEDULE.with(|slot| *slot.borrow_mut() = Some(replay));
        }
        resume_unwind(panic);
    }
}

#[cfg(all(test, feature = "shuttle"))]
mod tests {
    use super::*;
    use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use crate::sync::Arc;
    use crate::thread;

    /// A thread that waits for another by spinning with `yield_now` passes every search: the
    /// searches are fair to yields, so the thread it waits for always gets to run.
    #[test]
    fn a_polite_spinner_passes_every_search() {
        for search in [
            Search::exhaustive(),
            Search::Pct {
                seed: 7,
                depth: 3,
                schedules: 200,
            },
            Search::Random {
                seed: 7,
                schedules: 200,
            },
        ] {
            let explored = explore(search, || {
                let ready = Arc::new(AtomicBool::new(false));
                let setter = {
                    let ready = ready.clone();
                    thread::spawn(move || ready.store(true, Ordering::SeqCst))
                };
                while !ready.load(Ordering::SeqCst) {
                    thread::yield_now();
                }
                setter.join().unwrap();
            });
            assert!(explored.schedules > 0, "{search:?}");
        }
    }

    /// The exhaustive search finds a lost update and says it covered every schedule of a
    /// correct one.
    #[test]
    fn the_exhaustive_search_finds_a_lost_update() {
        let racy = std::panic::catch_unwind(|| {
            explore(Search::exhaustive(), || {
                let count = Arc::new(AtomicU64::new(0));
                let other = {
                    let count = count.clone();
                    thread::spawn(move || {
                        let seen = count.load(Ordering::SeqCst);
                        count.store(seen + 1, Ordering::SeqCst);
                    })
                };
                let seen = count.load(Ordering::SeqCst);
                count.store(seen + 1, Ordering::SeqCst);
                other.join().unwrap();
                assert_eq!(count.load(Ordering::SeqCst), 2, "an update was lost");
            })
        });
        assert!(racy.is_err());
        // shuttle persists the failing schedule from a process-wide panic hook, so with tests
        // running in parallel the replay may land elsewhere: only a check binary's is certain.
        take_replay();
        let explored = explore(Search::exhaustive(), || {
            let count = Arc::new(AtomicU64::new(0));
            let other = {
                let count = count.clone();
                thread::spawn(move || {
                    count.fetch_add(1, Ordering::SeqCst);
                })
            };
            count.fetch_add(1, Ordering::SeqCst);
            other.join().unwrap();
        });
        assert!(explored.complete && explored.schedules > 1, "{explored:?}");
    }

    /// A failing schedule is told step by step: each step names the line (here, of this file:
    /// the crate under test) a thread stood at, and both threads of the lost update show.
    #[test]
    fn a_failing_schedule_is_told_step_by_step() {
        let racy = std::panic::catch_unwind(|| {
            explore(Search::exhaustive(), || {
                let count = Arc::new(AtomicU64::new(0));
                let other = {
                    let count = count.clone();
                    thread::spawn(move || {
                        let seen = count.load(Ordering::SeqCst); // the other thread reads
                        count.store(seen + 1, Ordering::SeqCst);
                    })
                };
                let seen = count.load(Ordering::SeqCst); // the check reads
                count.store(seen + 1, Ordering::SeqCst);
                other.join().unwrap();
                assert_eq!(count.load(Ordering::SeqCst), 2, "an update was lost");
            })
        });
        assert!(racy.is_err());
        take_replay();
        assert!(!take_hung(), "a lost update is no hang");
        let steps = take_steps();
        assert!(!steps.is_empty(), "no steps were recorded");
        assert!(
            steps.iter().all(|s| s.file == "src/explore.rs"),
            "{steps:#?}"
        );
        let threads: std::collections::BTreeSet<&str> =
            steps.iter().map(|s| s.thread.as_str()).collect();
        assert!(threads.len() >= 2, "{steps:#?}");
        for words in ["the other thread reads", "the check reads"] {
            assert!(
                steps.iter().any(|s| s.code.contains(words)),
                "no step at `{words}`: {steps:#?}"
            );
        }
        assert!(take_steps().is_empty(), "steps are taken once");
    }

    /// A check names its own thread, and the steps leave out what came before `start_here`.
    #[test]
    fn steps_use_given_names_and_start_where_told() {
        let racy = std::panic::catch_unwind(|| {
            explore(Search::exhaustive(), || {
                crate::sync::name_this_thread("checker");
                let warm_up = AtomicU64::new(0);
                warm_up.fetch_add(1, Ordering::SeqCst); // a warm-up, left out
                crate::steps::start_here();
                let count = Arc::new(AtomicU64::new(0));
                let other = {
                    let count = count.clone();
                    crate::sync::spawn_named("other", move || {
                        let seen = count.load(Ordering::SeqCst);
                        count.store(seen + 1, Ordering::SeqCst);
                    })
                };
                let seen = count.load(Ordering::SeqCst);
                count.store(seen + 1, Ordering::SeqCst);
                other.join().unwrap();
                assert_eq!(count.load(Ordering::SeqCst), 2, "an update was lost");
            })
        });
        assert!(racy.is_err());
        take_replay();
        let steps = take_steps();
        let threads: std::collections::BTreeSet<&str> =
            steps.iter().map(|s| s.thread.as_str()).collect();
        assert!(
            threads.contains("checker") && threads.contains("other"),
            "{steps:#?}"
        );
        assert!(!threads.contains("main"), "{steps:#?}");
        assert!(
            !steps.iter().any(|s| s.code.contains("a warm-up")),
            "{steps:#?}"
        );
    }

    /// A thread that waits forever for something that never happens fails at the step
    /// bound instead of hanging the check.
    #[test]
    fn waiting_forever_fails_at_the_step_bound() {
        let outcome = std::panic::catch_unwind(|| {
            explore(Search::exhaustive(), || {
                let ready = AtomicBool::new(false);
                while !ready.load(Ordering::SeqCst) {
                    thread::yield_now();
                }
            })
        });
        assert!(outcome.is_err());
        take_replay();
        assert!(take_hung(), "a schedule past the step bound never ended");
        assert!(!take_hung(), "told once");
        // Its steps are the last ones before the bound, at most `STEPS_KEPT`.
        let steps = take_steps();
        assert!(!steps.is_empty() && steps.len() <= crate::steps::STEPS_KEPT);
    }
}

#[cfg(all(test, feature = "loom"))]
mod loom_tests {
    use super::*;
    use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use crate::sync::Arc;
    use crate::thread;

    /// A thread that waits for another by spinning with `yield_now` passes: loom runs
    /// another thread while one yields.
    #[test]
    fn a_polite_spinner_passes() {
        let explored = explore(Search::exhaustive(), || {
            let ready = Arc::new(AtomicBool::new(false));
            let setter = {
                let ready = ready.clone();
                thread::spawn(move || ready.store(true, Ordering::Release))
            };
            while !ready.load(Ordering::Acquire) {
                thread::yield_now();
            }
            setter.join().unwrap();
        });
        assert!(explored.schedules > 0);
    }

    /// A failing execution is told step by step: each step names the line (here, of this
    /// file: the crate under test) where a thread made an operation, and what it read or
    /// wrote, so the flag read true and the payload read 0 both show.
    #[test]
    fn a_failing_execution_is_told_step_by_step() {
        let relaxed = std::panic::catch_unwind(|| {
            explore(Search::exhaustive(), || {
                let payload = Arc::new(AtomicU64::new(0));
                let ready = Arc::new(AtomicBool::new(false));
                let producer = {
                    let (payload, ready) = (payload.clone(), ready.clone());
                    crate::sync::spawn_named("producer", move || {
                        payload.store(42, Ordering::Relaxed); // the payload is written
                        ready.store(true, Ordering::Relaxed); // the flag is set
                    })
                };
                crate::sync::name_this_thread("consumer");
                if ready.load(Ordering::Relaxed) {
                    // the flag is read
                    let body = payload.load(Ordering::Relaxed); // the payload is read
                    assert_eq!(body, 42, "the flag was set and the payload was not");
                }
                producer.join().unwrap();
            })
        });
        assert!(relaxed.is_err());
        let steps = take_steps();
        assert!(
            steps.iter().all(|s| s.file == "src/explore.rs"),
            "{steps:#?}"
        );
        let at = |words: &str| {
            steps
                .iter()
                .find(|s| s.code.contains(words))
                .unwrap_or_else(|| panic!("no step at `{words}`: {steps:#?}"))
        };
        assert_eq!(at("the flag is set").thread, "producer");
        assert_eq!(at("the flag is set").effect.as_deref(), Some("wrote true"));
        assert_eq!(at("let body").thread, "consumer");
        assert_eq!(at("let body").effect.as_deref(), Some("read 0"));
        assert_eq!(steps.last().map(|s| s.line), Some(at("let body").line));
        assert!(take_steps().is_empty(), "steps are taken once");
    }

    /// Each kind of operation says what it read and wrote, and a lock says it was taken.
    #[test]
    fn each_operation_says_what_it_did() {
        let failed = std::panic::catch_unwind(|| {
            explore(Search::exhaustive(), || {
                let count = AtomicU64::new(5);
                count.fetch_add(2, Ordering::Relaxed); // add
                let _ = count.compare_exchange(7, 9, Ordering::AcqRel, Ordering::Relaxed); // cas ok
                let _ = count.compare_exchange(7, 1, Ordering::AcqRel, Ordering::Relaxed); // cas no
                let _ = count.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| Some(n * 2)); // update
                crate::sync::atomic::fence(Ordering::SeqCst); // fence
                let lock = crate::sync::Mutex::new(0);
                drop(lock.lock().unwrap()); // lock
                panic!("fails on purpose");
            })
        });
        assert!(failed.is_err());
        let steps = take_steps();
        let effect = |words: &str| {
            steps
                .iter()
                .find(|s| s.code.contains(words))
                .unwrap_or_else(|| panic!("no step at `{words}`: {steps:#?}"))
                .effect
                .clone()
        };
        assert_eq!(effect("// add").as_deref(), Some("read 5, wrote 7"));
        assert_eq!(effect("// cas ok").as_deref(), Some("read 7, wrote 9"));
        assert_eq!(
            effect("// cas no").as_deref(),
            Some("read 9, not the value expected: wrote nothing")
        );
        assert_eq!(effect("// update").as_deref(), Some("read 9, wrote 18"));
        assert_eq!(effect("// fence"), None);
        assert_eq!(effect("// lock").as_deref(), Some("took the lock"));
    }

    /// What came before `start_here` in the failing execution is left out of its steps.
    #[test]
    fn steps_start_where_told() {
        let failed = std::panic::catch_unwind(|| {
            explore(Search::exhaustive(), || {
                let warm_up = AtomicU64::new(0);
                warm_up.fetch_add(1, Ordering::Relaxed); // a warm-up, left out
                crate::steps::start_here();
                let flag = AtomicBool::new(false);
                flag.store(true, Ordering::Relaxed); // the part told
                assert!(!flag.load(Ordering::Relaxed), "fails on purpose");
            })
        });
        assert!(failed.is_err());
        let steps = take_steps();
        assert!(
            !steps.iter().any(|s| s.code.contains("a warm-up")),
            "{steps:#?}"
        );
        assert!(
            steps.iter().any(|s| s.code.contains("the part told")),
            "{steps:#?}"
        );
        assert_eq!(steps[0].thread, "main", "{steps:#?}");
    }

    /// A search that passes leaves no steps behind, even after one that failed.
    #[test]
    fn a_passing_search_forgets_the_last_failure() {
        let failed = std::panic::catch_unwind(|| {
            explore(Search::exhaustive(), || {
                let flag = AtomicBool::new(false);
                flag.store(true, Ordering::Relaxed);
                assert!(!flag.load(Ordering::Relaxed), "fails on purpose");
            })
        });
        assert!(failed.is_err());
        explore(Search::exhaustive(), || {
            let flag = AtomicBool::new(false);
            flag.store(true, Ordering::Relaxed);
        });
        assert!(take_steps().is_empty());
    }

    /// A spin lock whose waiters yield passes too.
    #[test]
    fn a_polite_spin_lock_passes() {
        let explored = explore(Search::exhaustive(), || {
            let busy = Arc::new(AtomicBool::new(false));
            let lock = |busy: &AtomicBool| {
                while busy
                    .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    thread::yield_now();
                }
            };
            lock(&busy);
            busy.store(false, Ordering::Release);
            let other = {
                let busy = busy.clone();
                thread::spawn(move || {
                    lock(&busy);
                    busy.store(false, Ordering::Release);
                })
            };
            lock(&busy);
            busy.store(false, Ordering::Release);
            other.join().unwrap();
        });
        assert!(explored.schedules > 0);
    }
}
