//! The scenario catalog, embedded in the binary and checked as it loads.
//!
//! Every folder `scenarios/<category>/<id>/` is a template (see `scenarios/README.md`).
//! Loading parses every `scenario.toml` and `category.toml` and checks what the format
//! promises: ids match folders, three hints, a known difficulty and checker, a first stage
//! that exists in `checks.rs`, real `https` links, wrong fixes that exist. A malformed file
//! is an error naming the file and the field, never a panic; the test suite loads the
//! catalog, so such a file never ships.

use std::collections::BTreeMap;
use std::path::Path;

use bughunt_kit::fault::FaultPlan;

use crate::sites::VariantKind;
use include_dir::{include_dir, Dir};
use serde::{Deserialize, Serialize};

/// The scenarios folder, as it was when bughunt was built.
pub static SCENARIOS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../scenarios");

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

/// What makes the template's bug deterministic; it picks the hunt crate's dependencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checker {
    /// Simulated clock, disk and fault plans.
    Sim,
    /// Exhaustive shuttle schedule search.
    Shuttle,
    /// loom with a preemption bound.
    Loom,
    /// tokio with paused time.
    Tokio,
}

impl Checker {
    /// The bughunt-kit feature a hunt crate turns on for this checker.
    pub fn kit_feature(self) -> Option<&'static str> {
        match self {
            Checker::Sim => None,
            Checker::Shuttle => Some("shuttle"),
            Checker::Loom => Some("loom"),
            Checker::Tokio => Some("tokio"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Checker::Sim => "sim",
            Checker::Shuttle => "shuttle",
            Checker::Loom => "loom",
            Checker::Tokio => "tokio",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherSystem {
    pub system: String,
    pub how: String,
}

/// The bug-demonstration comment of the brief, as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Explanation {
    pub headline: String,
    pub whats_wrong: String,
    pub lesson: String,
    pub other_systems: Vec<OtherSystem>,
    pub flow_buggy: String,
    pub flow_correct: String,
    pub tradeoff: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    Docs,
    Article,
    Paper,
    Incident,
    Talk,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub title: String,
    pub url: String,
    pub kind: ResourceKind,
}

/// A plausible wrong fix, kept to prove a stage catches it: a `//~ wrong: NAME` variant of
/// fixed.rs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrongFix {
    /// The variant's name in fixed.rs.
    pub name: String,
    pub fails_at: String,
    pub why: String,
    /// The kind of mistake, when it is one of the classes every template must answer:
    /// `blind-primitive`, `crash-between-writes`, `unseen-concurrency`, `kind-disk`,
    /// `leak-or-unbounded-wait`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// A correct fix unlike the reference (a `//~ alt: NAME` variant of fixed.rs): it must pass
/// every stage, so the checks hold a promise and not one implementation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alternative {
    pub name: String,
    /// How it differs from the reference, and why it is still right.
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSpec {
    pub summary: String,
    #[serde(default)]
    pub faults: FaultPlan,
}

/// One bug site: where and how the lesson breaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteToml {
    /// The id its `//~ site:` markers in fixed.rs carry.
    pub id: String,
    /// A few words on what is broken, for lists and challenges.
    pub summary: String,
    /// The stage this site's broken form fails at.
    pub fails_at: String,
    /// Three hints, subtle to specific.
    pub hints: Vec<String>,
    /// When this site is harder or easier than the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<Difficulty>,
    /// What this site's broken code does wrong; the template's `whats_wrong` describes the
    /// first site, so every other site has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whats_wrong: Option<String>,
    /// This site's explain-back key points (the first site uses the template's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_points: Option<Vec<String>>,
}

/// A name a seed may change: every whole-word `word` in the program, checks and hints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameVariation {
    pub word: String,
    pub choices: Vec<String>,
}

/// A constant a seed may change: the value of every `const NAME: T = value;`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantVariation {
    pub name: String,
    pub choices: Vec<String>,
}

/// What a seed varies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vary {
    #[serde(default)]
    pub names: Vec<NameVariation>,
    #[serde(default)]
    pub constants: Vec<ConstantVariation>,
}

/// The pattern a template teaches, for `memory-bank/systemPatterns.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternToml {
    /// The pattern's name: "Visibility timeout with explicit ack".
    pub name: String,
    pub problem: String,
    pub solution: String,
    /// A minimal Rust sketch of the solution.
    pub sketch: String,
}

/// `scenario.toml`, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioToml {
    pub id: String,
    pub title: String,
    pub category: String,
    pub difficulty: Difficulty,
    pub week: u8,
    pub checker: Checker,
    pub key_points: Vec<String>,
    pub explanation: Explanation,
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub wrong_fixes: Vec<WrongFix>,
    #[serde(default)]
    pub alternatives: Vec<Alternative>,
    pub demo: Option<DemoSpec>,
    /// The bug sites, at least one; the first is the one demos run.
    pub sites: Vec<SiteToml>,
    /// The pattern to offer for systemPatterns.md.
    pub pattern: Option<PatternToml>,
    #[serde(default)]
    pub vary: Vary,
}

/// `category.toml`, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryToml {
    pub title: String,
    pub summary: String,
    /// What a learner may be implementing when this category's bugs matter ("ack",
    /// "consumer groups"): `bughunt for TOPIC` matches against these.
    pub triggers: Vec<String>,
    /// Where the category stands in the brief's eight weeks, when it is one of its twelve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curriculum: Option<CurriculumPlace>,
}

/// One of the brief's twelve categories: its place and its weeks. A category folder with no
/// template yet is shown as coming, never as done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurriculumPlace {
    /// Its place in the brief's list, 1 to 12.
    pub order: u8,
    /// The weeks it is taught in, 1 to 8.
    pub weeks: Vec<u8>,
}

/// How many categories the brief's curriculum has.
pub const CURRICULUM_CATEGORIES: u8 = 12;

/// The ids of the stages a template's checks run, in order: the kit's own first stage under a
/// schedule checker, then each `Stage { id: "..." }` of checks.rs as it appears there.
fn stage_ids_of(checker: Checker, checks_rs: &str) -> Vec<String> {
    let mut ids = Vec::new();
    if matches!(checker, Checker::Shuttle | Checker::Loom) {
        ids.push(bughunt_kit::blind::STAGE.to_owned());
    }
    for (at, _) in checks_rs.match_indices("Stage {") {
        let rest = checks_rs[at..].trim_start_matches("Stage {").trim_start();
        let Some(rest) = rest.strip_prefix("id:") else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(rest) = rest.strip_prefix('"') else {
            continue;
        };
        if let Some(end) = rest.find('"') {
            ids.push(rest[..end].to_owned());
        }
    }
    ids
}

/// One template with its sources.
#[derive(Clone, Debug)]
pub struct Template {
    pub meta: ScenarioToml,
    /// The ids of the stages its checks run, in order (see `stage_ids_of`): a report that
    /// names other stages was not written by these checks.
    pub stage_ids: Vec<String>,
    /// `scenarios/<category>/<id>`, for messages.
    pub folder: String,
    /// fixed.rs as written: the correct program with its bug sites marked.
    pub source_rs: &'static str,
    /// The same, parsed.
    pub marked: crate::sites::Marked,
    pub checks_rs: &'static str,
    pub demo_rs: Option<&'static str>,
}

impl Template {
    pub fn id(&self) -> &str {
        &self.meta.id
    }

    /// The bug site with this id.
    pub fn site(&self, id: &str) -> Option<&SiteToml> {
        self.meta.sites.iter().find(|s| s.id == id)
    }

    /// The first bug site: the one demos and plain `start` use.
    pub fn first_site(&self) -> &SiteToml {
        &self.meta.sites[0]
    }

    /// The difficulty of one bug site.
    pub fn difficulty_of(&self, site: &SiteToml) -> Difficulty {
        site.difficulty.unwrap_or(self.meta.difficulty)
    }

    /// What one bug site's broken code does wrong.
    pub fn whats_wrong_of<'a>(&'a self, site: &'a SiteToml) -> &'a str {
        site.whats_wrong
            .as_deref()
            .unwrap_or(&self.meta.explanation.whats_wrong)
    }

    /// One bug site's explain-back key points.
    pub fn key_points_of<'a>(&'a self, site: &'a SiteToml) -> &'a [String] {
        site.key_points.as_deref().unwrap_or(&self.meta.key_points)
    }
}

#[derive(Clone, Debug)]
pub struct Category {
    pub id: String,
    pub meta: CategoryToml,
}

/// The whole catalog: categories and templates, both in id order.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub categories: BTreeMap<String, Category>,
    pub templates: Vec<Template>,
}

/// A file of the catalog that is not as the format says.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct CatalogError {
    pub file: String,
    pub problem: String,
}

fn error(file: &str, problem: impl Into<String>) -> CatalogError {
    CatalogError {
        file: file.to_owned(),
        problem: problem.into(),
    }
}

fn text_of(
    root: &Path,
    dir: &Dir<'static>,
    name: &str,
) -> Result<Option<&'static str>, CatalogError> {
    let path = dir.path().join(name);
    match dir.get_file(&path) {
        None => Ok(None),
        Some(file) => file
            .contents_utf8()
            .map(Some)
            .ok_or_else(|| error(&shown(root, &path), "is not UTF-8 text")),
    }
}

/// A catalog path as a learner or author knows it: `scenarios/<category>/<id>/...`.
fn shown(root: &Path, path: &Path) -> String {
    format!(
        "scenarios/{}",
        path.strip_prefix(root).unwrap_or(path).display()
    )
}

fn is_kebab(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('-')
        && !id.ends_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Catalog {
    /// The catalog built into this binary.
    pub fn embedded() -> Result<Catalog, CatalogError> {
        Self::from_dir(&SCENARIOS)
    }

    /// Loads and checks a catalog from a scenarios folder.
    pub fn from_dir(root: &Dir<'static>) -> Result<Catalog, CatalogError> {
        let mut categories = BTreeMap::new();
        let mut templates = Vec::new();
        let root_path = root.path();
        let mut category_dirs: Vec<&Dir<'static>> = root.dirs().collect();
        category_dirs.sort_by_key(|dir| dir.path().to_owned());
        for category_dir in category_dirs {
            let category_id = category_dir
                .path()
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default()
                .to_owned();
            let category_file = shown(root_path, &category_dir.path().join("category.toml"));
            if !is_kebab(&category_id) {
                return Err(error(
                    &category_file,
                    "the folder name must be a kebab-case category id",
                ));
            }
            let text = text_of(root_path, category_dir, "category.toml")?.ok_or_else(|| {
                error(&category_file, "is missing (every category folder has one)")
            })?;
            let meta: CategoryToml =
                toml::from_str(text).map_err(|e| error(&category_file, toml_problem(text, &e)))?;
            if meta.triggers.is_empty() || meta.triggers.iter().any(|t| t.trim().is_empty()) {
                return Err(error(
                    &category_file,
                    "field `triggers`: needs at least one non-empty topic",
                ));
            }
            if let Some(place) = &meta.curriculum {
                let weeks_ok =
                    !place.weeks.is_empty() && place.weeks.iter().all(|w| (1..=8).contains(w));
                if !(1..=CURRICULUM_CATEGORIES).contains(&place.order) || !weeks_ok {
                    return Err(error(
                        &category_file,
                        format!(
                            "field `curriculum`: `order` is 1 to {CURRICULUM_CATEGORIES} and `weeks` lists weeks 1 to 8"
                        ),
                    ));
                }
                let taken = categories.values().find(|c: &&Category| {
                    c.meta.curriculum.as_ref().map(|p| p.order) == Some(place.order)
                });
                if let Some(other) = taken {
                    return Err(error(
                        &category_file,
                        format!(
                            "field `curriculum.order`: {} is also the place of `{}`",
                            place.order, other.id
                        ),
                    ));
                }
            }
            categories.insert(
                category_id.clone(),
                Category {
                    id: category_id.clone(),
                    meta,
                },
            );
            let mut template_dirs: Vec<&Dir<'static>> = category_dir.dirs().collect();
            template_dirs.sort_by_key(|dir| dir.path().to_owned());
            for template_dir in template_dirs {
                templates.push(load_template(root_path, &category_id, template_dir)?);
            }
        }
        let mut seen = BTreeMap::new();
        for template in &templates {
            if let Some(other) = seen.insert(template.id().to_owned(), template.folder.clone()) {
                return Err(error(
                    &format!("{}/scenario.toml", template.folder),
                    format!("field `id`: `{}` is also the id of {other}", template.id()),
                ));
            }
        }
        templates.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
        Ok(Catalog {
            categories,
            templates,
        })
    }

    /// The template with this id.
    pub fn template(&self, id: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.meta.id == id)
    }

    /// The templates of a category, easiest and earliest first.
    pub fn in_category(&self, category: &str) -> Vec<&Template> {
        let mut found: Vec<&Template> = self
            .templates
            .iter()
            .filter(|t| t.meta.category == category)
            .collect();
        found.sort_by_key(|t| (t.meta.week, t.meta.difficulty, t.meta.id.clone()));
        found
    }

    /// Templates named by ids or categories, in the order asked, each once. Unknown names
    /// are an error that suggests the nearest names.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Template>, UnknownName> {
        if names.is_empty() {
            return Ok(self.templates.iter().collect());
        }
        let mut chosen: Vec<&Template> = Vec::new();
        for name in names {
            let found: Vec<&Template> = match self.template(name) {
                Some(template) => vec![template],
                None => self.in_category(name),
            };
            if found.is_empty() {
                return Err(UnknownName {
                    name: name.clone(),
                    nearest: self.nearest(name),
                    coming: self
                        .categories
                        .get(name)
                        .and_then(|c| c.meta.curriculum.as_ref())
                        .map(|place| place.weeks.clone()),
                });
            }
            for template in found {
                if !chosen.iter().any(|t| t.meta.id == template.meta.id) {
                    chosen.push(template);
                }
            }
        }
        Ok(chosen)
    }

    /// Template and category ids closest to `name`, closest first (at most three).
    pub fn nearest(&self, name: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .templates
            .iter()
            .map(|t| t.meta.id.clone())
            .chain(self.templates.iter().map(|t| t.meta.category.clone()))
            .collect();
        names.sort();
        names.dedup();
        let mut scored: Vec<(usize, String)> = names
            .into_iter()
            .map(|candidate| {
                let distance = strsim::damerau_levenshtein(name, &candidate);
                let contains = candidate.contains(name) || name.contains(candidate.as_str());
                (if contains { 0 } else { distance }, candidate)
            })
            .collect();
        scored.sort();
        let best = scored.first().map(|(d, _)| *d).unwrap_or(0);
        scored
            .into_iter()
            .filter(|(d, _)| *d <= best.max(1) + 2)
            .take(3)
            .map(|(_, candidate)| candidate)
            .collect()
    }
}

/// A name that is neither a template nor a category with hunts.
#[derive(Debug, thiserror::Error)]
#[error("{}", unknown_name(.name, .nearest, .coming.as_ref()))]
pub struct UnknownName {
    pub name: String,
    pub nearest: Vec<String>,
    /// The weeks of a curriculum category that has no hunt yet, when `name` is one.
    pub coming: Option<Vec<u8>>,
}

fn unknown_name(name: &str, nearest: &[String], coming: Option<&Vec<u8>>) -> String {
    match coming {
        Some(weeks) => format!(
            "`{name}` is a category of the curriculum (weeks {}) with no hunt yet; `bughunt list` shows the hunts there are, `bughunt status` what is coming",
            weeks.iter().map(u8::to_string).collect::<Vec<_>>().join("-")
        ),
        None => format!("no template or category named `{name}`{}", suggestion(nearest)),
    }
}

fn suggestion(nearest: &[String]) -> String {
    match nearest {
        [] => "; run `bughunt list` to see them all".to_owned(),
        [one] => format!("; did you mean `{one}`? (`bughunt list` shows them all)"),
        many => format!(
            "; did you mean one of {}? (`bughunt list` shows them all)",
            many.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A TOML error as one line: where (line, and the field written there) and what.
fn toml_problem(text: &str, error: &toml::de::Error) -> String {
    let message = error
        .message()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let Some(span) = error.span() else {
        return message;
    };
    let line_number = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let line = text.lines().nth(line_number - 1).unwrap_or_default();
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() && !key.trim_start().starts_with('[') => {
            format!("line {line_number}, field `{}`: {message}", key.trim())
        }
        _ => format!("line {line_number}: {message}"),
    }
}

fn load_template(
    root: &Path,
    category_id: &str,
    dir: &Dir<'static>,
) -> Result<Template, CatalogError> {
    let folder = shown(root, dir.path());
    let toml_file = format!("{folder}/scenario.toml");
    let text = text_of(root, dir, "scenario.toml")?
        .ok_or_else(|| error(&toml_file, "is missing (every template folder has one)"))?;
    let meta: ScenarioToml =
        toml::from_str(text).map_err(|e| error(&toml_file, toml_problem(text, &e)))?;
    let field =
        |name: &str, problem: String| error(&toml_file, format!("field `{name}`: {problem}"));

    let folder_name = dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if meta.id != folder_name {
        return Err(field(
            "id",
            format!("`{}` must equal the folder name `{folder_name}`", meta.id),
        ));
    }
    if !is_kebab(&meta.id) {
        return Err(field("id", format!("`{}` must be kebab-case", meta.id)));
    }
    if meta.category != category_id {
        return Err(field(
            "category",
            format!(
                "`{}` must equal the parent folder name `{category_id}`",
                meta.category
            ),
        ));
    }
    if !(1..=8).contains(&meta.week) {
        return Err(field(
            "week",
            format!("{} is outside the 8-week curriculum (1 to 8)", meta.week),
        ));
    }
    if meta.key_points.is_empty() {
        return Err(field("key_points", "needs at least one point".to_owned()));
    }
    for (name, value) in [
        ("title", &meta.title),
        ("explanation.headline", &meta.explanation.headline),
        ("explanation.whats_wrong", &meta.explanation.whats_wrong),
        ("explanation.lesson", &meta.explanation.lesson),
        ("explanation.flow_buggy", &meta.explanation.flow_buggy),
        ("explanation.flow_correct", &meta.explanation.flow_correct),
        ("explanation.tradeoff", &meta.explanation.tradeoff),
    ] {
        if value.trim().is_empty() {
            return Err(field(name, "is empty".to_owned()));
        }
    }
    if meta.explanation.other_systems.is_empty() {
        return Err(field(
            "explanation.other_systems",
            "names no system".to_owned(),
        ));
    }
    if meta.resources.is_empty() {
        return Err(field("resources", "lists no resource".to_owned()));
    }
    for resource in &meta.resources {
        let rest = resource.url.strip_prefix("https://").unwrap_or_default();
        if rest.is_empty() || !rest.contains('.') || rest.contains(char::is_whitespace) {
            return Err(field(
                "resources.url",
                format!("`{}` is not an https link", resource.url),
            ));
        }
    }

    let required = |name: &str| -> Result<&'static str, CatalogError> {
        text_of(root, dir, name)?.ok_or_else(|| error(&format!("{folder}/{name}"), "is missing"))
    };
    let source_rs = required("fixed.rs")?;
    let marked = crate::sites::Marked::parse(source_rs).map_err(|problem| {
        error(
            &format!("{folder}/fixed.rs"),
            format!("bug-site markers: {problem}"),
        )
    })?;
    let checks_rs = required("checks.rs")?;
    let demo_rs = text_of(root, dir, "demo.rs")?;
    match (&meta.demo, demo_rs) {
        (Some(_), None) => {
            return Err(field(
                "demo",
                "is present but demo.rs is missing".to_owned(),
            ))
        }
        (None, Some(_)) => {
            return Err(error(
                &format!("{folder}/demo.rs"),
                "exists but scenario.toml has no [demo]",
            ))
        }
        _ => {}
    }
    let stage_ids = stage_ids_of(meta.checker, checks_rs);
    if stage_ids.is_empty() {
        return Err(error(
            &format!("{folder}/checks.rs"),
            "holds no `Stage { id: \"...\", ... }`",
        ));
    }
    let stage_named = |stage: &str| stage_ids.iter().any(|id| id == stage);
    if meta.sites.is_empty() {
        return Err(field(
            "sites",
            "lists no bug site ([[sites]] with id, summary, fails_at, hints)".to_owned(),
        ));
    }
    let marked_sites = marked.sites();
    let listed: Vec<String> = meta.sites.iter().map(|s| s.id.clone()).collect();
    if marked_sites != listed {
        return Err(field(
            "sites",
            format!(
                "the [[sites]] ids {listed:?} must be the `//~ site:` ids of fixed.rs, in the order they first appear there ({marked_sites:?})"
            ),
        ));
    }
    for site in &meta.sites {
        if !is_kebab(&site.id) {
            return Err(field(
                "sites.id",
                format!("`{}` must be kebab-case", site.id),
            ));
        }
        if !stage_named(&site.fails_at) {
            return Err(field(
                "sites.fails_at",
                format!(
                    "site `{}`: stage `{}` is not an id in checks.rs",
                    site.id, site.fails_at
                ),
            ));
        }
        if marked.render(Some(&site.id)).contains("FIX:") {
            return Err(error(
                &format!("{folder}/fixed.rs"),
                format!("site `{}`: its broken form still says `FIX:` (an inline `// FIX:` comment?); put FIX comments on lines of their own", site.id),
            ));
        }
        let first = site.id == meta.sites[0].id;
        let own_story = site
            .whats_wrong
            .as_deref()
            .is_some_and(|w| !w.trim().is_empty())
            && site
                .key_points
                .as_ref()
                .is_some_and(|k| k.len() == 3 && k.iter().all(|p| !p.trim().is_empty()));
        if !first && !own_story {
            return Err(field(
                "sites",
                format!(
                    "site `{}` needs its own `whats_wrong` and three `key_points` (the template's describe the first site)",
                    site.id
                ),
            ));
        }
        if site.hints.len() != 3 || site.hints.iter().any(|h| h.trim().is_empty()) {
            return Err(field(
                "sites.hints",
                format!(
                    "site `{}` needs exactly 3 non-empty hints, found {}",
                    site.id,
                    site.hints.len()
                ),
            ));
        }
    }
    if meta.pattern.is_none() {
        return Err(field(
            "pattern",
            "is missing ([pattern] with name, problem, solution, sketch: what explain offers for systemPatterns.md)".to_owned(),
        ));
    }
    // A varied name must not be a word of a stage id ("peek" in "peek-sees-payload"): the
    // seed would rename the stage in checks.rs and the sites would name a stage that is gone.
    for name in &meta.vary.names {
        if let Some(stage) = stage_ids
            .iter()
            .find(|stage| crate::generate::has_word(stage, &name.word))
        {
            return Err(field(
                "vary.names",
                format!(
                    "`{}` is a word of the stage id `{stage}`; a seed would rename the stage",
                    name.word
                ),
            ));
        }
    }
    let is_identifier = |word: &str| {
        word.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    for name in &meta.vary.names {
        if !is_identifier(&name.word)
            || name.choices.iter().any(|c| !is_identifier(c))
            || name.choices.is_empty()
        {
            return Err(field(
                "vary.names",
                format!(
                    "`{}`: the word and its choices must be identifiers",
                    name.word
                ),
            ));
        }
        if !crate::generate::has_word(source_rs, &name.word) {
            return Err(field(
                "vary.names",
                format!("`{}` does not appear in fixed.rs", name.word),
            ));
        }
    }
    for constant in &meta.vary.constants {
        let declared = format!("const {}:", constant.name);
        if !source_rs.contains(&declared) && !checks_rs.contains(&declared) {
            return Err(field(
                "vary.constants",
                format!(
                    "no `const {}: T = ...;` in fixed.rs or checks.rs",
                    constant.name
                ),
            ));
        }
        if constant.choices.is_empty()
            || constant
                .choices
                .iter()
                .any(|c| c.trim().is_empty() || c.contains(';'))
        {
            return Err(field(
                "vary.constants",
                format!("`{}` needs plain value choices", constant.name),
            ));
        }
    }
    let variants = marked.variants();
    for wrong in &meta.wrong_fixes {
        if !stage_named(&wrong.fails_at) {
            return Err(field(
                "wrong_fixes.fails_at",
                format!("stage `{}` is not an id in checks.rs", wrong.fails_at),
            ));
        }
        if !variants.contains(&(VariantKind::Wrong, wrong.name.clone())) {
            return Err(field(
                "wrong_fixes.name",
                format!(
                    "`{}` is no `//~ wrong: {}` variant in fixed.rs",
                    wrong.name, wrong.name
                ),
            ));
        }
    }
    for (kind, name) in &variants {
        let listed = match kind {
            VariantKind::Wrong => meta.wrong_fixes.iter().any(|w| &w.name == name),
            VariantKind::Alt => meta.alternatives.iter().any(|a| &a.name == name),
        };
        if !listed {
            let table = match kind {
                VariantKind::Wrong => "[[wrong_fixes]]",
                VariantKind::Alt => "[[alternatives]]",
            };
            return Err(error(
                &format!("{folder}/fixed.rs"),
                format!("variant `{name}` is not listed under {table} in scenario.toml"),
            ));
        }
    }
    for alternative in &meta.alternatives {
        if !variants.contains(&(VariantKind::Alt, alternative.name.clone())) {
            return Err(field(
                "alternatives.name",
                format!(
                    "`{}` is no `//~ alt: {}` variant in fixed.rs",
                    alternative.name, alternative.name
                ),
            ));
        }
    }
    if dir.get_dir(dir.path().join("wrong")).is_some() {
        return Err(error(
            &format!("{folder}/wrong"),
            "wrong fixes are `//~ wrong: NAME` variants of fixed.rs (listed under [[wrong_fixes]] with `name`); move each file's changed lines into a variant",
        ));
    }
    Ok(Template {
        meta,
        stage_ids,
        folder,
        source_rs,
        marked,
        checks_rs,
        demo_rs,
    })
}
