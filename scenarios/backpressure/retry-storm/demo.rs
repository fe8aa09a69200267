//! The demo for backpressure/retry-storm: twenty consumers meet a one-minute outage.
//!
//! Each consumer has `MESSAGES_EACH` messages to deliver to the downstream and its own
//! retrier, with a generator seeded apart from the others. The downstream is down for the
//! first `OUTAGE_MS` and fine after; a call takes `CALL_MS`. The fleet's calls are counted per
//! simulated second: the wrong way keeps calling at the same pace for the whole outage, the
//! right way thins out, then delivers everything once the downstream is back.

use std::collections::BTreeMap;

use super::hunt::*;
use bughunt_kit::clock::Clock;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::invariant::{Invariant, Violation};
use bughunt_kit::jitter::Rng;
use bughunt_kit::trace::{EventKind, Trace};

const FLEET: u64 = 20;
const MESSAGES_EACH: u64 = 5;
const OUTAGE_MS: u64 = 60_000;
const CALL_MS: u64 = 20;
/// Seconds drawn in the chart: the outage and the recovery after it.
const CHART_SECONDS: u64 = 75;
/// A bound on the run: far more calls than either form needs to finish.
const CALLS_MAX: u64 = 200_000;
/// Events drawn for each of c1 and c2: the start of their story.
const DRAWN_EACH: usize = 24;

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let trace = Trace::new();
    let clock = Clock::new();
    let mut seeds = Rng::seeded(0x00de_0001);
    let mut retriers: Vec<Retrier> = (0..FLEET)
        .map(|_| Retrier::new(clock.clone(), Rng::seeded(seeds.next_u64())))
        .collect();
    // Consumer c's messages are c*MESSAGES_EACH+1 ..; the next one is `next_of[c]`.
    let mut next_of: Vec<u64> = (0..FLEET).map(|c| c * MESSAGES_EACH + 1).collect();
    // (instant, order) → (consumer, done: the call ends now / starts now)
    let mut agenda: BTreeMap<(u64, u64), (usize, bool)> = BTreeMap::new();
    let mut order = 0;
    for consumer in 0..FLEET as usize {
        order += 1;
        agenda.insert((0, order), (consumer, false));
    }
    let mut drawn = [0usize; 2];
    let mut per_second = vec![0u64; CHART_SECONDS as usize];
    let (mut calls, mut calls_in_outage, mut delivered, mut dead) = (0u64, 0u64, 0u64, 0u64);
    while let Some(((at_ms, _), (consumer, ends))) = agenda.pop_first() {
        if calls > CALLS_MAX {
            break;
        }
        let now_ms = clock.now_ms();
        if at_ms > now_ms {
            trace.set_time_ms(clock.advance_ms(at_ms - now_ms));
        }
        let id = next_of[consumer];
        let name = format!("c{}", consumer + 1);
        let draw = consumer < 2 && drawn[consumer] < DRAWN_EACH;
        if !ends {
            calls += 1;
            if at_ms < OUTAGE_MS {
                calls_in_outage += 1;
            }
            if let Some(second) = per_second.get_mut((at_ms / 1_000) as usize) {
                *second += 1;
            }
            if draw {
                drawn[consumer] += 1;
                trace
                    .event(&name, EventKind::Note)
                    .to("downstream")
                    .msg(id)
                    .note("call")
                    .record();
            }
            order += 1;
            agenda.insert((at_ms + CALL_MS, order), (consumer, true));
            continue;
        }
        // The call started CALL_MS ago: it failed if the downstream was down then.
        let failed = at_ms - CALL_MS < OUTAGE_MS;
        let retry_ms = if failed {
            match retriers[consumer].failed(id) {
                Next::RetryAt(retry_ms) => Some(retry_ms.max(at_ms)),
                Next::DeadLetter => {
                    dead += 1;
                    None
                }
            }
        } else {
            retriers[consumer].succeeded(id);
            delivered += 1;
            None
        };
        if draw {
            drawn[consumer] += 1;
            let what = match (failed, retry_ms) {
                (false, _) => "done".to_owned(),
                (true, Some(retry_ms)) => format!("failed; retry at {retry_ms} ms"),
                (true, None) => "failed; to the dead-letter queue".to_owned(),
            };
            trace
                .event("downstream", EventKind::Note)
                .to(&name)
                .msg(id)
                .note(what)
                .record();
        }
        let next_ms = match retry_ms {
            Some(retry_ms) => retry_ms,
            None => {
                next_of[consumer] += 1;
                if next_of[consumer] > (consumer as u64 + 1) * MESSAGES_EACH {
                    continue;
                }
                at_ms
            }
        };
        order += 1;
        agenda.insert((next_ms, order), (consumer, false));
    }

    let allowed = FLEET * 4 * OUTAGE_MS / MAX_DELAY_MS;
    let over = calls_in_outage.saturating_sub(allowed);
    let violations = if over > 0 {
        vec![Violation {
            invariant: Invariant::LoadBounded,
            msg: None,
            detail: format!(
                "the fleet called the downstream {calls_in_outage} times while it was down for \
                 {} s: {over} more than backoff allows (4 calls per MAX_DELAY_MS per consumer, \
                 {allowed} in all)",
                OUTAGE_MS / 1_000
            ),
        }]
    } else {
        Vec::new()
    };
    let busiest = per_second.iter().copied().max().unwrap_or(0);
    DemoRun::new(&trace, violations)
        .focus_msg(1)
        .series(
            "calls to the downstream (down until 60 s)",
            "second",
            None,
            per_second,
        )
        .count("messages", FLEET * MESSAGES_EACH)
        .count("calls while the downstream was down", calls_in_outage)
        .count("busiest second (calls)", busiest)
        .count("delivered", delivered)
        .count("dead-lettered", dead)
        .bad_count("calls over the outage's allowance", over)
}
