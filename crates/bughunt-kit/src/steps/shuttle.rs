//! Steps under shuttle: every search records its scheduling decisions (cheap: one task id
//! per switch), and when an execution fails, [`take_steps`] runs that execution once more
//! with the same decisions, capturing at every switch where the thread that reached it stood
//! in the learner's code.
//!
//! Only the last failure of a search is replayed, once, when the report asks for its steps (a
//! property that shrinks fails many times on its way to the one it reports).
//!
//! Where a thread stood is read from a backtrace taken at the switch: the innermost frame in
//! a file under the hunt crate's `src/`; a line that several lines of the learner's code call
//! (a lock wrapper) is named by the line that called it. Switches taken on the scheduler's
//! own stack (a thread blocked, or finished) name no line and are left out. Backtraces are
//! taken for the last [`STEPS_KEPT`] switches only.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

use super::{numbered, Teller, STEPS_KEPT};
use crate::report::Step;

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
    task: usize,
    /// How many switches of the replay came before this one.
    switch: usize,
    backtrace: std::backtrace::Backtrace,
}

/// Plays back recorded decisions, once, and captures where each switching thread stood.
struct Stepper {
    choices: VecDeque<Choice>,
    /// Switches still to come: backtraces are taken for the last [`STEPS_KEPT`] only.
    switches_left: usize,
    started: bool,
    /// The names shuttle's tasks have, by task (shared: read once the replay is over).
    names: Arc<Mutex<HashMap<usize, String>>>,
    steps: Arc<Mutex<VecDeque<RawStep>>>,
}

impl Stepper {
    /// Keeps the names of the tasks that can run now (shuttle knows a task's name only while
    /// it has it at hand).
    fn learn_names(&mut self, runnable: &[&Task]) {
        for seen in runnable {
            if let Some(name) = seen.name() {
                // shuttle's name for the test's own thread.
                let name = if name == "main-thread" {
                    "main".to_owned()
                } else {
                    name
                };
                self.names
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(usize::from(seen.id()), name);
            }
        }
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
            self.learn_names(runnable);
            let mut steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
            if steps.len() == STEPS_KEPT {
                steps.pop_front();
            }
            steps.push_back(RawStep {
                task: usize::from(task),
                switch: SWITCHES.with(Cell::get),
                backtrace: std::backtrace::Backtrace::force_capture(),
            });
        }
        self.switches_left = self.switches_left.saturating_sub(1);
        SWITCHES.with(|switches| switches.set(switches.get() + 1));
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
    /// Names the checks gave their threads ([`name_this_thread`]), by task, in the execution
    /// running now. shuttle runs every task of an execution on this one thread.
    /// How many switches the replay running now has made, and the first one whose step
    /// counts ([`start_here`]).
    static SWITCHES: Cell<usize> = const { Cell::new(0) };
    static START: Cell<usize> = const { Cell::new(0) };
    static GIVEN_NAMES: std::cell::RefCell<HashMap<usize, String>> =
        std::cell::RefCell::new(HashMap::new());
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

/// Names the shuttle task that calls it, for the steps (outside an execution, nothing).
pub(crate) fn name_this_thread(name: &str) {
    if let Some(task) = shuttle::current::try_get_current_task() {
        GIVEN_NAMES.with(|names| {
            names
                .borrow_mut()
                .insert(usize::from(task), name.to_owned())
        });
    }
}

/// The steps begin at the next switch: the replay's earlier ones are left out.
pub(crate) fn start_here() {
    START.with(|start| start.set(SWITCHES.with(Cell::get)));
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
    let names = Arc::new(Mutex::new(HashMap::new()));
    let stepper = Stepper {
        choices: failure.choices.into(),
        switches_left: switches,
        started: false,
        names: names.clone(),
        steps: steps.clone(),
    };
    let mut config = shuttle::Config::new();
    config.max_steps = shuttle::MaxSteps::FailAfter(crate::explore::STEPS_MAX);
    config.silence_warnings = true;
    config.failure_persistence = shuttle::FailurePersistence::None;
    let test = failure.test;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    GIVEN_NAMES.with(|given| given.borrow_mut().clear());
    SWITCHES.with(|switches| switches.set(0));
    START.with(|start| start.set(0));
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shuttle::Runner::new(stepper, config).run(move || test());
    }));
    std::panic::set_hook(hook);
    let given = GIVEN_NAMES.with(|given| std::mem::take(&mut *given.borrow_mut()));
    let names = std::mem::take(&mut *names.lock().unwrap_or_else(|p| p.into_inner()));
    let raw = std::mem::take(&mut *steps.lock().unwrap_or_else(|p| p.into_inner()));
    let start = START.with(Cell::get);
    raw.into_iter()
        .filter(|step| step.switch >= start)
        .map(|step| {
            let name = given
                .get(&step.task)
                .or_else(|| names.get(&step.task))
                .cloned()
                .unwrap_or_else(|| numbered(step.task));
            (name, step.backtrace)
        })
        .collect()
}

/// The steps of the last failing schedule of a search on this thread, once: each names the
/// learner's line the thread stood at; consecutive steps of one thread at one line are one.
/// A line inside a helper that several lines call (a lock wrapper) is named by its caller.
pub fn take_steps() -> Vec<Step> {
    let Some(failure) = LAST_FAILURE.with(|slot| slot.borrow_mut().take()) else {
        return Vec::new();
    };
    let Some(mut teller) = Teller::new() else {
        return Vec::new();
    };
    let raw = replay(failure);
    // Each step's learner frames, innermost first.
    let chains: Vec<(String, Vec<(PathBuf, u32)>)> = raw
        .into_iter()
        .map(|(thread, backtrace)| {
            let text = format!("{backtrace:?}");
            let chain = frames(&text)
                .filter_map(|(file, line)| teller.learner_file(file).map(|path| (path, line)))
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
        teller.tell(thread.clone(), &at.0, at.1, None);
    }
    teller.steps()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_from_std_debug_text() {
        let text = r#"Backtrace [{ fn: "<bughunt_kit::steps::Stepper as x>::next_task", file: "./src/steps.rs", line: 9 }, { fn: "a::f", file: "./src/lib.rs", line: 14 }, { fn: "??" }, { fn: "b", file: "/x/y.rs", line: 250 }]"#;
        let read: Vec<(&str, u32)> = frames(text).collect();
        assert_eq!(read, vec![("./src/lib.rs", 14), ("/x/y.rs", 250)]);
    }
}
