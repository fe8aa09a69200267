//! A simulated disk with real power-cut semantics.
//!
//! A real `write` lands in the OS page cache; only `fsync` (here [`Disk::sync`]) makes it
//! durable, and only a synced directory makes a new file's *name* durable. When the power
//! goes, whatever was not synced may be lost, and what was being written may come back in
//! any state. This disk keeps, for every file, the durable bytes apart from the page cache's,
//! so a simulated power cut loses exactly what a real one may lose:
//!
//! - bytes made durable by a sync, and not truncated since, always survive;
//! - a file created but never made durable by [`Disk::sync_dir`] disappears;
//! - the rest depends on the [`Tear`]. [`Tear::Prefix`] is an ideal disk that writes in
//!   order: the first bytes of what was pending survive, the others are lost.
//!   [`Tear::Sectors`] is a real one: the file's length after the cut may be the old one, the
//!   new one or a sector boundary between, and every [`SECTOR_BYTES`]-byte sector that was not
//!   durable comes back, chosen by the seed, as written, as it was before (stale), zeroed, or
//!   garbage. A sector holding durable bytes keeps them: only its unsynced bytes vary (the
//!   sector-atomicity most logs assume).
//!
//! A cut can be armed for the n-th fsync ([`Disk::plan_power_cut_at_sync`]) or the n-th call
//! that changes the disk ([`Disk::plan_power_cut_at_call`]), so a check can cut the power in
//! the middle of a batch or after a restart, whatever calls the code under test makes.
//!
//! Clones share one device. After a power cut every operation on the old device fails;
//! [`Disk::reboot`] gives the device as it comes back up, with only what survived, and it
//! can be cut again.
//!
//! The model is files in one directory that grow by appending and shrink by
//! [`Disk::truncate`]: what write-ahead logs and queue segments need (recovery cuts a torn
//! tail off before appending again), and small enough to reason about.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fault::FaultPlan;

/// The unit a real disk writes in: a power cut tears a file sector by sector.
pub const SECTOR_BYTES: usize = 512;

/// What a power cut leaves of the bytes that were not durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// An ideal disk that writes in order: the first `bytes` pending bytes of each file
    /// survive as written, the rest is lost (0: a clean cut at the last sync).
    Prefix { bytes: u64 },
    /// A real disk: the length and every sector not yet durable are chosen by `seed`, each
    /// sector as written, stale, zeroed or garbage.
    Sectors { seed: u64 },
}

/// What became of one sector that was not durable when the power went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectorFate {
    /// It reached the platter as written.
    Written,
    /// It never did: the platter holds what it held before (zeros where it held nothing).
    Stale,
    /// The platter holds zeros.
    Zeroed,
    /// The platter holds bytes nobody wrote.
    Garbage,
}

impl fmt::Display for SectorFate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SectorFate::Written => "as written",
            SectorFate::Stale => "stale",
            SectorFate::Zeroed => "zeroed",
            SectorFate::Garbage => "garbage",
        })
    }
}

/// What a power cut did to one file that had bytes not yet durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileCut {
    pub name: String,
    /// Its length in the page cache when the power went.
    pub written_len: usize,
    /// Its length on the platter at the last sync.
    pub durable_len: usize,
    /// Its length after the cut.
    pub surviving_len: usize,
    /// Each sector not yet durable that lies within the surviving length, by index, and
    /// what became of it (empty for a [`Tear::Prefix`]).
    pub sectors: Vec<(usize, SectorFate)>,
}

/// What one power cut did: during which call it struck, if any, and to which files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// The call the power went during ("the 2nd fsync of queue.log"), or None for a cut
    /// between calls.
    pub during: Option<String>,
    /// Files whose names were not durable and are gone.
    pub vanished: Vec<String>,
    /// Files that had unsynced bytes or an unsynced truncation.
    pub files: Vec<FileCut>,
}

impl CutReport {
    /// One line for a trace: what came back of each file that was not durable.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(during) = &self.during {
            parts.push(format!("during {during}"));
        }
        for name in &self.vanished {
            parts.push(format!("{name} vanished (its name was never synced)"));
        }
        for file in &self.files {
            let mut text = format!(
                "{}: {} of {} bytes survive ({} durable)",
                file.name, file.surviving_len, file.written_len, file.durable_len
            );
            if !file.sectors.is_empty() {
                let fates: Vec<String> = file
                    .sectors
                    .iter()
                    .map(|(index, fate)| format!("sector {index} {fate}"))
                    .collect();
                text.push_str(&format!(", {}", fates.join(", ")));
            }
            parts.push(text);
        }
        if parts.is_empty() {
            "nothing was pending".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// One simulated device. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    inner: Arc<Mutex<DiskState>>,
}

#[derive(Debug, Default)]
struct DiskState {
    files: BTreeMap<String, FileState>,
    powered_off: bool,
    stats: DiskStats,
    /// Cut the power during the n-th call to `sync` (1-based).
    power_cut_at_sync: Option<(u64, Tear)>,
    /// Cut the power during the n-th call that changes the disk (1-based).
    power_cut_at_call: Option<(u64, Tear)>,
    /// Fail the n-th call to `sync` (1-based) with an I/O error, the device staying on.
    sync_error_at: Option<u64>,
    last_cut: Option<CutReport>,
}

#[derive(Debug, Default, Clone)]
struct FileState {
    /// The file on the platter as of its last sync.
    durable: Vec<u8>,
    /// The file as readers see it: the page cache.
    cached: Vec<u8>,
    /// `durable[..stable_len]` equals `cached[..stable_len]` and survives any cut: synced,
    /// and not truncated since.
    stable_len: usize,
    entry_durable: bool,
    syncs: u64,
}

/// Counters a demo can show (how many fsyncs the durable version paid for).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DiskStats {
    pub writes: u64,
    pub syncs: u64,
    pub bytes_written: u64,
    pub truncates: u64,
    /// Syncs that failed with an I/O error while the device stayed on.
    pub sync_errors: u64,
    /// Every call that changes the disk: create, append, truncate, sync, sync_dir.
    pub calls: u64,
}

fn power_is_off() -> io::Error {
    io::Error::other("simulated power cut: the device is off")
}

/// A call that changes the disk, for counting and for cutting the power during it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call<'a> {
    Create(&'a str),
    Append(&'a str),
    Truncate(&'a str),
    Sync(&'a str),
    SyncDir,
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

/// splitmix64: a tiny generator, stable across versions, for tears chosen by seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next() % bound
        }
    }
}

impl FileState {
    /// What survives of this file in a cut, and the report of it (None when it was durable).
    fn cut(&mut self, name: &str, tear: Tear) -> Option<FileCut> {
        let durable_len = self.durable.len();
        let written_len = self.cached.len();
        let settled = self.stable_len == durable_len && self.stable_len == written_len;
        if settled {
            return None;
        }
        let mut sectors = Vec::new();
        let survivor: Vec<u8> = match tear {
            Tear::Prefix { bytes } => {
                let keep = written_len.min(self.stable_len.saturating_add(bytes as usize));
                self.cached[..keep].to_vec()
            }
            Tear::Sectors { seed } => {
                let mut rng = SplitMix(seed ^ u64::from(crate::disk::checksum(name.as_bytes())));
                let low = durable_len.min(written_len);
                let high = durable_len.max(written_len);
                let length = match rng.below(3) {
                    0 => durable_len,
                    1 => written_len,
                    _ => {
                        let first = low / SECTOR_BYTES + 1;
                        let last = high.div_ceil(SECTOR_BYTES);
                        if first < last {
                            (first + rng.below((last - first) as u64) as usize) * SECTOR_BYTES
                        } else {
                            written_len
                        }
                    }
                };
                let mut bytes = self.durable[..self.stable_len].to_vec();
                let mut at = self.stable_len;
                while at < length {
                    let index = at / SECTOR_BYTES;
                    let end = ((index + 1) * SECTOR_BYTES).min(length);
                    let fate = match rng.below(4) {
                        0 => SectorFate::Written,
                        1 => SectorFate::Stale,
                        2 => SectorFate::Zeroed,
                        _ => SectorFate::Garbage,
                    };
                    let source = match fate {
                        SectorFate::Written => Some(&self.cached),
                        SectorFate::Stale => Some(&self.durable),
                        SectorFate::Zeroed | SectorFate::Garbage => None,
                    };
                    match source {
                        Some(source) => {
                            // Beyond what the source holds the platter reads as zeros.
                            let held = source.get(at..end.min(source.len())).unwrap_or(&[]);
                            bytes.extend_from_slice(held);
                            bytes.resize(end, 0);
                        }
                        None if fate == SectorFate::Zeroed => bytes.resize(end, 0),
                        None => bytes.extend((at..end).map(|_| (rng.next() >> 56) as u8)),
                    }
                    sectors.push((index, fate));
                    at = end;
                }
                bytes
            }
        };
        let surviving_len = survivor.len();
        self.durable = survivor.clone();
        self.cached = survivor;
        self.stable_len = surviving_len;
        Some(FileCut {
            name: name.to_owned(),
            written_len,
            durable_len,
            surviving_len,
            sectors,
        })
    }

    fn make_durable(&mut self) {
        self.durable.truncate(self.stable_len);
        self.durable
            .extend_from_slice(&self.cached[self.stable_len..]);
        self.stable_len = self.cached.len();
    }
}

impl DiskState {
    /// Counts a call that changes the disk; if the power is planned to go during it, returns
    /// the tear and what to call the call.
    fn count_call(&mut self, call: Call<'_>) -> Option<(Tear, String)> {
        self.stats.calls += 1;
        if let Call::Sync(_) = call {
            self.stats.syncs += 1;
        }
        let what = |state: &DiskState| match call {
            Call::Create(name) => format!("the create of {name}"),
            Call::Append(name) => format!("an append to {name}"),
            Call::Truncate(name) => format!("a truncate of {name}"),
            Call::Sync(name) => {
                let nth = state.files.get(name).map_or(1, |file| file.syncs + 1);
                format!("the {} fsync of {name}", ordinal(nth))
            }
            Call::SyncDir => "a sync of the directory".to_owned(),
        };
        if let (Call::Sync(_), Some((nth, tear))) = (call, self.power_cut_at_sync) {
            if self.stats.syncs == nth {
                return Some((tear, what(self)));
            }
        }
        match self.power_cut_at_call {
            Some((nth, tear)) if self.stats.calls == nth => Some((tear, what(self))),
            _ => None,
        }
    }

    fn cut(&mut self, tear: Tear, during: Option<String>) {
        if self.powered_off {
            return;
        }
        self.powered_off = true;
        let mut report = CutReport {
            during,
            ..CutReport::default()
        };
        let vanished: Vec<String> = self
            .files
            .iter()
            .filter(|(_, file)| !file.entry_durable)
            .map(|(name, _)| name.clone())
            .collect();
        self.files.retain(|_, file| file.entry_durable);
        report.vanished = vanished;
        for (name, file) in self.files.iter_mut() {
            if let Some(file_cut) = file.cut(name, tear) {
                report.files.push(file_cut);
            }
        }
        self.last_cut = Some(report);
    }
}

impl Disk {
    /// An empty, powered device with no faults planned.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty device that obeys the disk faults of `plan` (a power cut during a sync).
    pub fn with_plan(plan: &FaultPlan) -> Self {
        let disk = Self::new();
        if let Some((nth_sync, torn_bytes)) = plan.power_cut_at_sync() {
            disk.state().power_cut_at_sync = Some((nth_sync, Tear::Prefix { bytes: torn_bytes }));
        }
        disk
    }

    /// Arms a power cut during a later sync: the `syncs_from_now`-th sync from now (1 = the
    /// next one), keeping `torn_bytes` of the pending data. Checks use it to tear a record
    /// whatever number of syncs the code under test made before.
    pub fn plan_power_cut_at_sync(&self, syncs_from_now: u64, torn_bytes: u64) {
        self.plan_power_cut_at_sync_with(syncs_from_now, Tear::Prefix { bytes: torn_bytes });
    }

    /// Arms a power cut during the `syncs_from_now`-th sync from now, torn as `tear` says.
    pub fn plan_power_cut_at_sync_with(&self, syncs_from_now: u64, tear: Tear) {
        let mut state = self.state();
        let nth = state.stats.syncs + syncs_from_now.max(1);
        state.power_cut_at_sync = Some((nth, tear));
    }

    /// Arms a power cut during the `calls_from_now`-th call from now (1 = the next one) that
    /// changes the disk: create, append, truncate, sync or sync_dir. An append or truncate
    /// reaches the page cache before the power goes; a sync or sync_dir does not complete.
    /// The call fails, and the device is off.
    pub fn plan_power_cut_at_call(&self, calls_from_now: u64, tear: Tear) {
        let mut state = self.state();
        let nth = state.stats.calls + calls_from_now.max(1);
        state.power_cut_at_call = Some((nth, tear));
    }

    /// Makes the `syncs_from_now`-th sync from now (1 = the next one) fail with an I/O error
    /// (EIO) while the device stays on. The bytes that sync was to write are lost: they leave
    /// the page cache unwritten, as a file system may drop pages after a write-back error, so
    /// a retried sync finds nothing to write and succeeds. (Real systems may instead keep the
    /// bytes readable and marked clean, or leave a hole; either way, what a failed fsync did
    /// not write is not on disk, and no retry puts it there.)
    pub fn plan_sync_error(&self, syncs_from_now: u64) {
        let mut state = self.state();
        let nth = state.stats.syncs + syncs_from_now.max(1);
        state.sync_error_at = Some(nth);
    }

    fn state(&self) -> MutexGuard<'_, DiskState> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates an empty file. Its name is durable only after [`Disk::sync_dir`].
    pub fn create(&self, name: &str) -> io::Result<()> {
        let mut state = self.state();
        if state.powered_off {
            return Err(power_is_off());
        }
        if state.files.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{name} already exists"),
            ));
        }
        if let Some((tear, during)) = state.count_call(Call::Create(name)) {
            state.cut(tear, Some(during));
            return Err(power_is_off());
        }
        state.files.insert(name.to_owned(), FileState::default());
        Ok(())
    }

    /// Whether a file of that name exists now (durable or not).
    pub fn exists(&self, name: &str) -> bool {
        self.state().files.contains_key(name)
    }

    /// Appends bytes to a file. They sit in the page cache until [`Disk::sync`].
    pub fn append(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        if state.powered_off {
            return Err(power_is_off());
        }
        if !state.files.contains_key(name) {
            return Err(not_found(name));
        }
        let cut = state.count_call(Call::Append(name));
        let file = state.files.get_mut(name).ok_or_else(|| not_found(name))?;
        file.cached.extend_from_slice(bytes);
        state.stats.writes += 1;
        state.stats.bytes_written += bytes.len() as u64;
        if let Some((tear, during)) = cut {
            state.cut(tear, Some(during));
            return Err(power_is_off());
        }
        Ok(())
    }

    /// Shortens a file to `len` bytes (ftruncate), e.g. to cut off a torn tail before
    /// appending again. Like a write, the new length is durable only after [`Disk::sync`]:
    /// a power cut before it may bring the cut bytes back.
    pub fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut state = self.state();
        if state.powered_off {
            return Err(power_is_off());
        }
        let current = state
            .files
            .get(name)
            .ok_or_else(|| not_found(name))?
            .cached
            .len();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > current {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} holds {current} bytes: truncate only shortens a file"),
            ));
        }
        let cut = state.count_call(Call::Truncate(name));
        let file = state.files.get_mut(name).ok_or_else(|| not_found(name))?;
        file.cached.truncate(len);
        file.stable_len = file.stable_len.min(len);
        state.stats.truncates += 1;
        if let Some((tear, during)) = cut {
            state.cut(tear, Some(during));
            return Err(power_is_off());
        }
        Ok(())
    }

    /// fsync: makes every byte written to `name` so far durable, and its length.
    ///
    /// If the power is planned to go during this sync, the pending bytes reach the platter
    /// only as the tear says, the call fails, and the device is off.
    pub fn sync(&self, name: &str) -> io::Result<()> {
        let mut state = self.state();
        if state.powered_off {
            return Err(power_is_off());
        }
        if !state.files.contains_key(name) {
            return Err(not_found(name));
        }
        if let Some((tear, during)) = state.count_call(Call::Sync(name)) {
            state.cut(tear, Some(during));
            return Err(power_is_off());
        }
        let failing = state.sync_error_at == Some(state.stats.syncs);
        if failing {
            state.stats.sync_errors += 1;
        }
        let file = state.files.get_mut(name).ok_or_else(|| not_found(name))?;
        file.syncs += 1;
        if failing {
            let lost = file.cached.len().saturating_sub(file.stable_len);
            file.cached.truncate(file.stable_len);
            return Err(io::Error::other(format!(
                "simulated EIO during the {} fsync of {name}: the device could not write back; \
                 {lost} unsynced bytes are lost",
                ordinal(file.syncs)
            )));
        }
        file.make_durable();
        Ok(())
    }

    /// fsync of the directory: makes the names of every file created so far durable.
    pub fn sync_dir(&self) -> io::Result<()> {
        let mut state = self.state();
        if state.powered_off {
            return Err(power_is_off());
        }
        if let Some((tear, during)) = state.count_call(Call::SyncDir) {
            state.cut(tear, Some(during));
            return Err(power_is_off());
        }
        for file in state.files.values_mut() {
            file.entry_durable = true;
        }
        Ok(())
    }

    /// Reads a whole file as a reader would see it now (the page cache).
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let state = self.state();
        if state.powered_off {
            return Err(power_is_off());
        }
        let file = state.files.get(name).ok_or_else(|| not_found(name))?;
        Ok(file.cached.clone())
    }

    /// The OS writes dirty pages back on its own schedule: every pending byte becomes durable
    /// now, without anyone asking. (Demos use it to show that "usually it's fine" is luck.)
    pub fn os_writeback(&self) {
        let mut state = self.state();
        if state.powered_off {
            return;
        }
        for file in state.files.values_mut() {
            file.make_durable();
        }
    }

    /// Bytes written but not yet durable, over all files.
    pub fn unsynced_bytes(&self) -> u64 {
        self.state()
            .files
            .values()
            .map(|file| file.cached.len().saturating_sub(file.stable_len) as u64)
            .sum()
    }

    /// Cuts the power between two calls, on an ideal disk: each file keeps its durable bytes
    /// plus the first `torn_bytes` of its pending ones; files whose names were never made
    /// durable are gone. Every later operation on this device fails until [`Disk::reboot`].
    pub fn power_cut(&self, torn_bytes: u64) {
        self.power_cut_with(Tear::Prefix { bytes: torn_bytes });
    }

    /// Cuts the power between two calls, torn as `tear` says.
    pub fn power_cut_with(&self, tear: Tear) {
        self.state().cut(tear, None);
    }

    /// What the last power cut on this device did, if the power was cut.
    pub fn last_cut(&self) -> Option<CutReport> {
        self.state().last_cut.clone()
    }

    /// Whether the power has been cut.
    pub fn is_powered_off(&self) -> bool {
        self.state().powered_off
    }

    /// The device after power comes back: what survived the cut, nothing pending, no
    /// faults planned, counters at zero. On a powered device this is a clean copy of the
    /// durable state, as if the power had been cut with nothing torn.
    pub fn reboot(&self) -> Disk {
        let state = self.state();
        let files = state
            .files
            .iter()
            .filter(|(_, file)| file.entry_durable)
            .map(|(name, file)| {
                let survivor = FileState {
                    durable: file.durable.clone(),
                    cached: file.durable.clone(),
                    stable_len: file.durable.len(),
                    entry_durable: true,
                    syncs: 0,
                };
                (name.clone(), survivor)
            })
            .collect();
        Disk {
            inner: Arc::new(Mutex::new(DiskState {
                files,
                ..DiskState::default()
            })),
        }
    }

    /// How many writes and syncs the device has seen.
    pub fn stats(&self) -> DiskStats {
        self.state().stats
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file named {name}"))
}

/// FNV-1a, 32 bits: a checksum small enough to read, enough to spot a torn record.
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Fault;

    fn disk_with_log() -> Disk {
        let disk = Disk::new();
        disk.create("log").unwrap();
        disk.sync_dir().unwrap();
        disk
    }

    /// Unsynced bytes are readable before the cut and gone after it.
    #[test]
    fn power_cut_loses_unsynced_bytes() {
        let disk = disk_with_log();
        disk.append("log", b"synced|").unwrap();
        disk.sync("log").unwrap();
        disk.append("log", b"pending").unwrap();
        assert_eq!(disk.read("log").unwrap(), b"synced|pending");
        assert_eq!(disk.unsynced_bytes(), 7);
        disk.power_cut(0);
        assert!(disk.read("log").is_err(), "a dead device must not answer");
        assert_eq!(disk.reboot().read("log").unwrap(), b"synced|");
    }

    /// A torn tail keeps exactly the first `torn_bytes` of what was pending.
    #[test]
    fn torn_tail_keeps_a_prefix() {
        let disk = disk_with_log();
        disk.append("log", b"abc").unwrap();
        disk.sync("log").unwrap();
        disk.append("log", b"defgh").unwrap();
        disk.power_cut(2);
        assert_eq!(disk.reboot().read("log").unwrap(), b"abcde");
    }

    /// A file whose name was never synced into the directory vanishes, even if its data was.
    #[test]
    fn unsynced_directory_entry_vanishes() {
        let disk = Disk::new();
        disk.create("segment-1").unwrap();
        disk.append("segment-1", b"data").unwrap();
        disk.sync("segment-1").unwrap();
        disk.power_cut(0);
        assert!(!disk.reboot().exists("segment-1"));
    }

    /// The planned power cut strikes during the n-th sync: the call fails, part survives.
    #[test]
    fn power_cut_during_planned_sync() {
        let plan = FaultPlan::new(vec![Fault::PowerCutAtSync {
            nth: 2,
            torn_bytes: 3,
        }]);
        let disk = Disk::with_plan(&plan);
        disk.create("log").unwrap();
        disk.sync_dir().unwrap();
        disk.append("log", b"one").unwrap();
        disk.sync("log").unwrap();
        disk.append("log", b"two-two").unwrap();
        assert!(disk.sync("log").is_err(), "the second sync is cut");
        assert!(disk.is_powered_off());
        assert!(disk.append("log", b"x").is_err());
        assert_eq!(disk.reboot().read("log").unwrap(), b"onetwo");
        assert_eq!(disk.stats().syncs, 2);
    }

    /// A cut armed from now strikes at the next sync, however many came before.
    #[test]
    fn power_cut_armed_for_next_sync() {
        let disk = disk_with_log();
        for _ in 0..3 {
            disk.append("log", b"ok").unwrap();
            disk.sync("log").unwrap();
        }
        disk.append("log", b"torn!").unwrap();
        disk.plan_power_cut_at_sync(1, 2);
        assert!(disk.sync("log").is_err());
        assert_eq!(disk.reboot().read("log").unwrap(), b"okokokto");
    }

    /// OS writeback makes pending bytes durable without a sync.
    #[test]
    fn os_writeback_is_luck_not_a_guarantee() {
        let disk = disk_with_log();
        disk.append("log", b"lucky").unwrap();
        disk.os_writeback();
        disk.append("log", b"unlucky").unwrap();
        disk.power_cut(0);
        assert_eq!(disk.reboot().read("log").unwrap(), b"lucky");
    }

    /// A truncate shortens the file at once for readers; after a sync the cut bytes are
    /// gone for good, and new appends follow the new end.
    #[test]
    fn truncate_then_sync_is_durable() {
        let disk = disk_with_log();
        disk.append("log", b"whole|torn").unwrap();
        disk.sync("log").unwrap();
        disk.truncate("log", 6).unwrap();
        assert_eq!(disk.read("log").unwrap(), b"whole|");
        disk.append("log", b"next").unwrap();
        disk.sync("log").unwrap();
        disk.power_cut_with(Tear::Sectors { seed: 7 });
        assert_eq!(disk.reboot().read("log").unwrap(), b"whole|next");
        assert_eq!(disk.stats().truncates, 1);
    }

    /// A truncate not yet synced is a pending change like a write: a cut may undo it.
    #[test]
    fn unsynced_truncate_can_come_back() {
        let disk = disk_with_log();
        disk.append("log", b"whole|torn").unwrap();
        disk.sync("log").unwrap();
        disk.truncate("log", 6).unwrap();
        assert_eq!(disk.unsynced_bytes(), 0, "nothing to write, only a length");
        // Seeds that keep the old length bring the cut bytes back as they were (stale).
        let back = (0..64)
            .map(|seed| {
                let disk = disk_with_log();
                disk.append("log", b"whole|torn").unwrap();
                disk.sync("log").unwrap();
                disk.truncate("log", 6).unwrap();
                disk.power_cut_with(Tear::Sectors { seed });
                disk.reboot().read("log").unwrap()
            })
            .collect::<Vec<_>>();
        assert!(back.iter().any(|bytes| bytes.as_slice() == b"whole|torn"));
        assert!(back.iter().any(|bytes| bytes.as_slice() == b"whole|"));
        assert!(back.iter().all(|bytes| bytes.starts_with(b"whole|")));
    }

    /// Truncate only shortens: growing a file that way is refused.
    #[test]
    fn truncate_refuses_to_grow() {
        let disk = disk_with_log();
        disk.append("log", b"abc").unwrap();
        let error = disk.truncate("log", 4).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(disk.truncate("nope", 0).is_err());
    }

    /// Over many seeds a sector tear leaves every fate (written, stale, zeroed, garbage),
    /// lengths old, new and between, and never touches synced bytes, even in the sector
    /// they share with unsynced ones.
    #[test]
    fn sector_tears_vary_by_seed_and_spare_synced_bytes() {
        let synced: Vec<u8> = (0..700u32).map(|i| (i % 251) as u8 + 1).collect();
        let pending: Vec<u8> = vec![0xAB; 1_500];
        let mut fates = Vec::new();
        let mut lengths = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let disk = disk_with_log();
            disk.append("log", &synced).unwrap();
            disk.sync("log").unwrap();
            disk.append("log", &pending).unwrap();
            disk.power_cut_with(Tear::Sectors { seed });
            let after = disk.reboot().read("log").unwrap();
            assert_eq!(
                &after[..700],
                synced.as_slice(),
                "seed {seed}: synced bytes changed"
            );
            let report = disk.last_cut().unwrap();
            let file = &report.files[0];
            assert_eq!(file.surviving_len, after.len());
            assert_eq!((file.durable_len, file.written_len), (700, 2_200));
            for (index, fate) in &file.sectors {
                let start = (index * SECTOR_BYTES).max(700);
                let end = ((index + 1) * SECTOR_BYTES).min(after.len());
                let sector = &after[start..end];
                match fate {
                    SectorFate::Written => assert!(sector.iter().all(|b| *b == 0xAB)),
                    SectorFate::Stale | SectorFate::Zeroed => {
                        assert!(sector.iter().all(|b| *b == 0))
                    }
                    SectorFate::Garbage => assert!(sector.iter().any(|b| *b != 0xAB && *b != 0)),
                }
                fates.push(*fate);
            }
            lengths.insert(after.len());
        }
        for fate in [
            SectorFate::Written,
            SectorFate::Stale,
            SectorFate::Zeroed,
            SectorFate::Garbage,
        ] {
            assert!(fates.contains(&fate), "no seed gave a {fate} sector");
        }
        assert!(lengths.contains(&700) && lengths.contains(&2_200));
        assert!(lengths.contains(&1_024) && lengths.contains(&1_536));
    }

    /// The same seed tears the same way: a failing history replays.
    #[test]
    fn sector_tears_are_deterministic() {
        let torn = |seed| {
            let disk = disk_with_log();
            disk.append("log", &[7u8; 2_000]).unwrap();
            disk.power_cut_with(Tear::Sectors { seed });
            disk.reboot().read("log").unwrap()
        };
        assert_eq!(torn(42), torn(42));
        assert!((0..20).any(|seed| torn(seed) != torn(42)));
    }

    /// A cut armed for the n-th call strikes in the middle of a batch of appends: the call
    /// fails, the device is off, and the report names the call.
    #[test]
    fn power_cut_at_a_call_mid_batch() {
        let disk = disk_with_log();
        disk.plan_power_cut_at_call(2, Tear::Prefix { bytes: 100 });
        disk.append("log", b"first|").unwrap();
        assert!(disk.append("log", b"second|").is_err());
        assert!(disk.is_powered_off());
        assert!(disk.sync("log").is_err());
        assert_eq!(disk.reboot().read("log").unwrap(), b"first|second|");
        let report = disk.last_cut().unwrap();
        assert_eq!(report.during.as_deref(), Some("an append to log"));
    }

    /// The report says which fsync the power went during, counted per file.
    #[test]
    fn cut_report_names_the_fsync() {
        let disk = disk_with_log();
        disk.append("log", b"one").unwrap();
        disk.sync("log").unwrap();
        disk.append("log", b"two").unwrap();
        disk.plan_power_cut_at_call(1, Tear::Prefix { bytes: 0 });
        assert!(disk.sync("log").is_err());
        let report = disk.last_cut().unwrap();
        assert_eq!(report.during.as_deref(), Some("the 2nd fsync of log"));
        assert!(
            report.describe().contains("log: 3 of 6 bytes survive"),
            "{}",
            report.describe()
        );
    }

    /// A cut armed for a later fsync tears by sectors too, and only what that fsync was
    /// making durable varies: earlier synced bytes stay.
    #[test]
    fn sector_tear_during_a_planned_fsync() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let disk = disk_with_log();
            disk.append("log", &[1u8; 600]).unwrap();
            disk.sync("log").unwrap();
            disk.append("log", &[2u8; 900]).unwrap();
            disk.plan_power_cut_at_sync_with(1, Tear::Sectors { seed });
            assert!(disk.sync("log").is_err());
            let after = disk.reboot().read("log").unwrap();
            assert_eq!(&after[..600], &[1u8; 600][..]);
            seen.insert(after.len());
            let report = disk.last_cut().unwrap();
            assert_eq!(report.during.as_deref(), Some("the 2nd fsync of log"));
        }
        assert!(seen.len() >= 3, "lengths seen: {seen:?}");
    }

    /// A planned fsync error leaves the device on, fails that sync, and loses what it was
    /// to write: a retry succeeds with nothing to write, and a cut finds only the old bytes.
    #[test]
    fn failed_fsync_loses_its_bytes_and_a_retry_proves_nothing() {
        let disk = disk_with_log();
        disk.append("log", b"kept|").unwrap();
        disk.sync("log").unwrap();
        disk.append("log", b"lost").unwrap();
        disk.plan_sync_error(1);
        let error = disk.sync("log").unwrap_err();
        assert!(error.to_string().contains("2nd fsync of log"), "{error}");
        assert!(!disk.is_powered_off());
        assert_eq!(disk.stats().sync_errors, 1);
        assert!(
            disk.sync("log").is_ok(),
            "the retry has nothing left to write"
        );
        disk.append("log", b"next").unwrap();
        disk.sync("log").unwrap();
        disk.power_cut_with(Tear::Sectors { seed: 3 });
        assert_eq!(disk.reboot().read("log").unwrap(), b"kept|next");
    }

    /// A rebooted device works like a new one and can be cut again: publish after
    /// recovery, then cut.
    #[test]
    fn cut_again_after_a_reboot() {
        let disk = disk_with_log();
        disk.append("log", b"a").unwrap();
        disk.sync("log").unwrap();
        disk.append("log", b"lost").unwrap();
        disk.power_cut(0);
        let second = disk.reboot();
        assert!(second.last_cut().is_none());
        second.append("log", b"b").unwrap();
        second.sync("log").unwrap();
        second.append("log", b"gone").unwrap();
        second.plan_power_cut_at_call(1, Tear::Prefix { bytes: 0 });
        assert!(second.sync("log").is_err());
        assert_eq!(second.reboot().read("log").unwrap(), b"ab");
    }

    /// The checksum tells a whole record from a torn one.
    #[test]
    fn checksum_differs_for_torn_bytes() {
        assert_ne!(checksum(b"hello"), checksum(b"hell"));
        assert_eq!(checksum(b""), 0x811c_9dc5);
    }
}
