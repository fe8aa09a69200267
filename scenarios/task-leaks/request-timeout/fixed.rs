//! A request/reply client with a timeout: each call hands its request to the backend in a
//! task of its own and waits for the answer for at most [`REPLY_TIMEOUT_MS`].
//!
//! The backend is slow now and then, and sometimes never answers at all. Callers are many
//! and concurrent, and a caller may give up on a call before the timeout (it has a deadline
//! of its own) by dropping the call's future. Monitoring reads [`Client::in_flight`].
//!
//! The promises: a call returns within [`REPLY_TIMEOUT_MS`], with the answer to *its*
//! request if the backend gave it in time and [`TimedOut`] otherwise; and once a call has
//! returned, or its caller has given up on it, nothing of it is left behind: no task still
//! working on it, no entry in [`Client::in_flight`].
//!
//! Where it comes from: Go's `finishReq` leak, the opening example of Tu et al.,
//! "Understanding Real-World Concurrency Bugs in Go" (ASPLOS 2019): a requester spawns a
//! goroutine to do the work, gives up after a timeout, and the goroutine blocks for ever
//! sending its answer on a channel that nobody will read again. The Go fix was a buffered
//! channel; in Rust the worker must also learn that nobody waits any more.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bughunt_kit::sink::Sink;
//~ site: shared-reply-channel
use tokio::sync::oneshot;
//~ broken:
//~ use tokio::sync::mpsc;
//~ wrong: drain-before-call
//~ use tokio::sync::mpsc;
//~ wrong: filter-by-id
//~ use tokio::sync::mpsc;
//~ wrong: mpsc-per-call
//~ use tokio::sync::mpsc;
//~ alt: no-task-at-all
//~ alt: watch-for-cancel
//~ use tokio::sync::{oneshot, watch};
//~ end
use tokio::time::timeout;

/// How long a call waits for its answer.
pub const REPLY_TIMEOUT_MS: u64 = 1_500;

/// A request to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
}

/// The backend's answer to the request `request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub request: u64,
}

/// The backend did not answer within [`REPLY_TIMEOUT_MS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

/// A client of the backend. Calls may be made concurrently from many tasks.
pub struct Client {
    backend: Sink,
    /// Requests whose call has neither returned nor been given up, for monitoring.
    in_flight: Arc<Mutex<BTreeSet<u64>>>,
    //~ site: shared-reply-channel
    //~ broken:
    //~ /// One reply channel for the whole client, rather than one per call.
    //~ replies: mpsc::Sender<Reply>,
    //~ inbox: tokio::sync::Mutex<mpsc::Receiver<Reply>>,
    //~ wrong: drain-before-call
    //~ /// One reply channel for the whole client, rather than one per call.
    //~ replies: mpsc::Sender<Reply>,
    //~ inbox: tokio::sync::Mutex<mpsc::Receiver<Reply>>,
    //~ wrong: filter-by-id
    //~ /// One reply channel for the whole client, rather than one per call.
    //~ replies: mpsc::Sender<Reply>,
    //~ inbox: tokio::sync::Mutex<mpsc::Receiver<Reply>>,
    //~ end
}

impl Client {
    pub fn new(backend: Sink) -> Client {
        //~ site: shared-reply-channel
        Client {
            backend,
            in_flight: Arc::default(),
        }
        //~ broken:
        //~ let (replies, inbox) = mpsc::channel(1);
        //~ Client {
        //~     backend,
        //~     in_flight: Arc::default(),
        //~     replies,
        //~     inbox: tokio::sync::Mutex::new(inbox),
        //~ }
        //~ wrong: drain-before-call
        //~ let (replies, inbox) = mpsc::channel(1);
        //~ Client {
        //~     backend,
        //~     in_flight: Arc::default(),
        //~     replies,
        //~     inbox: tokio::sync::Mutex::new(inbox),
        //~ }
        //~ wrong: filter-by-id
        //~ let (replies, inbox) = mpsc::channel(1);
        //~ Client {
        //~     backend,
        //~     in_flight: Arc::default(),
        //~     replies,
        //~     inbox: tokio::sync::Mutex::new(inbox),
        //~ }
        //~ end
    }

    /// The requests being called right now, in id order.
    pub fn in_flight(&self) -> Vec<u64> {
        lock(&self.in_flight).iter().copied().collect()
    }

    /// Asks the backend and waits for its answer, for at most [`REPLY_TIMEOUT_MS`].
    pub async fn call(&self, request: Request) -> Result<Reply, TimedOut> {
        //~ site: listed-until-answered
        // FIX: a guard takes the request off the list however the call ends: answered, timed
        // out, or dropped by its caller at the `.await` below.
        let _listed = Listed::new(&self.in_flight, request.id);
        //~ broken:
        //~ lock(&self.in_flight).insert(request.id);
        //~ wrong: stop-listing
        //~ // (No more bookkeeping: an entry that is never made can never be left behind.)
        //~ wrong: remove-on-both-paths
        //~ lock(&self.in_flight).insert(request.id);
        //~ let outcome: Result<Reply, TimedOut> = async {
        //~ end
        let backend = self.backend.clone();
        //~ site: shared-reply-channel
        let (mut reply_to, reply) = oneshot::channel();
        let worker = tokio::spawn(async move {
        //~ broken:
        //~ let reply_to = self.replies.clone();
        //~ let worker = tokio::spawn(async move {
        //~ wrong: drain-before-call
        //~ let reply_to = self.replies.clone();
        //~ let worker = tokio::spawn(async move {
        //~ wrong: filter-by-id
        //~ let reply_to = self.replies.clone();
        //~ let worker = tokio::spawn(async move {
        //~ wrong: mpsc-per-call
        //~ // As Go's fix: a buffered channel, so the worker's send never blocks.
        //~ let (reply_to, mut reply) = mpsc::channel(1);
        //~ let worker = tokio::spawn(async move {
        //~ alt: no-task-at-all
        //~ alt: watch-for-cancel
        //~ let (reply_to, reply) = oneshot::channel();
        //~ // Dropping `still_waiting` (when the call returns or is dropped) cancels the worker.
        //~ let (still_waiting, mut watching) = watch::channel(());
        //~ let worker = tokio::spawn(async move {
        //~ end
            //~ site: worker-ignores-caller
            // FIX: race the work against the caller leaving. Once the call has returned or
            // been dropped, its receiver is gone, `closed()` completes, and dropping the
            // backend's future stops the work: an answer nobody waits for is not worth an
            // hour of the backend, nor a task that never ends when the backend hangs.
            let answer = tokio::select! {
                () = reply_to.closed() => return,
                answer = answer(&backend, request) => answer,
            };
            //~ broken:
            //~ let answer = answer(&backend, request).await;
            //~ wrong: mpsc-per-call
            //~ let answer = answer(&backend, request).await;
            //~ wrong: abort-only-on-timeout
            //~ let answer = answer(&backend, request).await;
            //~ wrong: join-after-timeout
            //~ let answer = answer(&backend, request).await;
            //~ wrong: timeout-in-worker
            //~ // The worker keeps the time: past the timeout it gives up, and dropping
            //~ // `reply_to` tells the call so.
            //~ let answer = match timeout(
            //~     Duration::from_millis(REPLY_TIMEOUT_MS),
            //~     answer(&backend, request),
            //~ )
            //~ .await
            //~ {
            //~     Ok(answer) => answer,
            //~     Err(_) => return,
            //~ };
            //~ alt: no-task-at-all
            //~ let Ok(reply) = timeout(
            //~     Duration::from_millis(REPLY_TIMEOUT_MS),
            //~     answer(&backend, request),
            //~ )
            //~ .await
            //~ else {
            //~     return Err(TimedOut);
            //~ };
            //~ alt: abort-on-drop
            //~ let answer = answer(&backend, request).await;
            //~ alt: watch-for-cancel
            //~ let answer = tokio::select! {
            //~     _ = watching.changed() => return,
            //~     answer = answer(&backend, request) => answer,
            //~ };
            //~ end
            //~ site: shared-reply-channel
            let _ = reply_to.send(answer);
        });
        //~ broken:
        //~     let _ = reply_to.send(answer).await;
        //~ });
        //~ wrong: drain-before-call
        //~     let _ = reply_to.send(answer).await;
        //~ });
        //~ wrong: filter-by-id
        //~     let _ = reply_to.send(answer).await;
        //~ });
        //~ wrong: mpsc-per-call
        //~     let _ = reply_to.send(answer).await;
        //~ });
        //~ alt: no-task-at-all
        //~ alt: watch-for-cancel
        //~     let _ = reply_to.send(answer);
        //~ });
        //~ end
        //~ region
        // Not needed: the call waits on `reply`, not on the task.
        drop(worker);
        //~ alt: no-task-at-all
        //~ wrong: abort-only-on-timeout
        //~ wrong: join-after-timeout
        //~ let mut reply = reply;
        //~ alt: abort-on-drop
        //~ // The worker lives exactly as long as this call: dropping the guard, however the
        //~ // call ends, aborts it.
        //~ let _worker = AbortOnDrop(worker);
        //~ alt: watch-for-cancel
        //~ drop(worker);
        //~ end
        //~ site: shared-reply-channel
        let reply = timeout(Duration::from_millis(REPLY_TIMEOUT_MS), reply)
            .await
            .map_err(|_| TimedOut)?
            // The worker is gone without answering: only if the backend's future panicked.
            .map_err(|_| TimedOut)?;
        //~ broken:
        //~ let reply = timeout(Duration::from_millis(REPLY_TIMEOUT_MS), async {
        //~     self.inbox.lock().await.recv().await
        //~ })
        //~ .await
        //~ .map_err(|_| TimedOut)?
        //~ .ok_or(TimedOut)?;
        //~ wrong: drain-before-call
        //~ let reply = timeout(Duration::from_millis(REPLY_TIMEOUT_MS), async {
        //~     let mut inbox = self.inbox.lock().await;
        //~     // A late answer to an earlier call may be waiting: throw it away first.
        //~     while inbox.try_recv().is_ok() {}
        //~     inbox.recv().await
        //~ })
        //~ .await
        //~ .map_err(|_| TimedOut)?
        //~ .ok_or(TimedOut)?;
        //~ wrong: filter-by-id
        //~ // Answers to other calls come through here too: skip them until ours comes.
        //~ let reply = timeout(Duration::from_millis(REPLY_TIMEOUT_MS), async {
        //~     let mut inbox = self.inbox.lock().await;
        //~     loop {
        //~         match inbox.recv().await {
        //~             Some(reply) if reply.request == request.id => return Some(reply),
        //~             Some(_) => continue,
        //~             None => return None,
        //~         }
        //~     }
        //~ })
        //~ .await
        //~ .map_err(|_| TimedOut)?
        //~ .ok_or(TimedOut)?;
        //~ wrong: mpsc-per-call
        //~ let reply = timeout(Duration::from_millis(REPLY_TIMEOUT_MS), reply.recv())
        //~     .await
        //~     .map_err(|_| TimedOut)?
        //~     .ok_or(TimedOut)?;
        //~ wrong: abort-only-on-timeout
        //~ let reply = match timeout(Duration::from_millis(REPLY_TIMEOUT_MS), reply).await {
        //~     Ok(reply) => reply.map_err(|_| TimedOut)?,
        //~     Err(_) => {
        //~         // Nobody will read the answer: stop the worker.
        //~         worker.abort();
        //~         return Err(TimedOut);
        //~     }
        //~ };
        //~ wrong: join-after-timeout
        //~ let reply = match timeout(Duration::from_millis(REPLY_TIMEOUT_MS), &mut reply).await {
        //~     Ok(reply) => reply.map_err(|_| TimedOut)?,
        //~     Err(_) => {
        //~         // Don't leave the worker behind: wait until it is done.
        //~         let _ = worker.await;
        //~         return Err(TimedOut);
        //~     }
        //~ };
        //~ wrong: timeout-in-worker
        //~ // The worker keeps the time; it drops `reply_to` when it gives up.
        //~ let reply = reply.await.map_err(|_| TimedOut)?;
        //~ alt: no-task-at-all
        //~ alt: watch-for-cancel
        //~ let reply = timeout(Duration::from_millis(REPLY_TIMEOUT_MS), reply)
        //~     .await
        //~     .map_err(|_| TimedOut)?
        //~     .map_err(|_| TimedOut)?;
        //~ drop(still_waiting);
        //~ end
        //~ site: listed-until-answered
        Ok(reply)
        //~ broken:
        //~ lock(&self.in_flight).remove(&request.id);
        //~ Ok(reply)
        //~ wrong: remove-on-both-paths
        //~ Ok(reply)
        //~ }
        //~ .await;
        //~ // Answered or timed out, the call is over: take it off the list.
        //~ lock(&self.in_flight).remove(&request.id);
        //~ outcome
        //~ end
    }
}

//~ region
//~ alt: abort-on-drop
//~ /// Aborts the worker when dropped.
//~ struct AbortOnDrop(tokio::task::JoinHandle<()>);
//~
//~ impl Drop for AbortOnDrop {
//~     fn drop(&mut self) {
//~         self.0.abort();
//~     }
//~ }
//~ end

/// The backend's work for `request`.
async fn answer(backend: &Sink, request: Request) -> Reply {
    backend.process(request.id).await;
    Reply {
        request: request.id,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

//~ site: listed-until-answered
/// Lists a request in flight for as long as it lives.
struct Listed {
    in_flight: Arc<Mutex<BTreeSet<u64>>>,
    id: u64,
}

impl Listed {
    fn new(in_flight: &Arc<Mutex<BTreeSet<u64>>>, id: u64) -> Listed {
        lock(in_flight).insert(id);
        Listed {
            in_flight: Arc::clone(in_flight),
            id,
        }
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.id);
    }
}
//~ broken:
//~ wrong: remove-on-both-paths
//~ end
