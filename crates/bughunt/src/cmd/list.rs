//! `bughunt list`: every template, by category.

use std::io::Write;

use bughunt_core::text::STRONG;
use serde::Serialize;

use crate::exit::{CmdResult, Exit};

#[derive(clap::Args)]
pub struct Args {
    /// Print a JSON array of objects (id, category, title, difficulty, week, checker, demo,
    /// bug_sites, correct_alternatives, wrong_fixes).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    category: &'a str,
    title: &'a str,
    difficulty: bughunt_core::catalog::Difficulty,
    week: u8,
    checker: &'static str,
    demo: bool,
    bug_sites: Vec<&'a str>,
    /// Correct fixes unlike the reference that the checks must pass (proven by `dev validate`).
    correct_alternatives: Vec<&'a str>,
    /// Plausible wrong fixes the checks must fail (proven by `dev validate`).
    wrong_fixes: Vec<&'a str>,
}

pub fn run(args: Args) -> CmdResult {
    let catalog = super::catalog()?;
    let mut out = anstream::stdout().lock();
    let mut rows = Vec::new();
    for category in catalog.categories.values() {
        for template in catalog.in_category(&category.id) {
            rows.push((category, template));
        }
    }
    if args.json {
        let json: Vec<Row> = rows
            .iter()
            .map(|(_, t)| Row {
                id: &t.meta.id,
                category: &t.meta.category,
                title: &t.meta.title,
                difficulty: t.meta.difficulty,
                week: t.meta.week,
                checker: t.meta.checker.name(),
                demo: t.meta.demo.is_some(),
                bug_sites: t.meta.sites.iter().map(|s| s.id.as_str()).collect(),
                correct_alternatives: t
                    .meta
                    .alternatives
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect(),
                wrong_fixes: t.meta.wrong_fixes.iter().map(|w| w.name.as_str()).collect(),
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(Exit::Success);
    }
    let id_width = rows.iter().map(|(_, t)| t.meta.id.len()).max().unwrap_or(0);
    let mut current = "";
    for (category, template) in &rows {
        if category.id != current {
            if !current.is_empty() {
                writeln!(out)?;
            }
            current = &category.id;
            writeln!(
                out,
                "{STRONG}{}{STRONG:#}  {}",
                category.id, category.meta.title
            )?;
        }
        let meta = &template.meta;
        writeln!(
            out,
            "  {:id_width$}  {:6}  week {}  {:7}  {}{}",
            meta.id,
            format!("{:?}", meta.difficulty),
            meta.week,
            meta.checker.name(),
            meta.title,
            if meta.demo.is_some() { "  [demo]" } else { "" }
        )?;
        let sites: Vec<&str> = meta.sites.iter().map(|s| s.id.as_str()).collect();
        writeln!(out, "  {:id_width$}  bug sites: {}", "", sites.join(", "))?;
    }
    writeln!(
        out,
        "\nSee one fail and get fixed: bughunt demo <id or category>"
    )?;
    Ok(Exit::Success)
}
