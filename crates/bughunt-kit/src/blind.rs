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

    /// The kit's own primitives and a clean program pass.
    #[test]
    fn the_kits_primitives_pass() {
        let source = "use bughunt_kit::sync::{atomic::{AtomicU64, Ordering}, Arc, Mutex};\nuse bughunt_kit::thread;\nfn f() { thread::spawn(|| {}); let x: std::collections::HashMap<u8, u8> = Default::default(); }";
        assert_eq!(scan(source), Vec::new());
    }
}
