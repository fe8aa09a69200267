//! A server that runs each request in a task of its own, so a slow request holds up no other,
//! and shuts down gracefully.
//!
//! The listener hands every incoming request to [`Server::accept`]; a signal handler calls
//! [`Server::shutdown`], while the listener may still be handing requests over. Monitoring
//! reads [`Server::in_flight`].
//!
//! The promises of `shutdown`: from the moment it is called, `accept` refuses every request
//! (the listener gets it back); each request already accepted gets until
//! [`DRAIN_DEADLINE_MS`] after the call to finish; whatever is still running then is stopped,
//! and `shutdown` returns, by that deadline, having waited until every handler task has
//! ended, with a [`Report`] naming each accepted request that did not finish, so the caller
//! can retry or log it. Nothing is dropped without a word.
//!
//! Where it comes from: a `tokio::spawn` per connection with nothing to join is the first
//! accept loop of most async servers, and graceful shutdown is what it is missing: tokio's
//! "Graceful Shutdown" topic and tokio-util's `TaskTracker` exist for exactly this.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use bughunt_kit::sink::Sink;
//~ region
use tokio::task::JoinSet;
use tokio::time::{timeout_at, Instant};
//~ alt: handles-that-tidy-up
//~ use std::sync::Arc;
//~
//~ use tokio::task::JoinHandle;
//~ use tokio::time::{timeout_at, Instant};
//~ alt: done-channel
//~ use std::collections::BTreeMap;
//~
//~ use tokio::sync::mpsc;
//~ use tokio::task::JoinHandle;
//~ use tokio::time::{timeout_at, Instant};
//~ alt: cooperative-cancel
//~ use tokio::sync::watch;
//~ use tokio::task::JoinSet;
//~ use tokio::time::{timeout_at, Instant};
//~ alt: select-with-sleep
//~ use tokio::task::JoinSet;
//~ use tokio::time::{sleep_until, Instant};
//~ wrong: per-handler-timeout
//~ use tokio::task::JoinSet;
//~ use tokio::time::{timeout, Instant};
//~ end

/// How long after `shutdown` is called the requests in flight have to finish.
pub const DRAIN_DEADLINE_MS: u64 = 2_000;

/// A request from a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
}

/// What shutdown did not get done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Requests accepted and not finished (stopped at the deadline), in id order.
    pub unfinished: Vec<u64>,
}

/// A running server. Share it (`&Server`) between the listener and the signal handler.
pub struct Server {
    sink: Sink,
    state: Mutex<State>,
}

struct State {
    /// False from the moment shutdown is called.
    accepting: bool,
    //~ region
    /// Every handler task still running (and some just finished, not reaped yet). Each ends
    /// with its request's id.
    handlers: JoinSet<u64>,
    //~ alt: handles-that-tidy-up
    //~ /// Every handler task still running (and some just finished, not pruned yet).
    //~ handlers: Vec<JoinHandle<()>>,
    //~ /// Each handler puts its request's id here as it finishes; `reap` takes them.
    //~ done: Arc<Mutex<Vec<u64>>>,
    //~ alt: done-channel
    //~ /// Each running handler's task, by request id.
    //~ handlers: BTreeMap<u64, JoinHandle<()>>,
    //~ /// Each handler sends its request's id here once it has finished: one message per request
    //~ /// at most. Shutdown takes the receiving end.
    //~ done: (mpsc::UnboundedSender<u64>, Option<mpsc::UnboundedReceiver<u64>>),
    //~ alt: cooperative-cancel
    //~ /// Every handler task; each ends with its request's id, Ok if it finished, Err if it
    //~ /// stopped when told to.
    //~ handlers: JoinSet<Result<u64, u64>>,
    //~ /// Set to true at the deadline: every handler still running stops.
    //~ cancel: watch::Sender<bool>,
    //~ end
    /// Requests accepted and not finished: what monitoring reads.
    in_flight: BTreeSet<u64>,
}

impl State {
    /// Takes the handlers that have finished off the books, so the set holds only running
    /// ones: a `JoinSet` keeps every finished task's output until someone joins it.
    //~ region
    fn reap(&mut self) {
        while let Some(ended) = self.handlers.try_join_next() {
            if let Ok(id) = ended {
                self.in_flight.remove(&id);
            }
        }
    }
    //~ alt: handles-that-tidy-up
    //~ fn reap(&mut self) {
    //~     let done = std::mem::take(&mut *lock(&self.done));
    //~     for id in done {
    //~         self.in_flight.remove(&id);
    //~     }
    //~     self.handlers.retain(|handler| !handler.is_finished());
    //~ }
    //~ alt: done-channel
    //~ fn reap(&mut self) {
    //~     if let Some(done) = self.done.1.as_mut() {
    //~         while let Ok(id) = done.try_recv() {
    //~             self.handlers.remove(&id);
    //~             self.in_flight.remove(&id);
    //~         }
    //~     }
    //~ }
    //~ alt: cooperative-cancel
    //~ fn reap(&mut self) {
    //~     while let Some(ended) = self.handlers.try_join_next() {
    //~         if let Ok(Ok(id)) = ended {
    //~             self.in_flight.remove(&id);
    //~         }
    //~     }
    //~ }
    //~ end
}

impl Server {
    pub fn new(sink: Sink) -> Server {
        Server {
            sink,
            state: Mutex::new(State {
                accepting: true,
                //~ region
                handlers: JoinSet::new(),
                //~ alt: handles-that-tidy-up
                //~ handlers: Vec::new(),
                //~ done: Arc::new(Mutex::new(Vec::new())),
                //~ alt: done-channel
                //~ handlers: BTreeMap::new(),
                //~ done: {
                //~     let (finished, done) = mpsc::unbounded_channel();
                //~     (finished, Some(done))
                //~ },
                //~ alt: cooperative-cancel
                //~ handlers: JoinSet::new(),
                //~ cancel: watch::channel(false).0,
                //~ end
                in_flight: BTreeSet::new(),
            }),
        }
    }

    /// The requests accepted and not finished yet, in id order.
    pub fn in_flight(&self) -> Vec<u64> {
        let mut state = lock(&self.state);
        //~ region
        state.reap();
        //~ wrong: spawn-without-reaping
        //~ end
        state.in_flight.iter().copied().collect()
    }

    /// Starts handling `request` in a task of its own; gives it back once shutdown has begun.
    pub fn accept(&self, request: Request) -> Result<(), Request> {
        let mut state = lock(&self.state);
        if !state.accepting {
            return Err(request);
        }
        //~ site: detached-handlers
        state.reap();
        state.in_flight.insert(request.id);
        // FIX: the task goes into the server's JoinSet, so shutdown can wait for it, stop it,
        // and say whether it finished.
        state.handlers.spawn(handle(self.sink.clone(), request));
        //~ broken:
        //~ state.in_flight.insert(request.id);
        //~ // A task per request: a slow one holds up no other.
        //~ tokio::spawn(handle(self.sink.clone(), request));
        //~ wrong: spawn-without-reaping
        //~ state.in_flight.insert(request.id);
        //~ // The server's JoinSet owns the task: shutdown can wait for it and stop it.
        //~ state.handlers.spawn(handle(self.sink.clone(), request));
        //~ wrong: reap-only-when-read
        //~ state.in_flight.insert(request.id);
        //~ // The server's JoinSet owns the task. No need to reap here: in_flight() reaps the
        //~ // finished handlers every time monitoring reads it.
        //~ state.handlers.spawn(handle(self.sink.clone(), request));
        //~ alt: handles-that-tidy-up
        //~ state.reap();
        //~ state.in_flight.insert(request.id);
        //~ let (sink, done) = (self.sink.clone(), state.done.clone());
        //~ state.handlers.push(tokio::spawn(async move {
        //~     let id = handle(sink, request).await;
        //~     lock(&done).push(id);
        //~ }));
        //~ alt: done-channel
        //~ state.reap();
        //~ state.in_flight.insert(request.id);
        //~ let (sink, finished) = (self.sink.clone(), state.done.0.clone());
        //~ let handler = tokio::spawn(async move {
        //~     let id = handle(sink, request).await;
        //~     let _ = finished.send(id);
        //~ });
        //~ state.handlers.insert(request.id, handler);
        //~ alt: cooperative-cancel
        //~ state.reap();
        //~ state.in_flight.insert(request.id);
        //~ let cancelled = state.cancel.subscribe();
        //~ state
        //~     .handlers
        //~     .spawn(handle_until_cancelled(self.sink.clone(), request, cancelled));
        //~ end
        Ok(())
    }

    /// Stops accepting, gives the requests in flight until [`DRAIN_DEADLINE_MS`] to finish,
    /// stops the rest, and returns once every handler has ended, naming the requests that
    /// did not finish.
    pub async fn shutdown(&self) -> Report {
        //~ site: join-before-stop
        // FIX: stop accepting first, in the same step as taking the handlers: a request that
        // comes from now on is refused, so no handler can start after this set was taken.
        let mut handlers = {
            let mut state = lock(&self.state);
            state.accepting = false;
            std::mem::take(&mut state.handlers)
        };
        //~ broken:
        //~ let mut handlers = std::mem::take(&mut lock(&self.state).handlers);
        //~ wrong: report-before-drain
        //~ let (mut handlers, unfinished) = {
        //~     let mut state = lock(&self.state);
        //~     state.accepting = false;
        //~     // Whatever is in flight now is what we will have to account for.
        //~     (std::mem::take(&mut state.handlers), state.in_flight.clone())
        //~ };
        //~ wrong: join-twice
        //~ let mut handlers = std::mem::take(&mut lock(&self.state).handlers);
        //~ alt: handles-that-tidy-up
        //~ let handlers = {
        //~     let mut state = lock(&self.state);
        //~     state.accepting = false;
        //~     std::mem::take(&mut state.handlers)
        //~ };
        //~ alt: done-channel
        //~ let (mut handlers, mut done) = {
        //~     let mut state = lock(&self.state);
        //~     state.accepting = false;
        //~     state.reap();
        //~     (std::mem::take(&mut state.handlers), state.done.1.take())
        //~ };
        //~ alt: cooperative-cancel
        //~ let (mut handlers, cancel) = {
        //~     let mut state = lock(&self.state);
        //~     state.accepting = false;
        //~     (std::mem::take(&mut state.handlers), state.cancel.clone())
        //~ };
        //~ end
        let deadline = Instant::now() + Duration::from_millis(DRAIN_DEADLINE_MS);
        //~ region
        while let Ok(Some(ended)) = timeout_at(deadline, handlers.join_next()).await {
            if let Ok(id) = ended {
                lock(&self.state).in_flight.remove(&id);
            }
        }
        //~ wrong: join-without-deadline
        //~ // Graceful means every request gets to finish.
        //~ while let Some(ended) = handlers.join_next().await {
        //~     if let Ok(id) = ended {
        //~         lock(&self.state).in_flight.remove(&id);
        //~     }
        //~ }
        //~ wrong: per-handler-timeout
        //~ // No handler gets more than the deadline.
        //~ while let Ok(Some(ended)) =
        //~     timeout(Duration::from_millis(DRAIN_DEADLINE_MS), handlers.join_next()).await
        //~ {
        //~     if let Ok(id) = ended {
        //~         lock(&self.state).in_flight.remove(&id);
        //~     }
        //~ }
        //~ wrong: abort-at-once
        //~ let _ = deadline;
        //~ wrong: report-before-drain
        //~ while let Ok(Some(ended)) = timeout_at(deadline, handlers.join_next()).await {
        //~     if let Ok(id) = ended {
        //~         lock(&self.state).in_flight.remove(&id);
        //~     }
        //~ }
        //~ alt: handles-that-tidy-up
        //~ // Each handler in turn, all against the one deadline: one that finishes while an
        //~ // earlier one is awaited has already said so, and monitoring sees it at once.
        //~ let mut late = Vec::new();
        //~ for mut handler in handlers {
        //~     if timeout_at(deadline, &mut handler).await.is_err() {
        //~         late.push(handler);
        //~     }
        //~ }
        //~ alt: done-channel
        //~ // Each handler says when it has finished; past the deadline, stop the rest and wait
        //~ // until each has stopped.
        //~ while !handlers.is_empty() {
        //~     let Some(done) = done.as_mut() else { break };
        //~     match timeout_at(deadline, done.recv()).await {
        //~         Ok(Some(id)) => {
        //~             handlers.remove(&id);
        //~             lock(&self.state).in_flight.remove(&id);
        //~         }
        //~         _ => break,
        //~     }
        //~ }
        //~ alt: cooperative-cancel
        //~ while let Ok(Some(ended)) = timeout_at(deadline, handlers.join_next()).await {
        //~     if let Ok(Ok(id)) = ended {
        //~         lock(&self.state).in_flight.remove(&id);
        //~     }
        //~ }
        //~ alt: select-with-sleep
        //~ let past_deadline = sleep_until(deadline);
        //~ tokio::pin!(past_deadline);
        //~ loop {
        //~     tokio::select! {
        //~         biased;
        //~         ended = handlers.join_next() => match ended {
        //~             Some(Ok(id)) => {
        //~                 lock(&self.state).in_flight.remove(&id);
        //~             }
        //~             Some(Err(_)) => {}
        //~             None => break,
        //~         },
        //~         () = &mut past_deadline => break,
        //~     }
        //~ }
        //~ end
        //~ site: cut-off-unreported
        // FIX: past the deadline, stop what still runs, wait until it has really stopped, and
        // keep it in the report: a handler that finished just before its abort counts as
        // done, every other one is named as unfinished.
        handlers.abort_all();
        while let Some(ended) = handlers.join_next().await {
            if let Ok(id) = ended {
                lock(&self.state).in_flight.remove(&id);
            }
        }
        let unfinished = std::mem::take(&mut lock(&self.state).in_flight);
        //~ broken:
        //~ // Past the deadline: stop whatever still runs.
        //~ handlers.shutdown().await;
        //~ let unfinished = BTreeSet::new();
        //~ wrong: detach-after-deadline
        //~ // Past the deadline: report what still runs, and let it finish in the background.
        //~ handlers.detach_all();
        //~ let unfinished = std::mem::take(&mut lock(&self.state).in_flight);
        //~ wrong: abort-without-join
        //~ // Past the deadline: stop what still runs, and report it.
        //~ handlers.abort_all();
        //~ let unfinished = std::mem::take(&mut lock(&self.state).in_flight);
        //~ wrong: report-before-drain
        //~ handlers.shutdown().await;
        //~ lock(&self.state).in_flight.clear();
        //~ alt: handles-that-tidy-up
        //~ for handler in &late {
        //~     handler.abort();
        //~ }
        //~ for handler in late {
        //~     let _ = handler.await;
        //~ }
        //~ let unfinished = {
        //~     let mut state = lock(&self.state);
        //~     state.reap();
        //~     std::mem::take(&mut state.in_flight)
        //~ };
        //~ alt: done-channel
        //~ for (id, handler) in handlers {
        //~     handler.abort();
        //~     // One that finished just before its abort still counts as done.
        //~     if handler.await.is_ok() {
        //~         lock(&self.state).in_flight.remove(&id);
        //~     }
        //~ }
        //~ let unfinished = std::mem::take(&mut lock(&self.state).in_flight);
        //~ alt: cooperative-cancel
        //~ // Tell what still runs to stop, and wait until it has: each one says how it ended.
        //~ let _ = cancel.send(true);
        //~ while let Some(ended) = handlers.join_next().await {
        //~     if let Ok(Ok(id)) = ended {
        //~         lock(&self.state).in_flight.remove(&id);
        //~     }
        //~ }
        //~ let unfinished = std::mem::take(&mut lock(&self.state).in_flight);
        //~ end
        //~ site: join-before-stop
        //~ broken:
        //~ lock(&self.state).accepting = false;
        //~ wrong: join-twice
        //~ // Requests accepted while we drained went into a new set: stop them too.
        //~ let mut late = {
        //~     let mut state = lock(&self.state);
        //~     state.accepting = false;
        //~     std::mem::take(&mut state.handlers)
        //~ };
        //~ late.abort_all();
        //~ while let Some(ended) = late.join_next().await {
        //~     if let Ok(id) = ended {
        //~         lock(&self.state).in_flight.remove(&id);
        //~     }
        //~ }
        //~ let unfinished: BTreeSet<u64> = unfinished
        //~     .into_iter()
        //~     .chain(std::mem::take(&mut lock(&self.state).in_flight))
        //~     .collect();
        //~ end
        Report {
            unfinished: unfinished.into_iter().collect(),
        }
    }
}

/// Handles one request: the sink does its work.
async fn handle(sink: Sink, request: Request) -> u64 {
    sink.process(request.id).await;
    request.id
}
//~ region
//~ alt: cooperative-cancel
//~
//~ /// Handles one request unless told to stop first: Ok(id) if it finished, Err(id) if not.
//~ async fn handle_until_cancelled(
//~     sink: Sink,
//~     request: Request,
//~     mut cancelled: watch::Receiver<bool>,
//~ ) -> Result<u64, u64> {
//~     tokio::select! {
//~         biased;
//~         () = sink.process(request.id) => Ok(request.id),
//~         _ = cancelled.wait_for(|cancelled| *cancelled) => Err(request.id),
//~     }
//~ }
//~ end

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
