//! The hunt loop under overlap, floods, interrupts and kills, as a hard-pressed user meets it:
//! an editor's watcher, an assistant and a person checking at once; code that floods its
//! output or leaves a process behind; Ctrl-C; a process killed at any moment.
//!
//! The learner's code is given a probe: a call at the top of its first `pub fn new`, which
//! does what the environment variable `BUGHUNT_PROBE` says (flood standard output, start a
//! process that holds the output pipes, or spin forever after telling the test its pid
//! through a FIFO). Without the variable it does nothing, so the same crate, built once,
//! serves every test. Every wait here has a bound.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bughunt_core::catalog::Catalog;
use bughunt_core::state::{State, StateFile};
use serde_json::Value;

/// The bound on any one command that is meant to finish.
const COMMAND_BOUND: Duration = Duration::from_secs(900);

fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("shared-target")
}

fn bughunt(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("bughunt"));
    command
        .current_dir(home)
        .env("CARGO_TARGET_DIR", shared_target())
        .env("BUGHUNT_NO_PREBUILD", "1")
        .env("NO_COLOR", "1")
        .env_remove("BUGHUNT_PROBE")
        .args(args);
    command
}

/// Runs a command to its end (bounded), returning its exit code and output.
fn run(mut command: Command) -> (Option<i32>, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = wait_bounded(&mut child, COMMAND_BOUND).expect("the command ended in time");
    (status.code(), out.join().unwrap())
}

/// Waits for `child` up to `bound` (a pidfd polled with a timeout: no sleeping).
fn wait_bounded(
    child: &mut std::process::Child,
    bound: Duration,
) -> Option<std::process::ExitStatus> {
    if exited_within(child.id() as libc::pid_t, bound) {
        child.wait().ok()
    } else {
        None
    }
}

/// Whether process `pid` ends (or is already gone) within `bound`.
fn exited_within(pid: libc::pid_t, bound: Duration) -> bool {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if fd < 0 {
        return true; // no such process
    }
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, and the descriptor is ours to close.
    let ready = unsafe { libc::poll(&mut poll, 1, bound.as_millis() as libc::c_int) };
    unsafe { libc::close(fd) };
    ready > 0
}

struct Hunt {
    _dir: tempfile::TempDir,
    home: PathBuf,
    lib: PathBuf,
    /// The code as `start` wrote it: the bug still there.
    broken: String,
}

/// A home with the message-loss hunt started and its fixed code, with the probe, in place,
/// built once.
fn probed_hunt() -> Hunt {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = run(bughunt(dir.path(), &["init", "home", "--no-build"]));
    assert_eq!(code, Some(0), "{out}");
    let home = dir.path().join("home");
    let (code, out) = run(bughunt(&home, &["start", "message-loss", "--seed", "1"]));
    assert_eq!(code, Some(0), "{out}");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join(".bughunt/state.json")).unwrap())
            .unwrap();
    let key = state["current"].as_str().unwrap();
    let lib = home
        .join(state["hunts"][key]["dir"].as_str().unwrap())
        .join("src/lib.rs");
    let broken = std::fs::read_to_string(&lib).unwrap();
    let (code, fixed) = run(bughunt(&home, &["reveal", "--raw"]));
    assert_eq!(code, Some(0));
    std::fs::write(&lib, with_probe(&fixed)).unwrap();
    let (code, out) = run(bughunt(&home, &["check", "--timeout", "600"]));
    assert_eq!(
        code,
        Some(0),
        "the fixed code with its probe passes:\n{out}"
    );
    Hunt {
        _dir: dir,
        home,
        lib,
        broken,
    }
}

const PROBE: &str = r#"
#[doc(hidden)]
pub fn reliability_probe() {
    use std::io::Write as _;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| match std::env::var("BUGHUNT_PROBE").as_deref() {
        Ok("flood") => {
            let chunk = [b'x'; 64 * 1024];
            let mut out = std::io::stdout().lock();
            for _ in 0..4_000 {
                let _ = out.write_all(&chunk);
            }
        }
        Ok("hold-pipe") => {
            let _ = std::process::Command::new("sleep").arg("600.25").spawn();
        }
        Ok(fifo) if fifo.starts_with("spin:") => {
            if let Ok(mut pipe) = std::fs::OpenOptions::new().write(true).open(&fifo[5..]) {
                let _ = writeln!(pipe, "{}", std::process::id());
            }
            loop {
                std::hint::spin_loop();
            }
        }
        _ => {}
    });
}
"#;

/// The learner's code with the probe called at the top of its first `pub fn new`.
fn with_probe(code: &str) -> String {
    let at = code
        .find("pub fn new(")
        .expect("the hunt's code has a `pub fn new` to put the probe in");
    let body = at + code[at..].find('{').expect("a body") + 1;
    format!(
        "{}\n        crate::reliability_probe();{}{PROBE}",
        &code[..body],
        &code[body..]
    )
}

/// Processes whose command line contains `needle`, other than this test's.
fn processes_with(needle: &str) -> Vec<libc::pid_t> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

/// Regression: all checks of a hunt shared one report file, so 21 of 70 overlapping checks of
/// a correct fix said "bug still there" or "stopped before reporting". Four checks at once of
/// a correct fix now all pass, ten rounds running; of a broken one, all fail.
#[test]
fn overlapping_checks_each_get_their_verdict() {
    let hunt = probed_hunt();
    let at_once = |expected: i32| {
        let children: Vec<std::process::Child> = (0..4)
            .map(|_| {
                bughunt(&hunt.home, &["check", "--timeout", "600"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert_eq!(
                output.status.code(),
                Some(expected),
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    };
    for _ in 0..10 {
        at_once(0);
    }
    std::fs::write(&hunt.lib, with_probe(&hunt.broken)).unwrap();
    for _ in 0..10 {
        at_once(1);
    }
    let left: Vec<String> = std::fs::read_dir(hunt.home.join(".bughunt/reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left.len(),
        1,
        "one last report, no run's file left behind: {left:?}"
    );
}

/// Regression: code writing to fd 1 in a loop grew bughunt to 1.9 GB. A flood of 250 MB now
/// costs it kilobytes: the peak memory of bughunt and of every process it waited for (cargo,
/// the checks) stays under 100 MB.
#[test]
fn a_flood_of_output_stays_bounded() {
    let hunt = probed_hunt();
    let mut command = bughunt(&hunt.home, &["check", "--timeout", "600"]);
    command
        .env("BUGHUNT_PROBE", "flood")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = command.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    assert!(exited_within(pid, COMMAND_BOUND));
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 reaps our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid);
    let peak_mb = usage.ru_maxrss / 1024;
    assert!(peak_mb < 100, "peak memory {peak_mb} MB");
    std::mem::forget(child);
}

/// A check whose code leaves a process holding the output pipes gets its verdict within
/// `--timeout` + 2 s, and the process is ended with it.
#[test]
fn a_process_holding_the_pipe_does_not_hold_the_verdict() {
    let hunt = probed_hunt();
    let timeout = 20;
    let started = Instant::now();
    let mut command = bughunt(&hunt.home, &["check", "--timeout", &timeout.to_string()]);
    command.env("BUGHUNT_PROBE", "hold-pipe");
    let (code, out) = run(command);
    let elapsed = started.elapsed();
    assert!(code.is_some(), "{out}");
    assert!(
        elapsed < Duration::from_secs(timeout + 2),
        "the verdict took {elapsed:?}"
    );
    assert_eq!(processes_with("600.25"), Vec::<libc::pid_t>::new());
}

/// Ctrl-C in the middle of a check ends it, and within 2 s no process of the check is left:
/// not cargo, not the test binary spinning at 100% CPU.
#[test]
fn an_interrupt_leaves_no_process_behind() {
    let hunt = probed_hunt();
    let fifo = hunt.home.join("probe.fifo");
    let path = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: a valid C string and a mode.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let mut command = bughunt(&hunt.home, &["check", "--timeout", "600"]);
    command
        .env("BUGHUNT_PROBE", format!("spin:{}", fifo.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    // Opening the FIFO waits for the probe to open it: the checks are running.
    let mut said = String::new();
    std::fs::File::open(&fifo)
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    let spinning: libc::pid_t = said.trim().parse().unwrap();
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = wait_bounded(&mut child, Duration::from_secs(10)).expect("bughunt ends");
    assert!(
        status.code() == Some(130) || status.signal().is_some(),
        "{status:?}"
    );
    assert!(
        exited_within(spinning, Duration::from_secs(2)),
        "the test binary (pid {spinning}) still runs 2 s after Ctrl-C"
    );
}

/// Killed at random moments (a fixed sequence) during start, check, hint and explain, the
/// home stays whole: the state loads and is in range, progress never goes back, and the
/// memory bank never shows more than the state holds (regression: a kill between the two
/// renames left the bank showing a pass the state lacked).
#[test]
fn random_kills_lose_no_progress() {
    let hunt = probed_hunt();
    let catalog = Catalog::embedded().unwrap();
    let file = StateFile::of_home(&hunt.home);
    let answers = hunt.home.join("answers.txt");
    std::fs::write(&answers, "because\n---\nit holds\n---\na crash test\n").unwrap();
    let answers = answers.to_string_lossy().into_owned();
    let commands: [&[&str]; 4] = [
        &["start", "message-loss", "--seed", "1"],
        &["check", "--timeout", "600"],
        &["hint"],
        &["explain", "--answers", &answers, "--no-pattern"],
    ];
    let block = |state: &State| bughunt_core::memory::progress_block(&catalog, state);
    let bank = || {
        std::fs::read_to_string(hunt.home.join("memory-bank/activeContext.md")).unwrap_or_default()
    };
    let mut before = file.load().unwrap();
    let mut seen = vec![block(&before)];
    // A fixed sequence of delays (a linear congruential generator from a fixed seed).
    let mut seed: u64 = 0x5eed;
    for round in 0..50 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // Spread over the command's own length: start, hint and explain take tens of
        // milliseconds, a check about a second.
        let command = commands[round % commands.len()];
        let span_ms = if command[0] == "check" { 1_500 } else { 60 };
        let delay = Duration::from_millis((seed >> 33) % span_ms);
        let mut child = bughunt(&hunt.home, command)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if wait_bounded(&mut child, delay).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let after = file
            .load()
            .unwrap_or_else(|error| panic!("round {round}: the state does not load: {error:#}"));
        for (key, was) in &before.hunts {
            let now = &after.hunts[key];
            assert!(
                now.checks_run >= was.checks_run,
                "round {round}: checks_run went back"
            );
            assert!(now.passed || !was.passed, "round {round}: a pass was lost");
            assert!(
                now.hints_revealed >= was.hints_revealed,
                "round {round}: a hint was lost"
            );
        }
        // A kill between the state's write and the bank's leaves the bank behind, until the
        // next command that completes; never ahead: it shows a state the home has been in.
        seen.push(block(&after));
        let shown = bank();
        assert!(
            shown.is_empty() || seen.iter().any(|block| shown.contains(block)),
            "round {round} ({command:?}): the memory bank shows a state the home was never in:\n{shown}\n--- the state's block:\n{}\n--- before:\n{}",
            block(&after),
            block(&before)
        );
        before = after;
    }
    // One more command after the last kill brings the bank up to the state, and leaves no
    // temporary file behind.
    let (code, out) = run(bughunt(&hunt.home, &["hint"]));
    assert_eq!(code, Some(0), "{out}");
    assert!(bank().contains(&block(&file.load().unwrap())));
    let stray: Vec<String> = std::fs::read_dir(hunt.home.join(".bughunt"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".tmp"))
        .collect();
    assert_eq!(stray, Vec::<String>::new());
}
