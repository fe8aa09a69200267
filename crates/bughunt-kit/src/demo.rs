//! What a demo workload returns: the run's trace, its violations, and its counts.
//!
//! A scenario's `demo.rs` is compiled twice, once against its broken form and once against
//! its fixed form, and `bughunt demo` runs both under the same [`crate::fault::FaultPlan`].

use serde::{Deserialize, Serialize};

use crate::invariant::Violation;
use crate::trace::{Event, Trace};

/// One named number: "sent 1000", "LOST 37".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub label: String,
    pub value: u64,
    /// A count that should be zero in a correct run (lost, duplicated, leaked...).
    #[serde(default)]
    pub bad: bool,
}

/// The outcome of one demo run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoRun {
    pub counts: Vec<Count>,
    pub violations: Vec<Violation>,
    pub events: Vec<Event>,
}

impl DemoRun {
    /// A run from its trace and violations; the verdicts are drawn into the trace.
    pub fn new(trace: &Trace, violations: Vec<Violation>) -> Self {
        crate::invariant::mark(trace, &violations);
        Self {
            counts: Vec::new(),
            violations,
            events: trace.events(),
        }
    }

    /// Adds a count a correct run may have any value of.
    pub fn count(mut self, label: &str, value: u64) -> Self {
        self.counts.push(Count {
            label: label.to_owned(),
            value,
            bad: false,
        });
        self
    }

    /// Adds a count that is zero when nothing went wrong.
    pub fn bad_count(mut self, label: &str, value: u64) -> Self {
        self.counts.push(Count {
            label: label.to_owned(),
            value,
            bad: true,
        });
        self
    }
}
