//! Checks for persistence/fsync-before-ack: every message acked to its producer survives a
//! power cut, through `publish` and `publish_batch` alike, and a power cut in the middle of a
//! publish leaves that publish unacked and a torn tail that recovery stops at cleanly.

use std::io;
use std::panic::{self, AssertUnwindSafe};

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::disk::Disk;
use bughunt_kit::invariant;
use bughunt_kit::trace::EventKind;
use hunt::*;

/// The payload of message `id`: its id first, so a recovered record can be named.
fn payload(id: u64) -> Vec<u8> {
    format!("m{id}: order {} placed", 1_000 + id).into_bytes()
}

/// The message a recovered payload is, if it is exactly one the checks published.
fn message_id(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let id: u64 = text.strip_prefix('m')?.split(':').next()?.parse().ok()?;
    (payload(id) == bytes).then_some(id)
}

fn ids(list: &[u64]) -> String {
    let named: Vec<String> = list.iter().map(|id| format!("m{id}")).collect();
    format!("[{}]", named.join(", "))
}

/// What the disk saw during one call: (writes, fsyncs).
fn disk_work(disk: &Disk, before: bughunt_kit::disk::DiskStats) -> (u64, u64) {
    let after = disk.stats();
    (after.writes - before.writes, after.syncs - before.syncs)
}

/// Publishes message `id` and records the story: send, what the disk did, ack or failure.
fn publish_one(ctx: &Ctx, log: &mut Log, disk: &Disk, id: u64) -> io::Result<()> {
    ctx.trace
        .event("producer", EventKind::Send)
        .to("log")
        .msg(id)
        .record();
    let before = disk.stats();
    let powered_before = !disk.is_powered_off();
    let outcome = log.publish(&payload(id));
    let (writes, syncs) = disk_work(disk, before);
    if writes > 0 {
        ctx.trace
            .event("log", EventKind::Write)
            .to("disk")
            .msg(id)
            .note("in the page cache, not yet durable")
            .record();
    }
    if syncs > 0 {
        ctx.trace
            .event("log", EventKind::Sync)
            .to("disk")
            .msg(id)
            .note(format!("{syncs} fsync(s) during the publish"))
            .record();
    }
    if powered_before && disk.is_powered_off() {
        ctx.trace
            .event("disk", EventKind::PowerCut)
            .msg(id)
            .note(format!("during the publish of m{id}"))
            .record();
    }
    record_outcome(ctx, &[id], &outcome);
    outcome
}

/// Publishes messages `batch` with one `publish_batch` call, recording the story.
fn publish_batch(ctx: &Ctx, log: &mut Log, disk: &Disk, batch: &[u64]) -> io::Result<()> {
    for id in batch {
        ctx.trace
            .event("producer", EventKind::Send)
            .to("log")
            .msg(*id)
            .record();
    }
    let payloads: Vec<Vec<u8>> = batch.iter().map(|id| payload(*id)).collect();
    let borrowed: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let before = disk.stats();
    let outcome = log.publish_batch(&borrowed);
    let (writes, syncs) = disk_work(disk, before);
    ctx.trace
        .event("log", EventKind::Write)
        .to("disk")
        .note(format!(
            "batch {}: {writes} write(s), {syncs} fsync(s)",
            ids(batch)
        ))
        .record();
    record_outcome(ctx, batch, &outcome);
    outcome
}

fn record_outcome(ctx: &Ctx, batch: &[u64], outcome: &io::Result<()>) {
    for id in batch {
        match outcome {
            Ok(()) => ctx
                .trace
                .event("log", EventKind::Ack)
                .to("producer")
                .msg(*id)
                .note("Ok: the producer forgets the message")
                .record(),
            Err(error) => ctx
                .trace
                .event("log", EventKind::Note)
                .to("producer")
                .msg(*id)
                .note(format!("Err, not acked: {error}"))
                .record(),
        }
    }
}

fn cut_power(ctx: &Ctx, disk: &Disk, torn_bytes: u64) {
    disk.power_cut(torn_bytes);
    ctx.trace
        .event("disk", EventKind::PowerCut)
        .note(format!("{torn_bytes} unsynced bytes survive"))
        .record();
}

/// Reboots the device and recovers the log: it must neither panic nor fail. Records a
/// `Recover` for each record that is a message, a note for anything else.
fn reboot_and_recover(ctx: &Ctx, disk: &Disk) -> Vec<Vec<u8>> {
    let rebooted = disk.reboot();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| recover(&rebooted)));
    let recovered = match outcome {
        Ok(Ok(recovered)) => recovered,
        Ok(Err(error)) => panic!(
            "recover failed after the reboot ({error}): a log with a torn tail is normal after \
             a power cut, and recovery must return the whole records before it"
        ),
        Err(_) => panic!(
            "recover panicked after the reboot: a log with a torn tail is normal after a power \
             cut, and recovery must stop at it, not trust it"
        ),
    };
    for bytes in &recovered {
        match message_id(bytes) {
            Some(id) => ctx.trace.event("log", EventKind::Recover).msg(id).record(),
            None => ctx
                .trace
                .event("log", EventKind::Note)
                .note(format!(
                    "recovered a record that is no message: {:?}",
                    String::from_utf8_lossy(bytes)
                ))
                .record(),
        }
    }
    recovered
}

/// The recovered records must be exactly the acked messages, in publish order.
fn require_exactly(recovered: &[Vec<u8>], acked: &[u64]) {
    let expected: Vec<Vec<u8>> = acked.iter().map(|id| payload(*id)).collect();
    if recovered == expected {
        return;
    }
    if let Some(stray) = recovered.iter().find(|bytes| message_id(bytes).is_none()) {
        panic!(
            "recovery returned a record that no producer was told was safe: {:?} (the torn \
             tail of an unacked publish, trusted as a message); the acked messages were {}",
            String::from_utf8_lossy(stray),
            ids(acked)
        );
    }
    let got: Vec<u64> = recovered
        .iter()
        .filter_map(|bytes| message_id(bytes))
        .collect();
    panic!(
        "recovery returned {} but the acked messages, in order, were {}",
        ids(&got),
        ids(acked)
    );
}

/// m1..m5 published one by one, all acked; the power goes with nothing unsynced surviving.
fn acked_survive_power_cut(ctx: &mut Ctx) {
    let disk = Disk::new();
    let mut log = Log::open(disk.clone()).expect("opening a log on a fresh disk");
    let acked: Vec<u64> = (1..=5).collect();
    for id in &acked {
        if let Err(error) = publish_one(ctx, &mut log, &disk, *id) {
            panic!("publish(m{id}) failed on a healthy disk: {error}");
        }
    }
    cut_power(ctx, &disk, 0);
    let recovered = reboot_and_recover(ctx, &disk);
    ctx.require(invariant::durable_after_ack(&ctx.trace));
    require_exactly(&recovered, &acked);
}

/// Three batches through `publish_batch`, all acked; the power goes with nothing unsynced
/// surviving.
fn batch_acked_survive(ctx: &mut Ctx) {
    let disk = Disk::new();
    let mut log = Log::open(disk.clone()).expect("opening a log on a fresh disk");
    let batches: [&[u64]; 3] = [&[1, 2, 3], &[4, 5], &[6, 7, 8]];
    for batch in batches {
        if let Err(error) = publish_batch(ctx, &mut log, &disk, batch) {
            panic!(
                "publish_batch({}) failed on a healthy disk: {error}",
                ids(batch)
            );
        }
    }
    cut_power(ctx, &disk, 0);
    let recovered = reboot_and_recover(ctx, &disk);
    ctx.require(invariant::durable_after_ack(&ctx.trace));
    let acked: Vec<u64> = batches.concat();
    require_exactly(&recovered, &acked);
}

/// Three messages acked, then the power goes during the fourth publish's fsync with
/// `torn_bytes` of it on the platter. The fourth must not be acked, and recovery must give
/// back exactly the first three.
fn torn_round(ctx: &Ctx, first_id: u64, torn_bytes: u64, where_torn: &str) {
    let disk = Disk::new();
    let mut log = Log::open(disk.clone()).expect("opening a log on a fresh disk");
    let acked: Vec<u64> = (first_id..first_id + 3).collect();
    for id in &acked {
        if let Err(error) = publish_one(ctx, &mut log, &disk, *id) {
            panic!("publish(m{id}) failed on a healthy disk: {error}");
        }
    }
    let torn_id = first_id + 3;
    disk.plan_power_cut_at_sync(1, torn_bytes);
    ctx.trace
        .event("disk", EventKind::Note)
        .msg(torn_id)
        .note(format!(
            "the power will go during the next fsync, tearing {where_torn}"
        ))
        .record();
    let outcome = publish_one(ctx, &mut log, &disk, torn_id);
    if !disk.is_powered_off() {
        // The publish made no fsync for the planned cut to strike in: cut right after it.
        cut_power(ctx, &disk, torn_bytes);
    }
    let recovered = reboot_and_recover(ctx, &disk);
    if outcome.is_ok() {
        ctx.trace
            .event("verdict", EventKind::Lost)
            .msg(torn_id)
            .note("acked although its fsync failed")
            .record();
    }
    assert!(
        outcome.is_err(),
        "publish(m{torn_id}) returned Ok although the power went during its fsync: m{torn_id} \
         was acked, and after the reboot only {} whole record(s) are in the log. A failed fsync \
         means the record may not be on disk: the publish must fail, not ack",
        recovered.len()
    );
    ctx.require(invariant::durable_after_ack(&ctx.trace));
    require_exactly(&recovered, &acked);
}

fn torn_tail(ctx: &mut Ctx) {
    torn_round(ctx, 1, 3, "m4's header (3 bytes of it survive)");
    torn_round(
        ctx,
        5,
        10,
        "m8's payload (its header and 2 payload bytes survive)",
    );
}

#[test]
fn checks() {
    run_stages(
        "fsync-before-ack",
        &[
            Stage {
                id: "acked-survive-power-cut",
                title: "Every message acked by publish survives a power cut",
                mentor: "The producer forgot the message the moment it saw Ok. Where were the \
                         bytes at that moment, and what does a power cut do to them, or to the \
                         file that holds them?",
                run: acked_survive_power_cut,
            },
            Stage {
                id: "batch-acked-survive",
                title: "Every message acked by publish_batch survives a power cut",
                mentor: "Close! publish keeps its promise now, but publish_batch acks a whole \
                         batch on the same promise. Every path that says Ok must make its \
                         records durable first; a batch can share one fsync (group commit).",
                run: batch_acked_survive,
            },
            Stage {
                id: "torn-tail",
                title: "A power cut during a publish: no ack, and recovery stops at the torn tail",
                mentor: "Better! Everything acked survives a clean cut. But now the power goes \
                         in the middle of a publish. A failed fsync is not a warning: the record \
                         may not be on disk, so the producer must not hear Ok. And recovery must \
                         expect the torn record such a cut leaves at the end of the log: stop \
                         there, neither trusting its header nor failing on it.",
                run: torn_tail,
            },
        ],
    );
}
