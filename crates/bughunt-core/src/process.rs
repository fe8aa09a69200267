//! Running a child process with a bound on its wall-clock time and on what it may print.
//!
//! The child leads a Unix session of its own (and so a process group of its own). When the
//! bound passes, or the child exits, everything still running in that session is ended:
//! `cargo test`, the test binaries it started, and whatever those started, even a process
//! that moved to a group of its own, or a grandchild that kept the output pipes open. Only
//! a process that starts a session of its own escapes, and only by trying to.
//!
//! Output is kept within bounds: the first and the last [`OutputLimit`] bytes of each pipe,
//! with a count of what was dropped between them, so code that floods standard output costs
//! memory in kilobytes, not gigabytes. Reading the pipes after the child ended is bounded too.
//!
//! If bughunt is interrupted (Ctrl-C, SIGTERM) while children run, they are ended before it
//! exits: see [`end_children_on_interrupt`].

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, Once};
use std::time::{Duration, Instant};

/// After a kill, how long to wait for the child to be reaped before giving up on it.
const REAP_BOUND: Duration = Duration::from_secs(10);

/// After the child ended, how long to wait for the readers of its pipes to finish.
const DRAIN_BOUND: Duration = Duration::from_secs(2);

/// How much of each output pipe is kept: this many bytes from its start and as many from its
/// end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimit(pub usize);

impl OutputLimit {
    /// What a check keeps: enough for any compile error and any report, 64 KiB each end.
    pub const CHECK: OutputLimit = OutputLimit(64 * 1024);
    /// What cargo's JSON messages need (a build of the whole catalog), 32 MiB each end.
    pub const CARGO_JSON: OutputLimit = OutputLimit(32 * 1024 * 1024);
}

/// What a bounded run gave.
#[derive(Debug)]
pub struct Finished {
    /// None when the bound passed and the process group was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// Bytes of standard output and standard error that were not kept.
    pub dropped_bytes: u64,
    /// The run reached its second phase (or had only one): for a check, the build was over.
    pub in_second_phase: bool,
}

impl Finished {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// The head and tail of a stream, and how much fell between them.
struct Kept {
    limit: usize,
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Kept {
    fn new(limit: OutputLimit) -> Self {
        Self {
            limit: limit.0,
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            dropped: 0,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        let room = self.limit.saturating_sub(self.head.len());
        let into_head = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..into_head]);
        bytes = &bytes[into_head..];
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(self.limit);
        if over > 0 {
            self.tail.drain(..over);
            self.dropped += over as u64;
        }
    }

    fn text(self) -> (String, u64) {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!(
                "\n[bughunt: {} bytes of output dropped here]\n",
                self.dropped
            ));
        }
        let tail: Vec<u8> = self.tail.into_iter().collect();
        text.push_str(&String::from_utf8_lossy(&tail));
        (text, self.dropped)
    }
}

/// Reads `pipe` to its end, keeping its head and tail, calling `on_line` with each complete
/// line (of the first [`OutputLimit`] bytes per line) as it comes.
fn drain(
    pipe: Option<impl Read + Send + 'static>,
    limit: OutputLimit,
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> mpsc::Receiver<(String, u64)> {
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut kept = Kept::new(limit);
        let mut line: Vec<u8> = Vec::new();
        if let Some(mut pipe) = pipe {
            let mut buffer = [0u8; 16 * 1024];
            loop {
                let read = match pipe.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => read,
                };
                let bytes = &buffer[..read];
                kept.push(bytes);
                for &byte in bytes {
                    if byte == b'\n' {
                        on_line(&String::from_utf8_lossy(&line));
                        line.clear();
                    } else if line.len() < limit.0 {
                        line.push(byte);
                    }
                }
            }
        }
        if !line.is_empty() {
            on_line(&String::from_utf8_lossy(&line));
        }
        let _ = done_tx.send(kept.text());
    });
    done_rx
}

/// The sessions of children now running, so an interrupt can end them.
static LIVE_SESSIONS: Mutex<BTreeSet<libc::pid_t>> = Mutex::new(BTreeSet::new());

/// Ends every process of the session `session`: its group first, then any member that moved
/// to a group of its own (found in /proc by its session id).
fn end_session(session: libc::pid_t) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory-safety
    // preconditions.
    unsafe {
        libc::kill(-session, libc::SIGKILL);
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: getsid(2) only reads the session id of a pid; no memory-safety
        // preconditions.
        if unsafe { libc::getsid(pid) } == session {
            // SAFETY: as above, kill(2) of one process.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Ends the children bughunt is running when it is interrupted (SIGINT, SIGTERM, SIGHUP),
/// then exits with 130. Called once by the binary at start; harmless to call again.
pub fn end_children_on_interrupt() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            end_live_children();
            restore_terminal();
            std::process::exit(130);
        });
    });
}

/// Ends every child session bughunt is running now (for a command that quits on a key, as
/// `watch` does on `q`, while a check runs in another thread).
pub fn end_live_children() {
    let sessions: Vec<libc::pid_t> = LIVE_SESSIONS
        .lock()
        .map(|live| live.iter().copied().collect())
        .unwrap_or_default();
    for session in sessions {
        end_session(session);
    }
}

/// The terminal settings to put back if bughunt is interrupted while it holds the terminal
/// in a mode of its own (`watch` reads keys one by one, without echo).
static TERMINAL_TO_RESTORE: Mutex<Option<libc::termios>> = Mutex::new(None);

/// Records `settings` of standard input to be restored on an interrupt (Some), or forgets
/// them once restored (None).
pub fn restore_terminal_on_interrupt(settings: Option<libc::termios>) {
    if let Ok(mut saved) = TERMINAL_TO_RESTORE.lock() {
        *saved = settings;
    }
}

fn restore_terminal() {
    if let Ok(saved) = TERMINAL_TO_RESTORE.lock() {
        if let Some(settings) = saved.as_ref() {
            // SAFETY: tcsetattr(3) reads one valid termios; a failure leaves the terminal
            // as it was.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, settings);
            }
        }
    }
}

/// Keeps a child's session in [`LIVE_SESSIONS`] while it runs, and ends it when dropped, so a
/// child never outlives the call that started it, however that call ends (a panic included).
struct SessionGuard(libc::pid_t);

impl SessionGuard {
    fn new(session: libc::pid_t) -> Self {
        if let Ok(mut live) = LIVE_SESSIONS.lock() {
            live.insert(session);
        }
        Self(session)
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        end_session(self.0);
        if let Ok(mut live) = LIVE_SESSIONS.lock() {
            live.remove(&self.0);
        }
    }
}

/// Runs `command` to completion or until `bound` passes, keeping [`OutputLimit::CHECK`] of
/// each pipe.
pub fn run_bounded(command: Command, bound: Duration) -> std::io::Result<Finished> {
    run_bounded_with(command, bound, OutputLimit::CHECK, |_| {})
}

/// [`run_bounded`], calling `on_stdout_line` with each line of standard output as it comes
/// (to drive a progress bar), keeping `limit` of each pipe.
pub fn run_bounded_with(
    command: Command,
    bound: Duration,
    limit: OutputLimit,
    on_stdout_line: impl FnMut(&str) + Send + 'static,
) -> std::io::Result<Finished> {
    run_phased(command, bound, None, limit, on_stdout_line)
}

/// A run in two phases, each with its own bound: building, then running what was built.
/// The second phase starts when a line of standard output contains `marker`.
#[derive(Clone, Copy, Debug)]
pub struct SecondPhase {
    pub marker: &'static str,
    pub bound: Duration,
}

/// cargo's JSON message that the build is over and the tests start.
pub const CARGO_BUILD_FINISHED: &str = "\"reason\":\"build-finished\"";

/// Runs `command` with `first` as the bound until `second`'s marker appears on standard
/// output, then `second`'s bound from that moment: a check whose build is slow on a busy
/// machine is not mistaken for code that never ends.
pub fn run_phased(
    mut command: Command,
    first: Duration,
    second: Option<SecondPhase>,
    limit: OutputLimit,
    mut on_stdout_line: impl FnMut(&str) + Send + 'static,
) -> std::io::Result<Finished> {
    let started = Instant::now();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid(2) is async-signal-safe, which is all a pre_exec hook may call; it makes
    // the child the leader of a new session and process group, both with its pid.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let session = child.id() as libc::pid_t;
    let guard = SessionGuard::new(session);
    enum Event {
        Exited(std::io::Result<ExitStatus>),
        SecondPhase,
    }
    let (events_tx, events_rx) = mpsc::sync_channel::<Event>(2);
    let marker_tx = events_tx.clone();
    let mut marker = second.map(|phase| phase.marker);
    let stdout = drain(child.stdout.take(), limit, move |line| {
        if marker.is_some_and(|m| line.contains(m)) {
            marker = None;
            let _ = marker_tx.try_send(Event::SecondPhase);
        }
        on_stdout_line(line);
    });
    let stderr = drain(child.stderr.take(), limit, |_| {});
    std::thread::spawn(move || {
        let _ = events_tx.send(Event::Exited(child.wait()));
    });
    let mut deadline = started + first;
    let mut in_second_phase = second.is_none();
    let status = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events_rx.recv_timeout(left) {
            Ok(Event::Exited(waited)) => break Some(waited?),
            Ok(Event::SecondPhase) => {
                in_second_phase = true;
                if let Some(phase) = second {
                    deadline = Instant::now() + phase.bound;
                }
            }
            Err(_) => break None,
        }
    };
    // Whatever the child left running in its session (a test binary, a grandchild holding
    // the pipes) ends with it.
    drop(guard);
    if status.is_none() {
        let _ = events_rx.recv_timeout(REAP_BOUND);
    }
    let gather = |pipe: mpsc::Receiver<(String, u64)>| {
        pipe.recv_timeout(DRAIN_BOUND).unwrap_or_else(|_| {
            (
                "[bughunt: the output pipe stayed open after the process ended; not read]\n"
                    .to_owned(),
                0,
            )
        })
    };
    let (stdout, dropped_out) = gather(stdout);
    let (stderr, dropped_err) = gather(stderr);
    Ok(Finished {
        status,
        stdout,
        stderr,
        elapsed: started.elapsed(),
        dropped_bytes: dropped_out + dropped_err,
        in_second_phase,
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
        assert_eq!(finished.dropped_bytes, 0);
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

    /// Regression: a child that exits while its own child keeps standard output open made
    /// the caller wait for that grandchild (40 s for a 10 s bound). Now the session ends with
    /// the child, grandchild included, and the verdict comes at once.
    #[test]
    fn a_grandchild_holding_the_pipe_does_not_hold_the_verdict() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 600 & echo done"]);
        let finished = run_bounded(command, Duration::from_secs(30)).unwrap();
        assert!(finished.success());
        assert_eq!(finished.stdout, "done\n");
        assert!(
            finished.elapsed < Duration::from_secs(10),
            "{:?}",
            finished.elapsed
        );
    }

    /// A process that moves to a process group of its own is still ended with the session.
    #[test]
    fn a_process_in_another_group_is_ended_too() {
        let marker = std::env::temp_dir().join(format!("bughunt-escape-{}", std::process::id()));
        let mut command = Command::new("sh");
        // `set -m` puts the background job in a group of its own; it records its pid.
        command.args([
            "-c",
            &format!("set -m; sleep 600 & echo $! > {}; exit 0", marker.display()),
        ]);
        let finished = run_bounded(command, Duration::from_secs(30)).unwrap();
        assert!(finished.success());
        let pid: libc::pid_t = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = std::fs::remove_file(&marker);
        // Wait (bounded, on a pidfd: no polling) for it to end, if it has not already.
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
        let gone = fd < 0 || {
            let mut poll = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; the descriptor is ours to close.
            let ready = unsafe { libc::poll(&mut poll, 1, 10_000) };
            unsafe { libc::close(fd) };
            ready > 0
        };
        assert!(gone, "process {pid} outlived its session");
    }

    /// A slow first phase has its own bound; the second phase's bound counts from its
    /// marker, so a long build does not eat the time of the run.
    #[test]
    fn each_phase_has_its_own_bound() {
        let phase = SecondPhase {
            marker: "built",
            bound: Duration::from_millis(300),
        };
        let mut command = Command::new("sh");
        command.args(["-c", "echo built; sleep 600"]);
        let finished = run_phased(
            command,
            Duration::from_secs(30),
            Some(phase),
            OutputLimit::CHECK,
            |_| {},
        )
        .unwrap();
        assert!(finished.timed_out() && finished.in_second_phase);
        assert!(finished.elapsed < Duration::from_secs(10));
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 600; echo built"]);
        let finished = run_phased(
            command,
            Duration::from_millis(300),
            Some(phase),
            OutputLimit::CHECK,
            |_| {},
        )
        .unwrap();
        assert!(finished.timed_out() && !finished.in_second_phase);
    }

    /// Output past the limit keeps its head and tail and says how much was dropped.
    #[test]
    fn floods_are_kept_to_head_and_tail() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo first; head -c 1000000 /dev/zero | tr '\\0' x; echo; echo last",
        ]);
        let finished =
            run_bounded_with(command, Duration::from_secs(30), OutputLimit(1024), |_| {}).unwrap();
        assert!(finished.stdout.starts_with("first\n"));
        assert!(finished.stdout.ends_with("last\n"));
        assert!(finished.stdout.contains("bytes of output dropped here"));
        assert!(finished.stdout.len() < 4 * 1024);
        assert_eq!(finished.dropped_bytes, 1_000_012 - 2 * 1024);
    }
}
