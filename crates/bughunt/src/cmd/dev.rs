//! `bughunt dev`: commands for scenario authors.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bughunt_core::text::{BAD, GOOD};
use bughunt_core::validate::{self, Options};

use crate::exit::{CmdResult, Exit};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Prove templates with cargo: each broken form fails at its expected stage, each wrong
    /// fix fails at its stage, each fixed form passes every stage.
    ///
    /// Every form is written as a real crate in one Cargo workspace (kept between runs, so
    /// the second run is incremental), built with cargo, and its checks run with a bound.
    Validate(ValidateArgs),
}

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Template or category ids; none means the whole catalog.
    ids: Vec<String>,
    /// The workspace to build in [default: bughunt-validate-<version> in the temp folder].
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// How many check binaries run at once [default: the number of CPUs].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// The bound on one form's checks, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout: u64,
    /// Validate seeds 1 to N of every bug site (0: only the templates as written).
    #[arg(long, value_name = "N", default_value_t = 1)]
    seeds: u64,
}

pub fn run(command: Command) -> CmdResult {
    match command {
        Command::Validate(args) => validate(args),
    }
}

fn validate(args: ValidateArgs) -> CmdResult {
    let catalog = super::catalog()?;
    let templates = catalog.select(&args.ids)?;
    let options = Options {
        workspace: args.workspace.unwrap_or_else(Options::default_workspace),
        jobs: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
        timeout: Duration::from_secs(args.timeout),
        cargo: Options::default_cargo(),
        seeds: args.seeds,
    };
    let started = Instant::now();
    let outcomes = validate::validate(&templates, &options)?;
    let mut out = anstream::stdout().lock();
    let mut failed = 0;
    for outcome in &outcomes {
        let name = outcome.instance.name();
        match &outcome.problem {
            None => writeln!(out, "{GOOD}✓{GOOD:#} {name}: {}", outcome.summary)?,
            Some(problem) => {
                failed += 1;
                writeln!(out, "{BAD}✗ {name}: {problem}{BAD:#}")?;
                writeln!(
                    out,
                    "  again: bughunt dev validate {} --seeds {} --workspace {}",
                    outcome.instance.template,
                    options.seeds,
                    options.workspace.display()
                )?;
            }
        }
    }
    let held = outcomes.len() - failed;
    writeln!(
        out,
        "\nvalidate: {held} passed, {failed} failed ({} templates, {} instances, {:.1} s, workspace {})",
        templates.len(),
        outcomes.len(),
        started.elapsed().as_secs_f64(),
        options.workspace.display()
    )?;
    Ok(if failed == 0 {
        Exit::Success
    } else {
        Exit::BugStillThere
    })
}
