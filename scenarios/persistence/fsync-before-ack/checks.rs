//! Checks for persistence/fsync-before-ack, as properties over generated histories of
//! publishes, batches, OS writeback and power cuts (between two calls or during the n-th
//! disk call, leaving a clean prefix, or sectors as written, stale, zeroed or garbage), with
//! restarts (recover, then open) and more publishes and cuts after them.
//!
//! The model is two lists: every payload published (acked or not) and every payload acked,
//! in order. After every cut, recovery must return every acked payload in the order of the
//! acks, and nothing that was not published (a torn tail or garbage is no message). Which
//! unacked records come back is left open: a publish that failed may or may not be on disk.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::disk::{CutReport, Disk, DiskStats, Tear, SECTOR_BYTES};
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// The words payloads are made of: few, so payloads repeat.
const WORDS: [&str; 3] = ["order", "refund", "ship"];
/// Payload lengths: tiny ones, some around one 512-byte sector (with a header, a record
/// ends just before, on or after a sector boundary), and some past two sectors.
const LENGTHS: [usize; 8] = [3, 17, 120, 496, 504, 505, 700, 1_100];
/// The most operations in one history.
const OPS_MAX: usize = 12;
/// The most recovered records a message lists.
const SHOWN_MAX: usize = 12;
/// The most messages in one generated batch.
const BATCH_MAX: usize = 4;

/// A payload: a word repeated to a length.
#[derive(Clone, Copy, Debug)]
struct Body {
    word: usize,
    len: usize,
}

impl Body {
    fn bytes(self) -> Vec<u8> {
        let word = format!("{} ", WORDS[self.word % WORDS.len()]);
        let mut bytes = word.repeat(self.len / word.len() + 1).into_bytes();
        bytes.truncate(self.len);
        bytes
    }
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}…\" ({} B)",
            WORDS[self.word % WORDS.len()],
            self.len
        )
    }
}

/// What a power cut leaves of what was not durable.
#[derive(Clone, Copy, Debug)]
enum Tearing {
    Clean,
    Prefix(u16),
    Sectors(u64),
}

impl Tearing {
    fn tear(self) -> Tear {
        match self {
            Tearing::Clean => Tear::Prefix { bytes: 0 },
            Tearing::Prefix(bytes) => Tear::Prefix {
                bytes: u64::from(bytes),
            },
            Tearing::Sectors(seed) => Tear::Sectors { seed },
        }
    }
}

impl fmt::Display for Tearing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tearing::Clean => write!(f, "nothing unsynced survives"),
            Tearing::Prefix(bytes) => write!(f, "the first {bytes} unsynced bytes survive"),
            Tearing::Sectors(seed) => write!(f, "unsynced sectors torn by seed {seed}"),
        }
    }
}

/// One step of a history.
#[derive(Clone, Debug)]
enum Op {
    Publish(Body),
    Batch(Vec<Body>),
    /// The OS writes every dirty page back on its own.
    Writeback,
    /// The power goes between two calls; then the queue restarts (recover, then open).
    Cut(Tearing),
    /// The power will go during the `calls`-th disk call from here (an append, fsync or
    /// truncate of the code under test); then the queue restarts.
    CutDuring {
        calls: u8,
        tearing: Tearing,
    },
    /// The `syncs`-th fsync from here fails with an I/O error (EIO); the power stays on.
    SyncFails {
        syncs: u8,
    },
}

/// A history: its steps, then a last power cut, torn as `last` says, and a last recovery.
#[derive(Clone, Debug)]
struct History {
    ops: Vec<Op>,
    last: Tearing,
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

/// How far the last run of a history went: the steps it played, the steps during which
/// the power went, and whether it reached the last cut. A cut in the middle of a call ends
/// a history that does not restart, so the steps after it never happen.
#[derive(Clone, Debug, Default)]
struct Reach {
    played: usize,
    struck: Vec<usize>,
    last_cut: bool,
}

/// The history in words, as far as its last run went, with the message ids the run gives
/// each publish.
fn tell(history: &History, reach: &Reach, restarts: bool) -> String {
    let mut next_id = 1;
    let mut named = |body: &Body| {
        next_id += 1;
        format!("m{} {body}", next_id - 1)
    };
    let after_cut = if restarts { "restart" } else { "recover" };
    let mut steps: Vec<String> = history
        .ops
        .iter()
        .take(reach.played)
        .enumerate()
        .map(|(index, op)| {
            let mut step = match op {
                Op::Publish(body) => format!("publish {}", named(body)),
                Op::Batch(bodies) => {
                    let names: Vec<String> = bodies.iter().map(&mut named).collect();
                    format!("publish_batch [{}]", names.join(", "))
                }
                Op::Writeback => "the OS writes dirty pages back".to_owned(),
                Op::Cut(tearing) => format!("the power goes ({tearing}); restart"),
                Op::CutDuring { calls, tearing } => format!(
                    "the power will go during the {} disk call from here ({tearing})",
                    ordinal(u64::from(*calls))
                ),
                Op::SyncFails { syncs } => format!(
                    "the {} fsync from here will fail (EIO), the power staying on",
                    ordinal(u64::from(*syncs))
                ),
            };
            if reach.struck.contains(&index) {
                step.push_str(&format!(": the power goes during it; {after_cut}"));
            }
            step
        })
        .collect();
    if reach.last_cut {
        steps.push(format!("the power goes ({}); recover", history.last));
    }
    prop::numbered(&steps)
}

fn body() -> impl Strategy<Value = Body> {
    (0..WORDS.len(), 0..LENGTHS.len()).prop_map(|(word, length)| Body {
        word,
        len: LENGTHS[length],
    })
}

fn tearing() -> impl Strategy<Value = Tearing> {
    prop_oneof![
        1 => Just(Tearing::Clean),
        1 => (1..600u16).prop_map(Tearing::Prefix),
        3 => any::<u64>().prop_map(Tearing::Sectors),
    ]
}

fn batch() -> impl Strategy<Value = Op> {
    prop::proptest::collection::vec(body(), 1..=BATCH_MAX).prop_map(Op::Batch)
}

/// A cut in the middle of a call, most often one that tears by sectors: the tear that can
/// leave a record's header whole and its payload not.
fn cut_during() -> impl Strategy<Value = Op> {
    let tearing = prop_oneof![
        1 => Just(Tearing::Clean),
        1 => (1..600u16).prop_map(Tearing::Prefix),
        5 => any::<u64>().prop_map(Tearing::Sectors),
    ];
    (1..=4u8, tearing).prop_map(|(calls, tearing)| Op::CutDuring { calls, tearing })
}

/// Publishes, writeback and clean cuts between calls, restarts included.
fn publish_histories() -> impl Strategy<Value = History> {
    let op = prop_oneof![
        4 => body().prop_map(Op::Publish),
        1 => Just(Op::Writeback),
        1 => Just(Op::Cut(Tearing::Clean)),
    ];
    prop::proptest::collection::vec(op, 1..OPS_MAX).prop_map(|ops| History {
        ops,
        last: Tearing::Clean,
    })
}

/// The same with batches.
fn batch_histories() -> impl Strategy<Value = History> {
    let op = prop_oneof![
        2 => body().prop_map(Op::Publish),
        3 => batch(),
        1 => Just(Op::Writeback),
        1 => Just(Op::Cut(Tearing::Clean)),
    ];
    prop::proptest::collection::vec(op, 1..OPS_MAX).prop_map(|ops| History {
        ops,
        last: Tearing::Clean,
    })
}

/// One life: publishes, batches and writeback, then one cut, anywhere, torn any way.
fn torn_histories() -> impl Strategy<Value = History> {
    let op = prop_oneof![
        3 => body().prop_map(Op::Publish),
        2 => batch(),
        1 => Just(Op::Writeback),
        3 => cut_during(),
    ];
    (prop::proptest::collection::vec(op, 1..OPS_MAX), tearing())
        .prop_map(|(ops, last)| History { ops, last })
}

fn sync_fails() -> impl Strategy<Value = Op> {
    (1..=3u8).prop_map(|syncs| Op::SyncFails { syncs })
}

/// Fsyncs that fail while the power stays on, among publishes, batches, clean cuts and
/// restarts.
fn sync_error_histories() -> impl Strategy<Value = History> {
    let op = prop_oneof![
        3 => body().prop_map(Op::Publish),
        2 => batch(),
        1 => Just(Op::Writeback),
        2 => sync_fails(),
        1 => Just(Op::Cut(Tearing::Clean)),
    ];
    (prop::proptest::collection::vec(op, 1..OPS_MAX), tearing())
        .prop_map(|(ops, last)| History { ops, last })
}

/// Many lives: cuts anywhere, torn any way, restarts, more publishes and more cuts.
fn restart_histories() -> impl Strategy<Value = History> {
    let op = prop_oneof![
        3 => body().prop_map(Op::Publish),
        2 => batch(),
        1 => Just(Op::Writeback),
        2 => cut_during(),
        1 => sync_fails(),
        1 => tearing().prop_map(Op::Cut),
    ];
    (prop::proptest::collection::vec(op, 1..OPS_MAX), tearing())
        .prop_map(|(ops, last)| History { ops, last })
}

/// One history played against the learner's log, and the model beside it.
struct Run<'a> {
    trace: &'a Trace,
    reach: &'a RefCell<Reach>,
    disk: Disk,
    log: Option<Log>,
    /// Whether the queue starts again after a cut; if not, the first cut ends the history.
    restarts: bool,
    next_id: u64,
    published: Vec<(u64, Vec<u8>)>,
    acked: Vec<u64>,
    /// Acked messages whose publish saw an fsync fail (EIO) and still returned Ok.
    acked_after_sync_error: Vec<u64>,
    /// Acked messages whose publish was the call the power went during.
    acked_during_cut: Vec<(u64, String)>,
    /// What each publish did to the disk: (writes, fsyncs).
    disk_work: Vec<(u64, u64, u64)>,
    restarts_done: u32,
    last_cut: Option<CutReport>,
    /// Every cut of the run so far, in words.
    cuts: Vec<String>,
}

fn payload_of(published: &[(u64, Vec<u8>)], id: u64) -> &[u8] {
    published
        .iter()
        .find(|(seen, _)| *seen == id)
        .map(|(_, bytes)| bytes.as_slice())
        .unwrap_or(&[])
}

fn ids(list: &[u64]) -> String {
    let named: Vec<String> = list.iter().map(|id| format!("m{id}")).collect();
    format!("[{}]", named.join(", "))
}

/// A record nobody published, in a few words.
fn stray(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "an empty record".to_owned()
    } else if bytes.iter().all(|byte| *byte == 0) {
        format!("a record of {} zero bytes", bytes.len())
    } else {
        let shown: String = String::from_utf8_lossy(&bytes[..bytes.len().min(24)]).into();
        format!("a {}-byte record starting {shown:?}", bytes.len())
    }
}

impl Run<'_> {
    fn new<'a>(
        trace: &'a Trace,
        reach: &'a RefCell<Reach>,
        restarts: bool,
    ) -> Result<Run<'a>, String> {
        let disk = Disk::new();
        let log = Log::open(disk.clone())
            .map_err(|error| format!("Log::open failed on a fresh, healthy disk: {error}"))?;
        *reach.borrow_mut() = Reach::default();
        Ok(Run {
            trace,
            reach,
            disk,
            log: Some(log),
            restarts,
            next_id: 1,
            published: Vec::new(),
            acked: Vec::new(),
            acked_after_sync_error: Vec::new(),
            acked_during_cut: Vec::new(),
            disk_work: Vec::new(),
            restarts_done: 0,
            last_cut: None,
            cuts: Vec::new(),
        })
    }

    fn play(&mut self, history: &History) -> Result<(), String> {
        for (index, op) in history.ops.iter().enumerate() {
            if self.log.is_none() {
                break;
            }
            let cuts_before = self.cuts.len();
            self.reach.borrow_mut().played = index + 1;
            let outcome = self.step(op);
            if self.cuts.len() > cuts_before && matches!(op, Op::Publish(_) | Op::Batch(_)) {
                self.reach.borrow_mut().struck.push(index);
            }
            outcome?;
        }
        if self.log.is_some() {
            self.reach.borrow_mut().last_cut = true;
            self.disk.power_cut_with(history.last.tear());
            self.restarts = false;
            self.after_cut(None)?;
        }
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Publish(body) => self.publish(&[*body], false)?,
            Op::Batch(bodies) => self.publish(bodies, true)?,
            Op::Writeback => {
                self.disk.os_writeback();
                self.trace
                    .event("disk", EventKind::Note)
                    .note("the OS writes dirty pages back on its own")
                    .record();
            }
            Op::Cut(tearing) => {
                self.disk.power_cut_with(tearing.tear());
                self.after_cut(None)?;
            }
            Op::SyncFails { syncs } => {
                self.disk.plan_sync_error(u64::from(*syncs));
                self.trace
                    .event("disk", EventKind::Note)
                    .note(format!(
                        "the {} fsync from here will fail (EIO), the power staying on",
                        ordinal(u64::from(*syncs))
                    ))
                    .record();
            }
            Op::CutDuring { calls, tearing } => {
                self.disk
                    .plan_power_cut_at_call(u64::from(*calls), tearing.tear());
                self.trace
                    .event("disk", EventKind::Note)
                    .note(format!(
                        "the power will go during the {} disk call from here ({tearing})",
                        ordinal(u64::from(*calls))
                    ))
                    .record();
            }
        }
        Ok(())
    }

    /// One `publish` (a single body) or `publish_batch` call, recorded and modelled.
    fn publish(&mut self, bodies: &[Body], batch: bool) -> Result<(), String> {
        let Some(log) = self.log.as_mut() else {
            return Ok(());
        };
        let first = self.next_id;
        let batch_ids: Vec<u64> = (first..first + bodies.len() as u64).collect();
        self.next_id += bodies.len() as u64;
        let payloads: Vec<Vec<u8>> = bodies.iter().map(|body| body.bytes()).collect();
        for (id, bytes) in batch_ids.iter().zip(&payloads) {
            self.trace
                .event("producer", EventKind::Send)
                .to("log")
                .msg(*id)
                .note(format!("{} bytes", bytes.len()))
                .record();
            self.published.push((*id, bytes.clone()));
        }
        let before: DiskStats = self.disk.stats();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            if batch {
                let borrowed: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                log.publish_batch(&borrowed)
            } else {
                log.publish(&payloads[0])
            }
        }));
        let after = self.disk.stats();
        let call = if batch {
            format!("publish_batch({})", ids(&batch_ids))
        } else {
            format!("publish(m{first})")
        };
        let outcome: io::Result<()> = match outcome {
            Ok(outcome) => outcome,
            Err(_) if self.disk.is_powered_off() => {
                let report = self.disk.last_cut().unwrap_or_default();
                let during = report.during.unwrap_or_else(|| "a disk call".to_owned());
                return Err(format!(
                    "{call} panicked when the power went during {during}: a disk call that \
                     fails is an error to return, not a reason to panic"
                ));
            }
            Err(_) if after.sync_errors > before.sync_errors => {
                return Err(format!(
                    "{call} panicked when an fsync failed (EIO): a disk call that fails is an \
                     error to return, not a reason to panic"
                ))
            }
            Err(_) => return Err(format!("{call} panicked on a powered, healthy disk")),
        };
        let writes = after.writes - before.writes;
        let syncs = after.syncs - before.syncs;
        let sync_errors = after.sync_errors - before.sync_errors;
        for id in &batch_ids {
            self.disk_work.push((*id, writes, syncs));
        }
        self.trace
            .event("log", EventKind::Write)
            .to("disk")
            .msg(first)
            .note(format!("{call}: {writes} write(s), {syncs} fsync(s)"))
            .record();
        let cut_during = if self.disk.is_powered_off() {
            let report = self.disk.last_cut().unwrap_or_default();
            self.trace
                .event("disk", EventKind::PowerCut)
                .msg(first)
                .note(report.describe())
                .record();
            Some(report)
        } else {
            None
        };
        for id in &batch_ids {
            match &outcome {
                Ok(()) => {
                    self.trace
                        .event("log", EventKind::Ack)
                        .to("producer")
                        .msg(*id)
                        .note("Ok: the producer forgets the message")
                        .record();
                    self.acked.push(*id);
                    if sync_errors > 0 {
                        self.acked_after_sync_error.push(*id);
                    }
                    if let Some(report) = &cut_during {
                        let during = report
                            .during
                            .clone()
                            .unwrap_or_else(|| "a disk call".to_owned());
                        self.acked_during_cut.push((*id, during));
                    }
                }
                Err(error) => self
                    .trace
                    .event("log", EventKind::Note)
                    .to("producer")
                    .msg(*id)
                    .note(format!("Err, not acked: {error}"))
                    .record(),
            }
        }
        if let Some(report) = cut_during {
            self.after_cut(Some(report))?;
        } else if let (Err(error), 0) = (&outcome, sync_errors) {
            return Err(format!("{call} failed on a powered, healthy disk: {error}"));
        }
        Ok(())
    }

    /// After the power went: reboot, recover and compare with the model; then, if this
    /// history goes on, open the log again.
    fn after_cut(&mut self, report: Option<CutReport>) -> Result<(), String> {
        let report = report.or_else(|| self.disk.last_cut()).unwrap_or_default();
        if report.during.is_none() {
            self.trace
                .event("disk", EventKind::PowerCut)
                .note(report.describe())
                .record();
        }
        self.last_cut = Some(report);
        self.cuts.push(self.cut_context());
        self.log = None;
        let rebooted = self.disk.reboot();
        self.recover_and_compare(&rebooted)?;
        if !self.restarts {
            return Ok(());
        }
        self.restarts_done += 1;
        match panic::catch_unwind(AssertUnwindSafe(|| Log::open(rebooted.clone()))) {
            Ok(Ok(log)) => {
                self.trace
                    .event("log", EventKind::Note)
                    .note(format!(
                        "restart {}: recovered, open again",
                        self.restarts_done
                    ))
                    .record();
                self.log = Some(log);
                self.disk = rebooted;
                Ok(())
            }
            Ok(Err(error)) => Err(format!(
                "after restart {} (recover, then open), Log::open failed: {error}",
                self.restarts_done
            )),
            Err(_) => Err(format!(
                "after restart {} (recover, then open), Log::open panicked",
                self.restarts_done
            )),
        }
    }

    /// What the last cut did, for a message.
    fn cut_context(&self) -> String {
        let report = self.last_cut.clone().unwrap_or_default();
        let when = match &report.during {
            Some(during) => format!("the power went during {during}"),
            None => "the power went between two calls".to_owned(),
        };
        let files: Vec<String> = report
            .files
            .iter()
            .map(|file| {
                let mut told = format!(
                    "{} came back with {} of the {} bytes written ({} were durable)",
                    file.name, file.surviving_len, file.written_len, file.durable_len
                );
                if !file.sectors.is_empty() {
                    let fates: Vec<String> = file
                        .sectors
                        .iter()
                        .map(|(index, fate)| format!("sector {index} {fate}"))
                        .collect();
                    told.push_str(&format!(
                        " ({} bytes each: {})",
                        SECTOR_BYTES,
                        fates.join(", ")
                    ));
                }
                told
            })
            .collect();
        let mut files = files;
        for name in &report.vanished {
            files.insert(
                0,
                format!("{name} is gone: its name was never made durable by a directory sync"),
            );
        }
        if files.is_empty() {
            format!("{when}, with nothing unsynced")
        } else {
            format!("{when}; {}", files.join("; "))
        }
    }

    fn recover_and_compare(&mut self, rebooted: &Disk) -> Result<(), String> {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| recover(rebooted)));
        let recovered = match outcome {
            Ok(Ok(recovered)) => recovered,
            Ok(Err(error)) => {
                return Err(format!(
                    "recover returned Err({error}) after the reboot ({}). Whatever a cut leaves \
                     after the last whole record, recovery must return the whole records \
                     before it",
                    self.cut_context()
                ))
            }
            Err(_) => {
                return Err(format!(
                    "recover panicked after the reboot ({}). Whatever a cut leaves after the \
                     last whole record, recovery must stop there, not trust it",
                    self.cut_context()
                ))
            }
        };
        // Name each record after a published message with the same bytes, oldest unused first.
        let mut used = vec![false; self.published.len()];
        let mut names: Vec<Option<u64>> = Vec::new();
        for bytes in &recovered {
            let found = self
                .published
                .iter()
                .enumerate()
                .find(|(index, (_, seen))| !used[*index] && seen == bytes);
            match found {
                Some((index, (id, _))) => {
                    used[index] = true;
                    names.push(Some(*id));
                    self.trace
                        .event("log", EventKind::Recover)
                        .msg(*id)
                        .record();
                }
                None => {
                    self.trace
                        .event("log", EventKind::Note)
                        .note(format!("recovered {}", stray(bytes)))
                        .record();
                    names.push(None);
                }
            }
        }
        let mut shown: Vec<String> = names
            .iter()
            .take(SHOWN_MAX)
            .map(|name| name.map_or("?".to_owned(), |id| format!("m{id}")))
            .collect();
        if names.len() > SHOWN_MAX {
            shown.push(format!("… {} more", names.len() - SHOWN_MAX));
        }
        let shown = format!("[{}]", shown.join(", "));
        if let Some(position) = names.iter().position(Option::is_none) {
            self.trace
                .event("verdict", EventKind::Lost)
                .note("a record nobody published")
                .record();
            return Err(format!(
                "recovery returned {} whose bytes no publish sent (record {} of {shown}), after \
                 {}. A torn, zeroed, stale or garbage tail is not a message",
                stray(&recovered[position]),
                position + 1,
                self.cut_context()
            ));
        }
        // Every acked message, in the order of the acks: a subsequence of what came back.
        let mut rest = recovered.iter();
        for id in &self.acked {
            let bytes = payload_of(&self.published, *id);
            if rest.by_ref().any(|seen| seen.as_slice() == bytes) {
                continue;
            }
            let present = recovered.iter().any(|seen| seen.as_slice() == bytes);
            self.trace
                .event("verdict", EventKind::Lost)
                .msg(*id)
                .note(if present {
                    "acked, recovered out of order"
                } else {
                    "acked, gone after the reboot"
                })
                .record();
            if present {
                return Err(format!(
                    "recovery returned {shown}, but the messages were acked in the order {}: \
                     m{id} comes back out of order",
                    ids(&self.acked)
                ));
            }
            let mut why = String::new();
            if let Some((_, during)) = self.acked_during_cut.iter().find(|(seen, _)| seen == id) {
                why = format!(
                    " The power went during that very call ({during}), which failed, and the \
                     publish still returned Ok."
                );
            } else if self.acked_after_sync_error.contains(id) {
                why = " An fsync during that very call failed (EIO, the power stayed on), and \
                       the publish still returned Ok."
                    .to_owned();
            } else if let Some((_, writes, syncs)) =
                self.disk_work.iter().find(|(seen, _, _)| seen == id)
            {
                why = format!(
                    " Its publish made {writes} write(s) and {syncs} fsync(s) of the log file."
                );
            }
            let cuts = if self.cuts.len() > 1 {
                let told: Vec<String> = self
                    .cuts
                    .iter()
                    .enumerate()
                    .map(|(index, cut)| format!("cut {}: {cut}", index + 1))
                    .collect();
                format!(
                    "The {} cuts of this run: {}.",
                    self.cuts.len(),
                    told.join("; ")
                )
            } else {
                format!("The cut: {}.", self.cut_context())
            };
            return Err(format!(
                "m{id} was acked (its publish returned Ok) but is not in the log after the \
                 last reboot: recovery returned {shown}, the acked messages were {}.{why} {cuts}",
                ids(&self.acked)
            ));
        }
        Ok(())
    }
}

fn holds(
    history: &History,
    trace: &Trace,
    reach: &RefCell<Reach>,
    restarts: bool,
) -> Result<(), String> {
    let mut run = Run::new(trace, reach, restarts)?;
    run.play(history)
}

/// Checks `name` over `cases` histories of `histories`, with or without restarts.
fn property<S>(ctx: &mut Ctx, name: &str, cases: u32, histories: S, restarts: bool)
where
    S: Strategy<Value = History>,
{
    let reach = RefCell::new(Reach::default());
    prop::for_all(
        ctx,
        name,
        cases,
        histories,
        |history| tell(history, &reach.borrow(), restarts),
        |history, trace| holds(history, trace, &reach, restarts),
    );
}

fn acked_survive_power_cut(ctx: &mut Ctx) {
    property(
        ctx,
        "every message acked by publish survives a power cut",
        50,
        publish_histories(),
        true,
    );
}

fn batch_acked_survive(ctx: &mut Ctx) {
    property(
        ctx,
        "every message acked by publish_batch survives a power cut",
        50,
        batch_histories(),
        true,
    );
}

fn torn_tail(ctx: &mut Ctx) {
    property(
        ctx,
        "a cut anywhere, torn any way: acked messages back, nothing unpublished",
        150,
        torn_histories(),
        false,
    );
}

fn failed_fsync(ctx: &mut Ctx) {
    property(
        ctx,
        "an fsync that fails with the power on: acked messages back, nothing unpublished",
        60,
        sync_error_histories(),
        true,
    );
}

fn restart_after_cut(ctx: &mut Ctx) {
    property(
        ctx,
        "cut, restart, publish, cut again: acked messages back, nothing unpublished",
        120,
        restart_histories(),
        true,
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
                mentor: "publish_batch says Ok for a whole batch at once, on the same promise \
                         as publish. At the moment it returns, where are the batch's bytes? A \
                         batch can share one fsync (group commit), as long as the Ok waits \
                         for it.",
                run: batch_acked_survive,
            },
            Stage {
                id: "torn-tail",
                title: "A power cut anywhere, torn any way: acked messages come back, nothing \
                        unpublished does",
                mentor: "This time the power can go in the middle of a call, and the bytes \
                         that were not durable come back as a real disk leaves them: cut \
                         short, zeroed, stale or garbage, sector by sector. Did a call that \
                         failed still say Ok? And does recovery check every byte of a record \
                         before calling it a message, stopping at the first that is not whole?",
                run: torn_tail,
            },
            Stage {
                id: "failed-fsync",
                title: "An fsync that fails with the power on acks nothing",
                mentor: "Here an fsync can fail while the power stays on: the device could \
                         not write. What did that publish answer? And if an fsync is tried \
                         again and succeeds, what does that say about the bytes the failed one \
                         was writing?",
                run: failed_fsync,
            },
            Stage {
                id: "restart-after-cut",
                title: "Cut, restart, publish, cut again: every acked message comes back",
                mentor: "Here the queue starts again after a cut (recover, then open), takes \
                         more publishes, and the power goes again, torn any way. What did a cut \
                         leave after the last whole record, and is it still in the file when \
                         the log opens? Where does the next record land, and can the next \
                         recovery read past what lies before it?",
                run: restart_after_cut,
            },
        ],
    );
}
