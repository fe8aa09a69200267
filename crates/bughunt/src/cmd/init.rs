//! `bughunt init`: make a hunt home.

use std::io::Write;
use std::path::PathBuf;

use bughunt_core::home;
use bughunt_core::text::STRONG;
use bughunt_core::validate::Options;

use crate::exit::{CmdResult, Exit};

#[derive(clap::Args)]
pub struct Args {
    /// The folder to make the home in (created if missing; must be empty or a home already).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Skip fetching and building the dependencies now (the first check then builds them).
    #[arg(long)]
    no_build: bool,
}

pub fn run(args: Args) -> CmdResult {
    let initialized = home::init(&args.dir, !args.no_build, &Options::default_cargo())?;
    let mut out = anstream::stdout().lock();
    let root = initialized.home.root.display();
    if initialized.existed {
        writeln!(
            out,
            "{root} is already a bughunt home; its kit and dependencies are up to date."
        )?;
    } else {
        writeln!(out, "Made a bughunt home in {STRONG}{root}{STRONG:#}.")?;
    }
    let cd = if args.dir == std::path::Path::new(".") {
        String::new()
    } else {
        format!("cd {} && ", args.dir.display())
    };
    writeln!(out, "Next: {STRONG}{cd}bughunt start{STRONG:#}")?;
    Ok(Exit::Success)
}
