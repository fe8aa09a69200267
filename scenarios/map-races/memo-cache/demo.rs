//! The demo for map-races/memo-cache: two consumers ask the cache for the same customer's
//! routing rule at once, on an empty cache, under every schedule of their threads.
//!
//! The search is shuttle's depth-first one (`crate::schedules`): every order in which the
//! threads' steps can interleave. The wrong way lets both consumers miss and both ask the
//! routing service, and they route with different rules; the demo draws the first such
//! schedule. The right way asks the routing service once, and both consumers get that one
//! rule, in every schedule there is.

use std::sync::atomic::{AtomicU64, Ordering};

use super::hunt::*;
use crate::schedules::{every_schedule, sync::Arc, thread};
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::trace::{EventKind, Trace};

/// The consumers that route a message of the same customer at once.
const CONSUMERS: [&str; 2] = ["c1", "c2"];
/// The customer whose rule both ask for.
const CUSTOMER: u64 = 7;
/// A bound on the search, far above the schedules of two short threads.
const SCHEDULES_MAX: usize = 20_000;

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let explored = every_schedule(SCHEDULES_MAX, |trace| {
        // The routing service: counts its calls (a std atomic, no schedule point of its own)
        // and hands out version 10·n on its n-th call.
        let loads = std::sync::Arc::new(AtomicU64::new(0));
        let service = loads.clone();
        let service_trace = trace.clone();
        let cache = Arc::new(RouteCache::new(move |customer| {
            let nth = service.fetch_add(1, Ordering::SeqCst) + 1;
            let version = 10 * nth;
            let caller = thread::current().name().unwrap_or("a consumer").to_owned();
            service_trace
                .event("routing-service", EventKind::Process)
                .msg(customer)
                .note(format!(
                    "load {nth} of customer {customer}, for {caller}: version {version}"
                ))
                .record();
            Route {
                customer,
                queue: format!("orders-{customer}-v{version}"),
                version,
            }
        }));
        let consumers: Vec<_> = CONSUMERS
            .iter()
            .map(|&name| {
                let cache = cache.clone();
                let trace: Trace = trace.clone();
                thread::Builder::new()
                    .name(name.to_owned())
                    .spawn(move || {
                        trace
                            .event(name, EventKind::Note)
                            .msg(CUSTOMER)
                            .note("route(7) begins")
                            .record();
                        let route = cache.route(CUSTOMER);
                        trace
                            .event(name, EventKind::Deliver)
                            .msg(CUSTOMER)
                            .note(format!("route(7) returns version {}", route.version))
                            .record();
                        route.version
                    })
                    .expect("a consumer thread starts")
            })
            .collect();
        let versions: Vec<u64> = consumers
            .into_iter()
            .map(|consumer| consumer.join().expect("a consumer thread panicked"))
            .collect();
        let loads = loads.load(Ordering::SeqCst);
        if loads == 1 && versions.iter().all(|version| *version == versions[0]) {
            return Ok(());
        }
        trace
            .event("routing-service", EventKind::Duplicate)
            .msg(CUSTOMER)
            .note(format!("asked {loads} times for one customer"))
            .record();
        Err(format!(
            "c1 and c2 asked for customer 7's rule at once on an empty cache: the routing service \
             was asked {loads} times, and they routed with versions {} and {}",
            versions[0], versions[1]
        ))
    });
    explored.demo_run()
}
