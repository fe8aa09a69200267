//! The generator: an instance is (template, bug site, seed).
//!
//! The bug site picks where and how the lesson breaks (see [`crate::sites`]). The seed picks
//! the names and constants, from the template's `[vary]` vocabulary, and applies them to
//! everything the learner sees of that instance alike: the program, its checks, its hints.
//! Seed 0 is the template as written; any other seed draws each name and constant with a
//! small deterministic generator (splitmix64 over the seed and the template id), so the
//! same seed always gives the same bytes, on every machine.

use crate::catalog::{SiteToml, Template};

/// The names and constants one seed chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// (word as written, word chosen)
    pub names: Vec<(String, String)>,
    /// (constant name, value chosen); None keeps the value as written.
    pub constants: Vec<(String, Option<String>)>,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv64(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The variant of `template` for `seed`.
pub fn variant(template: &Template, seed: u64) -> Variant {
    let vary = &template.meta.vary;
    if seed == 0 {
        return Variant {
            names: vary
                .names
                .iter()
                .map(|n| (n.word.clone(), n.word.clone()))
                .collect(),
            constants: vary
                .constants
                .iter()
                .map(|c| (c.name.clone(), None))
                .collect(),
        };
    }
    let mut state = seed ^ fnv64(template.id());
    let mut pick = |count: usize| (splitmix64(&mut state) % count as u64) as usize;
    // Each name is drawn from its choices and the word itself, so any seed may keep it;
    // names never collide (a choice taken by an earlier word is skipped).
    let mut names: Vec<(String, String)> = Vec::new();
    for name in &vary.names {
        let mut options: Vec<&String> = std::iter::once(&name.word).chain(&name.choices).collect();
        options.retain(|option| !names.iter().any(|(_, taken)| taken == *option));
        let chosen = if options.is_empty() {
            name.word.clone()
        } else {
            options[pick(options.len())].clone()
        };
        names.push((name.word.clone(), chosen));
    }
    let constants = vary
        .constants
        .iter()
        .map(|constant| {
            let index = pick(constant.choices.len() + 1);
            (constant.name.clone(), constant.choices.get(index).cloned())
        })
        .collect();
    Variant { names, constants }
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `word` appears in `text` as a whole identifier.
pub fn has_word(text: &str, word: &str) -> bool {
    replace_word(text, word, "\u{0}") != text
}

/// Replaces every whole-identifier occurrence of `word` in `text`.
pub fn replace_word(text: &str, word: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut previous: Option<char> = None;
    while let Some(found) = rest.find(word) {
        let before = rest[..found].chars().next_back().or(previous);
        let after = rest[found + word.len()..].chars().next();
        out.push_str(&rest[..found]);
        let whole =
            !before.is_some_and(is_identifier_char) && !after.is_some_and(is_identifier_char);
        out.push_str(if whole { with } else { word });
        previous = word.chars().next_back();
        rest = &rest[found + word.len()..];
    }
    out.push_str(rest);
    out
}

/// Sets the value of every `const NAME: T = value;` in `text`.
fn set_constant(text: &str, name: &str, value: &str) -> String {
    let declared = format!("const {name}:");
    text.lines()
        .map(
            |line| match (line.find(&declared), line.find('='), line.rfind(';')) {
                (Some(at), Some(equals), Some(end)) if at < equals && equals < end => {
                    format!("{} {value}{}", &line[..=equals], &line[end..])
                }
                _ => line.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" }
}

impl Variant {
    /// Applies the chosen names and constants to `text`.
    pub fn apply(&self, text: &str) -> String {
        // Through placeholders, so a name chosen for one word is never renamed by another.
        let mut out = text.to_owned();
        for (index, (word, _)) in self.names.iter().enumerate() {
            out = replace_word(&out, word, &format!("\u{1}{index}\u{1}"));
        }
        for (index, (_, chosen)) in self.names.iter().enumerate() {
            out = out.replace(&format!("\u{1}{index}\u{1}"), chosen);
        }
        for (name, value) in &self.constants {
            if let Some(value) = value {
                out = set_constant(&out, name, value);
            }
        }
        out
    }
}

impl Template {
    /// The fixed form for `seed`, bug-site markers removed.
    pub fn fixed_rs(&self, seed: u64) -> String {
        variant(self, seed).apply(&self.marked.render(None))
    }

    /// The broken form of `site` for `seed`.
    pub fn broken_rs(&self, site: &str, seed: u64) -> String {
        variant(self, seed).apply(&self.marked.render(Some(site)))
    }

    /// The named wrong fix or correct alternative (a variant of fixed.rs) for `seed`.
    pub fn variant_rs(&self, name: &str, seed: u64) -> String {
        variant(self, seed).apply(&self.marked.render_variant(name))
    }

    /// The checks for `seed`.
    pub fn checks_for(&self, seed: u64) -> String {
        variant(self, seed).apply(self.checks_rs)
    }

    /// The hints of `site` for `seed`.
    pub fn hints_for(&self, site: &SiteToml, seed: u64) -> Vec<String> {
        let variant = variant(self, seed);
        site.hints.iter().map(|hint| variant.apply(hint)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only whole identifiers are replaced.
    #[test]
    fn whole_words_only() {
        assert_eq!(
            replace_word(
                "Queue::new(); let q: JobQueue = Queue_x; Queue",
                "Queue",
                "Mailbox"
            ),
            "Mailbox::new(); let q: JobQueue = Queue_x; Mailbox"
        );
        assert!(has_word("a Queue b", "Queue"));
        assert!(!has_word("Queues", "Queue"));
    }

    /// Constants change value where declared, nowhere else.
    #[test]
    fn constants_change_where_declared() {
        let text = "pub const TIMEOUT_MS: u64 = 30_000;\nlet x = TIMEOUT_MS;\n";
        assert_eq!(
            set_constant(text, "TIMEOUT_MS", "5_000"),
            "pub const TIMEOUT_MS: u64 = 5_000;\nlet x = TIMEOUT_MS;\n"
        );
    }

    /// Swapping two names through placeholders never renames twice.
    #[test]
    fn names_never_chain() {
        let variant = Variant {
            names: vec![("A".into(), "B".into()), ("B".into(), "A".into())],
            constants: Vec::new(),
        };
        assert_eq!(variant.apply("A B"), "B A");
    }
}
