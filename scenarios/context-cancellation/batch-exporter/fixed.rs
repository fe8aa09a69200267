//! An exporter: takes items from a queue in batches and sends each one to a slow downstream
//! (a search index, say), until its `CancellationToken` is cancelled.
//!
//! A batch is whatever has queued up while the previous one was being sent, up to
//! [`BATCH_SIZE`] items, taken at once: no item waits for a fuller batch. Items are sent one
//! at a time, in order.
//!
//! The promises: [`run`] returns within [`CANCEL_BOUND_MS`] of the cancel, however long the
//! batch or the item in hand, and its [`Report`] accounts for every item it took from the
//! queue: each one is either `done` (the downstream has it) or `returned` (the caller puts it
//! back on the queue), never both, never neither. The downstream is idempotent on the item
//! id, so a send abandoned halfway is harmless as long as the item is returned: it is sent
//! again later. Items it never took stay in the queue.
//!
//! Where it comes from: the batch loop of a Kafka-style consumer. `poll()` returns up to
//! `max.poll.records` records, the loop processes them all, and a stop flag is looked at
//! when the loop comes round. The KafkaConsumer javadoc's answer to a consumer blocked in
//! `poll()` is `wakeup()` from another thread, which makes the blocking call throw; nothing
//! interrupts the processing of a batch, so a flag looked at only between batches is seen as
//! late as the slowest batch.

use bughunt_kit::sink::Sink;
use bughunt_kit::tokio_util::sync::CancellationToken;
use tokio::sync::mpsc;

/// The most items taken at once.
pub const BATCH_SIZE: usize = 5;

/// How soon after the cancel [`run`] returns, at the latest.
pub const CANCEL_BOUND_MS: u64 = 250;

/// One item to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    pub id: u64,
}

/// What became of every item [`run`] took from the queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Sent: the downstream has them.
    pub done: Vec<u64>,
    /// Not sent, or not sent completely: the caller puts them back on the queue.
    pub returned: Vec<u64>,
}

//~ region
/// Takes what has queued up, up to [`BATCH_SIZE`] items; waits only for the first.
async fn next_batch(queue: &mut mpsc::Receiver<Item>) -> Option<Vec<Item>> {
    let first = queue.recv().await?;
    let mut batch = vec![first];
    while batch.len() < BATCH_SIZE {
        match queue.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}
//~ wrong: linger-for-a-fuller-batch
//~ /// Takes up to [`BATCH_SIZE`] items; after the first, waits a little for more, since
//~ /// fuller batches are cheaper downstream.
//~ async fn next_batch(queue: &mut mpsc::Receiver<Item>) -> Option<Vec<Item>> {
//~     let first = queue.recv().await?;
//~     let mut batch = vec![first];
//~     let linger = tokio::time::sleep(std::time::Duration::from_millis(40));
//~     tokio::pin!(linger);
//~     while batch.len() < BATCH_SIZE {
//~         tokio::select! {
//~             _ = &mut linger => break,
//~             item = queue.recv() => match item {
//~                 Some(item) => batch.push(item),
//~                 None => break,
//~             },
//~         }
//~     }
//~     Some(batch)
//~ }
//~ end

/// Exports items from `queue` to `downstream` until `token` is cancelled (or the queue is
/// closed and empty).
pub async fn run(
    token: CancellationToken,
    queue: &mut mpsc::Receiver<Item>,
    downstream: Sink,
) -> Report {
    //~ region
    let mut report = Report::default();
    loop {
        // `recv` is cancel-safe: an item is either taken into the batch or left queued.
        let batch = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            batch = next_batch(queue) => batch,
        };
        let Some(batch) = batch else { break };
    //~ alt: one-queue-of-pending-items
    //~ let mut report = Report::default();
    //~ // Items taken from the queue and not sent yet, oldest first.
    //~ let mut pending: std::collections::VecDeque<Item> = std::collections::VecDeque::new();
    //~ loop {
    //~     if pending.is_empty() {
    //~         let first = tokio::select! {
    //~             biased;
    //~             _ = token.cancelled() => break,
    //~             first = queue.recv() => first,
    //~         };
    //~         let Some(first) = first else { break };
    //~         pending.push_back(first);
    //~         while pending.len() < BATCH_SIZE {
    //~             let Ok(item) = queue.try_recv() else { break };
    //~             pending.push_back(item);
    //~         }
    //~     }
    //~     let Some(item) = pending.pop_front() else {
    //~         continue;
    //~     };
    //~     let sent = tokio::select! {
    //~         biased;
    //~         _ = token.cancelled() => false,
    //~         _ = downstream.process(item.id) => true,
    //~     };
    //~     if !sent {
    //~         report.returned.push(item.id);
    //~         report.returned.extend(pending.drain(..).map(|item| item.id));
    //~         break;
    //~     }
    //~     report.done.push(item.id);
    //~ end
        //~ site: checks-between-batches
        // FIX: the batch is sent item by item with the cancel in view; a cancel stops it
        // halfway, with the rest returned.
        if !send_batch(batch, &token, &downstream, &mut report).await {
            break;
        }
        //~ broken:
        //~ // The cancel is looked at before each batch: a batch is sent whole.
        //~ for item in batch {
        //~     downstream.process(item.id).await;
        //~     report.done.push(item.id);
        //~ }
        //~ if token.is_cancelled() {
        //~     break;
        //~ }
        //~ wrong: run-until-cancelled-on-the-batch
        //~ // Stop sending the moment the cancel comes.
        //~ let done = &mut report.done;
        //~ let downstream = &downstream;
        //~ let whole_batch = async move {
        //~     for item in batch {
        //~         downstream.process(item.id).await;
        //~         done.push(item.id);
        //~     }
        //~ };
        //~ if token.run_until_cancelled(whole_batch).await.is_none() {
        //~     break;
        //~ }
        //~ wrong: send-batch-at-once
        //~ // The whole batch at once: the downstream takes them in parallel, and a cancel
        //~ // aborts whatever is still being sent.
        //~ let mut sends = tokio::task::JoinSet::new();
        //~ for item in &batch {
        //~     let downstream = downstream.clone();
        //~     let id = item.id;
        //~     sends.spawn(async move {
        //~         downstream.process(id).await;
        //~         id
        //~     });
        //~ }
        //~ let mut sent = std::collections::HashSet::new();
        //~ loop {
        //~     tokio::select! {
        //~         biased;
        //~         _ = token.cancelled() => {
        //~             sends.abort_all();
        //~             let unsent = batch.iter().filter(|item| !sent.contains(&item.id));
        //~             report.returned.extend(unsent.map(|item| item.id));
        //~             return report;
        //~         }
        //~         next = sends.join_next() => match next {
        //~             Some(Ok(id)) => {
        //~                 sent.insert(id);
        //~                 report.done.push(id);
        //~             }
        //~             Some(Err(_)) => {}
        //~             None => break,
        //~         },
        //~     }
        //~ }
        //~ alt: one-queue-of-pending-items
        //~ // (each item was sent above, as it came off `pending`)
        //~ end
    }
    report
}

/// Sends `batch` in order. Returns false when the cancel came first: then every item of the
/// batch not sent is in `report.returned`.
async fn send_batch(
    batch: Vec<Item>,
    token: &CancellationToken,
    downstream: &Sink,
    report: &mut Report,
) -> bool {
    let mut rest = batch.into_iter();
    while let Some(item) = rest.next() {
        //~ site: downstream-without-cancel
        // FIX: wait for the send or the cancel, whichever comes first: one slow item must
        // not hold the cancel up. Abandoning the send is safe: the item is returned below.
        let sent = tokio::select! {
            biased;
            _ = token.cancelled() => false,
            _ = downstream.process(item.id) => true,
        };
        //~ broken:
        //~ // The cancel is looked at before each item, then the item is sent.
        //~ let sent = if token.is_cancelled() {
        //~     false
        //~ } else {
        //~     downstream.process(item.id).await;
        //~     true
        //~ };
        //~ wrong: in-hand-counted-done
        //~ let sent = tokio::select! {
        //~     biased;
        //~     _ = token.cancelled() => {
        //~         // It was under way: count it as sent.
        //~         report.done.push(item.id);
        //~         report.returned.extend(rest.map(|item| item.id));
        //~         return false;
        //~     }
        //~     _ = downstream.process(item.id) => true,
        //~ };
        //~ wrong: finish-in-the-background
        //~ let sent = tokio::select! {
        //~     biased;
        //~     _ = token.cancelled() => {
        //~         // Don't hold the cancel up, and don't lose the item: send it on the side.
        //~         let downstream = downstream.clone();
        //~         tokio::spawn(async move { downstream.process(item.id).await });
        //~         report.done.push(item.id);
        //~         report.returned.extend(rest.map(|item| item.id));
        //~         return false;
        //~     }
        //~     _ = downstream.process(item.id) => true,
        //~ };
        //~ wrong: grace-then-forget
        //~ let send = downstream.process(item.id);
        //~ tokio::pin!(send);
        //~ let sent = tokio::select! {
        //~     biased;
        //~     _ = &mut send => true,
        //~     _ = token.cancelled() => {
        //~         // A little grace for the item in hand.
        //~         let grace = std::time::Duration::from_millis(CANCEL_BOUND_MS / 2);
        //~         if tokio::time::timeout(grace, &mut send).await.is_ok() {
        //~             report.done.push(item.id);
        //~         }
        //~         report.returned.extend(rest.map(|item| item.id));
        //~         return false;
        //~     }
        //~ };
        //~ alt: grace-for-the-item-in-hand
        //~ let send = downstream.process(item.id);
        //~ tokio::pin!(send);
        //~ let sent = tokio::select! {
        //~     biased;
        //~     _ = &mut send => true,
        //~     _ = token.cancelled() => {
        //~         // A little grace for the item in hand; if it does not make it, it goes back.
        //~         let grace = std::time::Duration::from_millis(CANCEL_BOUND_MS / 2);
        //~         tokio::time::timeout(grace, &mut send).await.is_ok()
        //~     }
        //~ };
        //~ if sent && token.is_cancelled() {
        //~     report.done.push(item.id);
        //~     report.returned.extend(rest.map(|item| item.id));
        //~     return false;
        //~ }
        //~ alt: run-until-cancelled-per-item
        //~ let sent = token
        //~     .run_until_cancelled(downstream.process(item.id))
        //~     .await
        //~     .is_some();
        //~ alt: select-without-biased
        //~ // Whichever is ready first; when both are, either answer is true.
        //~ let sent = tokio::select! {
        //~     _ = token.cancelled() => false,
        //~     _ = downstream.process(item.id) => true,
        //~ };
        //~ end
        //~ site: select-drops-the-item
        if !sent {
            // FIX: the item in hand was not sent (or not completely): it goes back too.
            report.returned.push(item.id);
            report.returned.extend(rest.map(|item| item.id));
            return false;
        }
        report.done.push(item.id);
        //~ broken:
        //~ if !sent {
        //~     // What is left of the batch goes back on the queue.
        //~     report.returned.extend(rest.map(|item| item.id));
        //~     return false;
        //~ }
        //~ report.done.push(item.id);
        //~ end
    }
    true
}
