//! A simulated disk with real power-cut semantics.
//!
//! A real `write` lands in the OS page cache; only `fsync` (here [`Disk::sync`]) makes it
//! durable, and only a synced directory makes a new file's *name* durable. When the power
//! goes, whatever was not synced may be lost, and the last unsynced record may survive
//! half-written (a torn tail). This disk keeps, for every file, the durable bytes apart from
//! the pending ones, so a simulated power cut loses exactly what a real one may lose:
//!
//! - synced bytes of a file whose directory entry is durable always survive;
//! - of the pending bytes, only the first `torn_bytes` survive (0 = all lost);
//! - a file created but never made durable by [`Disk::sync_dir`] disappears.
//!
//! Clones share one device. After [`Disk::power_cut`] every operation on the old device
//! fails; [`Disk::reboot`] gives the device as it comes back up, with only what survived.
//!
//! The model is append-only files in one directory: what write-ahead logs and queue segments
//! need, and small enough to reason about.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fault::FaultPlan;

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
    /// Cut the power during the n-th call to `sync` (1-based), keeping this many pending bytes.
    power_cut_at_sync: Option<(u64, u64)>,
}

#[derive(Debug, Default, Clone)]
struct FileState {
    durable: Vec<u8>,
    pending: Vec<u8>,
    entry_durable: bool,
}

/// Counters a demo can show (how many fsyncs the durable version paid for).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DiskStats {
    pub writes: u64,
    pub syncs: u64,
    pub bytes_written: u64,
}

fn power_is_off() -> io::Error {
    io::Error::other("simulated power cut: the device is off")
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
            disk.state().power_cut_at_sync = Some((nth_sync, torn_bytes));
        }
        disk
    }

    /// Arms a power cut during a later sync: the `syncs_from_now`-th sync from now (1 = the
    /// next one), keeping `torn_bytes` of the pending data. Checks use it to tear a record
    /// whatever number of syncs the code under test made before.
    pub fn plan_power_cut_at_sync(&self, syncs_from_now: u64, torn_bytes: u64) {
        let mut state = self.state();
        let nth = state.stats.syncs + syncs_from_now.max(1);
        state.power_cut_at_sync = Some((nth, torn_bytes));
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
        let file = state.files.get_mut(name).ok_or_else(|| not_found(name))?;
        file.pending.extend_from_slice(bytes);
        state.stats.writes += 1;
        state.stats.bytes_written += bytes.len() as u64;
        Ok(())
    }

    /// fsync: makes every byte written to `name` so far durable.
    ///
    /// If the fault plan cuts the power during this sync, only part of the pending bytes
    /// reach the platter, the call fails, and the device is off.
    pub fn sync(&self, name: &str) -> io::Result<()> {
        let mut state = self.state();
        if state.powered_off {
            return Err(power_is_off());
        }
        if !state.files.contains_key(name) {
            return Err(not_found(name));
        }
        state.stats.syncs += 1;
        if let Some((nth_sync, torn_bytes)) = state.power_cut_at_sync {
            if state.stats.syncs == nth_sync {
                drop(state);
                self.power_cut(torn_bytes);
                return Err(power_is_off());
            }
        }
        let file = state.files.get_mut(name).ok_or_else(|| not_found(name))?;
        let pending = std::mem::take(&mut file.pending);
        file.durable.extend_from_slice(&pending);
        Ok(())
    }

    /// fsync of the directory: makes the names of every file created so far durable.
    pub fn sync_dir(&self) -> io::Result<()> {
        let mut state = self.state();
        if state.powered_off {
            return Err(power_is_off());
        }
        for file in state.files.values_mut() {
            file.entry_durable = true;
        }
        Ok(())
    }

    /// Reads a whole file as a reader would see it now: durable bytes, then pending ones.
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let state = self.state();
        if state.powered_off {
            return Err(power_is_off());
        }
        let file = state.files.get(name).ok_or_else(|| not_found(name))?;
        let mut bytes = file.durable.clone();
        bytes.extend_from_slice(&file.pending);
        Ok(bytes)
    }

    /// The OS writes dirty pages back on its own schedule: every pending byte becomes durable
    /// now, without anyone asking. (Demos use it to show that "usually it's fine" is luck.)
    pub fn os_writeback(&self) {
        let mut state = self.state();
        if state.powered_off {
            return;
        }
        for file in state.files.values_mut() {
            let pending = std::mem::take(&mut file.pending);
            file.durable.extend_from_slice(&pending);
        }
    }

    /// Bytes written but not yet durable, over all files.
    pub fn unsynced_bytes(&self) -> u64 {
        self.state()
            .files
            .values()
            .map(|file| file.pending.len() as u64)
            .sum()
    }

    /// Cuts the power. Each file keeps its durable bytes plus the first `torn_bytes` of its
    /// pending ones; files whose names were never made durable are gone. Every later
    /// operation on this device fails until [`Disk::reboot`].
    pub fn power_cut(&self, torn_bytes: u64) {
        let mut state = self.state();
        if state.powered_off {
            return;
        }
        state.powered_off = true;
        state.files.retain(|_, file| file.entry_durable);
        for file in state.files.values_mut() {
            let keep = file.pending.len().min(torn_bytes as usize);
            let survivors: Vec<u8> = file.pending[..keep].to_vec();
            file.durable.extend_from_slice(&survivors);
            file.pending.clear();
        }
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
                    pending: Vec::new(),
                    entry_durable: true,
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

    /// The checksum tells a whole record from a torn one.
    #[test]
    fn checksum_differs_for_torn_bytes() {
        assert_ne!(checksum(b"hello"), checksum(b"hell"));
        assert_eq!(checksum(b""), 0x811c_9dc5);
    }
}
