//! `bughunt for TOPIC`: what you are implementing → the hunts that show how it breaks.

use anyhow::bail;
use bughunt_core::{pages, topics};

use crate::exit::{CmdResult, Exit};

#[derive(clap::Args)]
pub struct Args {
    /// What you are implementing, in a few words: "ack", "consumer groups", "fsync",
    /// "graceful shutdown".
    #[arg(required = true, num_args = 1..)]
    topic: Vec<String>,
}

pub fn run(args: Args) -> CmdResult {
    let catalog = super::catalog()?;
    let topic = args.topic.join(" ");
    topics::check_topic(&topic)?;
    let found = topics::matches(&catalog, &topic);
    if found.is_empty() {
        bail!(
            "no hunt matches `{topic}`; known topics: {}",
            topics::known_topics(&catalog).join(", ")
        );
    }
    super::hunt::print(&pages::for_topic(&catalog, &topic, &found))?;
    Ok(Exit::Success)
}
