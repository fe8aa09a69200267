//! Choosing what to hunt next: the curriculum, adaptive steps, challenges.
//!
//! Pure functions of the catalog and the state, so every rule is tested without a home.
//! The unit is an instance's (template, bug site): a bug site solved under one seed counts
//! as solved; another seed of it is a replay, never a new challenge.

use crate::catalog::{Catalog, Difficulty, SiteToml, Template};
use crate::state::{instance_key, HuntState, State};

/// One bug site of one template.
#[derive(Clone, Copy, Debug)]
pub struct Pick<'a> {
    pub template: &'a Template,
    pub site: &'a SiteToml,
}

impl Pick<'_> {
    pub fn key(&self) -> String {
        instance_key(self.template.id(), &self.site.id)
    }

    pub fn difficulty(&self) -> Difficulty {
        self.template.difficulty_of(self.site)
    }
}

/// Every (template, site) in curriculum order: templates by week, difficulty and id; sites
/// in the order the template lists them.
pub fn curriculum(catalog: &Catalog) -> Vec<Pick<'_>> {
    let mut templates: Vec<&Template> = catalog.templates.iter().collect();
    templates.sort_by_key(|t| (t.meta.week, t.meta.difficulty, t.meta.id.clone()));
    templates.into_iter().flat_map(picks_of).collect()
}

/// Where the learner stands in one category.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CategoryProgress {
    pub id: String,
    pub title: String,
    /// Its place among the brief's twelve categories, when it is one of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curriculum_order: Option<u8>,
    /// The curriculum weeks it is taught in.
    pub weeks: Vec<u8>,
    /// Bug sites solved.
    pub done: usize,
    /// Bug sites in the category.
    pub total: usize,
    /// Bug sites started.
    pub started: usize,
    /// One of the brief's categories with no template yet.
    pub coming: bool,
}

/// Every category with where the learner stands: the brief's twelve first, in the brief's
/// order (those with no template yet marked coming), then the others in curriculum order.
pub fn category_progress(catalog: &Catalog, state: &State) -> Vec<CategoryProgress> {
    let mut brief: Vec<&crate::catalog::Category> = catalog
        .categories
        .values()
        .filter(|c| c.meta.curriculum.is_some())
        .collect();
    brief.sort_by_key(|c| c.meta.curriculum.as_ref().map(|p| p.order));
    let mut order: Vec<&crate::catalog::Category> = brief;
    for pick in curriculum(catalog) {
        let id = &pick.template.meta.category;
        if !order.iter().any(|c| &c.id == id) {
            if let Some(category) = catalog.categories.get(id) {
                order.push(category);
            }
        }
    }
    let picks = curriculum(catalog);
    order
        .into_iter()
        .map(|category| {
            let own: Vec<&Pick> = picks
                .iter()
                .filter(|p| p.template.meta.category == category.id)
                .collect();
            let mut weeks: Vec<u8> = match &category.meta.curriculum {
                Some(place) => place.weeks.clone(),
                None => own.iter().map(|p| p.template.meta.week).collect(),
            };
            weeks.sort_unstable();
            weeks.dedup();
            CategoryProgress {
                id: category.id.clone(),
                title: category.meta.title.clone(),
                curriculum_order: category.meta.curriculum.as_ref().map(|p| p.order),
                weeks,
                done: own.iter().filter(|p| solved(state, &p.key())).count(),
                total: own.len(),
                started: own
                    .iter()
                    .filter(|p| state.hunts.contains_key(&p.key()))
                    .count(),
                coming: own.is_empty(),
            }
        })
        .collect()
}

/// Every bug site of one template, in the order it lists them.
pub fn picks_of(template: &Template) -> impl Iterator<Item = Pick<'_>> {
    template
        .meta
        .sites
        .iter()
        .map(move |site| Pick { template, site })
}

/// Solved: its checks passed (a reveal is not a solve).
pub fn solved(state: &State, key: &str) -> bool {
    state.hunts.get(key).is_some_and(|h| h.passed)
}

/// The first unsolved pick in curriculum order, other than `skip`.
pub fn next_in_curriculum<'a>(
    catalog: &'a Catalog,
    state: &State,
    skip: Option<&str>,
) -> Option<Pick<'a>> {
    curriculum(catalog)
        .into_iter()
        .find(|pick| !solved(state, &pick.key()) && Some(pick.key().as_str()) != skip)
}

/// Why the next hunt was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The current hunt is not finished: go on with it.
    Unfinished,
    /// The last hunt went without hints: a harder one.
    StepUp,
    /// The last hunt needed the last hint or the fix: the same difficulty, broken elsewhere.
    SameLevelOtherSite,
    /// The curriculum's next.
    Curriculum,
}

impl Reason {
    pub fn words(self) -> &'static str {
        match self {
            Reason::Unfinished => "your hunt in progress",
            Reason::StepUp => "you solved the last one without a hint, so a harder one",
            Reason::SameLevelOtherSite => {
                "the last one took every hint, so the same level again, broken in another place"
            }
            Reason::Curriculum => "next in the curriculum",
        }
    }
}

fn finished(hunt: &HuntState) -> bool {
    hunt.passed || hunt.revealed
}

/// What `start` without an id hunts next, and why, following how the last hunt went.
pub fn adaptive_next<'a>(catalog: &'a Catalog, state: &State) -> Option<(Pick<'a>, Reason)> {
    let all = curriculum(catalog);
    let last = state.current.as_ref().and_then(|key| state.hunts.get(key));
    let Some(last) = last else {
        return next_in_curriculum(catalog, state, None).map(|p| (p, Reason::Curriculum));
    };
    if !finished(last) {
        let key = instance_key(&last.template, &last.site);
        if let Some(pick) = all.iter().find(|p| p.key() == key) {
            return Some((*pick, Reason::Unfinished));
        }
    }
    let last_key = instance_key(&last.template, &last.site);
    let last_difficulty = all
        .iter()
        .find(|p| p.key() == last_key)
        .map(|p| p.difficulty())
        .unwrap_or(Difficulty::Easy);
    let open = |pick: &&Pick| !solved(state, &pick.key()) && pick.key() != last_key;
    if last.passed && !last.revealed && last.hints_revealed <= 1 {
        if let Some(pick) = all
            .iter()
            .filter(open)
            .find(|p| p.difficulty() > last_difficulty)
        {
            return Some((*pick, Reason::StepUp));
        }
    }
    if last.revealed || last.hints_revealed >= 3 {
        let same_template = all
            .iter()
            .filter(open)
            .find(|p| p.template.id() == last.template);
        let same_level = || {
            all.iter()
                .filter(open)
                .find(|p| p.difficulty() == last_difficulty)
        };
        if let Some(pick) = same_template.or_else(same_level) {
            return Some((*pick, Reason::SameLevelOtherSite));
        }
    }
    next_in_curriculum(catalog, state, Some(&last_key)).map(|p| (p, Reason::Curriculum))
}

/// The next challenge to name (in status and the memory bank): what `start` would pick if
/// the current hunt were done, never the current hunt itself.
pub fn upcoming<'a>(catalog: &'a Catalog, state: &State) -> Option<Pick<'a>> {
    let current = state.current.clone();
    match adaptive_next(catalog, state) {
        Some((pick, _)) if Some(pick.key()) != current => Some(pick),
        _ => next_in_curriculum(catalog, state, current.as_deref()),
    }
}

/// What `challenge` offers.
#[derive(Debug)]
pub enum Challenge<'a> {
    /// A similar but different bug: same category, a template or site not solved yet.
    Next(Pick<'a>),
    /// The category is done; the next category with something left, if any.
    Exhausted {
        category: String,
        next_category: Option<String>,
    },
}

/// A similar but different bug after a pass: the same category, in another template first
/// (the same lesson in another program), then another bug site of the same template; never
/// one already solved or the current one.
pub fn challenge<'a>(catalog: &'a Catalog, state: &State, current: &HuntState) -> Challenge<'a> {
    let current_key = instance_key(&current.template, &current.site);
    let category = catalog
        .template(&current.template)
        .map(|t| t.meta.category.clone())
        .unwrap_or_default();
    let all = curriculum(catalog);
    let open: Vec<&Pick> = all
        .iter()
        .filter(|p| p.template.meta.category == category)
        .filter(|p| !solved(state, &p.key()) && p.key() != current_key)
        .collect();
    let preferred = open
        .iter()
        .find(|p| p.template.id() != current.template)
        .or(open.first());
    if let Some(pick) = preferred {
        return Challenge::Next(**pick);
    }
    let next_category = all
        .iter()
        .find(|p| p.template.meta.category != category && !solved(state, &p.key()))
        .map(|p| p.template.meta.category.clone());
    Challenge::Exhausted {
        category,
        next_category,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::embedded().unwrap()
    }

    fn hunt(pick: &Pick, hints: u8, passed: bool, revealed: bool) -> HuntState {
        HuntState {
            template: pick.template.id().to_owned(),
            site: pick.site.id.clone(),
            seed: 1,
            number: 1,
            dir: String::new(),
            hints_revealed: hints,
            checks_run: 1,
            passed,
            revealed,
            last_failed_stage: None,
            started_unix: 0,
            passed_unix: None,
        }
    }

    fn with(state: &mut State, pick: &Pick, hunt_state: HuntState) {
        state.hunts.insert(pick.key(), hunt_state);
        state.current = Some(pick.key());
    }

    /// A fresh home starts at the first bug site of the earliest, easiest template.
    #[test]
    fn fresh_home_follows_the_curriculum() {
        let catalog = catalog();
        let (pick, reason) = adaptive_next(&catalog, &State::new()).unwrap();
        assert_eq!(reason, Reason::Curriculum);
        let first = &curriculum(&catalog)[0];
        assert_eq!(pick.key(), first.key());
        assert_eq!(pick.template.meta.week, 1);
    }

    /// An unfinished hunt is resumed, not skipped.
    #[test]
    fn unfinished_is_resumed() {
        let catalog = catalog();
        let picks = curriculum(&catalog);
        let mut state = State::new();
        with(&mut state, &picks[3], hunt(&picks[3], 2, false, false));
        let (pick, reason) = adaptive_next(&catalog, &state).unwrap();
        assert_eq!((pick.key(), reason), (picks[3].key(), Reason::Unfinished));
    }

    /// Solved with no hint: the next pick is harder than the last.
    #[test]
    fn no_hints_steps_up() {
        let catalog = catalog();
        let picks = curriculum(&catalog);
        let easy = picks
            .iter()
            .find(|p| p.difficulty() == Difficulty::Easy)
            .unwrap();
        let mut state = State::new();
        with(&mut state, easy, hunt(easy, 1, true, false));
        let (pick, reason) = adaptive_next(&catalog, &state).unwrap();
        assert_eq!(reason, Reason::StepUp);
        assert!(pick.difficulty() > Difficulty::Easy);
    }

    /// Needed hint 3 (or the fix): the same difficulty, another bug site of the same
    /// template when there is one.
    #[test]
    fn hard_going_stays_level_on_another_site() {
        let catalog = catalog();
        let picks = curriculum(&catalog);
        let template = catalog
            .templates
            .iter()
            .find(|t| t.meta.sites.len() >= 2)
            .expect("a template with two bug sites");
        let first = picks
            .iter()
            .find(|p| p.template.id() == template.id())
            .unwrap();
        for (hints, revealed) in [(3, false), (1, true)] {
            let mut state = State::new();
            with(&mut state, first, hunt(first, hints, !revealed, revealed));
            let (pick, reason) = adaptive_next(&catalog, &state).unwrap();
            assert_eq!(reason, Reason::SameLevelOtherSite);
            assert_eq!(pick.template.id(), template.id());
            assert_ne!(pick.site.id, first.site.id);
        }
    }

    /// A challenge stays in the category, never repeats a solved bug site, and says when the
    /// category is exhausted, proposing the next one.
    #[test]
    fn challenges_do_not_repeat_and_run_out() {
        let catalog = catalog();
        let category = "message-loss";
        let picks: Vec<Pick> = curriculum(&catalog)
            .into_iter()
            .filter(|p| p.template.meta.category == category)
            .collect();
        assert!(picks.len() >= 2);
        let mut state = State::new();
        let mut seen = Vec::new();
        let mut current = hunt(&picks[0], 1, true, false);
        with(&mut state, &picks[0], current.clone());
        seen.push(picks[0].key());
        loop {
            match challenge(&catalog, &state, &current) {
                Challenge::Next(pick) => {
                    assert_eq!(pick.template.meta.category, category);
                    assert!(!seen.contains(&pick.key()), "{} offered twice", pick.key());
                    seen.push(pick.key());
                    current = hunt(&pick, 1, true, false);
                    with(&mut state, &pick, current.clone());
                }
                Challenge::Exhausted {
                    category: done,
                    next_category,
                } => {
                    assert_eq!(done, category);
                    assert!(next_category.is_some_and(|next| next != category));
                    break;
                }
            }
        }
        assert_eq!(
            seen.len(),
            picks.len(),
            "every bug site of the category was offered once"
        );
    }
}
