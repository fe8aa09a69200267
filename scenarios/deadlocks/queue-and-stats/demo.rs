//! The demo for deadlocks/queue-and-stats: one worker takes a job and completes it while the
//! reporter asks for a report, under every schedule of the two threads.
//!
//! The search is shuttle's depth-first one (`crate::schedules`): every order in which the
//! threads' steps can interleave. Every `Lock` says, before each attempt, which lock the
//! thread waits for, and when it holds or releases one; the demo keeps who holds what (a
//! wait-for graph) and, the moment a thread starts to wait for a lock held by a thread that
//! waits, directly or not, for one it holds, fails the schedule with the cycle drawn: that
//! wait can never end (the locks are not reentrant and nobody gives one up). The wrong way
//! has the reporter take `stats` before `queue`; the right way takes them in `take`'s order
//! and finishes in every schedule there is.

use super::hunt::*;
use crate::schedules::{every_schedule, sync::Arc, thread};
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::trace::{EventKind, Trace};
use std::sync::Mutex as StdMutex;

/// A bound on the search, far above the schedules of two short threads.
const SCHEDULES_MAX: usize = 20_000;
/// The job the worker takes.
const JOB: u64 = 101;

/// Who holds which locks and who waits for which, for the schedule being run. A std mutex:
/// recording adds no thread switches, and it is never held across one.
#[derive(Default)]
struct Graph {
    holds: Vec<(String, Vec<&'static str>)>,
    waits: Vec<(String, &'static str)>,
    /// A cycle was found: what the threads do while unwinding is no part of the story.
    stopped: bool,
}

impl Graph {
    fn holds_of(&mut self, thread: &str) -> &mut Vec<&'static str> {
        if !self.holds.iter().any(|(name, _)| name == thread) {
            self.holds.push((thread.to_owned(), Vec::new()));
        }
        let at = self.holds.iter().position(|(name, _)| name == thread).expect("just added");
        &mut self.holds[at].1
    }

    fn holder(&self, lock: &str) -> Option<String> {
        self.holds.iter().find(|(_, locks)| locks.contains(&lock)).map(|(name, _)| name.clone())
    }

    fn waits_for(&self, thread: &str) -> Option<&'static str> {
        self.waits.iter().find(|(name, _)| name == thread).map(|(_, lock)| *lock)
    }

    /// If `thread`'s wait closes a cycle, the cycle in words.
    fn cycle_from(&mut self, thread: &str) -> Option<String> {
        let mut path = vec![thread.to_owned()];
        for _ in 0..=self.waits.len() {
            let at = path.last().expect("the path starts with a thread").clone();
            let lock = self.waits_for(&at)?;
            let next = self.holder(lock)?;
            if next == thread {
                let told: Vec<String> = path
                    .iter()
                    .map(|name| {
                        let holds: Vec<String> =
                            self.holds_of(name).iter().map(|lock| format!("`{lock}`")).collect();
                        format!(
                            "{} holds {} and waits for `{}`",
                            called(name),
                            holds.join(", "),
                            self.waits_for(name).unwrap_or("?")
                        )
                    })
                    .collect();
                return Some(format!("deadlock: {}: a cycle, nobody can go on", told.join("; ")));
            }
            path.push(next);
        }
        None
    }
}

fn called(thread: &str) -> String {
    if thread.starts_with('w') && thread[1..].chars().all(|c| c.is_ascii_digit()) {
        thread.to_owned()
    } else {
        format!("the {thread}")
    }
}

fn named(list: &[&'static str]) -> String {
    if list.is_empty() {
        "nothing".to_owned()
    } else {
        list.iter().map(|lock| format!("`{lock}`")).collect::<Vec<_>>().join(", ")
    }
}

/// The program's log, drawn, with the wait-for graph kept up to date.
fn log_into(trace: &Trace) -> Log {
    let trace = trace.clone();
    let graph = std::sync::Arc::new(StdMutex::new(Graph::default()));
    Log::new(move |thread, step| {
        let thread = if thread == "main-thread" { "main" } else { thread };
        let mut graph = graph.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if graph.stopped {
            return;
        }
        let (kind, note) = match step {
            Step::Waits(lock) => {
                let holds = named(graph.holds_of(thread));
                graph.waits.push((thread.to_owned(), lock));
                (EventKind::Note, format!("holds {holds}, waits for `{lock}`"))
            }
            Step::Holds(lock) => {
                graph.waits.retain(|(name, _)| name != thread);
                graph.holds_of(thread).push(lock);
                (EventKind::Process, format!("holds {}", named(graph.holds_of(thread))))
            }
            Step::Releases(lock) => {
                let holds = graph.holds_of(thread);
                if let Some(at) = holds.iter().rposition(|name| *name == lock) {
                    holds.remove(at);
                }
                (EventKind::Ack, format!("releases `{lock}`; holds {}", named(holds)))
            }
            Step::Says(what) => (EventKind::Note, what),
        };
        let event = trace.event(thread, kind).note(note);
        if thread == "w1" {
            event.msg(JOB).record();
        } else {
            event.record();
        }
        if let Some(cycle) = graph.cycle_from(thread) {
            trace.event(thread, EventKind::Stall).note(cycle.clone()).record();
            graph.stopped = true;
            drop(graph);
            panic!("{cycle}");
        }
    })
}

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let explored = every_schedule(SCHEDULES_MAX, |trace| {
        let dispatcher = Arc::new(Dispatcher::new(log_into(trace)));
        dispatcher.push(Job { id: JOB, failures: 0 });
        let worker = {
            let dispatcher = dispatcher.clone();
            thread::Builder::new()
                .name("w1".into())
                .spawn(move || {
                    let job = dispatcher.take();
                    if let Some(job) = job {
                        dispatcher.complete(job);
                    }
                })
                .expect("the worker could not start")
        };
        let reporter = {
            let dispatcher = dispatcher.clone();
            thread::Builder::new()
                .name("reporter".into())
                .spawn(move || dispatcher.report())
                .expect("the reporter could not start")
        };
        worker.join().expect("the worker panicked");
        let report = reporter.join().expect("the reporter panicked");
        trace
            .event("reporter", EventKind::Note)
            .note(format!(
                "report: backlog {}, pushed {}, taken {}, done {}",
                report.backlog, report.pushed, report.taken, report.done
            ))
            .record();
        Ok(())
    });
    explored.demo_run()
}
