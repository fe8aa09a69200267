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
/// The most rows a chart has.
const CHART_ROWS: usize = 12;
/// The widest bar of a chart.
const CHART_COLUMNS: usize = 48;

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
fn focus(outcome: &DemoOutcome) -> Option<u64> {
    outcome
        .broken
        .violations
        .iter()
        .find_map(|v| v.msg)
        .or(outcome.broken.focus_msg)
}

/// What to draw of a run: the focus message's story; else from the demo's bookmark; else the
/// end of the run.
fn excerpt(run: &DemoRun, focus: Option<u64>) -> (String, Vec<Event>) {
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

/// Draws a run's series as horizontal bars, at most [`CHART_ROWS`] rows (each row the
/// highest value of its share of the samples), with the bound marked.
fn chart(out: &mut String, run: &DemoRun, scale_max: u64) {
    for series in &run.series {
        if series.values.is_empty() {
            continue;
        }
        let per_row = series.values.len().div_ceil(CHART_ROWS);
        let scale = |value: u64| (value * CHART_COLUMNS as u64).div_ceil(scale_max.max(1)) as usize;
        let bound_column = series.bound.map(scale);
        let heading = match series.bound {
            Some(bound) => format!(
                "{} per {} (the bound, {bound}, is the ┆ column)",
                series.label, series.per
            ),
            None => format!("{} per {}", series.label, series.per),
        };
        out.push_str(&format!("    {heading}\n"));
        for (row, chunk) in series.values.chunks(per_row).enumerate() {
            let value = chunk.iter().copied().max().unwrap_or(0);
            let filled = scale(value);
            let width = filled.max(bound_column.map_or(0, |b| b + 1));
            let bar: String = (0..width)
                .map(
                    |column| match (column < filled, Some(column) == bound_column) {
                        (true, true) => '┃',
                        (true, false) => '█',
                        (false, true) => '┆',
                        (false, false) => ' ',
                    },
                )
                .collect();
            let first = row * per_row;
            let last = first + chunk.len() - 1;
            let over = series.bound.is_some_and(|bound| value > bound);
            let span = format!("{first}–{last}");
            let line = format!("{}s {span:>7} {bar} {value}", series.per);
            if over {
                out.push_str(&format!("    {BAD}{line}{BAD:#}\n"));
            } else {
                out.push_str(&format!("    {line}\n"));
            }
        }
        out.push('\n');
    }
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
    let scale_max = [&outcome.broken, &outcome.fixed]
        .iter()
        .flat_map(|run| {
            run.series
                .iter()
                .flat_map(|s| s.values.iter().copied().chain(s.bound))
        })
        .max()
        .unwrap_or(0);
    out.push_str(&format!(
        "{BAD}── The wrong way (broken.rs): {what}{BAD:#}\n"
    ));
    draw(&mut out, &events);
    out.push('\n');
    chart(&mut out, &outcome.broken, scale_max);
    let (what, events) = excerpt(&outcome.fixed, focus);
    out.push_str(&format!(
        "{GOOD}── The right way (fixed.rs): {what}{GOOD:#}\n"
    ));
    draw(&mut out, &events);
    out.push('\n');
    chart(&mut out, &outcome.fixed, scale_max);

    out.push_str(&counts_table(outcome));
    out.push('\n');
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
