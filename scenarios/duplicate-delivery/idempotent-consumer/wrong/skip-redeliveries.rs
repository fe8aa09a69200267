// Wrong fix: every redelivery is treated as a duplicate. But a message is also redelivered
// when its first consumer crashed before crediting anything.

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

use bughunt_kit::queue::Delivery;

/// The account the payments go to: the database, not the consumer's memory.
#[derive(Debug, Default)]
pub struct Ledger {
    balance_cents: i64,
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

    /// Adds `amount_cents` to the balance, in one transaction.
    fn credit(&mut self, amount_cents: i64) {
        self.balance_cents += amount_cents;
    }
}

/// One consumer process. A restart throws it away and starts a new one with `Consumer::new()`.
#[derive(Debug, Default)]
pub struct Consumer;

impl Consumer {
    /// A freshly started consumer process.
    pub fn new() -> Self {
        Self
    }

    /// Applies one payment. The body is the amount in cents, as decimal text ("2500").
    pub fn handle(&mut self, ledger: &mut Ledger, delivery: &Delivery) {
        let amount_cents: i64 = delivery
            .body
            .trim()
            .parse()
            .expect("a payment body is a whole number of cents");
        if delivery.attempt == 1 {
            ledger.credit(amount_cents);
        }
    }
}
