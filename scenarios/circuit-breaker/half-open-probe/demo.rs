//! Six consumers charge cards through one breaker, each with one call out at a time, each
//! call answering 300 ms after it went through. The payment service is down from 2 s to 32 s:
//! every call answering in that time fails. Each tick (100 ms), due answers come first, then
//! every consumer with no call out asks the breaker again.
//!
//! Seen from outside, the first call let through after the breaker has been refusing is the
//! probe; any other call let through while it is out is one more call on a service that may
//! still be down.

use super::hunt::*;
use bughunt_kit::clock::Clock;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::invariant::{Invariant, Violation};
use bughunt_kit::trace::{EventKind, Trace};

const CONSUMERS: [&str; 6] = ["c1", "c2", "c3", "c4", "c5", "c6"];
const FAILURE_THRESHOLD: u32 = 5;
const OPEN_TIMEOUT_MS: u64 = 5_000;
const TICK_MS: u64 = 100;
const CALL_MS: u64 = 300;
const OUTAGE_FROM_MS: u64 = 2_000;
const OUTAGE_UNTIL_MS: u64 = 32_000;
const RUN_MS: u64 = 45_000;

fn down(now_ms: u64) -> bool {
    (OUTAGE_FROM_MS..OUTAGE_UNTIL_MS).contains(&now_ms)
}

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let clock = Clock::new();
    let trace = Trace::new();
    let mut breaker = Breaker::new(clock.clone(), FAILURE_THRESHOLD, OPEN_TIMEOUT_MS);
    // What each consumer has out: (call, when it answers).
    let mut out: [Option<(u64, u64)>; CONSUMERS.len()] = [None; CONSUMERS.len()];
    let mut next_call = 1u64;
    let mut refusing = false;
    let mut probe: Option<u64> = None;
    let mut violations = Vec::new();
    let mut failed_per_second = vec![0u64; (RUN_MS / 1_000) as usize];
    let (mut let_through, mut refused, mut failed, mut beside_probe) = (0u64, 0u64, 0u64, 0u64);
    let mut focus: Option<u64> = None;
    for _ in 0..RUN_MS / TICK_MS {
        let now_ms = clock.now_ms();
        let tick_starts = trace.next_seq();
        for (slot, name) in CONSUMERS.iter().enumerate() {
            let Some((call, due_ms)) = out[slot] else {
                continue;
            };
            if due_ms > now_ms {
                continue;
            }
            out[slot] = None;
            if probe == Some(call) {
                // The probe's answer decides: refusals before it are not a reason for the next
                // call to be a probe.
                probe = None;
                refusing = false;
            }
            if down(now_ms) {
                breaker.on_failure();
                failed += 1;
                failed_per_second[(now_ms / 1_000) as usize] += 1;
                trace
                    .event("payments", EventKind::Note)
                    .to(*name)
                    .note(format!("call {call} failed: the service is down"))
                    .record();
            } else {
                breaker.on_success();
                trace
                    .event("payments", EventKind::Note)
                    .to(*name)
                    .note(format!("call {call} answered"))
                    .record();
            }
        }
        for (slot, name) in CONSUMERS.iter().enumerate() {
            if out[slot].is_some() {
                continue;
            }
            if !breaker.try_acquire() {
                if !refusing {
                    trace
                        .event("breaker", EventKind::Note)
                        .to(*name)
                        .note(match probe {
                            Some(probe) => format!("refused: probe {probe} is out"),
                            None => "refused, as every call until the open timeout ends".to_owned(),
                        })
                        .record();
                }
                refused += 1;
                refusing = true;
                continue;
            }
            let call = next_call;
            next_call += 1;
            let_through += 1;
            let note = if let Some(probe) = probe {
                beside_probe += 1;
                violations.push(Violation {
                    invariant: Invariant::LoadBounded,
                    msg: None,
                    detail: format!(
                        "at {now_ms} ms {name}'s call {call} went through while the probe, call \
                         {probe}, was still out"
                    ),
                });
                format!("call {call} let through beside probe {probe}")
            } else if refusing {
                probe = Some(call);
                focus.get_or_insert(tick_starts);
                format!("call {call} let through: the probe")
            } else {
                format!("call {call} let through")
            };
            refusing = false;
            out[slot] = Some((call, now_ms + CALL_MS));
            trace
                .event(*name, EventKind::Note)
                .to("payments")
                .note(note)
                .record();
        }
        trace.set_time_ms(clock.advance_ms(TICK_MS));
    }
    let mut run = DemoRun::new(&trace, violations)
        .count("calls let through", let_through)
        .count("calls refused", refused)
        .count("calls that failed (service down)", failed)
        .bad_count("calls let through beside the probe", beside_probe)
        .series(
            "calls that failed because the service was down",
            "second",
            None,
            failed_per_second,
        );
    if let Some(seq) = focus {
        run = run.focus_from_seq(seq);
    }
    run
}
