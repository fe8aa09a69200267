//! `bughunt dev validate` over the whole catalog: every template's broken form fails at its
//! expected stage, every wrong fix at its stage, every fixed form passes, with cargo, as a
//! learner's crate would be built. This is the test that proves the catalog.

use assert_cmd::Command;

fn shared_target() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("shared-target")
}

/// The whole catalog holds: every bug site's broken form under seed 1 (its names and
/// constants varied), the fixed form, every wrong fix and every correct alternative. The full
/// sweep over more seeds is `bughunt dev validate --seeds 3` (minutes more: run it when a
/// template changes). The workspace lives under cargo's target folder, and builds in the
/// target folder the hunt tests share, so reruns are incremental.
#[test]
fn every_template_proves_itself() {
    let workspace = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("validate");
    let output = Command::cargo_bin("bughunt")
        .unwrap()
        .env("CARGO_TARGET_DIR", shared_target())
        .args(["dev", "validate", "--seeds", "1", "--workspace"])
        .arg(&workspace)
        .timeout(std::time::Duration::from_secs(1_500))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "validation failed:\n{stdout}\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with('✓')).collect();
    let catalog = bughunt_core::catalog::Catalog::embedded().unwrap();
    let forms: usize = catalog
        .templates
        .iter()
        .map(|t| t.meta.sites.len() + 1 + t.meta.wrong_fixes.len() + t.meta.alternatives.len())
        .sum();
    assert_eq!(
        lines.len(),
        forms,
        "every form of every template holds:\n{stdout}"
    );
    assert!(lines.iter().any(|l| l.contains("(wrong: ")));
    assert!(lines
        .iter()
        .any(|l| l.contains("(alt: ") && l.contains("passes all")));
    assert!(lines
        .iter()
        .any(|l| l.contains("(broken: ") && l.contains("seed 1): fails at")));
    assert!(lines
        .iter()
        .any(|l| l.contains("(fixed, seed 1): passes all")));
    assert!(!stdout.contains('✗'), "{stdout}");

    // Regression: a relative --workspace used to send cargo's target folder under the
    // workspace a second time and match no crate to its check binary. Same folder, named
    // relatively from its parent: it must be found warm and hold.
    let relative = Command::cargo_bin("bughunt")
        .unwrap()
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env("CARGO_TARGET_DIR", shared_target())
        .args([
            "dev",
            "validate",
            "visibility-timeout",
            "--workspace",
            "validate",
        ])
        .timeout(std::time::Duration::from_secs(600))
        .output()
        .unwrap();
    let relative_stdout = String::from_utf8_lossy(&relative.stdout);
    assert!(relative.status.success(), "{relative_stdout}");
    assert!(
        relative_stdout.contains(" passed, 0 failed"),
        "{relative_stdout}"
    );
}

/// A validation that names an unknown template exits 2 with a suggestion, before building.
#[test]
fn validate_unknown_id() {
    let output = Command::cargo_bin("bughunt")
        .unwrap()
        .args(["dev", "validate", "lost-updat"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("`lost-update`"));
}
