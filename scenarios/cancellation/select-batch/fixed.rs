//! A batcher: groups a stream of message ids into batches for a downstream that prefers a few
//! large writes to many small ones (a multi-row insert, one call to a bulk API).
//!
//! The promises, in the spirit of a Kafka producer's `batch.size` and `linger.ms`:
//!
//! - every message that goes in comes out, once, in the order it went in;
//! - a batch goes out as soon as it holds [`BATCH_SIZE`] messages;
//! - a quiet stream does not hold messages back: every `flush_interval` the batcher sends
//!   whatever it has collected so far, so no message waits longer than that;
//! - when the producer closes the stream, the batcher sends what is left and ends.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{interval_at, Instant};

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
    let mut flush = interval_at(Instant::now() + flush_interval, flush_interval);
    //~ site: batch-inside-select
    // FIX: the batch being built lives here, in the batcher's own state, for as long as it
    // takes to fill. Before, `mem::take` moved it into the `fill_batch` future, and when the
    // timer won the select!, that future was dropped with every message it had received.
    //~ broken:
    //~ end
    let mut pending = Vec::with_capacity(BATCH_SIZE);
    loop {
        tokio::select! {
            //~ site: batch-inside-select
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
                // FIX: the stream closed: what `fill_batch` used to return as a short batch is
                // in `pending` now, so send it before ending.
                None => {
                    if !pending.is_empty() {
                        let _ = batches.send(std::mem::take(&mut pending)).await;
                    }
            //~ broken:
            //~ filled = fill_batch(&mut messages, std::mem::take(&mut pending)) => {
            //~     let stream_closed = filled.len() < BATCH_SIZE;
            //~     if !filled.is_empty() && batches.send(filled).await.is_err() {
            //~ end
                    return;
                }
            //~ site: batch-inside-select
            },
            // FIX: `pending` really holds the partial batch now, so the timer has something
            // to flush. The interval is created once, outside the loop: a timer made afresh
            // each time round would restart with every message and never fire on a steady
            // trickle.
            //~ broken:
            //~     if stream_closed {
            //~         return;
            //~     }
            //~ }
            //~ end
            _ = flush.tick() => {
                if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
                    return;
                }
            }
        }
    }
}

//~ site: batch-inside-select
// FIX: `fill_batch` is gone. A future that owns the messages it has received cannot be
// raced in a select!: losing the race drops it, and the messages with it.
//~ broken:
//~ /// Receives into `batch` until it holds `BATCH_SIZE` messages or the stream closes, and
//~ /// hands it back.
//~ async fn fill_batch(messages: &mut mpsc::Receiver<u64>, mut batch: Vec<u64>) -> Vec<u64> {
//~     while batch.len() < BATCH_SIZE {
//~         match messages.recv().await {
//~             Some(message) => batch.push(message),
//~             None => break,
//~         }
//~     }
//~     batch
//~ }
//~ end
