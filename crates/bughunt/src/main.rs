//! The `bughunt` command line: a table of commands over `bughunt-core`.

mod cmd;
mod exit;

use clap::{Parser, Subcommand, ValueEnum};

/// Learn how message queues and concurrent code fail, by watching it happen and by fixing
/// small, deliberately broken programs.
#[derive(Parser)]
#[command(name = "bughunt", version, about, long_about = None)]
pub struct Cli {
    /// When to use colour: auto (a terminal without NO_COLOR), always, never.
    #[arg(long, global = true, value_name = "WHEN", value_enum, default_value_t = ColorWhen::Auto)]
    color: ColorWhen,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Make a hunt home: a folder where your hunts live, with everything they build on.
    Init(cmd::init::Args),
    /// Start a hunt: write the broken code and show its category, difficulty and first hint.
    ///
    /// Without an ID, the next hunt in curriculum order. Starting another hunt keeps the old
    /// one; `bughunt start ID` later resumes it as you left it.
    Start(cmd::hunt::StartArgs),
    /// Show the next hint for the current hunt (three levels, from subtle to specific).
    Hint,
    /// Compile and test your fix; exit 0 when every check passes, 1 when the bug is still there.
    Check(cmd::hunt::CheckArgs),
    /// Show the reference fix (recorded as revealed).
    Reveal(cmd::hunt::RevealArgs),
    /// Check the current hunt on every save of its files, with keys for hints and more.
    #[command(long_about = cmd::watch::LONG_ABOUT)]
    Watch(cmd::watch::Args),
    /// (Run by `start`.) Build the current hunt's checks in the background.
    #[command(hide = true)]
    Prebuild,
    /// After a pass (or a reveal): why it broke, how the fix works, how real systems do it;
    /// then the three explain-back questions and the offer to note the pattern.
    Explain(cmd::hunt::ExplainArgs),
    /// After a pass: a similar but different bug (same category, a bug site not solved yet).
    Challenge,
    /// Your progress: categories done, the current hunt, the next challenge.
    Status(cmd::hunt::StatusArgs),
    /// What you are implementing → the hunts that show how it breaks ("ack", "fsync",
    /// "consumer groups", "graceful shutdown").
    For(cmd::topics::Args),
    /// Serve bughunt to an AI assistant: a Model Context Protocol server on stdio, in this home.
    Mcp,
    /// List every scenario template: id, category, difficulty, curriculum week.
    List(cmd::list::Args),
    /// Run a pattern's wrong way and right way side by side under injected faults.
    ///
    /// Both run in-process, deterministically: the same ID prints the same bytes every time.
    /// ID is a template id or a category id (its first template).
    Demo(cmd::demo::Args),
    /// Commands for people who write scenarios.
    #[command(subcommand)]
    Dev(cmd::dev::Command),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Children (cargo, the checks) run in sessions of their own, out of reach of the
    // terminal's Ctrl-C: bughunt ends them itself when it is interrupted.
    bughunt_core::process::end_children_on_interrupt();
    match cli.color {
        ColorWhen::Auto => anstream::ColorChoice::Auto,
        ColorWhen::Always => anstream::ColorChoice::Always,
        ColorWhen::Never => anstream::ColorChoice::Never,
    }
    .write_global();
    let Some(command) = cli.command else {
        return exit::report(cmd::session::run());
    };
    let result = match command {
        Command::Init(args) => cmd::init::run(args),
        Command::Start(args) => cmd::hunt::start(args),
        Command::Hint => cmd::hunt::hint(),
        Command::Check(args) => cmd::hunt::check(args),
        Command::Reveal(args) => cmd::hunt::reveal(args),
        Command::Watch(args) => cmd::watch::run(args),
        Command::Prebuild => cmd::prebuild::run(),
        Command::Explain(args) => cmd::hunt::explain(args),
        Command::For(args) => cmd::topics::run(args),
        Command::Challenge => cmd::hunt::challenge(),
        Command::Status(args) => cmd::hunt::status(args),
        Command::List(args) => cmd::list::run(args),
        Command::Mcp => cmd::mcp::run(),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Dev(command) => cmd::dev::run(command),
    };
    exit::report(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    /// clap's own consistency checks on the command definitions.
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// Exit codes keep their documented values.
    #[test]
    fn exit_codes() {
        assert_eq!(Exit::Success as u8, 0);
        assert_eq!(Exit::BugStillThere as u8, 1);
        assert_eq!(Exit::Usage as u8, 2);
    }
}
