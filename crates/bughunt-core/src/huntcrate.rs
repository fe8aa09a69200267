//! Writing hunt crates: a scenario form as a real Cargo crate, checks included.
//!
//! A hunt crate is what a learner edits and what `bughunt dev validate` builds: its
//! `src/lib.rs` is one form of a template (library name `hunt`), its `tests/checks.rs` the
//! template's checks, and it depends on the kit vendored beside it, with the feature of the
//! template's checker. Files are written only when their content changes, so cargo's
//! incremental builds stay warm.

use std::io;
use std::path::Path;

use include_dir::{include_dir, Dir};

use crate::catalog::Checker;

/// The kit's source, vendored into every workspace that builds hunt crates.
pub static KIT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../bughunt-kit");

/// The lock file bughunt was built with: every workspace it writes starts from it, so every
/// learner builds the same dependency versions.
pub const LOCKFILE: &str = include_str!("../../../Cargo.lock");

/// The tokio version hunt crates use; the kit pins the same.
pub const TOKIO_DEPENDENCY: &str =
    r#"tokio = { version = "=1.54.1", features = ["rt", "macros", "sync", "time", "test-util"] }"#;

/// The build profile of every workspace that builds hunt crates (a home, a validation
/// workspace), so a check costs the same wherever it runs.
pub const WORKSPACE_PROFILE: &str = r#"[profile.dev]
# Hunts are small; checks should start fast.
debug = "line-tables-only"

[profile.dev.package."*"]
# What the checks run on (the kit, the checkers, proptest and its random generator) is built
# with optimisations once; the learner's crate stays a quick debug build.
opt-level = 1
"#;

/// Writes `contents` to `path` unless it already holds exactly that. True if it wrote.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> io::Result<bool> {
    if fs_err::read(path).ok().as_deref() == Some(contents) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    fs_err::write(path, contents)?;
    Ok(true)
}

/// Every checker, in the order workspaces list them.
pub const CHECKERS: [Checker; 4] = [
    Checker::Sim,
    Checker::Shuttle,
    Checker::Loom,
    Checker::Tokio,
];

/// The package name of the kit's copy for `checker`.
pub fn kit_package(checker: Checker) -> String {
    format!("bughunt-kit-{}", checker.name())
}

/// The kit's manifest for `checker`'s copy: its own package name (so cargo never unifies the
/// features of two copies), the checker's feature on by default, the library still named
/// `bughunt_kit`.
pub fn kit_manifest(checker: Checker) -> String {
    let original = KIT
        .get_file("Cargo.toml")
        .and_then(|file| file.contents_utf8())
        .expect("the kit's Cargo.toml is embedded");
    let default = match checker.kit_feature() {
        Some(feature) => format!("default = [\"{feature}\"]"),
        None => "default = []".to_owned(),
    };
    original
        .replacen(
            "name = \"bughunt-kit\"",
            &format!("name = \"{}\"", kit_package(checker)),
            1,
        )
        .replacen("default = []", &default, 1)
}

/// Vendors one copy of the kit per checker into `dir/kit-<checker>/`.
pub fn write_kits(dir: &Path) -> io::Result<()> {
    fn walk(source: &Dir<'static>, dir: &Path) -> io::Result<()> {
        for file in source.files() {
            if file.path() != Path::new("Cargo.toml") {
                write_if_changed(&dir.join(file.path()), file.contents())?;
            }
        }
        for sub in source.dirs() {
            walk(sub, dir)?;
        }
        Ok(())
    }
    for checker in CHECKERS {
        let kit = dir.join(format!("kit-{}", checker.name()));
        walk(&KIT, &kit)?;
        write_if_changed(&kit.join("Cargo.toml"), kit_manifest(checker).as_bytes())?;
    }
    Ok(())
}

/// The manifest of a hunt crate named `package`; `kits` is the folder holding the kit copies,
/// relative to the crate.
pub fn manifest(package: &str, checker: Checker, kits: &str) -> String {
    let tokio = if checker == Checker::Tokio {
        format!("{TOKIO_DEPENDENCY}\n")
    } else {
        String::new()
    };
    format!(
        r#"# Written by bughunt, and restored by `bughunt check`.
[package]
name = "{package}"
version = "0.0.0"
edition = "2021"
publish = false
# A build script here would run before the checks; bughunt writes none.
build = false

[lib]
name = "hunt"
path = "src/lib.rs"
doctest = false

[[test]]
name = "checks"
path = "tests/checks.rs"

[dependencies]
bughunt-kit = {{ package = "{kit_package}", path = "{kits}/kit-{checker}" }}
{tokio}"#,
        kit_package = kit_package(checker),
        checker = checker.name(),
    )
}

/// Writes one hunt crate into `dir`; with `lib_rs` None, `src/lib.rs` is left as it is.
pub fn write_crate(
    dir: &Path,
    package: &str,
    checker: Checker,
    kit_path: &str,
    lib_rs: Option<&str>,
    checks_rs: &str,
) -> io::Result<()> {
    write_if_changed(
        &dir.join("Cargo.toml"),
        manifest(package, checker, kit_path).as_bytes(),
    )?;
    if let Some(lib_rs) = lib_rs {
        write_if_changed(&dir.join("src/lib.rs"), lib_rs.as_bytes())?;
    }
    write_if_changed(&dir.join("tests/checks.rs"), checks_rs.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kit travels whole: its manifest needs no workspace, and its sources are there.
    #[test]
    fn kit_is_self_contained() {
        let manifest = KIT.get_file("Cargo.toml").unwrap().contents_utf8().unwrap();
        assert!(
            !manifest.contains(".workspace"),
            "the vendored kit must not inherit from a workspace"
        );
        assert!(KIT.get_file("src/lib.rs").is_some());
        assert!(LOCKFILE.contains("name = \"shuttle\""));
    }

    /// A tokio hunt gets tokio; each hunt gets its checker's copy of the kit.
    #[test]
    fn manifests_follow_the_checker() {
        let tokio = manifest("x", Checker::Tokio, "../kits");
        assert!(tokio.contains("package = \"bughunt-kit-tokio\", path = \"../kits/kit-tokio\""));
        assert!(tokio.contains("tokio = {"));
        let shuttle = manifest("x", Checker::Shuttle, "../kits");
        assert!(
            shuttle.contains("package = \"bughunt-kit-shuttle\"") && !shuttle.contains("tokio")
        );
    }

    /// Each kit copy has its own package name and its checker's feature on by default, and
    /// keeps the library name the scenarios import.
    #[test]
    fn kit_copies_differ_only_where_they_must() {
        let loom = kit_manifest(Checker::Loom);
        assert!(loom.contains("name = \"bughunt-kit-loom\""));
        assert!(loom.contains("default = [\"loom\"]"));
        assert!(loom.contains("name = \"bughunt_kit\""));
        let sim = kit_manifest(Checker::Sim);
        assert!(sim.contains("name = \"bughunt-kit-sim\"") && sim.contains("default = []"));
        let dir = tempfile::tempdir().unwrap();
        write_kits(dir.path()).unwrap();
        for checker in CHECKERS {
            let kit = dir.path().join(format!("kit-{}", checker.name()));
            assert!(kit.join("src/lib.rs").is_file());
            let written = std::fs::read_to_string(kit.join("Cargo.toml")).unwrap();
            assert_eq!(written, kit_manifest(checker));
        }
    }

    /// Unchanged content is not rewritten (so incremental builds stay warm).
    #[test]
    fn writes_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.txt");
        assert!(write_if_changed(&path, b"one").unwrap());
        assert!(!write_if_changed(&path, b"one").unwrap());
        assert!(write_if_changed(&path, b"two").unwrap());
    }
}
