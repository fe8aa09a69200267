//! The sync facade: `std` by default, shuttle or loom under the feature of the same name.
//!
//! A hunt's code imports its locks, atomics, channels, threads and `hint::spin_loop` from
//! here instead of `std`. Built normally it *is* std; built with `--features shuttle` (or `loom`) the same
//! source runs under a checker that controls every thread switch and can explore them, so a
//! race shows on every run instead of once in a thousand. This is the pattern loom's own
//! documentation recommends, chosen with a cargo feature rather than `--cfg`, which would
//! rebuild every dependency.

#[cfg(not(any(feature = "shuttle", feature = "loom")))]
pub use std::sync::{
    atomic, mpsc, Arc, Barrier, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard,
    RwLockWriteGuard,
};

#[cfg(not(any(feature = "shuttle", feature = "loom")))]
pub use std::thread;

/// `spin_loop()` for a thread that waits by spinning: under a checker it is a yield the
/// search sees (a spin loop of std's hint would starve the thread it waits for).
#[cfg(not(any(feature = "shuttle", feature = "loom")))]
pub use std::hint;

#[cfg(all(feature = "shuttle", not(feature = "loom")))]
pub use shuttle::hint;

#[cfg(all(feature = "loom", not(feature = "shuttle")))]
pub use loom::hint;

#[cfg(all(feature = "shuttle", not(feature = "loom")))]
pub use shuttle::sync::{
    atomic, mpsc, Arc, Barrier, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard,
    RwLockWriteGuard,
};

#[cfg(all(feature = "shuttle", not(feature = "loom")))]
pub use shuttle::thread;

/// Under loom, the atomics and `Mutex` are loom's, each operation written down for the steps
/// of a failing execution (the learner's line, and what it read or wrote).
#[cfg(all(feature = "loom", not(feature = "shuttle")))]
pub use crate::recorded::{atomic, Mutex};
#[cfg(all(feature = "loom", not(feature = "shuttle")))]
pub use loom::sync::{
    mpsc, Arc, Barrier, Condvar, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

#[cfg(all(feature = "loom", not(feature = "shuttle")))]
pub use loom::thread;

pub use crate::steps::name_this_thread;

/// Spawns a thread with a name, so what a check tells about a failing schedule (its steps,
/// a deadlock's story) names the thread as the story does: "c1", "monitor".
pub fn spawn_named<T, F>(name: impl Into<String>, f: F) -> thread::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("a thread of the checks starts")
}
