//! `.bughunt/state.json`: a hunt home's progress, the source of truth.
//!
//! Progress is never lost. Every change is a read-modify-write under an exclusive file lock
//! (`.bughunt/state.lock`, held only for the few milliseconds of the change, never across a
//! build), so two commands at once cannot interleave. The new state goes to a temporary
//! file that is fsynced and renamed over the old one, so a crash leaves the old state or
//! the new one, never half of each; the state it replaces is kept as `state.json.bak`. A
//! state file that does not parse is an error naming the file and how to recover; it is
//! never silently reset.

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The state format this bughunt reads and writes.
pub const STATE_FORMAT: u32 = 1;

/// The longest a command waits for another to finish changing the state.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// One hunt the learner started: an instance (template, bug site, seed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuntState {
    pub template: String,
    pub site: String,
    /// The seed its names and constants come from.
    pub seed: u64,
    /// Its number in the home (the `nn` of `hunts/nn-...`).
    pub number: u32,
    /// Its folder, relative to the home.
    pub dir: String,
    /// How many hint levels the learner has seen (1 to 3).
    pub hints_revealed: u8,
    pub checks_run: u32,
    /// The checks have passed at least once.
    pub passed: bool,
    /// The learner asked for the fix.
    pub revealed: bool,
    /// The stage the last failing check stopped at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_stage: Option<String>,
    /// Seconds since the Unix epoch.
    pub started_unix: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed_unix: Option<u64>,
}

/// The whole state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    /// The bughunt that made the home.
    pub bughunt_version: String,
    /// A short random id of this home, part of its hunt crates' package names. cargo names
    /// a path crate's artifacts from its path relative to the workspace, so two homes that
    /// share a `CARGO_TARGET_DIR` would otherwise build `hunts/01-x` into the same files,
    /// and one home's check could run the other's code.
    #[serde(default)]
    pub home_id: String,
    /// The key (`template/site`) of the hunt in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Every hunt started, by key: `template/site`.
    #[serde(default)]
    pub hunts: BTreeMap<String, HuntState>,
}

impl State {
    /// The state of a new home.
    pub fn new() -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(now_unix());
        State {
            format: STATE_FORMAT,
            bughunt_version: env!("CARGO_PKG_VERSION").to_owned(),
            home_id: format!("{:06x}", hasher.finish() & 0xff_ffff),
            current: None,
            hunts: BTreeMap::new(),
        }
    }
}

impl State {
    /// Every field within its range: a hand-edited state that is out of range is refused on
    /// load with the field named, instead of making a later command panic or write outside
    /// the home.
    pub fn check(&self) -> std::result::Result<(), String> {
        for (key, hunt) in &self.hunts {
            let field = |name: &str| format!("field `hunts.{key}.{name}`");
            if !(1..=3).contains(&hunt.hints_revealed) {
                return Err(format!(
                    "{} is {}, and counts the hint levels seen: 1 to 3",
                    field("hints_revealed"),
                    hunt.hints_revealed
                ));
            }
            if *key != instance_key(&hunt.template, &hunt.site) {
                return Err(format!(
                    "the hunt `{key}` says template `{}` and site `{}`: its key must be `template/site`",
                    hunt.template, hunt.site
                ));
            }
            let dir = Path::new(&hunt.dir);
            let inside = dir.starts_with("hunts")
                && dir.components().count() == 2
                && dir
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside {
                return Err(format!(
                    "{} is `{}`, and must be a folder `hunts/<name>` inside the home",
                    field("dir"),
                    hunt.dir
                ));
            }
        }
        if let Some(current) = &self.current {
            if !self.hunts.contains_key(current) {
                return Err(format!(
                    "field `current` names `{current}`, which is not one of the hunts"
                ));
            }
        }
        Ok(())
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

/// The key of an instance in [`State::hunts`].
pub fn instance_key(template: &str, site: &str) -> String {
    format!("{template}/{site}")
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The state file of one home.
#[derive(Clone, Debug)]
pub struct StateFile {
    dir: PathBuf,
}

impl StateFile {
    /// The state kept in `home/.bughunt/`.
    pub fn of_home(home: &Path) -> Self {
        StateFile {
            dir: home.join(".bughunt"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn backup_path(&self) -> PathBuf {
        self.dir.join("state.json.bak")
    }

    /// Reads the state. Malformed or newer-format files are errors that say what to do.
    pub fn load(&self) -> Result<State> {
        let path = self.path();
        let text = fs_err::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let state: State = serde_json::from_str(&text).map_err(|error| {
            anyhow::anyhow!(
                "{} is not a valid state file ({error}); your hunts are untouched: restore the previous state with `cp {} {}`, or fix the file by hand",
                path.display(),
                self.backup_path().display(),
                path.display()
            )
        })?;
        if let Err(problem) = state.check() {
            bail!(
                "{}: {problem}; fix the field by hand, or restore the previous state with `cp {} {}`",
                path.display(),
                self.backup_path().display(),
                path.display()
            );
        }
        if state.format != STATE_FORMAT {
            bail!(
                "{} has state format {}, and this bughunt reads format {STATE_FORMAT}; use the bughunt that made this home (version {})",
                path.display(),
                state.format,
                state.bughunt_version
            );
        }
        Ok(state)
    }

    /// Writes the first state of a new home (no lock needed: nobody else knows the home yet).
    pub fn create(&self, state: &State) -> Result<()> {
        fs_err::create_dir_all(&self.dir)?;
        self.write(state)
    }

    /// Changes the state: lock, read, apply `change`, write atomically, unlock. Returns what
    /// `change` returned.
    pub fn update<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        self.update_then(change, |_| Ok(()))
    }

    /// [`StateFile::update`], then `then` with the state as written, still under the lock:
    /// what is derived from the state (the memory bank's progress block) is written after
    /// it and from it, so a kill between the two leaves the state ahead, never behind.
    pub fn update_then<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T>,
        then: impl FnOnce(&State) -> Result<()>,
    ) -> Result<T> {
        let _lock = self.lock()?;
        let mut state = self.load()?;
        let result = change(&mut state)?;
        state.check().map_err(|problem| {
            anyhow::anyhow!("bughunt made a state it cannot keep ({problem}); nothing was written")
        })?;
        self.write(&state)?;
        then(&state)?;
        Ok(result)
    }

    fn lock(&self) -> Result<File> {
        let path = self.dir.join("state.lock");
        let file =
            File::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
        // `File::lock` blocks with no bound of its own: wait for it on a helper thread, up to
        // LOCK_WAIT. If the wait runs out, the helper gets the lock later and drops it at once.
        let (locked_tx, locked_rx) = mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let result = file.lock().map(|()| file);
            let _ = locked_tx.send(result);
        });
        match locked_rx.recv_timeout(LOCK_WAIT) {
            Ok(Ok(file)) => Ok(file),
            Ok(Err(error)) => Err(error).with_context(|| format!("cannot lock {}", path.display())),
            Err(_) => bail!(
                "another bughunt command has held {} for over {} s; wait for it to finish, then try again",
                path.display(),
                LOCK_WAIT.as_secs()
            ),
        }
    }

    /// Writes the state (under the lock, or for a new home): the state it replaces becomes
    /// the backup, itself replaced atomically, and what an interrupted write left is cleaned.
    fn write(&self, state: &State) -> Result<()> {
        let path = self.path();
        crate::files::clean_stale_temporaries(&self.dir);
        if let Ok(previous) = std::fs::read(&path) {
            crate::files::replace_file(&self.backup_path(), &previous)
                .with_context(|| format!("cannot back up {}", path.display()))?;
        }
        let mut json = serde_json::to_vec_pretty(state)?;
        json.push(b'\n');
        crate::files::replace_file(&path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, StateFile) {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::of_home(dir.path());
        file.create(&State::new()).unwrap();
        (dir, file)
    }

    fn hunt() -> HuntState {
        HuntState {
            template: "h".into(),
            site: "s".into(),
            seed: 0,
            number: 1,
            dir: "hunts/01-h".into(),
            hints_revealed: 1,
            checks_run: 0,
            passed: false,
            revealed: false,
            last_failed_stage: None,
            started_unix: 0,
            passed_unix: None,
        }
    }

    /// Out-of-range fields are refused on load, each named, and a change that would make
    /// one writes nothing.
    #[test]
    fn out_of_range_fields_are_named() {
        let (_dir, file) = home();
        let mut state = State::new();
        state.hunts.insert(
            "h/s".into(),
            HuntState {
                hints_revealed: 4,
                ..hunt()
            },
        );
        std::fs::write(file.path(), serde_json::to_string(&state).unwrap()).unwrap();
        let message = file.load().unwrap_err().to_string();
        assert!(
            message.contains("`hunts.h/s.hints_revealed` is 4"),
            "{message}"
        );
        state.hunts.insert(
            "h/s".into(),
            HuntState {
                dir: "/etc".into(),
                ..hunt()
            },
        );
        std::fs::write(file.path(), serde_json::to_string(&state).unwrap()).unwrap();
        assert!(file
            .load()
            .unwrap_err()
            .to_string()
            .contains("inside the home"));
        let (_dir, file) = home();
        let before = std::fs::read(file.path()).unwrap();
        let refused = file.update(|state| {
            state.current = Some("nowhere/x".into());
            Ok(())
        });
        assert!(refused.is_err());
        assert_eq!(std::fs::read(file.path()).unwrap(), before);
    }

    /// An update is read back; the state before it is kept as a backup.
    #[test]
    fn updates_persist_with_a_backup() {
        let (_dir, file) = home();
        file.update(|state| {
            state.hunts.insert("h/s".into(), hunt());
            state.current = Some("h/s".into());
            Ok(())
        })
        .unwrap();
        assert_eq!(file.load().unwrap().current.as_deref(), Some("h/s"));
        let backup: State =
            serde_json::from_str(&std::fs::read_to_string(file.backup_path()).unwrap()).unwrap();
        assert_eq!(backup.current, None);
    }

    /// A failed change writes nothing.
    #[test]
    fn failed_change_writes_nothing() {
        let (_dir, file) = home();
        let before = std::fs::read(file.path()).unwrap();
        let result: Result<()> = file.update(|state| {
            state.current = Some("x".into());
            bail!("no")
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read(file.path()).unwrap(), before);
    }

    /// A malformed state is an error that names the file and the way back, and is left as is.
    #[test]
    fn malformed_state_is_reported_not_reset() {
        let (_dir, file) = home();
        std::fs::write(file.path(), "{ not json").unwrap();
        let message = file.load().unwrap_err().to_string();
        assert!(
            message.contains("state.json is not a valid state file"),
            "{message}"
        );
        assert!(message.contains("state.json.bak"), "{message}");
        assert!(file.update(|_| Ok(())).is_err());
        assert_eq!(std::fs::read_to_string(file.path()).unwrap(), "{ not json");
    }

    /// Many concurrent updates all land: none is lost to an interleaving.
    #[test]
    fn concurrent_updates_all_land() {
        let (_dir, file) = home();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let file = file.clone();
                scope.spawn(move || {
                    for _ in 0..10 {
                        file.update(|state| {
                            let hunt = state.hunts.entry("h/s".into()).or_insert(hunt());
                            hunt.checks_run += 1;
                            Ok(())
                        })
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(file.load().unwrap().hunts["h/s"].checks_run, 80);
    }
}
