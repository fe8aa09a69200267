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
//! A region may also hold other endings of the same lines, each named: `//~ wrong: NAME` (a
//! plausible fix that is not one, which must fail the checks) and `//~ alt: NAME` (a correct
//! fix unlike the reference, which must pass them). A variant may span several regions; where
//! a region has no lines for it, the variant keeps the correct ones. A region that belongs to
//! no bug site (`//~ region`) holds only variants:
//!
//! ```text
//!     //~ site: pop-on-receive
//!     let message = self.take_visible()?;
//!     //~ broken:
//!     //~ let message = self.ready.pop_front()?;
//!     //~ wrong: peek-instead-of-pop
//!     //~ let message = self.ready.front().cloned()?;
//!     //~ alt: scan-for-visible
//!     //~ let message = self.scan_visible()?;
//!     //~ end
//! ```
//!
//! This file is also compiled into the build script (which renders each demo's broken form),
//! so it depends on std alone.

/// What a named variant is meant to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VariantKind {
    /// A plausible fix that is not one: it must fail the checks.
    Wrong,
    /// A correct fix unlike the reference: it must pass them.
    Alt,
}

impl VariantKind {
    pub fn marker(self) -> &'static str {
        match self {
            VariantKind::Wrong => "wrong",
            VariantKind::Alt => "alt",
        }
    }
}

/// One marked region.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Region {
    /// The bug site it belongs to; none for a `//~ region` that holds only variants.
    site: Option<String>,
    correct: Vec<String>,
    broken: Vec<String>,
    variants: Vec<(VariantKind, String, Vec<String>)>,
}

/// Which lines of an open region the parser is reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Correct,
    Broken,
    Variant,
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
        let mut open: Option<(Region, Section, usize)> = None;
        for (index, line) in source.lines().enumerate() {
            let number = index + 1;
            let trimmed = line.trim_start();
            let opens = if let Some(site) = trimmed.strip_prefix("//~ site:") {
                let site = site.trim().to_owned();
                if site.is_empty() {
                    return Err(format!("line {number}: `//~ site:` needs a site id"));
                }
                Some(Some(site))
            } else if trimmed == "//~ region" {
                Some(None)
            } else {
                None
            };
            if let Some(site) = opens {
                if let Some((region, _, opened)) = &open {
                    return Err(format!(
                        "line {number}: the region opened at line {opened} ({}) is not closed with `//~ end`",
                        region.site.as_deref().unwrap_or("no site")
                    ));
                }
                let region = Region {
                    site,
                    correct: Vec::new(),
                    broken: Vec::new(),
                    variants: Vec::new(),
                };
                open = Some((region, Section::Correct, number));
                continue;
            }
            if trimmed == "//~ broken:" {
                match &mut open {
                    Some((region, section @ Section::Correct, _)) if region.site.is_some() => {
                        *section = Section::Broken
                    }
                    Some((region, _, _)) if region.site.is_none() => {
                        return Err(format!(
                            "line {number}: `//~ broken:` in a `//~ region` (only sites have broken lines)"
                        ))
                    }
                    Some(_) => {
                        return Err(format!(
                            "line {number}: `//~ broken:` must come first, right after the correct lines"
                        ))
                    }
                    None => return Err(format!("line {number}: `//~ broken:` outside a site")),
                }
                continue;
            }
            let variant = [VariantKind::Wrong, VariantKind::Alt]
                .into_iter()
                .find_map(|kind| {
                    trimmed
                        .strip_prefix("//~ ")
                        .and_then(|rest| rest.strip_prefix(kind.marker()))
                        .and_then(|rest| rest.strip_prefix(':'))
                        .map(|name| (kind, name.trim().to_owned()))
                });
            if let Some((kind, name)) = variant {
                let Some((region, section, _)) = &mut open else {
                    return Err(format!(
                        "line {number}: `//~ {}:` outside a region",
                        kind.marker()
                    ));
                };
                if name.is_empty() {
                    return Err(format!(
                        "line {number}: `//~ {}:` needs a name",
                        kind.marker()
                    ));
                }
                if region.variants.iter().any(|(_, seen, _)| *seen == name) {
                    return Err(format!(
                        "line {number}: `{name}` appears twice in one region"
                    ));
                }
                region.variants.push((kind, name, Vec::new()));
                *section = Section::Variant;
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
                Some((region, Section::Broken, _)) => region.broken.push(unmark(line, number)?),
                Some((region, Section::Variant, _)) => {
                    let code = unmark(line, number)?;
                    if let Some((_, _, lines)) = region.variants.last_mut() {
                        lines.push(code);
                    }
                }
                Some((region, Section::Correct, _)) => {
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
                "the region opened at line {opened} ({}) is not closed with `//~ end`",
                region.site.as_deref().unwrap_or("no site")
            ));
        }
        let marked = Marked { pieces };
        for (kind, name) in marked.variants() {
            if let Some((other, _)) = marked
                .variants()
                .into_iter()
                .find(|(other, seen)| *seen == name && *other != kind)
            {
                return Err(format!(
                    "`{name}` is both a `//~ {}:` and a `//~ {}:` variant",
                    kind.marker(),
                    other.marker()
                ));
            }
        }
        Ok(marked)
    }

    /// The named variants (wrong fixes and correct alternatives), in order of first
    /// appearance.
    pub fn variants(&self) -> Vec<(VariantKind, String)> {
        let mut variants: Vec<(VariantKind, String)> = Vec::new();
        for piece in &self.pieces {
            if let Piece::Region(region) = piece {
                for (kind, name, _) in &region.variants {
                    if !variants.iter().any(|(k, n)| k == kind && n == name) {
                        variants.push((*kind, name.clone()));
                    }
                }
            }
        }
        variants
    }

    /// The program with the variant `name` in every region that has it and the correct lines
    /// everywhere else, without `// FIX:` comments (a learner's file has none).
    pub fn render_variant(&self, name: &str) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            let lines: &[String] = match piece {
                Piece::Plain(line) => std::slice::from_ref(line),
                Piece::Region(region) => region
                    .variants
                    .iter()
                    .find(|(_, seen, _)| seen == name)
                    .map(|(_, _, lines)| lines.as_slice())
                    .unwrap_or(&region.correct),
            };
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        strip_fix_comments(&out)
    }

    /// The site ids, in order of first appearance.
    pub fn sites(&self) -> Vec<String> {
        let mut sites: Vec<String> = Vec::new();
        for piece in &self.pieces {
            if let Piece::Region(Region {
                site: Some(site), ..
            }) = piece
            {
                if !sites.contains(site) {
                    sites.push(site.clone());
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
                Piece::Region(region)
                    if region.site.is_some() && region.site.as_deref() == broken =>
                {
                    &region.broken
                }
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

    /// A variant takes its lines in every region that has it (sites and plain regions
    /// alike) and the correct lines elsewhere; FIX comments go, and sites ignore variants.
    #[test]
    fn renders_variants_across_regions() {
        let program = "//~ site: s\n// FIX: why\nright();\n//~ broken:\n//~ broken();\n//~ wrong: w\n//~ almost();\n//~ alt: a\n//~ other_right();\n//~ end\nmiddle();\n//~ region\nkept();\n//~ wrong: w\n//~ also_wrong();\n//~ end\n";
        let marked = Marked::parse(program).unwrap();
        assert_eq!(marked.sites(), vec!["s"]);
        assert_eq!(
            marked.variants(),
            vec![
                (VariantKind::Wrong, "w".to_owned()),
                (VariantKind::Alt, "a".to_owned())
            ]
        );
        assert_eq!(
            marked.render_variant("w"),
            "almost();\nmiddle();\nalso_wrong();\n"
        );
        assert_eq!(
            marked.render_variant("a"),
            "other_right();\nmiddle();\nkept();\n"
        );
        assert_eq!(marked.render(Some("s")), "broken();\nmiddle();\nkept();\n");
        assert_eq!(
            marked.render(None),
            "// FIX: why\nright();\nmiddle();\nkept();\n"
        );
    }

    /// Variant markers out of place are errors.
    #[test]
    fn malformed_variants_are_errors() {
        let broken_after =
            Marked::parse("//~ site: s\nx();\n//~ wrong: w\n//~ y();\n//~ broken:\n//~ end\n")
                .unwrap_err();
        assert!(broken_after.contains("must come first"), "{broken_after}");
        let broken_in_region =
            Marked::parse("//~ region\nx();\n//~ broken:\n//~ end\n").unwrap_err();
        assert!(
            broken_in_region.contains("only sites"),
            "{broken_in_region}"
        );
        let both = Marked::parse(
            "//~ region\nx();\n//~ wrong: v\n//~ end\n//~ region\ny();\n//~ alt: v\n//~ end\n",
        )
        .unwrap_err();
        assert!(both.contains("both"), "{both}");
        let outside = Marked::parse("//~ alt: a\n").unwrap_err();
        assert!(outside.contains("outside a region"), "{outside}");
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
