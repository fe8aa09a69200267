//! A payments consumer: it takes "credit N cents" messages off a queue and applies them to a
//! ledger.
//!
//! The queue is a correct at-least-once broker ([`bughunt_kit::queue::Broker`], SQS-like):
//! a received message stays hidden for a visibility timeout and is deleted when its ack
//! arrives. The consumer loop around this code is
//!
//! ```text
//! loop { let delivery = broker.receive()?; consumer.handle(&mut ledger, &delivery); broker.ack(delivery.id); }
//! ```
//!
//! Acks travel over a network, and consumer processes restart. The [`Ledger`] stands for
//! the database: it outlives any consumer process, and each of its methods is one
//! transaction, all or nothing. The promise to keep: every payment sent is credited exactly
//! once, however the messages carrying it are delivered.

//~ site: credit-every-delivery
use std::collections::BTreeSet;

//~ broken:
//~ end
use bughunt_kit::queue::Delivery;

/// The account the payments go to: the database, not the consumer's memory.
#[derive(Debug, Default)]
pub struct Ledger {
    balance_cents: i64,
    //~ site: credit-every-delivery
    // FIX: the ids of the messages whose payment is in the balance, kept in the database
    // itself: it survives consumer restarts, and it changes in the same transaction as the
    // balance, so the two can never disagree. (In SQL: a processed_messages table with the
    // message id as primary key, inserted in the transaction that updates the balance.)
    // It grows with the ledger, one id per payment, like the payment rows themselves.
    applied_message_ids: BTreeSet<u64>,
    //~ broken:
    //~ end
}

impl Ledger {
    /// An empty account.
    pub fn new() -> Self {
        Self::default()
    }

    /// The balance, in cents.
    pub fn balance_cents(&self) -> i64 {
        self.balance_cents
    }

    //~ site: credit-every-delivery
    /// Adds `amount_cents` to the balance for message `message_id`, in one transaction,
    /// unless that message was applied before.
    // FIX: check and record the message id and change the balance in one transaction. A
    // check in one transaction and the credit in another would let a crash between them
    // record the id without the money (a lost payment), or the money without the id.
    fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
        if self.applied_message_ids.insert(message_id) {
            self.balance_cents += amount_cents;
        }
    //~ broken:
    //~ /// Adds `amount_cents` to the balance, in one transaction.
    //~ fn credit(&mut self, amount_cents: i64) {
    //~     self.balance_cents += amount_cents;
    //~ end
    }
}

/// One consumer process. A restart throws it away and starts a new one with `Consumer::new()`.
#[derive(Debug, Default)]
//~ site: dedupe-by-amount
pub struct Consumer;
//~ broken:
//~ pub struct Consumer {
//~     last_amount_cents: Option<i64>,
//~ }
//~ end

impl Consumer {
    /// A freshly started consumer process.
    pub fn new() -> Self {
        //~ site: dedupe-by-amount
        Self
        //~ broken:
        //~ Self::default()
        //~ end
    }

    /// Applies one payment. The body is the amount in cents, as decimal text ("2500").
    pub fn handle(&mut self, ledger: &mut Ledger, delivery: &Delivery) {
        //~ site: skip-redeliveries
        //~ broken:
        //~ // A redelivery was handled already: skip it, without a trip to the ledger.
        //~ if delivery.attempt > 1 {
        //~     return;
        //~ }
        //~ end
        let amount_cents: i64 = delivery
            .body
            .trim()
            .parse()
            .expect("a payment body is a whole number of cents");
        //~ site: dedupe-by-amount
        //~ broken:
        //~ // A producer that retries its send makes a second message for the same payment.
        //~ if self.last_amount_cents == Some(amount_cents) {
        //~     return;
        //~ }
        //~ self.last_amount_cents = Some(amount_cents);
        //~ end
        //~ site: credit-every-delivery
        // FIX: the broker gives every delivery of a message the same id, so the message id is
        // the idempotency key; the ledger checks and records it in the credit's transaction.
        ledger.credit_once(delivery.id, amount_cents);
        //~ broken:
        //~ ledger.credit(amount_cents);
        //~ end
    }
}
