//! The build after `start`: the new hunt's checks are compiled in the background while the
//! learner reads, so the first `bughunt check` is warm.
//!
//! `start` spawns `bughunt prebuild` (a hidden command) detached, in a session of its own,
//! with no terminal and no pipes, and does not wait for it: it runs
//! [`hunt::prebuild`], which is bounded by the check's build bound, ends its cargo on
//! SIGTERM or SIGHUP, and writes what cargo said to `.bughunt/prebuild.log`.
//!
//! Off with `start --no-prebuild` or `BUGHUNT_NO_PREBUILD=1` (the test suite sets it where no
//! check follows a `start`, so a run does not build crates nobody checks).

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use bughunt_core::home::Home;
use bughunt_core::hunt;
use bughunt_core::validate::Options;

use crate::exit::{CmdResult, Exit};

/// The environment variable that turns the prebuild off (any value but empty or `0`).
pub const NO_PREBUILD_ENV: &str = "BUGHUNT_NO_PREBUILD";

/// Whether the environment turned the prebuild off.
pub fn disabled_by_env() -> bool {
    std::env::var(NO_PREBUILD_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Starts the prebuild of the current hunt of `home` in the background, and returns it: a
/// command that exits soon may drop it (the system reaps it), a long-lived server must wait for
/// it ([`spawn_and_reap`]). A failure to start it costs only speed (the first check builds),
/// so it is a warning, never an error.
pub fn spawn(home: &Home) -> Option<std::process::Child> {
    // The log speaks of the last prebuild only: whoever waits for it waits for this one.
    let _ = std::fs::remove_file(home.root.join(hunt::PREBUILD_LOG));
    let spawned = std::env::current_exe().and_then(|exe| {
        let mut command = Command::new(exe);
        command
            .arg("prebuild")
            .current_dir(&home.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid(2) is async-signal-safe, all a pre_exec hook may call. The build
        // leads a session of its own: the learner's Ctrl-C at the next prompt is not its.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn()
    });
    match spawned {
        Ok(child) => Some(child),
        Err(error) => {
            eprintln!("bughunt: warning: cannot build the hunt in the background ({error}); the first check builds it");
            None
        }
    }
}

/// [`spawn`], for a process that outlives the build (the MCP server): a thread waits for the
/// build to end, so it is reaped rather than left a zombie. The wait is bounded by the
/// build's own bound.
pub fn spawn_and_reap(home: &Home) {
    if let Some(mut child) = spawn(home) {
        let reaper = std::thread::Builder::new()
            .name("prebuild-reaper".to_owned())
            .spawn(move || {
                let _ = child.wait();
            });
        if let Err(error) = reaper {
            eprintln!("bughunt: warning: cannot wait for the background build ({error})");
        }
    }
}

/// `bughunt prebuild`: the background build itself.
pub fn run() -> CmdResult {
    let home = Home::find_from_current_dir()?;
    let catalog = super::catalog()?;
    let prebuilt = hunt::prebuild(&home, &catalog, &Options::default_cargo())?;
    Ok(if prebuilt.success {
        Exit::Success
    } else {
        Exit::BugStillThere
    })
}
