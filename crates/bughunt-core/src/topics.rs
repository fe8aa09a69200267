//! `bughunt for TOPIC`: from what you are implementing to the hunts that show how it breaks.
//!
//! The brief's generation triggers (acknowledgment → message loss, persistence → crash data
//! loss, consumer groups → consumer starvation, shutdown → leaked consumer) and their
//! synonyms live as data, in each category's `triggers`. A topic matches a trigger when they
//! are the same words, when one holds the other's words, or when they are a typo apart.

use crate::catalog::{Catalog, Category};

/// Lower case, `-` and `_` as spaces, single spaces.
fn normalize(text: &str) -> String {
    text.to_lowercase()
        .replace(['-', '_', '/'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Words that carry no topic.
const STOP_WORDS: [&str; 12] = [
    "a",
    "an",
    "the",
    "of",
    "for",
    "and",
    "to",
    "in",
    "on",
    "my",
    "with",
    "implementing",
];

fn words(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(w))
        .map(|w| w.trim_end_matches('s').to_owned())
        .collect()
}

/// How well `topic` matches `trigger` (both normalized): 0 is not at all.
fn score(topic: &str, trigger: &str) -> u32 {
    if topic == trigger {
        return 100;
    }
    let topic_words = words(topic);
    let trigger_words = words(trigger);
    if topic_words.is_empty() || trigger_words.is_empty() {
        return 0;
    }
    if topic_words == trigger_words {
        return 90;
    }
    let all_in = |needles: &[String], hay: &[String]| needles.iter().all(|n| hay.contains(n));
    if all_in(&trigger_words, &topic_words) {
        return 60 + trigger_words.len() as u32;
    }
    if all_in(&topic_words, &trigger_words) {
        return 50;
    }
    if strsim::normalized_damerau_levenshtein(topic, trigger) >= 0.8 {
        return 40;
    }
    0
}

/// One category that fits the topic, best first.
pub struct Match<'a> {
    pub category: &'a Category,
    /// The trigger that matched best.
    pub trigger: &'a str,
    pub score: u32,
}

/// The longest topic accepted: a topic is a few words, and matching costs time in its length.
pub const TOPIC_CHARS_MAX: usize = 200;

/// Refuses a topic too long to be one, in words that say what a topic is.
pub fn check_topic(topic: &str) -> anyhow::Result<()> {
    let chars = topic.chars().count();
    if chars > TOPIC_CHARS_MAX {
        anyhow::bail!(
            "a topic is a few words, like \"ack\" or \"graceful shutdown\", and this one has {chars} characters (at most {TOPIC_CHARS_MAX})"
        );
    }
    Ok(())
}

/// The categories whose triggers match `topic`, best first.
pub fn matches<'a>(catalog: &'a Catalog, topic: &str) -> Vec<Match<'a>> {
    let topic = normalize(topic);
    let mut found: Vec<Match> = catalog
        .categories
        .values()
        // A category with no hunt yet (a coming one) has nothing to offer.
        .filter(|category| !catalog.in_category(&category.id).is_empty())
        .filter_map(|category| {
            category
                .meta
                .triggers
                .iter()
                .map(|trigger| (score(&topic, &normalize(trigger)), trigger.as_str()))
                .max_by_key(|(score, _)| *score)
                .filter(|(score, _)| *score > 0)
                .map(|(score, trigger)| Match {
                    category,
                    trigger,
                    score,
                })
        })
        .collect();
    found.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| a.category.id.cmp(&b.category.id))
    });
    // Keep the clear winners: everything within reach of the best.
    if let Some(best) = found.first().map(|m| m.score) {
        found.retain(|m| m.score * 2 >= best);
    }
    found
}

/// Every trigger, sorted, for the "known topics" list.
pub fn known_topics(catalog: &Catalog) -> Vec<String> {
    let mut all: Vec<String> = catalog
        .categories
        .values()
        .filter(|category| !catalog.in_category(&category.id).is_empty())
        .flat_map(|c| c.meta.triggers.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn best(topic: &str) -> String {
        let catalog = Catalog::embedded().unwrap();
        matches(&catalog, topic)
            .first()
            .map(|m| m.category.id.clone())
            .unwrap_or_default()
    }

    /// The brief's four generation triggers land where the brief says.
    #[test]
    fn the_briefs_triggers() {
        assert_eq!(best("message acknowledgment"), "message-loss");
        assert_eq!(best("persistence"), "persistence");
        assert_eq!(best("consumer groups"), "consumer-starvation");
        assert_eq!(best("shutdown"), "shutdown-leak");
    }

    /// Synonyms, several words, odd case and a typo still find their hunt.
    #[test]
    fn synonyms_and_typos() {
        assert_eq!(best("ack"), "message-loss");
        assert_eq!(best("fsync"), "persistence");
        assert_eq!(best("Graceful-Shutdown"), "shutdown-leak");
        assert_eq!(best("consumer group"), "consumer-starvation");
        assert_eq!(best("write ahead log"), "persistence");
        assert_eq!(best("idempotency"), "duplicate-delivery");
        assert_eq!(best("backpresure"), "consumer-starvation");
    }

    /// Nothing matches a topic bughunt knows nothing of.
    #[test]
    fn unknown_topics_match_nothing() {
        let catalog = Catalog::embedded().unwrap();
        assert!(matches(&catalog, "css grid layout").is_empty());
        assert!(known_topics(&catalog).contains(&"fsync".to_owned()));
    }
}
