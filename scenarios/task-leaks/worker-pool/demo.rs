//! 1000 jobs submitted to a pool of 4 workers, 10 ms of work each, on a channel of 256
//! places. Monitoring takes a gauge at the start and keeps it, as a metrics exporter does.
//! The producer is done submitting at about 1850 ms; the service shuts the pool down at
//! 2485 ms, with four jobs in the sink and four still queued, under a 5 s deadline.
//!
//! Everything runs on tokio's paused clock, so the deadline costs no real time, and one task
//! submits, so the run is the same every time.

use std::time::Duration;

use super::hunt::*;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::invariant;
use bughunt_kit::paused;
use bughunt_kit::sink::Sink;
use bughunt_kit::trace::{EventKind, Trace};
use tokio::time::{sleep_until, timeout, Instant};

const JOB_COUNT: u64 = 1_000;
const WORKER_COUNT: usize = 4;
const CHANNEL_CAPACITY: usize = 256;
const WORK_MS: u64 = 10;
const SHUTDOWN_AT_MS: u64 = 2_485;
const SHUTDOWN_DEADLINE_MS: u64 = 5_000;

struct Outcome {
    shutdown_seq: u64,
    waited_ms: u64,
    returned: bool,
    tasks_alive: u64,
}

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let trace = Trace::new();
    // The sink is made on the paused runtime, so its times count from that clock's start.
    let (sink, outcome) = paused::block_on(async {
        let sink = Sink::new(trace.clone(), WORK_MS);
        let outcome = serve_then_shut_down(&trace, &sink).await;
        (sink, outcome)
    });

    let took_ms = outcome.returned.then_some(outcome.waited_ms);
    let violations = invariant::shutdown_within(took_ms, SHUTDOWN_DEADLINE_MS, outcome.tasks_alive);
    let done = sink.finished().len() as u64;
    DemoRun::new(&trace, violations)
        .focus_from_seq(outcome.shutdown_seq)
        .count("jobs submitted", JOB_COUNT)
        .count("done", done)
        .count("shutdown wait (simulated ms)", outcome.waited_ms)
        .bad_count(
            "shutdowns that never returned",
            u64::from(!outcome.returned),
        )
        .bad_count("LEAKED tasks", outcome.tasks_alive)
        .bad_count("jobs never done", JOB_COUNT - done)
}

async fn serve_then_shut_down(trace: &Trace, sink: &Sink) -> Outcome {
    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let pool = Pool::start(WORKER_COUNT, CHANNEL_CAPACITY, sink.clone());
    let gauge = pool.gauge();
    for id in 1..=JOB_COUNT {
        trace.set_time_ms(now_ms());
        trace
            .event("producer", EventKind::Send)
            .to("pool")
            .msg(id)
            .record();
        pool.submit(Job { id })
            .await
            .expect("the pool gave a job back while it was running");
    }

    sleep_until(start + Duration::from_millis(SHUTDOWN_AT_MS)).await;
    trace.set_time_ms(now_ms());
    let shutdown_seq = trace.next_seq();
    trace
        .event("service", EventKind::Shutdown)
        .to("pool")
        .note(format!(
            "shutdown() with {} jobs queued; monitoring still holds its gauge",
            gauge.waiting()
        ))
        .record();
    let returned = timeout(Duration::from_millis(SHUTDOWN_DEADLINE_MS), pool.shutdown())
        .await
        .is_ok();
    let waited_ms = now_ms() - SHUTDOWN_AT_MS;
    trace.set_time_ms(now_ms());
    if returned {
        trace.event("pool", EventKind::Exit).to("service").record();
    } else {
        trace
            .event("pool", EventKind::Leak)
            .note("shutdown() had not returned by the deadline: the workers still wait in recv()")
            .record();
    }
    let tasks_alive = paused::tasks_alive_after_settling().await;
    if tasks_alive > 0 {
        trace
            .event("runtime", EventKind::Leak)
            .note(format!("{tasks_alive} worker task(s) still alive"))
            .record();
    }
    drop(gauge);
    Outcome {
        shutdown_seq,
        waited_ms,
        returned,
        tasks_alive,
    }
}
