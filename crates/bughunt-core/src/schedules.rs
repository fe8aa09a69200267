//! Demos of schedule-explored templates: a workload run under every thread schedule shuttle's
//! depth-first search reaches, in-process, for `bughunt demo`.
//!
//! A shuttle template's forms take their locks, atomics and threads from `bughunt_kit::sync`
//! and `bughunt_kit::thread`, which in this binary would be std's. The build script compiles
//! such a template's demo against a copy of each form that takes them from [`sync`] and
//! [`thread`] here instead: shuttle's, so the demo controls every thread switch. Its
//! `demo.rs` then calls [`every_schedule`] with a workload that records what each thread did
//! into a trace and says whether the program kept its promise. The demo shows the first
//! failing schedule drawn, and how many schedules were tried and how many failed, for the
//! broken form and for the fixed one.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use bughunt_kit::trace::{Event, Trace};

/// The sync facade of the kit, as its `shuttle` feature has it.
pub mod sync {
    pub use shuttle::hint;
    pub use shuttle::sync::{
        atomic, mpsc, Arc, Barrier, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard,
        RwLockWriteGuard,
    };
}

pub use shuttle::thread;

/// The most steps one schedule may take: a thread that never stops fails its schedule.
const STEPS_MAX: usize = 20_000;

/// The first schedule that broke the program's promise.
#[derive(Clone, Debug)]
pub struct Failing {
    /// Which schedule it was, counting from 1.
    pub schedule: usize,
    /// What went wrong: the workload's words, or shuttle's for a deadlock.
    pub message: String,
    /// What the threads did in that schedule, up to the failure.
    pub events: Vec<Event>,
}

/// What a search found.
#[derive(Clone, Debug, Default)]
pub struct Explored {
    /// Schedules run.
    pub schedules: usize,
    /// Schedules in which the promise broke.
    pub failed: usize,
    pub first_failure: Option<Failing>,
    /// What the threads did in the last schedule run.
    pub last_events: Vec<Event>,
    /// True when every schedule within the budget was run.
    pub complete: bool,
}

impl Explored {
    /// The demo's run: the counts (schedules tried, schedules in which the promise broke),
    /// the broken promise, and the first failing schedule drawn (else the last one run).
    pub fn demo_run(&self) -> bughunt_kit::demo::DemoRun {
        use bughunt_kit::demo::{Count, DemoRun};
        use bughunt_kit::invariant::{Invariant, Violation};
        let violations = self
            .first_failure
            .iter()
            .map(|failing| Violation {
                invariant: Invariant::EverySchedule,
                msg: None,
                detail: format!("in schedule {}, {}", failing.schedule, failing.message),
            })
            .collect();
        let events = match &self.first_failure {
            Some(failing) => failing.events.clone(),
            None => self.last_events.clone(),
        };
        DemoRun {
            counts: vec![
                Count {
                    label: "schedules explored".to_owned(),
                    value: self.schedules as u64,
                    bad: false,
                },
                Count {
                    label: "schedules that broke it".to_owned(),
                    value: self.failed as u64,
                    bad: true,
                },
            ],
            violations,
            focus_msg: None,
            focus_from_seq: events.first().map(|e| e.seq),
            series: Vec::new(),
            events,
        }
    }
}

/// Ends a search at its first failing schedule.
struct StopSearch;

#[derive(Default)]
struct Progress {
    explored: Explored,
    current: Option<Trace>,
}

/// Runs `workload` under every schedule of a depth-first search (at most `schedules_max`),
/// each with a fresh trace, until one breaks the promise: the workload returns `Err` with
/// what broke, or deadlocks, or panics. That schedule is kept with its trace up to the
/// failure, and the search ends there. Quiet: nothing reaches standard error.
pub fn every_schedule<F>(schedules_max: usize, workload: F) -> Explored
where
    F: Fn(&Trace) -> Result<(), String> + Send + Sync + 'static,
{
    let progress = Arc::new(Mutex::new(Progress::default()));
    let shared = progress.clone();
    let test = move || {
        let trace = Trace::new();
        let number = {
            let mut progress = shared.lock().unwrap_or_else(|p| p.into_inner());
            progress.explored.schedules += 1;
            progress.current = Some(trace.clone());
            progress.explored.schedules
        };
        if let Err(message) = workload(&trace) {
            {
                let mut progress = shared.lock().unwrap_or_else(|p| p.into_inner());
                progress.explored.failed += 1;
                progress.explored.first_failure = Some(Failing {
                    schedule: number,
                    message,
                    events: trace.events(),
                });
            }
            // The first failing schedule is the demo's story: the search stops there.
            panic::panic_any(StopSearch);
        }
    };
    let mut config = shuttle::Config::new();
    config.max_steps = shuttle::MaxSteps::FailAfter(STEPS_MAX);
    config.failure_persistence = shuttle::FailurePersistence::None;
    config.silence_warnings = true;
    let scheduler = shuttle::scheduler::DfsScheduler::new(Some(schedules_max), false);
    let outcome = quietly(|| {
        panic::catch_unwind(AssertUnwindSafe(|| {
            shuttle::Runner::new(scheduler, config).run(test)
        }))
    });
    let mut progress = progress.lock().unwrap_or_else(|p| p.into_inner());
    progress.explored.last_events = progress
        .current
        .as_ref()
        .map(Trace::events)
        .unwrap_or_default();
    match outcome {
        Ok(_) => {
            progress.explored.complete = progress.explored.schedules < schedules_max;
        }
        Err(payload) if payload.is::<StopSearch>() || progress.explored.first_failure.is_some() => {
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the schedule failed".to_owned());
            let events = progress
                .current
                .as_ref()
                .map(Trace::events)
                .unwrap_or_default();
            let schedule = progress.explored.schedules;
            progress.explored.failed += 1;
            if progress.explored.first_failure.is_none() {
                progress.explored.first_failure = Some(Failing {
                    schedule,
                    message: first_line(&message),
                    events,
                });
            }
        }
    }
    progress.explored.clone()
}

/// Shuttle's panic text, first line only ("deadlock! blocked tasks: [...]").
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).trim().to_owned()
}

/// Runs `work` with panics unreported and standard error sent nowhere: shuttle reports a
/// failing schedule on standard error, and a demo tells it its own way.
fn quietly<T>(work: impl FnOnce() -> T) -> T {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    // SAFETY: dup/open/dup2/close on descriptors this function owns; fd 2 is restored below.
    let saved = unsafe { libc::dup(2) };
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY) };
    if saved >= 0 && null >= 0 {
        unsafe { libc::dup2(null, 2) };
    }
    let result = work();
    if saved >= 0 {
        unsafe {
            libc::dup2(saved, 2);
            libc::close(saved);
        }
    }
    if null >= 0 {
        unsafe { libc::close(null) };
    }
    panic::set_hook(hook);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use bughunt_kit::trace::EventKind;

    /// Two threads incrementing with a load and a store lose an update in some schedules: the
    /// search stops at the first, with its trace; a correct increment survives every schedule.
    #[test]
    fn finds_and_counts_a_lost_update() {
        let explored = every_schedule(10_000, |trace| {
            let counter = sync::Arc::new(sync::atomic::AtomicU64::new(0));
            let handles: Vec<_> = ["t1", "t2"]
                .into_iter()
                .map(|name| {
                    let counter = counter.clone();
                    let trace = trace.clone();
                    thread::spawn(move || {
                        let seen = counter.load(std::sync::atomic::Ordering::SeqCst);
                        trace
                            .event(name, EventKind::Note)
                            .note(format!("reads {seen}"))
                            .record();
                        counter.store(seen + 1, std::sync::atomic::Ordering::SeqCst);
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
            match counter.load(std::sync::atomic::Ordering::SeqCst) {
                2 => Ok(()),
                n => Err(format!("two increments, counter {n}")),
            }
        });
        assert!(
            explored.schedules >= 2,
            "the first schedules run one thread after the other"
        );
        assert_eq!(explored.failed, 1, "the search stops at the first failure");
        let first = explored.first_failure.unwrap();
        assert_eq!(first.message, "two increments, counter 1");
        assert_eq!(first.events.len(), 2);
        let fixed = every_schedule(10_000, |_| {
            let counter = sync::Arc::new(sync::atomic::AtomicU64::new(0));
            let other = counter.clone();
            let handle = thread::spawn(move || {
                other.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            handle.join().unwrap();
            match counter.load(std::sync::atomic::Ordering::SeqCst) {
                2 => Ok(()),
                n => Err(format!("counter {n}")),
            }
        });
        assert!(fixed.complete && fixed.failed == 0 && fixed.schedules > 1);
    }

    /// A deadlock ends the search with shuttle's words, and the trace up to it.
    #[test]
    fn a_deadlock_is_a_failure_with_its_trace() {
        let explored = every_schedule(1_000, |trace| {
            let (tx, rx) = sync::mpsc::sync_channel::<u8>(0);
            trace
                .event("main", EventKind::Note)
                .note("sends before anyone receives")
                .record();
            tx.send(1).unwrap();
            drop(rx);
            Ok(())
        });
        let first = explored.first_failure.expect("a deadlock");
        assert!(first.message.contains("deadlock"), "{}", first.message);
        assert_eq!(first.events.len(), 1);
    }
}
