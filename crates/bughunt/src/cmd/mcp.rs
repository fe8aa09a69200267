//! `bughunt mcp`: bughunt's engine as Model Context Protocol tools, over stdio.
//!
//! An AI assistant tutoring with bughunt calls these tools instead of inventing unverified
//! broken code: `start` writes a proven broken crate, `check` runs the same bounded check as
//! the CLI, with the same verdict. Each tool returns what the CLI prints, as plain text
//! without colour, and structured content where it helps (list, status, check).
//!
//! The server works in the home it is started in (or one of its parents) and never reads or
//! writes outside it. Standard output carries the protocol and nothing else; warnings go to
//! standard error.

use std::sync::Arc;

use bughunt_core::catalog::Catalog;
use bughunt_core::home::Home;
use bughunt_core::hunt::{self, StartRequest, Verdict};
use bughunt_core::memory::{self, PatternAdded};
use bughunt_core::validate::Options;
use bughunt_core::{demo, pages, topics};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServerHandler, ServiceExt};
use serde::Deserialize;
use serde_json::Value;

use crate::exit::{CmdResult, Exit};

/// How the brief's tutor works, for the assistant.
const INSTRUCTIONS: &str = "bughunt teaches how message queues and concurrent code fail with small, deliberately broken Rust programs whose fixes it checks deterministically. Workflow (follow it): 1) `start` a hunt and show the learner ONLY the category, difficulty and hint level 1 it returns, plus the file to edit. 2) Wait for the learner's attempt; do not explain the bug, point at the faulty line, or write the fix. 3) When they ask for help, call `hint` (level 2, then 3). 4) Run `check` after each attempt and relay its mentor messages; do not add the answer. 5) After a pass, call `explain`, then ask the three explain-back questions (why did the original code fail, how does the fix prevent it, what would you test) and pass the answers to `explain` with `answers`; offer to add the pattern (`add_pattern`). 6) Offer `challenge` for a similar but different bug. Call `reveal` ONLY when the learner explicitly asks for the solution. `demo` shows a pattern failing and fixed side by side; `for` maps what the learner is implementing to hunts.";

#[derive(Clone)]
pub struct BughuntServer {
    home: Option<Home>,
    catalog: Arc<Catalog>,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DemoArgs {
    /// A template id (from `list`) or a category id.
    pub id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct StartArgs {
    /// A template or category id; omit it for the next hunt (adaptive curriculum).
    #[serde(default)]
    pub id: Option<String>,
    /// A bug site of the template (see `list`); omit it for the first unsolved one.
    #[serde(default)]
    pub site: Option<String>,
    /// The seed for names and constants; the same seed writes the same code.
    #[serde(default)]
    pub seed: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ExplainArgs {
    /// The learner's three explain-back answers, in order (why it failed, how the fix
    /// prevents it, what to test). Saved in the memory bank.
    #[serde(default)]
    pub answers: Option<Vec<String>>,
    /// Add the pattern to memory-bank/systemPatterns.md (only if the learner agreed).
    #[serde(default)]
    pub add_pattern: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ForArgs {
    /// What the learner is implementing: "ack", "consumer groups", "fsync", "shutdown".
    pub topic: String,
}

fn plain(text: &str) -> String {
    anstream::adapter::strip_str(text).to_string()
}

fn reply(result: anyhow::Result<(String, Option<Value>)>) -> Result<CallToolResult, ErrorData> {
    Ok(match result {
        Ok((text, structured)) => {
            let mut result = CallToolResult::success(vec![ContentBlock::text(plain(&text))]);
            result.structured_content = structured;
            result
        }
        Err(error) => {
            let chain: Vec<String> = error.chain().map(|cause| cause.to_string()).collect();
            CallToolResult::error(vec![ContentBlock::text(format!(
                "bughunt: {}",
                bounded(&chain.join(": "))
            ))])
        }
    })
}

/// The most characters of an error a tool sends back: an error may quote what it was given,
/// and a client that sent megabytes must not get them echoed.
const ERROR_CHARS_MAX: usize = 2_000;

fn bounded(text: &str) -> String {
    match text.char_indices().nth(ERROR_CHARS_MAX) {
        None => text.to_owned(),
        Some((cut, _)) => format!(
            "{}… ({} more characters not shown)",
            &text[..cut],
            text[cut..].chars().count()
        ),
    }
}

impl BughuntServer {
    fn home(&self) -> anyhow::Result<Home> {
        self.home
            .clone()
            .ok_or_else(|| anyhow::anyhow!(bughunt_core::home::NOT_IN_HOME))
    }

    /// Runs blocking work (cargo, files) off the protocol's async threads.
    async fn blocking(
        &self,
        work: impl FnOnce(&BughuntServer) -> anyhow::Result<(String, Option<Value>)> + Send + 'static,
    ) -> Result<CallToolResult, ErrorData> {
        let server = self.clone();
        let outcome = tokio::task::spawn_blocking(move || work(&server))
            .await
            .unwrap_or_else(|join| Err(anyhow::anyhow!("the tool stopped unexpectedly: {join}")));
        reply(outcome)
    }
}

#[tool_router]
impl BughuntServer {
    #[tool(
        description = "List every bug-hunt template: id, category, title, difficulty, curriculum week and bug sites."
    )]
    async fn list(&self) -> Result<CallToolResult, ErrorData> {
        self.blocking(|server| {
            let rows: Vec<Value> = server
                .catalog
                .templates
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "id": t.meta.id, "category": t.meta.category, "title": t.meta.title,
                        "difficulty": format!("{:?}", t.meta.difficulty), "week": t.meta.week,
                        "bug_sites": t.meta.sites.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let text = rows
                .iter()
                .map(|r| {
                    format!(
                        "{} ({}, {}, week {}): {}",
                        r["id"].as_str().unwrap_or(""),
                        r["category"].as_str().unwrap_or(""),
                        r["difficulty"].as_str().unwrap_or(""),
                        r["week"],
                        r["title"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok((text, Some(serde_json::json!({ "templates": rows }))))
        })
        .await
    }

    #[tool(
        description = "Show a queue or concurrency pattern failing and fixed, side by side, under injected faults: the bug demonstration (what's wrong, lesson, how SQS/RabbitMQ/Kafka handle it, flows, tradeoff), a drawing of what happened, and the counts. Deterministic."
    )]
    async fn demo(
        &self,
        Parameters(args): Parameters<DemoArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.blocking(move |server| {
            let chosen = server.catalog.select(std::slice::from_ref(&args.id))?;
            let template = chosen
                .into_iter()
                .find(|t| t.meta.demo.is_some())
                .ok_or_else(|| anyhow::anyhow!("`{}` has no in-process demo", args.id))?;
            let outcome = demo::run(template)?;
            Ok((demo::text(template, &outcome), None))
        })
        .await
    }

    #[tool(
        description = "Start a bug hunt: writes the broken crate into the learner's home and returns ONLY the category, difficulty and hint level 1, and the file to edit. Show exactly that to the learner, then wait for their attempt: do not explain the bug or suggest the fix."
    )]
    async fn start(
        &self,
        Parameters(args): Parameters<StartArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.blocking(move |server| {
            let home = server.home()?;
            let request = StartRequest {
                name: args.id.as_deref(),
                site: args.site.as_deref(),
                seed: args.seed,
                fresh: false,
            };
            let started = hunt::start(&home, &server.catalog, &request)?;
            // The new crate builds while the learner reads, as after the command line's
            // `start`, so the first check is warm.
            if super::hunt::started_lib(&started).is_some() && !super::prebuild::disabled_by_env() {
                super::prebuild::spawn_and_reap(&home);
            }
            Ok((pages::started(&home, &server.catalog, &started), None))
        })
        .await
    }

    #[tool(
        description = "Reveal the next hint level of the current hunt (level 2, then 3). Call it only when the learner asks for help."
    )]
    async fn hint(&self) -> Result<CallToolResult, ErrorData> {
        self.blocking(|server| {
            let hints = hunt::hint(&server.home()?, &server.catalog)?;
            Ok((pages::hints(&hints), None))
        })
        .await
    }

    #[tool(
        description = "Compile and test the learner's fix of the current hunt, exactly as `bughunt check` does (same time bound, same verdict). Returns each check stage passed or failed with a mentor's message and, for the first failure, what happened. Relay the mentor's words; do not give the solution."
    )]
    async fn check(&self) -> Result<CallToolResult, ErrorData> {
        self.blocking(|server| {
            let home = server.home()?;
            let checked = hunt::check(
                &home,
                &server.catalog,
                hunt::CHECK_TIMEOUT_DEFAULT,
                &Options::default_cargo(),
                false,
            )?;
            let verdict = match &checked.verdict {
                Verdict::Passed => serde_json::json!({ "verdict": "passed" }),
                Verdict::Failed(stage) => {
                    serde_json::json!({ "verdict": "failed", "stage": stage })
                }
                Verdict::CompileError => serde_json::json!({ "verdict": "compile-error" }),
                Verdict::TimedOut => serde_json::json!({ "verdict": "timed-out" }),
                Verdict::BuildTimedOut => serde_json::json!({ "verdict": "build-timed-out" }),
                Verdict::NoReport => serde_json::json!({ "verdict": "no-report" }),
                Verdict::Untrusted(reason) => {
                    serde_json::json!({ "verdict": "untrusted-report", "reason": reason })
                }
            };
            Ok((
                pages::checked(&home, &server.catalog, &checked),
                Some(verdict),
            ))
        })
        .await
    }

    #[tool(
        description = "After the current hunt passes (or was revealed): why it broke, how the fix works, how real systems handle it, the flows and the tradeoff, then the key points. Give the learner's three explain-back answers in `answers` to save them in the memory bank; set `add_pattern` if the learner wants the pattern in memory-bank/systemPatterns.md."
    )]
    async fn explain(
        &self,
        Parameters(args): Parameters<ExplainArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.blocking(move |server| {
            let home = server.home()?;
            let (pick, hunt, earned) = hunt::explain(&home, &server.catalog)?;
            if !earned {
                return Ok((pages::explain_refused(&home, &hunt), None));
            }
            let mut text = pages::explained(pick, &hunt);
            if let Some(answers) = args.answers {
                let answers: [String; 3] = answers.try_into().map_err(|given: Vec<String>| {
                    anyhow::anyhow!("`answers` takes three answers, {} given", given.len())
                })?;
                if hunt.passed {
                    let saved = memory::save_answers(&home, pick.template, &hunt, &answers)?;
                    text.push_str(&format!("Your answers are saved in {saved}.\n\n"));
                }
            }
            text.push_str(&pages::key_points(pick, &hunt));
            if args.add_pattern == Some(true) {
                text.push_str(&match memory::add_pattern(&home, pick.template)? {
                    PatternAdded::Added(path) => format!("Added the pattern to {path}.\n"),
                    PatternAdded::AlreadyThere(path) => {
                        format!("The pattern is already in {path}.\n")
                    }
                    PatternAdded::NoPattern => {
                        "This hunt has no pattern entry to add.\n".to_owned()
                    }
                });
            }
            Ok((text, None))
        })
        .await
    }

    #[tool(
        description = "Show the reference fix of the current hunt (recorded as revealed). Call it ONLY when the learner explicitly asks for the solution."
    )]
    async fn reveal(&self) -> Result<CallToolResult, ErrorData> {
        self.blocking(|server| {
            let (hunt, fixed) = hunt::reveal(&server.home()?, &server.catalog)?;
            Ok((pages::revealed(&hunt, &fixed), None))
        })
        .await
    }

    #[tool(
        description = "The learner's progress: categories done, the current hunt (its file, hints used), the next challenge."
    )]
    async fn status(&self) -> Result<CallToolResult, ErrorData> {
        self.blocking(|server| {
            let home = server.home()?;
            let status = hunt::status(&home, &server.catalog)?;
            Ok((
                pages::status(&home, &status),
                Some(serde_json::to_value(&status)?),
            ))
        })
        .await
    }

    #[tool(
        description = "After a pass: start a similar but different bug (same category, a bug site not solved yet), or say the category is done and which comes next."
    )]
    async fn challenge(&self) -> Result<CallToolResult, ErrorData> {
        self.blocking(|server| {
            let home = server.home()?;
            let challenged = hunt::challenge(&home, &server.catalog)?;
            if let hunt::Challenged::Started(started) = &challenged {
                if super::hunt::started_lib(started).is_some()
                    && !super::prebuild::disabled_by_env()
                {
                    super::prebuild::spawn_and_reap(&home);
                }
            }
            Ok((pages::challenged(&home, &server.catalog, &challenged), None))
        })
        .await
    }

    #[tool(
        name = "for",
        description = "What the learner is implementing (\"ack\", \"persistence\", \"consumer groups\", \"graceful shutdown\") → the hunts and demos that show how it breaks."
    )]
    async fn for_topic(
        &self,
        Parameters(args): Parameters<ForArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        self.blocking(move |server| {
            topics::check_topic(&args.topic)?;
            let found = topics::matches(&server.catalog, &args.topic);
            if found.is_empty() {
                anyhow::bail!(
                    "no hunt matches `{}`; known topics: {}",
                    args.topic,
                    topics::known_topics(&server.catalog).join(", ")
                );
            }
            Ok((pages::for_topic(&server.catalog, &args.topic, &found), None))
        })
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for BughuntServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bughunt", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

pub fn run() -> CmdResult {
    let catalog = super::catalog()?;
    let home = Home::find_from_current_dir().ok();
    if home.is_none() {
        eprintln!(
            "bughunt mcp: {}; only list, demo and for work here",
            bughunt_core::home::NOT_IN_HOME
        );
    }
    let server = BughuntServer {
        home,
        catalog: Arc::new(catalog),
        tool_router: BughuntServer::tool_router(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let gated = super::mcp_gate::start(tokio::io::stdin(), tokio::io::stdout());
        let service = server
            .serve((gated.reader, gated.writer))
            .await
            .map_err(|error| anyhow::anyhow!("could not start the MCP server: {error}"))?;
        service
            .waiting()
            .await
            .map_err(|error| anyhow::anyhow!("the MCP server stopped: {error}"))?;
        anyhow::Ok(())
    })?;
    Ok(Exit::Success)
}
