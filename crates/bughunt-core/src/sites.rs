//! Bug sites: where, in a correct program, a bug can be put.
//!
//! A template's `fixed.rs` is the correct program. A *bug site* is a set of marked regions in
//! it; each region holds the correct lines and, commented out, the broken lines that replace
//! them when the site is chosen:
//!
//! ```text
//!     //~ site: pop-on-receive
//!     let message = self.take_visible()?;          <- correct (in the fixed form)
//!     //~ broken:
//!     //~ let message = self.ready.pop_front()?;    <- broken (this site's broken form)
//!     //~ end
//! ```
//!
//! The markers are comments, so `fixed.rs` compiles as it stands. Rendering the fixed form
//! drops every marker and broken line; rendering the broken form of a site swaps that
//! site's regions and keeps every other region correct. A broken line is its indentation,
//! `//~ ` and the code (or a bare `//~` for an empty line).
//!
//! This file is also compiled into the build script (which renders each demo's broken form),
//! so it depends on std alone.

/// One marked region.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Region {
    site: String,
    correct: Vec<String>,
    broken: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Plain(String),
    Region(Region),
}

/// A program with marked bug sites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marked {
    pieces: Vec<Piece>,
}

const MARK: &str = "//~";

fn unmark(line: &str, number: usize) -> Result<String, String> {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    if trimmed == MARK {
        return Ok(String::new());
    }
    match trimmed.strip_prefix("//~ ") {
        Some(code) => Ok(format!("{indent}{code}")),
        None => Err(format!(
            "line {number}: a broken line must start with `//~ ` (after its indentation)"
        )),
    }
}

impl Marked {
    /// Parses a program's bug-site markers.
    pub fn parse(source: &str) -> Result<Marked, String> {
        let mut pieces = Vec::new();
        let mut open: Option<(Region, bool, usize)> = None;
        for (index, line) in source.lines().enumerate() {
            let number = index + 1;
            let trimmed = line.trim_start();
            if let Some(site) = trimmed.strip_prefix("//~ site:") {
                if let Some((region, _, opened)) = &open {
                    return Err(format!(
                        "line {number}: site `{}` opened at line {opened} is not closed with `//~ end`",
                        region.site
                    ));
                }
                let site = site.trim().to_owned();
                if site.is_empty() {
                    return Err(format!("line {number}: `//~ site:` needs a site id"));
                }
                open = Some((
                    Region {
                        site,
                        correct: Vec::new(),
                        broken: Vec::new(),
                    },
                    false,
                    number,
                ));
                continue;
            }
            if trimmed == "//~ broken:" {
                match &mut open {
                    Some((_, in_broken @ false, _)) => *in_broken = true,
                    _ => return Err(format!("line {number}: `//~ broken:` outside a site")),
                }
                continue;
            }
            if trimmed == "//~ end" {
                match open.take() {
                    Some((region, _, _)) => pieces.push(Piece::Region(region)),
                    None => return Err(format!("line {number}: `//~ end` outside a site")),
                }
                continue;
            }
            match &mut open {
                Some((region, true, _)) => region.broken.push(unmark(line, number)?),
                Some((region, false, _)) => {
                    if trimmed.starts_with(MARK) {
                        return Err(format!(
                            "line {number}: a `//~` line before `//~ broken:` (correct lines are plain code)"
                        ));
                    }
                    region.correct.push(line.to_owned());
                }
                None => {
                    if trimmed.starts_with(MARK) {
                        return Err(format!("line {number}: unknown marker `{}`", trimmed));
                    }
                    pieces.push(Piece::Plain(line.to_owned()));
                }
            }
        }
        if let Some((region, _, opened)) = open {
            return Err(format!(
                "site `{}` opened at line {opened} is not closed with `//~ end`",
                region.site
            ));
        }
        Ok(Marked { pieces })
    }

    /// The site ids, in order of first appearance.
    pub fn sites(&self) -> Vec<String> {
        let mut sites: Vec<String> = Vec::new();
        for piece in &self.pieces {
            if let Piece::Region(region) = piece {
                if !sites.contains(&region.site) {
                    sites.push(region.site.clone());
                }
            }
        }
        sites
    }

    /// The program with `broken` sites broken (none: the fixed form). A broken form carries
    /// no `// FIX:` comment: they explain the fix, and in a learner's file they would point
    /// at every correct region and so, by their absence, at the bug.
    pub fn render(&self, broken: Option<&str>) -> String {
        let rendered = self.render_with_comments(broken);
        match broken {
            Some(_) => strip_fix_comments(&rendered),
            None => rendered,
        }
    }

    fn render_with_comments(&self, broken: Option<&str>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            let lines: &[String] = match piece {
                Piece::Plain(line) => std::slice::from_ref(line),
                Piece::Region(region) if Some(region.site.as_str()) == broken => &region.broken,
                Piece::Region(region) => &region.correct,
            };
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Drops every `// FIX:` comment: its first line and the plain `//` lines that continue it at
/// the same indentation.
pub fn strip_fix_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut block_indent: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("// FIX:") {
            block_indent = Some(indent.to_owned());
            continue;
        }
        let continues = block_indent.as_deref() == Some(indent)
            && trimmed.starts_with("//")
            && !trimmed.starts_with("///")
            && !trimmed.starts_with("//!");
        if continues {
            continue;
        }
        block_indent = None;
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRAM: &str = "use a;\n    //~ site: one\n    fixed();\n    //~ broken:\n    //~ broken();\n    //~\n    //~ end\nmiddle();\n//~ site: two\ngood();\n//~ broken:\n//~ end\n    //~ site: one\n    //~ broken:\n    //~ extra();\n    //~ end\n";

    /// The fixed form drops markers and broken lines; a site's broken form swaps only its
    /// regions, every one of them.
    #[test]
    fn renders_fixed_and_each_site() {
        let marked = Marked::parse(PROGRAM).unwrap();
        assert_eq!(marked.sites(), vec!["one", "two"]);
        assert_eq!(
            marked.render(None),
            "use a;\n    fixed();\nmiddle();\ngood();\n"
        );
        assert_eq!(
            marked.render(Some("one")),
            "use a;\n    broken();\n\nmiddle();\ngood();\n    extra();\n"
        );
        assert_eq!(
            marked.render(Some("two")),
            "use a;\n    fixed();\nmiddle();\n"
        );
    }

    /// A broken form carries no FIX comment, however long; the fixed form keeps them all.
    #[test]
    fn broken_forms_carry_no_fix_comments() {
        let program = "fn a() {\n    // FIX: why this is right,\n    // and more of why.\n    right();\n    // a plain comment stays\n    //~ site: s\n    //~ broken:\n    //~ wrong();\n    //~ end\n}\n";
        let marked = Marked::parse(program).unwrap();
        assert_eq!(
            marked.render(Some("s")),
            "fn a() {\n    right();\n    // a plain comment stays\n    wrong();\n}\n"
        );
        assert!(marked
            .render(None)
            .contains("// FIX: why this is right,\n    // and more of why."));
    }

    /// Malformed markers are errors with a line number.
    #[test]
    fn malformed_markers_are_errors() {
        let unclosed = Marked::parse("//~ site: a\nx();\n").unwrap_err();
        assert!(unclosed.contains("not closed"), "{unclosed}");
        let nested = Marked::parse("//~ site: a\n//~ site: b\n").unwrap_err();
        assert!(nested.starts_with("line 2"), "{nested}");
        let bare = Marked::parse("//~ site: a\n//~ broken:\nbroken();\n//~ end\n").unwrap_err();
        assert!(
            bare.starts_with("line 3") && bare.contains("must start with"),
            "{bare}"
        );
        let stray = Marked::parse("//~ end\n").unwrap_err();
        assert!(stray.contains("outside a site"), "{stray}");
    }
}
