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
//! Acks travel over a network, and consumer processes crash and restart. The ledger's rows
//! live in a database, a [`Store`]: it outlives every consumer process, and each
//! [`Store::transaction`] is one commit, all or nothing. A process can die between two
//! commits. Rows are string keys with `i64` values; inside a transaction, `tx` can `get`,
//! `contains`, `put`, `insert_if_absent`, `add`, `delete` and `scan_prefix` them. A [`Ledger`] is one process's connection to that database: a restarted process
//! opens a new one, and whatever the old process kept in memory, in its `Consumer` or its
//! `Ledger`, is gone. The promise to keep: every payment sent is credited exactly once,
//! however the messages carrying it are delivered.

//~ region
//~ wrong: seen-set-in-consumer
//~ use std::collections::BTreeSet;
//~
//~ wrong: seen-set-in-connection
//~ use std::collections::BTreeSet;
//~
//~ wrong: static-seen-set
//~ use std::collections::BTreeSet;
//~ use std::sync::Mutex;
//~
//~ alt: memory-cache-over-store-marks
//~ use std::collections::BTreeSet;
//~
//~ end
use bughunt_kit::ledger::Store;
use bughunt_kit::queue::Delivery;

/// The row that holds the balance, in cents.
const BALANCE_KEY: &str = "balance_cents";

//~ site: credit-every-delivery
/// The row that says the payment of message `message_id` is in the balance.
// FIX: one row per applied message, keyed by the message id, in the same database as the
// balance. (In SQL: a processed_messages table with the message id as primary key.) It grows
// with the ledger, one row per payment, like the payment rows themselves.
fn applied_key(message_id: u64) -> String {
    format!("applied/{message_id}")
}

//~ broken:
//~ wrong: dedupe-by-body
//~ /// The row that says a payment with this body is in the balance.
//~ fn applied_key(body: &str) -> String {
//~     format!("applied/{body}")
//~ }
//~
//~ wrong: static-seen-set
//~ /// Message ids already credited, shared by every consumer process.
//~ static APPLIED_MESSAGE_IDS: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());
//~
//~ wrong: seen-window-too-small
//~ /// How many recent message ids are remembered: a redelivery comes soon after a delivery.
//~ const APPLIED_WINDOW: u64 = 8;
//~
//~ fn applied_key(message_id: u64) -> String {
//~     format!("applied/{message_id}")
//~ }
//~
//~ wrong: applied-key-u32
//~ /// The row that says the payment of message `message_id` is in the balance. Four bytes
//~ /// of id keep the key short, and a ledger never sees four billion messages.
//~ fn applied_key(message_id: u64) -> String {
//~     format!("applied/{}", message_id as u32)
//~ }
//~
//~ alt: payment-rows-sum
//~ /// The row of the payment of message `message_id`: its amount. The balance is their sum.
//~ fn payment_key(message_id: u64) -> String {
//~     format!("payment/{message_id}")
//~ }
//~
//~ alt: intent-then-apply
//~ fn applied_key(message_id: u64) -> String {
//~     format!("applied/{message_id}")
//~ }
//~
//~ /// A payment taken on but maybe not yet in the balance: its amount.
//~ fn intent_key(message_id: u64) -> String {
//~     format!("intent/{message_id}")
//~ }
//~
//~ end
/// One consumer process's connection to the ledger database. A restarted process opens a
/// new one; only the rows of the [`Store`] survive.
#[derive(Debug)]
pub struct Ledger {
    db: Store,
    //~ region
    //~ wrong: seen-set-in-connection
    //~ /// Message ids already credited.
    //~ applied_message_ids: BTreeSet<u64>,
    //~ end
}

impl Ledger {
    /// Connects to the database `db`.
    pub fn open(db: Store) -> Self {
        //~ region
        Self { db }
        //~ wrong: seen-set-in-connection
        //~ Self {
        //~     db,
        //~     applied_message_ids: BTreeSet::new(),
        //~ }
        //~ end
    }

    /// The balance, in cents.
    pub fn balance_cents(&self) -> i64 {
        //~ region
        self.db.transaction(|tx| tx.get(BALANCE_KEY).unwrap_or(0))
        //~ alt: payment-rows-sum
        //~ // The payments are the truth; the balance is computed from them, never stored.
        //~ let _ = BALANCE_KEY;
        //~ self.db.transaction(|tx| {
        //~     tx.scan_prefix("payment/")
        //~         .iter()
        //~         .map(|(_, amount_cents)| amount_cents)
        //~         .sum()
        //~ })
        //~ end
    }

    //~ site: credit-every-delivery
    /// Adds `amount_cents` to the balance for message `message_id`, unless that message was
    /// applied before: one transaction.
    // FIX: check and record the message id and change the balance in one transaction. In two,
    // a crash between them would record the id without the money (a lost payment) or the
    // money without the id (a second credit on redelivery).
    fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
        self.db.transaction(|tx| {
            if tx.insert_if_absent(&applied_key(message_id), 1) {
                tx.add(BALANCE_KEY, amount_cents);
            }
        });
    //~ broken:
    //~ /// Adds `amount_cents` to the balance, in one transaction.
    //~ fn credit(&mut self, amount_cents: i64) {
    //~     self.db.transaction(|tx| tx.add(BALANCE_KEY, amount_cents));
    //~ wrong: dedupe-by-body
    //~ /// Adds `amount_cents` unless a message with the same body was applied before.
    //~ fn credit_once(&mut self, body: &str, amount_cents: i64) {
    //~     self.db.transaction(|tx| {
    //~         if tx.insert_if_absent(&applied_key(body), 1) {
    //~             tx.add(BALANCE_KEY, amount_cents);
    //~         }
    //~     });
    //~ wrong: seen-set-in-consumer
    //~ /// Adds `amount_cents` to the balance, in one transaction.
    //~ fn credit(&mut self, amount_cents: i64) {
    //~     self.db.transaction(|tx| tx.add(BALANCE_KEY, amount_cents));
    //~ wrong: first-attempt-only
    //~ /// Adds `amount_cents` to the balance, in one transaction.
    //~ fn credit(&mut self, amount_cents: i64) {
    //~     self.db.transaction(|tx| tx.add(BALANCE_KEY, amount_cents));
    //~ wrong: seen-set-in-connection
    //~ /// Adds `amount_cents` to the balance unless message `message_id` was applied before.
    //~ fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
    //~     if self.applied_message_ids.insert(message_id) {
    //~         self.db.transaction(|tx| tx.add(BALANCE_KEY, amount_cents));
    //~     }
    //~ wrong: static-seen-set
    //~ /// Adds `amount_cents` to the balance unless message `message_id` was applied before.
    //~ fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
    //~     let fresh = APPLIED_MESSAGE_IDS
    //~         .lock()
    //~         .unwrap_or_else(|poisoned| poisoned.into_inner())
    //~         .insert(message_id);
    //~     if fresh {
    //~         self.db.transaction(|tx| tx.add(BALANCE_KEY, amount_cents));
    //~     }
    //~ wrong: record-then-apply
    //~ /// Records message `message_id` as applied, then credits it: nothing is ever
    //~ /// credited without its record.
    //~ fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
    //~     let fresh = self
    //~         .db
    //~         .transaction(|tx| tx.insert_if_absent(&applied_key(message_id), 1));
    //~     if fresh {
    //~         self.db.transaction(|tx| tx.add(BALANCE_KEY, amount_cents));
    //~     }
    //~ wrong: apply-then-record
    //~ /// Credits message `message_id` unless it is recorded, then records it.
    //~ fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
    //~     let key = applied_key(message_id);
    //~     if self.db.transaction(|tx| tx.contains(&key)) {
    //~         return;
    //~     }
    //~     self.db.transaction(|tx| tx.add(BALANCE_KEY, amount_cents));
    //~     self.db.transaction(|tx| tx.put(&key, 1));
    //~ wrong: check-then-credit
    //~ /// Looks the message up first, then credits it together with its record.
    //~ fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
    //~     let key = applied_key(message_id);
    //~     if self.db.transaction(|tx| tx.contains(&key)) {
    //~         return;
    //~     }
    //~     self.db.transaction(|tx| {
    //~         tx.put(&key, 1);
    //~         tx.add(BALANCE_KEY, amount_cents);
    //~     });
    //~ wrong: high-water-mark
    //~ /// Messages come in id order, so the highest id applied is all there is to remember.
    //~ fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
    //~     let id = i64::try_from(message_id).expect("message ids fit in an i64");
    //~     self.db.transaction(|tx| {
    //~         if tx.get("applied_up_to").is_some_and(|highest| id <= highest) {
    //~             return;
    //~         }
    //~         tx.put("applied_up_to", id);
    //~         tx.add(BALANCE_KEY, amount_cents);
    //~     });
    //~ wrong: seen-window-too-small
    //~ /// Credits message `message_id` once, and forgets the record of an older message so
    //~ /// the table stays small.
    //~ fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
    //~     self.db.transaction(|tx| {
    //~         if tx.insert_if_absent(&applied_key(message_id), 1) {
    //~             tx.add(BALANCE_KEY, amount_cents);
    //~         }
    //~         if let Some(old_id) = message_id.checked_sub(APPLIED_WINDOW) {
    //~             tx.delete(&applied_key(old_id));
    //~         }
    //~     });
    //~ wrong: applied-bitmask
    //~ /// Marks message `message_id` in one 64-bit row of applied bits, in the credit's
    //~ /// transaction: one small row for the whole table, however many payments.
    //~ fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
    //~     let bit = 1i64.wrapping_shl(message_id as u32);
    //~     self.db.transaction(|tx| {
    //~         let applied = tx.get("applied_bits").unwrap_or(0);
    //~         if applied & bit == 0 {
    //~             tx.put("applied_bits", applied | bit);
    //~             tx.add(BALANCE_KEY, amount_cents);
    //~         }
    //~     });
    //~ alt: payment-rows-sum
    //~ /// Writes the payment row of message `message_id`, unless it is there already: one
    //~ /// insert-if-absent, so the row is both the effect and its own record.
    //~ fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
    //~     self.db
    //~         .transaction(|tx| tx.insert_if_absent(&payment_key(message_id), amount_cents));
    //~ alt: intent-then-apply
    //~ /// Two commits, and still exactly once: the first writes an intent (the amount to
    //~ /// credit), the second moves it into the balance together with the applied record. A
    //~ /// crash between them leaves the intent, which the redelivery finds and completes.
    //~ fn credit_once(&mut self, message_id: u64, amount_cents: i64) {
    //~     let (applied, intent) = (applied_key(message_id), intent_key(message_id));
    //~     self.db.transaction(|tx| {
    //~         if !tx.contains(&applied) {
    //~             tx.insert_if_absent(&intent, amount_cents);
    //~         }
    //~     });
    //~     self.db.transaction(|tx| {
    //~         if let Some(pending_cents) = tx.delete(&intent) {
    //~             tx.add(BALANCE_KEY, pending_cents);
    //~             tx.put(&applied, 1);
    //~         }
    //~     });
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
//~ wrong: seen-set-in-consumer
//~ pub struct Consumer {
//~     seen_message_ids: BTreeSet<u64>,
//~ }
//~ alt: memory-cache-over-store-marks
//~ pub struct Consumer {
//~     /// Ids this process saw applied: a cache that spares a trip to the ledger. The
//~     /// ledger's record stays the truth; the cache only ever holds ids it holds too.
//~     known_applied: BTreeSet<u64>,
//~ }
//~ end

impl Consumer {
    /// A freshly started consumer process.
    pub fn new() -> Self {
        //~ site: dedupe-by-amount
        Self
        //~ broken:
        //~ Self::default()
        //~ wrong: seen-set-in-consumer
        //~ Self::default()
        //~ alt: memory-cache-over-store-marks
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
        //~ wrong: dedupe-by-body
        //~ ledger.credit_once(&delivery.body, amount_cents);
        //~ wrong: seen-set-in-consumer
        //~ if self.seen_message_ids.insert(delivery.id) {
        //~     ledger.credit(amount_cents);
        //~ }
        //~ wrong: first-attempt-only
        //~ // A redelivery means the first attempt got this far; only the first one credits.
        //~ if delivery.attempt == 1 {
        //~     ledger.credit(amount_cents);
        //~ }
        //~ alt: memory-cache-over-store-marks
        //~ if self.known_applied.contains(&delivery.id) {
        //~     return;
        //~ }
        //~ ledger.credit_once(delivery.id, amount_cents);
        //~ self.known_applied.insert(delivery.id);
        //~ end
    }
}
