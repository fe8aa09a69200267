//! A message handler that writes to a database through a small connection pool.
//!
//! The pool holds [`POOL_SIZE`] connections. A handler takes one with [`Pool::acquire`],
//! inserts the message's entry into the ledger, writes the audit entry, and gives the
//! connection back. `acquire` waits at most [`ACQUIRE_TIMEOUT_MS`] for an idle connection;
//! then the handler answers [`HandleError::Busy`] and the consumer puts the message back on
//! the queue for later. The ledger refuses an entry with a negative amount (a `CHECK`
//! constraint): the handler answers [`HandleError::Rejected`] and the consumer sends the
//! message to the dead-letter queue.
//!
//! Many messages are handled at once, from one consumer task each, and a consumer may give up
//! on a message halfway (its own deadline, a rebalance, shutdown) by dropping the `handle`
//! future at whichever `.await` it has reached.
//!
//! The promises: every connection goes back to the pool however a call ends; a call answers
//! `Busy` only when every connection really was in use, and after waiting its full
//! [`ACQUIRE_TIMEOUT_MS`]; `Ok` means the entry and its audit are written, `Busy` that nothing
//! was; and no call waits longer than that timeout for a connection.
//!
//! Where it comes from: the commonest way a production service runs out of database
//! connections, with no load at all: a connection taken from the pool and not given back on
//! an error path (HikariCP's `leakDetectionThreshold` exists to find it), and a handler that
//! holds one connection while it asks the same pool for a second (HikariCP's "About Pool
//! Sizing": a pool smaller than `threads × (connections per task − 1) + 1` can deadlock).

//~ site: connection-not-returned
use std::ops::Deref;
//~ broken:
//~ wrong: release-on-every-path
//~ wrong: drop-on-error
//~ alt: guard-in-the-handler
//~ end
use std::sync::{Mutex, MutexGuard};
//~ site: acquire-without-timeout
use std::time::Duration;
//~ broken:
//~ wrong: fail-fast
//~ end

use bughunt_kit::sink::Sink;
//~ region
use tokio::sync::Semaphore;
//~ alt: notify-pool
//~ use tokio::sync::Notify;
//~ end
//~ site: acquire-without-timeout
use tokio::time::timeout;
//~ broken:
//~ wrong: fail-fast
//~ alt: poll-until-deadline
//~ end

/// How many connections the pool holds (the database allows no more).
pub const POOL_SIZE: usize = 2;

/// How long `acquire` waits for an idle connection before it answers `Busy`.
pub const ACQUIRE_TIMEOUT_MS: u64 = 400;

/// A message to handle: an entry for the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
    pub amount: i64,
}

/// The database: the ledger table and the audit log beside it. Every write is a round trip
/// that takes (tokio) time.
#[derive(Clone, Debug)]
pub struct Database {
    pub ledger: Sink,
    pub audit_log: Sink,
}

/// No connection came free within [`ACQUIRE_TIMEOUT_MS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// The ledger refused the entry: its amount is negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected;

/// Why a message was not handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleError {
    /// No connection in time; nothing was written: requeue the message.
    Busy,
    /// The ledger refused the entry: dead-letter the message.
    Rejected,
}

impl From<Busy> for HandleError {
    fn from(_: Busy) -> HandleError {
        HandleError::Busy
    }
}

/// One connection to the database.
#[derive(Debug)]
pub struct Conn {
    db: Database,
}

impl Conn {
    /// Inserts the message's entry into the ledger. The round trip takes its time; the ledger
    /// then refuses a negative amount.
    pub async fn insert(&self, message: &Message) -> Result<(), Rejected> {
        self.db.ledger.process(message.id).await;
        if message.amount < 0 {
            Err(Rejected)
        } else {
            Ok(())
        }
    }

    /// Writes the message's audit entry.
    pub async fn audit(&self, message: &Message) {
        self.db.audit_log.process(message.id).await;
    }
}

/// A pool of [`POOL_SIZE`] connections, shared by every handler.
pub struct Pool {
    idle: Mutex<Vec<Conn>>,
    //~ region
    /// One permit for each idle connection; waiters queue here in order.
    free: Semaphore,
    //~ alt: notify-pool
    //~ /// Woken once for each connection given back.
    //~ given_back: Notify,
    //~ end
}

impl Pool {
    pub fn new(db: &Database) -> Pool {
        //~ region
        let idle = (0..POOL_SIZE).map(|_| Conn { db: db.clone() }).collect();
        Pool {
            idle: Mutex::new(idle),
            free: Semaphore::new(POOL_SIZE),
        }
        //~ wrong: bigger-pool
        //~ // HikariCP's sizing rule: threads × (connections per task − 1) + 1, one more
        //~ // connection than there are calls, so one call can always finish.
        //~ let idle = (0..POOL_SIZE + 1)
        //~     .map(|_| Conn { db: db.clone() })
        //~     .collect();
        //~ Pool {
        //~     idle: Mutex::new(idle),
        //~     free: Semaphore::new(POOL_SIZE + 1),
        //~ }
        //~ alt: notify-pool
        //~ let idle = (0..POOL_SIZE).map(|_| Conn { db: db.clone() }).collect();
        //~ Pool {
        //~     idle: Mutex::new(idle),
        //~     given_back: Notify::new(),
        //~ }
        //~ end
    }

    /// How many connections are idle in the pool right now.
    pub fn idle(&self) -> usize {
        lock(&self.idle).len()
    }

    /// Takes an idle connection, waiting at most [`ACQUIRE_TIMEOUT_MS`] for one.
    //~ site: connection-not-returned
    // FIX: the connection comes back as a guard that gives it back to the pool when dropped,
    // however the caller's scope ends: return, `?`, panic, or its future dropped mid-await.
    pub async fn acquire(&self) -> Result<Pooled<'_>, Busy> {
    //~ broken:
    //~ pub async fn acquire(&self) -> Result<Conn, Busy> {
    //~ wrong: release-on-every-path
    //~ pub async fn acquire(&self) -> Result<Conn, Busy> {
    //~ wrong: drop-on-error
    //~ pub async fn acquire(&self) -> Result<Conn, Busy> {
    //~ alt: guard-in-the-handler
    //~ pub async fn acquire(&self) -> Result<Conn, Busy> {
    //~ end
        //~ site: acquire-without-timeout
        // FIX: the wait has a bound. A pool that is dry because a query hangs, or because
        // connections leaked, answers `Busy` after the timeout, and the message goes back on
        // the queue, instead of every handler piling up behind it for ever.
        timeout(
            Duration::from_millis(ACQUIRE_TIMEOUT_MS),
            self.free.acquire(),
        )
        .await
        .map_err(|_| Busy)?
        .expect("the pool never closes its semaphore")
        .forget();
        //~ broken:
        //~ self.free
        //~     .acquire()
        //~     .await
        //~     .expect("the pool never closes its semaphore")
        //~     .forget();
        //~ wrong: retry-after-timeout
        //~ // Busy loses the message's place in line: try again until a connection comes.
        //~ loop {
        //~     if let Ok(permit) = timeout(
        //~         Duration::from_millis(ACQUIRE_TIMEOUT_MS),
        //~         self.free.acquire(),
        //~     )
        //~     .await
        //~     {
        //~         permit
        //~             .expect("the pool never closes its semaphore")
        //~             .forget();
        //~         break;
        //~     }
        //~ }
        //~ wrong: fail-fast
        //~ // Never wait: a pool with no idle connection answers Busy at once.
        //~ self.free.try_acquire().map_err(|_| Busy)?.forget();
        //~ alt: poll-until-deadline
        //~ // Look for a free connection every few milliseconds until the deadline.
        //~ let deadline = tokio::time::Instant::now() + Duration::from_millis(ACQUIRE_TIMEOUT_MS);
        //~ loop {
        //~     if let Ok(permit) = self.free.try_acquire() {
        //~         permit.forget();
        //~         break;
        //~     }
        //~     let now = tokio::time::Instant::now();
        //~     if now >= deadline {
        //~         return Err(Busy);
        //~     }
        //~     tokio::time::sleep((deadline - now).min(Duration::from_millis(5))).await;
        //~ }
        //~ alt: notify-pool
        //~ let waited = timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS), async {
        //~     loop {
        //~         // Ask to be woken before looking, so a connection given back between the
        //~         // look and the wait still wakes this call.
        //~         let given_back = self.given_back.notified();
        //~         if let Some(conn) = lock(&self.idle).pop() {
        //~             return conn;
        //~         }
        //~         given_back.await;
        //~     }
        //~ })
        //~ .await;
        //~ let conn = waited.map_err(|_| Busy)?;
        //~ lock(&self.idle).push(conn);
        //~ end
        let conn = lock(&self.idle)
            .pop()
            .expect("a permit stands for an idle connection");
        //~ site: connection-not-returned
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
        })
        //~ broken:
        //~ Ok(conn)
        //~ wrong: release-on-every-path
        //~ Ok(conn)
        //~ wrong: drop-on-error
        //~ Ok(conn)
        //~ alt: guard-in-the-handler
        //~ Ok(conn)
        //~ end
    }
    //~ site: connection-not-returned
    //~ broken:
    //~
    //~ /// Gives a connection back to the pool.
    //~ pub fn release(&self, conn: Conn) {
    //~     lock(&self.idle).push(conn);
    //~     self.free.add_permits(1);
    //~ }
    //~ wrong: release-on-every-path
    //~
    //~ /// Gives a connection back to the pool.
    //~ pub fn release(&self, conn: Conn) {
    //~     lock(&self.idle).push(conn);
    //~     self.free.add_permits(1);
    //~ }
    //~ wrong: drop-on-error
    //~
    //~ /// Gives a connection back to the pool.
    //~ pub fn release(&self, conn: Conn) {
    //~     lock(&self.idle).push(conn);
    //~     self.free.add_permits(1);
    //~ }
    //~ alt: guard-in-the-handler
    //~
    //~ /// Gives a connection back to the pool.
    //~ pub fn release(&self, conn: Conn) {
    //~     lock(&self.idle).push(conn);
    //~     self.free.add_permits(1);
    //~ }
    //~ end
}

//~ site: connection-not-returned
// FIX: the guard. Whatever ends the caller's scope (a return, a `?`, a panic, its future
// dropped at an `.await`), `drop` runs and the connection goes back.
/// A connection taken from the pool; dropping it gives it back.
pub struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl Deref for Pooled<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a Pooled holds its connection until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.pool.idle).push(conn);
            self.pool.free.add_permits(1);
        }
    }
}

//~ broken:
//~ wrong: release-on-every-path
//~ wrong: drop-on-error
//~ alt: guard-in-the-handler
//~ /// Gives the connection back to the pool when dropped, however the handler's scope ends.
//~ struct Returning<'a> {
//~     pool: &'a Pool,
//~     conn: Option<Conn>,
//~ }
//~
//~ impl Returning<'_> {
//~     fn conn(&self) -> &Conn {
//~         self.conn.as_ref().expect("held until dropped")
//~     }
//~ }
//~
//~ impl Drop for Returning<'_> {
//~     fn drop(&mut self) {
//~         if let Some(conn) = self.conn.take() {
//~             self.pool.release(conn);
//~         }
//~     }
//~ }
//~
//~ alt: notify-pool
//~ /// A connection taken from the pool; dropping it gives it back.
//~ pub struct Pooled<'a> {
//~     pool: &'a Pool,
//~     conn: Option<Conn>,
//~ }
//~
//~ impl Deref for Pooled<'_> {
//~     type Target = Conn;
//~
//~     fn deref(&self) -> &Conn {
//~         self.conn
//~             .as_ref()
//~             .expect("a Pooled holds its connection until dropped")
//~     }
//~ }
//~
//~ impl Drop for Pooled<'_> {
//~     fn drop(&mut self) {
//~         if let Some(conn) = self.conn.take() {
//~             lock(&self.pool.idle).push(conn);
//~             self.pool.given_back.notify_one();
//~         }
//~     }
//~ }
//~
//~ end
/// Handles messages: one ledger entry and one audit entry each.
pub struct Handler {
    pool: Pool,
}

impl Handler {
    pub fn new(db: Database) -> Handler {
        Handler {
            pool: Pool::new(&db),
        }
    }

    /// How many of the pool's connections are idle right now.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle()
    }

    /// Inserts the message's entry and its audit entry. `Ok`: both are written. `Busy`: no
    /// connection came free in time and nothing was written. `Rejected`: the ledger refused
    /// the entry.
    pub async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        //~ region
        let conn = self.pool.acquire().await?;
        //~ wrong: timeout-around-handle
        //~ // One bound for the whole message, so no handler waits too long.
        //~ let whole = async {
        //~ let conn = self.pool.acquire().await?;
        //~ alt: guard-in-the-handler
        //~ let conn = Returning {
        //~     pool: &self.pool,
        //~     conn: Some(self.pool.acquire().await?),
        //~ };
        //~ let conn = conn.conn();
        //~ end
        //~ site: connection-not-returned
        conn.insert(message)
            .await
            .map_err(|Rejected| HandleError::Rejected)?;
        //~ broken:
        //~ conn.insert(message)
        //~     .await
        //~     .map_err(|Rejected| HandleError::Rejected)?;
        //~ wrong: release-on-every-path
        //~ if let Err(Rejected) = conn.insert(message).await {
        //~     self.pool.release(conn);
        //~     return Err(HandleError::Rejected);
        //~ }
        //~ wrong: drop-on-error
        //~ if let Err(Rejected) = conn.insert(message).await {
        //~     drop(conn);
        //~     return Err(HandleError::Rejected);
        //~ }
        //~ wrong: swallow-rejection
        //~ // A refused entry is not worth failing the message for.
        //~ let _ = conn.insert(message).await;
        //~ end
        //~ site: nested-acquire
        // FIX: the audit entry goes over the connection this call already holds. Asking the
        // pool for a second one while holding the first deadlocks as soon as every
        // connection is held by a call that wants one more.
        conn.audit(message).await;
        //~ broken:
        //~ self.audit(message).await?;
        //~ wrong: bigger-pool
        //~ self.audit(message).await?;
        //~ wrong: audit-after-release
        //~ // Give the first connection back before taking the second: never hold two.
        //~ drop(conn);
        //~ self.audit(message).await?;
        //~ wrong: audit-if-one-is-idle
        //~ // Take a second connection only if one is idle right now, so this never waits.
        //~ if let Some(second) = self.pool.try_acquire() {
        //~     second.audit(message).await;
        //~ }
        //~ end
        //~ site: connection-not-returned
        Ok(())
        //~ broken:
        //~ self.pool.release(conn);
        //~ Ok(())
        //~ wrong: release-on-every-path
        //~ self.pool.release(conn);
        //~ Ok(())
        //~ wrong: drop-on-error
        //~ self.pool.release(conn);
        //~ Ok(())
        //~ end
        //~ region
        //~ wrong: timeout-around-handle
        //~ };
        //~ let whole: Result<Result<(), HandleError>, _> =
        //~     timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS), whole).await;
        //~ whole.map_err(|_| HandleError::Busy)?
        //~ end
    }
    //~ site: nested-acquire
    //~ broken:
    //~
    //~ /// Writes the audit entry on a connection of its own.
    //~ async fn audit(&self, message: &Message) -> Result<(), HandleError> {
    //~     let conn = self.pool.acquire().await?;
    //~     conn.audit(message).await;
    //~     Ok(())
    //~ }
    //~ wrong: bigger-pool
    //~
    //~ /// Writes the audit entry on a connection of its own.
    //~ async fn audit(&self, message: &Message) -> Result<(), HandleError> {
    //~     let conn = self.pool.acquire().await?;
    //~     conn.audit(message).await;
    //~     Ok(())
    //~ }
    //~ wrong: audit-after-release
    //~
    //~ /// Writes the audit entry on a connection of its own.
    //~ async fn audit(&self, message: &Message) -> Result<(), HandleError> {
    //~     let conn = self.pool.acquire().await?;
    //~     conn.audit(message).await;
    //~     Ok(())
    //~ }
    //~ end
}
//~ site: nested-acquire
//~ broken:
//~ wrong: audit-if-one-is-idle
//~
//~ impl Pool {
//~     /// An idle connection, if there is one right now.
//~     fn try_acquire(&self) -> Option<Pooled<'_>> {
//~         self.free.try_acquire().ok()?.forget();
//~         let conn = lock(&self.idle).pop()?;
//~         Some(Pooled {
//~             pool: self,
//~             conn: Some(conn),
//~         })
//~     }
//~ }
//~ end

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
