//! Checks for `lost-update`: the counts stay exact however the consumers' threads interleave.
//!
//! Each stage runs a tiny workload (two threads, one or two calls each) under every schedule
//! shuttle can produce, so a lost update is found on every run and a correct fix is proven for
//! all interleavings of that workload, not sampled. Every schedule's story is kept while it
//! runs; when one fails, its story is drawn into the stage's trace.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex as StdMutex;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::{every_schedule, explorer_name};
use bughunt_kit::sync::Arc;
use bughunt_kit::thread;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// One thing a thread did in the schedule being explored.
struct Step {
    actor: &'static str,
    kind: EventKind,
    msg: Option<u64>,
    note: String,
}

/// The steps of the schedule being explored, in the order they happened. A std mutex, not the
/// checker's: recording must add no thread switches of its own, and it is never held across one.
#[derive(Clone, Default)]
struct Story {
    steps: std::sync::Arc<StdMutex<Vec<Step>>>,
}

impl Story {
    fn steps(&self) -> std::sync::MutexGuard<'_, Vec<Step>> {
        self.steps.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the previous schedule: a new one starts.
    fn restart(&self) {
        self.steps().clear();
    }

    fn step(&self, actor: &'static str, kind: EventKind, msg: u64, note: impl Into<String>) {
        self.steps().push(Step { actor, kind, msg: Some(msg), note: note.into() });
    }

    /// Records the verdict and fails the schedule with `detail`.
    fn fail(&self, msg: Option<u64>, detail: String) -> ! {
        self.steps().push(Step { actor: "progress", kind: EventKind::Lost, msg, note: detail.clone() });
        panic!("{detail}");
    }

    fn draw_into(&self, trace: &Trace) {
        for step in self.steps().iter() {
            let event = trace.event(step.actor, step.kind).note(step.note.clone());
            match step.msg {
                Some(msg) => event.msg(msg).record(),
                None => event.record(),
            }
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        String::new()
    }
}

/// Runs `test` under every schedule; on a failure, draws the failing schedule into the trace.
fn explore(ctx: &mut Ctx, workload: &str, test: fn(&Story)) {
    ctx.replay(format!(
        "{}: {workload}; every interleaving is tried, in the same order on every run, so the \
         schedule shown here is the one that fails each time",
        explorer_name()
    ));
    let story = Story::default();
    let explored = story.clone();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        every_schedule(move || {
            explored.restart();
            test(&explored);
        })
    }));
    let Err(payload) = outcome else { return };
    story.draw_into(&ctx.trace);
    let text = panic_text(payload.as_ref());
    if text.contains("tried to acquire a Mutex it already holds") {
        ctx.trace.event("progress", EventKind::Stall).note("deadlock: a thread waits for a lock it holds").record();
        panic!(
            "deadlock: record_received() or record_processed() locked the progress mutex \
             while its own thread already held the guard; a mutex is not reentrant, so the \
             thread waits for itself forever ({text})"
        );
    }
    if text.contains("deadlock") {
        ctx.trace.event("progress", EventKind::Stall).note("deadlock").record();
        panic!("deadlock: every thread waits for a lock that no thread will release ({text})");
    }
    panic::resume_unwind(payload);
}

/// Runs `call` on `progress` from a new thread, recording when it starts and when it returns.
fn spawn_call(
    story: &Story,
    progress: &Arc<Progress>,
    actor: &'static str,
    msg: u64,
    call: fn(&Progress),
    (kind, what): (EventKind, &'static str),
) -> thread::JoinHandle<()> {
    let story = story.clone();
    let progress = progress.clone();
    thread::spawn(move || {
        story.step(actor, kind, msg, format!("{what} starts"));
        call(&progress);
        story.step(actor, EventKind::Note, msg, format!("{what} returned"));
    })
}

const RECEIVE: (EventKind, &str) = (EventKind::Deliver, "record_received()");
const FINISH: (EventKind, &str) = (EventKind::Process, "record_processed()");

/// c1 has received m1 and finishes it while c2 receives m2: both updates must count.
fn receive_during_finish(ctx: &mut Ctx) {
    explore(ctx, "c1 finishes m1 while c2 receives m2, each calling Progress once", |story| {
        let progress = Arc::new(Progress::new());
        progress.record_received();
        story.step("c1", EventKind::Deliver, 1, "received m1 (before the race)");
        let c1 = spawn_call(story, &progress, "c1", 1, Progress::record_processed, FINISH);
        let c2 = spawn_call(story, &progress, "c2", 2, Progress::record_received, RECEIVE);
        c1.join().expect("c1 panicked");
        c2.join().expect("c2 panicked");
        let counts = progress.snapshot();
        let want = Counts { received: 2, processed: 1 };
        if counts.received < want.received {
            story.fail(Some(2), format!(
                "m2's receive was counted and then written over: c2 received m2 while c1 \
                 finished m1, and the counts say received {}, processed {} (want received 2, \
                 processed 1)",
                counts.received, counts.processed
            ));
        }
        if counts.processed < want.processed {
            story.fail(Some(1), format!(
                "m1's finish was counted and then written over: c1 finished m1 while c2 \
                 received m2, and the counts say received {}, processed {} (want received 2, \
                 processed 1)",
                counts.received, counts.processed
            ));
        }
        assert_eq!(counts, want, "after c1 finished m1 and c2 received m2");
    });
}

/// c1 and c2 finish m1 and m2 at the same moment: processed must go from 0 to 2.
fn two_consumers_finish(ctx: &mut Ctx) {
    explore(ctx, "c1 finishes m1 while c2 finishes m2, each calling record_processed() once", |story| {
        let progress = Arc::new(Progress::new());
        progress.record_received();
        progress.record_received();
        story.step("c1", EventKind::Deliver, 1, "received m1 (before the race)");
        story.step("c2", EventKind::Deliver, 2, "received m2 (before the race)");
        let c1 = spawn_call(story, &progress, "c1", 1, Progress::record_processed, FINISH);
        let c2 = spawn_call(story, &progress, "c2", 2, Progress::record_processed, FINISH);
        c1.join().expect("c1 panicked");
        c2.join().expect("c2 panicked");
        let counts = progress.snapshot();
        if counts.processed != 2 {
            story.fail(None, format!(
                "c1 finished m1 and c2 finished m2, but processed went from 0 to {}: both read \
                 the same old count and each wrote back its own +1, so one finish is lost",
                counts.processed
            ));
        }
        assert_eq!(counts, Counts { received: 2, processed: 2 }, "after m1 and m2 were finished");
    });
}

/// The monitor takes a snapshot while c1 receives and finishes m1: whatever instant it sees,
/// it never sees a message finished that was not received.
fn snapshot_is_consistent(ctx: &mut Ctx) {
    explore(ctx, "c1 receives then finishes m1 while the monitor takes one snapshot()", |story| {
        let progress = Arc::new(Progress::new());
        let c1 = {
            let story = story.clone();
            let progress = progress.clone();
            thread::spawn(move || {
                story.step("c1", EventKind::Deliver, 1, "record_received() starts");
                progress.record_received();
                story.step("c1", EventKind::Process, 1, "record_processed() starts");
                progress.record_processed();
                story.step("c1", EventKind::Note, 1, "record_processed() returned");
            })
        };
        let monitor = {
            let story = story.clone();
            let progress = progress.clone();
            thread::spawn(move || {
                story.step("monitor", EventKind::Note, 1, "snapshot() starts");
                let seen = progress.snapshot();
                story.step("monitor", EventKind::Note, 1, format!(
                    "snapshot() returned received {}, processed {}",
                    seen.received, seen.processed
                ));
                seen
            })
        };
        c1.join().expect("c1 panicked");
        let seen = monitor.join().expect("the monitor panicked");
        if seen.processed > seen.received {
            story.fail(Some(1), format!(
                "the monitor's snapshot says received {}, processed {}: m1 finished before it \
                 was received, a state that never existed (in_flight() would underflow). The \
                 two counts were read at different instants, with c1's updates in between",
                seen.received, seen.processed
            ));
        }
        let valid = [
            Counts { received: 0, processed: 0 },
            Counts { received: 1, processed: 0 },
            Counts { received: 1, processed: 1 },
        ];
        assert!(
            valid.contains(&seen),
            "the monitor saw received {}, processed {}, which is none of the states c1 went \
             through while handling m1",
            seen.received,
            seen.processed
        );
        assert_eq!(progress.snapshot(), Counts { received: 1, processed: 1 }, "after c1 finished m1");
    });
}

#[test]
fn checks() {
    run_stages(
        "lost-update",
        &[
            Stage {
                id: "receive-during-finish",
                title: "A receive and a finish at the same moment both count",
                mentor: "Every read and every write of the counts takes the lock, and still a \
                         count went missing. Look at what a consumer holds between taking its \
                         copy of the counts and writing it back, and at what another consumer \
                         can do in that gap. (If this stage reports a deadlock instead: a mutex \
                         is not reentrant, so locking it again while you hold its guard waits \
                         for yourself.)",
                run: receive_during_finish,
            },
            Stage {
                id: "two-consumers-finish",
                title: "Two consumers finishing at once both count",
                mentor: "Better! A receive no longer clobbers a finish. But now two consumers \
                         finish at the same moment and one finish vanishes: a load followed by \
                         a store is still two steps, even on an atomic, and another thread can \
                         run between them. Make the read-add-write one indivisible step.",
                run: two_consumers_finish,
            },
            Stage {
                id: "snapshot-is-consistent",
                title: "The monitor never sees more finished than received",
                mentor: "Close! Every count is exact now. But the monitor reads received and \
                         processed one after the other, and c1 can receive and finish a message \
                         in between: the snapshot mixes two instants. Two atomics are not one \
                         atomic pair; counts that must agree with each other must be read and \
                         written together.",
                run: snapshot_is_consistent,
            },
        ],
    );
}
