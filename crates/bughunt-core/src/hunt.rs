//! The hunt loop: start, hint, check, reveal, explain, challenge, status.
//!
//! Each function takes a home and the catalog, changes the state through
//! [`crate::state::StateFile::update`], and returns what happened; [`crate::pages`] turns
//! that into the text a command prints. Nothing here prints.
//!
//! A hunt is an instance: (template, bug site, seed). Its key in the state is
//! `template/site`; its folder `hunts/NN-template-site/`.

use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bughunt_kit::report::{CheckReport, NONCE_ENV, REPORT_ENV};
use serde::Serialize;

use crate::catalog::{Catalog, Checker, SiteToml, Template};
use crate::home::Home;
use crate::huntcrate;
use crate::process::{run_phased, OutputLimit, SecondPhase, CARGO_BUILD_FINISHED};
use crate::select::{self, Challenge, Pick, Reason};
use crate::state::{now_unix, HuntState, State};

/// How many levels of hints a bug site has.
pub const HINT_LEVELS: u8 = 3;

/// The default bound on one check.
pub const CHECK_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// The bound on building a hunt's checks, before `--timeout` starts counting: a first build
/// on a busy machine can take minutes, and is no deadlock of the learner's.
pub const CHECK_BUILD_BOUND: Duration = Duration::from_secs(900);

/// Seeds drawn for a learner are below this, so they stay easy to read and type.
const SEED_DRAWN_MAX: u64 = 1_000_000;

/// Rewrites the progress block in `memory-bank/activeContext.md` from `state`. Progress is
/// safe in the state whatever happens here, so a damaged block is a warning, not an error.
fn sync_memory_bank(home: &Home, catalog: &Catalog, state: &State) -> Result<()> {
    if let Some(warning) = crate::memory::write_progress(home, catalog, state)? {
        eprintln!("bughunt: warning: {warning}");
    }
    Ok(())
}

/// A fresh seed, different on every call (from the standard library's random hash keys).
pub fn fresh_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_unix());
    hasher.finish() % (SEED_DRAWN_MAX - 1) + 1
}

/// A hunt crate's package name; the home's id keeps it apart from the same hunt in another
/// home that shares a cargo target folder (see [`State::home_id`]).
fn package_name(home_id: &str, number: u32, template: &str, site: &str) -> String {
    match home_id {
        "" => format!("hunt-{number:02}-{template}-{site}"),
        id => format!("hunt-{number:02}-{template}-{site}-{id}"),
    }
}

/// The learner's file of a hunt, relative to the home.
pub fn lib_path(hunt: &HuntState) -> String {
    format!("{}/src/lib.rs", hunt.dir)
}

/// The `🔴 BUG HUNT` block that heads the learner's file: category, difficulty, hint 1, and
/// nothing more.
pub fn bug_hunt_header(
    catalog: &Catalog,
    template: &Template,
    site: &SiteToml,
    seed: u64,
) -> String {
    let category = catalog
        .categories
        .get(&template.meta.category)
        .map(|c| c.meta.title.clone())
        .unwrap_or_else(|| template.meta.category.clone());
    let hints = template.hints_for(site, seed);
    let mut out = format!(
        "// 🔴 BUG HUNT: {category}\n// Difficulty: {:?}\n",
        template.difficulty_of(site)
    );
    out.push_str(&comment_wrapped("Hint Level 1: ", &hints[0]));
    out.push_str("//\n");
    out.push_str(&comment_wrapped(
        "",
        "Fix the bug in this file, then run `bughunt check`. `bughunt hint` shows the next hint.",
    ));
    if let Some(checker) = match template.meta.checker {
        Checker::Shuttle => Some("shuttle"),
        Checker::Loom => Some("loom"),
        _ => None,
    } {
        out.push_str(&comment_wrapped(
            "",
            &format!(
                "Locks, atomics and threads come from `bughunt_kit::sync` and `bughunt_kit::thread` (std's API): the checks run this file under {checker}, which explores their schedules and sees nothing else, so a check refuses std's."
            ),
        ));
    }
    out.push('\n');
    out
}

fn comment_wrapped(lead: &str, text: &str) -> String {
    let mut out = String::new();
    let mut line = format!("// {lead}");
    let fresh = line.chars().count();
    for word in text.split_whitespace() {
        if line.chars().count() > fresh && line.chars().count() + 1 + word.chars().count() > 96 {
            out.push_str(line.trim_end());
            out.push('\n');
            line = "//   ".to_owned();
        }
        if !line.ends_with(' ') {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// The template and site of a hunt.
fn pick_of<'a>(catalog: &'a Catalog, hunt: &HuntState) -> Result<Pick<'a>> {
    let template = catalog.template(&hunt.template).with_context(|| {
        format!(
            "the hunt `{}` is not in this bughunt's catalog; start another with `bughunt start`",
            hunt.template
        )
    })?;
    let site = template.site(&hunt.site).with_context(|| {
        format!(
            "the bug site `{}` of `{}` is not in this bughunt's catalog; start another with `bughunt start`",
            hunt.site, hunt.template
        )
    })?;
    Ok(Pick { template, site })
}

/// The broken program a hunt starts from: the header, then the broken form.
fn starting_code(catalog: &Catalog, pick: Pick, seed: u64) -> String {
    format!(
        "{}{}",
        bug_hunt_header(catalog, pick.template, pick.site, seed),
        pick.template.broken_rs(&pick.site.id, seed)
    )
}

fn write_hunt_crate(
    home: &Home,
    home_id: &str,
    catalog: &Catalog,
    pick: Pick,
    hunt: &HuntState,
    keep_lib: bool,
) -> Result<()> {
    let dir = home.root.join(&hunt.dir);
    // The learner's file is never rewritten here if it exists and is to be kept, whatever
    // its bytes (not even UTF-8 is required of it).
    let lib_rs = (!keep_lib || !dir.join("src/lib.rs").exists())
        .then(|| starting_code(catalog, pick, hunt.seed));
    huntcrate::write_crate(
        &dir,
        &package_name(home_id, hunt.number, pick.template.id(), &pick.site.id),
        pick.template.meta.checker,
        Home::KITS_FROM_HUNT,
        lib_rs.as_deref(),
        &pick.template.checks_for(hunt.seed),
    )
    .with_context(|| format!("cannot write the hunt in {}", dir.display()))
}

/// What `start` (or `challenge`) did.
#[derive(Debug)]
pub enum Started {
    /// A new hunt crate was written.
    New {
        key: String,
        lib: String,
        seed: u64,
        reason: Option<Reason>,
    },
    /// The hunt existed and is current again, untouched.
    Resumed { key: String, lib: String, seed: u64 },
    /// The hunt was written anew; the learner's previous file was kept at `saved`.
    Restarted {
        key: String,
        lib: String,
        seed: u64,
        saved: String,
    },
    /// Every bug site is solved.
    AllSolved,
}

/// What to start: a name (template or category), a bug site, a seed.
#[derive(Debug, Default)]
pub struct StartRequest<'a> {
    pub name: Option<&'a str>,
    pub site: Option<&'a str>,
    pub seed: Option<u64>,
    pub fresh: bool,
}

fn choose<'a>(
    catalog: &'a Catalog,
    state: &State,
    request: &StartRequest,
) -> Result<Option<(Pick<'a>, Option<Reason>)>> {
    let Some(name) = request.name else {
        if request.site.is_some() {
            bail!("--site needs a template id: `bughunt start TEMPLATE --site SITE`");
        }
        return Ok(select::adaptive_next(catalog, state).map(|(pick, reason)| (pick, Some(reason))));
    };
    let chosen = catalog.select(&[name.to_owned()])?;
    if let Some(site) = request.site {
        let [template] = chosen.as_slice() else {
            bail!("--site needs a template id, and `{name}` is a category; `bughunt list --json` shows each template's bug sites");
        };
        let site = template.site(site).with_context(|| {
            let sites: Vec<&str> = template.meta.sites.iter().map(|s| s.id.as_str()).collect();
            format!(
                "`{}` has no bug site `{site}`; its sites: {}",
                template.id(),
                sites.join(", ")
            )
        })?;
        return Ok(Some((Pick { template, site }, None)));
    }
    // A template or a category: its first bug site not solved yet, else its first.
    let picks: Vec<Pick> = chosen.iter().flat_map(|t| select::picks_of(t)).collect();
    let pick = picks
        .iter()
        .find(|p| !select::solved(state, &p.key()))
        .or(picks.first())
        .copied()
        .expect("select returns at least one template with a site");
    Ok(Some((pick, None)))
}

/// Starts a hunt: new, resumed (as the learner left it) or, with `fresh` or another seed,
/// restarted (the learner's file kept in `.bughunt/attempts/`).
pub fn start(home: &Home, catalog: &Catalog, request: &StartRequest) -> Result<Started> {
    let state = home.state_file().load()?;
    let Some((pick, reason)) = choose(catalog, &state, request)? else {
        return Ok(Started::AllSolved);
    };
    begin(home, catalog, pick, request.seed, request.fresh, reason)
}

fn begin(
    home: &Home,
    catalog: &Catalog,
    pick: Pick,
    seed: Option<u64>,
    fresh: bool,
    reason: Option<Reason>,
) -> Result<Started> {
    let key = pick.key();
    home.restore_owned_files()?;
    home.state_file().update_then(
        |state| {
            let home_id = state.home_id.clone();
            let existing = state.hunts.get(&key).cloned();
            let outcome = match existing {
                Some(hunt) if !fresh && seed.is_none_or(|s| s == hunt.seed) => {
                    // Missing files come back; the learner's own file is never touched.
                    write_hunt_crate(home, &home_id, catalog, pick, &hunt, true)?;
                    Started::Resumed {
                        key: key.clone(),
                        lib: lib_path(&hunt),
                        seed: hunt.seed,
                    }
                }
                Some(hunt) => {
                    let saved = save_attempt(home, &key, &home.root.join(lib_path(&hunt)))?;
                    let entry = state.hunts.get_mut(&key).expect("the hunt exists");
                    entry.seed = seed.unwrap_or(hunt.seed);
                    entry.hints_revealed = 1;
                    entry.last_failed_stage = None;
                    write_hunt_crate(home, &home_id, catalog, pick, entry, false)?;
                    Started::Restarted {
                        key: key.clone(),
                        lib: lib_path(&hunt),
                        seed: entry.seed,
                        saved,
                    }
                }
                None => {
                    let number = state.hunts.values().map(|h| h.number).max().unwrap_or(0) + 1;
                    let hunt = HuntState {
                        template: pick.template.id().to_owned(),
                        site: pick.site.id.clone(),
                        seed: seed.unwrap_or_else(fresh_seed),
                        number,
                        dir: format!("hunts/{number:02}-{}-{}", pick.template.id(), pick.site.id),
                        hints_revealed: 1,
                        checks_run: 0,
                        passed: false,
                        revealed: false,
                        last_failed_stage: None,
                        started_unix: now_unix(),
                        passed_unix: None,
                    };
                    // A folder of that name left from an earlier home keeps its file's bytes.
                    let lib_file = home.root.join(lib_path(&hunt));
                    if lib_file.exists() {
                        save_attempt(home, &key, &lib_file)?;
                    }
                    write_hunt_crate(home, &home_id, catalog, pick, &hunt, false)?;
                    home.restore_owned_files()?;
                    let lib = lib_path(&hunt);
                    let seed = hunt.seed;
                    state.hunts.insert(key.clone(), hunt);
                    Started::New {
                        key: key.clone(),
                        lib,
                        seed,
                        reason,
                    }
                }
            };
            state.current = Some(key.clone());
            Ok(outcome)
        },
        |state| sync_memory_bank(home, catalog, state),
    )
}

/// Keeps the learner's file before a restart: `.bughunt/attempts/<template>-<site>/lib-<n>.rs`.
fn save_attempt(home: &Home, key: &str, lib_file: &Path) -> Result<String> {
    let dir = home
        .root
        .join(".bughunt/attempts")
        .join(key.replace('/', "-"));
    fs_err::create_dir_all(&dir)?;
    let taken = std::fs::read_dir(&dir)?.count();
    let saved = dir.join(format!("lib-{}.rs", taken + 1));
    if lib_file.exists() {
        fs_err::copy(lib_file, &saved)
            .with_context(|| format!("cannot keep a copy of {}", lib_file.display()))?;
    } else {
        fs_err::write(
            &saved,
            "// (the file was missing when the hunt was restarted)\n",
        )?;
    }
    Ok(home.relative(&saved))
}

/// The current hunt, with its template and site.
pub fn current<'a>(home: &Home, catalog: &'a Catalog) -> Result<(State, HuntState, Pick<'a>)> {
    let state = home.state_file().load()?;
    let Some(key) = state.current.clone() else {
        bail!("no hunt in progress; run `bughunt start` to begin one");
    };
    let hunt = state.hunts.get(&key).cloned().with_context(|| {
        format!("the state names `{key}` as current but has no record of it; run `bughunt start`")
    })?;
    let pick = pick_of(catalog, &hunt)?;
    Ok((state, hunt, pick))
}

/// What `hint` did.
#[derive(Debug)]
pub struct Hints {
    pub key: String,
    /// Every hint revealed so far, level 1 first.
    pub shown: Vec<String>,
    /// The learner asked past the last level.
    pub exhausted: bool,
}

/// Reveals the next hint level of the current hunt.
pub fn hint(home: &Home, catalog: &Catalog) -> Result<Hints> {
    let (_, hunt, pick) = current(home, catalog)?;
    let key = pick.key();
    let hints = pick.template.hints_for(pick.site, hunt.seed);
    // The memory bank's next challenge follows how many hints a hunt took: it is written
    // again from the new state.
    home.state_file().update_then(
        |state| {
            let hunt = state
                .hunts
                .get_mut(&key)
                .context("the current hunt vanished from the state")?;
            let exhausted = hunt.hints_revealed >= HINT_LEVELS;
            if !exhausted {
                hunt.hints_revealed += 1;
            }
            let shown = hints[..hunt.hints_revealed as usize].to_vec();
            Ok(Hints {
                key: key.clone(),
                shown,
                exhausted,
            })
        },
        |state| sync_memory_bank(home, catalog, state),
    )
}

/// The verdict of a check.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every stage passed.
    Passed,
    /// A stage failed (or the process died in it).
    Failed(String),
    /// The learner's code does not compile.
    CompileError,
    /// The checks ran past the bound.
    TimedOut,
    /// The build of the checks ran past its own bound (a busy machine, a huge file): the
    /// checks never started.
    BuildTimedOut,
    /// The checks ran but wrote no report (a crash before the first stage).
    NoReport,
    /// A report came back that this run's checks did not write as they would: other stages,
    /// another template, another run's nonce. Never a pass.
    Untrusted(String),
}

/// A fresh nonce for one check run.
fn fresh_nonce() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Why `report` cannot be the report of this run of `template`'s checks, if it cannot: it
/// must name this template, repeat this run's nonce, and list exactly the template's stages
/// in order. (Checks run the learner's code in-process, so this guards against mistakes
/// and stale files, not against deliberate forgery.)
pub fn untrusted_report(report: &CheckReport, template: &Template, nonce: &str) -> Option<String> {
    if report.template != template.meta.id {
        return Some(format!(
            "the report names template `{}`, not `{}`",
            report.template, template.meta.id
        ));
    }
    if report.nonce != nonce {
        return Some("the report belongs to another run of the checks".to_owned());
    }
    let expected: Vec<&str> = template.stage_ids.iter().map(String::as_str).collect();
    if report.stage_ids() != expected {
        return Some(format!(
            "the report lists the stages {:?}, and this hunt's checks are {:?}",
            report.stage_ids(),
            expected
        ));
    }
    None
}

/// The `cargo test` of a hunt's checks, as `check` runs it and as the prebuild after
/// `start` and `init`'s warm-up run it (with `--no-run`). All must build with the same
/// arguments and environment, or the check would build again what was built before it.
pub(crate) fn cargo_test_command(home: &Home, cargo: &Path, package: &str, color: bool) -> Command {
    let mut command = Command::new(cargo);
    command
        .current_dir(&home.root)
        // Nothing from the environment may stand in for the compiler or the test binary.
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_RUSTC")
        .env_remove("RUSTC")
        .args(["test", "--quiet", "-p", package, "--test", "checks"])
        // cargo says when the build is over, so the bound on the checks counts from there.
        .arg("--message-format=json-render-diagnostics")
        .arg(if color {
            "--color=always"
        } else {
            "--color=never"
        });
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if (name.starts_with("CARGO_TARGET_") && name.ends_with("_RUNNER"))
            || name.starts_with("CARGO_ALIAS_")
        {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// The crate a line of cargo's JSON messages says was compiled now (not found fresh).
fn compiled_artifact(line: &str) -> Option<String> {
    if !line.contains("\"reason\":\"compiler-artifact\"") || !line.contains("\"fresh\":false") {
        return None;
    }
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(message["target"]["name"].as_str()?.to_owned())
}

/// Where the prebuild after `start` writes what cargo said.
pub const PREBUILD_LOG: &str = ".bughunt/prebuild.log";

/// What a prebuild did.
#[derive(Debug)]
pub struct Prebuilt {
    pub key: String,
    /// The crates cargo compiled.
    pub compiled: Vec<String>,
    pub success: bool,
    pub timed_out: bool,
    pub elapsed: Duration,
}

/// Builds the current hunt's checks without running them (`cargo test --no-run` with the
/// arguments and environment of [`check`]), so the learner's first check is warm. Bounded
/// by [`CHECK_BUILD_BOUND`], in a session of its own; cargo's build lock keeps it and a
/// check from building at once, so a check beside it waits for it, never reads half of it.
/// Writes nothing but [`PREBUILD_LOG`]; the state is not touched.
pub fn prebuild(home: &Home, catalog: &Catalog, cargo: &Path) -> Result<Prebuilt> {
    let (state, hunt, pick) = current(home, catalog)?;
    let package = package_name(&state.home_id, hunt.number, &hunt.template, &hunt.site);
    crate::foreign::refuse_foreign_files(home)?;
    let mut command = cargo_test_command(home, cargo, &package, false);
    command.arg("--no-run");
    let compiled = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let compiled_by_cargo = compiled.clone();
    let finished = run_phased(
        command,
        CHECK_BUILD_BOUND,
        None,
        OutputLimit::CHECK,
        move |line| {
            if let Some(name) = compiled_artifact(line) {
                if let Ok(mut compiled) = compiled_by_cargo.lock() {
                    compiled.push(name);
                }
            }
        },
    )
    .with_context(|| format!("cannot run {}", cargo.display()))?;
    let compiled = compiled.lock().map(|c| c.clone()).unwrap_or_default();
    let prebuilt = Prebuilt {
        key: pick.key(),
        compiled,
        success: finished.success(),
        timed_out: finished.timed_out(),
        elapsed: finished.elapsed,
    };
    let log = format!(
        "prebuild of {} ({package}): {} in {} ms; compiled: {}\n{}",
        prebuilt.key,
        if prebuilt.timed_out {
            format!("stopped at the bound of {} s", CHECK_BUILD_BOUND.as_secs())
        } else if prebuilt.success {
            "built".to_owned()
        } else {
            "failed (the check will say why)".to_owned()
        },
        prebuilt.elapsed.as_millis(),
        if prebuilt.compiled.is_empty() {
            "nothing (already built)".to_owned()
        } else {
            prebuilt.compiled.join(", ")
        },
        finished.stderr
    );
    fs_err::write(home.root.join(PREBUILD_LOG), log)?;
    Ok(prebuilt)
}

/// Everything a check found.
#[derive(Debug)]
pub struct Checked {
    pub key: String,
    pub lib: String,
    pub verdict: Verdict,
    pub report: Option<CheckReport>,
    /// What cargo printed on standard error, for compile errors and crashes.
    pub cargo_stderr: String,
    /// Files bughunt put back because they differed from the catalog.
    pub restored: Vec<String>,
    /// The crates cargo compiled for this check (empty when the build was warm), in order.
    pub compiled: Vec<String>,
    pub timeout: Duration,
    pub first_pass: bool,
    pub hints_left: u8,
    /// The category this pass completed (every bug site solved), if it did.
    pub completed_category: Option<String>,
}

/// Checks the current hunt: restores bughunt's files, runs its checks with cargo under a
/// bound, and records the verdict.
pub fn check(
    home: &Home,
    catalog: &Catalog,
    timeout: Duration,
    cargo: &Path,
    color: bool,
) -> Result<Checked> {
    let (state, hunt, pick) = current(home, catalog)?;
    let key = pick.key();
    let dir = home.root.join(&hunt.dir);
    let lib_file = dir.join("src/lib.rs");
    if !lib_file.exists() {
        bail!(
            "{} is missing; `bughunt start {} --site {}` puts back what is missing, with `--fresh` it starts over",
            home.relative(&lib_file),
            hunt.template,
            hunt.site
        );
    }

    // The tests and manifests are bughunt's: what the learner changed there goes back first,
    // so editing or deleting a test can never make a check pass.
    home.restore_owned_files()?;
    crate::foreign::refuse_foreign_files(home)?;
    let mut restored = Vec::new();
    let package = package_name(&state.home_id, hunt.number, &hunt.template, &hunt.site);
    let owned = [
        ("tests/checks.rs", pick.template.checks_for(hunt.seed)),
        (
            "Cargo.toml",
            huntcrate::manifest(&package, pick.template.meta.checker, Home::KITS_FROM_HUNT),
        ),
    ];
    for (file, contents) in owned {
        if huntcrate::write_if_changed(&dir.join(file), contents.as_bytes())? {
            restored.push(format!("{}/{file}", hunt.dir));
        }
    }

    // Each run has a report of its own, named by a fresh nonce that the report must repeat:
    // checks of one hunt may overlap (an editor's watcher, an assistant and a person), and a
    // verdict belongs to the run that produced it.
    let nonce = format!("{:016x}", fresh_nonce());
    let report_name = key.replace('/', "-");
    let report_path = home
        .reports_dir()
        .join(format!("{report_name}.{nonce}.json"));
    fs_err::create_dir_all(home.reports_dir())?;
    let mut command = cargo_test_command(home, cargo, &package, color);
    command.env(REPORT_ENV, &report_path).env(NONCE_ENV, &nonce);
    let compiled = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let compiled_by_cargo = compiled.clone();
    let phase = SecondPhase {
        marker: CARGO_BUILD_FINISHED,
        bound: timeout,
    };
    let finished = run_phased(
        command,
        CHECK_BUILD_BOUND,
        Some(phase),
        OutputLimit::CHECK,
        move |line| {
            if let Some(name) = compiled_artifact(line) {
                if let Ok(mut compiled) = compiled_by_cargo.lock() {
                    compiled.push(name);
                }
            }
        },
    )
    .with_context(|| {
        format!(
            "cannot run {}; is Rust installed (https://rustup.rs)?",
            cargo.display()
        )
    })?;
    let compiled = compiled.lock().map(|c| c.clone()).unwrap_or_default();
    let report = CheckReport::read_from(&report_path).ok();
    // The last run's report stays as `<hunt>.json` for whoever wants to read it.
    let _ = fs_err::rename(
        &report_path,
        home.reports_dir().join(format!("{report_name}.json")),
    );
    let _ = fs_err::remove_file(report_path.with_extension("json.tmp"));
    let untrusted = report
        .as_ref()
        .and_then(|report| untrusted_report(report, pick.template, &nonce));
    let verdict = if finished.timed_out() && !finished.in_second_phase {
        Verdict::BuildTimedOut
    } else if finished.timed_out() {
        Verdict::TimedOut
    } else if let Some(reason) = untrusted {
        Verdict::Untrusted(reason)
    } else {
        match &report {
            Some(report) if report.passed() && finished.success() => Verdict::Passed,
            Some(report) => match report.first_failure() {
                Some(stage) => Verdict::Failed(stage.id.clone()),
                None => Verdict::NoReport,
            },
            None if finished.stderr.contains("could not compile") => Verdict::CompileError,
            None => Verdict::NoReport,
        }
    };

    let category = pick.template.meta.category.clone();
    let (first_pass, hints_left, completed_category) = home.state_file().update_then(
        |state| {
            let category_done = |state: &State| {
                select::curriculum(catalog)
                    .iter()
                    .filter(|p| p.template.meta.category == category)
                    .all(|p| select::solved(state, &p.key()))
            };
            let done_before = category_done(state);
            let hunt = state
                .hunts
                .get_mut(&key)
                .context("the current hunt vanished from the state")?;
            hunt.checks_run += 1;
            let first_pass = verdict == Verdict::Passed && !hunt.passed;
            match &verdict {
                Verdict::Passed => {
                    hunt.passed = true;
                    hunt.passed_unix.get_or_insert(now_unix());
                    hunt.last_failed_stage = None;
                }
                Verdict::Failed(stage) => hunt.last_failed_stage = Some(stage.clone()),
                _ => {}
            }
            let hints_left = HINT_LEVELS.saturating_sub(hunt.hints_revealed);
            let completed = (!done_before && category_done(state)).then(|| category.clone());
            Ok((first_pass, hints_left, completed))
        },
        |state| sync_memory_bank(home, catalog, state),
    )?;

    Ok(Checked {
        key,
        lib: lib_path(&hunt),
        verdict,
        report,
        cargo_stderr: finished.stderr,
        restored,
        compiled,
        timeout,
        first_pass,
        hints_left,
        completed_category,
    })
}

/// Marks the current hunt as revealed; returns it and its fixed form.
pub fn reveal(home: &Home, catalog: &Catalog) -> Result<(HuntState, String)> {
    let (_, hunt, pick) = current(home, catalog)?;
    let key = pick.key();
    home.state_file().update_then(
        |state| {
            if let Some(hunt) = state.hunts.get_mut(&key) {
                hunt.revealed = true;
            }
            Ok(())
        },
        |state| sync_memory_bank(home, catalog, state),
    )?;
    Ok((hunt.clone(), pick.template.fixed_rs(hunt.seed)))
}

/// The current hunt, and whether the learner has earned its explanation (a pass or a reveal).
pub fn explain<'a>(home: &Home, catalog: &'a Catalog) -> Result<(Pick<'a>, HuntState, bool)> {
    let (_, hunt, pick) = current(home, catalog)?;
    let earned = hunt.passed || hunt.revealed;
    Ok((pick, hunt, earned))
}

/// What `challenge` did.
#[derive(Debug)]
pub enum Challenged {
    /// A new hunt: a similar but different bug.
    Started(Started),
    /// Every bug site of the category is solved.
    Exhausted {
        category: String,
        next_category: Option<String>,
    },
    /// The current hunt is not solved yet.
    NotYet { lib: String },
}

/// After a pass: a similar but different bug (same category, a bug site not solved yet).
pub fn challenge(home: &Home, catalog: &Catalog) -> Result<Challenged> {
    let (state, hunt, _) = current(home, catalog)?;
    if !hunt.passed {
        return Ok(Challenged::NotYet {
            lib: lib_path(&hunt),
        });
    }
    match select::challenge(catalog, &state, &hunt) {
        Challenge::Next(pick) => Ok(Challenged::Started(begin(
            home, catalog, pick, None, false, None,
        )?)),
        Challenge::Exhausted {
            category,
            next_category,
        } => Ok(Challenged::Exhausted {
            category,
            next_category,
        }),
    }
}

/// Progress for `status`.
#[derive(Debug, Serialize)]
pub struct Progress {
    pub current: Option<CurrentStatus>,
    pub categories: Vec<CategoryStatus>,
    pub next: Option<NextStatus>,
}

#[derive(Debug, Serialize)]
pub struct CurrentStatus {
    /// The template id.
    pub id: String,
    pub site: String,
    pub seed: u64,
    pub category: String,
    /// The learner's file, relative to the home.
    pub path: String,
    pub hints_revealed: u8,
    pub hints_total: u8,
    pub checks_run: u32,
    pub passed: bool,
    pub revealed: bool,
}

/// Where the learner stands in one category.
pub type CategoryStatus = select::CategoryProgress;

/// The next challenge, named but not described (a description would spoil it).
#[derive(Debug, Serialize)]
pub struct NextStatus {
    pub id: String,
    pub category: String,
    pub difficulty: String,
    pub week: u8,
}

/// Where the learner stands.
pub fn status(home: &Home, catalog: &Catalog) -> Result<Progress> {
    let state = home.state_file().load()?;
    let current = state.current.as_ref().and_then(|key| {
        let hunt = state.hunts.get(key)?;
        let pick = pick_of(catalog, hunt).ok()?;
        Some(CurrentStatus {
            id: hunt.template.clone(),
            site: hunt.site.clone(),
            seed: hunt.seed,
            category: pick.template.meta.category.clone(),
            path: lib_path(hunt),
            hints_revealed: hunt.hints_revealed,
            hints_total: HINT_LEVELS,
            checks_run: hunt.checks_run,
            passed: hunt.passed,
            revealed: hunt.revealed,
        })
    });
    let categories = select::category_progress(catalog, &state);
    let next = select::upcoming(catalog, &state).map(|pick| NextStatus {
        id: pick.template.meta.id.clone(),
        category: pick.template.meta.category.clone(),
        difficulty: format!("{:?}", pick.difficulty()),
        week: pick.template.meta.week,
    });
    Ok(Progress {
        current,
        categories,
        next,
    })
}
