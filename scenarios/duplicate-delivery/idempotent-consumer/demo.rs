//! 1000 payments of varied amounts through the kit's at-least-once broker to one consumer,
//! one receive per step of the clock. Lost acks (from the plan) make the broker redeliver
//! those payments once their visibility timeout has passed.

use super::hunt::*;
use bughunt_kit::clock::Clock;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::invariant;
use bughunt_kit::ledger::Store;
use bughunt_kit::queue::Broker;
use bughunt_kit::trace::{EventKind, Trace};

const PAYMENT_COUNT: u64 = 1_000;
const VISIBILITY_TIMEOUT_MS: u64 = 2_000;
const STEP_MS: u64 = 100;
/// Far more steps than the run needs (one per delivery, plus waits for the timeouts), so a
/// broker that never empties still ends the demo.
const STEPS_MAX: u64 = 20_000;

/// Amounts from 1.00 to 99.99, spread so that many payments share an amount.
fn amount_cents(n: u64) -> i64 {
    100 + (n * 7_919 % 9_900) as i64
}

pub fn run(plan: &FaultPlan) -> DemoRun {
    let clock = Clock::new();
    let trace = Trace::new();
    let mut broker = Broker::new(clock.clone(), VISIBILITY_TIMEOUT_MS);
    let mut ledger = Ledger::open(Store::new());
    let mut consumer = Consumer::new();

    let mut expected_cents = 0i64;
    for n in 1..=PAYMENT_COUNT {
        let amount = amount_cents(n);
        expected_cents += amount;
        let id = broker
            .send(amount.to_string())
            .expect("1000 payments fit in the broker");
        trace
            .event("producer", EventKind::Send)
            .to("broker")
            .msg(id)
            .note(format!("pay {amount} cents"))
            .record();
    }

    let (mut ack_count, mut effects, mut redelivered) = (0u64, 0u64, 0u64);
    for _ in 0..STEPS_MAX {
        if broker.depth() == 0 {
            break;
        }
        trace.set_time_ms(clock.advance_ms(STEP_MS));
        let Some(delivery) = broker.receive() else {
            continue;
        };
        let id = delivery.id;
        let kind = if delivery.attempt == 1 {
            EventKind::Deliver
        } else {
            redelivered += 1;
            EventKind::Redeliver
        };
        trace.event("broker", kind).to("c1").msg(id).record();

        let before_cents = ledger.balance_cents();
        consumer.handle(&mut ledger, &delivery);
        let after_cents = ledger.balance_cents();
        if after_cents != before_cents {
            effects += 1;
            trace
                .event("c1", EventKind::Process)
                .to("ledger")
                .msg(id)
                .note(format!("{:+} cents", after_cents - before_cents))
                .record();
        }

        ack_count += 1;
        if plan.drops_ack(ack_count) {
            trace
                .event("c1", EventKind::AckLost)
                .to("broker")
                .msg(id)
                .note(format!("the ack of m{id} is lost on the network"))
                .record();
        } else {
            broker.ack(id);
            trace
                .event("c1", EventKind::Ack)
                .to("broker")
                .msg(id)
                .record();
        }
    }

    let never_paid = invariant::at_least_once(&trace);
    let paid_messages = PAYMENT_COUNT - never_paid.len() as u64;
    let duplicated_effects = effects.saturating_sub(paid_messages);
    let balance_error_cents = ledger.balance_cents().abs_diff(expected_cents);
    let mut violations = invariant::exactly_once_effects(&trace);
    violations.extend(never_paid);
    DemoRun::new(&trace, violations)
        .count("sent", PAYMENT_COUNT)
        .count("redelivered", redelivered)
        .count("effects applied", effects)
        .bad_count("DUPLICATED", duplicated_effects)
        .bad_count("balance error (cents)", balance_error_cents)
}
