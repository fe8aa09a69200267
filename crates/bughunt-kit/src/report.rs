//! The check report: what a run of a scenario's checks found, as JSON.
//!
//! The check runner ([`crate::check`]) writes it to the path in the `BUGHUNT_REPORT`
//! environment variable, rewriting it (atomically) before and after every stage. So a
//! process that dies mid-stage (a loom deadlock aborts it) still leaves a report whose
//! last stage says `running`: the reader knows where it died.

use serde::{Deserialize, Serialize};

use crate::trace::Event;

/// The environment variable naming the report file.
pub const REPORT_ENV: &str = "BUGHUNT_REPORT";

/// The environment variable carrying a per-run nonce that the report repeats, so a reader
/// knows the report it reads was written by the run it started.
pub const NONCE_ENV: &str = "BUGHUNT_NONCE";

/// The report format's version; readers refuse others.
pub const REPORT_FORMAT: u32 = 1;

/// Where a stage stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not started, because an earlier stage failed.
    NotRun,
    /// Started and not finished: if the report ends here, the process died in this stage.
    Running,
    Passed,
    Failed,
}

/// One stage of the checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageReport {
    pub id: String,
    pub title: String,
    pub status: Status,
    /// The mentor's words for a learner whose code fails this stage.
    pub mentor: String,
    /// What exactly went wrong (the failed assertion), when the stage failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// Where it went wrong (file:line of the failed assertion).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub location: Option<String>,
    /// How the stage explored schedules, if it did, and how to see the failure again.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replay: Option<String>,
    /// How long the stage ran, in milliseconds of real time (schedule exploration included).
    #[serde(default)]
    pub elapsed_ms: u64,
    /// What happened in the stage, for drawing.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub trace: Vec<Event>,
    /// For a stage that explored thread schedules and failed: the failing schedule, step by
    /// step, each step naming the line of the learner's code the thread was at.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub steps: Vec<Step>,
}

/// One step of a failing schedule: a thread reached a point where the checker may switch
/// threads (a lock, an atomic, a send, a spawn, a join), at this line of the learner's code.
/// Under loom, a step is one operation on an atomic or a lock, with what it read or wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The thread: its name where it has one, else "thread N" (N counts from 0, the test's own).
    pub thread: String,
    /// The learner's file, relative to the hunt's folder: "src/lib.rs".
    pub file: String,
    pub line: u32,
    /// The line's code, trimmed.
    pub code: String,
    /// What the step read or wrote, where the checker tells it: "read false", "wrote 42",
    /// "read true, wrote false". Under loom a load may read an older value than the latest
    /// store, so this is what shows a memory-ordering bug.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub effect: Option<String>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub format: u32,
    /// The scenario template the checks belong to.
    pub template: String,
    /// The nonce the run was given in [`NONCE_ENV`] (empty when none was).
    #[serde(default)]
    pub nonce: String,
    pub stages: Vec<StageReport>,
}

impl CheckReport {
    /// The first stage that did not pass and was started (failed, or died running).
    pub fn first_failure(&self) -> Option<&StageReport> {
        self.stages
            .iter()
            .find(|stage| matches!(stage.status, Status::Failed | Status::Running))
    }

    /// The stage ids, in the order they ran.
    pub fn stage_ids(&self) -> Vec<&str> {
        self.stages.iter().map(|stage| stage.id.as_str()).collect()
    }

    /// Every stage passed.
    pub fn passed(&self) -> bool {
        !self.stages.is_empty() && self.stages.iter().all(|s| s.status == Status::Passed)
    }

    /// Writes the report atomically: a temporary file beside it, then a rename.
    pub fn write_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }

    /// Reads a report; refuses other formats.
    pub fn read_from(path: &std::path::Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let report: CheckReport = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not a check report: {e}", path.display()))?;
        if report.format != REPORT_FORMAT {
            return Err(format!(
                "{}: report format {} (this bughunt reads {REPORT_FORMAT})",
                path.display(),
                report.format
            ));
        }
        Ok(report)
    }
}
