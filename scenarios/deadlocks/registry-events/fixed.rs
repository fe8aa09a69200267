//! A membership service: a registry of members, and an event for every change, handled in
//! order by a thread of its own.
//!
//! `Membership` keeps the members in `registry` (a `Lock`) and sends an `Event` for every
//! change (join, update, leave) on `events`, a bounded channel (`sync_channel`) of
//! configured capacity. The handler thread receives the events one by one and, for each,
//! takes `registry` to record it (its watchers read the registry and the events seen
//! together). Sequence numbers are given under `registry`, so events are numbered in the
//! order the changes happened.
//!
//! Changes come from one publisher thread at a time (the service's request loop). It
//! promises, for any changes, any capacity and any schedule of the publisher and the
//! handler: no thread waits forever; every event is handled exactly once, in sequence order;
//! and once `close` returns, the registry holds exactly the members that joined and did not
//! leave, and the handler is joined.
//!
//! Every lock is a `Lock` that says on the [`Log`] which lock a thread is about to wait for,
//! and when it holds or releases one; before each send and receive on `events`, a thread
//! says so too. When a run hangs, those lines say who held what and who waited for what.
//!
//! Where it comes from: etcd pull request 7443, kept as a kernel in the GoKer suite (Yuan et
//! al., "GoBench", CGO 2021), a "mixed deadlock" of a channel and a lock: a goroutine held a
//! mutex while sending on a notification channel, and the goroutines that could have let the
//! send through were themselves waiting for that mutex.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

//~ region
use bughunt_kit::sync::mpsc::{sync_channel, Receiver, SyncSender};
//~ wrong: std-channel
//~ // std's channels: the same API, and no crate to learn.
//~ use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
//~ wrong: try-send-or-drop
//~ use bughunt_kit::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
//~ wrong: spin-try-send
//~ use bughunt_kit::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
//~ alt: unbounded-events
//~ use bughunt_kit::sync::mpsc::{channel, Receiver, Sender as SyncSender};
//~ alt: try-send-then-release
//~ use bughunt_kit::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
//~ end
use bughunt_kit::sync::{Arc, Mutex, MutexGuard};
use bughunt_kit::thread::{self, JoinHandle};

/// The handler thread's name, in the log and to the thread library.
pub const HANDLER: &str = "handler";

/// What a thread says on the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// About to wait for the lock of this name.
    Waits(&'static str),
    /// Now holds the lock of this name.
    Holds(&'static str),
    /// Has released the lock of this name.
    Releases(&'static str),
    /// About to send this event on the channel of this name (it waits while it is full).
    WaitsToSend(&'static str, u64),
    /// Sent this event on the channel of this name.
    Sent(&'static str, u64),
    /// About to wait for an event on the channel of this name.
    WaitsToReceive(&'static str),
    /// Received this event from the channel of this name.
    Received(&'static str, u64),
    /// Anything else worth a line.
    Says(String),
}

/// Where each thread says what it holds, waits for and does. A service would write these
/// lines to its debug log; the checks draw them.
#[derive(Clone)]
pub struct Log {
    line: Arc<dyn Fn(&str, Step) + Send + Sync>,
}

impl Log {
    pub fn new(line: impl Fn(&str, Step) + Send + Sync + 'static) -> Log {
        Log { line: Arc::new(line) }
    }

    /// A log that writes nowhere.
    pub fn quiet() -> Log {
        Log::new(|_, _| {})
    }

    /// Writes `step` in the name of the current thread.
    pub fn step(&self, step: Step) {
        let current = thread::current();
        (self.line)(current.name().unwrap_or("main"), step)
    }

    pub fn says(&self, what: String) {
        self.step(Step::Says(what))
    }
}

/// A mutex with a name, that logs every wait, acquisition and release.
pub struct Lock<T> {
    name: &'static str,
    inner: Mutex<T>,
    log: Log,
}

/// A held `Lock`: releases it (and says so) when dropped.
pub struct Guard<'a, T> {
    name: &'static str,
    log: &'a Log,
    inner: MutexGuard<'a, T>,
}

impl<T> Lock<T> {
    pub fn new(name: &'static str, value: T, log: Log) -> Lock<T> {
        Lock { name, inner: Mutex::new(value), log }
    }

    /// Waits for the lock. A thread that panicked while holding it left the data as it
    /// was; the dispatcher's data has no invariant a panic can break halfway.
    pub fn lock(&self) -> Guard<'_, T> {
        self.log.step(Step::Waits(self.name));
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.log.step(Step::Holds(self.name));
        Guard { name: self.name, log: &self.log, inner }
    }

    /// Takes the lock only if it is free now.
    pub fn try_lock(&self) -> Option<Guard<'_, T>> {
        let inner = self.inner.try_lock().ok()?;
        self.log.step(Step::Holds(self.name));
        Some(Guard { name: self.name, log: &self.log, inner })
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.log.step(Step::Releases(self.name));
    }
}


/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Joined,
    Updated,
    Left,
}

/// One change to one member, numbered in the order the changes happened (from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub seq: u64,
    pub member: u64,
    pub change: Change,
}

/// The members (id to version) and what the handler has seen.
#[derive(Debug, Default)]
pub struct Registry {
    pub members: BTreeMap<u64, u64>,
    /// Events handled, in the order they were.
    pub handled: Vec<Event>,
    last_seq: u64,
}

impl Registry {
    /// Numbers the next event.
    fn event(&mut self, member: u64, change: Change) -> Event {
        self.last_seq += 1;
        Event { seq: self.last_seq, member, change }
    }
}

/// The registry and the channel its events go out on.
pub struct Membership {
    registry: Arc<Lock<Registry>>,
    events: Option<SyncSender<Event>>,
    handler: Option<JoinHandle<()>>,
    log: Log,
}

impl Membership {
    /// Starts the handler; `events` holds `capacity` events before a sender waits.
    pub fn new(capacity: usize, log: Log) -> Membership {
        let registry = Arc::new(Lock::new("registry", Registry::default(), log.clone()));
        //~ region
        let (events, incoming) = sync_channel::<Event>(capacity);
        //~ wrong: bigger-buffer
        //~ // Two spare places: one for the event in the handler's hands, one for the send
        //~ // in flight, so a send never waits for the handler.
        //~ let (events, incoming) = sync_channel::<Event>(capacity + 2);
        //~ alt: unbounded-events
        //~ // No bound: a sender never waits, so it can never wait while holding `registry`.
        //~ let _ = capacity;
        //~ let (events, incoming) = channel::<Event>();
        //~ end
        let handler = start_handler(incoming, registry.clone(), log.clone());
        Membership { registry, events: Some(events), handler: Some(handler), log }
    }

    /// Sends one event on `events`, waiting while it is full.
    fn send(&self, event: Event) {
        let Some(events) = &self.events else { return };
        self.log.step(Step::WaitsToSend("events", event.seq));
        //~ region
        events.send(event).expect("the handler stopped");
        //~ wrong: try-send-or-drop
        //~ // Never wait on a full channel: a watcher can catch up from the registry.
        //~ if let Err(TrySendError::Full(_)) = events.try_send(event) {
        //~     self.log.says(format!("drops event {}: `events` is full", event.seq));
        //~     return;
        //~ }
        //~ wrong: spin-try-send
        //~ // Never block on a full channel: offer the event until there is room.
        //~ let mut event = event;
        //~ while let Err(TrySendError::Full(back)) = events.try_send(event) {
        //~     event = back;
        //~     thread::yield_now();
        //~ }
        //~ wrong: a-thread-per-send
        //~ // Never wait under anybody's lock: a thread of its own waits for room.
        //~ let (events, log) = (events.clone(), self.log.clone());
        //~ thread::spawn(move || {
        //~     events.send(event).expect("the handler stopped");
        //~     log.step(Step::Sent("events", event.seq));
        //~ });
        //~ return;
        //~ end
        self.log.step(Step::Sent("events", event.seq));
    }

    /// A member joins, at version 1.
    pub fn join(&self, member: u64) {
        //~ site: send-under-the-guard
        // FIX: number the event under `registry`, send it after the guard is gone: the
        // handler needs `registry` to make room on `events`.
        let event = {
            let mut registry = self.registry.lock();
            registry.members.insert(member, 1);
            registry.event(member, Change::Joined)
        };
        self.send(event);
        //~ broken:
        //~ let mut registry = self.registry.lock();
        //~ registry.members.insert(member, 1);
        //~ let event = registry.event(member, Change::Joined);
        //~ self.send(event);
        //~ wrong: bigger-buffer
        //~ let mut registry = self.registry.lock();
        //~ registry.members.insert(member, 1);
        //~ let event = registry.event(member, Change::Joined);
        //~ self.send(event);
        //~ wrong: spin-try-send
        //~ let mut registry = self.registry.lock();
        //~ registry.members.insert(member, 1);
        //~ let event = registry.event(member, Change::Joined);
        //~ self.send(event);
        //~ alt: unbounded-events
        //~ // The channel never fills: sending under the guard cannot wait.
        //~ let mut registry = self.registry.lock();
        //~ registry.members.insert(member, 1);
        //~ let event = registry.event(member, Change::Joined);
        //~ self.send(event);
        //~ alt: try-send-then-release
        //~ // Send at once while there is room; if `events` is full, release `registry` before
        //~ // waiting, so the handler can take it and make room.
        //~ let mut registry = self.registry.lock();
        //~ registry.members.insert(member, 1);
        //~ let event = registry.event(member, Change::Joined);
        //~ let Some(events) = &self.events else { return };
        //~ self.log.step(Step::WaitsToSend("events", event.seq));
        //~ match events.try_send(event) {
        //~     Ok(()) => self.log.step(Step::Sent("events", event.seq)),
        //~     Err(TrySendError::Full(event)) => {
        //~         drop(registry);
        //~         self.send(event);
        //~     }
        //~     Err(TrySendError::Disconnected(_)) => panic!("the handler stopped"),
        //~ }
        //~ end
    }

    /// A member's state changed: its version goes up by one.
    pub fn update(&self, member: u64) {
        let mut registry = self.registry.lock();
        let Some(version) = registry.members.get_mut(&member) else { return };
        *version += 1;
        self.notify(registry, member, Change::Updated);
    }

    /// A member leaves.
    pub fn leave(&self, member: u64) {
        let mut registry = self.registry.lock();
        if registry.members.remove(&member).is_none() {
            return;
        }
        self.notify(registry, member, Change::Left);
    }

    /// Numbers the event for a change made under `registry`, and sends it.
    fn notify(&self, mut registry: Guard<'_, Registry>, member: u64, change: Change) {
        //~ site: notify-sends-under-the-guard
        // FIX: release `registry` before the send that may wait for the handler.
        let event = registry.event(member, change);
        drop(registry);
        self.send(event);
        //~ broken:
        //~ let event = registry.event(member, change);
        //~ self.send(event);
        //~ end
    }

    /// Several members leave at once: the events go out when the batch ends.
    pub fn leave_all(&self, members: &[u64]) {
        //~ region
        let mut batch = Batch { membership: self, registry: Some(self.registry.lock()), pending: Vec::new() };
        for &member in members {
            let registry = batch.registry.as_mut().expect("held until the batch ends");
            if registry.members.remove(&member).is_some() {
                let event = registry.event(member, Change::Left);
                batch.pending.push(event);
            }
        }
        //~ alt: collect-then-send
        //~ // No flush-on-drop: collect the events under the guard, send them after it is gone.
        //~ let events: Vec<Event> = {
        //~     let mut registry = self.registry.lock();
        //~     let mut events = Vec::new();
        //~     for &member in members {
        //~         if registry.members.remove(&member).is_some() {
        //~             events.push(registry.event(member, Change::Left));
        //~         }
        //~     }
        //~     events
        //~ };
        //~ for event in events {
        //~     self.send(event);
        //~ }
        //~ end
    }

    /// Closes `events` and joins the handler, which handles what is left first.
    pub fn close(mut self) -> Registry {
        drop(self.events.take());
        self.log.says("waits for the handler to finish (join)".into());
        if let Some(handler) = self.handler.take() {
            handler.join().expect("the handler panicked");
        }
        let mut registry = self.registry.lock();
        std::mem::take(&mut *registry)
    }
}

/// Changes made under one hold of `registry`; their events are sent when it is dropped.
struct Batch<'a> {
    membership: &'a Membership,
    registry: Option<Guard<'a, Registry>>,
    pending: Vec<Event>,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        //~ site: flush-on-drop-under-the-guard
        // FIX: release `registry` first: fields are dropped after `drop` returns, so a
        // guard still in `self` would be held through every send below.
        drop(self.registry.take());
        for event in std::mem::take(&mut self.pending) {
            self.membership.send(event);
        }
        //~ broken:
        //~ // The guard goes with the batch, once the events are out.
        //~ for event in std::mem::take(&mut self.pending) {
        //~     self.membership.send(event);
        //~ }
        //~ end
    }
}

fn start_handler(incoming: Receiver<Event>, registry: Arc<Lock<Registry>>, log: Log) -> JoinHandle<()> {
    thread::Builder::new()
        .name(HANDLER.into())
        .spawn(move || loop {
            log.step(Step::WaitsToReceive("events"));
            let Ok(event) = incoming.recv() else {
                log.says("done: `events` is closed".into());
                return;
            };
            log.step(Step::Received("events", event.seq));
            //~ region
            registry.lock().handled.push(event);
            //~ wrong: handler-try-lock-or-skip
            //~ // Never wait for `registry`: if the publisher is busy with it, move on.
            //~ if let Some(mut registry) = registry.try_lock() {
            //~     registry.handled.push(event);
            //~ }
            //~ end
        })
        .expect("the handler thread could not start")
}
