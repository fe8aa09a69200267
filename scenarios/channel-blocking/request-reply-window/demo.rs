//! The demo for channel-blocking/request-reply-window: the broker asks the pricer for two
//! quotes over two rendezvous channels (each holds no message), under every schedule of the
//! two threads.
//!
//! The search is shuttle's depth-first one (`crate::schedules`): every order in which the
//! threads' steps can interleave. The wrong way lets two requests go unanswered, one more
//! than the channels (none) and the pricer's hands (one) can hold: the broker ends up waiting to send on a
//! full `requests` while the pricer waits to send on a full `replies`, and the demo draws
//! where each thread stopped (the lines each thread logs before a call that can block). The
//! right way reads a quote before it could get there, and returns four quotes in every
//! schedule there is.

use super::hunt::*;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::trace::{EventKind, Trace};
use crate::schedules::every_schedule;

/// The smallest channels that show the cycle: few messages, few schedules.
const SETTINGS: Settings = Settings {
    requests_capacity: 0,
    replies_capacity: 0,
};
/// One more request than the channels and the pricer's hands hold together.
const REQUESTS: u64 = 2;
/// A bound on the search, far above the schedules of two threads and two requests.
const SCHEDULES_MAX: usize = 20_000;

/// The program's log, drawn: each line a thread writes before a call that can block.
fn log_into(trace: &Trace) -> Log {
    let trace = trace.clone();
    Log::new(move |thread, what| {
        let kind = if what.contains("waits to send") {
            EventKind::Send
        } else if what.contains("waits for") {
            EventKind::Deliver
        } else {
            EventKind::Note
        };
        let request = what
            .split("request ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse::<u64>().ok());
        let event = trace.event(thread, kind).note(what);
        match request {
            Some(id) => event.msg(id).record(),
            None => event.record(),
        }
    })
}

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let explored = every_schedule(SCHEDULES_MAX, |trace| {
        let batch: Vec<Request> = (1..=REQUESTS)
            .map(|id| Request { id, sku: 7 * id })
            .collect();
        let quotes = quote_all(batch, SETTINGS, &log_into(trace));
        trace
            .event(BROKER, EventKind::Note)
            .note(format!("quote_all returned {} quotes", quotes.len()))
            .record();
        let missing: Vec<String> = (1..=REQUESTS)
            .filter(|id| quotes.iter().filter(|quote| quote.id == *id).count() != 1)
            .map(|id| id.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            trace
                .event(BROKER, EventKind::Lost)
                .note("a quote is missing or doubled")
                .record();
            Err(format!(
                "quote_all returned {} quotes for {REQUESTS} requests; requests {} did not get exactly one",
                quotes.len(),
                missing.join(", ")
            ))
        }
    });
    explored.demo_run()
}
