//! `bughunt demo`: the wrong way and the right way side by side.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bughunt_core::home::Home;
use bughunt_core::{demo, html};

use crate::exit::{CmdResult, Exit};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// The bug-demonstration block, the drawing of what happened, and the counts.
    Text,
    /// A Mermaid sequenceDiagram of what happened (GitHub renders it in ```mermaid blocks).
    Mermaid,
    /// Both runs' counts, violations and events, as JSON.
    Json,
    /// One self-contained HTML page (sequence diagrams, counts, depth chart); prints its path.
    Html,
}

#[derive(clap::Args)]
pub struct Args {
    /// A template id (see `bughunt list`) or a category id (runs its first template).
    id: String,
    /// What to print.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// With `--format html`: where to write the page. Default: `.bughunt/pages/demo-ID.html`
    /// in a hunt home, else `bughunt-pages/demo-ID.html` in the temporary folder.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// With `--format html`: open the page in the browser ($BROWSER, else the system's).
    #[arg(long)]
    open: bool,
}

pub fn run(args: Args) -> CmdResult {
    if args.format != Format::Html && (args.output.is_some() || args.open) {
        bail!("--output and --open go with --format html (`bughunt demo ID --format html --open`)");
    }
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
        Format::Html => {
            let name = format!("demo-{}.html", template.id());
            let path = page_path(args.output, &name);
            html::write(&path, &html::demo_page(template, &outcome))?;
            return show_page(&path, args.open).map(|()| Exit::Success);
        }
    };
    let mut out = anstream::stdout().lock();
    out.write_all(page.as_bytes())?;
    Ok(Exit::Success)
}

/// `--output`, else the page's place in the hunt home around us, else in the temporary folder.
pub fn page_path(output: Option<PathBuf>, name: &str) -> PathBuf {
    output.unwrap_or_else(|| html::default_path(Home::find_from_current_dir().ok().as_ref(), name))
}

/// Prints where a page is, and opens it when asked: with `$BROWSER` where it is set, else the
/// system's opener (xdg-open and its kin, `open` on macOS).
pub fn show_page(path: &Path, open: bool) -> anyhow::Result<()> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    println!("{}", path.display());
    if !open {
        return Ok(());
    }
    let browser = std::env::var("BROWSER").ok().and_then(|list| {
        list.split(':')
            .map(str::trim)
            .find(|b| !b.is_empty())
            .map(str::to_owned)
    });
    let opened = match &browser {
        Some(browser) => std::process::Command::new(browser)
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(drop)
            .with_context(|| format!("cannot run $BROWSER ({browser})")),
        None => open::that_detached(&path).context("no browser or opener found (set $BROWSER)"),
    };
    opened.with_context(|| {
        format!(
            "the page is written but could not be opened; open {} yourself",
            path.display()
        )
    })
}
