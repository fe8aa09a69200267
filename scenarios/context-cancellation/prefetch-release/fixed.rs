//! A queue consumer with a prefetch window: the broker pushes up to [`PREFETCH`] messages
//! ahead, leased to this consumer, and the consumer works through them in order until its
//! `CancellationToken` is cancelled.
//!
//! The broker works with leases, as SQS does with its visibility timeout: a message delivered
//! to a session is leased to it, and nobody else sees it until the session acks it (done),
//! releases it (back on the queue at once, for any consumer), or the lease runs out, half an
//! hour later. Closing the session does not give leased messages back: they wait for their
//! lease. After `close`, the broker refuses every settlement.
//!
//! The promises: [`run`] works through its messages in the order they were delivered, acks
//! each one only after its work is done, and once the token is cancelled it starts no new
//! message: it finishes the one in hand, then settles everything else the broker has
//! delivered (buffered here, or still in the delivery channel) by releasing it, closes the
//! session, and returns a [`Report`] of what it acked and released. No delivered message is
//! left leased.
//!
//! Where it comes from: consumers that prefetch (AMQP's `basic.qos` prefetch count, Kafka's
//! fetched-but-unprocessed records, SQS receive batches of up to ten) hold messages nobody
//! else can take; stopping without giving them back delays every one of them until a lease
//! expires or the connection dies.

use std::collections::VecDeque;

use bughunt_kit::sink::Sink;
use bughunt_kit::tokio_util::sync::CancellationToken;
use tokio::sync::mpsc;

/// How many messages the broker leases to a session ahead of its acks.
pub const PREFETCH: usize = 4;

/// A message the broker has leased to this session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: u64,
}

/// What the session tells the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Done: the message leaves the queue.
    Ack(u64),
    /// Not done: back on the queue at once.
    Release(u64),
    /// The session ends; every later settlement is refused.
    Close,
}

/// This consumer's session with the broker.
pub struct Session {
    /// Messages leased to this session, in the order the broker leased them.
    pub deliveries: mpsc::Receiver<Delivery>,
    settle: mpsc::UnboundedSender<Settle>,
}

impl Session {
    pub fn new(deliveries: mpsc::Receiver<Delivery>, settle: mpsc::UnboundedSender<Settle>) -> Self {
        Session { deliveries, settle }
    }

    pub fn ack(&self, id: u64) {
        let _ = self.settle.send(Settle::Ack(id));
    }

    pub fn release(&self, id: u64) {
        let _ = self.settle.send(Settle::Release(id));
    }

    pub fn close(&self) {
        let _ = self.settle.send(Settle::Close);
    }
}

/// What became of the messages this session settled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub acked: Vec<u64>,
    pub released: Vec<u64>,
}

//~ site: return-without-release
/// Gives back everything delivered and not started: stops the broker pushing more, takes
/// what it has already delivered, and releases it all with the buffer.
async fn release_the_rest(
    session: &mut Session,
    buffer: &mut VecDeque<Delivery>,
    report: &mut Report,
) {
    // FIX: stop the broker pushing more, take what it has already delivered, and release it
    // all with the buffer: otherwise those messages stay leased to a consumer that has gone.
    session.deliveries.close();
    while let Ok(delivery) = session.deliveries.try_recv() {
        buffer.push_back(delivery);
    }
    for delivery in buffer.drain(..) {
        session.release(delivery.id);
        report.released.push(delivery.id);
    }
}
//~ broken:
//~ /// Gives back everything delivered and not started: stops the broker pushing more, takes
//~ /// what it has already delivered, and releases it all with the buffer.
//~ async fn release_the_rest(
//~     session: &mut Session,
//~     buffer: &mut VecDeque<Delivery>,
//~     report: &mut Report,
//~ ) {
//~     // Cancelled: what is still buffered was never started, so there is nothing to undo.
//~     let _ = (&session, &report);
//~     buffer.clear();
//~ }
//~ alt: one-at-a-time-from-the-channel
//~ /// Gives back everything delivered and not started: stops the broker pushing more, takes
//~ /// what it has already delivered, and releases it all with the buffer.
//~ async fn release_the_rest(
//~     session: &mut Session,
//~     buffer: &mut VecDeque<Delivery>,
//~     report: &mut Report,
//~ ) {
//~     // Release what we hold and what was delivered: nothing yields in between, so the
//~     // broker cannot push more before the channel is dropped with the session.
//~     while let Some(delivery) = buffer
//~         .pop_front()
//~         .or_else(|| session.deliveries.try_recv().ok())
//~     {
//~         session.release(delivery.id);
//~         report.released.push(delivery.id);
//~     }
//~ }
//~ alt: drain-the-closed-channel
//~ /// Gives back everything delivered and not started: stops the broker pushing more, takes
//~ /// what it has already delivered, and releases it all with the buffer.
//~ async fn release_the_rest(
//~     session: &mut Session,
//~     buffer: &mut VecDeque<Delivery>,
//~     report: &mut Report,
//~ ) {
//~     // After `close`, `recv` still hands out what was delivered, then says `None`.
//~     session.deliveries.close();
//~     while let Some(delivery) = session.deliveries.recv().await {
//~         buffer.push_back(delivery);
//~     }
//~     for delivery in buffer.drain(..) {
//~         session.release(delivery.id);
//~         report.released.push(delivery.id);
//~     }
//~ }
//~ wrong: close-then-release-buffer
//~ /// Gives back everything delivered and not started: stops the broker pushing more, takes
//~ /// what it has already delivered, and releases it all with the buffer.
//~ async fn release_the_rest(
//~     session: &mut Session,
//~     buffer: &mut VecDeque<Delivery>,
//~     report: &mut Report,
//~ ) {
//~     // Closing the delivery channel drops whatever is still in it; release what we hold.
//~     session.deliveries.close();
//~     for delivery in buffer.drain(..) {
//~         session.release(delivery.id);
//~         report.released.push(delivery.id);
//~     }
//~ }
//~ wrong: close-and-trust-the-broker
//~ /// Gives back everything delivered and not started: stops the broker pushing more, takes
//~ /// what it has already delivered, and releases it all with the buffer.
//~ async fn release_the_rest(
//~     session: &mut Session,
//~     buffer: &mut VecDeque<Delivery>,
//~     report: &mut Report,
//~ ) {
//~     // Closing the session hands every unacked message back to the broker.
//~     let _ = &report;
//~     buffer.clear();
//~     session.close();
//~ }
//~ wrong: await-every-delivery
//~ /// Gives back everything delivered and not started: stops the broker pushing more, takes
//~ /// what it has already delivered, and releases it all with the buffer.
//~ async fn release_the_rest(
//~     session: &mut Session,
//~     buffer: &mut VecDeque<Delivery>,
//~     report: &mut Report,
//~ ) {
//~     for delivery in buffer.drain(..) {
//~         session.release(delivery.id);
//~         report.released.push(delivery.id);
//~     }
//~     // And whatever is still on its way: release until the channel is empty.
//~     while let Some(delivery) = session.deliveries.recv().await {
//~         session.release(delivery.id);
//~         report.released.push(delivery.id);
//~     }
//~ }
//~ end

/// Consumes until `token` is cancelled (or the broker stops delivering), then settles what
/// is left and closes the session.
pub async fn run(token: CancellationToken, mut session: Session, sink: Sink) -> Report {
    let mut report = Report::default();
    // Delivered and not started yet, oldest first.
    let mut buffer: VecDeque<Delivery> = VecDeque::new();
    loop {
        //~ region
        if token.is_cancelled() {
            break;
        }
        //~ wrong: prompt-only-when-idle
        //~ // (the cancel is looked at while waiting for a delivery, below)
        //~ end
        //~ region
        while let Ok(delivery) = session.deliveries.try_recv() {
            buffer.push_back(delivery);
        }
        let delivery = match buffer.pop_front() {
            Some(delivery) => delivery,
            None => {
                let next = tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    next = session.deliveries.recv() => next,
                };
                match next {
                    Some(delivery) => delivery,
                    None => break,
                }
            }
        };
        //~ alt: one-at-a-time-from-the-channel
        //~ // No buffer of our own while running: the channel is the buffer.
        //~ let delivery = match buffer.pop_front() {
        //~     Some(delivery) => delivery,
        //~     None => match token.run_until_cancelled(session.deliveries.recv()).await {
        //~         Some(Some(delivery)) => delivery,
        //~         _ => break,
        //~     },
        //~ };
        //~ end
        //~ site: release-all-but-in-hand
        // FIX: the message in hand is finished, cancel or not, and acked once it is done.
        sink.process(delivery.id).await;
        session.ack(delivery.id);
        report.acked.push(delivery.id);
        //~ broken:
        //~ // Stop at once when the cancel comes, even halfway through a message.
        //~ let done = tokio::select! {
        //~     biased;
        //~     _ = token.cancelled() => false,
        //~     _ = sink.process(delivery.id) => true,
        //~ };
        //~ if !done {
        //~     break;
        //~ }
        //~ session.ack(delivery.id);
        //~ report.acked.push(delivery.id);
        //~ wrong: ack-on-receipt
        //~ // Ack as soon as it is ours, so a cancel can never leave it leased.
        //~ session.ack(delivery.id);
        //~ report.acked.push(delivery.id);
        //~ sink.process(delivery.id).await;
        //~ wrong: release-everything-held
        //~ sink.process(delivery.id).await;
        //~ if token.is_cancelled() {
        //~     // Cancelled while we worked: hand it back with the rest.
        //~     buffer.push_front(delivery);
        //~     break;
        //~ }
        //~ session.ack(delivery.id);
        //~ report.acked.push(delivery.id);
        //~ alt: abandon-and-release-in-hand
        //~ // Stop at once when the cancel comes; an unfinished message goes back with the rest.
        //~ let done = tokio::select! {
        //~     biased;
        //~     _ = token.cancelled() => false,
        //~     _ = sink.process(delivery.id) => true,
        //~ };
        //~ if !done {
        //~     buffer.push_front(delivery);
        //~     break;
        //~ }
        //~ session.ack(delivery.id);
        //~ report.acked.push(delivery.id);
        //~ end
    }
    //~ site: release-after-close
    // FIX: the session stays open until everything it holds is settled (below).
    //~ broken:
    //~ // Done with the broker.
    //~ session.close();
    //~ end
    release_the_rest(&mut session, &mut buffer, &mut report).await;
    session.close();
    report
}
