//! Invariant checkers: from what happened (a [`Trace`]) to what went wrong ([`Violation`]s).
//!
//! Each checker states one promise a queue makes and lists every message that broke it, in
//! message-id order, so the same run always gives the same list.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::trace::{EventKind, Trace};

/// The promise that was broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// Every message sent is processed at least once.
    AtLeastOnce,
    /// Every message's side effect happens exactly once.
    ExactlyOnceEffects,
    /// A message is not delivered again after its ack arrived.
    NoDeliveryAfterAck,
    /// Every message acked to its producer survives a crash.
    DurableAfterAck,
    /// The queue never holds more than its bound.
    DepthBounded,
    /// The load a program puts on a service stays within what it promised: a fleet's retries
    /// while the service is down, the calls a half-open breaker lets through.
    LoadBounded,
    /// Every message is handled within its time bound (a batch flushed within its interval).
    LatencyBounded,
    /// Shutdown returns within its bound.
    ShutdownWithinBound,
    /// No task outlives shutdown.
    NoLeakedTask,
    /// The program keeps its promise under every thread schedule explored.
    EverySchedule,
}

/// One broken promise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: Invariant,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub msg: Option<u64>,
    pub detail: String,
}

fn ids_of(trace: &Trace, kinds: &[EventKind]) -> BTreeMap<u64, u64> {
    let mut counts = BTreeMap::new();
    for event in trace.events() {
        if let (true, Some(msg)) = (kinds.contains(&event.kind), event.msg) {
            *counts.entry(msg).or_insert(0) += 1;
        }
    }
    counts
}

/// Every message with a `Send` event has at least one `Process` event.
pub fn at_least_once(trace: &Trace) -> Vec<Violation> {
    let processed = ids_of(trace, &[EventKind::Process]);
    ids_of(trace, &[EventKind::Send])
        .into_keys()
        .filter(|msg| !processed.contains_key(msg))
        .map(|msg| Violation {
            invariant: Invariant::AtLeastOnce,
            msg: Some(msg),
            detail: format!("m{msg} was sent and never processed"),
        })
        .collect()
}

/// No message has more than one `Process` event.
pub fn exactly_once_effects(trace: &Trace) -> Vec<Violation> {
    ids_of(trace, &[EventKind::Process])
        .into_iter()
        .filter(|(_, times)| *times > 1)
        .map(|(msg, times)| Violation {
            invariant: Invariant::ExactlyOnceEffects,
            msg: Some(msg),
            detail: format!("the side effect of m{msg} happened {times} times"),
        })
        .collect()
}

/// No `Deliver` or `Redeliver` of a message after an `Ack` of it arrived (a lost ack is an
/// `AckLost` event, which does not count).
pub fn no_delivery_after_ack(trace: &Trace) -> Vec<Violation> {
    let mut acked = BTreeSet::new();
    let mut broken = BTreeSet::new();
    for event in trace.events() {
        let Some(msg) = event.msg else { continue };
        match event.kind {
            EventKind::Ack => {
                acked.insert(msg);
            }
            EventKind::Deliver | EventKind::Redeliver if acked.contains(&msg) => {
                broken.insert(msg);
            }
            _ => {}
        }
    }
    broken
        .into_iter()
        .map(|msg| Violation {
            invariant: Invariant::NoDeliveryAfterAck,
            msg: Some(msg),
            detail: format!("m{msg} was delivered again after its ack arrived"),
        })
        .collect()
}

/// Every message with an `Ack` event (log to producer) has a `Recover` event.
pub fn durable_after_ack(trace: &Trace) -> Vec<Violation> {
    let recovered = ids_of(trace, &[EventKind::Recover]);
    ids_of(trace, &[EventKind::Ack])
        .into_keys()
        .filter(|msg| !recovered.contains_key(msg))
        .map(|msg| Violation {
            invariant: Invariant::DurableAfterAck,
            msg: Some(msg),
            detail: format!("m{msg} was acked to its producer and not recovered after the crash"),
        })
        .collect()
}

/// The queue depth observed at each sample never exceeds `depth_max`. One violation, for the
/// first sample over the bound, naming the highest depth seen.
pub fn depth_bounded(depth_samples: &[u64], depth_max: u64) -> Vec<Violation> {
    let Some(first_over) = depth_samples.iter().position(|depth| *depth > depth_max) else {
        return Vec::new();
    };
    let highest = depth_samples.iter().max().copied().unwrap_or(0);
    vec![Violation {
        invariant: Invariant::DepthBounded,
        msg: None,
        detail: format!(
            "depth passed its bound of {depth_max} at sample {} and reached {highest}",
            first_over + 1
        ),
    }]
}

/// Shutdown took at most `bound_ms` (None = it never returned) and left no task alive.
pub fn shutdown_within(elapsed_ms: Option<u64>, bound_ms: u64, tasks_alive: u64) -> Vec<Violation> {
    let mut violations = Vec::new();
    match elapsed_ms {
        Some(elapsed) if elapsed <= bound_ms => {}
        Some(elapsed) => violations.push(Violation {
            invariant: Invariant::ShutdownWithinBound,
            msg: None,
            detail: format!("shutdown took {elapsed} ms, over its bound of {bound_ms} ms"),
        }),
        None => violations.push(Violation {
            invariant: Invariant::ShutdownWithinBound,
            msg: None,
            detail: format!("shutdown had not returned after its bound of {bound_ms} ms"),
        }),
    }
    if tasks_alive > 0 {
        violations.push(Violation {
            invariant: Invariant::NoLeakedTask,
            msg: None,
            detail: format!("{tasks_alive} task(s) still running after shutdown"),
        });
    }
    violations
}

/// Draws the verdicts into the trace: a `Lost` or `Duplicate` event for each violation about
/// a message, so the drawing of the run ends with what went wrong.
pub fn mark(trace: &Trace, violations: &[Violation]) {
    for violation in violations {
        let Some(msg) = violation.msg else { continue };
        let kind = match violation.invariant {
            Invariant::ExactlyOnceEffects | Invariant::NoDeliveryAfterAck => EventKind::Duplicate,
            _ => EventKind::Lost,
        };
        trace
            .event("verdict", kind)
            .msg(msg)
            .note(violation.detail.clone())
            .record();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_and_process(sent: &[u64], processed: &[u64]) -> Trace {
        let trace = Trace::new();
        for msg in sent {
            trace.event("producer", EventKind::Send).msg(*msg).record();
        }
        for msg in processed {
            trace
                .event("consumer", EventKind::Process)
                .msg(*msg)
                .record();
        }
        trace
    }

    /// A message sent and never processed is named; processing twice is not a loss.
    #[test]
    fn at_least_once_names_the_lost() {
        let trace = send_and_process(&[1, 2, 3], &[3, 1, 1]);
        let lost: Vec<Option<u64>> = at_least_once(&trace).iter().map(|v| v.msg).collect();
        assert_eq!(lost, vec![Some(2)]);
        assert!(at_least_once(&send_and_process(&[1], &[1])).is_empty());
    }

    /// Two effects of one message are a duplicate; one is fine.
    #[test]
    fn exactly_once_names_the_duplicated() {
        let violations = exactly_once_effects(&send_and_process(&[1, 2], &[1, 2, 2, 2]));
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].msg, Some(2));
        assert!(violations[0].detail.contains("3 times"));
    }

    /// Delivering after an ack arrived is a violation; after a lost ack it is correct.
    #[test]
    fn delivery_after_ack() {
        let trace = Trace::new();
        trace.event("queue", EventKind::Deliver).msg(1).record();
        trace.event("c1", EventKind::AckLost).msg(1).record();
        trace.event("queue", EventKind::Redeliver).msg(1).record();
        assert!(no_delivery_after_ack(&trace).is_empty());
        trace.event("c1", EventKind::Ack).msg(1).record();
        trace.event("queue", EventKind::Redeliver).msg(1).record();
        assert_eq!(no_delivery_after_ack(&trace)[0].msg, Some(1));
    }

    /// Acked and not recovered is a durability violation; unacked and lost is allowed.
    #[test]
    fn durable_after_ack_only_counts_acked() {
        let trace = Trace::new();
        for msg in [1, 2, 3] {
            trace.event("log", EventKind::Ack).msg(msg).record();
        }
        trace.event("log", EventKind::Recover).msg(1).record();
        trace.event("log", EventKind::Recover).msg(3).record();
        let lost: Vec<Option<u64>> = durable_after_ack(&trace).iter().map(|v| v.msg).collect();
        assert_eq!(lost, vec![Some(2)]);
    }

    /// Depth at the bound is fine; one over is not.
    #[test]
    fn depth_bound_is_inclusive() {
        assert!(depth_bounded(&[1, 8, 8], 8).is_empty());
        let violations = depth_bounded(&[1, 9, 40, 3], 8);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].detail.contains("reached 40"));
    }

    /// Shutdown that never returns, or leaves tasks behind, is named.
    #[test]
    fn shutdown_bounds() {
        assert!(shutdown_within(Some(100), 100, 0).is_empty());
        assert_eq!(
            shutdown_within(None, 100, 0)[0].invariant,
            Invariant::ShutdownWithinBound
        );
        let leaked = shutdown_within(Some(5), 100, 2);
        assert_eq!(leaked.len(), 1);
        assert_eq!(leaked[0].invariant, Invariant::NoLeakedTask);
    }
}
