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
    //~ site: batch-inside-select
    // FIX: the batch being built lives here, in the batcher's own state, for as long as it
    // takes to fill, where the timer branch can reach it. No future that owns received
    // messages is raced in the select!: losing the race would drop it, messages and all.
    //~ broken:
    //~ end
    let mut pending = Vec::with_capacity(BATCH_SIZE);
    //~ site: timer-recreated-each-loop
    // FIX: one interval for the life of the batcher, made before the loop. Its ticks come
    // every `flush_interval` from the start, however many messages arrive in between.
    let mut flush = interval_at(Instant::now() + flush_interval, flush_interval);
    //~ broken:
    //~ end
    loop {
        //~ site: timer-recreated-each-loop
        //~ broken:
        //~ let mut flush = interval_at(Instant::now() + flush_interval, flush_interval);
        //~ end
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
            //~ broken:
            //~ filled = fill_batch(&mut messages, std::mem::take(&mut pending)) => match filled {
            //~     Some(batch) => {
            //~         if batches.send(batch).await.is_err() {
            //~             return;
            //~         }
            //~     }
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
                //~ end
            },
            _ = flush.tick() => {
                if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
                    return;
                }
            }
        }
    }
}
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
//~ end
