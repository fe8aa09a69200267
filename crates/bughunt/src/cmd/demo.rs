//! `bughunt demo`: the wrong way and the right way side by side.

use std::io::Write;

use anyhow::bail;
use bughunt_core::demo;

use crate::exit::{CmdResult, Exit};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Format {
    /// The bug-demonstration block, the drawing of what happened, and the counts.
    Text,
    /// A Mermaid sequenceDiagram of what happened (GitHub renders it in ```mermaid blocks).
    Mermaid,
    /// Both runs' counts, violations and events, as JSON.
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// A template id (see `bughunt list`) or a category id (runs its first template).
    id: String,
    /// What to print.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(args: Args) -> CmdResult {
    let catalog = super::catalog()?;
    let chosen = catalog.select(std::slice::from_ref(&args.id))?;
    let Some(template) = chosen.into_iter().find(|t| t.meta.demo.is_some()) else {
        bail!(
            "`{}` has no in-process demo yet; `bughunt list` marks the ones that do with [demo]",
            args.id
        );
    };
    let outcome = demo::run(template)?;
    let page = match args.format {
        Format::Text => demo::text(template, &outcome),
        Format::Mermaid => demo::mermaid(&outcome),
        Format::Json => demo::json(&outcome),
    };
    let mut out = anstream::stdout().lock();
    out.write_all(page.as_bytes())?;
    Ok(Exit::Success)
}
