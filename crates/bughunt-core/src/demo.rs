//! `bughunt demo`: the wrong way and the right way, side by side, under the same faults.
//!
//! Both forms of a template run in-process (no cargo) under the fault plan from its
//! `scenario.toml`. The runs are deterministic, so the same template always prints the
//! same bytes, in every format.

use bughunt_kit::demo::DemoRun;
use bughunt_kit::trace::{self, Event};
use serde::Serialize;

use crate::catalog::Template;
use crate::diagram::{self, MermaidSection};
use crate::text::{heading, paragraph, BAD, GOOD, STRONG};

/// How many events the drawing of a run without a message to follow shows (the last ones).
const TAIL_EVENTS: usize = 14;
/// How many events a drawing from a bookmark shows.
const EXCERPT_EVENTS: usize = 24;
/// The rows of a terminal chart of a series (each row is eight levels of block).
const CHART_ROWS: usize = 4;
/// The most columns a terminal chart of a series has.
const CHART_COLUMNS: usize = 60;

/// Both runs of one template's demo.
#[derive(Debug, Serialize)]
pub struct DemoOutcome {
    pub id: String,
    pub category: String,
    pub title: String,
    pub faults: Vec<String>,
    pub broken: DemoRun,
    pub fixed: DemoRun,
}

/// Why a demo cannot run.
#[derive(Debug, thiserror::Error)]
#[error("`{id}` has no in-process demo ({checker} scenarios are explored by `bughunt dev validate`); demos: {available}")]
pub struct NoDemo {
    pub id: String,
    pub checker: &'static str,
    pub available: String,
}

/// Runs both forms of the template under its fault plan.
pub fn run(template: &Template) -> Result<DemoOutcome, NoDemo> {
    let found = template
        .meta
        .demo
        .as_ref()
        .zip(crate::demos::find(template.id()));
    let Some((spec, (broken, fixed))) = found else {
        return Err(NoDemo {
            id: template.id().to_owned(),
            checker: template.meta.checker.name(),
            available: crate::demos::DEMOS
                .iter()
                .map(|(id, _, _)| *id)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    Ok(DemoOutcome {
        id: template.id().to_owned(),
        category: template.meta.category.clone(),
        title: template.meta.title.clone(),
        faults: spec.faults.describe(),
        broken: broken(&spec.faults),
        fixed: fixed(&spec.faults),
    })
}

/// The message whose story is drawn: the first one a violation of the broken run names, else
/// the one the demo put in focus.
pub(crate) fn focus(outcome: &DemoOutcome) -> Option<u64> {
    outcome
        .broken
        .violations
        .iter()
        .find_map(|v| v.msg)
        .or(outcome.broken.focus_msg)
}

/// What to draw of a run: the focus message's story; else from the demo's bookmark; else the
/// end of the run.
pub(crate) fn excerpt(run: &DemoRun, focus: Option<u64>) -> (String, Vec<Event>) {
    if let Some(msg) = focus {
        let story = trace::story(&run.events, msg);
        if !story.is_empty() {
            return (format!("what happened to m{msg}"), story);
        }
    }
    if let Some(seq) = run.focus_from_seq {
        let from: Vec<Event> = run
            .events
            .iter()
            .filter(|e| e.seq >= seq)
            .take(EXCERPT_EVENTS)
            .cloned()
            .collect();
        if !from.is_empty() {
            return (
                "what happened from the moment that matters".to_owned(),
                from,
            );
        }
    }
    let start = run.events.len().saturating_sub(TAIL_EVENTS);
    ("how the run ended".to_owned(), run.events[start..].to_vec())
}

/// Draws the runs' first series (queue depth per tick) as block charts, one per run, on one
/// scale: [`CHART_ROWS`] rows of eighth blocks, at most [`CHART_COLUMNS`] columns (each the
/// highest value of its share of the samples); columns over the bound are drawn in red.
fn chart(out: &mut String, runs: &[(&str, &DemoRun)]) {
    let drawn: Vec<(&str, &bughunt_kit::demo::Series)> = runs
        .iter()
        .filter_map(|(name, run)| run.series.first().map(|s| (*name, s)))
        .filter(|(_, s)| !s.values.is_empty())
        .collect();
    let Some((_, first)) = drawn.first() else {
        return;
    };
    let scale_max = drawn
        .iter()
        .flat_map(|(_, s)| s.values.iter().copied().chain(s.bound))
        .max()
        .unwrap_or(0)
        .max(1);
    let samples = drawn.iter().map(|(_, s)| s.values.len()).max().unwrap_or(1);
    let per_column = samples.div_ceil(CHART_COLUMNS);
    let bound = match first.bound {
        Some(bound) => format!("; the bound is {bound} (red: over it)"),
        None => String::new(),
    };
    out.push_str(&format!(
        "  {} per {}, both runs on one scale{bound}\n",
        first.label, first.per
    ));
    let top_label = scale_max.to_string();
    let label_width = top_label.len();
    let levels = (CHART_ROWS * 8) as u64;
    for (name, series) in &drawn {
        let columns: Vec<u64> = series
            .values
            .chunks(per_column)
            .map(|chunk| chunk.iter().copied().max().unwrap_or(0))
            .collect();
        for row in (0..CHART_ROWS).rev() {
            let (caption, axis, tick) = match row {
                r if r == CHART_ROWS - 1 => (*name, top_label.as_str(), '┤'),
                0 => ("", "0", '┤'),
                _ => ("", "", '│'),
            };
            out.push_str(&format!("    {caption:9}  {axis:>label_width$} {tick}"));
            // Runs of cells over the bound share one colour span.
            let mut red = String::new();
            for value in &columns {
                let eighths = (value * levels).div_ceil(scale_max);
                let filled = eighths.saturating_sub(row as u64 * 8).min(8) as usize;
                let cell = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'][filled];
                if series.bound.is_some_and(|bound| *value > bound) && filled > 0 {
                    red.push(cell);
                    continue;
                }
                if !red.is_empty() {
                    out.push_str(&format!("{BAD}{red}{BAD:#}"));
                    red.clear();
                }
                out.push(cell);
            }
            if !red.is_empty() {
                out.push_str(&format!("{BAD}{red}{BAD:#}"));
            }
            // No trailing spaces: the empty top rows of a low series end at the axis.
            while out.ends_with(' ') {
                out.pop();
            }
            out.push('\n');
        }
    }
    let last = samples - 1;
    let per = if per_column == 1 {
        format!("one column per {}", first.per)
    } else {
        format!("one column per {per_column} {}s", first.per)
    };
    out.push_str(&format!(
        "    {:9}  {:label_width$}  {}s 0–{last}, {per}\n",
        "", "", first.per
    ));
}

/// The demo as JSON: `id`, `broken` and `fixed` with their `counts`, `violations`, `events`.
pub fn json(outcome: &DemoOutcome) -> String {
    let mut text = serde_json::to_string_pretty(outcome).expect("demo outcomes serialize");
    text.push('\n');
    text
}

/// The broken run's story (and the fixed run's, for the same message) as Mermaid.
pub fn mermaid(outcome: &DemoOutcome) -> String {
    let focus = focus(outcome);
    let (what_broken, broken) = excerpt(&outcome.broken, focus);
    let (what_fixed, fixed) = excerpt(&outcome.fixed, focus);
    diagram::mermaid(&[
        MermaidSection {
            heading: format!("{}: the wrong way (broken.rs), {what_broken}", outcome.id),
            rgb: (255, 228, 228),
            events: &broken,
        },
        MermaidSection {
            heading: format!("{}: the right way (fixed.rs), {what_fixed}", outcome.id),
            rgb: (228, 255, 232),
            events: &fixed,
        },
    ])
}

fn draw(out: &mut String, events: &[Event]) {
    for line in diagram::terminal(events) {
        if line.bad {
            out.push_str(&format!("    {BAD}{}{BAD:#}\n", line.text));
        } else {
            out.push_str(&format!("    {}\n", line.text));
        }
    }
}

/// The demo as the terminal page: the brief's bug-demonstration block, the drawing of the
/// broken run (and the fixed run, for the same message), the counts of both, the verdicts.
pub fn text(template: &Template, outcome: &DemoOutcome) -> String {
    let mut out = demonstration(template);
    out.push_str(&run_page(template, outcome));
    out
}

/// The brief's bug-demonstration block for a template: what's wrong, the lesson, how other
/// systems handle it, the flows, the tradeoff.
pub fn demonstration(template: &Template) -> String {
    demonstration_of(template, &template.meta.explanation.whats_wrong)
}

/// The bug-demonstration block with `whats_wrong` for one bug site.
pub fn demonstration_of(template: &Template, whats_wrong: &str) -> String {
    let explanation = &template.meta.explanation;
    let mut out = String::new();
    let rule = "=".repeat(76);
    out.push_str(&format!(
        "{STRONG}{rule}\nBUG DEMONSTRATION: {}\n{rule}{STRONG:#}\n",
        explanation.headline
    ));
    out.push_str(&format!(
        "{}  ·  {}\n\n",
        template.meta.category,
        template.id()
    ));
    out.push_str(&paragraph("WHAT'S WRONG: ", whats_wrong));
    out.push_str(&paragraph("LESSON: ", &explanation.lesson));
    out.push_str(&heading("HOW OTHER SYSTEMS HANDLE THIS:"));
    for other in &explanation.other_systems {
        out.push_str(
            &paragraph(&format!("  - {}: ", other.system), &other.how).replace("\n\n", "\n"),
        );
    }
    out.push('\n');
    for (name, flow) in [
        ("FLOW (buggy):", &explanation.flow_buggy),
        ("FLOW (correct):", &explanation.flow_correct),
    ] {
        out.push_str(&heading(name));
        for line in flow.trim_end().lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out.push('\n');
    }
    out.push_str(&heading("TRADEOFF:"));
    for line in explanation.tradeoff.trim_end().lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push('\n');
    out
}

/// The drawing of both runs, the counts and the verdicts.
fn run_page(template: &Template, outcome: &DemoOutcome) -> String {
    let mut out = String::new();
    let summary = template
        .meta
        .demo
        .as_ref()
        .map(|d| d.summary.as_str())
        .unwrap_or_default();
    out.push_str(paragraph("THE RUN: ", summary).trim_end());
    out.push('\n');
    for fault in &outcome.faults {
        out.push_str(&format!("  fault: {fault}\n"));
    }
    out.push('\n');

    let focus = focus(outcome);
    let (what, events) = excerpt(&outcome.broken, focus);
    out.push_str(&format!(
        "{BAD}── The wrong way (broken.rs): {what}{BAD:#}\n"
    ));
    draw(&mut out, &events);
    out.push('\n');
    let (what, events) = excerpt(&outcome.fixed, focus);
    out.push_str(&format!(
        "{GOOD}── The right way (fixed.rs): {what}{GOOD:#}\n"
    ));
    draw(&mut out, &events);
    out.push('\n');

    out.push_str(&counts_table(outcome));
    out.push('\n');
    if outcome
        .broken
        .series
        .iter()
        .chain(&outcome.fixed.series)
        .next()
        .is_some()
    {
        chart(
            &mut out,
            &[
                ("wrong way", &outcome.broken),
                ("right way", &outcome.fixed),
            ],
        );
        out.push('\n');
    }
    for (name, run) in [
        ("wrong way", &outcome.broken),
        ("right way", &outcome.fixed),
    ] {
        if run.violations.is_empty() {
            out.push_str(&format!("{GOOD}✓ {name}: no violations{GOOD:#}\n"));
            continue;
        }
        let first = &run.violations[0];
        out.push_str(&format!(
            "{BAD}✗ {name}: {} violation{} (first: {}){BAD:#}\n",
            run.violations.len(),
            if run.violations.len() == 1 { "" } else { "s" },
            first.detail
        ));
    }
    out
}

fn counts_table(outcome: &DemoOutcome) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for count in outcome.broken.counts.iter().chain(&outcome.fixed.counts) {
        if !labels.contains(&count.label.as_str()) {
            labels.push(&count.label);
        }
    }
    let value = |run: &DemoRun, label: &str| run.counts.iter().find(|c| c.label == label).cloned();
    let label_width = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = format!(
        "  {:label_width$}  {:>11}  {:>11}\n",
        "", "wrong way", "right way"
    );
    for label in labels {
        let mut row = format!("  {label:label_width$}");
        for run in [&outcome.broken, &outcome.fixed] {
            let cell = match value(run, label) {
                None => format!("  {:>11}", "-"),
                Some(count) if count.bad && count.value > 0 => {
                    format!("  {BAD}{:>11}{BAD:#}", count.value)
                }
                Some(count) if count.bad => format!("  {GOOD}{:>11}{GOOD:#}", count.value),
                Some(count) => format!("  {:>11}", count.value),
            };
            row.push_str(&cell);
        }
        out.push_str(&row);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    /// A queue demo draws the depth of both runs under the counts, on one scale: a compact
    /// block chart whose top row is labelled with the highest sample and whose bottom is 0.
    #[test]
    fn queue_depth_is_charted_under_the_counts() {
        let catalog = Catalog::embedded().unwrap();
        let template = catalog.template("bounded-queue").unwrap();
        let outcome = run(template).unwrap();
        let page = anstream::adapter::strip_str(&text(template, &outcome)).to_string();
        let counts = page.find("depth over the bound").unwrap();
        let chart = page
            .find("queue depth per tick, both runs on one scale")
            .unwrap();
        assert!(chart > counts, "the chart is under the counts");
        let lines: Vec<&str> = page[chart..].lines().collect();
        let top = outcome.broken.series[0].values.iter().max().unwrap();
        assert!(lines[1].starts_with("    wrong way") && lines[1].contains(&format!("{top} ┤")));
        assert!(
            lines[4].contains("0 ┤▇██"),
            "the wrong way climbs at once: {}",
            lines[4]
        );
        assert!(lines[5].starts_with("    right way"));
        assert!(
            lines[8].contains("0 ┤▂"),
            "the right way stays low: {}",
            lines[8]
        );
        assert!(lines[9].contains("ticks 0–"));
        assert!(lines.iter().take(10).all(|l| l.chars().count() <= 80));
    }
}
