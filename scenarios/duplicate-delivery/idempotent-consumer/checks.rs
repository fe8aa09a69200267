//! Checks for the payments consumer: on an at-least-once broker, with lost acks, crashes and
//! restarts, every payment is credited exactly once.

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::clock::Clock;
use bughunt_kit::fault::{Fault, FaultPlan};
use bughunt_kit::invariant::{self, Violation};
use bughunt_kit::queue::{Broker, Delivery};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

const VISIBILITY_TIMEOUT_MS: u64 = 30_000;
/// The amount of the two different payments that look alike.
const SAME_AMOUNT_CENTS: i64 = 1_000;

/// The broker, the ledger and the network between them, acted out under a fault plan.
struct Harness {
    clock: Clock,
    broker: Broker,
    ledger: Ledger,
    plan: FaultPlan,
    trace: Trace,
    ack_count: u64,
}

impl Harness {
    fn new(ctx: &Ctx, plan: FaultPlan) -> Self {
        let clock = Clock::new();
        Self {
            broker: Broker::new(clock.clone(), VISIBILITY_TIMEOUT_MS),
            clock,
            ledger: Ledger::new(),
            plan,
            trace: ctx.trace.clone(),
            ack_count: 0,
        }
    }

    fn advance_past_timeout(&self) {
        self.trace
            .set_time_ms(self.clock.advance_ms(VISIBILITY_TIMEOUT_MS));
    }

    fn send(&mut self, amount_cents: i64) -> u64 {
        let id = self
            .broker
            .send(amount_cents.to_string())
            .expect("the broker has room for a few payments");
        self.trace
            .event("producer", EventKind::Send)
            .to("broker")
            .msg(id)
            .note(format!("pay {amount_cents} cents"))
            .record();
        id
    }

    /// The broker hands `consumer` the next visible message, which must be `expected_id`.
    fn receive(&mut self, consumer: &str, expected_id: u64) -> Delivery {
        let delivery = self.broker.receive();
        let Some(delivery) = delivery.filter(|d| d.id == expected_id) else {
            panic!("the broker should have delivered m{expected_id} to {consumer} now");
        };
        let kind = if delivery.attempt == 1 {
            EventKind::Deliver
        } else {
            EventKind::Redeliver
        };
        self.trace
            .event("broker", kind)
            .to(consumer)
            .msg(delivery.id)
            .note(format!("attempt {}", delivery.attempt))
            .record();
        delivery
    }

    /// Runs the learner's `handle`; a change in the balance is the payment's effect.
    fn handle(&mut self, name: &str, consumer: &mut Consumer, delivery: &Delivery) {
        let before_cents = self.ledger.balance_cents();
        consumer.handle(&mut self.ledger, delivery);
        let after_cents = self.ledger.balance_cents();
        let id = delivery.id;
        if after_cents != before_cents {
            self.trace
                .event(name, EventKind::Process)
                .to("ledger")
                .msg(id)
                .note(format!("{:+} cents, balance {after_cents}", after_cents - before_cents))
                .record();
        } else {
            self.trace
                .event(name, EventKind::Note)
                .msg(id)
                .note(format!("m{id} skipped, balance stays {after_cents}"))
                .record();
        }
    }

    /// `consumer` acks; the plan decides whether the ack reaches the broker.
    fn ack(&mut self, consumer: &str, id: u64) {
        self.ack_count += 1;
        if self.plan.drops_ack(self.ack_count) {
            self.trace
                .event(consumer, EventKind::AckLost)
                .to("broker")
                .msg(id)
                .note("lost on the network")
                .record();
        } else {
            self.broker.ack(id);
            self.trace.event(consumer, EventKind::Ack).to("broker").msg(id).record();
        }
    }

    /// `name`'s process goes away while m`id` is unfinished business; a new one starts.
    fn restart(&self, name: &str, id: u64, why: &str) -> Consumer {
        self.trace
            .event(name, EventKind::Crash)
            .msg(id)
            .note(format!("{why}; a new {name} starts on the same ledger"))
            .record();
        Consumer::new()
    }

    fn balance_cents(&self) -> i64 {
        self.ledger.balance_cents()
    }

    /// Draws the violations into the trace and fails the stage with `message`.
    #[track_caller]
    fn fail_with(&self, violations: &[Violation], message: String) -> ! {
        invariant::mark(&self.trace, violations);
        panic!("{message}");
    }
}

/// One payment, its ack lost, redelivered after the timeout: credited once.
fn lost_ack_redelivery(ctx: &mut Ctx) {
    let plan = FaultPlan::new(vec![Fault::DropAck { nth: 1, repeat: false }]);
    let mut run = Harness::new(ctx, plan);
    let mut c1 = Consumer::new();
    let id = run.send(2_500);

    let first = run.receive("c1", id);
    run.handle("c1", &mut c1, &first);
    run.ack("c1", id);
    run.advance_past_timeout();
    let again = run.receive("c1", id);
    run.handle("c1", &mut c1, &again);
    run.ack("c1", id);

    let balance = run.balance_cents();
    if balance != 2_500 {
        let mut violations = invariant::exactly_once_effects(&run.trace);
        violations.extend(invariant::at_least_once(&run.trace));
        run.fail_with(
            &violations,
            format!(
                "m{id} pays 2500 cents and the balance is {balance}: c1 handled m{id}, its ack \
                 was lost on the network, the broker redelivered m{id} after its visibility \
                 timeout of {VISIBILITY_TIMEOUT_MS} ms, and c1 handled it again. The second \
                 delivery is the same payment, not a new one"
            ),
        );
    }
}

/// Two different payments of the same amount are two payments.
fn distinct_payments_both_count(ctx: &mut Ctx) {
    let mut run = Harness::new(ctx, FaultPlan::none());
    let mut c1 = Consumer::new();
    let first = run.send(SAME_AMOUNT_CENTS);
    let second = run.send(SAME_AMOUNT_CENTS);
    for id in [first, second] {
        let delivery = run.receive("c1", id);
        run.handle("c1", &mut c1, &delivery);
        run.ack("c1", id);
    }

    let balance = run.balance_cents();
    if balance != 2 * SAME_AMOUNT_CENTS {
        let mut violations = invariant::at_least_once(&run.trace);
        violations.extend(invariant::exactly_once_effects(&run.trace));
        run.fail_with(
            &violations,
            format!(
                "m{first} and m{second} are two different payments of {SAME_AMOUNT_CENTS} cents \
                 each, each delivered once, and the balance is {balance} cents, not {}: a \
                 payment that looks like another one is not a duplicate of it",
                2 * SAME_AMOUNT_CENTS
            ),
        );
    }
}

/// A consumer crashes before crediting; the redelivery must credit.
fn redelivery_after_crash_counts(ctx: &mut Ctx) {
    let mut run = Harness::new(ctx, FaultPlan::none());
    let id = run.send(700);

    run.receive("c1", id);
    let mut c1 = run.restart("c1", id, &format!("c1 crashed holding m{id}, before handling it"));
    run.advance_past_timeout();
    let again = run.receive("c1", id);
    run.handle("c1", &mut c1, &again);
    run.ack("c1", id);

    let balance = run.balance_cents();
    if balance != 700 {
        let mut violations = invariant::at_least_once(&run.trace);
        violations.extend(invariant::exactly_once_effects(&run.trace));
        run.fail_with(
            &violations,
            format!(
                "m{id} pays 700 cents and the balance is {balance}: c1 crashed after receiving \
                 m{id}, before crediting anything; the broker redelivered m{id} (attempt {}) \
                 and it was not credited then either. A redelivery is not always a duplicate",
                again.attempt
            ),
        );
    }
}

/// A consumer restarts between a delivery and its redelivery: still credited once.
fn dedupe_survives_restart(ctx: &mut Ctx) {
    let plan = FaultPlan::new(vec![Fault::DropAck { nth: 1, repeat: false }]);
    let mut run = Harness::new(ctx, plan);
    let mut c1 = Consumer::new();
    let id = run.send(4_200);

    let first = run.receive("c1", id);
    run.handle("c1", &mut c1, &first);
    run.ack("c1", id);
    let mut c1 = run.restart("c1", id, &format!("c1 restarts (a deploy) after handling m{id}"));
    run.advance_past_timeout();
    let again = run.receive("c1", id);
    run.handle("c1", &mut c1, &again);
    run.ack("c1", id);

    let balance = run.balance_cents();
    if balance != 4_200 {
        let mut violations = invariant::exactly_once_effects(&run.trace);
        violations.extend(invariant::at_least_once(&run.trace));
        run.fail_with(
            &violations,
            format!(
                "m{id} pays 4200 cents and the balance is {balance}: c1 credited m{id}, its ack \
                 was lost, c1 restarted, and the new c1 credited the redelivery of m{id} again. \
                 What a consumer process remembers dies with it; the ledger does not"
            ),
        );
    }
}

#[test]
fn checks() {
    run_stages(
        "idempotent-consumer",
        &[
            Stage {
                id: "lost-ack-redelivery",
                title: "A payment redelivered after a lost ack is credited once",
                mentor: "The consumer did its job; only the ack got lost. The broker cannot \
                         tell that from a crash, so it delivers again: at-least-once means this \
                         will happen. What could tell the second delivery from a new payment?",
                run: lost_ack_redelivery,
            },
            Stage {
                id: "distinct-payments-both-count",
                title: "Two different payments of the same amount both count",
                mentor: "Close! Redeliveries are caught, but so is a real payment. Two customers \
                         can pay 10.00 in the same minute. What identifies a message, as opposed \
                         to what it says?",
                run: distinct_payments_both_count,
            },
            Stage {
                id: "redelivery-after-crash-counts",
                title: "A redelivery after a crash before crediting still counts",
                mentor: "Better! But a redelivery is not always a duplicate: here the first \
                         consumer crashed before it credited anything, so the money never \
                         arrived. Who knows for sure whether a message's payment is already in?",
                run: redelivery_after_crash_counts,
            },
            Stage {
                id: "dedupe-survives-restart",
                title: "Deduplication survives a consumer restart",
                mentor: "Nearly there! You key on the message id, but the memory of which ids \
                         were applied lives in the consumer process, and a restart forgets it. \
                         Keep it where the money is, and change both together.",
                run: dedupe_survives_restart,
            },
        ],
    );
}
