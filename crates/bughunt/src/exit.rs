//! Exit codes and the one-line error.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (for checks: every stage holds) |
//! | 1 | the bug is still there (for `dev validate`: an instance does not hold) |
//! | 2 | usage or environment error: unknown id, no cargo, unreadable file |

use std::io::Write;

/// The documented exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Success = 0,
    BugStillThere = 1,
    Usage = 2,
}

/// A command's result: an exit code, or an error that becomes a one-line message and exit 2.
pub type CmdResult = anyhow::Result<Exit>;

/// Prints an error as `bughunt: <context>: <cause>` on one line and maps the result to a code.
pub fn report(result: CmdResult) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(code as u8),
        // Piped into `head` or `grep -q`, the reader may leave before we finish: that is no
        // error of anyone's, so bughunt ends quietly.
        Err(error)
            if error.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            let chain: Vec<String> = error.chain().map(|cause| cause.to_string()).collect();
            let line = chain.join(": ").replace('\n', " ");
            let _ = writeln!(anstream::stderr(), "bughunt: {line}");
            std::process::ExitCode::from(Exit::Usage as u8)
        }
    }
}
