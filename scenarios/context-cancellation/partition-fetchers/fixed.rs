//! A consumer of a partitioned log: one fetcher task per partition hands each message to a
//! sink, and a heartbeat task tells the group coordinator that the consumer is alive.
//!
//! The service owns one `CancellationToken` for everything it runs and hands it to
//! [`Consumer::start`]. The promises: once the service's token is cancelled, every task the
//! consumer started stops by itself, without being asked again. A fetcher finishes the
//! message in hand (never cut off halfway) and takes no new one; the heartbeat sends no
//! further beat; messages not taken yet stay in their partition for the next owner.
//! [`Consumer::stopped`] returns once every one of those tasks has ended. Until the cancel,
//! each fetcher takes its partition's messages in order, as soon as it is free, and the
//! heartbeat beats at least every [`HEARTBEAT_MS`].
//!
//! Where it comes from: Go's `context` and tokio-util's `CancellationToken` both stop only
//! the work that was handed the token (or a child of it). A task given
//! `context.Background()` or a fresh token instead never hears of the cancel: Go linters such
//! as `contextcheck` exist to flag a function that makes a new context where it should pass
//! the one it was given.

use std::time::Duration;

use bughunt_kit::sink::Sink;
//~ region
use bughunt_kit::tokio_util::sync::CancellationToken;
use bughunt_kit::tokio_util::task::TaskTracker;
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
//~ wrong: abort-when-stopped
//~ use bughunt_kit::tokio_util::sync::CancellationToken;
//~ use tokio::sync::mpsc;
//~ use tokio::task::JoinSet;
//~ use tokio::time::{interval_at, Instant, MissedTickBehavior};
//~ alt: same-token-in-a-joinset
//~ use bughunt_kit::tokio_util::sync::CancellationToken;
//~ use tokio::sync::mpsc;
//~ use tokio::task::JoinSet;
//~ use tokio::time::{interval_at, Instant, MissedTickBehavior};
//~ end

/// How often the heartbeat tells the coordinator the consumer is alive.
pub const HEARTBEAT_MS: u64 = 2_500;

/// One message of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
}

/// A partition assigned to this consumer. Messages arrive on `messages` for as long as the
/// log exists: the channel does not close when the consumer stops.
pub struct Partition {
    pub number: u32,
    pub messages: mpsc::Receiver<Message>,
}

/// Where the heartbeat sends its beats (numbered from 1) to the group coordinator.
pub type Beats = mpsc::UnboundedSender<u64>;

/// A running consumer. Cancel the service's token to stop it; [`Consumer::stopped`] waits
/// until it has.
pub struct Consumer {
    //~ region
    tasks: TaskTracker,
    //~ wrong: cancel-own-tokens-when-stopped
    //~ tasks: TaskTracker,
    //~ /// The fetchers' own tokens, cancelled when the service waits for the consumer.
    //~ own: Vec<CancellationToken>,
    //~ wrong: abort-when-stopped
    //~ tasks: JoinSet<()>,
    //~ alt: same-token-in-a-joinset
    //~ tasks: JoinSet<()>,
    //~ end
}

impl Consumer {
    /// Starts a fetcher for each partition and the heartbeat, all under `service`.
    pub fn start(
        service: &CancellationToken,
        partitions: Vec<Partition>,
        sink: Sink,
        beats: Beats,
    ) -> Consumer {
        //~ region
        let token = service.child_token();
        let tasks = TaskTracker::new();
        for partition in partitions {
            let sink = sink.with_actor(format!("f{}", partition.number));
        //~ wrong: cancel-own-tokens-when-stopped
        //~ let token = service.child_token();
        //~ let tasks = TaskTracker::new();
        //~ let mut own = Vec::new();
        //~ for partition in partitions {
        //~     let sink = sink.with_actor(format!("f{}", partition.number));
        //~ wrong: abort-when-stopped
        //~ let token = service.child_token();
        //~ let mut tasks = JoinSet::new();
        //~ for partition in partitions {
        //~     let sink = sink.with_actor(format!("f{}", partition.number));
        //~ alt: same-token-in-a-joinset
        //~ let mut tasks = JoinSet::new();
        //~ for partition in partitions {
        //~     let sink = sink.with_actor(format!("f{}", partition.number));
        //~ end
            //~ site: fresh-token-for-fetchers
            // FIX: a child of the consumer's token: cancelling the service reaches it.
            let token = token.child_token();
            //~ broken:
            //~ // Each fetcher gets a token of its own, so a partition can be stopped alone.
            //~ let token = CancellationToken::new();
            //~ wrong: cancel-own-tokens-when-stopped
            //~ // Each fetcher gets a token of its own, and the consumer keeps it to stop it.
            //~ let token = CancellationToken::new();
            //~ own.push(token.clone());
            //~ wrong: abort-when-stopped
            //~ // Each fetcher gets a token of its own; stopped() stops them.
            //~ let token = CancellationToken::new();
            //~ wrong: stopped-with-deadline
            //~ // Each fetcher gets a token of its own, so a partition can be stopped alone.
            //~ let token = CancellationToken::new();
            //~ alt: same-token-in-a-joinset
            //~ // Every task shares the service's own token: cancelling it reaches all of them.
            //~ let token = service.clone();
            //~ end
        //~ region
            tasks.spawn(fetch(partition, token, sink));
        }
        tasks.spawn(heartbeat(token.child_token(), beats));
        // No task is added later: `wait` returns once these have ended.
        tasks.close();
        Consumer { tasks }
        //~ wrong: cancel-own-tokens-when-stopped
        //~     tasks.spawn(fetch(partition, token, sink));
        //~ }
        //~ tasks.spawn(heartbeat(token.child_token(), beats));
        //~ tasks.close();
        //~ Consumer { tasks, own }
        //~ wrong: abort-when-stopped
        //~     tasks.spawn(fetch(partition, token, sink));
        //~ }
        //~ tasks.spawn(heartbeat(token.child_token(), beats));
        //~ Consumer { tasks }
        //~ alt: same-token-in-a-joinset
        //~     tasks.spawn(fetch(partition, token, sink));
        //~ }
        //~ tasks.spawn(heartbeat(service.clone(), beats));
        //~ Consumer { tasks }
        //~ end
    }

    /// Returns once every task of the consumer has ended. Call it after cancelling the
    /// service's token.
    pub async fn stopped(self) {
        //~ region
        self.tasks.wait().await;
        //~ wrong: cancel-own-tokens-when-stopped
        //~ for token in &self.own {
        //~     token.cancel();
        //~ }
        //~ self.tasks.wait().await;
        //~ wrong: abort-when-stopped
        //~ // The fetchers' tokens are their own: stop them here.
        //~ let mut tasks = self.tasks;
        //~ tasks.abort_all();
        //~ while tasks.join_next().await.is_some() {}
        //~ wrong: stopped-with-deadline
        //~ // Never hold the service up for long: a second, then go.
        //~ let _ = tokio::time::timeout(Duration::from_millis(1_000), self.tasks.wait()).await;
        //~ alt: same-token-in-a-joinset
        //~ let mut tasks = self.tasks;
        //~ while let Some(ended) = tasks.join_next().await {
        //~     if let Err(error) = ended {
        //~         if error.is_panic() {
        //~             std::panic::resume_unwind(error.into_panic());
        //~         }
        //~     }
        //~ }
        //~ end
    }
}

//~ site: fetcher-waits-without-cancel
/// One fetcher: takes its partition's messages one at a time until the token is cancelled.
async fn fetch(mut partition: Partition, token: CancellationToken, sink: Sink) {
    loop {
        // FIX: wait for the next message *or* the cancel, whichever comes first. An idle
        // partition may not get a message for hours. `biased`: a cancel that has come wins
        // over a message that is waiting, so no new message is taken after it.
        let message = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            message = partition.messages.recv() => message,
        };
        let Some(message) = message else { break };
        // The message in hand is finished, cancel or not: it is never cut off halfway.
        sink.process(message.id).await;
    }
}
//~ broken:
//~ /// One fetcher: takes its partition's messages one at a time until the token is cancelled.
//~ async fn fetch(mut partition: Partition, token: CancellationToken, sink: Sink) {
//~     while !token.is_cancelled() {
//~         let Some(message) = partition.messages.recv().await else {
//~             break;
//~         };
//~         sink.process(message.id).await;
//~     }
//~ }
//~ wrong: select-races-the-work
//~ /// One fetcher: takes its partition's messages one at a time until the token is cancelled.
//~ async fn fetch(mut partition: Partition, token: CancellationToken, sink: Sink) {
//~     loop {
//~         let message = tokio::select! {
//~             biased;
//~             _ = token.cancelled() => break,
//~             message = partition.messages.recv() => message,
//~         };
//~         let Some(message) = message else { break };
//~         // Stop at once, even in the middle of a message.
//~         tokio::select! {
//~             biased;
//~             _ = token.cancelled() => break,
//~             _ = sink.process(message.id) => {}
//~         }
//~     }
//~ }
//~ wrong: poll-with-timeout
//~ /// One fetcher: takes its partition's messages one at a time until the token is cancelled.
//~ async fn fetch(mut partition: Partition, token: CancellationToken, sink: Sink) {
//~     // Never wait long for a message: look at the token at least once a second.
//~     while !token.is_cancelled() {
//~         let poll = Duration::from_millis(1_000);
//~         match tokio::time::timeout(poll, partition.messages.recv()).await {
//~             Ok(Some(message)) => sink.process(message.id).await,
//~             Ok(None) => break,
//~             Err(_) => {}
//~         }
//~     }
//~ }
//~ alt: run-until-cancelled
//~ /// One fetcher: takes its partition's messages one at a time until the token is cancelled.
//~ async fn fetch(mut partition: Partition, token: CancellationToken, sink: Sink) {
//~     // `run_until_cancelled` gives `None` once the token is cancelled, even if a message
//~     // is waiting then.
//~     while let Some(Some(message)) = token.run_until_cancelled(partition.messages.recv()).await {
//~         sink.process(message.id).await;
//~     }
//~ }
//~ alt: cancelled-future-pinned-once
//~ /// One fetcher: takes its partition's messages one at a time until the token is cancelled.
//~ async fn fetch(mut partition: Partition, token: CancellationToken, sink: Sink) {
//~     // One `cancelled` future for the whole loop, polled first each time round.
//~     let cancelled = token.cancelled();
//~     tokio::pin!(cancelled);
//~     loop {
//~         tokio::select! {
//~             biased;
//~             _ = &mut cancelled => return,
//~             message = partition.messages.recv() => match message {
//~                 Some(message) => sink.process(message.id).await,
//~                 None => return,
//~             },
//~         }
//~     }
//~ }
//~ end

//~ site: heartbeat-ignores-token
/// The heartbeat: one beat every [`HEARTBEAT_MS`] until the token is cancelled.
async fn heartbeat(token: CancellationToken, beats: Beats) {
    let period = Duration::from_millis(HEARTBEAT_MS);
    let mut ticks = interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut beat = 0;
    loop {
        // FIX: the heartbeat waits for its tick or the cancel, not for the tick alone.
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            _ = ticks.tick() => {
                beat += 1;
                if beats.send(beat).is_err() {
                    break;
                }
            }
        }
    }
}
//~ broken:
//~ /// The heartbeat: one beat every [`HEARTBEAT_MS`] until the token is cancelled.
//~ async fn heartbeat(token: CancellationToken, beats: Beats) {
//~     let _ = token;
//~     let period = Duration::from_millis(HEARTBEAT_MS);
//~     let mut ticks = interval_at(Instant::now() + period, period);
//~     ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
//~     let mut beat = 0;
//~     loop {
//~         ticks.tick().await;
//~         beat += 1;
//~         // The coordinator has gone away: nobody to beat for.
//~         if beats.send(beat).is_err() {
//~             break;
//~         }
//~     }
//~ }
//~ wrong: heartbeat-looks-each-tick
//~ /// The heartbeat: one beat every [`HEARTBEAT_MS`] until the token is cancelled.
//~ async fn heartbeat(token: CancellationToken, beats: Beats) {
//~     let period = Duration::from_millis(HEARTBEAT_MS);
//~     let mut ticks = interval_at(Instant::now() + period, period);
//~     ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
//~     let mut beat = 0;
//~     while !token.is_cancelled() {
//~         ticks.tick().await;
//~         beat += 1;
//~         if beats.send(beat).is_err() {
//~             break;
//~         }
//~     }
//~ }
//~ alt: run-until-cancelled
//~ /// The heartbeat: one beat every [`HEARTBEAT_MS`] until the token is cancelled.
//~ async fn heartbeat(token: CancellationToken, beats: Beats) {
//~     let period = Duration::from_millis(HEARTBEAT_MS);
//~     let mut beat = 0;
//~     // No interval: sleep a period, unless the cancel comes first.
//~     while token
//~         .run_until_cancelled(tokio::time::sleep(period))
//~         .await
//~         .is_some()
//~     {
//~         beat += 1;
//~         if beats.send(beat).is_err() {
//~             break;
//~         }
//~     }
//~ }
//~ end
