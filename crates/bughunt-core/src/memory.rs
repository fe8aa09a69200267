//! The memory bank: bughunt as a good citizen in the learner's `memory-bank/` folder.
//!
//! The folder follows the memory-bank convention of AI-assisted work
//! (`projectbrief.md`, `productContext.md`, `activeContext.md`, `systemPatterns.md`,
//! `techContext.md`, `progress.md`) and holds the learner's own notes. bughunt touches it in
//! three ways only:
//!
//! - in `activeContext.md`, the `## Bug Hunt Progress` block between its two markers, and
//!   nothing else: every byte outside the markers stays as it was (the file is created if
//!   absent; the block is appended if the markers are absent; if only one marker is there,
//!   the file is left alone and a warning says why);
//! - in `systemPatterns.md`, entries appended at the end, each once;
//! - new files under `memory-bank/bug-hunts/` for explain-back answers.
//!
//! Every write is a whole new file renamed over the old one, so a crash never leaves half.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::catalog::{Catalog, Template};
use crate::home::Home;
use crate::select;
use crate::state::{HuntState, State};

/// The line that opens bughunt's block in activeContext.md.
pub const PROGRESS_START: &str =
    "<!-- bughunt:progress:start (bughunt rewrites what is between these markers; write your notes outside them) -->";
/// The line that closes it.
pub const PROGRESS_END: &str = "<!-- bughunt:progress:end -->";

/// The three explain-back questions of the brief.
pub const QUESTIONS: [&str; 3] = [
    "Why did the original code fail?",
    "How does your fix prevent the issue?",
    "What would you test to verify the fix?",
];

fn memory_dir(home: &Home) -> PathBuf {
    home.root.join("memory-bank")
}

fn replace_file(path: &Path, contents: &str) -> Result<()> {
    crate::files::replace_file(path, contents.as_bytes())
}

/// The category lines of the progress block: the brief's twelve categories in its order
/// (✅ every bug site solved, 🔄 started, ⬜ not started, ⏳ coming: no hunt yet), then every
/// other category the learner has started.
pub fn category_lines(catalog: &Catalog, state: &State) -> Vec<String> {
    select::category_progress(catalog, state)
        .into_iter()
        .filter(|c| c.curriculum_order.is_some() || c.started > 0)
        .map(|c| {
            let weeks = match c.weeks.as_slice() {
                [] => String::new(),
                [one] => format!(", week {one}"),
                [first, .., last] => format!(", weeks {first}-{last}"),
            };
            if c.coming {
                return format!("- ⏳ {} (coming{weeks})", c.title);
            }
            let mark = if c.done == c.total {
                "✅"
            } else if c.started > 0 {
                "🔄"
            } else {
                "⬜"
            };
            format!("- {mark} {} ({}/{}){weeks}", c.title, c.done, c.total)
        })
        .collect()
}

/// The block, markers included, in the brief's format.
pub fn progress_block(catalog: &Catalog, state: &State) -> String {
    let mut out = format!("{PROGRESS_START}\n## Bug Hunt Progress\n\n### Completed Categories:\n");
    let lines = category_lines(catalog, state);
    if lines.is_empty() {
        out.push_str("- (none yet: `bughunt start` begins the first hunt)\n");
    }
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("\n### Next Challenge:\n");
    match select::upcoming(catalog, state) {
        // Named, not described: a description of the bug would spoil the hunt.
        Some(pick) => out.push_str(&format!(
            "{}, {:?}: `bughunt start {}`\n",
            catalog
                .categories
                .get(&pick.template.meta.category)
                .map(|c| c.meta.title.as_str())
                .unwrap_or(&pick.template.meta.category),
            pick.difficulty(),
            pick.template.id(),
        )),
        None => out.push_str("Every bug in the catalog is solved.\n"),
    }
    out.push_str(PROGRESS_END);
    out
}

/// `existing` with its block replaced by `block` (or `block` appended). None when the markers
/// are damaged (one without the other, or out of order): then nothing may be rewritten.
pub fn with_block(existing: &str, block: &str) -> Option<String> {
    let start = existing.find(PROGRESS_START);
    let end = existing.find(PROGRESS_END);
    match (start, end) {
        (Some(start), Some(end)) if start < end => {
            let after = end + PROGRESS_END.len();
            Some(format!(
                "{}{block}{}",
                &existing[..start],
                &existing[after..]
            ))
        }
        (None, None) => {
            let separator = match existing {
                "" => "",
                text if text.ends_with("\n\n") => "",
                text if text.ends_with('\n') => "\n",
                _ => "\n\n",
            };
            Some(format!("{existing}{separator}{block}\n"))
        }
        _ => None,
    }
}

/// Rewrites the progress block of `memory-bank/activeContext.md`. A warning (never an error:
/// progress is safe in the state) when the learner's markers are damaged.
pub fn write_progress(home: &Home, catalog: &Catalog, state: &State) -> Result<Option<String>> {
    let path = memory_dir(home).join("activeContext.md");
    let existing = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            "# Active Context\n\n".to_owned()
        }
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let block = progress_block(catalog, state);
    match with_block(&existing, &block) {
        Some(updated) if updated == existing => Ok(None),
        Some(updated) => {
            replace_file(&path, &updated)?;
            Ok(None)
        }
        None if existing.contains(PROGRESS_START) && existing.contains(PROGRESS_END) => {
            Ok(Some(format!(
                "{} has bughunt's two progress markers in the wrong order (the end before the start), so the progress block was not updated; put the start marker first (or delete both) and bughunt writes it again",
                home.relative(&path)
            )))
        }
        None => Ok(Some(format!(
            "{} has only one of bughunt's two progress markers, so the progress block was not updated; put both back (or delete both) and bughunt writes it again",
            home.relative(&path)
        ))),
    }
}

/// Splits an answers file: three answers separated by lines holding only `---`.
pub fn parse_answers(text: &str) -> Result<[String; 3], String> {
    let mut answers: Vec<String> = vec![String::new()];
    for line in text.lines() {
        if line.trim() == "---" {
            answers.push(String::new());
        } else {
            let current = answers.last_mut().expect("one answer at least");
            current.push_str(line);
            current.push('\n');
        }
    }
    let answers: Vec<String> = answers.into_iter().map(|a| a.trim().to_owned()).collect();
    match <[String; 3]>::try_from(answers) {
        Ok(three) if three.iter().all(|a| !a.is_empty()) => Ok(three),
        Ok(_) => Err("one of the three answers is empty".to_owned()),
        Err(found) => Err(format!(
            "found {} answers; write three, separated by lines holding only `---`",
            found.len()
        )),
    }
}

/// Today's date in UTC, as YYYY-MM-DD.
pub fn today() -> String {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
}

/// Saves explain-back answers under `memory-bank/bug-hunts/`, never over an earlier file.
/// Returns the file's path relative to the home.
pub fn save_answers(
    home: &Home,
    template: &Template,
    hunt: &HuntState,
    answers: &[String; 3],
) -> Result<String> {
    let dir = memory_dir(home).join("bug-hunts");
    let stem = format!("{}-{}-{}", today(), hunt.template, hunt.site);
    let mut path = dir.join(format!("{stem}.md"));
    let mut attempt = 2;
    while path.exists() {
        path = dir.join(format!("{stem}-{attempt}.md"));
        attempt += 1;
    }
    let mut text = format!(
        "# Explain-back: {}\n\nTemplate `{}`, bug site `{}`, seed {}. Date: {}.\n",
        template.meta.title,
        hunt.template,
        hunt.site,
        hunt.seed,
        today()
    );
    for (number, (question, answer)) in QUESTIONS.iter().zip(answers).enumerate() {
        text.push_str(&format!("\n## {}. {question}\n\n{answer}\n", number + 1));
    }
    text.push_str("\n## Key points to compare\n\n");
    let points = template
        .site(&hunt.site)
        .map(|site| template.key_points_of(site))
        .unwrap_or(&template.meta.key_points);
    for point in points {
        text.push_str(&format!("- {point}\n"));
    }
    replace_file(&path, &text)?;
    Ok(home.relative(&path))
}

fn pattern_marker(template: &Template) -> String {
    format!("<!-- bughunt:pattern:{} -->", template.id())
}

/// Whether systemPatterns.md was changed.
#[derive(Debug, PartialEq, Eq)]
pub enum PatternAdded {
    Added(String),
    AlreadyThere(String),
    NoPattern,
}

/// Appends the template's pattern to `memory-bank/systemPatterns.md`, once.
pub fn add_pattern(home: &Home, template: &Template) -> Result<PatternAdded> {
    let Some(pattern) = &template.meta.pattern else {
        return Ok(PatternAdded::NoPattern);
    };
    let path = memory_dir(home).join("systemPatterns.md");
    let shown = home.relative(&path);
    let existing = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            "# System Patterns\n".to_owned()
        }
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let marker = pattern_marker(template);
    if existing.contains(&marker) {
        return Ok(PatternAdded::AlreadyThere(shown));
    }
    let links: Vec<String> = template
        .meta
        .resources
        .iter()
        .map(|r| format!("[{}]({})", r.title, r.url))
        .collect();
    let separator = if existing.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    let entry = format!(
        "{separator}{marker}\n## {}\n\n**Problem:** {}\n\n**Solution:** {}\n\n```rust\n{}\n```\n\n**Links:** {}\n\n_Learned in the bug hunt `{}` ({})._\n",
        pattern.name,
        pattern.problem.trim(),
        pattern.solution.trim(),
        pattern.sketch.trim_end(),
        links.join(", "),
        template.id(),
        today()
    );
    replace_file(&path, &format!("{existing}{entry}"))?;
    Ok(PatternAdded::Added(shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block replaces exactly the old block; everything around it is kept byte for byte.
    #[test]
    fn block_replaced_in_place() {
        let before = "# My context\r\nnotes  \n\n";
        let after = "\ntrailing notes without newline";
        let old = format!("{PROGRESS_START}\nold\n{PROGRESS_END}");
        let file = format!("{before}{old}{after}");
        let new_block = format!("{PROGRESS_START}\nnew\n{PROGRESS_END}");
        assert_eq!(
            with_block(&file, &new_block).unwrap(),
            format!("{before}{new_block}{after}")
        );
    }

    /// Without markers the block is appended after the learner's text, which is untouched.
    #[test]
    fn block_appended_when_absent() {
        let block = format!("{PROGRESS_START}\nx\n{PROGRESS_END}");
        assert_eq!(
            with_block("mine", &block).unwrap(),
            format!("mine\n\n{block}\n")
        );
        assert_eq!(
            with_block("mine\n", &block).unwrap(),
            format!("mine\n\n{block}\n")
        );
    }

    /// A damaged pair of markers stops the rewrite instead of eating the learner's text.
    #[test]
    fn damaged_markers_rewrite_nothing() {
        let block = format!("{PROGRESS_START}\nx\n{PROGRESS_END}");
        assert_eq!(with_block(&format!("a {PROGRESS_START} b"), &block), None);
        assert_eq!(
            with_block(&format!("{PROGRESS_END} {PROGRESS_START}"), &block),
            None
        );
    }

    /// Regression: markers in the wrong order were reported as "only one marker". The
    /// warning now says which it is, and the file is left alone either way.
    #[test]
    fn reversed_markers_are_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            root: dir.path().to_owned(),
        };
        let catalog = Catalog::embedded().unwrap();
        let state = State::new();
        let path = dir.path().join("memory-bank/activeContext.md");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let reversed = format!("notes\n{PROGRESS_END}\n{PROGRESS_START}\n");
        std::fs::write(&path, &reversed).unwrap();
        let warning = write_progress(&home, &catalog, &state).unwrap().unwrap();
        assert!(warning.contains("wrong order"), "{warning}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), reversed);
        std::fs::write(&path, format!("notes\n{PROGRESS_START}\n")).unwrap();
        let warning = write_progress(&home, &catalog, &state).unwrap().unwrap();
        assert!(warning.contains("only one"), "{warning}");
    }

    /// Answers split on `---` lines; anything but three non-empty answers is refused.
    #[test]
    fn answers_file() {
        let three = parse_answers("one\nline two\n---\ntwo\n---\nthree\n").unwrap();
        assert_eq!(
            three,
            ["one\nline two".to_owned(), "two".into(), "three".into()]
        );
        assert!(parse_answers("one\n---\ntwo\n")
            .unwrap_err()
            .contains("found 2"));
        assert!(parse_answers("one\n---\n---\nthree")
            .unwrap_err()
            .contains("empty"));
    }
}
