//! Fault plans: what goes wrong, and exactly when, given as data.
//!
//! A plan is a list of [`Fault`]s. Scenarios write them in `scenario.toml` under
//! `[[demo.faults]]`, and checks build them in code. The queue under test never sees the
//! plan; the harness that drives it asks the plan ("does consumer c2 crash after this
//! receive?") and acts it out, so the same plan gives the same run every time.
//!
//! ```toml
//! [[demo.faults]]
//! fault = "crash-after-receive"
//! consumer = "c2"
//! nth = 27
//! repeat = true      # every 27th receive of c2, not only the 27th
//! ```

use serde::{Deserialize, Serialize};

/// One planned fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// `consumer` crashes right after its `nth` receive (counting from 1), before it acks.
    CrashAfterReceive {
        consumer: String,
        nth: u64,
        #[serde(default)]
        repeat: bool,
    },
    /// The `nth` ack sent to the broker (counting from 1) is lost on the way.
    DropAck {
        nth: u64,
        #[serde(default)]
        repeat: bool,
    },
    /// `consumer` takes nothing for `ticks` ticks, starting at tick `from_tick`.
    StallConsumer {
        consumer: String,
        from_tick: u64,
        ticks: u64,
    },
    /// The power goes right after the `nth` publish; `torn_bytes` of unsynced data survive.
    PowerCutAfterPublish { nth: u64, torn_bytes: u64 },
    /// The power goes during the `nth` fsync; `torn_bytes` of unsynced data survive.
    PowerCutAtSync { nth: u64, torn_bytes: u64 },
    /// The OS writes dirty pages back on its own after every `every`-th publish.
    OsWriteback { every: u64 },
}

fn hits(count: u64, nth: u64, repeat: bool) -> bool {
    nth > 0 && (count == nth || (repeat && count.is_multiple_of(nth)))
}

fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, hundred) if hundred != 11 => "st",
        (2, hundred) if hundred != 12 => "nd",
        (3, hundred) if hundred != 13 => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn every_or_the(nth: u64, repeat: bool) -> String {
    if repeat {
        format!("every {}", ordinal(nth))
    } else {
        format!("the {}", ordinal(nth))
    }
}

impl Fault {
    /// One line a learner can read: "consumer c2 crashes after every 27th receive".
    pub fn describe(&self) -> String {
        match self {
            Fault::CrashAfterReceive {
                consumer,
                nth,
                repeat,
            } => format!(
                "consumer {consumer} crashes after {} receive, before it acks",
                every_or_the(*nth, *repeat)
            ),
            Fault::DropAck { nth, repeat } => {
                format!("{} ack is lost on the network", capitalize(&every_or_the(*nth, *repeat)))
            }
            Fault::StallConsumer {
                consumer,
                from_tick,
                ticks,
            } => format!("consumer {consumer} stalls for {ticks} ticks from tick {from_tick}"),
            Fault::PowerCutAfterPublish { nth, torn_bytes } => format!(
                "the power goes right after the {} publish ({torn_bytes} unsynced bytes survive, torn)",
                ordinal(*nth)
            ),
            Fault::PowerCutAtSync { nth, torn_bytes } => format!(
                "the power goes during the {} fsync ({torn_bytes} unsynced bytes survive, torn)",
                ordinal(*nth)
            ),
            Fault::OsWriteback { every } => {
                format!("the OS writes dirty pages back on its own after every {} publish", ordinal(*every))
            }
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A list of faults, asked by the harness at each step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultPlan {
    faults: Vec<Fault>,
}

impl FaultPlan {
    /// A plan with these faults.
    pub fn new(faults: Vec<Fault>) -> Self {
        Self { faults }
    }

    /// A plan where nothing goes wrong.
    pub fn none() -> Self {
        Self::default()
    }

    /// The faults, in the order given.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Does `consumer` crash right after its `receive_count`-th receive?
    pub fn crashes_after_receive(&self, consumer: &str, receive_count: u64) -> bool {
        self.faults.iter().any(|fault| match fault {
            Fault::CrashAfterReceive {
                consumer: who,
                nth,
                repeat,
            } => who == consumer && hits(receive_count, *nth, *repeat),
            _ => false,
        })
    }

    /// Is the `ack_count`-th ack lost on the way to the broker?
    pub fn drops_ack(&self, ack_count: u64) -> bool {
        self.faults.iter().any(|fault| match fault {
            Fault::DropAck { nth, repeat } => hits(ack_count, *nth, *repeat),
            _ => false,
        })
    }

    /// Is `consumer` stalled at `tick`?
    pub fn is_stalled(&self, consumer: &str, tick: u64) -> bool {
        self.faults.iter().any(|fault| match fault {
            Fault::StallConsumer {
                consumer: who,
                from_tick,
                ticks,
            } => who == consumer && tick >= *from_tick && tick < from_tick.saturating_add(*ticks),
            _ => false,
        })
    }

    /// If the power goes right after the `publish_count`-th publish: how many bytes tear.
    pub fn power_cut_after_publish(&self, publish_count: u64) -> Option<u64> {
        self.faults.iter().find_map(|fault| match fault {
            Fault::PowerCutAfterPublish { nth, torn_bytes } if *nth == publish_count => {
                Some(*torn_bytes)
            }
            _ => None,
        })
    }

    /// The planned power cut during a sync, as (nth sync, torn bytes).
    pub fn power_cut_at_sync(&self) -> Option<(u64, u64)> {
        self.faults.iter().find_map(|fault| match fault {
            Fault::PowerCutAtSync { nth, torn_bytes } => Some((*nth, *torn_bytes)),
            _ => None,
        })
    }

    /// Does the OS write dirty pages back after the `publish_count`-th publish?
    pub fn os_writes_back_after(&self, publish_count: u64) -> bool {
        self.faults.iter().any(|fault| match fault {
            Fault::OsWriteback { every } => hits(publish_count, *every, true),
            _ => false,
        })
    }

    /// Every fault as a sentence.
    pub fn describe(&self) -> Vec<String> {
        self.faults.iter().map(Fault::describe).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-off crash strikes once; a repeating one strikes at every multiple.
    #[test]
    fn crash_once_or_every() {
        let plan = FaultPlan::new(vec![
            Fault::CrashAfterReceive {
                consumer: "c1".into(),
                nth: 3,
                repeat: false,
            },
            Fault::CrashAfterReceive {
                consumer: "c2".into(),
                nth: 2,
                repeat: true,
            },
        ]);
        let c1: Vec<u64> = (1..=7)
            .filter(|n| plan.crashes_after_receive("c1", *n))
            .collect();
        let c2: Vec<u64> = (1..=7)
            .filter(|n| plan.crashes_after_receive("c2", *n))
            .collect();
        assert_eq!(c1, vec![3]);
        assert_eq!(c2, vec![2, 4, 6]);
        assert!(!plan.crashes_after_receive("c3", 2));
    }

    /// A stall covers exactly [from_tick, from_tick + ticks).
    #[test]
    fn stall_window_is_half_open() {
        let plan = FaultPlan::new(vec![Fault::StallConsumer {
            consumer: "slow".into(),
            from_tick: 5,
            ticks: 2,
        }]);
        let stalled: Vec<u64> = (0..10).filter(|t| plan.is_stalled("slow", *t)).collect();
        assert_eq!(stalled, vec![5, 6]);
    }

    /// Plans read from TOML exactly as scenarios write them, and unknown keys are refused.
    #[test]
    fn plans_are_data() {
        #[derive(Deserialize)]
        struct Doc {
            faults: FaultPlan,
        }
        let doc: Doc = toml_like(
            r#"{"faults":[{"fault":"drop-ack","nth":4,"repeat":true},{"fault":"power-cut-at-sync","nth":2,"torn_bytes":5}]}"#,
        );
        assert!(doc.faults.drops_ack(8));
        assert!(!doc.faults.drops_ack(6));
        assert_eq!(doc.faults.power_cut_at_sync(), Some((2, 5)));
        let unknown =
            serde_json::from_str::<FaultPlan>(r#"[{"fault":"drop-ack","nth":1,"oops":2}]"#);
        assert!(unknown.is_err());
    }

    fn toml_like<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    /// Descriptions read as English, ordinals included.
    #[test]
    fn descriptions_read_well() {
        let plan = FaultPlan::new(vec![
            Fault::CrashAfterReceive {
                consumer: "c2".into(),
                nth: 22,
                repeat: true,
            },
            Fault::DropAck {
                nth: 11,
                repeat: false,
            },
        ]);
        assert_eq!(
            plan.describe(),
            vec![
                "consumer c2 crashes after every 22nd receive, before it acks".to_string(),
                "The 11th ack is lost on the network".to_string(),
            ]
        );
    }
}
