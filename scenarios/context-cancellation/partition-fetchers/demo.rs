//! A consumer of three partitions, 300 messages, 20 to 60 ms of work each. Partition 3 goes
//! idle early, the other two stay busy; the service cancels its token at 3_001 ms, with a
//! message in hand on partitions 1 and 2 and more arriving, then calls `stopped()` under a
//! 5 s deadline. Messages keep arriving after the cancel, as they do in a real log.
//!
//! Everything runs on tokio's paused clock, so the deadline costs no real time, and one
//! future feeds the log in a fixed order, so the run is the same every time.

use std::cell::RefCell;
use std::time::Duration;

use super::hunt::*;
use bughunt_kit::demo::DemoRun;
use bughunt_kit::fault::FaultPlan;
use bughunt_kit::invariant;
use bughunt_kit::paused;
use bughunt_kit::sink::Sink;
use bughunt_kit::tokio_util::sync::CancellationToken;
use bughunt_kit::trace::{EventKind, Trace};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

const MESSAGE_COUNT: u64 = 300;
const PARTITION_COUNT: u64 = 3;
const CANCEL_AT_MS: u64 = 3_001;
const STOP_DEADLINE_MS: u64 = 5_000;
const FIRST_ID: u64 = 101;

/// (id, partition, arrives at ms, work ms), in order of arrival.
fn messages() -> Vec<(u64, u64, u64, u64)> {
    (0..MESSAGE_COUNT)
        .map(|n| {
            let partition = n % PARTITION_COUNT + 1;
            let at_ms = n * 20;
            let work_ms = 20 + (n * 37) % 41;
            (FIRST_ID + n, partition, at_ms, work_ms)
        })
        // Partition 3 gets nothing after its first 20 messages: it is idle at the cancel.
        .filter(|(id, partition, _, _)| *partition != 3 || *id < FIRST_ID + 60)
        .collect()
}

struct Outcome {
    cancel_seq: u64,
    returned: bool,
    waited_ms: u64,
    tasks_alive: u64,
    taken_after_cancel: u64,
    beats_after_cancel: u64,
}

pub fn run(_plan: &FaultPlan) -> DemoRun {
    let trace = Trace::new();
    let plan = messages();
    // The sink is made on the paused runtime, so its times count from that clock's start.
    let (sink, outcome) = paused::block_on(async {
        let sink = Sink::with_work_times(
            trace.clone(),
            20,
            plan.iter().map(|(id, _, _, work_ms)| (*id, *work_ms)),
        );
        let outcome = serve_then_cancel(&trace, &sink, &plan).await;
        (sink, outcome)
    });
    let took_ms = outcome.returned.then_some(outcome.waited_ms);
    let violations = invariant::shutdown_within(took_ms, STOP_DEADLINE_MS, outcome.tasks_alive);
    let works = sink.works();
    let cut_off = works.iter().filter(|work| work.finished_ms.is_none()).count() as u64;
    let sent = plan.len() as u64;
    DemoRun::new(&trace, violations)
        .focus_from_seq(outcome.cancel_seq)
        .count("messages sent", sent)
        .count(
            "taken before the cancel",
            works.len() as u64 - outcome.taken_after_cancel,
        )
        .count(
            "left in the partitions for the next owner",
            sent - works.len() as u64,
        )
        .count("stopped() wait (simulated ms)", outcome.waited_ms)
        .bad_count(
            "messages taken after the cancel",
            outcome.taken_after_cancel,
        )
        .bad_count("beats after the cancel", outcome.beats_after_cancel)
        .bad_count("messages cut off halfway", cut_off)
        .bad_count(
            "stopped() calls that never returned",
            u64::from(!outcome.returned),
        )
        .bad_count("LEAKED tasks", outcome.tasks_alive)
}

async fn serve_then_cancel(
    trace: &Trace,
    sink: &Sink,
    plan: &[(u64, u64, u64, u64)],
) -> Outcome {
    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let service = CancellationToken::new();
    let mut senders = Vec::new();
    let mut partitions = Vec::new();
    for number in 1..=PARTITION_COUNT {
        let (sender, receiver) = mpsc::channel(MESSAGE_COUNT as usize);
        senders.push(sender);
        partitions.push(Partition {
            number: number as u32,
            messages: receiver,
        });
    }
    let (beats, mut beats_seen) = mpsc::unbounded_channel();
    let consumer = Consumer::start(&service, partitions, sink.clone(), beats);
    let beats_after_cancel = RefCell::new(0u64);
    let coordinator = async {
        while let Some(beat) = beats_seen.recv().await {
            trace.set_time_ms(now_ms());
            trace
                .event("heartbeat", EventKind::Note)
                .to("coordinator")
                .note(format!("beat {beat}"))
                .record();
            if now_ms() > CANCEL_AT_MS {
                *beats_after_cancel.borrow_mut() += 1;
            }
        }
        std::future::pending::<()>().await;
    };
    let log = async {
        for (id, partition, at_ms, _) in plan {
            sleep_until(start + Duration::from_millis(*at_ms)).await;
            trace.set_time_ms(*at_ms);
            trace
                .event("log", EventKind::Send)
                .to(format!("f{partition}"))
                .msg(*id)
                .record();
            let _ = senders[*partition as usize - 1].try_send(Message { id: *id });
        }
        std::future::pending::<()>().await;
    };
    let service_side = async {
        sleep_until(start + Duration::from_millis(CANCEL_AT_MS)).await;
        trace.set_time_ms(CANCEL_AT_MS);
        let cancel_seq = trace.next_seq();
        trace
            .event("service", EventKind::Shutdown)
            .to("consumer")
            .note("cancels its token, then stopped()")
            .record();
        service.cancel();
        let returned = timeout(Duration::from_millis(STOP_DEADLINE_MS), consumer.stopped())
            .await
            .is_ok();
        let waited_ms = now_ms() - CANCEL_AT_MS;
        trace.set_time_ms(now_ms());
        if returned {
            trace
                .event("consumer", EventKind::Exit)
                .to("service")
                .record();
        } else {
            trace
                .event("consumer", EventKind::Leak)
                .note("stopped() had not returned by the deadline: the fetchers never heard the cancel")
                .record();
        }
        let tasks_alive = paused::tasks_alive_after_settling().await;
        if tasks_alive > 0 {
            trace
                .event("runtime", EventKind::Leak)
                .note(format!("{tasks_alive} task(s) still alive"))
                .record();
        }
        (cancel_seq, returned, waited_ms, tasks_alive)
    };
    let (cancel_seq, returned, waited_ms, tasks_alive) = tokio::select! {
        biased;
        ended = service_side => ended,
        _ = coordinator => unreachable!("the coordinator never ends"),
        _ = log => unreachable!("the log never ends"),
    };
    let taken_after_cancel = sink
        .works()
        .iter()
        .filter(|work| work.started_ms > CANCEL_AT_MS)
        .count() as u64;
    let beats_after_cancel = beats_after_cancel.into_inner();
    Outcome {
        cancel_seq,
        returned,
        waited_ms,
        tasks_alive,
        taken_after_cancel,
        beats_after_cancel,
    }
}
