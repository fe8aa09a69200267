//! Checks for the job consumer: shutdown returns while the producer's sender is still open,
//! leaves no task behind, and lets a job already in the sink finish.
//!
//! Everything runs on tokio's paused clock (`bughunt_kit::paused::block_on`): a consumer that
//! never stops costs the 5-second bound in simulated time, not in real time. Only one job is
//! ever in play, so the consumer never has a job and the stop signal ready at the same
//! instant, and the verdict does not depend on which branch a `select!` happens to try first.

use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::invariant::{self, Violation};
use bughunt_kit::paused;
use bughunt_kit::sink::Sink;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

/// How long the service waits for `shutdown` before calling the consumer stuck.
const SHUTDOWN_BOUND_MS: u64 = 5_000;
/// The jobs channel's capacity; the checks send one job.
const CHANNEL_CAPACITY: usize = 8;
/// The job the checks send.
const JOB: u64 = 1;
/// Work time of m1 when it is long done before shutdown comes.
const QUICK_WORK_MS: u64 = 10;
/// When the service asks an idle consumer to shut down.
const IDLE_SHUTDOWN_AT_MS: u64 = 50;
/// Work time of m1 when shutdown comes halfway through it.
const IN_FLIGHT_WORK_MS: u64 = 100;

/// What one run of "start, send m1, shut down while the producer's sender is open" saw.
struct Outcome {
    sink: Sink,
    shutdown_at_ms: u64,
    /// How long `shutdown` took, or None if it had not returned within the bound.
    took_ms: Option<u64>,
    /// Tasks still alive right after `shutdown` returned (or gave up).
    tasks_alive: u64,
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Starts a consumer whose every job takes `work_ms`, sends it m1 at 0 ms, and calls
/// `shutdown` at `shutdown_at_ms`, bounded by `SHUTDOWN_BOUND_MS`. The producer keeps its
/// sender open throughout, as a live service does.
fn shut_down(trace: &Trace, work_ms: u64, shutdown_at_ms: u64) -> Outcome {
    let sink = Sink::new(trace.clone(), work_ms);
    let (took_ms, tasks_alive) = paused::block_on(async {
        let start = Instant::now();
        let (producer, jobs) = mpsc::channel(CHANNEL_CAPACITY);
        let consumer = Consumer::spawn(jobs, sink.clone());

        trace
            .event("producer", EventKind::Send)
            .to("consumer")
            .msg(JOB)
            .record();
        producer
            .send(Job { id: JOB })
            .await
            .expect("the consumer dropped its end of the jobs channel before shutdown");

        sleep_until(start + Duration::from_millis(shutdown_at_ms)).await;
        trace.set_time_ms(shutdown_at_ms);
        trace
            .event("service", EventKind::Shutdown)
            .to("consumer")
            .note("shutdown(), with the producer's sender still open")
            .record();
        let asked = Instant::now();
        let returned = timeout(
            Duration::from_millis(SHUTDOWN_BOUND_MS),
            consumer.shutdown(),
        )
        .await;
        let took_ms = returned.ok().map(|()| elapsed_ms(asked));
        let tasks_alive = paused::tasks_alive();
        trace.set_time_ms(elapsed_ms(start));
        match took_ms {
            Some(ms) => trace
                .event("consumer", EventKind::Exit)
                .note(format!("shutdown() returned after {ms} ms"))
                .record(),
            None => trace
                .event("consumer", EventKind::Leak)
                .note(format!(
                    "shutdown() had not returned {SHUTDOWN_BOUND_MS} ms after it was asked"
                ))
                .record(),
        }
        if tasks_alive > 0 {
            trace
                .event("consumer", EventKind::Leak)
                .note(format!(
                    "{tasks_alive} task(s) still running after shutdown()"
                ))
                .record();
        }
        // The producer lets go only now: until shutdown is over, the channel stays open.
        drop(producer);
        (took_ms, tasks_alive)
    });
    Outcome {
        sink,
        shutdown_at_ms,
        took_ms,
        tasks_alive,
    }
}

/// Draws the violations into the trace and fails the stage with them and `context`.
fn require(ctx: &Ctx, violations: Vec<Violation>, context: &str) {
    if violations.is_empty() {
        return;
    }
    invariant::mark(&ctx.trace, &violations);
    let details: Vec<String> = violations.into_iter().map(|v| v.detail).collect();
    panic!("{}: {context}", details.join("; "));
}

/// m1 is long done and the consumer is idle, waiting for a job that will never come; the
/// producer's sender is still open. Shutdown must return anyway.
fn shutdown_returns(ctx: &mut Ctx) {
    let outcome = shut_down(&ctx.trace, QUICK_WORK_MS, IDLE_SHUTDOWN_AT_MS);
    require(
        ctx,
        // Whether the task is really gone is the next stage's question.
        invariant::shutdown_within(outcome.took_ms, SHUTDOWN_BOUND_MS, 0),
        &format!(
            "m{JOB} was done at {QUICK_WORK_MS} ms and the consumer sat idle; at {} ms the service asked it to \
             shut down while the producer still held its sender, and the consumer never heard",
            outcome.shutdown_at_ms
        ),
    );
}

/// When shutdown returns, the consumer task is gone: it cannot touch the sink afterwards.
fn no_task_left(ctx: &mut Ctx) {
    let outcome = shut_down(&ctx.trace, QUICK_WORK_MS, IDLE_SHUTDOWN_AT_MS);
    require(
        ctx,
        invariant::shutdown_within(outcome.took_ms, SHUTDOWN_BOUND_MS, outcome.tasks_alive),
        &format!(
            "shutdown() returned at {} ms, but the consumer task had not ended: the caller now \
             closes the sink while something may still use it, and each restart leaks one more task",
            outcome.shutdown_at_ms + outcome.took_ms.unwrap_or(0)
        ),
    );
}

/// Shutdown comes while m1 is halfway through its work in the sink: m1 must still finish.
fn in_flight_finishes(ctx: &mut Ctx) {
    let outcome = shut_down(&ctx.trace, IN_FLIGHT_WORK_MS, IN_FLIGHT_WORK_MS / 2);
    let cut_off = outcome.sink.cut_off();
    if !cut_off.is_empty() {
        for job in &cut_off {
            ctx.trace
                .event("sink", EventKind::Lost)
                .msg(*job)
                .note("cut off mid-work by shutdown")
                .record();
        }
        let named: Vec<String> = cut_off.iter().map(|job| format!("m{job}")).collect();
        panic!(
            "{} started in the sink at 0 ms and needed {IN_FLIGHT_WORK_MS} ms; shutdown came at {} ms and the \
             work was cut off halfway, never finished: a half-written row, a charge without its \
             receipt",
            named.join(", "),
            outcome.shutdown_at_ms
        );
    }
    require(
        ctx,
        invariant::shutdown_within(outcome.took_ms, SHUTDOWN_BOUND_MS, outcome.tasks_alive),
        &format!(
            "shutdown came at {} ms while m{JOB} was in the sink",
            outcome.shutdown_at_ms
        ),
    );
    let finished = outcome.sink.finished();
    assert!(
        finished == vec![JOB],
        "m{JOB} was in the sink when shutdown came at {} ms; it should have finished exactly \
         once, and the sink finished {finished:?}",
        outcome.shutdown_at_ms
    );
}

#[test]
fn checks() {
    run_stages(
        "cancel-and-join",
        &[
            Stage {
                id: "shutdown-returns",
                title: "Shutdown returns while the producer is still connected",
                mentor:
                    "The consumer is idle and the service wants to stop. Where is the consumer \
                         task waiting right now, and what would have to happen for that wait to \
                         end? Does shutdown make it happen? (A flag the loop checks between jobs \
                         is never read while the task waits for the next one.)",
                run: shutdown_returns,
            },
            Stage {
                id: "no-task-left",
                title: "When shutdown returns, the consumer task is gone",
                mentor: "Close! Shutdown returns now, but it returns before the task has ended. \
                         Telling a task to stop is half of shutdown; the other half is waiting \
                         until it has. A deadline that gives up on the task, or a signal you \
                         don't wait out, leaves a task running behind your back.",
                run: no_task_left,
            },
            Stage {
                id: "in-flight-finishes",
                title: "A job already in the sink finishes before shutdown returns",
                mentor: "Better! Nothing is left running. But the task was ended in the middle of \
                         a job. Killing the task stops it anywhere it awaits, including halfway \
                         through the work, and so does racing the stop signal against the work \
                         itself. Where is the one place the consumer can stop without leaving a \
                         job half done?",
                run: in_flight_finishes,
            },
        ],
    );
}
