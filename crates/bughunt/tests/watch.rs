//! `bughunt watch` driven in a tmux session as a learner would drive it, the background
//! build after `start`, and `start --open`.
//!
//! tmux runs watch on a terminal of its own (a private tmux server per test); the test types
//! keys with `send-keys` and reads the screen with `capture-pane`. Every wait is a poll of
//! the screen (or of /proc, or of a file) with a deadline. Without tmux the tmux test says it
//! was skipped, and fails under CI (`CI` set), where .ci/run installs tmux.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{wait_for, POLL};

/// The bound on any wait that includes a first build of a hunt's checks (a busy CI machine).
const BUILD_BOUND: Duration = Duration::from_secs(900);
/// The bound on a wait for something watch does without building.
const SCREEN_BOUND: Duration = Duration::from_secs(60);
/// How long processes that were killed may take to be gone.
const REAP_BOUND: Duration = Duration::from_secs(5);

/// Held by each test that builds: two cargo builds at once in the shared target folder make
/// each other's artifacts look newer than what depends on them, and a check after a
/// prebuild would then rebuild for a reason that is not the prebuild's.
static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A fast std (sim) template: its checks build and run in well under a second once warm.
const TEMPLATE: &str = "visibility-timeout";

fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("shared-target")
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("bughunt")
}

fn bughunt(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .current_dir(home)
        .env("CARGO_TARGET_DIR", shared_target())
        .env("NO_COLOR", "1")
        .env("BUGHUNT_NO_PREBUILD", "1")
        .env_remove("VISUAL")
        .env_remove("EDITOR")
        .args(args)
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let output = bughunt(home, args);
    assert!(
        output.status.success(),
        "bughunt {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A new home with no dependency build (the shared target folder has them, or the first
/// check builds them).
fn new_home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init", "home", "--no-build"]);
    let home = dir.path().join("home").canonicalize().unwrap();
    (dir, home)
}

fn lib_of(home: &Path) -> PathBuf {
    let status: serde_json::Value = serde_json::from_str(&ok(home, &["status", "--json"])).unwrap();
    home.join(status["current"]["path"].as_str().unwrap())
}

/// A private tmux server with one session running a command; killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn available() -> bool {
        let found = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "tmux is not installed, and CI must run the watch test: .ci/run installs it"
            );
            eprintln!("SKIPPED: the watch test needs tmux, which is not installed here");
        }
        found
    }

    fn start(name: &str, dir: &Path, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("bughunt-test-{name}-{}", std::process::id()),
        };
        let status = tmux
            .command()
            .args([
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "140",
                "-y",
                "60",
                "-c",
            ])
            .arg(dir)
            .arg(command)
            .status()
            .unwrap();
        assert!(status.success(), "tmux could not start");
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket]);
        command
    }

    fn screen(&self) -> String {
        let output = self
            .command()
            .args(["capture-pane", "-p", "-J", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let status = self
            .command()
            .args(["send-keys", "-t", "t", keys])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn pane_pid(&self) -> libc::pid_t {
        let output = self
            .command()
            .args(["list-panes", "-t", "t", "-F", "#{pane_pid}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for_text(&self, text: &str, bound: Duration) -> String {
        wait_for(&format!("{text:?} on the screen"), bound, || {
            let screen = self.screen();
            screen.contains(text).then_some(screen)
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // The server ends with its last session; this is for a test that failed midway.
        let _ = self
            .command()
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The processes (other than this test's) in session `session` or working in `home`, each
/// as the file name of its program, then its pid.
fn processes_left(session: libc::pid_t, home: &Path) -> Vec<String> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if pid == std::process::id() as libc::pid_t {
            continue;
        }
        // SAFETY: getsid(2) only reads a process's session id.
        let in_session = unsafe { libc::getsid(pid) } == session;
        let in_home =
            std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(home));
        if in_session || in_home {
            let command = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
            let program = command.split('\0').next().unwrap_or_default();
            let program = Path::new(program)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy();
            left.push(format!("{program} (pid {pid})"));
        }
    }
    left
}

/// Issue 13's end to end: watch shows the broken hunt's verdict; saving the reference fix
/// over src/lib.rs brings the pass; `h` shows hint 2; `o` opens the file in $EDITOR and
/// watch resumes; `q` while a check runs code that never ends ends watch and every process
/// it started, and so does closing the terminal.
#[test]
fn watch_end_to_end_in_tmux() {
    if !Tmux::available() {
        return;
    }
    let _building = BUILDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (_dir, home) = new_home();
    ok(&home, &["start", TEMPLATE, "--seed", "11"]);
    let lib = lib_of(&home);
    let fixed = ok(&home, &["reveal", "--raw"]);
    let opened = home.join("opened-by-editor");
    let command = format!(
        "exec env CARGO_TARGET_DIR='{}' NO_COLOR=1 EDITOR='echo >> {}' '{}' watch --timeout 600",
        shared_target().display(),
        opened.display(),
        bin().display()
    );
    let tmux = Tmux::start("e2e", &home, &command);
    let watch_pid = tmux.pane_pid();

    // The first check builds the hunt: the broken code's verdict, in place.
    let screen = tmux.wait_for_text("The bug is still there", BUILD_BOUND);
    assert!(screen.contains("bughunt watch"), "{screen}");
    tmux.wait_for_text("[watching: save to check]", SCREEN_BOUND);

    // Save the fix: the pass appears, and the keys for after a pass.
    std::fs::write(&lib, &fixed).unwrap();
    let screen = tmux.wait_for_text("Every check passes", BUILD_BOUND);
    assert!(
        !screen.contains("The bug is still there"),
        "the screen was not cleared:\n{screen}"
    );
    tmux.wait_for_text("e explain · n next hunt", SCREEN_BOUND);

    tmux.keys("h");
    tmux.wait_for_text("Hint Level 2:", SCREEN_BOUND);

    // `o` runs $EDITOR with the file, then watch takes the terminal back.
    tmux.keys("o");
    let written = wait_for("the editor to run", SCREEN_BOUND, || {
        std::fs::read_to_string(&opened)
            .ok()
            .filter(|s| !s.is_empty())
    });
    assert_eq!(Path::new(written.trim()), lib);
    tmux.keys("h");
    tmux.wait_for_text("Hint Level 3:", SCREEN_BOUND);

    // `q` while a check runs code that never ends: watch ends, and so does everything the
    // check started (cargo, the test binary), at once, not at the check's bound.
    let hanging = fixed.replacen(
        ") -> Self {",
        ") -> Self {\n        std::thread::sleep(std::time::Duration::from_secs(3600));",
        1,
    );
    assert_ne!(
        hanging, fixed,
        "the fixed code has no constructor to hang in"
    );
    std::fs::write(&lib, &hanging).unwrap();
    tmux.wait_for_text("[checking", SCREEN_BOUND);
    wait_for("the check's test binary to run", BUILD_BOUND, || {
        processes_left(watch_pid, &home)
            .iter()
            .any(|p| p.starts_with("checks-"))
            .then_some(())
    });
    tmux.keys("q");
    wait_for("watch to exit", SCREEN_BOUND, || {
        (!Path::new(&format!("/proc/{watch_pid}")).exists()).then_some(())
    });
    // Killed processes take a moment to be reaped; nothing may be left after it.
    let deadline = Instant::now() + REAP_BOUND;
    let mut left = processes_left(watch_pid, &home);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(POLL);
        left = processes_left(watch_pid, &home);
    }
    assert!(left.is_empty(), "still running after watch quit: {left:?}");

    // The terminal closes (SIGHUP) while the first check of a new watch runs the code that
    // never ends: the same.
    let tmux = Tmux::start("hangup", &home, &command);
    let watch_pid = tmux.pane_pid();
    wait_for("the check's test binary to run", BUILD_BOUND, || {
        processes_left(watch_pid, &home)
            .iter()
            .any(|p| p.starts_with("checks-"))
            .then_some(())
    });
    drop(tmux);
    let deadline = Instant::now() + REAP_BOUND;
    let mut left = processes_left(watch_pid, &home);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(POLL);
        left = processes_left(watch_pid, &home);
    }
    assert!(
        left.is_empty(),
        "still running after the terminal closed: {left:?}"
    );
}

/// `start` builds the new hunt's checks in the background (it does not wait for them), so
/// the first check builds nothing: cargo compiles no crate for it.
#[test]
fn the_first_check_after_start_is_warm() {
    let _building = BUILDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (_dir, home) = new_home();
    let started = Instant::now();
    let output = Command::new(bin())
        .current_dir(&home)
        .env("CARGO_TARGET_DIR", shared_target())
        .env("NO_COLOR", "1")
        .env_remove("BUGHUNT_NO_PREBUILD")
        .args(["start", TEMPLATE, "--seed", "12"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let start_took = started.elapsed();
    let log = home.join(".bughunt/prebuild.log");
    let log = wait_for("the background build's log", BUILD_BOUND, || {
        std::fs::read_to_string(&log).ok()
    });
    assert!(log.contains("built in"), "{log}");
    assert!(log.contains("compiled:"), "{log}");
    let check = Command::new(bin())
        .current_dir(&home)
        .env("CARGO_TARGET_DIR", shared_target())
        .env("NO_COLOR", "1")
        .env("BUGHUNT_SHOW_BUILD", "1")
        .args(["check", "--timeout", "600"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("bughunt: build: nothing compiled (warm)"),
        "the first check after start compiled something:\n{stderr}\n(start took {start_took:?}; prebuild log:\n{log})"
    );
}

/// `start --open` runs $VISUAL (before $EDITOR) with the hunt's file; with neither set it
/// says what to do in one line and exits 2, the hunt already written.
#[test]
fn start_open_runs_the_editor() {
    let (_dir, home) = new_home();
    let marker = home.join("opened");
    let output = Command::new(bin())
        .current_dir(&home)
        .env("BUGHUNT_NO_PREBUILD", "1")
        .env("VISUAL", format!("echo >> {}", marker.display()))
        .env("EDITOR", "false")
        .args(["start", TEMPLATE, "--open"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let opened = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(Path::new(opened.trim()), lib_of(&home));

    let output = bughunt(&home, &["start", TEMPLATE, "--open"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("bughunt: neither $VISUAL nor $EDITOR is set")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}

/// Outside a terminal watch refuses in one line and points at `bughunt check`.
#[test]
fn watch_needs_a_terminal() {
    let (_dir, home) = new_home();
    ok(&home, &["start", TEMPLATE]);
    let output = bughunt(&home, &["watch"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bughunt check"), "{stderr}");
}
