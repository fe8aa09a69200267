//! A small transactional store, the database a consumer writes its effects into, whose
//! process can die between any two commits.
//!
//! An idempotent consumer writes two things for each message: the effect (a payment credited)
//! and the record that the message was applied. Written in one transaction they stand or fall
//! together; written in two, a crash between them leaves one without the other: the record
//! without the money (the payment is lost, the redelivery is skipped) or the money without the
//! record (the redelivery pays again). A plain struct in memory has no "between": the check
//! could never land a crash there. This store has one:
//!
//! - [`Store::transaction`] is one commit: the closure's writes all apply, or none do.
//! - A check arms a crash with [`Store::crash_after_commits`]: the k-th commit from then on
//!   applies, and then the consumer process dies, with a panic whose payload is [`Crashed`]
//!   (the check catches it with [`catching_crash`] and restarts the consumer). Until
//!   [`Store::restart`], every transaction of the dead process dies the same way, so ignoring
//!   the crash does not bring the process back.
//! - A check can also stall a process right after a commit with [`Store::stall_after_commits`]:
//!   what other processes do meanwhile runs there, and then the stalled one goes on, so a
//!   first attempt that is slow, not dead, finishes after the second (on one thread: the
//!   order is exact, no scheduler involved).
//! - Everything that must outlive a consumer process lives in the store; clones share it.
//!
//! Rows are string keys with `i64` values, in one namespace, like a tiny key-value database:
//! `applied/17 = 1`, `balance_cents = 2500`. Keys are kept sorted, so [`Tx::scan_prefix`] is
//! deterministic.
//!
//! Limits: one process at a time (the checks that use it run consumers one step at a time),
//! no nested transactions (a transaction inside another panics: there is one connection).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::trace::{EventKind, Trace};

/// The most rows a store holds: a bound on what a runaway consumer can write.
pub const ROWS_MAX: usize = 100_000;

/// The panic payload of a consumer process dying at a planned crash point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crashed {
    /// The store's commit count when the process died (it died right after that commit).
    pub after_commit: u64,
}

/// The database: rows that outlive every consumer process. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct Store {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    rows: BTreeMap<String, i64>,
    commits: u64,
    /// The commit number after which the process dies.
    crash_after: Option<u64>,
    dead: bool,
    in_transaction: bool,
    /// Where commits are drawn, and as whose, about which message.
    tracing: Option<(Trace, String, Option<u64>)>,
}

/// What runs while a process is stalled: the store it is armed on, after which commit, and the
/// work. Kept per thread, beside the store, so the store stays `Send` whatever the work holds.
struct Stall {
    store: usize,
    after_commit: u64,
    meanwhile: Box<dyn FnOnce()>,
}

thread_local! {
    static STALL: RefCell<Option<Stall>> = const { RefCell::new(None) };
}

/// One transaction's view of the rows. Writes apply when the closure returns.
#[derive(Debug)]
pub struct Tx {
    rows: BTreeMap<String, i64>,
    changed: BTreeMap<String, Option<i64>>,
}

impl Tx {
    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.rows.get(key).copied()
    }

    /// Whether a row exists at `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.rows.contains_key(key)
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn put(&mut self, key: &str, value: i64) -> Option<i64> {
        self.changed.insert(key.to_owned(), Some(value));
        self.rows.insert(key.to_owned(), value)
    }

    /// Sets `key` to `value` only if no row is there; true if it was inserted (an
    /// insert-if-absent, like SQL's `INSERT ... ON CONFLICT DO NOTHING`).
    pub fn insert_if_absent(&mut self, key: &str, value: i64) -> bool {
        if self.rows.contains_key(key) {
            return false;
        }
        self.put(key, value);
        true
    }

    /// Adds `delta` to the value at `key` (a missing row counts as 0); returns the new value.
    pub fn add(&mut self, key: &str, delta: i64) -> i64 {
        let value = self.get(key).unwrap_or(0).saturating_add(delta);
        self.put(key, value);
        value
    }

    /// Deletes the row at `key`; returns its value.
    pub fn delete(&mut self, key: &str) -> Option<i64> {
        let old = self.rows.remove(key);
        if old.is_some() {
            self.changed.insert(key.to_owned(), None);
        }
        old
    }

    /// Every row whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &str) -> Vec<(String, i64)> {
        self.rows
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), *value))
            .collect()
    }
}

/// Resets the one-transaction-at-a-time flag however the closure ends.
struct Open<'a>(&'a Store);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.state().in_transaction = false;
    }
}

fn die(after_commit: u64) -> ! {
    panic::panic_any(Crashed { after_commit })
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `work` as one transaction and commits it: all of its writes apply, or (if the
    /// process dies first) none do.
    pub fn transaction<R>(&self, work: impl FnOnce(&mut Tx) -> R) -> R {
        let rows = {
            let mut state = self.state();
            if state.dead {
                let after_commit = state.commits;
                drop(state);
                die(after_commit);
            }
            assert!(
                !state.in_transaction,
                "bughunt-kit: a transaction inside a transaction: the store has one connection, \
                 so do all the work of one commit in one closure"
            );
            state.in_transaction = true;
            state.rows.clone()
        };
        let open = Open(self);
        let mut tx = Tx {
            rows,
            changed: BTreeMap::new(),
        };
        let result = work(&mut tx);
        drop(open);

        let mut state = self.state();
        assert!(
            tx.rows.len() <= ROWS_MAX,
            "bughunt-kit: the store is full ({ROWS_MAX} rows)"
        );
        state.rows = tx.rows;
        state.commits += 1;
        let commit = state.commits;
        if let (false, Some((trace, actor, msg))) = (tx.changed.is_empty(), &state.tracing) {
            let writes: Vec<String> = tx
                .changed
                .iter()
                .map(|(key, value)| match value {
                    Some(value) => format!("{key} = {value}"),
                    None => format!("{key} deleted"),
                })
                .collect();
            let mut event = trace
                .event(actor.clone(), EventKind::Write)
                .to("ledger")
                .note(format!("commit: {}", writes.join(", ")));
            if let Some(msg) = msg {
                event = event.msg(*msg);
            }
            event.record();
        }
        if state.crash_after == Some(commit) {
            state.crash_after = None;
            state.dead = true;
            drop(state);
            die(commit);
        }
        drop(state);
        let key = self.key();
        let stall = STALL.with(|slot| {
            let mut slot = slot.borrow_mut();
            match &*slot {
                Some(stall) if stall.store == key && stall.after_commit == commit => slot.take(),
                _ => None,
            }
        });
        if let Some(stall) = stall {
            (stall.meanwhile)();
        }
        result
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Arms a stall: right after the `commits_from_now`-th commit from now (1 = the next
    /// one), before the code that made it goes on, `meanwhile` runs on this thread: what other
    /// processes do while this one is stalled. One stall at a time per thread.
    pub fn stall_after_commits(&self, commits_from_now: u64, meanwhile: impl FnOnce() + 'static) {
        let after_commit = self.commits() + commits_from_now.max(1);
        let store = self.key();
        STALL.with(|slot| {
            *slot.borrow_mut() = Some(Stall {
                store,
                after_commit,
                meanwhile: Box::new(meanwhile),
            })
        });
    }

    /// Cancels a stall that has not happened.
    pub fn unstall(&self) {
        STALL.with(|slot| slot.borrow_mut().take());
    }

    /// Arms a crash: the `commits_from_now`-th commit from now (1 = the next one) applies,
    /// and then the process dies. 0 kills it at its next transaction, before that commit.
    pub fn crash_after_commits(&self, commits_from_now: u64) {
        let mut state = self.state();
        if commits_from_now == 0 {
            state.dead = true;
            state.crash_after = None;
        } else {
            state.crash_after = Some(state.commits + commits_from_now);
        }
    }

    /// Cancels an armed crash that has not happened.
    pub fn disarm(&self) {
        self.state().crash_after = None;
    }

    /// A new process may use the store: the rows are as the last commit left them.
    pub fn restart(&self) {
        let mut state = self.state();
        state.dead = false;
        state.crash_after = None;
    }

    /// Whether the process using the store has died.
    pub fn is_dead(&self) -> bool {
        self.state().dead
    }

    /// Commits so far, read-only ones included.
    pub fn commits(&self) -> u64 {
        self.state().commits
    }

    /// A copy of every row, for checks and drawings.
    pub fn rows(&self) -> BTreeMap<String, i64> {
        self.state().rows.clone()
    }

    /// Draws every commit that writes into `trace`, as `actor`, about `msg`, until
    /// [`Store::untraced`].
    pub fn traced(&self, trace: &Trace, actor: &str, msg: Option<u64>) {
        self.state().tracing = Some((trace.clone(), actor.to_owned(), msg));
    }

    /// Stops drawing commits.
    pub fn untraced(&self) {
        self.state().tracing = None;
    }
}

/// Runs `work` (a consumer's step); `Err` if the process died at a planned crash point. Any
/// other panic goes on unwinding.
pub fn catching_crash<R>(work: impl FnOnce() -> R) -> Result<R, Crashed> {
    match panic::catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => Ok(result),
        Err(payload) => match payload.downcast::<Crashed>() {
            Ok(crashed) => Err(*crashed),
            Err(other) => panic::resume_unwind(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction's writes apply together; reads see the committed rows.
    #[test]
    fn a_transaction_commits_all_its_writes() {
        let store = Store::new();
        let inserted = store.transaction(|tx| {
            tx.add("balance", 25);
            tx.insert_if_absent("applied/7", 1)
        });
        assert!(inserted);
        assert!(!store.transaction(|tx| tx.insert_if_absent("applied/7", 1)));
        assert_eq!(store.transaction(|tx| tx.get("balance")), Some(25));
        assert_eq!(
            store.transaction(|tx| tx.scan_prefix("applied/")),
            vec![("applied/7".to_owned(), 1)]
        );
        assert_eq!(store.commits(), 4);
    }

    /// A crash armed after the first of two commits keeps the first and loses the second,
    /// and the dead process cannot commit until a restart.
    #[test]
    fn a_crash_lands_between_two_commits() {
        let store = Store::new();
        store.crash_after_commits(1);
        let outcome = catching_crash(|| {
            store.transaction(|tx| tx.put("applied/1", 1));
            store.transaction(|tx| tx.add("balance", 10));
        });
        assert_eq!(outcome, Err(Crashed { after_commit: 1 }));
        assert!(store.is_dead());
        assert_eq!(
            catching_crash(|| store.transaction(|tx| tx.get("balance"))),
            Err(Crashed { after_commit: 1 })
        );
        store.restart();
        assert_eq!(store.transaction(|tx| tx.get("applied/1")), Some(1));
        assert_eq!(store.transaction(|tx| tx.get("balance")), None);
    }

    /// Crashing before any commit applies nothing; a panic of another kind is not a crash.
    #[test]
    fn crash_before_and_other_panics() {
        let store = Store::new();
        store.crash_after_commits(0);
        assert!(catching_crash(|| store.transaction(|tx| tx.put("a", 1))).is_err());
        store.restart();
        assert!(store.rows().is_empty());
        let other = panic::catch_unwind(AssertUnwindSafe(|| {
            let _ = catching_crash(|| panic!("a bug"));
        }));
        assert!(other.is_err());
        // The failed transaction left no transaction open.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| {
            store.transaction(|_| panic!("inside"));
        }));
        assert_eq!(store.transaction(|tx| tx.put("b", 2)), None);
    }

    /// A stall runs the other process's work right after the armed commit, then the stalled
    /// one goes on.
    #[test]
    fn a_stall_lets_another_process_run_between_two_commits() {
        let store = Store::new();
        let other = store.clone();
        store.stall_after_commits(1, move || {
            other.transaction(|tx| tx.add("balance", 100));
        });
        store.transaction(|tx| tx.put("applied/1", 1));
        assert_eq!(store.transaction(|tx| tx.get("balance")), Some(100));
        store.transaction(|tx| tx.add("balance", 5));
        assert_eq!(store.transaction(|tx| tx.get("balance")), Some(105));
        store.stall_after_commits(1, || panic!("cancelled"));
        store.unstall();
        store.transaction(|tx| tx.get("balance"));
    }

    /// Commits that write are drawn, with their rows.
    #[test]
    fn commits_are_drawn() {
        let store = Store::new();
        let trace = Trace::new();
        store.traced(&trace, "c1", Some(3));
        store.transaction(|tx| tx.get("x"));
        store.transaction(|tx| {
            tx.put("applied/3", 1);
            tx.add("balance", 5)
        });
        store.untraced();
        store.transaction(|tx| tx.put("y", 1));
        let events = trace.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].msg, Some(3));
        assert_eq!(
            events[0].note.as_deref(),
            Some("commit: applied/3 = 1, balance = 5")
        );
    }
}
