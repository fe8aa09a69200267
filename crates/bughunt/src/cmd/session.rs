//! `bughunt` with no command: the start of a session, or the way in.

use clap::CommandFactory;

use bughunt_core::home::Home;
use bughunt_core::pages;

use crate::exit::{CmdResult, Exit};

pub fn run() -> CmdResult {
    match Home::find_from_current_dir() {
        Ok(home) => {
            let catalog = super::catalog()?;
            let state = home.state_file().load()?;
            super::hunt::print(&pages::session(&home, &catalog, &state))?;
        }
        Err(_) => {
            let help = crate::Cli::command().render_help().to_string();
            super::hunt::print(&format!(
                "{help}\nStart here: `bughunt demo message-loss` to watch a bug, or `bughunt init my-hunts` to hunt.\n"
            ))?;
        }
    }
    Ok(Exit::Success)
}
