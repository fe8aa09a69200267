//! The hunt loop: start, hint, check, reveal, explain, status.
//!
//! Each function takes a home and the catalog, changes the state through
//! [`crate::state::StateFile::update`], and returns what happened; `page_*` functions turn
//! that into the text the command prints. Nothing here prints.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bughunt_kit::report::{CheckReport, StageReport, Status as StageStatus, REPORT_ENV};
use bughunt_kit::trace::{self, EventKind};
use serde::Serialize;

use crate::catalog::{Catalog, Template};
use crate::diagram;
use crate::home::Home;
use crate::huntcrate;
use crate::process::run_bounded;
use crate::state::{now_unix, HuntState, State};
use crate::text::{heading, paragraph, BAD, GOOD, STRONG};

/// How many levels of hints a template has.
pub const HINT_LEVELS: u8 = 3;

/// The default bound on one check.
pub const CHECK_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// The most trace events a check draws for a failing stage.
const TRACE_DRAWN_MAX: usize = 30;

/// Templates in curriculum order: by week, then difficulty, then id.
pub fn curriculum(catalog: &Catalog) -> Vec<&Template> {
    let mut ordered: Vec<&Template> = catalog.templates.iter().collect();
    ordered.sort_by_key(|t| (t.meta.week, t.meta.difficulty, t.meta.id.clone()));
    ordered
}

fn passed(state: &State, id: &str) -> bool {
    state.hunts.get(id).is_some_and(|h| h.passed)
}

/// The next template to hunt: the first in curriculum order not passed yet, other than `skip`.
pub fn next_challenge<'a>(
    catalog: &'a Catalog,
    state: &State,
    skip: Option<&str>,
) -> Option<&'a Template> {
    curriculum(catalog)
        .into_iter()
        .find(|t| !passed(state, t.id()) && Some(t.id()) != skip)
}

fn package_name(number: u32, id: &str) -> String {
    format!("hunt-{number:02}-{id}")
}

/// The learner's file of a hunt, relative to the home.
pub fn lib_path(hunt: &HuntState) -> String {
    format!("{}/src/lib.rs", hunt.dir)
}

/// The `🔴 BUG HUNT` block that heads the learner's file: category, difficulty, hint 1, and
/// nothing more.
pub fn bug_hunt_header(catalog: &Catalog, template: &Template) -> String {
    let category = catalog
        .categories
        .get(&template.meta.category)
        .map(|c| c.meta.title.clone())
        .unwrap_or_else(|| template.meta.category.clone());
    let mut out = format!(
        "// 🔴 BUG HUNT: {category}\n// Difficulty: {:?}\n",
        template.meta.difficulty
    );
    out.push_str(&comment_wrapped("Hint Level 1: ", &template.meta.hints[0]));
    out.push_str("//\n");
    out.push_str(&comment_wrapped(
        "",
        "Fix the bug in this file, then run `bughunt check`. `bughunt hint` shows the next hint.",
    ));
    out.push('\n');
    out
}

fn comment_wrapped(lead: &str, text: &str) -> String {
    let mut out = String::new();
    let mut line = format!("// {lead}");
    let fresh = line.chars().count();
    for word in text.split_whitespace() {
        if line.chars().count() > fresh && line.chars().count() + 1 + word.chars().count() > 96 {
            out.push_str(line.trim_end());
            out.push('\n');
            line = "//   ".to_owned();
        }
        if !line.ends_with(' ') {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

fn template_for<'a>(catalog: &'a Catalog, id: &str) -> Result<&'a Template> {
    catalog.template(id).with_context(|| {
        format!(
            "the hunt `{id}` is not in this bughunt's catalog; start another with `bughunt start`"
        )
    })
}

/// What `start` did.
#[derive(Debug)]
pub enum Started {
    /// A new hunt crate was written.
    New { id: String, lib: String },
    /// The hunt existed and is current again, untouched.
    Resumed { id: String, lib: String },
    /// The hunt was written anew; the learner's previous file was kept at `saved`.
    Restarted {
        id: String,
        lib: String,
        saved: String,
    },
    /// Every template is solved.
    AllSolved,
}

fn write_hunt_crate(
    home: &Home,
    catalog: &Catalog,
    template: &Template,
    hunt: &HuntState,
    lib_rs: Option<String>,
) -> Result<()> {
    let dir = home.root.join(&hunt.dir);
    let lib_rs = lib_rs.unwrap_or_else(|| {
        format!(
            "{}{}",
            bug_hunt_header(catalog, template),
            template.broken_rs
        )
    });
    huntcrate::write_crate(
        &dir,
        &package_name(hunt.number, template.id()),
        template.meta.checker,
        Home::KITS_FROM_HUNT,
        &lib_rs,
        template.checks_rs,
    )
    .with_context(|| format!("cannot write the hunt in {}", dir.display()))
}

/// Starts (or resumes, or with `fresh` restarts) the hunt for `name` (a template or a
/// category), or the next one in curriculum order.
pub fn start(home: &Home, catalog: &Catalog, name: Option<&str>, fresh: bool) -> Result<Started> {
    let state = home.state_file().load()?;
    let template = match name {
        Some(name) => {
            let chosen = catalog.select(&[name.to_owned()])?;
            // A category: its first template not solved yet, else its first.
            chosen
                .iter()
                .find(|t| !passed(&state, t.id()))
                .or(chosen.first())
                .copied()
                .expect("select returns at least one template")
        }
        None => match next_challenge(catalog, &state, None) {
            Some(template) => template,
            None => return Ok(Started::AllSolved),
        },
    };
    let id = template.id().to_owned();
    home.restore_owned_files()?;
    home.state_file().update(|state| {
        let existing = state.hunts.get(&id).cloned();
        let outcome = match existing {
            Some(hunt) if !fresh => {
                let lib_file = home.root.join(lib_path(&hunt));
                let lib_rs = if lib_file.exists() {
                    None
                } else {
                    Some(format!(
                        "{}{}",
                        bug_hunt_header(catalog, template),
                        template.broken_rs
                    ))
                };
                // Missing files come back; the learner's own file is never touched.
                let current = std::fs::read_to_string(&lib_file).ok();
                write_hunt_crate(home, catalog, template, &hunt, lib_rs.or(current))?;
                Started::Resumed {
                    id: id.clone(),
                    lib: lib_path(&hunt),
                }
            }
            Some(hunt) => {
                let lib_file = home.root.join(lib_path(&hunt));
                let saved = save_attempt(home, &id, &lib_file)?;
                write_hunt_crate(home, catalog, template, &hunt, None)?;
                let entry = state.hunts.get_mut(&id).expect("the hunt exists");
                entry.hints_revealed = 1;
                entry.last_failed_stage = None;
                Started::Restarted {
                    id: id.clone(),
                    lib: lib_path(&hunt),
                    saved,
                }
            }
            None => {
                let number = state.hunts.values().map(|h| h.number).max().unwrap_or(0) + 1;
                let hunt = HuntState {
                    number,
                    dir: format!("hunts/{number:02}-{id}"),
                    hints_revealed: 1,
                    checks_run: 0,
                    passed: false,
                    revealed: false,
                    last_failed_stage: None,
                    started_unix: now_unix(),
                    passed_unix: None,
                };
                write_hunt_crate(home, catalog, template, &hunt, None)?;
                home.restore_owned_files()?;
                let lib = lib_path(&hunt);
                state.hunts.insert(id.clone(), hunt);
                Started::New {
                    id: id.clone(),
                    lib,
                }
            }
        };
        state.current = Some(id.clone());
        Ok(outcome)
    })
}

/// Keeps the learner's file before a fresh start: `.bughunt/attempts/<id>/lib-<n>.rs`.
fn save_attempt(home: &Home, id: &str, lib_file: &Path) -> Result<String> {
    let dir = home.root.join(".bughunt/attempts").join(id);
    std::fs::create_dir_all(&dir)?;
    let taken = std::fs::read_dir(&dir)?.count();
    let saved = dir.join(format!("lib-{}.rs", taken + 1));
    if lib_file.exists() {
        std::fs::copy(lib_file, &saved)
            .with_context(|| format!("cannot keep a copy of {}", lib_file.display()))?;
    } else {
        std::fs::write(
            &saved,
            "// (the file was missing when the hunt was restarted)\n",
        )?;
    }
    Ok(home.relative(&saved))
}

/// The current hunt, its state and template.
fn current<'a>(home: &Home, catalog: &'a Catalog) -> Result<(State, HuntState, &'a Template)> {
    let state = home.state_file().load()?;
    let Some(id) = state.current.clone() else {
        bail!("no hunt in progress; run `bughunt start` to begin one");
    };
    let hunt = state.hunts.get(&id).cloned().with_context(|| {
        format!(
            "the state names `{id}` as current but has no record of it; run `bughunt start {id}`"
        )
    })?;
    let template = template_for(catalog, &id)?;
    Ok((state, hunt, template))
}

/// What `hint` did.
#[derive(Debug)]
pub struct Hints {
    pub id: String,
    /// Every hint revealed so far, level 1 first.
    pub shown: Vec<String>,
    /// The learner asked past the last level.
    pub exhausted: bool,
}

/// Reveals the next hint level of the current hunt.
pub fn hint(home: &Home, catalog: &Catalog) -> Result<Hints> {
    let (_, _, template) = current(home, catalog)?;
    let id = template.id().to_owned();
    home.state_file().update(|state| {
        let hunt = state
            .hunts
            .get_mut(&id)
            .context("the current hunt vanished from the state")?;
        let exhausted = hunt.hints_revealed >= HINT_LEVELS;
        if !exhausted {
            hunt.hints_revealed += 1;
        }
        let shown = template.meta.hints[..hunt.hints_revealed as usize].to_vec();
        Ok(Hints {
            id: id.clone(),
            shown,
            exhausted,
        })
    })
}

/// The verdict of a check.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every stage passed.
    Passed,
    /// A stage failed (or the process died in it).
    Failed(String),
    /// The learner's code does not compile.
    CompileError,
    /// The checks ran past the bound.
    TimedOut,
    /// The checks ran but wrote no report (a crash before the first stage).
    NoReport,
}

/// Everything a check found.
#[derive(Debug)]
pub struct Checked {
    pub id: String,
    pub lib: String,
    pub verdict: Verdict,
    pub report: Option<CheckReport>,
    /// What cargo printed on standard error, for compile errors and crashes.
    pub cargo_stderr: String,
    /// Files bughunt put back because they differed from the catalog.
    pub restored: Vec<String>,
    pub timeout: Duration,
    pub first_pass: bool,
    pub hints_left: u8,
}

/// Checks the current hunt: restores bughunt's files, runs its checks with cargo under a
/// bound, and records the verdict.
pub fn check(
    home: &Home,
    catalog: &Catalog,
    timeout: Duration,
    cargo: &Path,
    color: bool,
) -> Result<Checked> {
    let (_, hunt, template) = current(home, catalog)?;
    let id = template.id().to_owned();
    let dir = home.root.join(&hunt.dir);
    let lib_file = dir.join("src/lib.rs");
    if !lib_file.exists() {
        bail!(
            "{} is missing; `bughunt start {id}` puts back what is missing, `bughunt start {id} --fresh` starts over",
            home.relative(&lib_file)
        );
    }

    // The tests and manifests are bughunt's: what the learner changed there goes back first,
    // so editing or deleting a test can never make a check pass.
    home.restore_owned_files()?;
    let mut restored = Vec::new();
    let package = package_name(hunt.number, &id);
    let owned = [
        ("tests/checks.rs", template.checks_rs.to_owned()),
        (
            "Cargo.toml",
            huntcrate::manifest(&package, template.meta.checker, Home::KITS_FROM_HUNT),
        ),
    ];
    for (file, contents) in owned {
        if huntcrate::write_if_changed(&dir.join(file), contents.as_bytes())? {
            restored.push(format!("{}/{file}", hunt.dir));
        }
    }

    let report_path = home.reports_dir().join(format!("{id}.json"));
    std::fs::create_dir_all(home.reports_dir())?;
    let _ = std::fs::remove_file(&report_path);
    let mut command = Command::new(cargo);
    command
        .current_dir(&home.root)
        .env(REPORT_ENV, &report_path)
        .args(["test", "--quiet", "-p", &package, "--test", "checks"])
        .arg(if color {
            "--color=always"
        } else {
            "--color=never"
        });
    let finished = run_bounded(command, timeout).with_context(|| {
        format!(
            "cannot run {}; is Rust installed (https://rustup.rs)?",
            cargo.display()
        )
    })?;
    let report = CheckReport::read_from(&report_path).ok();
    let verdict = if finished.timed_out() {
        Verdict::TimedOut
    } else {
        match &report {
            Some(report) if report.passed() && finished.success() => Verdict::Passed,
            Some(report) => match report.first_failure() {
                Some(stage) => Verdict::Failed(stage.id.clone()),
                None => Verdict::NoReport,
            },
            None if finished.stderr.contains("could not compile") => Verdict::CompileError,
            None => Verdict::NoReport,
        }
    };

    let (first_pass, hints_left) = home.state_file().update(|state| {
        let hunt = state
            .hunts
            .get_mut(&id)
            .context("the current hunt vanished from the state")?;
        hunt.checks_run += 1;
        let first_pass = verdict == Verdict::Passed && !hunt.passed;
        match &verdict {
            Verdict::Passed => {
                hunt.passed = true;
                hunt.passed_unix.get_or_insert(now_unix());
                hunt.last_failed_stage = None;
            }
            Verdict::Failed(stage) => hunt.last_failed_stage = Some(stage.clone()),
            _ => {}
        }
        Ok((first_pass, HINT_LEVELS.saturating_sub(hunt.hints_revealed)))
    })?;

    Ok(Checked {
        id,
        lib: lib_path(&hunt),
        verdict,
        report,
        cargo_stderr: finished.stderr,
        restored,
        timeout,
        first_pass,
        hints_left,
    })
}

/// Marks the current hunt as revealed and returns its template (whose `fixed_rs` is the fix).
pub fn reveal<'a>(home: &Home, catalog: &'a Catalog) -> Result<(&'a Template, HuntState)> {
    let (_, hunt, template) = current(home, catalog)?;
    let id = template.id().to_owned();
    home.state_file().update(|state| {
        if let Some(hunt) = state.hunts.get_mut(&id) {
            hunt.revealed = true;
        }
        Ok(())
    })?;
    Ok((template, hunt))
}

/// The current hunt, if the learner has earned its explanation (a pass or a reveal).
pub fn explain<'a>(home: &Home, catalog: &'a Catalog) -> Result<(&'a Template, HuntState, bool)> {
    let (_, hunt, template) = current(home, catalog)?;
    let earned = hunt.passed || hunt.revealed;
    Ok((template, hunt, earned))
}

/// Progress for `status`.
#[derive(Debug, Serialize)]
pub struct Progress {
    pub current: Option<CurrentStatus>,
    pub categories: Vec<CategoryStatus>,
    pub next: Option<NextStatus>,
}

#[derive(Debug, Serialize)]
pub struct CurrentStatus {
    pub id: String,
    pub category: String,
    /// The learner's file, relative to the home.
    pub path: String,
    pub hints_revealed: u8,
    pub hints_total: u8,
    pub checks_run: u32,
    pub passed: bool,
    pub revealed: bool,
}

#[derive(Debug, Serialize)]
pub struct CategoryStatus {
    pub id: String,
    pub title: String,
    pub done: usize,
    pub total: usize,
    pub started: usize,
}

#[derive(Debug, Serialize)]
pub struct NextStatus {
    pub id: String,
    pub title: String,
    pub category: String,
    pub difficulty: String,
    pub week: u8,
}

/// Where the learner stands.
pub fn status(home: &Home, catalog: &Catalog) -> Result<Progress> {
    let state = home.state_file().load()?;
    let current = state.current.as_ref().and_then(|id| {
        let hunt = state.hunts.get(id)?;
        let template = catalog.template(id)?;
        Some(CurrentStatus {
            id: id.clone(),
            category: template.meta.category.clone(),
            path: lib_path(hunt),
            hints_revealed: hunt.hints_revealed,
            hints_total: HINT_LEVELS,
            checks_run: hunt.checks_run,
            passed: hunt.passed,
            revealed: hunt.revealed,
        })
    });
    let mut categories = Vec::new();
    let mut ordered: Vec<_> = catalog.categories.values().collect();
    // Curriculum order: a category comes when its first template does.
    ordered.sort_by_key(|c| {
        let first = catalog
            .in_category(&c.id)
            .first()
            .map(|t| (t.meta.week, t.meta.difficulty));
        (first, c.id.clone())
    });
    for category in ordered {
        let templates = catalog.in_category(&category.id);
        categories.push(CategoryStatus {
            id: category.id.clone(),
            title: category.meta.title.clone(),
            done: templates.iter().filter(|t| passed(&state, t.id())).count(),
            total: templates.len(),
            started: templates
                .iter()
                .filter(|t| state.hunts.contains_key(t.id()))
                .count(),
        });
    }
    let skip = current
        .as_ref()
        .filter(|c| !c.passed)
        .map(|c| c.id.as_str());
    let next = next_challenge(catalog, &state, skip).map(|t| NextStatus {
        id: t.meta.id.clone(),
        title: t.meta.title.clone(),
        category: t.meta.category.clone(),
        difficulty: format!("{:?}", t.meta.difficulty),
        week: t.meta.week,
    });
    Ok(Progress {
        current,
        categories,
        next,
    })
}

// ---------------------------------------------------------------------------------------
// Pages: what each command prints.

/// After `start`.
pub fn page_started(catalog: &Catalog, started: &Started) -> String {
    let (id, lib, intro) = match started {
        Started::AllSolved => {
            return format!("{GOOD}Every hunt in the catalog is solved.{GOOD:#} `bughunt status` shows your progress; `bughunt start ID` replays one.\n");
        }
        Started::New { id, lib } => (id, lib, "New hunt".to_owned()),
        Started::Resumed { id, lib } => (id, lib, "Back to".to_owned()),
        Started::Restarted { id, lib, saved } => (
            id,
            lib,
            format!("Restarted from the broken code (your previous file is kept at {saved}):"),
        ),
    };
    let Some(template) = catalog.template(id) else {
        return format!("{intro} {id}: {lib}\n");
    };
    let mut out = format!(
        "{intro} {STRONG}{id}{STRONG:#}: {}\n\n",
        template.meta.title
    );
    out.push_str(&bug_hunt_header(catalog, template));
    out.push_str(&format!(
        "Edit  {STRONG}{lib}{STRONG:#}\nthen  {STRONG}bughunt check{STRONG:#}   (stuck? `bughunt hint`)\n"
    ));
    out
}

/// After `hint`.
pub fn page_hints(hints: &Hints) -> String {
    let mut out = String::new();
    for (level, hint) in hints.shown.iter().enumerate() {
        out.push_str(&paragraph(&format!("Hint Level {}: ", level + 1), hint));
    }
    if hints.exhausted {
        out.push_str("That was the last hint. To see the fix, run `bughunt reveal` (it is recorded as revealed).\n");
    } else {
        let left = HINT_LEVELS as usize - hints.shown.len();
        out.push_str(&format!(
            "{left} more hint{} left: `bughunt hint`. Then `bughunt check`.\n",
            if left == 1 { "" } else { "s" }
        ));
    }
    out
}

/// What of a failing stage's trace to draw: all of it when short, else the story of the
/// message a verdict names, else its end.
fn drawn_trace(stage: &StageReport) -> Vec<bughunt_kit::trace::Event> {
    if stage.trace.len() <= TRACE_DRAWN_MAX {
        return stage.trace.clone();
    }
    let verdict_msg = stage
        .trace
        .iter()
        .find(|e| matches!(e.kind, EventKind::Lost | EventKind::Duplicate))
        .and_then(|e| e.msg);
    if let Some(msg) = verdict_msg {
        let story = trace::story(&stage.trace, msg);
        if !story.is_empty() && story.len() <= TRACE_DRAWN_MAX {
            return story;
        }
    }
    let start = stage.trace.len().saturating_sub(TRACE_DRAWN_MAX);
    stage.trace[start..].to_vec()
}

/// After `check`.
pub fn page_checked(home: &Home, checked: &Checked) -> String {
    let mut out = String::new();
    for file in &checked.restored {
        out.push_str(&format!(
            "(restored {file}: tests and manifests are bughunt's; your code lives in src/lib.rs)\n"
        ));
    }
    match &checked.verdict {
        Verdict::CompileError => {
            out.push_str(&checked.cargo_stderr);
            out.push_str(&format!(
                "\n{BAD}✗ {} does not compile yet.{BAD:#} Fix the errors above, then `bughunt check` again.\n",
                checked.lib
            ));
            return out;
        }
        Verdict::TimedOut => {
            out.push_str(&format!(
                "{BAD}✗ the checks did not finish within {} s: probably a deadlock or a task that never exits.{BAD:#}\n",
                checked.timeout.as_secs()
            ));
            out.push_str("  Look for a wait with no way out: a lock taken twice, a loop that never breaks, a receive nobody can end.\n");
            return out;
        }
        Verdict::NoReport => {
            out.push_str(&checked.cargo_stderr);
            out.push_str(&format!(
                "\n{BAD}✗ the checks stopped before reporting anything (see above).{BAD:#}\n"
            ));
            return out;
        }
        Verdict::Passed | Verdict::Failed(_) => {}
    }
    let Some(report) = &checked.report else {
        return out;
    };
    for stage in &report.stages {
        match stage.status {
            StageStatus::Passed => out.push_str(&format!("{GOOD}✓{GOOD:#} {}\n", stage.title)),
            StageStatus::NotRun => out.push_str(&format!(
                "· {}  (not run: an earlier check failed)\n",
                stage.title
            )),
            StageStatus::Failed | StageStatus::Running => {
                out.push_str(&format!("{BAD}✗ {}{BAD:#}\n", stage.title));
                out.push_str(&paragraph("  ", &stage.mentor).replace("\n\n", "\n"));
                if stage.status == StageStatus::Running {
                    out.push_str("  The checks died in this stage (a deadlock the checker aborted on, or a crash).\n");
                }
                if let Some(detail) = &stage.detail {
                    out.push_str(&paragraph("  What happened: ", detail).replace("\n\n", "\n"));
                }
                if let Some(location) = &stage.location {
                    out.push_str(&format!(
                        "  (checked at {})\n",
                        home.relative(Path::new(location))
                    ));
                }
                let events = drawn_trace(stage);
                if !events.is_empty() {
                    out.push('\n');
                    for line in diagram::terminal(&events) {
                        if line.bad {
                            out.push_str(&format!("    {BAD}{}{BAD:#}\n", line.text));
                        } else {
                            out.push_str(&format!("    {}\n", line.text));
                        }
                    }
                    out.push('\n');
                }
                if let Some(replay) = &stage.replay {
                    out.push_str(&paragraph("  Schedules: ", replay).replace("\n\n", "\n"));
                }
            }
        }
    }
    out.push('\n');
    match &checked.verdict {
        Verdict::Passed if checked.first_pass => out.push_str(&format!(
            "{GOOD}Fixed! Every check passes.{GOOD:#} Run `bughunt explain` to see why it broke and how your fix works.\n"
        )),
        Verdict::Passed => out.push_str(&format!("{GOOD}Every check passes.{GOOD:#} `bughunt explain`, or `bughunt start` for the next hunt.\n")),
        _ => {
            let hint = match checked.hints_left {
                0 => "no hints left (`bughunt reveal` shows the fix)".to_owned(),
                n => format!("`bughunt hint` for a hint ({n} left)"),
            };
            out.push_str(&format!("The bug is still there. Edit {} and `bughunt check` again; {hint}.\n", checked.lib));
        }
    }
    out
}

/// After `reveal` (not `--raw`).
pub fn page_revealed(template: &Template, hunt: &HuntState) -> String {
    let mut out = format!(
        "{STRONG}The reference fix for {}{STRONG:#} (its `// FIX:` comments say why each change is there).\nTo use it: bughunt reveal --raw > {}\n\n",
        template.id(),
        lib_path(hunt)
    );
    out.push_str(template.fixed_rs);
    out
}

/// After `explain`.
pub fn page_explained(catalog: &Catalog, template: &Template, hunt: &HuntState) -> String {
    let mut out = crate::demo::demonstration(template);
    out.push_str(&heading("KEY POINTS:"));
    for point in &template.meta.key_points {
        out.push_str(&paragraph("  - ", point).replace("\n\n", "\n"));
    }
    out.push('\n');
    out.push_str(&heading("READ MORE:"));
    for resource in &template.meta.resources {
        out.push_str(&format!(
            "  - {} ({:?}): {}\n",
            resource.title, resource.kind, resource.url
        ));
    }
    out.push('\n');
    let state = State {
        current: Some(template.id().to_owned()),
        ..State::new()
    };
    let _ = hunt;
    if let Some(next) = next_challenge(catalog, &state, Some(template.id())) {
        out.push_str(&format!(
            "Next: `bughunt start` ({}: {}).\n",
            next.id(),
            next.meta.title
        ));
    }
    out
}

/// The refusal before a pass or a reveal: no spoilers.
pub fn page_explain_refused(hunt: &HuntState) -> String {
    format!(
        "Not yet: the explanation gives the answer away. Fix {} until `bughunt check` passes (or ask for the answer with `bughunt reveal`), then `bughunt explain`.\n",
        lib_path(hunt)
    )
}

/// After `status`.
pub fn page_status(status: &Progress) -> String {
    let mut out = heading("## Bug Hunt Progress");
    out.push('\n');
    for category in &status.categories {
        let mark = if category.done == category.total && category.total > 0 {
            "✅"
        } else if category.started > 0 {
            "🔄"
        } else {
            "· "
        };
        out.push_str(&format!(
            "  {mark} {} ({}/{})\n",
            category.title, category.done, category.total
        ));
    }
    out.push('\n');
    match &status.current {
        Some(current) => {
            let verdict = if current.passed {
                format!("{GOOD}fixed{GOOD:#}")
            } else if current.revealed {
                "fix revealed".to_owned()
            } else {
                "not fixed yet".to_owned()
            };
            out.push_str(&format!(
                "Current hunt: {STRONG}{}{STRONG:#} ({}), {verdict}; hints {}/{}, checks run {}\n  file: {}\n",
                current.id, current.category, current.hints_revealed, current.hints_total, current.checks_run, current.path
            ));
        }
        None => out.push_str("No hunt in progress: `bughunt start` begins one.\n"),
    }
    match &status.next {
        Some(next) => out.push_str(&format!(
            "Next challenge: {STRONG}{}{STRONG:#}: {} ({}, week {})\n",
            next.id, next.title, next.difficulty, next.week
        )),
        None => out.push_str("Next challenge: none left. Every hunt is solved.\n"),
    }
    out
}
