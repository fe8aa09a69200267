//! A consumer loop: reads message ids from an input channel, gathers them into batches and
//! writes each batch downstream. One `tokio::select!` multiplexes three things: the input, a
//! periodic flush, and a shutdown signal.
//!
//! The promises:
//!
//! - every message it reads goes downstream, once, in the order it came; a message it has
//!   not read yet stays in the input channel;
//! - a batch holds at most [`BATCH_MAX`] messages and goes out as soon as it is full;
//! - no message waits in a batch longer than [`FLUSH_EVERY_MS`], however the traffic comes
//!   (a steady trickle included), while the downstream keeps up;
//! - once shutdown is signalled, the loop writes what it holds and returns promptly, even
//!   while the input keeps flooding in: what it has not read stays in the channel;
//! - once the producer closes the input, the loop writes what it holds and returns.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
//~ site: timer-recreated-each-loop
use tokio::time::{interval_at, Instant};
//~ broken:
//~ use tokio::time::sleep;
//~ wrong: deadline-reset-per-message
//~ use tokio::time::Instant;
//~ alt: sleep-reset-after-flush
//~ use tokio::time::Instant;
//~ alt: deadline-per-batch
//~ use tokio::time::Instant;
//~ alt: interval-delay-recv-many
//~ use tokio::time::{interval, MissedTickBehavior};
//~ end

/// The most messages in one batch.
pub const BATCH_MAX: usize = 8;

/// The longest a message may wait in a batch before it is written.
pub const FLUSH_EVERY_MS: u64 = 100;

/// Runs the consumer loop until shutdown is signalled (or its sender is dropped), the input
/// is closed, or the downstream is gone. It borrows the input, so whatever it did not read
/// is still there for whoever reads next.
pub async fn consume(
    input: &mut mpsc::Receiver<u64>,
    mut shutdown: oneshot::Receiver<()>,
    out: mpsc::Sender<Vec<u64>>,
) {
    let flush_every = Duration::from_millis(FLUSH_EVERY_MS);
    let mut batch: Vec<u64> = Vec::with_capacity(BATCH_MAX);
    //~ site: timer-recreated-each-loop
    // FIX: one timer for the whole loop, made before it. Its ticks keep one beat, every
    // `flush_every` from the start, however many messages arrive in between.
    let mut flush = interval_at(Instant::now() + flush_every, flush_every);
    //~ broken:
    //~ wrong: deadline-reset-per-message
    //~ // One sleep for the whole loop, pinned, so select! polls the same one on every turn.
    //~ let flush = tokio::time::sleep(flush_every);
    //~ tokio::pin!(flush);
    //~ alt: sleep-reset-after-flush
    //~ // One sleep, pinned, moved on by a whole interval after every write and only then.
    //~ let flush = tokio::time::sleep(flush_every);
    //~ tokio::pin!(flush);
    //~ alt: deadline-per-batch
    //~ // No periodic timer: each batch gets a deadline when its first message arrives.
    //~ let mut deadline: Option<Instant> = None;
    //~ alt: interval-delay-recv-many
    //~ // A periodic timer made once. After a late tick (a slow write) the beat starts again
    //~ // from then, instead of firing the missed ticks back to back.
    //~ let mut flush = interval(flush_every);
    //~ flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    //~ // An interval's first tick is immediate: take it here, not as a flush.
    //~ flush.tick().await;
    //~ end
    loop {
        //~ region
        //~ wrong: yield-each-turn
        //~ // Let every other branch have its turn before the input gets the next one.
        //~ tokio::task::yield_now().await;
        //~ alt: interval-delay-recv-many
        //~ // Room left in the batch: never 0 here, as a full batch is written at once.
        //~ let room = BATCH_MAX - batch.len();
        //~ end
        //~ site: biased-input-first
        // FIX: no `biased;`. select! starts at a random branch on every turn, so a flooded
        // input cannot keep the shutdown branch from being chosen.
        tokio::select! {
        //~ broken:
        //~ tokio::select! {
        //~     // The input is the busiest branch, so look at it first.
        //~     biased;
        //~ wrong: yield-each-turn
        //~ tokio::select! {
        //~     biased;
        //~ wrong: biased-timer-first
        //~ tokio::select! {
        //~     // The flush must never wait behind the input: look at the timer first.
        //~     biased;
        //~     _ = flush.tick() => {
        //~         if !write(&out, &mut batch).await {
        //~             return;
        //~         }
        //~     }
        //~ wrong: shutdown-first-forgets-batch
        //~ tokio::select! {
        //~     // Shutdown first, so a busy input can never hide it.
        //~     biased;
        //~     _ = &mut shutdown => return,
        //~ alt: biased-shutdown-first
        //~ tokio::select! {
        //~     // Shutdown first, then the flush, then the input: nothing busy can hide them.
        //~     biased;
        //~     _ = &mut shutdown => {
        //~         let _ = write(&out, &mut batch).await;
        //~         return;
        //~     }
        //~     _ = flush.tick() => {
        //~         if !write(&out, &mut batch).await {
        //~             return;
        //~         }
        //~     }
        //~ end
            //~ site: closed-input-spins
            received = input.recv() => match received {
                Some(message) => {
                    batch.push(message);
                    if batch.len() == BATCH_MAX && !write(&out, &mut batch).await {
                        return;
                    }
                }
                // FIX: `None` means the producer closed the input and nothing more will
                // come, and `recv()` says `None` again, at once, on every later turn. Write
                // what is left and return instead of going round again.
                None => {
                    let _ = write(&out, &mut batch).await;
                    return;
                }
            },
            //~ broken:
            //~ received = input.recv() => {
            //~     if let Some(message) = received {
            //~         batch.push(message);
            //~         if batch.len() == BATCH_MAX && !write(&out, &mut batch).await {
            //~             return;
            //~         }
            //~     }
            //~ }
            //~ wrong: some-pattern-with-else
            //~ // A closed input disables this branch instead of waking the loop for nothing.
            //~ Some(message) = input.recv() => {
            //~     batch.push(message);
            //~     if batch.len() == BATCH_MAX && !write(&out, &mut batch).await {
            //~         return;
            //~     }
            //~ }
            //~ wrong: close-returns-without-write
            //~ received = input.recv() => match received {
            //~     Some(message) => {
            //~         batch.push(message);
            //~         if batch.len() == BATCH_MAX && !write(&out, &mut batch).await {
            //~             return;
            //~         }
            //~     }
            //~     // The input is closed: nothing more to do.
            //~     None => return,
            //~ },
            //~ wrong: deadline-reset-per-message
            //~ received = input.recv() => match received {
            //~     Some(message) => {
            //~         batch.push(message);
            //~         // A message just came: give the batch a whole interval to fill up.
            //~         flush.as_mut().reset(Instant::now() + flush_every);
            //~         if batch.len() == BATCH_MAX && !write(&out, &mut batch).await {
            //~             return;
            //~         }
            //~     }
            //~     None => {
            //~         let _ = write(&out, &mut batch).await;
            //~         return;
            //~     }
            //~ },
            //~ alt: sleep-reset-after-flush
            //~ received = input.recv() => match received {
            //~     Some(message) => {
            //~         batch.push(message);
            //~         if batch.len() == BATCH_MAX {
            //~             if !write(&out, &mut batch).await {
            //~                 return;
            //~             }
            //~             flush.as_mut().reset(Instant::now() + flush_every);
            //~         }
            //~     }
            //~     None => {
            //~         let _ = write(&out, &mut batch).await;
            //~         return;
            //~     }
            //~ },
            //~ alt: deadline-per-batch
            //~ received = input.recv() => match received {
            //~     Some(message) => {
            //~         batch.push(message);
            //~         let due = *deadline.get_or_insert_with(|| Instant::now() + flush_every);
            //~         if batch.len() == BATCH_MAX || Instant::now() >= due {
            //~             deadline = None;
            //~             if !write(&out, &mut batch).await {
            //~                 return;
            //~             }
            //~         }
            //~     }
            //~     None => {
            //~         let _ = write(&out, &mut batch).await;
            //~         return;
            //~     }
            //~ },
            //~ alt: interval-delay-recv-many
            //~ // Every message already waiting, in one go, straight into the batch, up to a
            //~ // full one. `recv_many` is cancel-safe: when another branch wins, nothing is lost.
            //~ received = input.recv_many(&mut batch, room) => {
            //~     if received == 0 {
            //~         // 0 only once the input is closed and empty: nothing more will come.
            //~         let _ = write(&out, &mut batch).await;
            //~         return;
            //~     }
            //~     if batch.len() == BATCH_MAX && !write(&out, &mut batch).await {
            //~         return;
            //~     }
            //~ }
            //~ end
            //~ site: timer-recreated-each-loop
            _ = flush.tick() => {
                if !write(&out, &mut batch).await {
                    return;
                }
            }
            //~ broken:
            //~ // A quiet input is written out after `flush_every` without news.
            //~ _ = sleep(flush_every) => {
            //~     if !write(&out, &mut batch).await {
            //~         return;
            //~     }
            //~ }
            //~ wrong: deadline-reset-per-message
            //~ () = &mut flush => {
            //~     flush.as_mut().reset(Instant::now() + flush_every);
            //~     if !write(&out, &mut batch).await {
            //~         return;
            //~     }
            //~ }
            //~ alt: sleep-reset-after-flush
            //~ () = &mut flush => {
            //~     if !write(&out, &mut batch).await {
            //~         return;
            //~     }
            //~     flush.as_mut().reset(Instant::now() + flush_every);
            //~ }
            //~ alt: deadline-per-batch
            //~ // Made anew on every turn, but always for the same deadline, so it still fires.
            //~ () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
            //~     deadline = None;
            //~     if !write(&out, &mut batch).await {
            //~         return;
            //~     }
            //~ }
            //~ wrong: biased-timer-first
            //~ alt: biased-shutdown-first
            //~ end
            //~ region
            _ = &mut shutdown => {
                // Shutdown (or its sender gone): write what we hold and return. Whatever
                // we have not read stays in the input.
                let _ = write(&out, &mut batch).await;
                return;
            }
            //~ wrong: drain-before-stopping
            //~ _ = &mut shutdown => {
            //~     // Leave nothing behind: take what is still in the input first.
            //~     while let Ok(message) = input.try_recv() {
            //~         batch.push(message);
            //~         if batch.len() == BATCH_MAX && !write(&out, &mut batch).await {
            //~             return;
            //~         }
            //~     }
            //~     let _ = write(&out, &mut batch).await;
            //~     return;
            //~ }
            //~ wrong: some-pattern-with-else
            //~ _ = &mut shutdown => {
            //~     let _ = write(&out, &mut batch).await;
            //~     return;
            //~ }
            //~ // Once the input is closed its branch is disabled, and `else` ends the loop.
            //~ else => {
            //~     let _ = write(&out, &mut batch).await;
            //~     return;
            //~ }
            //~ wrong: shutdown-first-forgets-batch
            //~ alt: biased-shutdown-first
            //~ end
        }
    }
}

/// Writes the batch downstream, if it holds anything, and leaves it empty. False once the
/// downstream is gone.
async fn write(out: &mpsc::Sender<Vec<u64>>, batch: &mut Vec<u64>) -> bool {
    if batch.is_empty() {
        return true;
    }
    out.send(std::mem::take(batch)).await.is_ok()
}
