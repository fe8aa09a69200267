//! Checks for `relaxed-flag`: whoever sees the slot's flag set reads the message that was
//! published, under every interleaving and every memory ordering loom lets a read see.
//!
//! Each stage is one producer thread publishing m1 while the test's main thread reads the slot
//! once, explored by loom with a preemption bound of 2. After the race, the consumer does not
//! call try_take() again to see whether m1 is still there: loom keeps the flag's stores only
//! partially ordered, so a second swap after a first one that raced the publish can read a
//! value the real memory model rules out (a false alarm). A publish-then-take on one thread
//! checks instead that the slot hands m1 out at all. Loom models weak memory: a load may
//! return any value the C++/Rust memory model allows, not only the latest store, so a stale
//! payload behind a set flag shows up on every run. The story of the schedule being explored
//! is kept while it runs and drawn into the stage's trace if it fails.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex as StdMutex;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::{every_schedule, explorer_name};
use bughunt_kit::sync::Arc;
use bughunt_kit::thread;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// The body of m1, the one message the producer publishes. The slot starts out holding 0.
const M1_BODY: u64 = 42;

/// One thing a thread did in the execution being explored.
struct Step {
    actor: &'static str,
    kind: EventKind,
    note: String,
}

/// The steps of the execution being explored, in the order they happened. A std mutex, not
/// loom's: recording must add no thread switches or orderings of its own, and it is never
/// held across one.
#[derive(Clone, Default)]
struct Story {
    steps: std::sync::Arc<StdMutex<Vec<Step>>>,
}

impl Story {
    fn steps(&self) -> std::sync::MutexGuard<'_, Vec<Step>> {
        self.steps.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the previous execution: a new one starts.
    fn restart(&self) {
        self.steps().clear();
    }

    fn step(&self, actor: &'static str, kind: EventKind, note: impl Into<String>) {
        self.steps().push(Step { actor, kind, note: note.into() });
    }

    /// Records the verdict about m1 and fails the execution with `detail`.
    fn fail(&self, detail: String) -> ! {
        self.step("slot", EventKind::Lost, detail.clone());
        panic!("{detail}");
    }

    fn draw_into(&self, trace: &Trace) {
        for step in self.steps().iter() {
            trace.event(step.actor, step.kind).msg(1).note(step.note.clone()).record();
        }
    }
}

/// Runs `test` under every execution loom explores; on a failure, draws the failing
/// execution into the trace.
fn explore(ctx: &mut Ctx, workload: &str, test: fn(&Story)) {
    ctx.replay(format!(
        "{}: {workload}; loom explores the executions in the same order on every run, so \
         the execution shown here is the one that fails each time",
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
    if let Err(payload) = outcome {
        story.draw_into(&ctx.trace);
        panic::resume_unwind(payload);
    }
}

/// Spawns the producer: it publishes m1 into `slot`.
fn spawn_producer(story: &Story, slot: &Arc<Slot>) -> thread::JoinHandle<()> {
    let story = story.clone();
    let slot = slot.clone();
    thread::spawn(move || {
        story.step("producer", EventKind::Send, format!("publish({M1_BODY}) starts"));
        slot.publish(M1_BODY);
        story.step("producer", EventKind::Note, format!("publish({M1_BODY}) returned"));
    })
}

/// The consumer takes the slot while the producer publishes m1: if it gets a message, it
/// gets m1's body.
fn take_sees_payload(ctx: &mut Ctx) {
    explore(ctx, "the producer publishes m1 (body 42) while a consumer calls try_take() once", |story| {
        take_alone(story);
        let slot = Arc::new(Slot::new());
        let producer = spawn_producer(story, &slot);
        let taken = slot.try_take();
        match taken {
            Some(body) => story.step("consumer", EventKind::Deliver, format!("try_take() returned Some({body})")),
            None => story.step("consumer", EventKind::Note, "try_take() returned None: not published yet"),
        }
        if let Some(body) = taken.filter(|body| *body != M1_BODY) {
            story.fail(format!(
                "the consumer saw m1's ready flag set and read body {body}, the slot's value \
                 from before the publish, instead of {M1_BODY}: m1 was consumed, and what the \
                 consumer processed was never sent"
            ));
        }
        producer.join().expect("the producer panicked");
    });
}

/// With no other thread running, a published message is there to take, once. Without this,
/// a slot that never hands anything out would pass.
fn take_alone(story: &Story) {
    let slot = Slot::new();
    slot.publish(M1_BODY);
    let first = slot.try_take();
    if first != Some(M1_BODY) {
        story.fail(format!(
            "with no other thread running, publish({M1_BODY}) then try_take() gave {first:?}, \
             not Some({M1_BODY}): m1 is lost"
        ));
    }
    let second = slot.try_take();
    if second.is_some() {
        story.fail(format!("m1 was taken twice: the second try_take() gave {second:?}"));
    }
}

/// The router peeks while the producer publishes m1: if it sees a message, it sees m1's body.
fn peek_sees_payload(ctx: &mut Ctx) {
    explore(ctx, "the producer publishes m1 (body 42) while a router calls peek() once", |story| {
        let slot = Arc::new(Slot::new());
        let producer = spawn_producer(story, &slot);
        let peeked = slot.peek();
        match peeked {
            Some(body) => story.step("router", EventKind::Note, format!("peek() returned Some({body})")),
            None => story.step("router", EventKind::Note, "peek() returned None: not published yet"),
        }
        if let Some(body) = peeked.filter(|body| *body != M1_BODY) {
            story.fail(format!(
                "the router saw m1's ready flag set and read body {body}, the slot's value \
                 from before the publish, instead of {M1_BODY}: it routes m1 by a body that \
                 was never sent"
            ));
        }
        // The router's peek only loaded the flag, so after the join it must see the publish.
        producer.join().expect("the producer panicked");
        let later = slot.peek();
        if later != Some(M1_BODY) {
            story.fail(format!(
                "after the producer's publish({M1_BODY}) returned and the router joined it, \
                 peek() gave {later:?}, not Some({M1_BODY})"
            ));
        }
        let taken = slot.try_take();
        if taken != Some(M1_BODY) {
            story.fail(format!(
                "the router peeked at m1, and then try_take() gave {taken:?}, not \
                 Some({M1_BODY}): peek() must leave the message in the slot"
            ));
        }
    });
}

#[test]
fn checks() {
    run_stages(
        "relaxed-flag",
        &[
            Stage {
                id: "take-sees-payload",
                title: "A consumer that sees the flag set reads the published message",
                mentor: "The consumer saw ready == true and still read the old payload. The \
                         producer wrote the payload first, so how could that be? Relaxed only \
                         promises something about the flag itself, nothing about other memory. \
                         What ordering on the flag's store, paired with what ordering on its \
                         load, carries the payload write along with it?",
                run: take_sees_payload,
            },
            Stage {
                id: "peek-sees-payload",
                title: "A router that peeks and sees the flag set reads the published message",
                mentor: "Better! try_take() reads m1 reliably now. But peek() trusts the same \
                         flag. Does it load the flag with Acquire, and does it read the payload \
                         only after seeing the flag set? A Release store orders nothing for a \
                         reader that does not Acquire, and an Acquire orders nothing that was \
                         read before it.",
                run: peek_sees_payload,
            },
        ],
    );
}
