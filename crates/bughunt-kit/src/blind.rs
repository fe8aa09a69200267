//! Primitives a schedule checker cannot see.
//!
//! shuttle and loom explore the schedules of the locks, atomics, channels and threads they
//! provide, and nothing else: a `std::sync::Mutex` or a `std::thread::spawn` in a hunt's code
//! runs unseen, so the search would prove nothing about it (and may pass a racy program).
//! Before any stage of a shuttle or loom hunt runs, the checks read the learner's `src/lib.rs`
//! with `syn` and fail the first stage, [`STAGE`], naming the line and what to use instead
//! (`bughunt_kit::sync::X` has std's API). Orderings that std rejects at run time (an
//! `Acquire` store, a `Release` load) fail here too, with std's own words, because the
//! checkers' atomics do not reject them.
//!
//! Time is unseen too, the other way round: the checkers explore schedules, not time, so a
//! `recv_timeout`, a `wait_timeout` or a sleep never lets time pass, and a fix that waits
//! for a timer to get unstuck hangs under them as if it had no timer. That is no reason to
//! refuse the code (a timer may be there for other reasons), but when a stage fails because
//! a schedule never ended, [`timer_note`] says so, naming the line.

use syn::visit::Visit;

/// The id of the stage that runs first in every shuttle and loom hunt.
pub const STAGE: &str = "primitives-from-the-kit";

/// One use of a primitive the checker cannot see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub line: usize,
    /// What the code uses: `std::sync::Mutex`.
    pub used: String,
    /// What to write instead, or why it is wrong.
    pub instead: String,
}

/// Roots whose synchronisation the checkers never see.
const ROOTS: [&str; 3] = ["std", "core", "alloc"];

/// Where `path` (its segments, as written) reaches into something unseen: the message to
/// give, or `None`.
fn unseen(segments: &[String]) -> Option<String> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["parking_lot" | "crossbeam" | "crossbeam_utils" | "crossbeam_channel" | "spin" | "once_cell", ..] => Some(format!(
            "`{}` is a crate of its own that the checker cannot see; use the locks, atomics and channels of `bughunt_kit::sync`",
            s[0]
        )),
        [root, "sync", rest @ ..] if ROOTS.contains(root) => {
            let allowed = ["Arc", "Weak", "PoisonError", "TryLockError", "LockResult", "TryLockResult"];
            match rest.first() {
                None => Some(format!(
                    "`{root}::sync` is std's; import from `bughunt_kit::sync` instead (it has std's API)"
                )),
                Some(item) if allowed.contains(item) => None,
                Some(_) => Some(format!(
                    "use `bughunt_kit::sync::{}` instead (it has std's API, and the checker sees it)",
                    rest.join("::")
                )),
            }
        }
        [root, "thread", rest @ ..] if ROOTS.contains(root) => Some(format!(
            "use `bughunt_kit::thread{}` instead (it has std's API, and the checker schedules it)",
            if rest.is_empty() {
                String::new()
            } else {
                format!("::{}", rest.join("::"))
            }
        )),
        [root, "cell", "UnsafeCell", ..] if ROOTS.contains(root) => Some(
            "an `UnsafeCell` shared between threads is invisible to the checker; guard the value with `bughunt_kit::sync::Mutex`"
                .to_owned(),
        ),
        _ => None,
    }
}

struct Scan {
    findings: Vec<Finding>,
}

impl Scan {
    fn path(&mut self, segments: Vec<String>, line: usize) {
        if let Some(instead) = unseen(&segments) {
            let used = segments.join("::");
            if !self
                .findings
                .iter()
                .any(|f| f.line == line && f.used == used)
            {
                self.findings.push(Finding {
                    line,
                    used,
                    instead,
                });
            }
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                let mut full = prefix.clone();
                if name.ident != "self" {
                    full.push(name.ident.to_string());
                }
                self.path(full, name.ident.span().start().line);
            }
            syn::UseTree::Rename(rename) => {
                let mut full = prefix.clone();
                full.push(rename.ident.to_string());
                self.path(full, rename.ident.span().start().line);
            }
            syn::UseTree::Glob(glob) => {
                self.path(prefix.clone(), glob.star_token.spans[0].start().line)
            }
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }
}

/// The last segment of an ordering argument: `Ordering::Acquire` → `Acquire`.
fn ordering_of(expr: &syn::Expr) -> Option<String> {
    match expr {
        syn::Expr::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

impl<'ast> Visit<'ast> for Scan {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        self.use_tree(&mut prefix, &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            let line = path.segments[0].ident.span().start().line;
            self.path(segments, line);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let method = call.method.to_string();
        let last = call.args.last().and_then(ordering_of);
        let rejected = match (method.as_str(), call.args.len(), last.as_deref()) {
            ("store", 2, Some("Acquire")) => Some("there is no such thing as an acquire store"),
            ("store", 2, Some("AcqRel")) => {
                Some("there is no such thing as an acquire-release store")
            }
            ("load", 1, Some("Release")) => Some("there is no such thing as a release load"),
            ("load", 1, Some("AcqRel")) => {
                Some("there is no such thing as an acquire-release load")
            }
            _ => None,
        };
        if let Some(words) = rejected {
            self.findings.push(Finding {
                line: call.method.span().start().line,
                used: format!(".{method}(.., Ordering::{})", last.unwrap_or_default()),
                instead: format!(
                    "std panics here at run time: \"{words}\" (a store can be Relaxed, Release or SeqCst; a load Relaxed, Acquire or SeqCst)"
                ),
            });
        }
        syn::visit::visit_expr_method_call(self, call);
    }
}

/// Every unseen primitive and rejected ordering in `source`, in line order. A file that does
/// not parse has none here: the compiler will say what is wrong with it.
pub fn scan(source: &str) -> Vec<Finding> {
    let Ok(file) = syn::parse_file(source) else {
        return Vec::new();
    };
    let mut scan = Scan {
        findings: Vec::new(),
    };
    scan.visit_file(&file);
    scan.findings.sort_by_key(|f| f.line);
    scan.findings
}

/// Methods that wait for at most some time.
const TIMED_METHODS: [&str; 7] = [
    "recv_timeout",
    "recv_deadline",
    "send_timeout",
    "wait_timeout",
    "wait_timeout_ms",
    "wait_timeout_while",
    "park_timeout",
];

/// Functions that wait for some time, or read the clock a timed wait is built on (called by
/// a path whose last segments are these).
const TIMED_CALLS: [&[&str]; 6] = [
    &["sleep"],
    &["sleep_ms"],
    &["sleep_until"],
    &["park_timeout"],
    &["Instant", "now"],
    &["SystemTime", "now"],
];

/// Every call in `source` that waits on time or reads the clock: `(line, what)`, in line
/// order. A file that does not parse has none.
pub fn timed_waits(source: &str) -> Vec<(usize, String)> {
    struct Timers(Vec<(usize, String)>);
    impl<'ast> Visit<'ast> for Timers {
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            let method = call.method.to_string();
            if TIMED_METHODS.contains(&method.as_str()) {
                let args = if call.args.is_empty() { "()" } else { "(..)" };
                self.0
                    .push((call.method.span().start().line, format!(".{method}{args}")));
            }
            syn::visit::visit_expr_method_call(self, call);
        }

        fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
            if let syn::Expr::Path(path) = call.func.as_ref() {
                let segments: Vec<String> = path
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect();
                let timed = TIMED_CALLS.iter().any(|tail| {
                    segments.len() >= tail.len()
                        && segments[segments.len() - tail.len()..]
                            .iter()
                            .zip(tail.iter())
                            .all(|(a, b)| a == b)
                });
                if timed {
                    let line = path.path.segments[0].ident.span().start().line;
                    let args = if call.args.is_empty() { "()" } else { "(..)" };
                    self.0
                        .push((line, format!("{}{args}", segments.join("::"))));
                }
            }
            syn::visit::visit_expr_call(self, call);
        }
    }
    let Ok(file) = syn::parse_file(source) else {
        return Vec::new();
    };
    let mut timers = Timers(Vec::new());
    timers.visit_file(&file);
    timers.0.sort();
    timers.0.dedup();
    timers.0
}

/// Whether a stage's failure says a schedule never ended: every thread blocked (a deadlock,
/// in shuttle's words or a check's) or the step bound ran out.
pub fn never_ended(detail: &str) -> bool {
    let detail = detail.to_lowercase();
    detail.contains("deadlock")
        || detail.contains("max_steps")
        || detail.contains("steps without finishing")
}

/// The sentence to add to the mentor's words when a stage under a schedule checker failed
/// with `detail` because a schedule never ended and the learner's code waits on a timer:
/// `None` otherwise.
pub fn timer_note_for(source: &str, detail: &str) -> Option<String> {
    if !never_ended(detail) {
        return None;
    }
    let waits = timed_waits(source);
    let (line, what) = waits.first()?;
    let more = match waits.len() - 1 {
        0 => String::new(),
        1 => " and one more place".to_owned(),
        n => format!(" and {n} more places"),
    };
    Some(format!(
        "Under the checker, time does not pass, so a timer never fires (src/lib.rs:{line} \
         calls `{what}`{more}): the fix must not rely on one."
    ))
}

/// [`timer_note_for`] the learner's `src/lib.rs`.
///
/// `hung` says the last schedule search itself saw a schedule that never ended (shuttle's
/// deadlock or step bound, as [`crate::explore::take_hung`] tells), whatever words the
/// stage's own report uses.
pub fn timer_note(detail: &str, hung: bool) -> Option<String> {
    let detail = if hung { "deadlock" } else { detail };
    timer_note_for(&learner_source()?, detail)
}

/// The learner's file, as the check binary finds it: `src/lib.rs` of the crate under test.
fn learner_source() -> Option<String> {
    let from_cwd = std::path::Path::new("src/lib.rs");
    let path = if from_cwd.is_file() {
        from_cwd.to_path_buf()
    } else {
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?).join("src/lib.rs")
    };
    std::fs::read_to_string(path).ok()
}

/// The stage: fails naming each unseen primitive's line and its replacement.
pub fn stage(_: &mut crate::check::Ctx) {
    let Some(source) = learner_source() else {
        panic!("the checks could not read src/lib.rs to see which primitives it uses");
    };
    let findings = scan(&source);
    if findings.is_empty() {
        return;
    }
    let told: Vec<String> = findings
        .iter()
        .take(5)
        .map(|f| format!("src/lib.rs:{}: `{}`: {}", f.line, f.used, f.instead))
        .collect();
    let more = findings.len().saturating_sub(told.len());
    panic!(
        "{}{}",
        told.join("\n"),
        if more > 0 {
            format!("\n(and {more} more)")
        } else {
            String::new()
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of reaching a std primitive is found, with its line; the kit's are not.
    #[test]
    fn finds_std_primitives_however_imported() {
        let source = r#"
use std::sync::Mutex;
use std::{sync::atomic::{AtomicU64, Ordering}, collections::HashMap};
use bughunt_kit::sync::{Arc, RwLock};
use std::sync::Arc as StdArc;
fn f() {
    let handle = std::thread::spawn(|| {});
    let cell = core::cell::UnsafeCell::new(1);
    std::sync::atomic::fence(Ordering::SeqCst);
}
"#;
        let found: Vec<(usize, String)> =
            scan(source).into_iter().map(|f| (f.line, f.used)).collect();
        assert_eq!(
            found,
            vec![
                (2, "std::sync::Mutex".to_owned()),
                (3, "std::sync::atomic::AtomicU64".to_owned()),
                (3, "std::sync::atomic::Ordering".to_owned()),
                (7, "std::thread::spawn".to_owned()),
                (8, "core::cell::UnsafeCell::new".to_owned()),
                (9, "std::sync::atomic::fence".to_owned()),
            ]
        );
    }

    /// Orderings std rejects at run time are named with std's message.
    #[test]
    fn rejected_orderings_get_stds_words() {
        let source = "fn f(a: &A) { a.store(1, Ordering::Acquire); a.load(Ordering::Acquire); a.load(Ordering::AcqRel); }";
        let found = scan(source);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0]
            .instead
            .contains("no such thing as an acquire store"));
        assert!(found[1]
            .instead
            .contains("no such thing as an acquire-release load"));
    }

    /// Timed waits are found however they are written; plain code has none.
    #[test]
    fn finds_timed_waits() {
        let source = r#"
use std::time::{Duration, Instant};
fn f(rx: Receiver<u8>, pair: (Mutex<bool>, Condvar)) {
    let _ = rx.recv_timeout(Duration::from_millis(5));
    bughunt_kit::thread::sleep(Duration::from_millis(1));
    let deadline = Instant::now() + Duration::from_secs(1);
    let _ = pair.1.wait_timeout(pair.0.lock().unwrap(), Duration::ZERO);
    let _ = rx.recv();
}
"#;
        assert_eq!(
            timed_waits(source),
            vec![
                (4, ".recv_timeout(..)".to_owned()),
                (5, "bughunt_kit::thread::sleep(..)".to_owned()),
                (6, "Instant::now()".to_owned()),
                (7, ".wait_timeout(..)".to_owned()),
            ]
        );
        assert_eq!(
            timed_waits("fn f(rx: Receiver<u8>) { let _ = rx.recv(); }"),
            Vec::new()
        );
    }

    /// The note comes only when a schedule never ended and the code waits on a timer, and it
    /// names the first such line.
    #[test]
    fn timer_note_only_for_a_hang_with_a_timer() {
        let timed = "fn f(rx: R) {\n    let _ = rx.recv_timeout(D);\n}\n";
        let hung = "deadlock: the broker waits on `replies`, and no other thread is left";
        let note = timer_note_for(timed, hung).expect("a note");
        assert!(note.contains("time does not pass"), "{note}");
        assert!(note.contains("src/lib.rs:2"), "{note}");
        assert!(note.contains("`.recv_timeout(..)`"), "{note}");
        assert!(timer_note_for(timed, "a schedule ran 20000 steps without finishing").is_some());
        assert_eq!(timer_note_for(timed, "m3 came out twice"), None);
        assert_eq!(timer_note_for("fn f(rx: R) { rx.recv(); }", hung), None);
    }

    /// The kit's own primitives and a clean program pass.
    #[test]
    fn the_kits_primitives_pass() {
        let source = "use bughunt_kit::sync::{atomic::{AtomicU64, Ordering}, Arc, Mutex};\nuse bughunt_kit::thread;\nfn f() { thread::spawn(|| {}); let x: std::collections::HashMap<u8, u8> = Default::default(); }";
        assert_eq!(scan(source), Vec::new());
    }
}
