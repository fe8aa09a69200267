//! Files cargo reads that bughunt did not write.
//!
//! A check's verdict must come from the learner's `src/lib.rs` and bughunt's tests, nothing
//! else. cargo also reads a `build.rs` beside any manifest (unless the manifest says
//! `build = false`, which every manifest bughunt writes does) and `.cargo/config.toml` in the
//! folder it runs in and every folder above it, where a `runner` or a `rustc-wrapper` can
//! replace the test binary or the compiler. Before a check, bughunt looks for such files and
//! refuses to run while one is there, naming it. It never deletes them: they may be the
//! learner's.
//!
//! The user's own cargo configuration (`$CARGO_HOME/config.toml`, often `~/.cargo`) is read
//! by every cargo command on the machine; it is refused only if it sets something that
//! changes how tests are built or run (a runner, a compiler or its wrapper, a `test` alias).

use std::path::{Path, PathBuf};

use crate::home::Home;

/// The names cargo reads its configuration from, in a `.cargo` folder.
const CONFIG_NAMES: [&str; 2] = ["config.toml", "config"];

/// The user's cargo home: `$CARGO_HOME`, else `~/.cargo`.
fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .and_then(|path| path.canonicalize().ok())
}

/// Whether a cargo configuration sets something that changes how tests are built or run.
fn changes_how_tests_run(config: &str) -> bool {
    let Ok(value) = config.parse::<toml::Table>() else {
        // Unreadable: cargo will refuse it itself, with a better message than ours.
        return false;
    };
    let build = value.get("build").and_then(|b| b.as_table());
    let build_swaps = build.is_some_and(|build| {
        ["rustc", "rustc-wrapper", "rustc-workspace-wrapper"]
            .iter()
            .any(|key| build.contains_key(*key))
    });
    let runner = value
        .get("target")
        .and_then(|t| t.as_table())
        .is_some_and(|targets| {
            targets
                .values()
                .filter_map(|t| t.as_table())
                .any(|target| target.contains_key("runner"))
        });
    let alias = value
        .get("alias")
        .and_then(|a| a.as_table())
        .is_some_and(|alias| alias.contains_key("test") || alias.contains_key("t"));
    build_swaps || runner || alias
}

/// Every file in and above `home` that could change a check and that bughunt did not write,
/// nearest first.
pub fn foreign_files(home: &Home) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let user_config = cargo_home();
    for dir in home.root.ancestors() {
        let cargo_dir = dir.join(".cargo");
        for name in CONFIG_NAMES {
            let path = cargo_dir.join(name);
            if !path.is_file() {
                continue;
            }
            let is_user_config = user_config.as_deref() == cargo_dir.canonicalize().ok().as_deref();
            if is_user_config {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if !changes_how_tests_run(&text) {
                    continue;
                }
            }
            found.push(path);
        }
    }
    let crate_dirs = |parent: &Path, prefix: &str| -> Vec<PathBuf> {
        std::fs::read_dir(parent)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut crates = crate_dirs(&home.root.join("hunts"), "");
    crates.extend(crate_dirs(&home.root.join(".bughunt/kits"), "kit-"));
    crates.extend(crate_dirs(&home.root.join(".bughunt"), "warmup-"));
    crates.sort();
    for dir in crates {
        let script = dir.join("build.rs");
        if script.is_file() {
            found.push(script);
        }
    }
    // The home's own folder is a workspace root; a build.rs there is harmless to cargo
    // (the root is no package) and is left alone.
    found
}

/// Refuses to go on while a foreign file is there, naming it and the way out.
pub fn refuse_foreign_files(home: &Home) -> anyhow::Result<()> {
    let found = foreign_files(home);
    let Some(first) = found.first() else {
        return Ok(());
    };
    let more = match found.len() {
        1 => String::new(),
        n => format!(
            " (and {} more: {})",
            n - 1,
            found[1..]
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    anyhow::bail!(
        "{} can change how cargo builds or runs the checks, and bughunt did not write it{more}; move it aside (`mv {0} {0}.off`) and run `bughunt check` again",
        first.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runners, wrappers and a `test` alias change how tests run; a registry mirror does not.
    #[test]
    fn which_configs_change_tests() {
        assert!(changes_how_tests_run(
            "[target.x86_64-unknown-linux-gnu]\nrunner = \"true\"\n"
        ));
        assert!(changes_how_tests_run(
            "[build]\nrustc-wrapper = \"sccache\"\n"
        ));
        assert!(changes_how_tests_run("[alias]\ntest = \"check\"\n"));
        assert!(!changes_how_tests_run(
            "[net]\nretry = 5\n[build]\njobs = 2\n"
        ));
    }

    /// A config in the home, a build script in a hunt and in a kit copy are all found, with
    /// their paths.
    #[test]
    fn finds_configs_and_build_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let home = Home { root: root.clone() };
        assert!(foreign_files(&home).iter().all(|p| !p.starts_with(&root)));
        std::fs::create_dir_all(root.join(".cargo")).unwrap();
        std::fs::write(root.join(".cargo/config.toml"), "[build]\njobs = 1\n").unwrap();
        std::fs::create_dir_all(root.join("hunts/01-x")).unwrap();
        std::fs::write(root.join("hunts/01-x/build.rs"), "fn main() {}").unwrap();
        std::fs::create_dir_all(root.join(".bughunt/kits/kit-sim")).unwrap();
        std::fs::write(root.join(".bughunt/kits/kit-sim/build.rs"), "fn main() {}").unwrap();
        let found: Vec<PathBuf> = foreign_files(&home)
            .into_iter()
            .filter(|p| p.starts_with(&root))
            .collect();
        assert_eq!(
            found,
            vec![
                root.join(".cargo/config.toml"),
                root.join(".bughunt/kits/kit-sim/build.rs"),
                root.join("hunts/01-x/build.rs"),
            ]
        );
        let error = refuse_foreign_files(&home).unwrap_err().to_string();
        assert!(
            error.contains("config.toml can change how cargo"),
            "{error}"
        );
    }
}
