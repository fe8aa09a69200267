//! The HTML pages: `bughunt demo ID --format html` and `bughunt check --html`.
//!
//! A page is one self-contained file: its styles are inline, its pictures are inline SVG
//! (see [`crate::svg`]), it loads no font, script or image, and a Content-Security-Policy
//! forbids it from fetching anything, so it opens the same offline, from a mail attachment
//! or a CI artifact. Every text that comes from a template, a trace or a report is escaped.
//! A demo page depends only on the demo's runs, so it is the same bytes every time.

use std::path::{Path, PathBuf};

use anyhow::Result;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::report::{CheckReport, StageReport, Status, Step};

use crate::catalog::Template;
use crate::demo::{self, DemoOutcome};
use crate::home::Home;
use crate::hunt::{Checked, Verdict};
use crate::svg::{self, ChartLine};

/// The folder, inside a hunt home, where pages are written.
pub const HOME_PAGES: &str = ".bughunt/pages";
/// The folder, in the system's temporary folder, where pages are written outside a home.
pub const TEMP_PAGES: &str = "bughunt-pages";

/// Where a page goes when no `--output` says: `.bughunt/pages/NAME` in a hunt home, else
/// `bughunt-pages/NAME` in the temporary folder.
pub fn default_path(home: Option<&Home>, name: &str) -> PathBuf {
    match home {
        Some(home) => home.root.join(HOME_PAGES).join(name),
        None => std::env::temp_dir().join(TEMP_PAGES).join(name),
    }
}

/// Writes a page whole (a temporary file renamed over it), making its folder if needed.
pub fn write(path: &Path, page: &str) -> Result<()> {
    crate::files::replace_file(path, page.as_bytes())
}

/// Text made safe to put between tags and inside attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

const STYLE: &str = r#"
:root { color-scheme: light; --wrong: #c81e1e; --wrong-tint: #ffe4e4; --right: #14823c;
  --right-tint: #e4ffe8; --ink: #222; --muted: #666; --line: #d8d8d8; }
* { box-sizing: border-box; }
body { margin: 0; background: #fafafa; color: var(--ink);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.7em; margin: 0 0 4px; line-height: 1.25; }
h2 { font-size: 1.25em; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.08em; margin: 0 0 8px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.label { font-weight: 650; letter-spacing: .02em; }
pre, code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: .92em; }
pre { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
  overflow-x: auto; margin: 6px 0 12px; white-space: pre; }
.stack { display: grid; gap: 12px; }
pre.prose { white-space: pre-wrap; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
.panel { border-radius: 8px; padding: 14px 16px; border: 1px solid var(--line); background: #fff; min-width: 0; }
.wrong { background: var(--wrong-tint); border-color: #f0b4b4; }
.right { background: var(--right-tint); border-color: #a8dcb6; }
.wrong > h3 { color: var(--wrong); } .right > h3 { color: var(--right); }
.panel pre { background: rgba(255,255,255,.7); }
.diagram { overflow-x: auto; background: #fff; border-radius: 6px; border: 1px solid var(--line); padding: 6px; }
svg { max-width: 100%; height: auto; display: block; }
.verdict { font-weight: 650; margin: 10px 0 0; }
.bad { color: var(--wrong); } .good { color: var(--right); }
table.counts { border-collapse: collapse; font-size: 1.35em; margin: 6px 0; background: #fff; }
table.counts th, table.counts td { padding: 6px 18px; border-bottom: 1px solid var(--line); }
table.counts th { font-size: .72em; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
table.counts td.n { text-align: right; font-variant-numeric: tabular-nums; font-weight: 650; }
table.counts td.n.bad { background: var(--wrong-tint); } table.counts td.n.good { background: var(--right-tint); }
ul.systems li { margin-bottom: 6px; }
.banner { font-size: 1.35em; font-weight: 700; padding: 12px 16px; border-radius: 8px; margin: 12px 0; }
.banner.wrong { color: var(--wrong); } .banner.right { color: var(--right); }
ol.stages { list-style: none; padding: 0; }
ol.stages > li { margin: 8px 0; padding: 8px 12px; border-radius: 6px; background: #fff; border: 1px solid var(--line); }
ol.stages > li.failed { background: var(--wrong-tint); border-color: #f0b4b4; }
ol.stages > li.passed .mark { color: var(--right); } ol.stages > li.failed .mark { color: var(--wrong); }
.mark { font-weight: 700; display: inline-block; width: 1.4em; }
.notrun { color: var(--muted); }
table.steps { border-collapse: collapse; background: #fff; font-size: .95em; margin-bottom: 14px; }
table.steps th, table.steps td { border: 1px solid var(--line); padding: 4px 10px; vertical-align: top; }
table.steps th { background: #f0f0f0; }
table.steps td.n { color: var(--muted); text-align: right; }
table.steps td.ran { background: #f3f6ff; }
table.steps tr.last td.ran { background: var(--wrong-tint); border: 2px solid var(--wrong); }
table.steps .line { color: var(--muted); font-size: .85em; display: block; }
table.steps .effect { display: block; font-weight: bold; }
footer { color: var(--muted); margin-top: 32px; font-size: .9em; }
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(title)
    )
}

fn paragraph(label: &str, text: &str) -> String {
    format!(
        "<p><span class=\"label\">{}</span> {}</p>\n",
        escape(label),
        escape(text.trim())
    )
}

fn counts_table(outcome: &DemoOutcome) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for count in outcome.broken.counts.iter().chain(&outcome.fixed.counts) {
        if !labels.contains(&count.label.as_str()) {
            labels.push(&count.label);
        }
    }
    let mut out = String::from(
        "<table class=\"counts\">\n<tr><th></th><th class=\"bad\">wrong way</th><th class=\"good\">right way</th></tr>\n",
    );
    for label in labels {
        out.push_str(&format!("<tr><td>{}</td>", escape(label)));
        for run in [&outcome.broken, &outcome.fixed] {
            match run.counts.iter().find(|c| c.label == label) {
                None => out.push_str("<td class=\"n\">-</td>"),
                Some(count) if count.bad && count.value > 0 => {
                    out.push_str(&format!("<td class=\"n bad\">{}</td>", count.value))
                }
                Some(count) if count.bad => {
                    out.push_str(&format!("<td class=\"n good\">{}</td>", count.value))
                }
                Some(count) => out.push_str(&format!("<td class=\"n\">{}</td>", count.value)),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn run_verdict(run: &DemoRun) -> String {
    match run.violations.first() {
        None => "<p class=\"verdict good\">✓ no violations</p>\n".to_owned(),
        Some(first) => format!(
            "<p class=\"verdict bad\">✗ {} violation{}: {}</p>\n",
            run.violations.len(),
            if run.violations.len() == 1 { "" } else { "s" },
            escape(&first.detail)
        ),
    }
}

/// A demo's page: the bug demonstration, both runs' drawings side by side, the counts, and
/// the depth over time where the demo samples one.
pub fn demo_page(template: &Template, outcome: &DemoOutcome) -> String {
    let explanation = &template.meta.explanation;
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>Bug demonstration: {}</h1>\n<p class=\"meta\">{} · {} · <code>bughunt demo {}</code></p>\n",
        escape(&explanation.headline),
        escape(&template.meta.category),
        escape(template.id()),
        escape(template.id()),
    ));
    body.push_str(&paragraph("What's wrong:", &explanation.whats_wrong));
    body.push_str(&paragraph("Lesson:", &explanation.lesson));

    body.push_str("<h2 id=\"run\">The run</h2>\n");
    let summary = template
        .meta
        .demo
        .as_ref()
        .map(|d| d.summary.as_str())
        .unwrap_or_default();
    body.push_str(&format!("<p>{}</p>\n", escape(summary.trim())));
    if !outcome.faults.is_empty() {
        body.push_str("<ul>\n");
        for fault in &outcome.faults {
            body.push_str(&format!("<li>fault: {}</li>\n", escape(fault)));
        }
        body.push_str("</ul>\n");
    }
    body.push_str(&counts_table(outcome));

    let focus = demo::focus(outcome);
    body.push_str("<div class=\"pair\">\n");
    for (class, name, run) in [
        ("wrong", "The wrong way (broken.rs)", &outcome.broken),
        ("right", "The right way (fixed.rs)", &outcome.fixed),
    ] {
        let (what, events) = demo::excerpt(run, focus);
        body.push_str(&format!(
            "<section class=\"panel {class}\">\n<h3>{}: {}</h3>\n<div class=\"diagram\">{}</div>\n{}</section>\n",
            escape(name),
            escape(&what),
            svg::sequence(&events),
            run_verdict(run),
        ));
    }
    body.push_str("</div>\n");

    let lines: Vec<ChartLine<'_>> = [
        ("wrong way", svg::WRONG, &outcome.broken),
        ("right way", svg::RIGHT, &outcome.fixed),
    ]
    .into_iter()
    .filter_map(|(name, colour, run)| {
        run.series.first().map(|series| ChartLine {
            name,
            colour,
            series,
        })
    })
    .collect();
    if let Some(first) = lines.first() {
        body.push_str(&format!(
            "<h2>{} over time</h2>\n<div class=\"diagram\" id=\"over-time\">{}</div>\n",
            escape(&capitalised(&first.series.label)),
            svg::chart(&lines)
        ));
    }

    body.push_str("<h2>How other systems handle this</h2>\n<ul class=\"systems\">\n");
    for other in &explanation.other_systems {
        body.push_str(&format!(
            "<li><span class=\"label\">{}:</span> {}</li>\n",
            escape(&other.system),
            escape(other.how.trim())
        ));
    }
    body.push_str("</ul>\n<div class=\"stack\">\n");
    for (class, name, flow) in [
        ("wrong", "Flow (buggy)", &explanation.flow_buggy),
        ("right", "Flow (correct)", &explanation.flow_correct),
    ] {
        body.push_str(&format!(
            "<section class=\"panel {class}\"><h3>{name}</h3><pre>{}</pre></section>\n",
            escape(flow.trim_end())
        ));
    }
    body.push_str("</div>\n<h2>Tradeoff</h2>\n");
    body.push_str(&format!(
        "<pre class=\"prose\">{}</pre>\n",
        escape(explanation.tradeoff.trim_end())
    ));
    body.push_str(&format!(
        "<footer>Both runs are in-process and deterministic: <code>bughunt demo {}</code> prints the same every time.</footer>\n",
        escape(template.id())
    ));
    page(&format!("bughunt demo {}", template.id()), &body)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A failing schedule as lanes: a column per thread, a row per step, each cell the line of
/// the learner's code that thread ran; the last step (where it broke) is outlined in red.
pub fn steps_table(steps: &[Step]) -> String {
    let mut threads: Vec<&str> = Vec::new();
    for step in steps {
        if !threads.contains(&step.thread.as_str()) {
            threads.push(&step.thread);
        }
    }
    let mut out = String::from("<table class=\"steps\">\n<tr><th>step</th>");
    for thread in &threads {
        out.push_str(&format!("<th>{}</th>", escape(thread)));
    }
    out.push_str("</tr>\n");
    for (index, step) in steps.iter().enumerate() {
        let last = index + 1 == steps.len();
        out.push_str(&format!(
            "<tr{}><td class=\"n\">{}</td>",
            if last { " class=\"last\"" } else { "" },
            index + 1
        ));
        for thread in &threads {
            if *thread == step.thread {
                let effect = step
                    .effect
                    .as_deref()
                    .map(|effect| format!("<span class=\"effect\">→ {}</span>", escape(effect)))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "<td class=\"ran\"><span class=\"line\">{}:{}{}</span><code>{}</code>{effect}</td>",
                    escape(&step.file),
                    step.line,
                    if last { " · where it broke" } else { "" },
                    escape(&step.code)
                ));
            } else {
                out.push_str("<td></td>");
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn stage_item(home: &Home, stage: &StageReport) -> String {
    match stage.status {
        Status::Passed => format!(
            "<li class=\"passed\"><span class=\"mark\">✓</span>{}</li>\n",
            escape(&stage.title)
        ),
        Status::NotRun => format!(
            "<li class=\"notrun\"><span class=\"mark\">·</span>{} (not run: an earlier check failed)</li>\n",
            escape(&stage.title)
        ),
        Status::Failed | Status::Running => {
            let mut out = format!(
                "<li class=\"failed\"><span class=\"mark\">✗</span><strong>{}</strong>\n",
                escape(&stage.title)
            );
            out.push_str(&format!("<p>{}</p>\n", escape(stage.mentor.trim())));
            if stage.status == Status::Running {
                out.push_str("<p>The checks died in this stage (a deadlock the checker aborted on, or a crash).</p>\n");
            }
            if let Some(detail) = &stage.detail {
                out.push_str(&paragraph("What happened:", detail));
            }
            if let Some(location) = &stage.location {
                out.push_str(&format!(
                    "<p class=\"meta\">checked at <code>{}</code></p>\n",
                    escape(&home.relative(Path::new(location)))
                ));
            }
            if let Some(replay) = &stage.replay {
                out.push_str(&paragraph("Schedules:", replay));
            }
            if !stage.steps.is_empty() {
                out.push_str(if stage.steps.iter().any(|s| s.effect.is_some()) {
                    "<h3>The failing execution, step by step: what each operation read or wrote</h3>\n"
                } else {
                    "<h3>The failing schedule, step by step</h3>\n"
                });
                out.push_str(&steps_table(&stage.steps));
            }
            let events = crate::pages::drawn_trace(stage);
            if !events.is_empty() {
                out.push_str(&format!(
                    "<h3>What happened</h3>\n<div class=\"diagram\">{}</div>\n",
                    svg::sequence(&events)
                ));
            }
            out.push_str("</li>\n");
            out
        }
    }
}

/// A check's page: the verdict, every stage with its status, and for the stage that failed
/// the mentor's words, what happened, where, the failing schedule and the trace drawn.
pub fn check_page(home: &Home, checked: &Checked) -> String {
    let mut body = format!(
        "<h1>bughunt check: {}</h1>\n<p class=\"meta\">your code: <code>{}</code></p>\n",
        escape(&checked.key),
        escape(&checked.lib)
    );
    let banner = |class: &str, text: &str| {
        format!(
            "<div class=\"banner panel {class}\">{}</div>\n",
            escape(text)
        )
    };
    let stderr = || {
        format!(
            "<pre>{}</pre>\n",
            escape(&anstream::adapter::strip_str(&checked.cargo_stderr).to_string())
        )
    };
    match &checked.verdict {
        Verdict::Passed => body.push_str(&banner("right", "✓ Every check passes.")),
        Verdict::Failed(_) => body.push_str(&banner("wrong", "✗ The bug is still there.")),
        Verdict::CompileError => {
            body.push_str(&banner("wrong", "✗ Your code does not compile yet."));
            body.push_str(&stderr());
        }
        Verdict::TimedOut => body.push_str(&banner(
            "wrong",
            &format!(
                "✗ The checks did not finish within {} s: probably a deadlock or a task that never exits.",
                checked.timeout.as_secs()
            ),
        )),
        Verdict::BuildTimedOut => body.push_str(&banner(
            "wrong",
            "✗ Building the checks took too long, so they never ran. Run `bughunt check` again.",
        )),
        Verdict::NoReport => {
            body.push_str(&banner(
                "wrong",
                "✗ The checks stopped before reporting anything.",
            ));
            body.push_str(&stderr());
        }
        Verdict::Untrusted(reason) => body.push_str(&banner(
            "wrong",
            &format!("✗ The checks' report cannot be trusted: {reason}."),
        )),
    }
    if let (Some(report), Verdict::Passed | Verdict::Failed(_)) =
        (&checked.report, &checked.verdict)
    {
        body.push_str(&stages(home, report));
    }
    page(&format!("bughunt check {}", checked.key), &body)
}

fn stages(home: &Home, report: &CheckReport) -> String {
    let mut out = String::from("<h2>Stages</h2>\n<ol class=\"stages\">\n");
    for stage in &report.stages {
        out.push_str(&stage_item(home, stage));
    }
    out.push_str("</ol>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything that can hold markup is escaped.
    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<b>&\"'</b>"), "&lt;b&gt;&amp;&quot;&#39;&lt;/b&gt;");
    }

    /// Steps become lanes: a column per thread, the thread's line in its column, the last
    /// step marked as where it broke.
    #[test]
    fn steps_as_lanes() {
        let step = |thread: &str, line: u32, code: &str| Step {
            thread: thread.into(),
            file: "src/lib.rs".into(),
            line,
            code: code.into(),
            effect: None,
        };
        let mut read = step("reporter", 31, "let n = count.load(Relaxed);");
        read.effect = Some("read 0".into());
        assert!(steps_table(&[read]).contains("<span class=\"effect\">→ read 0</span>"));
        let table = steps_table(&[
            step("worker", 12, "let q = queue.lock();"),
            step("reporter", 30, "let s = stats.lock();"),
            step("worker", 13, "let s = stats.lock(); // <-"),
        ]);
        assert!(table.contains("<th>worker</th><th>reporter</th>"));
        assert!(table.contains("src/lib.rs:30"));
        assert!(table.contains("// &lt;-"));
        let last = table
            .lines()
            .find(|l| l.contains("class=\"last\""))
            .unwrap();
        assert!(last.contains("src/lib.rs:13 · where it broke"));
        assert!(last.contains("<td class=\"ran\">") && last.ends_with("<td></td></tr>"));
    }
}
