//! The catalog loader: the built-in catalog is well-formed, and malformed scenario files are
//! errors that name the file and the field.

use bughunt_core::catalog::{Catalog, Checker};
use include_dir::{include_dir, Dir};

/// The catalog built into bughunt loads, and holds the five seed families and the probes.
#[test]
fn the_embedded_catalog_is_well_formed() {
    let catalog = Catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
    for category in [
        "message-loss",
        "duplicate-delivery",
        "consumer-starvation",
        "persistence",
        "shutdown-leak",
    ] {
        let templates = catalog.in_category(category);
        assert!(!templates.is_empty(), "no template for {category}");
        assert!(
            templates.iter().any(|t| t.meta.demo.is_some()),
            "{category} needs a demo"
        );
    }
    for checker in [Checker::Shuttle, Checker::Loom, Checker::Tokio] {
        assert!(
            catalog.templates.iter().any(|t| t.meta.checker == checker),
            "no template explores with {checker:?}"
        );
    }
    for template in &catalog.templates {
        let meta = &template.meta;
        assert!(
            meta.wrong_fixes.len() >= 5 && meta.alternatives.len() >= 3,
            "{}: every template proves its checks fair with five wrong fixes and three correct alternatives (has {} and {})",
            template.folder,
            meta.wrong_fixes.len(),
            meta.alternatives.len()
        );
        assert!(
            meta.sites.len() >= 2,
            "{}: every template breaks in more than one place",
            template.folder
        );
    }
}

/// A `wrong/` folder of whole-file wrong fixes is refused, with the way to move them into
/// fixed.rs: whole-file copies drift from the program they copy.
#[test]
fn whole_file_wrong_fixes_are_refused() {
    let message = load_error("wrong-folder");
    assert!(
        message.starts_with("scenarios/cat-a/tpl-a/wrong"),
        "{message}"
    );
    assert!(message.contains("`//~ wrong: NAME` variants"), "{message}");
}

static FIXTURES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/tests/fixtures");

fn fixture(case: &str) -> &'static Dir<'static> {
    FIXTURES
        .get_dir(case)
        .unwrap_or_else(|| panic!("no fixture {case}"))
}

fn load_error(case: &str) -> String {
    match Catalog::from_dir(fixture(case)) {
        Ok(_) => panic!("a malformed catalog loaded"),
        Err(error) => error.to_string(),
    }
}

/// The fixture the malformed ones are made from loads.
#[test]
fn a_well_formed_fixture_loads() {
    let catalog = Catalog::from_dir(fixture("good")).unwrap();
    assert_eq!(catalog.templates.len(), 1);
    assert_eq!(catalog.categories["cat-a"].meta.title, "Category A");
}

macro_rules! malformed {
    ($name:ident, $case:literal, $file:literal, [$($needle:literal),+]) => {
        #[doc = concat!("Fixture `", $case, "`: the error names the file and what is wrong.")]
        #[test]
        fn $name() {
            let message = load_error($case);
            assert!(message.starts_with($file), "{message}");
            $(assert!(message.contains($needle), "`{}` missing from: {message}", $needle);)+
        }
    };
}

malformed!(
    two_hints,
    "two-hints",
    "scenarios/cat-a/tpl-a/scenario.toml",
    ["field `sites.hints`", "exactly 3"]
);
malformed!(
    unknown_field,
    "unknown-field",
    "scenarios/cat-a/tpl-a/scenario.toml",
    ["weeks"]
);
malformed!(
    id_mismatch,
    "id-mismatch",
    "scenarios/cat-a/tpl-a/scenario.toml",
    ["field `id`", "tpl-b"]
);
malformed!(
    unknown_stage,
    "unknown-stage",
    "scenarios/cat-a/tpl-a/scenario.toml",
    ["field `sites.fails_at`", "no-such-stage"]
);
malformed!(
    bad_url,
    "bad-url",
    "scenarios/cat-a/tpl-a/scenario.toml",
    ["resources.url", "http://example.org/docs"]
);
malformed!(
    bad_difficulty,
    "bad-difficulty",
    "scenarios/cat-a/tpl-a/scenario.toml",
    ["Trivial", "difficulty"]
);
malformed!(
    unlisted_variant,
    "unlisted-variant",
    "scenarios/cat-a/tpl-a/fixed.rs",
    ["`almost`", "[[wrong_fixes]]"]
);
malformed!(
    missing_variant,
    "missing-variant",
    "scenarios/cat-a/tpl-a/scenario.toml",
    ["field `alternatives.name`", "`//~ alt: other-way`"]
);
malformed!(
    no_category_toml,
    "no-category-toml",
    "scenarios/cat-a/category.toml",
    ["missing"]
);

/// Explaining a bug site tells that site's story: its own what's-wrong and key points, not
/// the first site's.
#[test]
fn each_bug_site_is_explained_on_its_own_terms() {
    use bughunt_core::select::picks_of;
    use bughunt_core::state::HuntState;
    let catalog = Catalog::embedded().unwrap();
    for template in &catalog.templates {
        for pick in picks_of(template).skip(1) {
            let hunt = HuntState {
                template: template.id().to_owned(),
                site: pick.site.id.clone(),
                seed: 0,
                number: 1,
                dir: "hunts/01".into(),
                hints_revealed: 1,
                checks_run: 1,
                passed: true,
                revealed: false,
                last_failed_stage: None,
                started_unix: 0,
                passed_unix: None,
            };
            let explained = bughunt_core::pages::explained(pick, &hunt);
            let own: String = pick
                .site
                .whats_wrong
                .as_deref()
                .unwrap()
                .split_whitespace()
                .take(6)
                .collect::<Vec<_>>()
                .join(" ");
            let first: String = template
                .meta
                .explanation
                .whats_wrong
                .split_whitespace()
                .take(6)
                .collect::<Vec<_>>()
                .join(" ");
            let flat = explained.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                flat.contains(&own),
                "{}/{}: its own story is missing",
                template.id(),
                pick.site.id
            );
            assert!(
                !flat.contains(&first),
                "{}/{}: the first site's story is shown",
                template.id(),
                pick.site.id
            );
            let points = bughunt_core::pages::key_points(pick, &hunt);
            let own_point: String = pick.site.key_points.as_ref().unwrap()[0]
                .split_whitespace()
                .take(5)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(points
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(&own_point));
        }
    }
}

/// A challenge after a pass moves to another template of the category before another bug
/// site of the same one: the same lesson in a different program.
#[test]
fn challenges_move_across_templates_first() {
    use bughunt_core::select::{challenge, curriculum, Challenge};
    use bughunt_core::state::{HuntState, State};
    let catalog = Catalog::from_dir(fixture("two-templates")).unwrap_or_else(|e| panic!("{e}"));
    let picks = curriculum(&catalog);
    let first = picks
        .iter()
        .find(|p| p.template.id() == "tpl-a" && p.site.id == "s1")
        .unwrap();
    let solved = HuntState {
        template: "tpl-a".into(),
        site: "s1".into(),
        seed: 1,
        number: 1,
        dir: "hunts/01-tpl-a-s1".into(),
        hints_revealed: 1,
        checks_run: 1,
        passed: true,
        revealed: false,
        last_failed_stage: None,
        started_unix: 0,
        passed_unix: None,
    };
    let mut state = State::new();
    state.hunts.insert(first.key(), solved.clone());
    state.current = Some(first.key());
    match challenge(&catalog, &state, &solved) {
        Challenge::Next(pick) => assert_eq!(pick.template.id(), "tpl-b"),
        Challenge::Exhausted { .. } => panic!("tpl-b and tpl-a/s2 are open"),
    }
}
