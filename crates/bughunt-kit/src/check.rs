//! The check runner: a scenario's checks as ordered stages, each with a mentor's message.
//!
//! A scenario's `checks.rs` has one test that hands its stages to [`run_stages`]:
//!
//! ```ignore
//! #[test]
//! fn checks() {
//!     run_stages("visibility-timeout", &[
//!         Stage { id: "crash-after-receive", title: "A crash after receive loses nothing",
//!                 mentor: "Where does a message live between receive and ack?",
//!                 run: crash_after_receive },
//!     ]);
//! }
//! ```
//!
//! Stages run in order. A stage fails by panicking (a failed `assert!`), and the first
//! failure stops the run: later stages are `not-run`, because a learner fixes one thing at
//! a time and the first broken promise is the one to look at. Each stage gets a [`Ctx`]
//! whose trace is kept in the report when the stage fails. The report goes to the file
//! named by `BUGHUNT_REPORT` (see [`crate::report`]); the test itself fails if any stage did,
//! so a plain `cargo test` tells the truth too.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};

use crate::invariant::{self, Violation};
use crate::report::{CheckReport, StageReport, Status, NONCE_ENV, REPORT_ENV, REPORT_FORMAT};
use crate::trace::Trace;

/// One stage of a scenario's checks.
#[derive(Clone, Copy)]
pub struct Stage {
    /// Stable id, kebab-case; `scenario.toml` names the stage the broken form fails.
    pub id: &'static str,
    /// What the stage shows when it passes, in a few words.
    pub title: &'static str,
    /// What a mentor says to a learner whose code fails here.
    pub mentor: &'static str,
    pub run: fn(&mut Ctx),
}

/// What a stage can use while it runs.
#[derive(Default)]
pub struct Ctx {
    /// Record what happens; it is shown when the stage fails.
    pub trace: Trace,
    replay: Option<String>,
}

impl Ctx {
    /// Says how this stage explores schedules and how to see the failure again.
    pub fn replay(&mut self, how: impl Into<String>) {
        self.replay = Some(how.into());
    }

    /// Fails the stage if there are violations, after drawing them into the trace.
    pub fn require(&self, violations: Vec<Violation>) {
        if violations.is_empty() {
            return;
        }
        invariant::mark(&self.trace, &violations);
        let shown: Vec<String> = violations
            .iter()
            .take(5)
            .map(|v| v.detail.clone())
            .collect();
        let more = violations.len().saturating_sub(shown.len());
        let mut message = shown.join("; ");
        if more > 0 {
            message.push_str(&format!(" (and {more} more)"));
        }
        panic!("{message}");
    }
}

thread_local! {
    static LAST_PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Whether `file`, as a panic's location names it, is one of the kit's own source files (the
/// kit is compiled in the same workspace as the checks, so `file!()` names its files the same
/// way).
fn in_the_kit(file: &str) -> bool {
    std::path::Path::new(file!())
        .parent()
        .is_some_and(|src| std::path::Path::new(file).starts_with(src))
}

/// What a caught panic said: its message, or "" when it carried none.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        String::new()
    }
}

/// Runs the stages in order, prints a line per stage, writes the report, and panics if any
/// stage failed.
///
/// Under a schedule checker (shuttle or loom), a first stage, [`crate::blind::STAGE`], fails
/// any learner file that takes its locks, atomics or threads from anywhere but the kit: the
/// checker could not see them, so the stages after it would prove nothing.
pub fn run_stages(template: &str, stages: &[Stage]) {
    let report_path = std::env::var_os(REPORT_ENV).map(std::path::PathBuf::from);
    let mut all: Vec<Stage> = Vec::with_capacity(stages.len() + 1);
    if cfg!(any(feature = "shuttle", feature = "loom")) {
        all.push(Stage {
            id: crate::blind::STAGE,
            title: "Every lock, atomic and thread comes from bughunt_kit::sync",
            mentor: "This hunt's checks explore thread schedules, and they can only see the \
                     primitives of `bughunt_kit::sync` and `bughunt_kit::thread` (the same API \
                     as std's). A lock, atomic or thread from anywhere else runs unseen, so \
                     no schedule search could prove your fix right or wrong.",
            run: crate::blind::stage,
        });
    }
    all.extend_from_slice(stages);
    run_stages_reporting_to(template, &all, report_path);
}

fn run_stages_reporting_to(
    template: &str,
    stages: &[Stage],
    report_path: Option<std::path::PathBuf>,
) {
    let mut report = CheckReport {
        format: REPORT_FORMAT,
        template: template.to_owned(),
        nonce: std::env::var(NONCE_ENV).unwrap_or_default(),
        stages: stages
            .iter()
            .map(|stage| StageReport {
                id: stage.id.to_owned(),
                title: stage.title.to_owned(),
                status: Status::NotRun,
                mentor: stage.mentor.to_owned(),
                detail: None,
                location: None,
                replay: None,
                elapsed_ms: 0,
                trace: Vec::new(),
                steps: Vec::new(),
            })
            .collect(),
    };
    let save = |report: &CheckReport| {
        if let Some(path) = &report_path {
            if let Err(error) = report.write_to(path) {
                eprintln!(
                    "bughunt-kit: could not write the check report {}: {error}",
                    path.display()
                );
            }
        }
    };

    // Keep each caught panic's location, and keep the default hook's noise out of the output:
    // a failing stage is reported below, once, in words.
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        // Where a check asserted, or where the learner's code panicked; the kit's own files
        // (a property reporting what it found) tell the learner nothing.
        let location = info
            .location()
            .filter(|l| !in_the_kit(l.file()))
            .map(|l| format!("{}:{}", l.file(), l.line()));
        LAST_PANIC_LOCATION.with(|slot| *slot.borrow_mut() = location);
    }));

    let mut failed = None;
    for (index, stage) in stages.iter().enumerate() {
        report.stages[index].status = Status::Running;
        save(&report);
        let mut ctx = Ctx::default();
        LAST_PANIC_LOCATION.with(|slot| slot.borrow_mut().take());
        crate::explore::take_replay();
        crate::explore::take_hung();
        let started = std::time::Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| (stage.run)(&mut ctx)));
        let entry = &mut report.stages[index];
        entry.elapsed_ms = started.elapsed().as_millis() as u64;
        entry.replay = match (ctx.replay.take(), crate::explore::take_replay()) {
            (Some(said), Some(schedule)) => Some(format!("{said}; {schedule}")),
            (said, schedule) => said.or(schedule),
        };
        match outcome {
            Ok(()) => {
                entry.status = Status::Passed;
                println!("✓ {}", stage.title);
            }
            Err(payload) => {
                entry.status = Status::Failed;
                let text = panic_text(payload.as_ref());
                entry.detail = Some(if text.is_empty() {
                    "the stage panicked".to_owned()
                } else {
                    text
                });
                let hung = crate::explore::take_hung();
                if cfg!(any(feature = "shuttle", feature = "loom")) {
                    // A timer that never fires under the checker is the likeliest reason a
                    // fix with one hangs here: say so, with the line.
                    let detail = entry.detail.as_deref().unwrap_or_default();
                    if let Some(note) = crate::blind::timer_note(detail, hung) {
                        entry.mentor = format!("{} {note}", entry.mentor);
                    }
                }
                entry.location = LAST_PANIC_LOCATION.with(|slot| slot.borrow_mut().take());
                entry.trace = ctx.trace.events();
                entry.steps = crate::explore::take_steps();
                println!("✗ {}", stage.title);
                println!("  {}", entry.mentor);
                println!("  what happened: {}", entry.detail.as_deref().unwrap_or(""));
                failed = Some(stage.id);
            }
        }
        save(&report);
        if failed.is_some() {
            break;
        }
    }
    panic::set_hook(previous_hook);

    if let Some(stage) = failed {
        panic!("bughunt: the checks failed at stage `{stage}`");
    }
}

#[cfg(test)]
mod tests {
    /// A panic in the kit's own files is no place to show a learner; one in the checks or
    /// in the learner's code is.
    #[test]
    fn the_kits_own_files_are_no_location() {
        assert!(super::in_the_kit(file!()));
        assert!(super::in_the_kit(
            &std::path::Path::new(file!())
                .with_file_name("prop.rs")
                .display()
                .to_string()
        ));
        assert!(!super::in_the_kit("hunts/01-x/tests/checks.rs"));
        assert!(!super::in_the_kit("hunts/01-x/src/lib.rs"));
    }

    use super::*;

    fn pass(_: &mut Ctx) {}
    fn fail(ctx: &mut Ctx) {
        ctx.trace
            .event("queue", crate::trace::EventKind::Deliver)
            .msg(7)
            .record();
        assert_eq!(1 + 1, 3, "m7 came back after its ack");
    }

    fn stages() -> Vec<Stage> {
        vec![
            Stage {
                id: "first",
                title: "first holds",
                mentor: "-",
                run: pass,
            },
            Stage {
                id: "second",
                title: "second holds",
                mentor: "Close! Look at m7.",
                run: fail,
            },
            Stage {
                id: "third",
                title: "third holds",
                mentor: "-",
                run: pass,
            },
        ]
    }

    /// The first failure stops the run, is reported with its trace and mentor message, and
    /// later stages are marked not-run. The runner's own test fails.
    #[test]
    fn first_failure_stops_and_is_reported() {
        let dir = std::env::temp_dir().join(format!("bughunt-kit-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("report.json");
        let outcome = panic::catch_unwind(|| {
            run_stages_reporting_to("demo-template", &stages(), Some(path.clone()))
        });
        assert!(outcome.is_err(), "a failing stage must fail the test");
        let report = CheckReport::read_from(&path).unwrap();
        let statuses: Vec<Status> = report.stages.iter().map(|s| s.status).collect();
        assert_eq!(
            statuses,
            vec![Status::Passed, Status::Failed, Status::NotRun]
        );
        let failure = report.first_failure().unwrap();
        assert_eq!(failure.id, "second");
        assert!(failure.detail.as_deref().unwrap().contains("m7 came back"));
        // The stage asserted in this file, one of the kit's own: no place to show a learner.
        assert_eq!(failure.location, None);
        assert_eq!(failure.trace.len(), 1);
        assert!(!report.passed());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Violations fail a stage and are drawn into its trace as verdicts.
    #[test]
    fn require_fails_on_violations() {
        let ctx = Ctx::default();
        ctx.require(Vec::new());
        let lost = vec![Violation {
            invariant: crate::invariant::Invariant::AtLeastOnce,
            msg: Some(3),
            detail: "m3 was sent and never processed".into(),
        }];
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| ctx.require(lost)));
        assert!(outcome.is_err());
        assert_eq!(ctx.trace.msgs(crate::trace::EventKind::Lost), vec![3]);
    }
}
