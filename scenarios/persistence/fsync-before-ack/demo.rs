//! The demo for persistence/fsync-before-ack: 1000 messages published one by one, the OS
//! writing dirty pages back now and then, and the power going at the end.
//!
//! Each `Ok` from `publish` is recorded as the log's ack to the producer. After the run the
//! device is rebooted and the log recovered; every acked message that does not come back
//! is a durability violation. A plan without a power cut ends with a clean reboot, which
//! still loses whatever was never made durable.

use super::hunt::*;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::disk::Disk;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::invariant;
use bughunt_kit::trace::{EventKind, Trace};

/// Messages the producer publishes, one per `publish`.
const MESSAGES: u64 = 1_000;

fn payload(id: u64) -> Vec<u8> {
    format!("m{id}: order {} placed", 1_000 + id).into_bytes()
}

/// The message a recovered payload is, if it is exactly one this demo published.
fn message_id(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let id: u64 = text.strip_prefix('m')?.split(':').next()?.parse().ok()?;
    (payload(id) == bytes).then_some(id)
}

pub fn run(plan: &FaultPlan) -> DemoRun {
    let trace = Trace::new();
    let disk = Disk::with_plan(plan);
    let mut published = 0;
    let mut acked = 0;

    match Log::open(disk.clone()) {
        Ok(mut log) => {
            for id in 1..=MESSAGES {
                published += 1;
                trace
                    .event("producer", EventKind::Send)
                    .to("log")
                    .msg(id)
                    .record();
                match log.publish(&payload(id)) {
                    Ok(()) => {
                        acked += 1;
                        trace
                            .event("log", EventKind::Ack)
                            .to("producer")
                            .msg(id)
                            .record();
                    }
                    Err(error) => trace
                        .event("log", EventKind::Note)
                        .to("producer")
                        .msg(id)
                        .note(format!("Err, not acked: {error}"))
                        .record(),
                }
                if disk.is_powered_off() {
                    // A power cut planned during a disk call struck inside this publish.
                    let report = disk.last_cut().unwrap_or_default();
                    trace
                        .event("disk", EventKind::PowerCut)
                        .msg(id)
                        .note(report.describe())
                        .record();
                    break;
                }
                // The cut strikes right after the publish, before the OS gets to write back.
                if let Some(torn_bytes) = plan.power_cut_after_publish(id) {
                    let unsynced_bytes = disk.unsynced_bytes();
                    disk.power_cut(torn_bytes);
                    trace
                        .event("disk", EventKind::PowerCut)
                        .note(format!(
                            "{unsynced_bytes} bytes were not durable; {torn_bytes} survive, torn"
                        ))
                        .record();
                    break;
                }
                if plan.os_writes_back_after(id) {
                    disk.os_writeback();
                    trace
                        .event("disk", EventKind::Note)
                        .note("the OS writes dirty pages back on its own")
                        .record();
                }
            }
        }
        Err(error) => trace
            .event("log", EventKind::Note)
            .note(format!("the log did not open: {error}"))
            .record(),
    }

    let fsyncs = disk.stats().syncs;
    let mut recovered = 0;
    match recover(&disk.reboot()) {
        Ok(payloads) => {
            for bytes in &payloads {
                match message_id(bytes) {
                    Some(id) => {
                        recovered += 1;
                        trace.event("log", EventKind::Recover).msg(id).record();
                    }
                    None => trace
                        .event("log", EventKind::Note)
                        .note("recovered a record that is no message")
                        .record(),
                }
            }
        }
        Err(error) => trace
            .event("log", EventKind::Note)
            .note(format!("recovery failed: {error}"))
            .record(),
    }

    let violations = invariant::durable_after_ack(&trace);
    let lost_after_ack = violations.len() as u64;
    DemoRun::new(&trace, violations)
        .count("published", published)
        .count("acked", acked)
        .count("recovered", recovered)
        .bad_count("LOST after ack", lost_after_ack)
        .count("fsyncs", fsyncs)
}
