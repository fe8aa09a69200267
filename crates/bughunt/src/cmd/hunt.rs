//! The hunt loop's commands: start, hint, check, reveal, explain, status.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use bughunt_core::home::Home;
use bughunt_core::hunt::{self, StartRequest, Verdict};
use bughunt_core::pages;
use bughunt_core::validate::Options;

use crate::exit::{CmdResult, Exit};

fn home() -> anyhow::Result<Home> {
    Home::find_from_current_dir()
}

fn print(page: &str) -> anyhow::Result<()> {
    let mut out = anstream::stdout().lock();
    out.write_all(page.as_bytes())?;
    Ok(())
}

#[derive(clap::Args)]
pub struct StartArgs {
    /// A template or category id; without one, the next hunt: your unfinished one, else the
    /// curriculum's next, adapted to how the last hunt went.
    id: Option<String>,
    /// Which bug site of the template (see `bughunt list --json`); default: the first unsolved.
    #[arg(long, value_name = "SITE")]
    site: Option<String>,
    /// The seed for names and constants: the same seed writes the same code. Default: a fresh one.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Start the hunt over from the broken code (your current file is kept in .bughunt/attempts/).
    #[arg(long)]
    fresh: bool,
}

pub fn start(args: StartArgs) -> CmdResult {
    let home = home()?;
    let catalog = super::catalog()?;
    let request = StartRequest {
        name: args.id.as_deref(),
        site: args.site.as_deref(),
        seed: args.seed,
        fresh: args.fresh,
    };
    let started = hunt::start(&home, &catalog, &request)?;
    print(&pages::started(&catalog, &started))?;
    Ok(Exit::Success)
}

pub fn challenge() -> CmdResult {
    let home = home()?;
    let catalog = super::catalog()?;
    let challenged = hunt::challenge(&home, &catalog)?;
    print(&pages::challenged(&catalog, &challenged))?;
    Ok(match challenged {
        hunt::Challenged::NotYet { .. } => Exit::BugStillThere,
        _ => Exit::Success,
    })
}

pub fn hint() -> CmdResult {
    let home = home()?;
    let catalog = super::catalog()?;
    let hints = hunt::hint(&home, &catalog)?;
    print(&pages::hints(&hints))?;
    Ok(Exit::Success)
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The bound on the whole check (build and tests), in seconds; past it the checks are
    /// stopped and count as failed (a deadlock, or a task that never exits).
    #[arg(long, value_name = "SECS", default_value_t = hunt::CHECK_TIMEOUT_DEFAULT.as_secs())]
    timeout: u64,
}

fn cargo_colour() -> bool {
    match anstream::ColorChoice::global() {
        anstream::ColorChoice::Always | anstream::ColorChoice::AlwaysAnsi => true,
        anstream::ColorChoice::Never => false,
        anstream::ColorChoice::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

pub fn check(args: CheckArgs) -> CmdResult {
    let home = home()?;
    let catalog = super::catalog()?;
    let checked = hunt::check(
        &home,
        &catalog,
        Duration::from_secs(args.timeout.max(1)),
        &Options::default_cargo(),
        cargo_colour(),
    )?;
    print(&pages::checked(&home, &checked))?;
    Ok(if checked.verdict == Verdict::Passed {
        Exit::Success
    } else {
        Exit::BugStillThere
    })
}

#[derive(clap::Args)]
pub struct RevealArgs {
    /// Print only the fixed source, so `bughunt reveal --raw > src/lib.rs` works.
    #[arg(long)]
    raw: bool,
}

pub fn reveal(args: RevealArgs) -> CmdResult {
    let home = home()?;
    let catalog = super::catalog()?;
    let (hunt, fixed) = hunt::reveal(&home, &catalog)?;
    if args.raw {
        std::io::stdout().lock().write_all(fixed.as_bytes())?;
    } else {
        print(&pages::revealed(&hunt, &fixed))?;
    }
    Ok(Exit::Success)
}

pub fn explain() -> CmdResult {
    let home = home()?;
    let catalog = super::catalog()?;
    let (pick, hunt, earned) = hunt::explain(&home, &catalog)?;
    if !earned {
        print(&pages::explain_refused(&hunt))?;
        return Ok(Exit::BugStillThere);
    }
    print(&pages::explained(pick, &hunt))?;
    Ok(Exit::Success)
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Print JSON: `current` (id, path, hints...), `categories`, `next`.
    #[arg(long)]
    json: bool,
}

pub fn status(args: StatusArgs) -> CmdResult {
    let home = home()?;
    let catalog = super::catalog()?;
    let status = hunt::status(&home, &catalog)?;
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&status)?))?;
    } else {
        print(&pages::status(&status))?;
    }
    Ok(Exit::Success)
}
