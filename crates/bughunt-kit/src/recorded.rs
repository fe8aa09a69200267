//! loom's atomics and mutex, each operation written down for the steps of a failing
//! execution ([`crate::steps`]): the line of the learner's code that made it
//! (`#[track_caller]`) and what it read or wrote.
//!
//! Each type wraps loom's and dereferences to it, so a method not wrapped here (loom's
//! `with_mut`, `unsync_load`, a lock's `get_mut`) still works, unrecorded. Under loom these are
//! what `bughunt_kit::sync::atomic` and `bughunt_kit::sync::Mutex` are.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;

use crate::steps::loom::record;

/// `std::sync::atomic` under loom, recorded.
pub mod atomic {
    use super::*;

    #[allow(deprecated)]
    pub use loom::sync::atomic::spin_loop_hint;
    pub use loom::sync::atomic::{AtomicPtr, Ordering};

    /// An atomic fence ([`std::sync::atomic::fence`]), recorded as a step at its line.
    #[track_caller]
    pub fn fence(order: Ordering) {
        loom::sync::atomic::fence(order);
        record(Location::caller(), || None);
    }

    /// What a read-modify-write read, and what it left.
    fn read_wrote(read: impl fmt::Debug, wrote: impl fmt::Debug) -> Option<String> {
        Some(format!("read {read:?}, wrote {wrote:?}"))
    }

    /// What a compare-exchange read, and whether it wrote.
    fn exchanged<T: fmt::Debug>(outcome: &Result<T, T>, new: T) -> Option<String> {
        match outcome {
            Ok(read) => read_wrote(read, new),
            Err(read) => Some(format!(
                "read {read:?}, not the value expected: wrote nothing"
            )),
        }
    }

    /// A compare-exchange (`compare_exchange`, `compare_exchange_weak`), recorded.
    macro_rules! recorded_exchange {
        ($method:ident, $value:ty) => {
            #[track_caller]
            pub fn $method(
                &self,
                current: $value,
                new: $value,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$value, $value> {
                let outcome = self.0.$method(current, new, success, failure);
                record(Location::caller(), || exchanged(&outcome, new));
                outcome
            }
        };
    }

    /// A read-modify-write that returns what it read (`fetch_add`, `fetch_or`, …), recorded
    /// with what it wrote: `$wrote` from what it read and its argument.
    macro_rules! recorded_fetch {
        ($method:ident, $value:ty, |$read:ident, $argument:ident| $wrote:expr) => {
            #[track_caller]
            pub fn $method(&self, $argument: $value, order: Ordering) -> $value {
                let $read = self.0.$method($argument, order);
                record(Location::caller(), || read_wrote($read, $wrote));
                $read
            }
        };
    }

    /// The operations every atomic has, recorded. `$loom` is loom's type, `$value` its value.
    macro_rules! recorded_atomic {
        ($(#[$doc:meta])* $name:ident, $value:ty) => {
            $(#[$doc])*
            pub struct $name(loom::sync::atomic::$name);

            impl $name {
                #[track_caller]
                pub fn new(value: $value) -> Self {
                    Self(loom::sync::atomic::$name::new(value))
                }

                #[track_caller]
                pub fn into_inner(self) -> $value {
                    self.0.into_inner()
                }

                #[track_caller]
                pub fn load(&self, order: Ordering) -> $value {
                    let read = self.0.load(order);
                    record(Location::caller(), || Some(format!("read {read:?}")));
                    read
                }

                #[track_caller]
                pub fn store(&self, value: $value, order: Ordering) {
                    self.0.store(value, order);
                    record(Location::caller(), || Some(format!("wrote {value:?}")));
                }

                #[track_caller]
                pub fn swap(&self, value: $value, order: Ordering) -> $value {
                    let read = self.0.swap(value, order);
                    record(Location::caller(), || read_wrote(read, value));
                    read
                }

                recorded_exchange!(compare_exchange, $value);
                recorded_exchange!(compare_exchange_weak, $value);
                recorded_fetch!(fetch_and, $value, |read, value| read & value);
                recorded_fetch!(fetch_nand, $value, |read, value| !(read & value));
                recorded_fetch!(fetch_or, $value, |read, value| read | value);
                recorded_fetch!(fetch_xor, $value, |read, value| read ^ value);

                #[track_caller]
                pub fn fetch_update<F>(
                    &self,
                    set_order: Ordering,
                    fetch_order: Ordering,
                    mut f: F,
                ) -> Result<$value, $value>
                where
                    F: FnMut($value) -> Option<$value>,
                {
                    let mut wrote = None;
                    let outcome = self.0.fetch_update(set_order, fetch_order, |read| {
                        wrote = f(read);
                        wrote
                    });
                    record(Location::caller(), || match (&outcome, wrote) {
                        (Ok(read), Some(wrote)) => read_wrote(read, wrote),
                        (Ok(read) | Err(read), _) => {
                            Some(format!("read {read:?}, wrote nothing"))
                        }
                    });
                    outcome
                }
            }

            impl Deref for $name {
                type Target = loom::sync::atomic::$name;

                fn deref(&self) -> &Self::Target {
                    &self.0
                }
            }

            impl DerefMut for $name {
                fn deref_mut(&mut self) -> &mut Self::Target {
                    &mut self.0
                }
            }

            impl Default for $name {
                fn default() -> Self {
                    Self(loom::sync::atomic::$name::default())
                }
            }

            impl From<$value> for $name {
                #[track_caller]
                fn from(value: $value) -> Self {
                    Self::new(value)
                }
            }

            impl fmt::Debug for $name {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    fmt::Debug::fmt(&self.0, f)
                }
            }
        };
    }

    /// The arithmetic an integer atomic adds, recorded.
    macro_rules! recorded_integer {
        ($($name:ident: $value:ty),* $(,)?) => {$(
            recorded_atomic!(
                #[doc = concat!("`std::sync::atomic::", stringify!($name), "` under loom, recorded.")]
                $name,
                $value
            );

            impl $name {
                recorded_fetch!(fetch_add, $value, |read, value| read.wrapping_add(value));
                recorded_fetch!(fetch_sub, $value, |read, value| read.wrapping_sub(value));
                recorded_fetch!(fetch_max, $value, |read, value| read.max(value));
                recorded_fetch!(fetch_min, $value, |read, value| read.min(value));
            }
        )*};
    }

    recorded_atomic!(
        /// `std::sync::atomic::AtomicBool` under loom, recorded.
        AtomicBool,
        bool
    );

    recorded_integer!(
        AtomicU8: u8,
        AtomicU16: u16,
        AtomicU32: u32,
        AtomicU64: u64,
        AtomicUsize: usize,
        AtomicI8: i8,
        AtomicI16: i16,
        AtomicI32: i32,
        AtomicI64: i64,
        AtomicIsize: isize,
    );
}

/// `std::sync::Mutex` under loom, recorded: a step where a thread took the lock.
pub struct Mutex<T>(loom::sync::Mutex<T>);

impl<T> Mutex<T> {
    #[track_caller]
    pub fn new(value: T) -> Self {
        Self(loom::sync::Mutex::new(value))
    }

    pub fn into_inner(self) -> std::sync::LockResult<T> {
        self.0.into_inner()
    }

    /// Takes the lock, waiting while another thread holds it.
    #[track_caller]
    pub fn lock(&self) -> std::sync::LockResult<loom::sync::MutexGuard<'_, T>> {
        let guard = self.0.lock();
        record(Location::caller(), || Some("took the lock".to_owned()));
        guard
    }

    /// Takes the lock if no thread holds it.
    #[track_caller]
    pub fn try_lock(&self) -> std::sync::TryLockResult<loom::sync::MutexGuard<'_, T>> {
        let guard = self.0.try_lock();
        let took = guard.is_ok();
        record(Location::caller(), || {
            Some(
                if took {
                    "took the lock"
                } else {
                    "found it held"
                }
                .to_owned(),
            )
        });
        guard
    }
}

impl<T> Deref for Mutex<T> {
    type Target = loom::sync::Mutex<T>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> DerefMut for Mutex<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
