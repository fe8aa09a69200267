//! One module per command.

pub mod demo;
pub mod dev;
pub mod editor;
pub mod hunt;
pub mod init;
pub mod list;
pub mod mcp;
pub mod mcp_gate;
pub mod prebuild;
pub mod session;
pub mod topics;
pub mod watch;

use anyhow::Context;
use bughunt_core::catalog::Catalog;

/// The catalog built into this binary. A malformed one is a bug in bughunt itself (the test
/// suite loads it), reported as such rather than as a panic.
pub fn catalog() -> anyhow::Result<Catalog> {
    Catalog::embedded()
        .context("the built-in scenario catalog is malformed (please report this bug)")
}
