//! The built `bughunt` binary, driven as a user drives it.

use assert_cmd::Command;
use serde_json::Value;

const FAMILIES: [&str; 5] = [
    "message-loss",
    "duplicate-delivery",
    "consumer-starvation",
    "persistence",
    "shutdown-leak",
];

fn bughunt() -> Command {
    let mut command = Command::cargo_bin("bughunt").unwrap();
    command.env_remove("NO_COLOR").env("CLICOLOR", "0");
    command
}

/// The five families by their names, and every template with a demo by its id.
fn every_demo() -> Vec<String> {
    let catalog = bughunt_core::catalog::Catalog::embedded().unwrap();
    let mut ids: Vec<String> = FAMILIES.iter().map(|f| f.to_string()).collect();
    ids.extend(
        catalog
            .templates
            .iter()
            .filter(|t| t.meta.demo.is_some())
            .map(|t| t.id().to_owned()),
    );
    assert!(ids.len() > FAMILIES.len() + 10, "{ids:?}");
    ids
}

fn stdout_of(args: &[&str]) -> String {
    let output = bughunt().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "bughunt {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `list --json` is an array with id, category, title, difficulty, week and bug_sites for
/// every template, and each of the five seed families has at least three bug sites.
#[test]
fn list_json_has_the_promised_fields() {
    let list: Value = serde_json::from_str(&stdout_of(&["list", "--json"])).unwrap();
    let templates = list.as_array().unwrap();
    assert!(templates.len() >= 8, "five families and three probes");
    for template in templates {
        for field in ["id", "category", "title", "difficulty", "week"] {
            assert!(!template[field].is_null(), "{field} missing in {template}");
        }
    }
    for family in FAMILIES {
        let in_family: Vec<&Value> = templates
            .iter()
            .filter(|t| t["category"] == family)
            .collect();
        assert!(!in_family.is_empty(), "no template in {family}");
        let sites: usize = in_family
            .iter()
            .map(|t| t["bug_sites"].as_array().unwrap().len())
            .sum();
        assert!(
            sites >= 3,
            "{family} has {sites} bug sites; the generator promises at least 3"
        );
    }
    for template in templates {
        assert!(
            !template["bug_sites"].as_array().unwrap().is_empty(),
            "{template}"
        );
    }
}

/// The text list groups by category and points to the next command.
#[test]
fn list_text_reads_well() {
    let text = stdout_of(&["list"]);
    assert!(text.contains("message-loss"));
    assert!(text.contains("visibility-timeout"));
    assert!(text.contains("bughunt demo"));
    assert!(!text.contains('\u{1b}'), "no colour codes in a pipe");
}

/// For each seed family, the demo's broken run has violations and bad counts, the fixed run
/// has none, and two runs print the same bytes.
#[test]
fn demos_show_the_bug_and_the_fix_deterministically() {
    for family in &every_demo() {
        let family = family.as_str();
        let first = stdout_of(&["demo", family, "--format", "json"]);
        let second = stdout_of(&["demo", family, "--format", "json"]);
        assert_eq!(first, second, "{family}: the demo is not deterministic");
        let demo: Value = serde_json::from_str(&first).unwrap();
        assert!(demo["id"].is_string());
        let broken = &demo["broken"];
        let fixed = &demo["fixed"];
        assert!(
            !broken["violations"].as_array().unwrap().is_empty(),
            "{family}: the broken run shows no violation"
        );
        assert!(
            fixed["violations"].as_array().unwrap().is_empty(),
            "{family}: the fixed run has violations: {}",
            fixed["violations"]
        );
        for run in [broken, fixed] {
            assert!(
                !run["events"].as_array().unwrap().is_empty(),
                "{family}: no events"
            );
        }
        let bad = |run: &Value| -> u64 {
            run["counts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["bad"] == true)
                .map(|c| c["value"].as_u64().unwrap())
                .sum()
        };
        assert!(
            bad(broken) > 0,
            "{family}: the broken run counts nothing bad"
        );
        assert_eq!(
            bad(fixed),
            0,
            "{family}: the fixed run counts something bad"
        );
    }
}

/// The text demo carries the brief's bug-demonstration block, the drawing and the counts.
#[test]
fn demo_text_has_the_demonstration_block() {
    for family in &every_demo() {
        let family = family.as_str();
        let text = stdout_of(&["demo", family]);
        for part in [
            "BUG DEMONSTRATION:",
            "WHAT'S WRONG:",
            "LESSON:",
            "HOW OTHER SYSTEMS HANDLE THIS:",
            "FLOW (buggy):",
            "FLOW (correct):",
            "TRADEOFF:",
            "The wrong way (broken.rs)",
            "The right way (fixed.rs)",
            "wrong way",
            "right way",
            "✗ wrong way:",
            "✓ right way: no violations",
        ] {
            assert!(
                text.contains(part),
                "{family}: `{part}` missing from the demo page"
            );
        }
        assert!(text.contains('│'), "{family}: no lifelines drawn");
        assert_eq!(
            text,
            stdout_of(&["demo", family]),
            "{family}: text differs between runs"
        );
    }
}

/// Mermaid output is a sequenceDiagram with both runs in shaded boxes.
#[test]
fn demo_mermaid_is_a_sequence_diagram() {
    let text = stdout_of(&["demo", "message-loss", "--format", "mermaid"]);
    assert!(text.starts_with("sequenceDiagram\n"));
    assert_eq!(text.matches("    rect rgb(").count(), 2);
    assert!(text.contains("->>"));
}

/// An unknown id exits 2 with one line that suggests the nearest ids.
#[test]
fn unknown_demo_id_suggests_the_nearest() {
    let output = bughunt().args(["demo", "mesage-loss"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("bughunt: "), "{stderr}");
    assert!(stderr.contains("`message-loss`"), "{stderr}");
    assert!(output.stdout.is_empty());
}

/// Colour appears only when asked for (or on a terminal), never in a pipe by default.
#[test]
fn colour_only_when_asked() {
    let plain = stdout_of(&["demo", "persistence"]);
    assert!(!plain.contains('\u{1b}'));
    let coloured = stdout_of(&["--color", "always", "demo", "persistence"]);
    assert!(coloured.contains("\u{1b}["));
}
