//! The hunt loop, driven through the built binary in temporary homes, as a learner would.
//!
//! Every home shares one cargo target folder (CARGO_TARGET_DIR), so the dependencies the
//! checks use are compiled once for the whole test run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use bughunt_core::catalog::{Catalog, Template};
use serde_json::Value;

const FAMILIES: [&str; 5] = [
    "message-loss",
    "duplicate-delivery",
    "consumer-starvation",
    "persistence",
    "shutdown-leak",
];

/// The bound on any one command in these tests.
const COMMAND_BOUND: Duration = Duration::from_secs(900);

fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("shared-target")
}

fn bughunt_in(dir: &Path) -> Command {
    let mut command = Command::cargo_bin("bughunt").unwrap();
    command
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .env("BUGHUNT_NO_PREBUILD", "1")
        .env("NO_COLOR", "1")
        .timeout(COMMAND_BOUND);
    command
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, args: &[&str]) -> Run {
    let output = bughunt_in(dir).args(args).output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let result = run(dir, args);
    assert_eq!(
        result.code,
        Some(0),
        "bughunt {args:?} failed:\n{}\n{}",
        result.stdout,
        result.stderr
    );
    result.stdout
}

/// A new home; `build` runs init's dependency build (else the first check builds).
fn new_home(build: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["init", "home"];
    if !build {
        args.push("--no-build");
    }
    ok(dir.path(), &args);
    dir
}

fn home_of(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("home")
}

fn catalog() -> Catalog {
    Catalog::embedded().unwrap()
}

fn first_of<'a>(catalog: &'a Catalog, category: &str) -> &'a Template {
    catalog.in_category(category)[0]
}

fn state(home: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(home.join(".bughunt/state.json")).unwrap())
        .unwrap()
}

fn report(home: &Path, key: &str) -> Value {
    let path = home.join(format!(".bughunt/reports/{}.json", key.replace('/', "-")));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn first_failure(report: &Value) -> String {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["status"] == "failed" || s["status"] == "running")
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// For each of the five seed families, in one home: start shows only hint 1; the check fails
/// at the broken form's stage (exit 1); explain refuses before a pass; hints come in order;
/// the reference fix passes (exit 0); explain explains; status counts the category done.
/// Commands run from inside the hunt's folder, not only from the home's root.
#[test]
fn whole_loop_for_each_seed_family() {
    let dir = new_home(true);
    let home = home_of(&dir);
    let catalog = catalog();
    for family in FAMILIES {
        let template = first_of(&catalog, family);
        let id = template.id();
        let site = template.first_site();
        let started = ok(&home, &["start", family, "--seed", "7"]);
        assert!(started.contains("🔴 BUG HUNT:"), "{started}");
        let hint_one = &template.hints_for(site, 7)[0];
        assert!(started.contains(
            &hint_one
                .split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ")
        ));
        assert!(
            !started.contains("Hint Level 2"),
            "only hint 1 at start:\n{started}"
        );

        let status: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
        let lib = home.join(status["current"]["path"].as_str().unwrap());
        assert_eq!(status["current"]["id"], id);
        assert_eq!(status["current"]["site"], site.id.as_str());
        assert_eq!(status["current"]["seed"], 7);
        let key = format!("{id}/{}", site.id);
        let source = std::fs::read_to_string(&lib).unwrap();
        assert!(source.starts_with("// 🔴 BUG HUNT: "));
        assert!(source.contains("// Difficulty: "));
        assert!(source.contains("// Hint Level 1: "));
        assert!(!source.contains("Hint Level 2"));
        let hunt_dir = lib.parent().unwrap().parent().unwrap().to_owned();

        let failing = run(&hunt_dir, &["check", "--timeout", "600", "--html"]);
        assert_eq!(
            failing.code,
            Some(1),
            "{family}: the broken form must fail:\n{}\n{}",
            failing.stdout,
            failing.stderr
        );
        // `--html`: the page is in the home's pages folder, its path the last line printed.
        let page = home.join(format!(".bughunt/pages/check-{id}-{}.html", site.id));
        let printed = Path::new(failing.stdout.lines().last().unwrap());
        assert_eq!(
            printed.canonicalize().unwrap(),
            page.canonicalize().unwrap()
        );
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(html.contains("The bug is still there.") && html.contains("class=\"failed\""));
        assert_eq!(
            first_failure(&report(&home, &key)),
            site.fails_at,
            "{family}"
        );
        assert!(failing.stdout.contains('✗'), "{}", failing.stdout);
        assert!(
            failing.stdout.contains("The bug is still there"),
            "{}",
            failing.stdout
        );

        let refused = run(&hunt_dir, &["explain"]);
        assert_eq!(refused.code, Some(1), "explain before a pass refuses");
        assert!(refused.stdout.contains("Not yet"));
        assert!(
            !refused.stdout.contains("WHAT'S WRONG"),
            "no spoilers before a pass"
        );

        let second = ok(&hunt_dir, &["hint"]);
        assert!(second.contains("Hint Level 2:") && !second.contains("Hint Level 3:"));

        std::fs::write(&lib, template.fixed_rs(7)).unwrap();
        let passing = run(&hunt_dir, &["check", "--timeout", "600"]);
        assert_eq!(
            passing.code,
            Some(0),
            "{family}: the reference fix must pass:\n{}\n{}",
            passing.stdout,
            passing.stderr
        );
        assert!(passing.stdout.contains("Every check passes"));

        let explained = ok(&hunt_dir, &["explain"]);
        assert!(explained.contains("WHAT'S WRONG:") && explained.contains("TRADEOFF:"));
        assert!(explained.contains(
            &bughunt_core::generate::variant(template, 7)
                .apply(&template.meta.explanation.headline)
        ));

        let status: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
        let category = status["categories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == family)
            .unwrap()
            .clone();
        assert!(category["done"].as_u64().unwrap() >= 1, "{category}");
        assert_eq!(status["current"]["passed"], true);
        let text = ok(&home, &["status"]);
        assert!(text.contains("## Bug Hunt Progress"));
    }
    let state = state(&home);
    assert_eq!(state["hunts"].as_object().unwrap().len(), FAMILIES.len());
    assert!(state["hunts"]
        .as_object()
        .unwrap()
        .values()
        .all(|h| h["passed"] == true));
}

/// A shuttle hunt's failing check tells the failing schedule step by step: every step names a
/// line of the learner's file, with that line's code, and the page prints the steps.
#[test]
fn a_failing_schedule_names_the_learners_lines() {
    let steps = failing_steps("race-conditions", "step by step");
    let threads: std::collections::BTreeSet<&str> = steps
        .iter()
        .map(|s| s["thread"].as_str().unwrap())
        .collect();
    assert!(threads.len() >= 2, "one thread cannot race: {steps:?}");
}

/// A loom hunt's failing check tells the failing execution the same way, and each step says
/// what it read or wrote: the stale read of the payload, 0, is one of them.
#[test]
fn a_failing_execution_says_what_each_step_read() {
    let steps = failing_steps("memory-ordering", "what it read or wrote");
    assert!(
        steps.iter().all(|s| s["effect"].is_string()),
        "a step without what it read or wrote: {steps:?}"
    );
    assert!(
        steps.iter().any(|s| s["effect"] == "read 0"),
        "the stale read is not told: {steps:?}"
    );
    let threads: std::collections::BTreeSet<&str> = steps
        .iter()
        .map(|s| s["thread"].as_str().unwrap())
        .collect();
    assert!(threads.contains("producer"), "{steps:?}");
}

/// Starts the first hunt of `family` (seed 7), checks it unchanged, and returns the steps of
/// its failing stage, each asserted to name a line of the learner's file with that line's
/// code; `check` must print the steps under a heading containing `heading`.
fn failing_steps(family: &str, heading: &str) -> Vec<Value> {
    let dir = new_home(false);
    let home = home_of(&dir);
    let catalog = catalog();
    let template = first_of(&catalog, family);
    let site = template.first_site();
    ok(&home, &["start", family, "--seed", "7"]);
    let failing = run(&home, &["check", "--timeout", "600"]);
    assert_eq!(
        failing.code,
        Some(1),
        "{}\n{}",
        failing.stdout,
        failing.stderr
    );
    let key = format!("{}/{}", template.id(), site.id);
    let report = report(&home, &key);
    let stage = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["status"] == "failed")
        .unwrap()
        .clone();
    let steps = stage["steps"].as_array().cloned().unwrap_or_default();
    assert!(steps.len() >= 2, "no steps in {stage}");
    let status: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
    let lib = home.join(status["current"]["path"].as_str().unwrap());
    let source = std::fs::read_to_string(&lib).unwrap();
    let lines: Vec<&str> = source.lines().collect();
    for step in &steps {
        assert_eq!(step["file"], "src/lib.rs", "{step}");
        let line = step["line"].as_u64().unwrap() as usize;
        assert_eq!(step["code"], lines[line - 1].trim(), "{step}");
    }
    assert!(
        failing.stdout.contains("step by step") && failing.stdout.contains(heading),
        "{}",
        failing.stdout
    );
    steps
}

/// Hints: two more after hint 1, then a fourth request says there is no more and points to
/// reveal. Reveal records the reveal; `--raw` prints only the source; explain then works.
#[test]
fn hints_run_out_and_reveal_is_recorded() {
    let dir = new_home(false);
    let home = home_of(&dir);
    let catalog = catalog();
    let template = first_of(&catalog, "message-loss");
    let site = template.first_site();
    let key = format!("{}/{}", template.id(), site.id);
    ok(&home, &["start", template.id(), "--seed", "3"]);
    assert!(ok(&home, &["hint"]).contains("Hint Level 2:"));
    let third = ok(&home, &["hint"]);
    let hint_three = &template.hints_for(site, 3)[2];
    assert!(third.contains(
        &hint_three
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let fourth = ok(&home, &["hint"]);
    assert!(
        fourth.contains("last hint") && fourth.contains("bughunt reveal"),
        "{fourth}"
    );
    assert_eq!(state(&home)["hunts"][&key]["hints_revealed"], 3);

    let raw = ok(&home, &["reveal", "--raw"]);
    assert_eq!(
        raw,
        template.fixed_rs(3),
        "--raw prints the fixed source and nothing else"
    );
    assert_eq!(state(&home)["hunts"][&key]["revealed"], true);
    assert!(ok(&home, &["explain"]).contains("WHAT'S WRONG:"));
}

/// Editing or deleting the tests never makes a check pass: they are restored first.
#[test]
fn blanking_the_tests_does_not_pass() {
    let dir = new_home(false);
    let home = home_of(&dir);
    let catalog = catalog();
    let template = first_of(&catalog, "persistence");
    ok(&home, &["start", template.id()]);
    let status: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
    let lib = home.join(status["current"]["path"].as_str().unwrap());
    let tests = lib
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("tests/checks.rs");

    std::fs::write(&tests, "#[test]\nfn checks() {}\n").unwrap();
    let blanked = run(&home, &["check", "--timeout", "600"]);
    assert_eq!(
        blanked.code,
        Some(1),
        "{}\n{}",
        blanked.stdout,
        blanked.stderr
    );
    assert!(blanked.stdout.contains("restored"), "{}", blanked.stdout);
    let seed = status["current"]["seed"].as_u64().unwrap();
    assert_eq!(
        std::fs::read_to_string(&tests).unwrap(),
        template.checks_for(seed)
    );

    std::fs::remove_file(&tests).unwrap();
    let deleted = run(&home, &["check", "--timeout", "600"]);
    assert_eq!(deleted.code, Some(1));
    assert_eq!(
        std::fs::read_to_string(&tests).unwrap(),
        template.checks_for(seed)
    );
}

/// Learner code that never returns gets a failed verdict (exit 1) within the bound, with
/// the whole process group killed, and never a tool error.
#[test]
fn code_that_loops_forever_fails_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    // Its own target folder, so no other test's build holds the lock while the bound runs.
    let own_target = dir.path().join("target");
    let home = dir.path().join("home");
    let with_target = |args: &[&str]| {
        let output = bughunt_in(dir.path())
            .current_dir(if home.exists() {
                home.as_path()
            } else {
                dir.path()
            })
            .env("CARGO_TARGET_DIR", &own_target)
            .env("BUGHUNT_NO_PREBUILD", "1")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, _) = with_target(&["init", "home", "--no-build"]);
    assert_eq!(code, Some(0));
    let catalog = catalog();
    let template = first_of(&catalog, "message-loss");
    with_target(&["start", template.id(), "--seed", "0"]);
    // A first check builds everything, so the bound below is spent on the loop.
    let (code, first) = with_target(&["check", "--timeout", "600"]);
    assert_eq!(code, Some(1), "{first}");

    let fixed = template.fixed_rs(0);
    let looping = fixed.replacen(
        "pub fn receive(&mut self) -> Option<Message> {",
        "pub fn receive(&mut self) -> Option<Message> {\n        loop {\n            std::hint::spin_loop();\n        }\n        #[allow(unreachable_code)]",
        1,
    );
    assert_ne!(looping, fixed, "the template's receive() signature changed");
    let lib = home.join(format!(
        "hunts/01-visibility-timeout-{}/src/lib.rs",
        template.first_site().id
    ));
    std::fs::write(&lib, looping).unwrap();
    let started = Instant::now();
    let (code, page) = with_target(&["check", "--timeout", "20"]);
    assert_eq!(code, Some(1), "{page}");
    assert!(page.contains("did not finish within 20 s"), "{page}");
    assert!(
        page.contains("deadlock or a task that never exits"),
        "{page}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the bound was not kept"
    );
}

/// Two checks at once both finish, and leave a valid state that counts both.
#[test]
fn concurrent_checks_leave_a_valid_state() {
    let dir = new_home(false);
    let home = home_of(&dir);
    ok(&home, &["start", "duplicate-delivery"]);
    let spawn = || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("bughunt"))
            .current_dir(&home)
            .env("CARGO_TARGET_DIR", shared_target())
            .env("BUGHUNT_NO_PREBUILD", "1")
            .env("NO_COLOR", "1")
            .args(["check", "--timeout", "600"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = spawn();
    let mut second = spawn();
    assert_eq!(first.wait().unwrap().code(), Some(1));
    assert_eq!(second.wait().unwrap().code(), Some(1));
    let state = state(&home);
    let key = state["current"].as_str().unwrap().to_owned();
    assert!(key.starts_with("idempotent-consumer/"), "{key}");
    assert_eq!(state["hunts"][&key]["checks_run"], 2);
}

/// Regression: a `build.rs` in a hunt folder (no manifest named it, cargo picked it up) could
/// rewrite the tests after bughunt restored them, and a `.cargo/config.toml` in the home
/// could swap the test runner. `check` now refuses both, naming the file, and the manifests
/// say `build = false`.
#[test]
fn files_cargo_reads_that_bughunt_did_not_write_are_refused() {
    let dir = new_home(false);
    let home = home_of(&dir);
    ok(&home, &["start", "message-loss"]);
    let state = state(&home);
    let key = state["current"].as_str().unwrap().to_owned();
    let hunt = home.join(state["hunts"][&key]["dir"].as_str().unwrap());
    assert!(std::fs::read_to_string(hunt.join("Cargo.toml"))
        .unwrap()
        .contains("build = false"));
    std::fs::write(hunt.join("build.rs"), "fn main() {}\n").unwrap();
    let refused = run(&home, &["check"]);
    assert_eq!(refused.code, Some(2), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("build.rs can change how cargo"),
        "{}",
        refused.stderr
    );
    std::fs::remove_file(hunt.join("build.rs")).unwrap();
    std::fs::create_dir_all(home.join(".cargo")).unwrap();
    std::fs::write(
        home.join(".cargo/config.toml"),
        "[target.x86_64-unknown-linux-gnu]\nrunner = \"true\"\n",
    )
    .unwrap();
    let refused = run(&home, &["check"]);
    assert_eq!(refused.code, Some(2));
    assert!(
        refused.stderr.contains(".cargo/config.toml"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains(".off"), "{}", refused.stderr);
}

/// Regressions from hand-edited and half-lost state: `hints_revealed` above 3 made `hint`
/// panic; a hunt `dir` of `../x` made `start` write outside the home; with only
/// `state.json.bak` left, every command said "not in a bughunt home". Each is now a one-line
/// error naming the field or the backup, exit 2, and nothing is written.
#[test]
fn hand_edited_state_is_refused_with_the_field_named() {
    let dir = new_home(false);
    let home = home_of(&dir);
    ok(&home, &["start", "message-loss"]);
    let path = home.join(".bughunt/state.json");
    let good = std::fs::read_to_string(&path).unwrap();
    let mut state: Value = serde_json::from_str(&good).unwrap();
    let key = state["current"].as_str().unwrap().to_owned();

    state["hunts"][&key]["hints_revealed"] = 7.into();
    std::fs::write(&path, serde_json::to_string(&state).unwrap()).unwrap();
    let refused = run(&home, &["hint"]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("hints_revealed` is 7"),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(!refused.stderr.contains("panicked"));

    state["hunts"][&key]["hints_revealed"] = 1.into();
    state["hunts"][&key]["dir"] = "../escaped".into();
    let edited = serde_json::to_string(&state).unwrap();
    std::fs::write(&path, &edited).unwrap();
    let refused = run(&home, &["start", "message-loss", "--fresh"]);
    assert_eq!(refused.code, Some(2));
    assert!(
        refused.stderr.contains("inside the home"),
        "{}",
        refused.stderr
    );
    assert!(!dir.path().join("escaped").exists());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);

    std::fs::write(home.join(".bughunt/state.json.bak"), &good).unwrap();
    std::fs::remove_file(&path).unwrap();
    for args in [&["status"][..], &["init", "."][..]] {
        let refused = run(&home, args);
        assert_eq!(refused.code, Some(2));
        assert!(
            refused.stderr.contains("state.json.bak"),
            "{}",
            refused.stderr
        );
        assert!(refused.stderr.contains("cp "), "{}", refused.stderr);
    }
}

/// Regression: a `lib.rs` that is not UTF-8 was replaced by the starting code on resume,
/// with no copy. Resuming leaves the learner's bytes as they are.
#[test]
fn resume_keeps_a_file_that_is_not_utf8() {
    let dir = new_home(false);
    let home = home_of(&dir);
    ok(&home, &["start", "message-loss"]);
    let state = state(&home);
    let key = state["current"].as_str().unwrap().to_owned();
    let lib = home
        .join(state["hunts"][&key]["dir"].as_str().unwrap())
        .join("src/lib.rs");
    let bytes = b"// caf\xe9 latin-1, not UTF-8\n".to_vec();
    std::fs::write(&lib, &bytes).unwrap();
    ok(&home, &["start", "duplicate-delivery"]);
    ok(&home, &["start", "message-loss"]);
    assert_eq!(std::fs::read(&lib).unwrap(), bytes);
}

/// `--timeout 0` is refused with the range, not silently taken as 1 s.
#[test]
fn a_zero_timeout_is_refused() {
    let dir = new_home(false);
    let home = home_of(&dir);
    ok(&home, &["start", "message-loss"]);
    let refused = run(&home, &["check", "--timeout", "0"]);
    assert_eq!(refused.code, Some(2));
    assert!(refused.stderr.contains("1..=86400"), "{}", refused.stderr);
}

/// Regression: piped into a reader that leaves early (`head -c 1`), bughunt printed
/// "Broken pipe (os error 32)". It now ends quietly.
#[test]
fn a_closed_pipe_ends_quietly() {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bughunt"))
        .args(["list"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A corrupted state file gives one line naming the file and the way back, exit 2, and is
/// left as it was.
#[test]
fn corrupted_state_gives_a_one_line_error() {
    let dir = new_home(false);
    let home = home_of(&dir);
    ok(&home, &["start", "message-loss"]);
    let path = home.join(".bughunt/state.json");
    std::fs::write(&path, "{ \"format\": 1, \"hunts\": ").unwrap();
    for args in [&["status"][..], &["check"], &["hint"], &["start"]] {
        let result = run(&home, args);
        assert_eq!(result.code, Some(2), "{args:?}");
        assert_eq!(result.stderr.lines().count(), 1, "{}", result.stderr);
        assert!(result.stderr.starts_with("bughunt: "), "{}", result.stderr);
        assert!(
            result
                .stderr
                .contains("state.json is not a valid state file"),
            "{}",
            result.stderr
        );
        assert!(
            result.stderr.contains("state.json.bak"),
            "{}",
            result.stderr
        );
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{ \"format\": 1, \"hunts\": "
    );
}

/// Outside a home every hunt command exits 2 and says to run `bughunt init`; init refuses a
/// folder that is not empty and not a home.
#[test]
fn outside_a_home() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["status"][..],
        &["start"],
        &["hint"],
        &["check"],
        &["reveal"],
        &["explain"],
    ] {
        let result = run(dir.path(), args);
        assert_eq!(result.code, Some(2), "{args:?}");
        assert!(
            result
                .stderr
                .contains("not in a bughunt home; run `bughunt init`"),
            "{}",
            result.stderr
        );
    }
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let refused = run(dir.path(), &["init", ".", "--no-build"]);
    assert_eq!(refused.code, Some(2));
    assert!(refused
        .stderr
        .contains("is not empty and is not a bughunt home"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(!dir.path().join(".bughunt").exists());
}

/// Starting another hunt keeps the first; starting it again resumes it untouched; `--fresh`
/// restarts it and keeps the learner's file in .bughunt/attempts.
#[test]
fn start_resumes_and_fresh_restarts() {
    let dir = new_home(false);
    let home = home_of(&dir);
    ok(&home, &["start", "message-loss"]);
    let status: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
    let lib = home.join(status["current"]["path"].as_str().unwrap());
    let site = status["current"]["site"].as_str().unwrap().to_owned();
    let mine = "// my attempt\n";
    std::fs::write(&lib, mine).unwrap();
    ok(&home, &["start", "persistence"]);
    let resumed = ok(&home, &["start", "message-loss"]);
    assert!(resumed.contains("Back to"), "{resumed}");
    assert_eq!(std::fs::read_to_string(&lib).unwrap(), mine);
    let restarted = ok(&home, &["start", "message-loss", "--fresh"]);
    let kept = format!(".bughunt/attempts/visibility-timeout-{site}/lib-1.rs");
    assert!(restarted.contains(&kept), "{restarted}");
    assert_eq!(std::fs::read_to_string(home.join(&kept)).unwrap(), mine);
    assert!(std::fs::read_to_string(&lib)
        .unwrap()
        .starts_with("// 🔴 BUG HUNT:"));
}

/// Without an id, start follows the curriculum: the first unsolved template, week 1 first.
#[test]
fn start_without_id_follows_the_curriculum() {
    let dir = new_home(false);
    let home = home_of(&dir);
    ok(&home, &["start"]);
    let status: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
    let catalog = catalog();
    let current = catalog
        .template(status["current"]["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        current.meta.week,
        catalog.templates.iter().map(|t| t.meta.week).min().unwrap()
    );
    // The next challenge may be another bug site of the same template; it is named.
    assert!(status["next"]["id"].is_string(), "{status}");
    assert_eq!(status["current"]["site"], current.first_site().id.as_str());
}

/// The same seed writes the same bytes; another seed writes visibly different code that
/// teaches the same lesson (same checks pass on its fix).
#[test]
fn seeds_are_reproducible_and_vary_the_code() {
    let written = |seed: &str| {
        let dir = new_home(false);
        let home = home_of(&dir);
        ok(&home, &["start", "message-loss", "--seed", seed]);
        let status: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
        std::fs::read(home.join(status["current"]["path"].as_str().unwrap())).unwrap()
    };
    let one = written("1");
    assert_eq!(one, written("1"), "the same seed must write the same bytes");
    assert_ne!(one, written("2"), "two seeds must write different code");
}

/// After a pass, `challenge` starts a bug site of the same category not solved yet; before
/// a pass it refuses (exit 1).
#[test]
fn challenge_follows_a_pass() {
    let dir = new_home(false);
    let home = home_of(&dir);
    let catalog = catalog();
    ok(&home, &["start", "message-loss", "--seed", "4"]);
    let early = run(&home, &["challenge"]);
    assert_eq!(early.code, Some(1), "{}", early.stdout);
    assert!(early.stdout.contains("Not yet"));
    let status: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
    let lib = home.join(status["current"]["path"].as_str().unwrap());
    let template = catalog
        .template(status["current"]["id"].as_str().unwrap())
        .unwrap();
    std::fs::write(&lib, template.fixed_rs(4)).unwrap();
    assert_eq!(run(&home, &["check", "--timeout", "600"]).code, Some(0));
    let first_site = status["current"]["site"].as_str().unwrap().to_owned();
    let challenged = ok(&home, &["challenge"]);
    assert!(challenged.contains("similar but different"), "{challenged}");
    let after: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
    assert_eq!(after["current"]["category"], "message-loss");
    assert_ne!(after["current"]["site"].as_str().unwrap(), first_site);
}

/// Regression: cargo names a path crate's artifacts after its path inside the workspace, so
/// two homes sharing a CARGO_TARGET_DIR built `hunts/01-...` into the same files and a check
/// could run the other home's code (a broken form passed). Each home's hunt crates now carry
/// the home's id: the broken home fails and the fixed home passes, checked at once.
#[test]
fn two_homes_sharing_a_target_never_mix() {
    let catalog = catalog();
    let template = first_of(&catalog, "message-loss");
    let (broken_dir, fixed_dir) = (new_home(false), new_home(false));
    let (broken_home, fixed_home) = (home_of(&broken_dir), home_of(&fixed_dir));
    for home in [&broken_home, &fixed_home] {
        ok(home, &["start", template.id(), "--seed", "1"]);
    }
    let status: Value = serde_json::from_str(&ok(&fixed_home, &["status", "--json"])).unwrap();
    let lib = fixed_home.join(status["current"]["path"].as_str().unwrap());
    std::fs::write(&lib, template.fixed_rs(1)).unwrap();
    let manifest = |home: &Path| {
        std::fs::read_to_string(
            lib.strip_prefix(&fixed_home)
                .map(|l| home.join(l))
                .unwrap()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("Cargo.toml"),
        )
        .unwrap()
    };
    assert_ne!(
        manifest(&broken_home),
        manifest(&fixed_home),
        "package names must differ"
    );
    let spawn = |home: &Path| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("bughunt"))
            .current_dir(home)
            .env("CARGO_TARGET_DIR", shared_target())
            .env("BUGHUNT_NO_PREBUILD", "1")
            .args(["check", "--timeout", "600"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut broken = spawn(&broken_home);
    let mut fixed = spawn(&fixed_home);
    assert_eq!(
        broken.wait().unwrap().code(),
        Some(1),
        "the broken home must fail"
    );
    assert_eq!(
        fixed.wait().unwrap().code(),
        Some(0),
        "the fixed home must pass"
    );
}
