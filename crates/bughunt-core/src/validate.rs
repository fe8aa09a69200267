//! `bughunt dev validate`: proving every template with cargo, as a learner's crate would be.
//!
//! For each template, each of its forms becomes a real hunt crate in one Cargo workspace:
//! the broken form, the fixed form and every listed wrong fix. The crates are built with
//! cargo (one build: each checker has its own copy of the kit, so features never unify
//! across crates), then each crate's check binary runs with a wall-clock bound and writes its JSON
//! report. A template holds when every bug site's broken form fails at its `fails_at` stage
//! for every seed validated, each wrong fix
//! fails at its stage, and its fixed form passes every stage.
//!
//! The workspace persists between runs (files are rewritten only when they change), so a
//! second validation only rebuilds what changed. A lock file keeps two validations from
//! sharing one workspace at once.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bughunt_kit::report::{CheckReport, Status, REPORT_ENV};
use indicatif::{ProgressBar, ProgressStyle};

use crate::catalog::{Checker, Template};
use crate::huntcrate::{self, LOCKFILE};
use crate::process::{run_bounded, run_bounded_with, Finished, OutputLimit};

/// The longest a cargo build of one checker group may take.
pub const BUILD_BOUND: Duration = Duration::from_secs(1_800);

/// What an instance is expected to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Fail, first at this stage.
    FailsAt(String),
    /// Pass every stage.
    Passes,
}

/// One crate to build and check: a form of an instance of a template.
#[derive(Clone, Debug)]
pub struct Instance {
    pub template: String,
    /// `fixed`, `broken: <site>`, `wrong: <name>` or `alt: <name>`.
    pub form: String,
    /// The seed its names and constants come from (0: as written).
    pub seed: u64,
    pub package: String,
    pub checker: Checker,
    pub expect: Expect,
    /// The stages its report must list, in order.
    pub stage_ids: Vec<String>,
    lib_rs: String,
    checks_rs: String,
}

impl Instance {
    /// "visibility-timeout (broken: pop-on-receive, seed 2)"
    pub fn name(&self) -> String {
        format!("{} ({}, seed {})", self.template, self.form, self.seed)
    }
}

/// What became of one instance.
#[derive(Debug)]
pub struct Outcome {
    pub instance: Instance,
    /// None when the instance held; else what went wrong, in one paragraph.
    pub problem: Option<String>,
    /// What it did, in a few words: "fails at crash-after-receive", "passes 3 stages".
    pub summary: String,
    pub elapsed: Duration,
}

/// How to validate.
#[derive(Clone, Debug)]
pub struct Options {
    /// The workspace to build in; kept between runs.
    pub workspace: PathBuf,
    /// How many check binaries run at once.
    pub jobs: usize,
    /// The bound on one check binary's run.
    pub timeout: Duration,
    /// The cargo to run.
    pub cargo: PathBuf,
    /// Seeds 1 to `seeds` are validated for every bug site (0: only the template as written).
    pub seeds: u64,
}

impl Options {
    /// The default workspace: one per bughunt version, in the system's temporary folder.
    pub fn default_workspace() -> PathBuf {
        std::env::temp_dir().join(format!("bughunt-validate-{}", env!("CARGO_PKG_VERSION")))
    }

    /// The cargo that runs us, else the one on PATH.
    pub fn default_cargo() -> PathBuf {
        std::env::var_os("CARGO")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("cargo"))
    }
}

/// Every instance of these templates, in catalog order: for each seed, each bug site's broken
/// form and the fixed form; then the wrong fixes and the correct alternatives (as written,
/// seed 0).
pub fn instances(templates: &[&Template], seeds: u64) -> Vec<Instance> {
    let mut all = Vec::new();
    let seed_list: Vec<u64> = if seeds == 0 {
        vec![0]
    } else {
        (1..=seeds).collect()
    };
    for template in templates {
        let meta = &template.meta;
        let make =
            |form: String, suffix: String, seed: u64, lib_rs: String, expect: Expect| Instance {
                template: meta.id.clone(),
                form,
                seed,
                package: format!("{}--{suffix}", meta.id),
                checker: meta.checker,
                expect,
                stage_ids: template.stage_ids.clone(),
                lib_rs,
                checks_rs: template.checks_for(seed),
            };
        for &seed in &seed_list {
            for site in &meta.sites {
                all.push(make(
                    format!("broken: {}", site.id),
                    format!("s{seed}--{}", site.id),
                    seed,
                    template.broken_rs(&site.id, seed),
                    Expect::FailsAt(site.fails_at.clone()),
                ));
            }
            all.push(make(
                "fixed".to_owned(),
                format!("s{seed}--fixed"),
                seed,
                template.fixed_rs(seed),
                Expect::Passes,
            ));
        }
        for wrong in &meta.wrong_fixes {
            all.push(make(
                format!("wrong: {}", wrong.name),
                format!("wrong-{}", wrong.name),
                0,
                template.variant_rs(&wrong.name, 0),
                Expect::FailsAt(wrong.fails_at.clone()),
            ));
        }
        for alternative in &meta.alternatives {
            all.push(make(
                format!("alt: {}", alternative.name),
                format!("alt-{}", alternative.name),
                0,
                template.variant_rs(&alternative.name, 0),
                Expect::Passes,
            ));
        }
    }
    all
}

/// Holds the workspace for one validation at a time.
struct WorkspaceLock {
    _file: File,
}

fn lock_workspace(workspace: &Path) -> Result<WorkspaceLock> {
    fs_err::create_dir_all(workspace).with_context(|| {
        format!(
            "cannot create the validation workspace {}",
            workspace.display()
        )
    })?;
    let path = workspace.join(".bughunt-validate.lock");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(WorkspaceLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another `bughunt dev validate` is using {}; wait for it to finish or pass --workspace DIR",
            workspace.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn write_workspace(workspace: &Path, instances: &[Instance]) -> Result<()> {
    let members: Vec<String> = instances
        .iter()
        .map(|i| format!("    \"crates/{}\",", i.package))
        .collect();
    let manifest = format!(
        "# Written by `bughunt dev validate`; rewritten on every run.\n[workspace]\nresolver = \"2\"\nmembers = [\n{}\n]\n\n{}",
        members.join("\n"),
        huntcrate::WORKSPACE_PROFILE
    );
    huntcrate::write_if_changed(&workspace.join("Cargo.toml"), manifest.as_bytes())?;
    if !workspace.join("Cargo.lock").exists() {
        huntcrate::write_if_changed(&workspace.join("Cargo.lock"), LOCKFILE.as_bytes())?;
    }
    huntcrate::write_kits(&workspace.join("kits"))?;
    for instance in instances {
        huntcrate::write_crate(
            &workspace.join("crates").join(&instance.package),
            &instance.package,
            instance.checker,
            "../../kits",
            Some(&instance.lib_rs),
            &instance.checks_rs,
        )?;
    }
    Ok(())
}

/// Where cargo builds: `CARGO_TARGET_DIR` when set (so several workspaces can share compiled
/// dependencies), else the workspace's own `target/`.
fn target_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                std::env::current_dir().unwrap_or_default().join(dir)
            }
        })
        .unwrap_or_else(|| workspace.join("target"))
}

/// Builds the check binaries of `packages`: package → executable, or package → compile errors.
fn build(
    options: &Options,
    packages: &[&str],
) -> Result<BTreeMap<String, Result<PathBuf, String>>> {
    let mut command = Command::new(&options.cargo);
    command
        .current_dir(&options.workspace)
        .env("CARGO_TARGET_DIR", target_dir(&options.workspace))
        // Each form is built once: incremental state would only fill the disk (gigabytes
        // for the catalog) and slow the build down.
        .env("CARGO_INCREMENTAL", "0")
        .args(["test", "--no-run", "--message-format=json"]);
    for package in packages {
        command.args(["-p", package]);
    }
    let finished = run_bounded_with(command, BUILD_BOUND, OutputLimit::CARGO_JSON, |_| {})
        .with_context(|| {
            format!(
                "cannot run {}; is Rust installed (https://rustup.rs)?",
                options.cargo.display()
            )
        })?;
    if finished.timed_out() {
        bail!(
            "cargo did not finish building within {} s",
            BUILD_BOUND.as_secs()
        );
    }
    let mut built: BTreeMap<String, Result<PathBuf, String>> = BTreeMap::new();
    let mut checks_warnings: BTreeMap<String, String> = BTreeMap::new();
    let crates_dir = options.workspace.join("crates");
    for line in finished.stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let package = message["manifest_path"]
            .as_str()
            .map(Path::new)
            .and_then(|manifest| manifest.parent())
            .filter(|dir| dir.parent() == Some(crates_dir.as_path()))
            .and_then(|dir| dir.file_name())
            .map(|name| name.to_string_lossy().into_owned());
        let Some(package) = package else { continue };
        match message["reason"].as_str() {
            Some("compiler-artifact") if message["target"]["name"] == "checks" => {
                if let Some(executable) = message["executable"].as_str() {
                    built.insert(package, Ok(PathBuf::from(executable)));
                }
            }
            Some("compiler-message") if message["message"]["level"] == "error" => {
                let rendered = message["message"]["rendered"].as_str().unwrap_or_default();
                let entry = built
                    .entry(package)
                    .or_insert_with(|| Err(COMPILE_ERROR.to_owned()));
                if let Err(errors) = entry {
                    errors.push_str(rendered);
                }
            }
            Some("compiler-message")
                if message["message"]["level"] == "warning" && in_checks(&message["message"]) =>
            {
                let rendered = message["message"]["rendered"].as_str().unwrap_or_default();
                let warnings = checks_warnings.entry(package).or_default();
                warnings.push_str(rendered);
            }
            _ => {}
        }
    }
    // The template's own checks compile clean: a warning there is dead code or a mistake in
    // the checks, whichever form it is built with.
    for (package, warnings) in checks_warnings {
        if let Some(entry @ Ok(_)) = built.get_mut(&package) {
            *entry = Err(format!("{CHECKS_WARN}{warnings}"));
        }
    }
    let compile_errors = built.values().any(Result::is_err);
    if !finished.success() && !compile_errors {
        bail!(
            "cargo failed to build the validation workspace:\n{}",
            tail(&finished.stderr, 40)
        );
    }
    Ok(built)
}

/// How a form that cargo could not build begins its problem.
const COMPILE_ERROR: &str = "does not compile:\n";
/// How a form whose checks compile with warnings begins its problem.
const CHECKS_WARN: &str =
    "the template's checks (tests/checks.rs) compile with warnings; they must compile clean:\n";

/// Whether a compiler message's primary place is in the checks (`tests/checks.rs`).
fn in_checks(message: &serde_json::Value) -> bool {
    message["spans"].as_array().is_some_and(|spans| {
        spans.iter().any(|span| {
            span["is_primary"] == true
                && span["file_name"]
                    .as_str()
                    .is_some_and(|file| file.ends_with("tests/checks.rs"))
        })
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn judge(
    instance: &Instance,
    finished: &Finished,
    report_path: &Path,
    options: &Options,
) -> (Option<String>, String) {
    let reproduce = format!(
        "reproduce: cd {} && {REPORT_ENV}=report.json cargo test",
        options
            .workspace
            .join("crates")
            .join(&instance.package)
            .display()
    );
    if finished.timed_out() {
        return (
            Some(format!(
                "the checks did not finish within {} s (a deadlock, or a stage that never ends)\n{reproduce}",
                options.timeout.as_secs()
            )),
            "timed out".to_owned(),
        );
    }
    let report = match CheckReport::read_from(report_path) {
        Ok(report) => report,
        Err(error) => {
            return (
                Some(format!(
                    "no check report ({error}); the test binary said:\n{}\n{reproduce}",
                    tail(&format!("{}{}", finished.stdout, finished.stderr), 20)
                )),
                "no report".to_owned(),
            )
        }
    };
    let listed: Vec<&str> = report.stage_ids();
    if listed
        != instance
            .stage_ids
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
        || report.template != instance.template
    {
        return (
            Some(format!(
                "the report of template `{}` lists the stages {listed:?}, and checks.rs has {:?}\n{reproduce}",
                report.template, instance.stage_ids
            )),
            "wrong stages".to_owned(),
        );
    }
    let first = report.first_failure();
    let said = |stage: &bughunt_kit::report::StageReport| {
        format!(
            "stage `{}` {}: {}",
            stage.id,
            if stage.status == Status::Running {
                "died while running"
            } else {
                "failed"
            },
            stage.detail.as_deref().unwrap_or("(no detail)")
        )
    };
    match (&instance.expect, first) {
        (Expect::Passes, None) if report.passed() && finished.success() => {
            (None, format!("passes all {} stages", report.stages.len()))
        }
        (Expect::Passes, None) => (
            Some(format!(
                "every stage passed but the test binary exited with {:?}\n{reproduce}",
                finished.status
            )),
            "exit status".to_owned(),
        ),
        (Expect::Passes, Some(stage)) => (
            Some(format!("expected to pass every stage, but {}\n{reproduce}", said(stage))),
            format!("fails at {}", stage.id),
        ),
        (Expect::FailsAt(expected), Some(stage))
            if &stage.id == expected && stage.status == Status::Failed && !finished.success() =>
        {
            (None, format!("fails at {expected}"))
        }
        (Expect::FailsAt(expected), Some(stage)) => (
            Some(format!("expected to fail at stage `{expected}`, but {}\n{reproduce}", said(stage))),
            format!("fails at {}", stage.id),
        ),
        (Expect::FailsAt(expected), None) => (
            Some(format!(
                "expected to fail at stage `{expected}`, but every stage passed: the checks cannot see this bug\n{reproduce}"
            )),
            "passes".to_owned(),
        ),
    }
}

/// Validates every instance of `templates`. Errors are for the environment (no cargo, a
/// workspace in use); an instance that does not hold is an [`Outcome`] with a problem.
pub fn validate(templates: &[&Template], options: &Options) -> Result<Vec<Outcome>> {
    let instances = instances(templates, options.seeds);
    let _lock = lock_workspace(&options.workspace)?;
    // Absolute from here on: cargo runs in the workspace and names files absolutely.
    let options = &Options {
        workspace: options.workspace.canonicalize().with_context(|| {
            format!(
                "cannot resolve the workspace path {}",
                options.workspace.display()
            )
        })?,
        ..options.clone()
    };
    write_workspace(&options.workspace, &instances)?;
    let reports = options.workspace.join("reports");
    fs_err::create_dir_all(&reports)?;

    let bar = ProgressBar::new(instances.len() as u64).with_style(
        ProgressStyle::with_template("{spinner} {msg:40} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));

    // Each checker has its own copy of the kit, so one build can hold every crate.
    bar.set_message(format!("building {} crates", instances.len()));
    let packages: Vec<&str> = instances.iter().map(|i| i.package.as_str()).collect();
    let mut executables = build(options, &packages)?;
    if packages.iter().any(|p| !executables.contains_key(*p)) {
        // cargo stops at the first crate that does not compile: build the rest one by one so
        // every instance gets its own verdict.
        for package in &packages {
            if !executables.contains_key(*package) {
                let one = build(options, &[package])?;
                executables.extend(one);
            }
        }
    }

    bar.set_message("running checks");
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    let jobs = options.jobs.clamp(1, instances.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(instance) = instances.get(index) else {
                    break;
                };
                let started = Instant::now();
                let (problem, summary) = match executables.get(&instance.package) {
                    None => (
                        Some("cargo built no check binary for it".to_owned()),
                        "not built".to_owned(),
                    ),
                    Some(Err(errors)) => (
                        Some(match errors.split_once('\n') {
                            Some((head, rest)) => format!("{head}\n{}", tail(rest, 30)),
                            None => errors.clone(),
                        }),
                        if errors.starts_with(CHECKS_WARN) {
                            "checks warn".to_owned()
                        } else {
                            "compile error".to_owned()
                        },
                    ),
                    Some(Ok(executable)) => {
                        let report_path = reports.join(format!("{}.json", instance.package));
                        let _ = fs_err::remove_file(&report_path);
                        let mut command = Command::new(executable);
                        command
                            .current_dir(options.workspace.join("crates").join(&instance.package))
                            .env(REPORT_ENV, &report_path)
                            .arg("--quiet");
                        match run_bounded(command, options.timeout) {
                            Ok(finished) => judge(instance, &finished, &report_path, options),
                            Err(error) => (
                                Some(format!("could not run the check binary: {error}")),
                                "not run".to_owned(),
                            ),
                        }
                    }
                };
                let outcome = Outcome {
                    instance: instance.clone(),
                    problem,
                    summary,
                    elapsed: started.elapsed(),
                };
                bar.inc(1);
                outcomes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((index, outcome));
            });
        }
    });
    bar.finish_and_clear();
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    outcomes.sort_by_key(|(index, _)| *index);
    Ok(outcomes.into_iter().map(|(_, outcome)| outcome).collect())
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use bughunt_kit::report::{StageReport, REPORT_FORMAT};

    use super::*;

    /// A warning in the checks counts against the template; one in the learner's file (a
    /// broken form's unused variable) does not.
    #[test]
    fn only_warnings_in_the_checks_count() {
        let at = |file: &str| {
            serde_json::json!({
                "level": "warning",
                "spans": [
                    { "file_name": "src/lib.rs", "is_primary": false },
                    { "file_name": file, "is_primary": true }
                ]
            })
        };
        assert!(in_checks(&at("tests/checks.rs")));
        assert!(!in_checks(&at("src/lib.rs")));
        assert!(!in_checks(
            &serde_json::json!({ "level": "warning", "spans": [] })
        ));
    }

    fn instance(expect: Expect) -> Instance {
        Instance {
            template: "t".into(),
            form: "broken".into(),
            seed: 0,
            package: "t--broken".into(),
            checker: Checker::Sim,
            expect,
            stage_ids: vec!["a".into(), "b".into()],
            lib_rs: String::new(),
            checks_rs: String::new(),
        }
    }

    fn stage(id: &str, status: Status) -> StageReport {
        StageReport {
            id: id.into(),
            title: id.into(),
            status,
            mentor: String::new(),
            detail: Some(format!("{id} detail")),
            location: None,
            replay: None,
            elapsed_ms: 0,
            trace: Vec::new(),
            steps: Vec::new(),
        }
    }

    fn finished(code: i32) -> Finished {
        Finished {
            status: Some(std::process::ExitStatus::from_raw(code << 8)),
            stdout: String::new(),
            stderr: String::new(),
            elapsed: Duration::ZERO,
            dropped_bytes: 0,
            in_second_phase: true,
        }
    }

    fn judged(expect: Expect, stages: Vec<StageReport>, code: i32) -> Option<String> {
        let ids = stages.iter().map(|stage| stage.id.clone()).collect();
        judged_against(expect, ids, stages, code)
    }

    fn judged_against(
        expect: Expect,
        stage_ids: Vec<String>,
        stages: Vec<StageReport>,
        code: i32,
    ) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let report = CheckReport {
            format: REPORT_FORMAT,
            template: "t".into(),
            nonce: String::new(),
            stages,
        };
        report.write_to(&path).unwrap();
        judge(
            &Instance {
                stage_ids,
                ..instance(expect)
            },
            &finished(code),
            &path,
            &options_in(dir.path()),
        )
        .0
    }

    fn options_in(workspace: &std::path::Path) -> Options {
        Options {
            workspace: workspace.to_owned(),
            jobs: 1,
            timeout: Duration::from_secs(1),
            cargo: PathBuf::from("cargo"),
            seeds: 0,
        }
    }

    /// A report that lists other stages than checks.rs has does not hold, whatever it says.
    #[test]
    fn a_report_with_other_stages_does_not_hold() {
        let problem = judged_against(
            Expect::Passes,
            vec!["a".into(), "b".into()],
            vec![stage("a", Status::Passed), stage("c", Status::Passed)],
            0,
        );
        assert!(problem.unwrap().contains("lists the stages"));
    }

    /// A broken form whose checks all pass is caught: the checks cannot see the bug.
    #[test]
    fn broken_that_passes_does_not_hold() {
        let problem = judged(
            Expect::FailsAt("a".into()),
            vec![stage("a", Status::Passed), stage("b", Status::Passed)],
            0,
        );
        assert!(problem.unwrap().contains("cannot see this bug"));
    }

    /// Failing at another stage than expected does not hold, and says which.
    #[test]
    fn failing_at_the_wrong_stage_does_not_hold() {
        let problem = judged(
            Expect::FailsAt("a".into()),
            vec![stage("a", Status::Passed), stage("b", Status::Failed)],
            101,
        )
        .unwrap();
        assert!(
            problem.contains("expected to fail at stage `a`") && problem.contains("`b` failed")
        );
    }

    /// Dying mid-stage is not the failure a template promises.
    #[test]
    fn dying_mid_stage_does_not_hold() {
        let problem = judged(
            Expect::FailsAt("a".into()),
            vec![stage("a", Status::Running)],
            134,
        )
        .unwrap();
        assert!(problem.contains("died while running"));
    }

    /// The expected failure holds; a full pass holds for a fixed form, not otherwise.
    #[test]
    fn expected_outcomes_hold() {
        assert_eq!(
            judged(
                Expect::FailsAt("a".into()),
                vec![stage("a", Status::Failed)],
                101
            ),
            None
        );
        assert_eq!(
            judged(Expect::Passes, vec![stage("a", Status::Passed)], 0),
            None
        );
        assert!(judged(Expect::Passes, vec![stage("a", Status::Failed)], 101).is_some());
        assert!(judged(Expect::Passes, vec![stage("a", Status::Passed)], 101).is_some());
    }

    /// A missing report is a problem that shows what the binary printed.
    #[test]
    fn missing_report_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let options = options_in(dir.path());
        let mut output = finished(101);
        output.stderr = "thread panicked before the runner started".into();
        let (problem, _) = judge(
            &instance(Expect::Passes),
            &output,
            &dir.path().join("none.json"),
            &options,
        );
        assert!(problem.unwrap().contains("panicked before the runner"));
    }
}
