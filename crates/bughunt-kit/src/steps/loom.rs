//! Steps under loom: the kit's atomics and mutex ([`crate::sync`] under loom) write down every
//! operation the learner's code makes on them, with its line and what it read or wrote, in the
//! execution running now. loom runs one execution at a time on the test's thread and stops at
//! the first that fails, so when a search fails, the execution written down is the one that
//! failed. Nothing is replayed.
//!
//! Only operations made at a line of the hunt crate's `src/` are kept (the checks' own are
//! not), and of those, the last [`STEPS_KEPT`] of an execution.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::panic::Location;
use std::path::PathBuf;

use super::{numbered, Teller, STEPS_KEPT};
use crate::report::Step;

/// One operation at a line of the learner's code.
struct Op {
    thread: loom::thread::ThreadId,
    file: &'static str,
    line: u32,
    effect: Option<String>,
}

/// What one execution did, as far as the steps are concerned.
#[derive(Default)]
struct Execution {
    ops: VecDeque<Op>,
    /// The names loom's threads were spawned with.
    names: HashMap<loom::thread::ThreadId, String>,
    /// The names the checks gave their threads ([`name_this_thread`]).
    given: HashMap<loom::thread::ThreadId, String>,
}

/// A search being written down: its execution running now, and which files are the learner's.
struct Search {
    teller: Teller,
    /// Whether a file named by `Location::file` is under the hunt crate's `src/` (asked once a
    /// file: the answer looks at the disk).
    learners: HashMap<&'static str, Option<PathBuf>>,
    running: Execution,
}

thread_local! {
    /// Set while a search runs on this thread (loom runs all of an execution's threads on it).
    static SEARCH: RefCell<Option<Search>> = const { RefCell::new(None) };
    /// The execution that failed last, with its search, for [`take_steps`].
    static FAILED: RefCell<Option<Search>> = const { RefCell::new(None) };
}

/// A search starts: forget the failure of an earlier one. Outside a cargo test binary there
/// is no crate to name lines of, and nothing is written down.
pub(crate) fn begin_search() {
    FAILED.with(|failed| failed.borrow_mut().take());
    let search = Teller::new().map(|teller| Search {
        teller,
        learners: HashMap::new(),
        running: Execution::default(),
    });
    SEARCH.with(|slot| *slot.borrow_mut() = search);
}

/// An execution starts: forget what the last one did.
pub(crate) fn begin_execution() {
    SEARCH.with(|slot| {
        if let Some(search) = slot.borrow_mut().as_mut() {
            search.running = Execution::default();
        }
    });
}

/// The search is over; if it failed, its last execution is the failing one.
pub(crate) fn end_search(failed: bool) {
    let search = SEARCH.with(|slot| slot.borrow_mut().take());
    if failed {
        FAILED.with(|slot| *slot.borrow_mut() = search);
    }
}

/// Writes down an operation made at `at`, if a search is running and `at` is in the
/// learner's code. `effect` is asked only then.
pub(crate) fn record(at: &'static Location<'static>, effect: impl FnOnce() -> Option<String>) {
    let known = SEARCH.with(|slot| {
        let mut slot = slot.borrow_mut();
        let search = slot.as_mut()?;
        let teller = &search.teller;
        let learners = search
            .learners
            .entry(at.file())
            .or_insert_with(|| teller.learner_file(at.file()));
        learners.is_some().then_some(())
    });
    if known.is_none() {
        return;
    }
    let thread = loom::thread::current();
    let effect = effect();
    SEARCH.with(|slot| {
        if let Some(search) = slot.borrow_mut().as_mut() {
            let running = &mut search.running;
            if let Some(name) = thread.name() {
                running
                    .names
                    .entry(thread.id())
                    .or_insert_with(|| name.to_owned());
            }
            if running.ops.len() == STEPS_KEPT {
                running.ops.pop_front();
            }
            running.ops.push_back(Op {
                thread: thread.id(),
                file: at.file(),
                line: at.line(),
                effect,
            });
        }
    });
}

/// Names the loom thread that calls it, for the steps (outside a search, nothing).
pub(crate) fn name_this_thread(name: &str) {
    let running = SEARCH.with(|slot| slot.borrow().is_some());
    if !running {
        return;
    }
    let thread = loom::thread::current().id();
    SEARCH.with(|slot| {
        if let Some(search) = slot.borrow_mut().as_mut() {
            search.running.given.insert(thread, name.to_owned());
        }
    });
}

/// The steps begin here: what the execution running now did so far is left out.
pub(crate) fn start_here() {
    SEARCH.with(|slot| {
        if let Some(search) = slot.borrow_mut().as_mut() {
            search.running.ops.clear();
        }
    });
}

/// The steps of the execution that failed last on this thread, once.
pub fn take_steps() -> Vec<Step> {
    let Some(mut failed) = FAILED.with(|slot| slot.borrow_mut().take()) else {
        return Vec::new();
    };
    let running = failed.running;
    for op in running.ops {
        let Some(Some(path)) = failed.learners.get(op.file) else {
            continue;
        };
        let thread = running
            .given
            .get(&op.thread)
            .or_else(|| running.names.get(&op.thread))
            .cloned()
            .unwrap_or_else(|| numbered(number(op.thread)));
        failed.teller.tell(thread, path, op.line, op.effect);
    }
    failed.teller.steps()
}

/// loom numbers its threads from 0, the test's own, and shows the number only in `Debug`:
/// "ThreadId(2)".
fn number(thread: loom::thread::ThreadId) -> usize {
    let text = format!("{thread:?}");
    text.trim_start_matches("ThreadId(")
        .trim_end_matches(')')
        .parse()
        .unwrap_or(0)
}
