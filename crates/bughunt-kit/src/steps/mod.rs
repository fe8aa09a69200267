//! The failing schedule, step by step, each step naming the learner's line.
//!
//! A schedule search tells *that* some interleaving breaks the program; a learner needs to
//! see *which* one: "w1 at line 14 took the lock; w2 at line 22 read the count; …". The two
//! checkers get there differently:
//! - shuttle ([`shuttle`](self)): every search records its scheduling decisions, and a
//!   failing execution is replayed once with them, a backtrace taken at each switch;
//! - loom: the kit's atomics and mutex (`bughunt_kit::sync` under loom) write down each
//!   operation, its line (`#[track_caller]`) and what it read or wrote, execution by
//!   execution; the one that failed is the last one written.
//!
//! Either way a step names a line in a file under the hunt crate's `src/` (the crate whose
//! checks are running: `CARGO_MANIFEST_DIR`, which cargo sets for a test binary), and the
//! check runner puts the steps in the report ([`crate::report::Step`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::report::Step;

#[cfg(all(feature = "loom", not(feature = "shuttle")))]
pub(crate) mod loom;
#[cfg(all(feature = "shuttle", not(feature = "loom")))]
pub(crate) mod shuttle;

/// The most steps kept of one failing schedule (the last ones: where it broke).
pub const STEPS_KEPT: usize = 200;

/// The steps of the last failing schedule of a search on this thread, once (empty without a
/// checker).
pub fn take_steps() -> Vec<Step> {
    #[cfg(all(feature = "shuttle", not(feature = "loom")))]
    {
        shuttle::take_steps()
    }
    #[cfg(all(feature = "loom", not(feature = "shuttle")))]
    {
        loom::take_steps()
    }
    #[cfg(not(any(feature = "shuttle", feature = "loom")))]
    {
        Vec::new()
    }
}

/// Names the thread that calls it, in the steps of a failing schedule: the test's own thread
/// has no name but "main", and a check whose main thread plays a part ("consumer") says so.
/// Outside a schedule checker it does nothing.
pub fn name_this_thread(name: &str) {
    #[cfg(all(feature = "shuttle", not(feature = "loom")))]
    shuttle::name_this_thread(name);
    #[cfg(all(feature = "loom", not(feature = "shuttle")))]
    loom::name_this_thread(name);
    #[cfg(not(any(feature = "shuttle", feature = "loom")))]
    let _ = name;
}

/// The steps of a failing schedule begin here: what the execution did before (setting up, a
/// warm-up on another object) is left out, so the steps tell only the part the story is
/// about. Outside a schedule checker it does nothing.
pub fn start_here() {
    #[cfg(all(feature = "shuttle", not(feature = "loom")))]
    shuttle::start_here();
    #[cfg(all(feature = "loom", not(feature = "shuttle")))]
    loom::start_here();
}

/// The name of a thread a checker numbers: 0 is the test's own.
#[cfg_attr(not(any(feature = "shuttle", feature = "loom")), allow(dead_code))]
fn numbered(number: usize) -> String {
    if number == 0 {
        "main".to_owned()
    } else {
        format!("thread {number}")
    }
}

/// Turns places in the learner's files into steps: reads each file once, and folds a thread's
/// repeated step (a spin loop reading the same value at one line) into one.
#[cfg_attr(not(any(feature = "shuttle", feature = "loom")), allow(dead_code))]
struct Teller {
    crate_dir: PathBuf,
    cwd: PathBuf,
    sources: HashMap<PathBuf, Vec<String>>,
    steps: Vec<Step>,
}

#[cfg_attr(not(any(feature = "shuttle", feature = "loom")), allow(dead_code))]
impl Teller {
    /// `None` outside a cargo test binary (no `CARGO_MANIFEST_DIR`): no crate to name lines of.
    fn new() -> Option<Self> {
        let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from)?;
        Some(Self {
            crate_dir,
            cwd: std::env::current_dir().unwrap_or_default(),
            sources: HashMap::new(),
            steps: Vec::new(),
        })
    }

    /// The file as a path under the hunt crate's `src/`, if it is one.
    fn learner_file(&self, file: &str) -> Option<PathBuf> {
        learner_file(&self.crate_dir, &self.cwd, file)
    }

    /// Adds a step at `line` of `path` (a path [`Self::learner_file`] gave).
    fn tell(&mut self, thread: String, path: &Path, line: u32, effect: Option<String>) {
        if self
            .steps
            .last()
            .is_some_and(|last| last.thread == thread && last.line == line && last.effect == effect)
        {
            return;
        }
        let lines = self.sources.entry(path.to_path_buf()).or_insert_with(|| {
            std::fs::read_to_string(path)
                .map(|text| text.lines().map(str::to_owned).collect())
                .unwrap_or_default()
        });
        let code = lines
            .get((line as usize).wrapping_sub(1))
            .map(|l| l.trim().to_owned())
            .unwrap_or_default();
        let file = path
            .strip_prefix(&self.crate_dir)
            .unwrap_or(path)
            .display()
            .to_string();
        self.steps.push(Step {
            thread,
            file,
            line,
            code,
            effect,
        });
    }

    /// The steps told, the last [`STEPS_KEPT`] of them.
    fn steps(mut self) -> Vec<Step> {
        let extra = self.steps.len().saturating_sub(STEPS_KEPT);
        self.steps.drain(..extra);
        self.steps
    }
}

/// The frame's file as a path under the hunt crate's `src/`, if it is one. Debug info and
/// `Location::file` name a workspace member's files relative to the workspace root, so a
/// relative path is tried against the crate's folder and each folder above it.
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
    fn only_files_under_the_crates_src_are_the_learners() {
        let dir = tempfile_dir("files");
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

    /// A thread's repeated step is one step; the same line with another value read is not.
    #[test]
    fn a_spin_is_one_step_until_it_reads_something_else() {
        let dir = tempfile_dir("teller");
        std::fs::create_dir_all(dir.join("src")).unwrap();
        let lib = dir.join("src/lib.rs");
        std::fs::write(&lib, "fn f() {\n    while !ready.load(Acquire) {}\n}\n").unwrap();
        let mut teller = Teller {
            crate_dir: dir.clone(),
            cwd: PathBuf::from("/"),
            sources: HashMap::new(),
            steps: Vec::new(),
        };
        let read = |value: &str| Some(format!("read {value}"));
        teller.tell("c1".into(), &lib, 2, read("false"));
        teller.tell("c1".into(), &lib, 2, read("false"));
        teller.tell("p1".into(), &lib, 2, read("false"));
        teller.tell("c1".into(), &lib, 2, read("true"));
        let steps = teller.steps();
        assert_eq!(steps.len(), 3, "{steps:#?}");
        assert_eq!(steps[0].file, "src/lib.rs");
        assert_eq!(steps[0].code, "while !ready.load(Acquire) {}");
        assert_eq!(steps[2].effect.as_deref(), Some("read true"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bughunt-kit-steps-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
