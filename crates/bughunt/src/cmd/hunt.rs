//! The hunt loop's commands: start, hint, check, reveal, explain, status.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use bughunt_core::home::Home;
use bughunt_core::hunt::{self, StartRequest, Verdict};
use bughunt_core::memory::{self, PatternAdded};
use bughunt_core::pages;
use bughunt_core::validate::Options;

use crate::exit::{CmdResult, Exit};

fn home() -> anyhow::Result<Home> {
    Home::find_from_current_dir()
}

pub fn print(page: &str) -> anyhow::Result<()> {
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
    /// Open the hunt's file in your editor ($VISUAL, else $EDITOR) once it is written.
    #[arg(long)]
    open: bool,
    /// Do not build the hunt in the background (by default `start` does, so the first check
    /// is warm; BUGHUNT_NO_PREBUILD=1 does the same as this flag).
    #[arg(long)]
    no_prebuild: bool,
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
    print(&pages::started(&home, &catalog, &started))?;
    let Some(lib) = started_lib(&started) else {
        return Ok(Exit::Success);
    };
    if !args.no_prebuild && !super::prebuild::disabled_by_env() {
        let _ = super::prebuild::spawn(&home);
    }
    if args.open {
        super::editor::open(&home.root.join(lib))?;
    }
    Ok(Exit::Success)
}

/// The learner's file of a hunt that `start` or `challenge` made current.
pub fn started_lib(started: &hunt::Started) -> Option<&str> {
    match started {
        hunt::Started::New { lib, .. }
        | hunt::Started::Resumed { lib, .. }
        | hunt::Started::Restarted { lib, .. } => Some(lib),
        hunt::Started::AllSolved => None,
    }
}

pub fn challenge() -> CmdResult {
    let home = home()?;
    let catalog = super::catalog()?;
    let challenged = hunt::challenge(&home, &catalog)?;
    print(&pages::challenged(&home, &catalog, &challenged))?;
    if let hunt::Challenged::Started(started) = &challenged {
        if started_lib(started).is_some() && !super::prebuild::disabled_by_env() {
            let _ = super::prebuild::spawn(&home);
        }
    }
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
    /// The bound on running the checks, in seconds, counted once their build is over (the
    /// build has a bound of its own, 900 s); past it the checks are stopped and count as
    /// failed (a deadlock, or a task that never exits).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = hunt::CHECK_TIMEOUT_DEFAULT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    timeout: u64,
    /// Also write the verdict as one self-contained HTML page (stages, the failing schedule
    /// step by step, the trace drawn) and print its path. It goes to `.bughunt/pages/` in
    /// the home unless `--output` says where.
    #[arg(long)]
    html: bool,
    /// With `--html`: where to write the page.
    #[arg(long, value_name = "FILE", requires = "html")]
    output: Option<PathBuf>,
    /// With `--html`: open the page in the browser ($BROWSER, else the system's).
    #[arg(long, requires = "html")]
    open: bool,
}

pub fn cargo_colour() -> bool {
    match anstream::ColorChoice::global() {
        anstream::ColorChoice::Always | anstream::ColorChoice::AlwaysAnsi => true,
        anstream::ColorChoice::Never => false,
        anstream::ColorChoice::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// With this set to 1, `check` says on standard error which crates cargo compiled for it
/// (for the tests and bench/watch.sh, which prove the first check after `start` warm).
pub const SHOW_BUILD_ENV: &str = "BUGHUNT_SHOW_BUILD";

pub fn check(args: CheckArgs) -> CmdResult {
    let home = home()?;
    let catalog = super::catalog()?;
    let checked = hunt::check(
        &home,
        &catalog,
        Duration::from_secs(args.timeout),
        &Options::default_cargo(),
        cargo_colour(),
    )?;
    print(&pages::checked(&home, &catalog, &checked))?;
    if args.html {
        let name = format!("check-{}.html", checked.key.replace(['/', '\\'], "-"));
        let path = args
            .output
            .unwrap_or_else(|| bughunt_core::html::default_path(Some(&home), &name));
        bughunt_core::html::write(&path, &bughunt_core::html::check_page(&home, &checked))?;
        super::demo::show_page(&path, args.open)?;
    }
    if std::env::var_os(SHOW_BUILD_ENV).is_some_and(|v| v == "1") {
        eprintln!(
            "bughunt: build: {}",
            if checked.compiled.is_empty() {
                "nothing compiled (warm)".to_owned()
            } else {
                format!("compiled {}", checked.compiled.join(", "))
            }
        );
    }
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

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Your explain-back answers: three answers in a file, separated by lines holding only
    /// `---` (instead of being asked on the terminal).
    #[arg(long, value_name = "FILE")]
    answers: Option<PathBuf>,
    /// Add the pattern to memory-bank/systemPatterns.md without asking.
    #[arg(long, conflicts_with = "no_pattern")]
    add_pattern: bool,
    /// Do not add the pattern, and do not ask.
    #[arg(long)]
    no_pattern: bool,
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

fn ask_answers() -> anyhow::Result<[String; 3]> {
    let mut answers: Vec<String> = Vec::new();
    println!("Great fix! Now explain back:");
    for (number, question) in memory::QUESTIONS.iter().enumerate() {
        let answer: String = dialoguer::Input::new()
            .with_prompt(format!("{}. {question}", number + 1))
            .interact_text()?;
        answers.push(answer);
    }
    Ok(<[String; 3]>::try_from(answers).expect("three questions"))
}

/// `explain` as `bughunt explain` runs on a terminal: the questions asked there.
pub fn explain_asking() -> CmdResult {
    explain(ExplainArgs {
        answers: None,
        add_pattern: false,
        no_pattern: false,
    })
}

pub fn explain(args: ExplainArgs) -> CmdResult {
    let home = home()?;
    let catalog = super::catalog()?;
    let (pick, hunt, earned) = hunt::explain(&home, &catalog)?;
    if !earned {
        print(&pages::explain_refused(&home, &hunt))?;
        return Ok(Exit::BugStillThere);
    }
    // Read the answers file before printing anything, so a bad file is a clean error.
    let from_file = match &args.answers {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                anyhow::anyhow!("cannot read the answers file {}: {error}", path.display())
            })?;
            let answers = memory::parse_answers(&text)
                .map_err(|problem| anyhow::anyhow!("{}: {problem}", path.display()))?;
            Some(answers)
        }
        None => None,
    };
    print(&pages::explained(pick, &hunt))?;

    if hunt.passed {
        let answers = match from_file {
            Some(answers) => Some(answers),
            None if interactive() => Some(ask_answers()?),
            None => {
                print("(Explain-back skipped: no terminal to ask on. `bughunt explain --answers FILE` takes your three answers, separated by lines holding only `---`.)\n\n")?;
                None
            }
        };
        if let Some(answers) = answers {
            let saved = memory::save_answers(&home, pick.template, &hunt, &answers)?;
            print(&format!(
                "Your answers are saved in {}.\n\n",
                pages::link(&home, &saved)
            ))?;
        }
    }
    print(&pages::key_points(pick, &hunt))?;

    let add = if args.add_pattern {
        true
    } else if args.no_pattern {
        false
    } else if interactive() && pick.template.meta.pattern.is_some() {
        dialoguer::Confirm::new()
            .with_prompt("Add this pattern to memory-bank/systemPatterns.md?")
            .default(true)
            .interact()?
    } else {
        false
    };
    if add {
        match memory::add_pattern(&home, pick.template)? {
            PatternAdded::Added(path) => print(&format!(
                "Added the pattern to {}.\n",
                pages::link(&home, &path)
            ))?,
            PatternAdded::AlreadyThere(path) => print(&format!(
                "The pattern is already in {}.\n",
                pages::link(&home, &path)
            ))?,
            PatternAdded::NoPattern => print("This hunt has no pattern entry to add.\n")?,
        }
    }
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
        print(&pages::status(&home, &status))?;
    }
    Ok(Exit::Success)
}
