//! The failing schedule, step by step, each step naming the learner's line.
//!
//! A schedule search under shuttle tells *that* some interleaving breaks the program; a
//! learner needs to see *which* one: "w1 at line 14 took the lock; w2 at line 22 read the
//! count; …". So every search records its scheduling decisions (cheap: one task id per
//! switch), and when an execution fails, [`take_steps`] runs that execution once more with
//! the same decisions, capturing at every switch where the thread that reached it stood in
//! the learner's code. The check runner puts the steps in the report ([`crate::report::Step`]).
//!
//! Only the last failure of a search is replayed, once, when the report asks for its steps (a
//! property that shrinks fails many times on its way to the one it reports).
//!
//! Where a thread stood is read from a backtrace taken at the switch: the innermost frame in
//! a file under the hunt crate's `src/` (the crate whose checks are running:
//! `CARGO_MANIFEST_DIR`, which cargo sets for a test binary); a line that several lines of
//! the learner's code call (a lock wrapper) is named by the line that called it. Switches
//! taken on the scheduler's own stack (a thread blocked, or finished) name no line and are
//! left out. Backtraces are taken for the last [`STEPS_KEPT`] switches only.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

use crate::report::Step;

/// The most steps kept of one failing schedule (the last ones: where it broke).
pub const STEPS_KEPT: usize = 200;

/// How many of the learner's frames a step looks at, innermost first.
const CHAIN_MAX: usize = 4;

/// One decision a scheduler made.
#[derive(Clone, Copy, Debug)]
enum Choice {
    Task(TaskId),
    Random(u64),
}

/// The decisions of the execution running now (or of the last one to run).
#[derive(Clone, Debug, Default)]
pub(crate) struct Decisions {
    inner: Arc<Mutex<Vec<Choice>>>,
}

impl Decisions {
    fn push(&self, choice: Choice) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(choice);
    }

    fn take(&self) -> Vec<Choice> {
        std::mem::take(&mut *self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Wraps a search's scheduler and writes down its decisions, execution by execution.
pub(crate) struct Recording<S> {
    inner: S,
    decisions: Decisions,
}

impl<S> Recording<S> {
    pub(crate) fn new(inner: S, decisions: &Decisions) -> Self {
        Self {
            inner,
            decisions: decisions.clone(),
        }
    }
}

impl<S: Scheduler> Scheduler for Recording<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        self.decisions.take();
        self.inner.new_execution()
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        let next = self.inner.next_task(runnable, current, is_yielding);
        if let Some(task) = next {
            self.decisions.push(Choice::Task(task));
        }
        next
    }

    fn next_u64(&mut self) -> u64 {
        let value = self.inner.next_u64();
        self.decisions.push(Choice::Random(value));
        value
    }
}

/// A step before its backtrace is read.
struct RawStep {
    thread: String,
    backtrace: std::backtrace::Backtrace,
}

/// Plays back recorded decisions, once, and captures where each switching thread stood.
struct Stepper {
    choices: VecDeque<Choice>,
    /// Switches still to come: backtraces are taken for the last [`STEPS_KEPT`] only.
    switches_left: usize,
    started: bool,
    names: HashMap<usize, String>,
    steps: Arc<Mutex<VecDeque<RawStep>>>,
}

impl Stepper {
    fn name(&mut self, runnable: &[&Task], task: TaskId) -> String {
        for seen in runnable {
            if let Some(name) = seen.name() {
                // shuttle's name for the test's own thread.
                let name = if name == "main-thread" {
                    "main".to_owned()
                } else {
                    name
                };
                self.names.insert(usize::from(seen.id()), name);
            }
        }
        let number = usize::from(task);
        self.names.get(&number).cloned().unwrap_or_else(|| {
            if number == 0 {
                "main".to_owned()
            } else {
                format!("thread {number}")
            }
        })
    }
}

impl Scheduler for Stepper {
    fn new_execution(&mut self) -> Option<Schedule> {
        if std::mem::replace(&mut self.started, true) {
            return None;
        }
        Some(Schedule::new(0))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        _is_yielding: bool,
    ) -> Option<TaskId> {
        if let (Some(task), true) = (current, self.switches_left <= STEPS_KEPT) {
            let thread = self.name(runnable, task);
            let mut steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
            if steps.len() == STEPS_KEPT {
                steps.pop_front();
            }
            steps.push_back(RawStep {
                thread,
                backtrace: std::backtrace::Backtrace::force_capture(),
            });
        }
        self.switches_left = self.switches_left.saturating_sub(1);
        match self.choices.pop_front() {
            Some(Choice::Task(task)) if runnable.iter().any(|t| t.id() == task) => Some(task),
            // The replay left the recorded execution: stop it rather than guess.
            _ => None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        match self.choices.front() {
            Some(Choice::Random(value)) => {
                let value = *value;
                self.choices.pop_front();
                value
            }
            _ => 0,
        }
    }
}

/// A failing execution, kept to be replayed when the report asks for its steps.
struct Failure {
    choices: Vec<Choice>,
    test: Arc<dyn Fn() + Send + Sync>,
}

thread_local! {
    static LAST_FAILURE: std::cell::RefCell<Option<Failure>> =
        const { std::cell::RefCell::new(None) };
}

/// Keeps the execution that just failed (its decisions and its test), for [`take_steps`].
/// Nothing is replayed yet: a property that shrinks fails many times, and only the last
/// failure is reported.
pub(crate) fn remember_failure(decisions: &Decisions, test: Arc<dyn Fn() + Send + Sync>) {
    let choices = decisions.take();
    LAST_FAILURE.with(|slot| *slot.borrow_mut() = Some(Failure { choices, test }));
}

/// Forgets the failure of an earlier search.
pub(crate) fn forget_steps() {
    LAST_FAILURE.with(|slot| slot.borrow_mut().take());
}

/// Runs the failing execution once more under its own decisions, capturing a backtrace at
/// each of its last [`STEPS_KEPT`] switches. The replay fails again (it is the same
/// execution); that failure is swallowed here, quietly.
fn replay(failure: Failure) -> Vec<(String, std::backtrace::Backtrace)> {
    let switches = failure
        .choices
        .iter()
        .filter(|c| matches!(c, Choice::Task(_)))
        .count();
    let steps = Arc::new(Mutex::new(VecDeque::new()));
    let stepper = Stepper {
        choices: failure.choices.into(),
        switches_left: switches,
        started: false,
        names: HashMap::new(),
        steps: steps.clone(),
    };
    let mut config = shuttle::Config::new();
    config.max_steps = shuttle::MaxSteps::FailAfter(crate::explore::STEPS_MAX);
    config.silence_warnings = true;
    config.failure_persistence = shuttle::FailurePersistence::None;
    let test = failure.test;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shuttle::Runner::new(stepper, config).run(move || test());
    }));
    std::panic::set_hook(hook);
    let raw = std::mem::take(&mut *steps.lock().unwrap_or_else(|p| p.into_inner()));
    raw.into_iter()
        .map(|step| (step.thread, step.backtrace))
        .collect()
}

/// The steps of the last failing schedule of a search on this thread, once: each names the
/// learner's line the thread stood at; consecutive steps of one thread at one line are one.
/// A line inside a helper that several lines call (a lock wrapper) is named by its caller.
pub fn take_steps() -> Vec<Step> {
    let Some(failure) = LAST_FAILURE.with(|slot| slot.borrow_mut().take()) else {
        return Vec::new();
    };
    let Some(crate_dir) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return Vec::new();
    };
    let raw = replay(failure);
    let cwd = std::env::current_dir().unwrap_or_default();
    // Each step's learner frames, innermost first.
    let chains: Vec<(String, Vec<(PathBuf, u32)>)> = raw
        .into_iter()
        .map(|(thread, backtrace)| {
            let text = format!("{backtrace:?}");
            let chain = frames(&text)
                .filter_map(|(file, line)| {
                    learner_file(&crate_dir, &cwd, file).map(|path| (path, line))
                })
                .take(CHAIN_MAX)
                .collect();
            (thread, chain)
        })
        .collect();
    // A line reached from two or more lines of the learner's code is in a helper (a lock
    // wrapper, a logging step): the step names the line that called it instead.
    let mut callers: HashMap<&(PathBuf, u32), std::collections::HashSet<&(PathBuf, u32)>> =
        HashMap::new();
    for (_, chain) in &chains {
        for pair in chain.windows(2) {
            callers.entry(&pair[0]).or_default().insert(&pair[1]);
        }
    }
    let mut sources: HashMap<PathBuf, Vec<String>> = HashMap::new();
    let mut steps: Vec<Step> = Vec::new();
    for (thread, chain) in &chains {
        let Some(mut at) = chain.first() else {
            continue;
        };
        for caller in &chain[1..] {
            if callers.get(at).is_some_and(|set| set.len() >= 2) {
                at = caller;
            } else {
                break;
            }
        }
        let (path, line) = (&at.0, at.1);
        if steps
            .last()
            .is_some_and(|last| &last.thread == thread && last.line == line)
        {
            continue;
        }
        let lines = sources.entry(path.clone()).or_insert_with(|| {
            std::fs::read_to_string(path)
                .map(|text| text.lines().map(str::to_owned).collect())
                .unwrap_or_default()
        });
        let code = lines
            .get((line as usize).wrapping_sub(1))
            .map(|l| l.trim().to_owned())
            .unwrap_or_default();
        let file = path
            .strip_prefix(&crate_dir)
            .unwrap_or(path)
            .display()
            .to_string();
        steps.push(Step {
            thread: thread.clone(),
            file,
            line,
            code,
        });
    }
    steps
}

/// The frames of a backtrace's debug text, innermost first: `(file, line)`, leaving out this
/// module's own (the capture itself).
///
/// std prints a frame as `{ fn: "name", file: "path", line: 12 }`; frames without a file
/// (no debug info) have no `file:` and are skipped.
fn frames(text: &str) -> impl Iterator<Item = (&str, u32)> {
    text.split("{ fn: \"").skip(1).filter_map(|frame| {
        let (function, rest) = frame.split_once('"')?;
        if function.contains("bughunt_kit::steps::")
            || function.contains("bughunt_kit::explore::shuttle_search")
        {
            return None;
        }
        let (_, rest) = rest.split_once("file: \"")?;
        let (file, after) = rest.split_once("\", line: ")?;
        let digits: &str = &after[..after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len())];
        Some((file, digits.parse().ok()?))
    })
}

/// The frame's file as a path under the hunt crate's `src/`, if it is one. Debug info names
/// a workspace member's files relative to the workspace root, so a relative path is tried
/// against the crate's folder and each folder above it.
fn learner_file(crate_dir: &Path, cwd: &Path, file: &str) -> Option<PathBuf> {
    let src = crate_dir.join("src");
    let file = Path::new(file);
    if file.is_absolute() {
        return file.starts_with(&src).then(|| file.to_path_buf());
    }
    crate_dir
        .ancestors()
        .chain(std::iter::once(cwd))
        .map(|base| base.join(file))
        .find(|candidate| candidate.starts_with(&src) && candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_from_std_debug_text() {
        let text = r#"Backtrace [{ fn: "<bughunt_kit::steps::Stepper as x>::next_task", file: "./src/steps.rs", line: 9 }, { fn: "a::f", file: "./src/lib.rs", line: 14 }, { fn: "??" }, { fn: "b", file: "/x/y.rs", line: 250 }]"#;
        let read: Vec<(&str, u32)> = frames(text).collect();
        assert_eq!(read, vec![("./src/lib.rs", 14), ("/x/y.rs", 250)]);
    }

    #[test]
    fn only_files_under_the_crates_src_are_the_learners() {
        let dir = tempfile_dir();
        let crate_dir = dir.join("hunts").join("h");
        std::fs::create_dir_all(crate_dir.join("src")).unwrap();
        std::fs::write(crate_dir.join("src/lib.rs"), "fn f() {}\n").unwrap();
        let cwd = Path::new("/");
        assert_eq!(
            learner_file(&crate_dir, cwd, "hunts/h/src/lib.rs"),
            Some(crate_dir.join("src/lib.rs"))
        );
        let absolute = crate_dir.join("src/lib.rs");
        assert!(learner_file(&crate_dir, cwd, absolute.to_str().unwrap()).is_some());
        assert_eq!(learner_file(&crate_dir, cwd, "kit/src/lib.rs"), None);
        assert_eq!(
            learner_file(&crate_dir, cwd, "/rustc/abc/library/std/src/rt.rs"),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bughunt-kit-steps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
