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

/// A number sampled over the run (queue depth per tick), drawn as a bar chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    /// What is measured: "queue depth".
    pub label: String,
    /// What one sample is: "tick".
    pub per: String,
    /// The value it must stay at or under, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bound: Option<u64>,
    pub values: Vec<u64>,
}

/// The outcome of one demo run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoRun {
    pub counts: Vec<Count>,
    pub violations: Vec<Violation>,
    /// The message whose story to draw when no violation names one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub focus_msg: Option<u64>,
    /// Else, where in the trace the drawing starts (an event's `seq`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub focus_from_seq: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub series: Vec<Series>,
    pub events: Vec<Event>,
}

impl DemoRun {
    /// A run from its trace and violations; the verdicts are drawn into the trace.
    pub fn new(trace: &Trace, violations: Vec<Violation>) -> Self {
        crate::invariant::mark(trace, &violations);
        Self {
            counts: Vec::new(),
            violations,
            focus_msg: None,
            focus_from_seq: None,
            series: Vec::new(),
            events: trace.events(),
        }
    }

    /// Draws the story of this message when no violation names one.
    pub fn focus_msg(mut self, msg: u64) -> Self {
        self.focus_msg = Some(msg);
        self
    }

    /// Starts the drawing at this event (see [`Trace::next_seq`]) when no message is in focus.
    pub fn focus_from_seq(mut self, seq: u64) -> Self {
        self.focus_from_seq = Some(seq);
        self
    }

    /// Adds a sampled number to draw as a chart.
    pub fn series(mut self, label: &str, per: &str, bound: Option<u64>, values: Vec<u64>) -> Self {
        self.series.push(Series {
            label: label.to_owned(),
            per: per.to_owned(),
            bound,
            values,
        });
        self
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
