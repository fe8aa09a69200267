//! 1000 jobs dealt round-robin to 4 consumers, each with its own channel, 10 ms of work per
//! job. The service asks all four to shut down at 2495 ms, when every consumer is halfway
//! through its 250th and last job and its channel is empty. The producer still holds its
//! senders, as a live service does. One deadline of 5 s covers the whole shutdown.
//!
//! Everything runs on tokio's paused clock, so the 5 s deadline costs no real time. A
//! consumer is never offered a job and the stop signal at the same instant, so the run is
//! the same every time.

use std::time::Duration;

use super::hunt::*;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::invariant;
use bughunt_kit::paused;
use bughunt_kit::sink::Sink;
use bughunt_kit::trace::{EventKind, Trace};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout_at, Instant};

const JOB_COUNT: u64 = 1_000;
const CONSUMER_COUNT: u64 = 4;
const CHANNEL_CAPACITY: usize = 64;
const WORK_MS: u64 = 10;
/// Halfway through every consumer's last job: (1000 / 4 - 1) * 10 ms + 5 ms.
const SHUTDOWN_AT_MS: u64 = (JOB_COUNT / CONSUMER_COUNT - 1) * WORK_MS + WORK_MS / 2;
const SHUTDOWN_DEADLINE_MS: u64 = 5_000;

struct Outcome {
    /// Where the drawing starts: the shutdown request.
    shutdown_seq: u64,
    /// From asking to the last shutdown returning, or to the deadline if one never did.
    waited_ms: u64,
    never_returned: u64,
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

    let took_ms = (outcome.never_returned == 0).then_some(outcome.waited_ms);
    let violations = invariant::shutdown_within(took_ms, SHUTDOWN_DEADLINE_MS, outcome.tasks_alive);
    let processed = sink.finished().len() as u64;
    let cut_off = sink.cut_off().len() as u64;
    DemoRun::new(&trace, violations)
        .focus_from_seq(outcome.shutdown_seq)
        .count("jobs sent", JOB_COUNT)
        .count("processed", processed)
        .count("shutdown wait (simulated ms)", outcome.waited_ms)
        .bad_count("shutdowns that never returned", outcome.never_returned)
        .bad_count("LEAKED tasks", outcome.tasks_alive)
        .bad_count("jobs cut off mid-work", cut_off)
}

async fn serve_then_shut_down(trace: &Trace, sink: &Sink) -> Outcome {
    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    for slot in 1..=CONSUMER_COUNT {
        let (producer, jobs) = mpsc::channel(CHANNEL_CAPACITY);
        producers.push(producer);
        consumers.push(Consumer::spawn(jobs, sink.with_actor(format!("c{slot}"))));
    }

    for id in 1..=JOB_COUNT {
        let slot = ((id - 1) % CONSUMER_COUNT) as usize;
        trace.set_time_ms(now_ms());
        trace
            .event("producer", EventKind::Send)
            .to(format!("c{}", slot + 1))
            .msg(id)
            .record();
        producers[slot]
            .send(Job { id })
            .await
            .expect("a consumer dropped its end of the jobs channel while the service ran");
    }

    sleep_until(start + Duration::from_millis(SHUTDOWN_AT_MS)).await;
    trace.set_time_ms(now_ms());
    let shutdown_seq = trace.next_seq();
    let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_DEADLINE_MS);
    for slot in 1..=CONSUMER_COUNT {
        trace
            .event("service", EventKind::Shutdown)
            .to(format!("c{slot}"))
            .note("shutdown(), with the producer's sender still open")
            .record();
    }
    let Ok([c1, c2, c3, c4]) = <[Consumer; CONSUMER_COUNT as usize]>::try_from(consumers) else {
        unreachable!("one consumer per slot");
    };
    // All four shut down at once, under one deadline, as a service stopping would do it.
    let returned = tokio::join!(
        shut_down(trace, start, "c1", c1, deadline),
        shut_down(trace, start, "c2", c2, deadline),
        shut_down(trace, start, "c3", c3, deadline),
        shut_down(trace, start, "c4", c4, deadline),
    );
    let never_returned = [returned.0, returned.1, returned.2, returned.3]
        .iter()
        .filter(|returned| !**returned)
        .count() as u64;
    let waited_ms = now_ms() - SHUTDOWN_AT_MS;
    let tasks_alive = paused::tasks_alive();
    if tasks_alive > 0 {
        trace
            .event("service", EventKind::Leak)
            .note(format!(
                "{tasks_alive} consumer task(s) still running after shutdown"
            ))
            .record();
    }
    // The producer lets go only now: until shutdown is over, every channel stays open.
    drop(producers);
    Outcome {
        shutdown_seq,
        waited_ms,
        never_returned,
        tasks_alive,
    }
}

/// Shuts `consumer` down by `deadline` and draws the outcome; false if it never returned.
async fn shut_down(
    trace: &Trace,
    start: Instant,
    name: &str,
    consumer: Consumer,
    deadline: Instant,
) -> bool {
    let returned = timeout_at(deadline, consumer.shutdown()).await.is_ok();
    trace.set_time_ms(start.elapsed().as_millis() as u64);
    if returned {
        trace.event(name, EventKind::Exit).record();
    } else {
        trace
            .event(name, EventKind::Leak)
            .note("shutdown() had not returned by the deadline: the task still waits in recv()")
            .record();
    }
    returned
}
