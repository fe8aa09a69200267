//! Running a child process with a bound on its wall-clock time.
//!
//! The child leads a process group of its own, so when the bound passes, the whole group is
//! killed: `cargo test` and the test binaries it started, not just cargo. Waiting is done by
//! a waiter thread and a channel with a timeout, so nothing polls or sleeps.

use std::io::{BufRead, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// After a kill, how long to wait for the child to be reaped before giving up on it.
const REAP_BOUND: Duration = Duration::from_secs(10);

/// What a bounded run gave.
#[derive(Debug)]
pub struct Finished {
    /// None when the bound passed and the process group was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn drain_lines(
    pipe: Option<impl Read + Send + 'static>,
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = String::new();
        if let Some(pipe) = pipe {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                on_line(&line);
                all.push_str(&line);
                all.push('\n');
            }
        }
        all
    })
}

/// Runs `command` to completion or until `bound` passes, capturing its output.
pub fn run_bounded(command: Command, bound: Duration) -> std::io::Result<Finished> {
    run_bounded_streaming(command, bound, |_| {})
}

/// [`run_bounded`], calling `on_stdout_line` with each line of standard output as it comes
/// (to drive a progress bar).
pub fn run_bounded_streaming(
    mut command: Command,
    bound: Duration,
    on_stdout_line: impl FnMut(&str) + Send + 'static,
) -> std::io::Result<Finished> {
    let started = Instant::now();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn()?;
    let group = child.id() as libc::pid_t;
    let stdout = drain_lines(child.stdout.take(), on_stdout_line);
    let stderr = drain(child.stderr.take());
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = match done_rx.recv_timeout(bound) {
        Ok(waited) => Some(waited?),
        Err(_) => {
            // SAFETY: kill(2) with a negative pid signals the process group we created above;
            // it has no memory-safety preconditions.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
            let _ = done_rx.recv_timeout(REAP_BOUND);
            None
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Finished {
        status,
        stdout,
        stderr,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quick command finishes with its output and status.
    #[test]
    fn captures_output() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let finished = run_bounded(command, Duration::from_secs(30)).unwrap();
        assert_eq!(finished.stdout, "out\n");
        assert_eq!(finished.stderr, "err\n");
        assert_eq!(finished.status.unwrap().code(), Some(3));
    }

    /// A command that never ends is killed at the bound, with its children.
    #[test]
    fn kills_the_group_at_the_bound() {
        let mut command = Command::new("sh");
        // The grandchild holds the pipes open: only a group kill lets the readers finish.
        command.args(["-c", "sleep 600 & sleep 600"]);
        let finished = run_bounded(command, Duration::from_millis(200)).unwrap();
        assert!(finished.timed_out());
        assert!(finished.elapsed < Duration::from_secs(30));
    }
}
