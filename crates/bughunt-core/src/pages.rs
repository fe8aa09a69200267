//! What the hunt loop's commands print, built from what [`crate::hunt`] returns.

use std::path::Path;

use bughunt_kit::report::{StageReport, Status as StageStatus};
use bughunt_kit::trace::{self, EventKind};

use crate::catalog::Catalog;
use crate::diagram;
use crate::home::Home;
use crate::hunt::{
    bug_hunt_header, lib_path, Challenged, Checked, Hints, Started, Verdict, HINT_LEVELS,
};
use crate::select::Pick;
use crate::state::HuntState;
use crate::text::{heading, paragraph, BAD, GOOD, STRONG};

/// The most steps of a failing schedule a check prints (the last ones).
const STEPS_DRAWN_MAX: usize = 16;
/// The most characters of a step's code printed.
const STEP_CODE_MAX: usize = 64;
/// The most trace events a check draws for a failing stage.
const TRACE_DRAWN_MAX: usize = 30;

fn pick_for<'a>(catalog: &'a Catalog, key: &str) -> Option<Pick<'a>> {
    let (template, site) = key.split_once('/')?;
    let template = catalog.template(template)?;
    let site = template.site(site)?;
    Some(Pick { template, site })
}

/// A path relative to the home, as a link to its file (see [`crate::text::file_link`]).
pub fn link(home: &Home, relative: &str) -> String {
    crate::text::file_link(&home.root.join(relative), relative)
}

/// A `file:line` location as the checks report it (relative to the home, as cargo compiles
/// it, or absolute), shown relative to the home and linked to its file.
fn link_at(home: &Home, location: &str) -> String {
    let shown = home.relative(Path::new(location));
    let file = location
        .split(':')
        .next()
        .filter(|file| !file.is_empty())
        .unwrap_or(location);
    crate::text::file_link(&home.root.join(file), &shown)
}

/// After `start` (and a `challenge` that started something).
pub fn started(home: &Home, catalog: &Catalog, started: &Started) -> String {
    let (key, lib, seed, intro) = match started {
        Started::AllSolved => {
            return format!(
                "{GOOD}Every bug site in the catalog is solved.{GOOD:#} `bughunt status` shows your progress; `bughunt start ID --fresh` replays one.\n"
            );
        }
        Started::New {
            key,
            lib,
            seed,
            reason,
        } => {
            let why = reason
                .map(|r| format!(" ({})", r.words()))
                .unwrap_or_default();
            (key, lib, *seed, format!("New hunt{why}:"))
        }
        Started::Resumed { key, lib, seed } => (key, lib, *seed, "Back to".to_owned()),
        Started::Restarted {
            key,
            lib,
            seed,
            saved,
        } => (
            key,
            lib,
            *seed,
            format!("Restarted from the broken code (your previous file is kept at {saved}):"),
        ),
    };
    let Some(pick) = pick_for(catalog, key) else {
        return format!("{intro} {key}: {lib}\n");
    };
    // The template's title would give the bug away: category, difficulty and hint 1 only.
    let mut out = format!("{intro} {STRONG}{}{STRONG:#}\n\n", pick.template.id());
    out.push_str(&bug_hunt_header(catalog, pick.template, pick.site, seed));
    out.push_str(&format!(
        "Edit  {STRONG}{}{STRONG:#}   (bug site {}, seed {seed})\nthen  {STRONG}bughunt check{STRONG:#}   (stuck? `bughunt hint`)\n",
        link(home, lib),
        pick.site.id
    ));
    out
}

/// After `hint`.
pub fn hints(hints: &Hints) -> String {
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
pub(crate) fn drawn_trace(stage: &StageReport) -> Vec<bughunt_kit::trace::Event> {
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

/// The failing schedule's last steps, one line each: the thread, the learner's line it stood
/// at when the checker could switch threads, and that line's code.
fn schedule_steps(steps: &[bughunt_kit::report::Step]) -> String {
    if steps.is_empty() {
        return String::new();
    }
    let shown = &steps[steps.len().saturating_sub(STEPS_DRAWN_MAX)..];
    let first = steps.len() - shown.len() + 1;
    let thread_width = shown
        .iter()
        .map(|s| s.thread.chars().count())
        .max()
        .unwrap_or(0);
    let place = |step: &bughunt_kit::report::Step| format!("{}:{}", step.file, step.line);
    let place_width = shown.iter().map(|s| place(s).len()).max().unwrap_or(0);
    let mut out = String::from(if steps.iter().any(|s| s.effect.is_some()) {
        "  The execution that broke it, step by step (each operation your code made on an atomic\n  or a lock, and what it read or wrote; the last step is where it broke):\n"
    } else {
        "  The schedule that broke it, step by step (where each thread stood when the checker\n  could switch threads; the last step is where it broke):\n"
    });
    if first > 1 {
        out.push_str(&format!("    … {} earlier steps\n", first - 1));
    }
    for (offset, step) in shown.iter().enumerate() {
        let code: String = if step.code.chars().count() > STEP_CODE_MAX {
            let cut: String = step.code.chars().take(STEP_CODE_MAX - 1).collect();
            format!("{cut}…")
        } else {
            step.code.clone()
        };
        let effect = step
            .effect
            .as_deref()
            .map(|effect| format!("  → {effect}"))
            .unwrap_or_default();
        let line = format!(
            "{:>4}. {:thread_width$}  {:place_width$}  {code}{effect}",
            first + offset,
            step.thread,
            place(step),
        );
        if offset + 1 == shown.len() {
            out.push_str(&format!("  {BAD}{line}{BAD:#}\n"));
        } else {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push('\n');
    out
}

/// After `check`.
pub fn checked(home: &Home, catalog: &Catalog, checked: &Checked) -> String {
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
                link(home, &checked.lib)
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
        Verdict::BuildTimedOut => {
            out.push_str(&format!(
                "{BAD}✗ building the checks took over {} s, so they never ran.{BAD:#} The machine may be busy: run `bughunt check` again (the build goes on where it stopped).\n",
                crate::hunt::CHECK_BUILD_BOUND.as_secs()
            ));
            return out;
        }
        Verdict::NoReport => {
            out.push_str(&checked.cargo_stderr);
            out.push_str(&format!(
                "\n{BAD}✗ the checks stopped before reporting anything (see above).{BAD:#}\n"
            ));
            return out;
        }
        Verdict::Untrusted(reason) => {
            out.push_str(&format!(
                "{BAD}✗ the checks' report cannot be trusted: {reason}.{BAD:#}\n  Run `bughunt check` again; if this stays, something in the hunt folder changes how its tests run.\n"
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
                    out.push_str(&format!("  (checked at {})\n", link_at(home, location)));
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
                out.push_str(&schedule_steps(&stage.steps));
                if let Some(replay) = &stage.replay {
                    out.push_str(&paragraph("  Schedules: ", replay).replace("\n\n", "\n"));
                }
            }
        }
    }
    out.push('\n');
    if let Some(category) = &checked.completed_category {
        out.push_str(&category_resources(catalog, category));
    }
    match &checked.verdict {
        Verdict::Passed if checked.first_pass => out.push_str(&format!(
            "{GOOD}Fixed! Every check passes.{GOOD:#} Run `bughunt explain` to see why it broke and how your fix works, then `bughunt challenge` for a similar but different bug.\n"
        )),
        Verdict::Passed => out.push_str(&format!(
            "{GOOD}Every check passes.{GOOD:#} `bughunt explain`, `bughunt challenge`, or `bughunt start` for the next hunt.\n"
        )),
        _ => {
            let hint = match checked.hints_left {
                0 => "no hints left (`bughunt reveal` shows the fix)".to_owned(),
                n => format!("`bughunt hint` for a hint ({n} left)"),
            };
            out.push_str(&format!(
                "The bug is still there. Edit {} and `bughunt check` again; {hint}.\n",
                link(home, &checked.lib)
            ));
        }
    }
    out
}

/// A completed category's resources: real incidents, articles and docs from its templates.
pub fn category_resources(catalog: &Catalog, category: &str) -> String {
    let title = catalog
        .categories
        .get(category)
        .map(|c| c.meta.title.clone())
        .unwrap_or_else(|| category.to_owned());
    let mut out = format!(
        "{GOOD}Category complete: {title}.{GOOD:#} Every bug site in it is solved. To read next:\n"
    );
    let mut seen: Vec<&str> = Vec::new();
    for template in catalog.in_category(category) {
        for resource in &template.meta.resources {
            if !seen.contains(&resource.url.as_str()) {
                seen.push(&resource.url);
                out.push_str(&format!(
                    "  - {} ({:?}): {}\n",
                    resource.title, resource.kind, resource.url
                ));
            }
        }
    }
    out.push('\n');
    out
}

/// After `reveal` (not `--raw`).
pub fn revealed(hunt: &HuntState, fixed: &str) -> String {
    let mut out = format!(
        "{STRONG}The reference fix for {} ({}){STRONG:#}: its `// FIX:` comments say why each change is there.\nTo use it: bughunt reveal --raw > {}\n\n",
        hunt.template,
        hunt.site,
        lib_path(hunt)
    );
    out.push_str(fixed);
    out
}

/// After `explain`: the demonstration block and the resources (the key points come after
/// the explain-back questions, to compare with).
pub fn explained(pick: Pick, hunt: &HuntState) -> String {
    let template = pick.template;
    let mut out = crate::demo::demonstration_of(template, template.whats_wrong_of(pick.site));
    out.push_str(&heading("READ MORE:"));
    for resource in &template.meta.resources {
        out.push_str(&format!(
            "  - {} ({:?}): {}\n",
            resource.title, resource.kind, resource.url
        ));
    }
    out.push('\n');
    // The explanation speaks the instance's names.
    crate::generate::variant(template, hunt.seed).apply(&out)
}

/// The bug site's key points, to compare explain-back answers with.
pub fn key_points(pick: Pick, hunt: &HuntState) -> String {
    let mut out = heading("KEY POINTS (compare with your answers):");
    let points = pick.template.key_points_of(pick.site);
    for (question, point) in crate::memory::QUESTIONS.iter().zip(points) {
        out.push_str(&paragraph(&format!("  - {question} "), point).replace("\n\n", "\n"));
    }
    for point in points.iter().skip(crate::memory::QUESTIONS.len()) {
        out.push_str(&paragraph("  - ", point).replace("\n\n", "\n"));
    }
    out.push('\n');
    out.push_str("Next: `bughunt challenge` (a similar but different bug) or `bughunt start` (the next hunt).\n");
    crate::generate::variant(pick.template, hunt.seed).apply(&out)
}

/// The refusal before a pass or a reveal: no spoilers.
pub fn explain_refused(home: &Home, hunt: &HuntState) -> String {
    format!(
        "Not yet: the explanation gives the answer away. Fix {} until `bughunt check` passes (or ask for the answer with `bughunt reveal`), then `bughunt explain`.\n",
        link(home, &lib_path(hunt))
    )
}

/// After `challenge`.
pub fn challenged(home: &Home, catalog: &Catalog, challenged: &Challenged) -> String {
    match challenged {
        Challenged::Started(started_hunt) => {
            format!(
                "A similar but different bug.\n{}",
                started(home, catalog, started_hunt)
            )
        }
        Challenged::NotYet { lib } => format!(
            "Not yet: a challenge comes after a pass. Fix {lib} until `bughunt check` passes.\n"
        ),
        Challenged::Exhausted {
            category,
            next_category,
        } => {
            let title = |id: &str| {
                catalog
                    .categories
                    .get(id)
                    .map(|c| c.meta.title.clone())
                    .unwrap_or_else(|| id.to_owned())
            };
            let mut out = format!(
                "{GOOD}You have solved every bug in {}.{GOOD:#}\n",
                title(category)
            );
            match next_category {
                Some(next) => out.push_str(&format!(
                    "Next category: {}: `bughunt start {next}`\n",
                    title(next)
                )),
                None => out.push_str("Every category is done.\n"),
            }
            out
        }
    }
}

/// After `status`.
pub fn status(home: &Home, status: &crate::hunt::Progress) -> String {
    let mut out = heading("## Bug Hunt Progress");
    out.push('\n');
    for category in &status.categories {
        if category.coming {
            out.push_str(&format!("  ⏳ {} (coming)\n", category.title));
            continue;
        }
        let mark = if category.done == category.total {
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
                "Current hunt: {STRONG}{}{STRONG:#} (bug site {}, seed {}), {verdict}; hints {}/{}, checks run {}\n  file: {}\n",
                current.id,
                current.site,
                current.seed,
                current.hints_revealed,
                current.hints_total,
                current.checks_run,
                link(home, &current.path)
            ));
        }
        None => out.push_str("No hunt in progress: `bughunt start` begins one.\n"),
    }
    match &status.next {
        Some(next) => out.push_str(&format!(
            "Next challenge: {STRONG}{}{STRONG:#} ({}, {}, week {}): `bughunt start {}`\n",
            next.id, next.category, next.difficulty, next.week, next.id
        )),
        None => out.push_str("Next challenge: none left. Every hunt is solved.\n"),
    }
    out
}

/// How well a learner knows a category, from how its hunts went: a solve with no hint counts
/// most, each hint less, a reveal nothing.
pub fn understanding(hunts: &[&HuntState]) -> &'static str {
    if hunts.is_empty() {
        return "not started";
    }
    let points: u32 = hunts
        .iter()
        .map(|h| match (h.passed, h.revealed, h.hints_revealed) {
            (true, false, 0 | 1) => 3,
            (true, false, 2) => 2,
            (true, _, _) => 1,
            _ => 0,
        })
        .sum();
    let average = points as f64 / hunts.len() as f64;
    if average >= 2.5 {
        "strong"
    } else if average >= 1.5 {
        "solid"
    } else if average >= 0.5 {
        "developing"
    } else {
        "just started"
    }
}

/// `bughunt` alone in a home: what the brief asks at the start of each session. Categories
/// covered, the understanding level of each, the next challenge.
pub fn session(home: &Home, catalog: &Catalog, state: &crate::state::State) -> String {
    let mut out = heading("Welcome back to the hunt.");
    out.push('\n');
    let mut covered = 0;
    for category in catalog.categories.values() {
        let hunts: Vec<&HuntState> = state
            .hunts
            .values()
            .filter(|h| {
                catalog
                    .template(&h.template)
                    .is_some_and(|t| t.meta.category == category.id)
            })
            .collect();
        if hunts.is_empty() {
            continue;
        }
        covered += 1;
        let total: usize = catalog
            .in_category(&category.id)
            .iter()
            .map(|t| t.meta.sites.len())
            .sum();
        let solved = hunts.iter().filter(|h| h.passed).count();
        let mark = if solved == total { "✅" } else { "🔄" };
        out.push_str(&format!(
            "  {mark} {} ({solved}/{total}): understanding {}\n",
            category.meta.title,
            understanding(&hunts)
        ));
    }
    if covered == 0 {
        out.push_str("  No category covered yet.\n");
    }
    out.push('\n');
    if let Some(key) = &state.current {
        if let Some(hunt) = state.hunts.get(key).filter(|h| !h.passed) {
            out.push_str(&format!(
                "In progress: {} (bug site {}): {}\n  `bughunt check` when you have a fix, `bughunt hint` if stuck.\n",
                hunt.template,
                hunt.site,
                link(home, &lib_path(hunt))
            ));
        }
    }
    match crate::select::upcoming(catalog, state) {
        Some(pick) => out.push_str(&format!(
            "Next challenge: {} ({:?}, week {}): `bughunt start {}`\n",
            category_title(catalog, &pick.template.meta.category),
            pick.difficulty(),
            pick.template.meta.week,
            pick.template.id(),
        )),
        None => out.push_str("Next challenge: none left; every bug is solved.\n"),
    }
    out.push_str("\nCommands: bughunt start | hint | check | explain | challenge | status | for TOPIC | demo ID\n");
    out
}

/// `bughunt for TOPIC`: the hunts and demos that show how what you build breaks.
pub fn for_topic(catalog: &Catalog, topic: &str, found: &[crate::topics::Match]) -> String {
    let mut out = format!("Implementing {STRONG}{topic}{STRONG:#}? Here is how it breaks:\n\n");
    for found in found {
        let category = found.category;
        out.push_str(&format!(
            "{STRONG}{}{STRONG:#}  (matched \"{}\")\n",
            category.meta.title, found.trigger
        ));
        out.push_str(&paragraph("  ", &category.meta.summary).replace("\n\n", "\n"));
        for template in catalog.in_category(&category.id) {
            let sites: Vec<&str> = template
                .meta
                .sites
                .iter()
                .map(|s| s.summary.as_str())
                .collect();
            out.push_str(&format!("  {}: {}\n", template.id(), template.meta.title));
            out.push_str(&format!("    bug sites: {}\n", sites.join("; ")));
            if template.meta.demo.is_some() {
                out.push_str(&format!(
                    "    watch it fail:  bughunt demo {}\n",
                    template.id()
                ));
            }
            out.push_str(&format!(
                "    hunt it:        bughunt start {}\n",
                template.id()
            ));
        }
        out.push('\n');
    }
    out
}

fn category_title(catalog: &Catalog, id: &str) -> String {
    catalog
        .categories
        .get(id)
        .map(|c| c.meta.title.clone())
        .unwrap_or_else(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bughunt_kit::report::Step;

    fn step(thread: &str, line: u32, code: &str) -> Step {
        Step {
            thread: thread.into(),
            file: "src/lib.rs".into(),
            line,
            code: code.into(),
            effect: None,
        }
    }

    /// A failing schedule prints its last steps, numbered as in the whole schedule, with
    /// long code cut and the earlier steps counted.
    #[test]
    fn schedule_steps_show_the_last_ones_numbered() {
        let mut steps: Vec<Step> = (0..20)
            .map(|n| {
                step(
                    if n % 2 == 0 { "w1" } else { "reporter" },
                    10 + n,
                    "x += 1;",
                )
            })
            .collect();
        steps.push(step("w1", 99, &"y".repeat(100)));
        let text = schedule_steps(&steps);
        assert!(text.contains("… 5 earlier steps"), "{text}");
        assert!(
            text.contains("   7. w1        src/lib.rs:16  x += 1;"),
            "{text}"
        );
        assert!(
            text.contains("  21. w1        src/lib.rs:99  yyy"),
            "{text}"
        );
        assert!(text.contains('…'), "{text}");
        assert!(!text.contains("   5. "), "{text}");
        assert!(text.contains("where each thread stood"), "{text}");
        assert_eq!(schedule_steps(&[]), "");
    }

    /// Under loom a step says what it read or wrote: a stale read is there to see.
    #[test]
    fn schedule_steps_say_what_each_step_read_or_wrote() {
        let mut flag = step("producer", 12, "self.ready.store(true, Ordering::Relaxed);");
        flag.effect = Some("wrote true".into());
        let mut body = step("consumer", 30, "Some(self.payload.load(Ordering::Relaxed))");
        body.effect = Some("read 0".into());
        let text = schedule_steps(&[flag, body]);
        assert!(text.contains("each operation your code made"), "{text}");
        assert!(
            text.contains(
                "src/lib.rs:12  self.ready.store(true, Ordering::Relaxed);  → wrote true"
            ),
            "{text}"
        );
        assert!(
            text.contains("Some(self.payload.load(Ordering::Relaxed))  → read 0"),
            "{text}"
        );
    }
}
