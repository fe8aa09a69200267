//! A hunt home: the learner's folder, made by `bughunt init`.
//!
//! ```text
//! Cargo.toml             a workspace whose members are the hunts (and the warm-up crates)
//! Cargo.lock             the lock file bughunt was built with: everyone builds the same versions
//! hunts/NN-<id>/         one crate per hunt: src/lib.rs is the learner's, tests/ is bughunt's
//! memory-bank/           the learner's notes (and bughunt's progress block)
//! rust-analyzer.toml     the editor builds into its own target folder, so it never blocks a check
//! .github/agents/bughunt.agent.md, .vscode/mcp.json, .mcp.json
//!                        the tutor for AI assistants, and the `bughunt mcp` server registration
//! .bughunt/state.json    progress (see `state`)
//! .bughunt/kits/         the kit, one copy per checker, locked to this bughunt's version
//! .bughunt/warmup-*/     one empty crate per checker, built by `init` so the first check is warm
//! target/                one build folder for every hunt
//! ```
//!
//! Every command finds its home by walking up from the current folder to the first folder
//! holding `.bughunt/state.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::catalog::Checker;
use crate::huntcrate::{self, CHECKERS, LOCKFILE};
use crate::process::{run_bounded_with, OutputLimit};
use crate::state::{State, StateFile};

/// The longest `init` may spend building dependencies.
pub const PREBUILD_BOUND: Duration = Duration::from_secs(1_800);

/// The error for a command run outside any home.
pub const NOT_IN_HOME: &str =
    "not in a bughunt home; run `bughunt init` (or cd into your hunt folder)";

/// A hunt home on disk.
#[derive(Clone, Debug)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    /// The home holding `start` (or one of its parents).
    pub fn find(start: &Path) -> Result<Home> {
        let start = start
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", start.display()))?;
        for dir in start.ancestors() {
            if dir.join(".bughunt/state.json").is_file() {
                return Ok(Home {
                    root: dir.to_owned(),
                });
            }
            only_a_backup(dir)?;
        }
        bail!(NOT_IN_HOME)
    }

    /// The home holding the current folder.
    pub fn find_from_current_dir() -> Result<Home> {
        let here = std::env::current_dir().context("cannot read the current folder")?;
        Self::find(&here)
    }

    pub fn state_file(&self) -> StateFile {
        StateFile::of_home(&self.root)
    }

    /// Where the kit copies live, relative to a hunt crate.
    pub const KITS_FROM_HUNT: &'static str = "../../.bughunt/kits";

    pub fn reports_dir(&self) -> PathBuf {
        self.root.join(".bughunt/reports")
    }

    /// A path inside the home, shown relative to it.
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Rewrites what bughunt owns outside the hunts (the kit copies, the workspace manifest)
    /// if anything changed it.
    pub fn restore_owned_files(&self) -> Result<()> {
        huntcrate::write_kits(&self.root.join(".bughunt/kits"))?;
        huntcrate::write_if_changed(
            &self.root.join("Cargo.toml"),
            self.workspace_manifest()?.as_bytes(),
        )?;
        Ok(())
    }

    /// The workspace manifest: every hunt folder that holds a crate, and the warm-up crates.
    /// (Listed, not globbed: cargo reads a glob that matches nothing as a missing folder.)
    fn workspace_manifest(&self) -> Result<String> {
        let mut members = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.root.join("hunts")) {
            for entry in entries.filter_map(Result::ok) {
                if entry.path().join("Cargo.toml").is_file() {
                    members.push(format!("hunts/{}", entry.file_name().to_string_lossy()));
                }
            }
        }
        members.sort();
        for checker in CHECKERS {
            members.push(format!(".bughunt/warmup-{}", checker.name()));
        }
        let members: Vec<String> = members.iter().map(|m| format!("    {m:?},")).collect();
        Ok(format!(
            "# A bughunt home. Each hunt is a crate in hunts/; bughunt owns this file.\n[workspace]\nresolver = \"2\"\nmembers = [\n{}\n]\n\n{}",
            members.join("\n"),
            huntcrate::WORKSPACE_PROFILE
        ))
    }
}

const RUST_ANALYZER_TOML: &str = r#"# rust-analyzer builds into target/rust-analyzer, so the editor never holds the lock
# `bughunt check` needs on target/.
[cargo]
targetDir = true
"#;

const GITIGNORE: &str = "/target\n/.bughunt/reports\n/.bughunt/state.lock\n";

const HOME_README: &str = r#"# My bug hunts

Made by `bughunt init`. Start a hunt with `bughunt start`, read the broken code in
`hunts/NN-<id>/src/lib.rs`, fix it, and run `bughunt check`. `bughunt hint` gives the next
hint, `bughunt status` shows where you are.

Your files: everything in `hunts/*/src/` and `memory-bank/`. bughunt's files: `hunts/*/tests/`,
`hunts/*/Cargo.toml`, `.bughunt/` and `Cargo.toml` (it restores them before each check).
"#;

fn warmup_lib(checker: Checker) -> String {
    format!(
        "//! Built by `bughunt init` so that every {} hunt's first check is already warm.\n",
        checker.name()
    )
}

/// The tutor of the brief, for assistants that read GitHub Copilot custom agents.
const AGENT_FILE: &str = r#"---
name: bughunt
description: 'A bug-hunt tutor for message queues and concurrent Rust: presents deliberately broken code, hints on request, checks fixes with bughunt, explains after the fix.'
tools: ['bughunt/*']
---

# Bug hunt tutor

You tutor the learner through bug hunts with the `bughunt` tools. Never write broken code
yourself and never judge a fix by reading it: bughunt writes every broken program and its
checks prove every fix (a bug shows every time; any correct fix passes every time).

## Workflow

1. **Present broken code** with `start` (or `challenge` after a pass). Show the learner only
   what it returns: the category, the difficulty, hint level 1 and the file to edit.
2. **Wait for the learner's attempt.** Don't rush to the solution, don't point at the faulty
   line, don't name the fix.
3. **If the learner asks for help**, call `hint` for level 2; still stuck, `hint` again for
   level 3. Give nothing beyond what the hint says.
4. **After each attempt**, call `check` and relay its verdict and mentor messages, such as
   "Close! But what happens to m3 if the consumer crashes before ack?". Add no answer of your own.
5. **After the fix passes**, call `explain` and present why it broke and how the fix works.
   Then ask, one at a time:
   1. Why did the original code fail?
   2. How does your fix prevent the issue?
   3. What would you test to verify the fix?
   Call `explain` again with the three answers in `answers` (they are saved in the memory
   bank) and compare them with the key points it returns.
6. **Ask** "Want me to add this pattern to your memory-bank/systemPatterns.md?" and, if yes,
   call `explain` with `add_pattern: true`.
7. **Challenge**: offer `challenge`, a similar but different bug.

Call `reveal` only when the learner explicitly asks for the solution. At the start of a
session call `status` and say which categories are covered and what comes next. When the
learner is implementing something (acknowledgment, persistence, consumer groups, shutdown),
call `for` with that topic and offer its demo (`demo`) or hunt.
"#;

/// The MCP server registration for VS Code.
const VSCODE_MCP_JSON: &str = r#"{
  "servers": {
    "bughunt": {
      "type": "stdio",
      "command": "bughunt",
      "args": ["mcp"]
    }
  }
}
"#;

/// The portable MCP server registration (Claude Code, Cursor and others read `.mcp.json`).
const MCP_JSON: &str = r#"{
  "mcpServers": {
    "bughunt": {
      "command": "bughunt",
      "args": ["mcp"]
    }
  }
}
"#;

const WARMUP_TEST: &str = "#[test]\nfn warm() {}\n";

/// A home whose state file is gone but whose backup is there: an error that says how to
/// bring it back (nothing is restored behind the learner's back).
fn only_a_backup(dir: &Path) -> Result<()> {
    let state = dir.join(".bughunt/state.json");
    let backup = dir.join(".bughunt/state.json.bak");
    if !state.exists() && backup.is_file() {
        bail!(
            "{} is a bughunt home whose state file is missing, and its backup is there: restore it with `cp {} {}`, then run the command again",
            dir.display(),
            backup.display(),
            state.display()
        );
    }
    Ok(())
}

/// Why a folder cannot become a home.
fn check_target(dir: &Path) -> Result<bool> {
    if dir.join(".bughunt/state.json").is_file() {
        return Ok(true);
    }
    only_a_backup(dir)?;
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty and is not a bughunt home; run `bughunt init` with a new folder, e.g. `bughunt init my-hunts`",
                dir.display()
            );
        }
    }
    Ok(false)
}

/// How `init` went.
pub struct Initialized {
    pub home: Home,
    /// The folder was a home already.
    pub existed: bool,
}

/// Makes (or refreshes) a home in `dir`; with `prebuild`, fetches and builds every
/// dependency the checks use.
pub fn init(dir: &Path, prebuild: bool, cargo: &Path) -> Result<Initialized> {
    let existed = check_target(dir)?;
    fs_err::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let root = dir.canonicalize()?;
    let home = Home { root: root.clone() };
    fs_err::create_dir_all(root.join("hunts"))?;
    fs_err::create_dir_all(root.join("memory-bank"))?;
    fs_err::create_dir_all(home.reports_dir())?;
    home.restore_owned_files()?;
    let write_new = |name: &str, contents: &str| -> Result<()> {
        let path = root.join(name);
        if !path.exists() {
            fs_err::write(&path, contents)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    };
    write_new("Cargo.lock", LOCKFILE)?;
    write_new("rust-analyzer.toml", RUST_ANALYZER_TOML)?;
    write_new(".gitignore", GITIGNORE)?;
    write_new("README.md", HOME_README)?;
    fs_err::create_dir_all(root.join(".github/agents"))?;
    fs_err::create_dir_all(root.join(".vscode"))?;
    write_new(".github/agents/bughunt.agent.md", AGENT_FILE)?;
    write_new(".vscode/mcp.json", VSCODE_MCP_JSON)?;
    write_new(".mcp.json", MCP_JSON)?;
    for checker in CHECKERS {
        let crate_dir = root.join(format!(".bughunt/warmup-{}", checker.name()));
        huntcrate::write_crate(
            &crate_dir,
            &format!("warmup-{}", checker.name()),
            checker,
            Home::KITS_FROM_HUNT,
            Some(&warmup_lib(checker)),
            WARMUP_TEST,
        )?;
    }
    if !existed {
        home.state_file().create(&State::new())?;
    }
    if prebuild {
        prebuild_dependencies(&home, cargo)?;
    }
    Ok(Initialized { home, existed })
}

/// Builds the warm-up crates' tests, so every dependency and kit copy is compiled once.
/// The bar counts compiled crates against the packages in the resolved graph.
fn prebuild_dependencies(home: &Home, cargo: &Path) -> Result<()> {
    let total = count_packages(home, cargo).unwrap_or(0);
    let bar = if total > 0 {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{spinner} building what the checks use [{bar:30}] {pos}/{len} crates {elapsed} {msg}")
                .expect("a valid progress template")
                .progress_chars("=> "),
        )
    } else {
        ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} building what the checks use {elapsed} {msg}")
                .expect("a valid progress template"),
        )
    };
    bar.enable_steady_tick(Duration::from_millis(120));
    // One build per warm-up crate, each with the very command a check of a hunt on that
    // checker runs: built together, cargo would unify the crates' features across all four,
    // and a hunt's first check, built alone, would compile its dependencies again.
    let deadline = std::time::Instant::now() + PREBUILD_BOUND;
    for checker in CHECKERS {
        let mut command = crate::hunt::cargo_test_command(
            home,
            cargo,
            &format!("warmup-{}", checker.name()),
            false,
        );
        command.arg("--no-run");
        let progress = bar.clone();
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let finished = run_bounded_with(command, left, OutputLimit::CHECK, move |line| {
            if line.contains("\"reason\":\"compiler-artifact\"") {
                progress.inc(1);
                if let Ok(message) = serde_json::from_str::<serde_json::Value>(line) {
                    if let Some(name) = message["target"]["name"].as_str() {
                        progress.set_message(name.to_owned());
                    }
                }
            }
        })
        .with_context(|| {
            format!(
                "cannot run {}; is Rust installed (https://rustup.rs)?",
                cargo.display()
            )
        })?;
        if finished.timed_out() {
            bar.finish_and_clear();
            bail!(
                "building the dependencies took over {} s; run `bughunt init` again to resume",
                PREBUILD_BOUND.as_secs()
            );
        }
        if !finished.success() {
            bar.finish_and_clear();
            let tail: Vec<&str> = finished.stderr.lines().rev().take(12).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "cargo could not build the dependencies (is the network up?); run `bughunt init` again to retry. cargo said: {}",
                tail.join(" / ")
            );
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// How many packages the warm-up build resolves to (an estimate of crates to compile).
fn count_packages(home: &Home, cargo: &Path) -> Option<u64> {
    let mut command = Command::new(cargo);
    command
        .current_dir(&home.root)
        .args(["metadata", "--format-version", "1"]);
    let finished = run_bounded_with(
        command,
        Duration::from_secs(300),
        OutputLimit::CARGO_JSON,
        |_| {},
    )
    .ok()?;
    let metadata: serde_json::Value = serde_json::from_str(&finished.stdout).ok()?;
    let nodes = metadata["resolve"]["nodes"].as_array()?;
    let hunts = nodes
        .iter()
        .filter(|node| node["id"].as_str().is_some_and(|id| id.contains("/hunts/")))
        .count();
    Some((nodes.len() - hunts) as u64)
}
