//! The learning loop around the hunts: the memory bank, explain-back, patterns, resources,
//! the session summary and `bughunt for`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use bughunt_core::catalog::Catalog;
use serde_json::Value;

fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("shared-target")
}

fn bughunt(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::cargo_bin("bughunt")
        .unwrap()
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .env("BUGHUNT_NO_PREBUILD", "1")
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(900))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = bughunt(dir, args);
    assert_eq!(code, Some(0), "bughunt {args:?}:\n{stdout}\n{stderr}");
    stdout
}

const START: &str = "<!-- bughunt:progress:start (bughunt rewrites what is between these markers; write your notes outside them) -->";
const END: &str = "<!-- bughunt:progress:end -->";

/// A home whose activeContext.md holds the learner's text before and after bughunt's block;
/// a full hunt, then `explain --answers FILE --add-pattern` twice. The learner's text is
/// unchanged byte for byte, the block is in the brief's format with the right counts, both
/// sets of answers are saved, systemPatterns.md holds the pattern once, and the other
/// memory-bank files are untouched.
#[test]
fn memory_bank_explain_back_and_patterns() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init", "home", "--no-build"]);
    let home = dir.path().join("home");
    let bank = home.join("memory-bank");
    let before = "# Active Context\r\n\nMy current focus: queues.  \n\n";
    let after = "\n\n## My own notes\n- keep this exactly\n";
    std::fs::write(
        bank.join("activeContext.md"),
        format!("{before}{START}\nold\n{END}{after}"),
    )
    .unwrap();
    std::fs::write(bank.join("projectbrief.md"), "my brief\n").unwrap();

    ok(&home, &["start", "message-loss", "--seed", "5"]);
    let status: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
    let lib = home.join(status["current"]["path"].as_str().unwrap());
    let catalog = Catalog::embedded().unwrap();
    let template = catalog
        .template(status["current"]["id"].as_str().unwrap())
        .unwrap();
    let sites = template.meta.sites.len();
    let (code, _, _) = bughunt(&home, &["check", "--timeout", "600"]);
    assert_eq!(code, Some(1));
    std::fs::write(&lib, template.fixed_rs(5)).unwrap();
    let passed = ok(&home, &["check", "--timeout", "600"]);
    assert!(passed.contains("Every check passes"), "{passed}");

    let answers = dir.path().join("answers.txt");
    std::fs::write(
        &answers,
        "receive deleted the message\n---\nit stays in flight until acked\n---\ncrash a consumer before ack\n",
    )
    .unwrap();
    let answers_arg = answers.to_str().unwrap();
    for _ in 0..2 {
        let explained = ok(
            &home,
            &["explain", "--answers", answers_arg, "--add-pattern"],
        );
        assert!(explained.contains("KEY POINTS"), "{explained}");
        assert!(
            explained.contains("Your answers are saved in memory-bank/bug-hunts/"),
            "{explained}"
        );
    }

    let context = std::fs::read_to_string(bank.join("activeContext.md")).unwrap();
    assert!(
        context.starts_with(before),
        "text before the block changed:\n{context}"
    );
    assert!(
        context.ends_with(after),
        "text after the block changed:\n{context}"
    );
    let block = &context[context.find(START).unwrap()..context.find(END).unwrap() + END.len()];
    assert!(
        block.contains("## Bug Hunt Progress\n\n### Completed Categories:\n"),
        "{block}"
    );
    let mark = if sites == 1 { "✅" } else { "🔄" };
    assert!(
        block.contains(&format!("- {mark} Message loss (1/{sites})")),
        "{block}"
    );
    assert!(block.contains("### Next Challenge:\n"), "{block}");
    assert!(!block.contains("old"));

    let saved: Vec<_> = std::fs::read_dir(bank.join("bug-hunts")).unwrap().collect();
    assert_eq!(saved.len(), 2, "each explain-back is kept");
    let first = std::fs::read_dir(bank.join("bug-hunts"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let first = std::fs::read_to_string(first).unwrap();
    assert!(
        first.contains("Why did the original code fail?")
            && first.contains("receive deleted the message")
    );

    let patterns = std::fs::read_to_string(bank.join("systemPatterns.md")).unwrap();
    let marker = format!("<!-- bughunt:pattern:{} -->", template.id());
    assert_eq!(patterns.matches(&marker).count(), 1, "{patterns}");
    assert!(patterns.contains("**Problem:**") && patterns.contains("```rust"));
    assert_eq!(
        std::fs::read_to_string(bank.join("projectbrief.md")).unwrap(),
        "my brief\n"
    );
}

/// Without a terminal and without --answers, explain-back is skipped with a word on how to
/// give the answers, never a hang; without --add-pattern nothing is added.
#[test]
fn explain_back_skipped_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init", "home", "--no-build"]);
    let home = dir.path().join("home");
    ok(&home, &["start", "message-loss", "--seed", "2"]);
    let status: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
    let lib = home.join(status["current"]["path"].as_str().unwrap());
    let catalog = Catalog::embedded().unwrap();
    let template = catalog
        .template(status["current"]["id"].as_str().unwrap())
        .unwrap();
    std::fs::write(&lib, template.fixed_rs(2)).unwrap();
    ok(&home, &["check", "--timeout", "600"]);
    let explained = ok(&home, &["explain"]);
    assert!(explained.contains("WHAT'S WRONG:"));
    assert!(
        explained.contains("Explain-back skipped") && explained.contains("--answers FILE"),
        "{explained}"
    );
    assert!(!home.join("memory-bank/systemPatterns.md").exists());
    assert!(!home.join("memory-bank/bug-hunts").exists());
}

/// `bughunt for` maps the brief's four triggers, takes synonyms and several words, and lists
/// the known topics for one it does not know (exit 2, one line).
#[test]
fn for_maps_the_briefs_triggers() {
    let dir = tempfile::tempdir().unwrap();
    for (topic, title) in [
        (&["message", "acknowledgment"][..], "Message loss"),
        (&["persistence"], "Persistence"),
        (&["consumer", "groups"], "Consumer starvation"),
        (&["shutdown"], "Shutdown leaks"),
        (&["graceful", "shutdown"], "Shutdown leaks"),
        (&["fsync"], "Persistence"),
        (&["ack"], "Message loss"),
    ] {
        let mut args = vec!["for"];
        args.extend_from_slice(topic);
        let page = ok(dir.path(), &args);
        let first = page.lines().nth(2).unwrap_or_default();
        assert!(first.starts_with(title), "for {topic:?}: {page}");
        assert!(page.contains("bughunt start "));
    }
    let (code, stdout, stderr) = bughunt(dir.path(), &["for", "css", "grid"]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1);
    assert!(
        stderr.contains("known topics:") && stderr.contains("fsync"),
        "{stderr}"
    );
}

/// `bughunt` alone in a home opens the session: categories covered with an understanding
/// level, and the next challenge; outside a home it shows the way in.
#[test]
fn session_start() {
    let dir = tempfile::tempdir().unwrap();
    let outside = ok(dir.path(), &[]);
    assert!(outside.contains("bughunt init"), "{outside}");
    ok(dir.path(), &["init", "home", "--no-build"]);
    let home = dir.path().join("home");
    ok(&home, &["start", "race-conditions"]);
    ok(&home, &["hint"]);
    let session = ok(&home, &[]);
    assert!(session.contains("Welcome back"), "{session}");
    assert!(
        session.contains("Race conditions") && session.contains("understanding"),
        "{session}"
    );
    assert!(session.contains("Next challenge:"), "{session}");
}

/// Solving the last bug site of a category lists its resources: real links, once each.
#[test]
fn completing_a_category_lists_its_resources() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init", "home", "--no-build"]);
    let home = dir.path().join("home");
    let catalog = Catalog::embedded().unwrap();
    let templates = catalog.in_category("race-conditions");
    let mut last_page = String::new();
    for template in &templates {
        for site in &template.meta.sites {
            ok(
                &home,
                &["start", template.id(), "--site", &site.id, "--seed", "3"],
            );
            let status: Value = serde_json::from_str(&ok(&home, &["status", "--json"])).unwrap();
            let lib = home.join(status["current"]["path"].as_str().unwrap());
            std::fs::write(&lib, template.fixed_rs(3)).unwrap();
            last_page = ok(&home, &["check", "--timeout", "600"]);
            let complete = last_page.contains("Category complete: Race conditions");
            let is_last = std::ptr::eq(site, templates.last().unwrap().meta.sites.last().unwrap());
            assert_eq!(complete, is_last, "{last_page}");
        }
    }
    for resource in templates.iter().flat_map(|t| &t.meta.resources) {
        assert_eq!(last_page.matches(&resource.url).count(), 1, "{last_page}");
    }
    let context = std::fs::read_to_string(home.join("memory-bank/activeContext.md")).unwrap();
    assert!(context.contains("- ✅ Race conditions"), "{context}");
}
