//! # bughunt-kit: making queue and concurrency bugs show up every time
//!
//! A bug hunt is only fair if the bug shows on every run and any correct fix passes on every
//! run. Real crashes, lost acks, power cuts and thread schedules are rare and random, so the
//! programs in a hunt never meet the real ones: they meet the kit's.
//!
//! ## How to use it
//! - [`fault`]: fault plans as data (crash a consumer after its k-th receive, drop the k-th
//!   ack, stall a consumer, cut the power). Scenarios read them from `scenario.toml`.
//! - [`clock`]: a simulated clock. Visibility timeouts, retries and backoff move only when a
//!   check advances it, so "just before the timeout" is an exact instant.
//! - [`jitter`]: a seeded random number generator that a check hands to a program that
//!   jitters its retries, so the randomness is the same on every run.
//! - [`disk`]: a simulated disk that keeps written-but-unsynced bytes apart from synced
//!   ones, so a power cut loses exactly what a real one may lose: a clean prefix, or, sector
//!   by sector and chosen by seed, bytes as written, stale, zeroed or garbage.
//! - [`sync`] and [`thread`]: `std` by default, shuttle or loom types under the cargo
//!   feature of the same name, so one program can be run normally or explored schedule by
//!   schedule ([`explore`]).
//! - [`trace`] records what happened (actor, event, message, logical time) so a failure can
//!   be drawn, and [`invariant`] turns a trace into violations: at-least-once delivery,
//!   exactly-once effects, durable-after-ack, bounded depth, shutdown within a bound.
//! - [`prop`] checks a stage's promise over many histories generated from a fixed seed and
//!   shrinks a failure to the shortest history that breaks it.
//! - [`check`] runs a scenario's ordered check stages and writes a JSON report
//!   ([`report`]) that `bughunt check` reads, so nobody scrapes test-runner output.
//!
//! ## How to debug a failure
//! Every failing stage carries its trace. `bughunt check` draws it; in a test of your own,
//! print [`trace::Trace::events`]. Schedule-explored stages fail on the same schedule every run.
//!
//! ## Limits
//! The simulated disk models files that grow by appending and shrink by truncating, in one
//! directory, and keeps synced bytes intact in a torn sector (sector atomicity); shuttle explores
//! sequentially consistent schedules only (memory-ordering bugs need loom); loom explores
//! with a preemption bound of 2, which finds the bugs in this catalog but is not a proof.

pub mod blind;
pub mod check;
pub mod clock;
pub mod demo;
pub mod disk;
pub mod explore;
pub mod fault;
pub mod history;
pub mod invariant;
pub mod jitter;
pub mod ledger;
#[cfg(feature = "tokio")]
pub mod paused;
pub mod prop;
pub mod queue;
#[cfg(all(feature = "loom", not(feature = "shuttle")))]
mod recorded;
pub mod report;
#[cfg(feature = "tokio")]
pub mod sink;
pub mod steps;
pub mod story;
pub mod sync;
pub mod trace;

pub use sync::thread;

/// tokio-util, for hunts that cancel work the way production code does
/// (`bughunt_kit::tokio_util::sync::CancellationToken`, `task::TaskTracker`). A hunt crate
/// depends on the kit and tokio only, so the kit hands it on, at the version it pins.
#[cfg(feature = "tokio")]
pub use tokio_util;

#[cfg(all(feature = "shuttle", feature = "loom"))]
compile_error!("bughunt-kit: enable at most one of the features `shuttle` and `loom`");
