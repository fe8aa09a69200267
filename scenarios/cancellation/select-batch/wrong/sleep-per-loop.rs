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
    let mut pending = Vec::with_capacity(BATCH_SIZE);
    loop {
        tokio::select! {
            received = messages.recv() => match received {
                Some(message) => {
                    pending.push(message);
                    if pending.len() == BATCH_SIZE
                        && batches.send(std::mem::take(&mut pending)).await.is_err()
                    {
                        return;
                    }
                }
                None => {
                    if !pending.is_empty() {
                        let _ = batches.send(std::mem::take(&mut pending)).await;
                    }
                    return;
                }
            },
            _ = tokio::time::sleep(flush_interval) => {
                if !pending.is_empty() && batches.send(std::mem::take(&mut pending)).await.is_err() {
                    return;
                }
            }
        }
    }
}
