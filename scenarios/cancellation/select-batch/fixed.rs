//! A batcher: groups a stream of message ids into batches for a downstream that prefers a few
//! large writes to many small ones (a multi-row insert, one call to a bulk API).
//!
//! The promises, in the spirit of a Kafka producer's `batch.size` and `linger.ms`:
//!
//! - every message that goes in comes out, once, in the order it went in;
//! - a batch goes out as soon as it holds [`BATCH_SIZE`] messages, and never holds more;
//! - a quiet stream does not hold messages back: no message waits longer than
//!   `flush_interval` before it goes out, whole batch or not, while the downstream keeps up;
//! - a slow downstream slows the batcher down: a batch that finds `batches` full waits for
//!   room, and is never dropped;
//! - when the producer closes the stream, the batcher sends what is left and ends.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
//~ region
use tokio::time::{interval_at, Instant};
//~ wrong: sleep-per-loop
//~ wrong: timeout-per-recv
//~ wrong: ticker-task-leak
//~ alt: interval-and-recv-many
//~ use tokio::time::{interval, MissedTickBehavior};
//~ alt: sleep-reset-after-flush
//~ use tokio::time::{sleep, Instant};
//~ alt: linger-deadline-per-batch
//~ use tokio::time::{timeout_at, Instant};
//~ wrong: deadline-reset-per-message
//~ use tokio::time::{sleep, Instant};
//~ end

/// The most messages in one batch.
pub const BATCH_SIZE: usize = 4;

/// A running batcher.
pub struct Batcher {
    /// The batcher task. It owns the receiving end of the messages and the sending end of
    /// the batches; when it ends, the batches channel closes.
    task: JoinHandle<()>,
}

impl Batcher {
    /// Starts a task that reads `messages` and sends them to `batches`, grouped.
    pub fn spawn(
        messages: mpsc::Receiver<u64>,
        batches: mpsc::Sender<Vec<u64>>,
        flush_interval: Duration,
    ) -> Batcher {
        let task = tokio::spawn(run(messages, batches, flush_interval));
        Batcher { task }
    }

    /// Waits until the batcher has ended: the producer closed the stream and the last batch
    /// went out (or the downstream went away).
    pub async fn join(self) {
        if let Err(error) = self.task.await {
            if error.is_panic() {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }
}

async fn run(
    mut messages: mpsc::Receiver<u64>,
    batches: mpsc::Sender<Vec<u64>>,
    flush_interval: Duration,
) {
    //~ site: batch-inside-select
    // FIX: the batch being built lives here, in the batcher's own state, for as long as it
    // takes to fill, where the timer branch can reach it. No future that owns received
    // messages is raced in the select!: losing the race would drop it, messages and all.
    let mut pending = Vec::with_capacity(BATCH_SIZE);
    //~ broken:
    //~ let mut pending = Vec::with_capacity(BATCH_SIZE);
    //~ wrong: resume-the-future
    //~ let mut pending = Vec::with_capacity(BATCH_SIZE);
    //~ // One fill future lives across the whole loop, so losing a round to the timer no
    //~ // longer drops it: the next round resumes it where it was.
    //~ let fill = fill_owned(messages, Vec::with_capacity(BATCH_SIZE));
    //~ tokio::pin!(fill);
    //~ alt: interval-and-recv-many
    //~ let mut pending = Vec::with_capacity(BATCH_SIZE);
    //~ // The first tick of an interval is immediate: skip it, so ticks come every
    //~ // `flush_interval` from the start. A tick missed while a send waits for the downstream
    //~ // is taken late, and the next one is a whole interval after it.
    //~ let mut flush = interval(flush_interval);
    //~ flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    //~ flush.tick().await;
    //~ loop {
    //~     let room = BATCH_SIZE - pending.len();
    //~     tokio::select! {
    //~         // `recv_many` is cancel-safe, and it puts what it takes straight into `pending`,
    //~         // which outlives every select!.
    //~         taken = messages.recv_many(&mut pending, room) => {
    //~             if taken == 0 {
    //~                 break;
    //~             }
    //~             if pending.len() == BATCH_SIZE
    //~                 && batches.send(std::mem::take(&mut pending)).await.is_err()
    //~             {
    //~                 return;
    //~             }
    //~         }
    //~         _ = flush.tick() => {
    //~             if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
    //~                 return;
    //~             }
    //~         }
    //~     }
    //~ }
    //~ if !pending.is_empty() {
    //~     let _ = batches.send(pending).await;
    //~ }
    //~ alt: sleep-reset-after-flush
    //~ let mut pending = Vec::with_capacity(BATCH_SIZE);
    //~ // One timer for the life of the batcher. It is moved forward after every flush, and only
    //~ // then: a message that arrives after a flush waits at most until the next deadline.
    //~ let flush = sleep(flush_interval);
    //~ tokio::pin!(flush);
    //~ loop {
    //~     let flush_now = tokio::select! {
    //~         received = messages.recv() => match received {
    //~             Some(message) => {
    //~                 pending.push(message);
    //~                 pending.len() == BATCH_SIZE
    //~             }
    //~             None => break,
    //~         },
    //~         () = &mut flush => true,
    //~     };
    //~     if flush_now {
    //~         if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
    //~             return;
    //~         }
    //~         flush.as_mut().reset(Instant::now() + flush_interval);
    //~     }
    //~ }
    //~ if !pending.is_empty() {
    //~     let _ = batches.send(pending).await;
    //~ }
    //~ alt: linger-deadline-per-batch
    //~ // No select! at all: a batch's deadline is set once, by its first message, and every
    //~ // later receive for that batch is bounded by it (Kafka's linger.ms).
    //~ loop {
    //~     let Some(first) = messages.recv().await else {
    //~         return;
    //~     };
    //~     let deadline = Instant::now() + flush_interval;
    //~     let mut batch = Vec::with_capacity(BATCH_SIZE);
    //~     batch.push(first);
    //~     let mut closed = false;
    //~     while batch.len() < BATCH_SIZE {
    //~         match timeout_at(deadline, messages.recv()).await {
    //~             Ok(Some(message)) => batch.push(message),
    //~             Ok(None) => {
    //~                 closed = true;
    //~                 break;
    //~             }
    //~             Err(_) => break,
    //~         }
    //~     }
    //~     if batches.send(batch).await.is_err() || closed {
    //~         return;
    //~     }
    //~ }
    //~ wrong: deadline-reset-per-message
    //~ let mut pending = Vec::with_capacity(BATCH_SIZE);
    //~ let flush = sleep(flush_interval);
    //~ tokio::pin!(flush);
    //~ loop {
    //~     let flush_now = tokio::select! {
    //~         received = messages.recv() => match received {
    //~             Some(message) => {
    //~                 pending.push(message);
    //~                 // A message just came: give the batch a full interval to fill up.
    //~                 flush.as_mut().reset(Instant::now() + flush_interval);
    //~                 pending.len() == BATCH_SIZE
    //~             }
    //~             None => break,
    //~         },
    //~         () = &mut flush => true,
    //~     };
    //~     if flush_now {
    //~         if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
    //~             return;
    //~         }
    //~         flush.as_mut().reset(Instant::now() + flush_interval);
    //~     }
    //~ }
    //~ if !pending.is_empty() {
    //~     let _ = batches.send(pending).await;
    //~ }
    //~ wrong: timeout-per-recv
    //~ let mut pending = Vec::with_capacity(BATCH_SIZE);
    //~ loop {
    //~     // No select! to get wrong: wait for the next message, a flush interval at most.
    //~     match tokio::time::timeout(flush_interval, messages.recv()).await {
    //~         Ok(Some(message)) => {
    //~             pending.push(message);
    //~             if pending.len() == BATCH_SIZE
    //~                 && batches.send(std::mem::take(&mut pending)).await.is_err()
    //~             {
    //~                 return;
    //~             }
    //~         }
    //~         Ok(None) => break,
    //~         Err(_) => {
    //~             if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
    //~                 return;
    //~             }
    //~         }
    //~     }
    //~ }
    //~ if !pending.is_empty() {
    //~     let _ = batches.send(pending).await;
    //~ }
    //~ wrong: ticker-task-leak
    //~ let mut pending = Vec::with_capacity(BATCH_SIZE);
    //~ // A ticker of its own, so the batcher's loop stays a plain select! over two channels.
    //~ let (tick, mut ticks) = mpsc::channel::<()>(1);
    //~ tokio::spawn(async move {
    //~     loop {
    //~         tokio::time::sleep(flush_interval).await;
    //~         let _ = tick.send(()).await;
    //~     }
    //~ });
    //~ loop {
    //~     tokio::select! {
    //~         received = messages.recv() => match received {
    //~             Some(message) => {
    //~                 pending.push(message);
    //~                 if pending.len() == BATCH_SIZE
    //~                     && batches.send(std::mem::take(&mut pending)).await.is_err()
    //~                 {
    //~                     return;
    //~                 }
    //~             }
    //~             None => {
    //~                 if !pending.is_empty() {
    //~                     let _ = batches.send(std::mem::take(&mut pending)).await;
    //~                 }
    //~                 return;
    //~             }
    //~         },
    //~         Some(()) = ticks.recv() => {
    //~             if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
    //~                 return;
    //~             }
    //~         }
    //~     }
    //~ }
    //~ end
    //~ site: timer-recreated-each-loop
    // FIX: one interval for the life of the batcher, made before the loop. Its ticks come
    // every `flush_interval` from the start, however many messages arrive in between.
    let mut flush = interval_at(Instant::now() + flush_interval, flush_interval);
    loop {
    //~ broken:
    //~ loop {
    //~     let mut flush = interval_at(Instant::now() + flush_interval, flush_interval);
    //~ wrong: sleep-per-loop
    //~ loop {
    //~ alt: interval-and-recv-many
    //~ alt: sleep-reset-after-flush
    //~ alt: linger-deadline-per-batch
    //~ wrong: deadline-reset-per-message
    //~ wrong: timeout-per-recv
    //~ wrong: ticker-task-leak
    //~ end
        //~ site: batch-inside-select
        tokio::select! {
            // FIX: the only await in this branch is `recv()`, which is cancel-safe: when the
            // timer wins, no message has left the channel. A received message goes into
            // `pending` in the handler, and select! never cancels a handler.
            received = messages.recv() => match received {
                Some(message) => {
                    pending.push(message);
                    if pending.len() == BATCH_SIZE
                        && batches.send(std::mem::take(&mut pending)).await.is_err()
                    {
                        return;
                    }
                }
        //~ broken:
        //~ tokio::select! {
        //~     filled = fill_batch(&mut messages, std::mem::take(&mut pending)) => match filled {
        //~         Some(batch) => {
        //~             if batches.send(batch).await.is_err() {
        //~                 return;
        //~             }
        //~         }
        //~ wrong: biased-timer-first
        //~ // The flush must never lose to a stream of messages, so look at the timer first.
        //~ tokio::select! {
        //~     biased;
        //~     _ = flush.tick() => {
        //~         if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
        //~             return;
        //~         }
        //~     }
        //~     filled = fill_batch(&mut messages, std::mem::take(&mut pending)) => match filled {
        //~         Some(batch) => {
        //~             if batches.send(batch).await.is_err() {
        //~                 return;
        //~             }
        //~         }
        //~ wrong: recv-many-in-branch
        //~ tokio::select! {
        //~     // `recv_many` is cancel-safe, so the branch is too.
        //~     filled = receive_many(&mut messages, std::mem::take(&mut pending)) => match filled {
        //~         Some(batch) => {
        //~             if batches.send(batch).await.is_err() {
        //~                 return;
        //~             }
        //~         }
        //~ wrong: some-pattern-never-ends
        //~ tokio::select! {
        //~     Some(message) = messages.recv() => {
        //~         pending.push(message);
        //~         if pending.len() == BATCH_SIZE
        //~             && batches.send(std::mem::take(&mut pending)).await.is_err()
        //~         {
        //~             return;
        //~         }
        //~     }
        //~ wrong: resume-the-future
        //~ tokio::select! {
        //~     (returned, filled) = &mut fill => {
        //~         let stream_closed = filled.len() < BATCH_SIZE;
        //~         if !filled.is_empty() && batches.send(filled).await.is_err() {
        //~             return;
        //~         }
        //~         if stream_closed {
        //~             return;
        //~         }
        //~         fill.set(fill_owned(returned, std::mem::take(&mut pending)));
        //~     }
        //~ alt: interval-and-recv-many
        //~ alt: sleep-reset-after-flush
        //~ alt: linger-deadline-per-batch
        //~ wrong: deadline-reset-per-message
        //~ wrong: timeout-per-recv
        //~ wrong: ticker-task-leak
        //~ wrong: flush-only-on-tick
        //~ tokio::select! {
        //~     received = messages.recv() => match received {
        //~         // One place sends, the tick, so batches come out on a steady beat.
        //~         Some(message) => pending.push(message),
        //~ wrong: try-send-drops-when-full
        //~ tokio::select! {
        //~     received = messages.recv() => match received {
        //~         Some(message) => {
        //~             pending.push(message);
        //~             if pending.len() == BATCH_SIZE
        //~                 && !hand_over(&batches, std::mem::take(&mut pending))
        //~             {
        //~                 return;
        //~             }
        //~         }
        //~ end
                //~ site: rest-dropped-on-close
                // FIX: `None` means the producer closed the stream and nothing more will come.
                // A partial batch may still be waiting: send it, then end.
                None => {
                    if !pending.is_empty() {
                        let _ = batches.send(std::mem::take(&mut pending)).await;
                    }
                    return;
                }
                //~ broken:
                //~ None => return,
                //~ wrong: biased-timer-first
                //~ None => return,
                //~ wrong: recv-many-in-branch
                //~ None => return,
                //~ wrong: some-pattern-never-ends
                //~ wrong: resume-the-future
                //~ alt: interval-and-recv-many
                //~ alt: sleep-reset-after-flush
                //~ alt: linger-deadline-per-batch
                //~ wrong: deadline-reset-per-message
                //~ wrong: timeout-per-recv
                //~ wrong: ticker-task-leak
                //~ wrong: try-send-drops-when-full
                //~ None => {
                //~     if !pending.is_empty() {
                //~         let _ = hand_over(&batches, std::mem::take(&mut pending));
                //~     }
                //~     return;
                //~ }
                //~ end
            //~ region
            },
            _ = flush.tick() => {
                if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
                    return;
                }
            }
        }
    }
}
            //~ wrong: biased-timer-first
            //~     },
            //~ }
            //~ }
            //~ }
            //~ wrong: sleep-per-loop
            //~ },
            //~ _ = tokio::time::sleep(flush_interval) => {
            //~     if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
            //~         return;
            //~     }
            //~ }
            //~ }
            //~ }
            //~ }
            //~ wrong: some-pattern-never-ends
            //~ _ = flush.tick() => {
            //~     if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
            //~         return;
            //~     }
            //~ }
            //~ }
            //~ }
            //~ }
            //~ wrong: resume-the-future
            //~ _ = flush.tick() => {
            //~     if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
            //~         return;
            //~     }
            //~ }
            //~ }
            //~ }
            //~ }
            //~
            //~ /// Receives into `batch` until it holds `BATCH_SIZE` messages or the stream closes, and
            //~ /// hands both back.
            //~ async fn fill_owned(
            //~     mut messages: mpsc::Receiver<u64>,
            //~     mut batch: Vec<u64>,
            //~ ) -> (mpsc::Receiver<u64>, Vec<u64>) {
            //~     while batch.len() < BATCH_SIZE {
            //~         match messages.recv().await {
            //~             Some(message) => batch.push(message),
            //~             None => break,
            //~         }
            //~     }
            //~     (messages, batch)
            //~ }
            //~ alt: interval-and-recv-many
            //~ }
            //~ alt: sleep-reset-after-flush
            //~ }
            //~ alt: linger-deadline-per-batch
            //~ }
            //~ wrong: deadline-reset-per-message
            //~ }
            //~ wrong: timeout-per-recv
            //~ }
            //~ wrong: ticker-task-leak
            //~ }
            //~ wrong: flush-only-on-tick
            //~ },
            //~ _ = flush.tick() => {
            //~     while !pending.is_empty() {
            //~         let rest = pending.split_off(pending.len().min(BATCH_SIZE));
            //~         let batch = std::mem::replace(&mut pending, rest);
            //~         if batches.send(batch).await.is_err() {
            //~             return;
            //~         }
            //~     }
            //~ }
            //~ }
            //~ }
            //~ }
            //~ wrong: try-send-drops-when-full
            //~ },
            //~ _ = flush.tick() => {
            //~     if !pending.is_empty() && !hand_over(&batches, std::mem::take(&mut pending)) {
            //~         return;
            //~     }
            //~ }
            //~ }
            //~ }
            //~ }
            //~
            //~ /// Hands a batch to the downstream without waiting: a batcher stuck in `send().await`
            //~ /// behind a slow downstream would miss its ticks. False once the downstream is gone.
            //~ fn hand_over(batches: &mpsc::Sender<Vec<u64>>, batch: Vec<u64>) -> bool {
            //~     match batches.try_send(batch) {
            //~         Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
            //~         Err(mpsc::error::TrySendError::Closed(_)) => false,
            //~     }
            //~ }
            //~ end
//~ site: batch-inside-select
//~ broken:
//~
//~ /// Receives into `batch` until it holds `BATCH_SIZE` messages, and hands it back. Once the
//~ /// stream has closed, hands back what it has, or `None` if that is nothing.
//~ async fn fill_batch(messages: &mut mpsc::Receiver<u64>, mut batch: Vec<u64>) -> Option<Vec<u64>> {
//~     while batch.len() < BATCH_SIZE {
//~         match messages.recv().await {
//~             Some(message) => batch.push(message),
//~             None if batch.is_empty() => return None,
//~             None => break,
//~         }
//~     }
//~     Some(batch)
//~ }
//~ wrong: biased-timer-first
//~
//~ /// Receives into `batch` until it holds `BATCH_SIZE` messages, and hands it back. Once the
//~ /// stream has closed, hands back what it has, or `None` if that is nothing.
//~ async fn fill_batch(messages: &mut mpsc::Receiver<u64>, mut batch: Vec<u64>) -> Option<Vec<u64>> {
//~     while batch.len() < BATCH_SIZE {
//~         match messages.recv().await {
//~             Some(message) => batch.push(message),
//~             None if batch.is_empty() => return None,
//~             None => break,
//~         }
//~     }
//~     Some(batch)
//~ }
//~ wrong: recv-many-in-branch
//~
//~ /// Takes up to `BATCH_SIZE` messages into `batch`, several at a time, and hands it back.
//~ /// Once the stream has closed, hands back what it has, or `None` if that is nothing.
//~ async fn receive_many(messages: &mut mpsc::Receiver<u64>, mut batch: Vec<u64>) -> Option<Vec<u64>> {
//~     while batch.len() < BATCH_SIZE {
//~         let room = BATCH_SIZE - batch.len();
//~         if messages.recv_many(&mut batch, room).await == 0 {
//~             break;
//~         }
//~     }
//~     if batch.is_empty() {
//~         None
//~     } else {
//~         Some(batch)
//~     }
//~ }
//~ end
