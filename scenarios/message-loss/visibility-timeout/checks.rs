//! Checks for the visibility-timeout queue: crashes lose nothing, acks delete for good, and a
//! message is hidden for exactly its visibility timeout.

use std::collections::BTreeSet;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::clock::Clock;
use bughunt_kit::invariant;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

const VISIBILITY_TIMEOUT_MS: u64 = 30_000;

/// Drives the queue as producers and consumers would, and writes down what happened.
struct Harness {
    clock: Clock,
    queue: Queue,
    trace: Trace,
    delivered: BTreeSet<u64>,
}

impl Harness {
    fn new(ctx: &Ctx) -> Self {
        let clock = Clock::new();
        Self {
            queue: Queue::new(clock.clone(), VISIBILITY_TIMEOUT_MS),
            clock,
            trace: ctx.trace.clone(),
            delivered: BTreeSet::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn advance_ms(&self, ms: u64) {
        self.trace.set_time_ms(self.clock.advance_ms(ms));
    }

    fn send(&mut self, body: &str) -> u64 {
        let id = self.queue.send(body);
        self.trace
            .event("producer", EventKind::Send)
            .to("queue")
            .msg(id)
            .note(body)
            .record();
        id
    }

    /// `consumer` asks for a message; the delivery is drawn as a first one or a redelivery.
    fn receive(&mut self, consumer: &str) -> Option<Message> {
        let Some(message) = self.queue.receive() else {
            self.trace
                .event(consumer, EventKind::Note)
                .to("queue")
                .note("receive: nothing visible")
                .record();
            return None;
        };
        let kind = if self.delivered.insert(message.id) {
            EventKind::Deliver
        } else {
            EventKind::Redeliver
        };
        self.trace.event("queue", kind).to(consumer).msg(message.id).record();
        Some(message)
    }

    /// `consumer` does the job and acks it.
    fn process_and_ack(&mut self, consumer: &str, id: u64) {
        self.trace.event(consumer, EventKind::Process).msg(id).record();
        self.queue.ack(id);
        self.trace.event(consumer, EventKind::Ack).to("queue").msg(id).record();
    }

    fn crash(&self, consumer: &str, id: u64) {
        self.trace
            .event(consumer, EventKind::Crash)
            .msg(id)
            .note(format!("crashed holding m{id}, before its ack"))
            .record();
    }

    /// Draws the violations into the trace and fails the stage with `message`.
    #[track_caller]
    fn fail_with(&self, violations: &[invariant::Violation], message: String) -> ! {
        invariant::mark(&self.trace, violations);
        panic!("{message}");
    }
}

/// "m2", or "nothing" when a receive found no visible message.
fn shown(message: Option<&Message>) -> String {
    match message {
        Some(message) => format!("m{}", message.id),
        None => "nothing".to_owned(),
    }
}

/// A consumer crashes between receive and ack; after the timeout the job is delivered again.
fn crash_after_receive(ctx: &mut Ctx) {
    let mut run = Harness::new(ctx);
    let id = run.send("resize photo 1");
    let message = run.receive("c1");
    assert!(
        message.as_ref().map(|m| m.id) == Some(id),
        "c1 asked for a message right after m{id} was sent and got {}",
        shown(message.as_ref())
    );
    run.crash("c1", id);
    let depth_while_in_flight = run.queue.depth();

    run.advance_ms(VISIBILITY_TIMEOUT_MS + 1_000);
    let again = run.receive("c2");
    match again {
        Some(message) if message.id == id => run.process_and_ack("c2", id),
        other => {
            let violations = invariant::at_least_once(&run.trace);
            let depth = run.queue.depth();
            let fate = if depth == 0 {
                format!("m{id} is gone for good")
            } else {
                format!(
                    "depth() still counts m{id} ({depth}), so the queue has it, but keeps it \
                     hidden long after its timeout ended"
                )
            };
            run.fail_with(
                &violations,
                format!(
                    "m{id} was received by c1, which crashed before its ack; {} ms later, past its \
                     visibility timeout of {VISIBILITY_TIMEOUT_MS} ms, c2 asked and got {}: {fate}",
                    VISIBILITY_TIMEOUT_MS + 1_000,
                    shown(other.as_ref())
                ),
            )
        }
    }
    assert_eq!(
        depth_while_in_flight, 1,
        "while c1 held m{id} (received, not acked) depth() said {depth_while_in_flight}: an \
         unacked message is still the queue's, and depth counts it"
    );
}

/// Acked jobs are deleted: nothing comes back, however long we wait.
fn acked_never_returns(ctx: &mut Ctx) {
    let mut run = Harness::new(ctx);
    let first = run.send("resize photo 1");
    let second = run.send("resize photo 2");
    for consumer in ["c1", "c2"] {
        let Some(message) = run.receive(consumer) else {
            panic!("{consumer} asked for a message while m{first} and m{second} waited, and got nothing");
        };
        run.process_and_ack(consumer, message.id);
    }
    // Ten timeouts, looking at every one: an acked job must not come back at any of them.
    for _ in 0..10 {
        run.advance_ms(VISIBILITY_TIMEOUT_MS);
        if let Some(message) = run.receive("c3") {
            let id = message.id;
            let violations = invariant::no_delivery_after_ack(&run.trace);
            run.fail_with(
                &violations,
                format!(
                    "m{id} was acked at 0 ms and handed to c3 again at {} ms: an acked job is \
                     done, and doing it twice is a duplicate charge, a second email...",
                    run.now_ms()
                ),
            );
        }
    }
    let depth = run.queue.depth();
    assert_eq!(
        depth, 0,
        "m{first} and m{second} were both acked, yet depth() is {depth}: an ack deletes the message"
    );
}

/// Hidden for exactly the visibility timeout: not a millisecond less, not a millisecond more.
fn no_early_redelivery(ctx: &mut Ctx) {
    let mut run = Harness::new(ctx);
    run.advance_ms(1_000);
    let id = run.send("resize photo 1");
    let received_at_ms = run.now_ms();
    let Some(message) = run.receive("c1") else {
        panic!("c1 asked for a message right after m{id} was sent and got nothing");
    };
    assert_eq!(message.id, id, "c1 should have received m{id}, the only message");
    let deadline_ms = received_at_ms + VISIBILITY_TIMEOUT_MS;

    let early = |run: &mut Harness, holder: &str, asker: &str, since_ms: u64| {
        if let Some(message) = run.receive(asker) {
            panic!(
                "{holder} received m{id} at {since_ms} ms, and {asker} got m{} at {} ms, before \
                 the visibility timeout ended at {} ms: two consumers now work on the same job",
                message.id,
                run.now_ms(),
                since_ms + VISIBILITY_TIMEOUT_MS
            );
        }
    };
    early(&mut run, "c1", "c2", received_at_ms);
    run.advance_ms(VISIBILITY_TIMEOUT_MS - 1);
    early(&mut run, "c1", "c2", received_at_ms);

    run.advance_ms(1);
    let again = run.receive("c2");
    assert!(
        again.as_ref().map(|m| m.id) == Some(id),
        "c1 received m{id} at {received_at_ms} ms and never acked it; at {deadline_ms} ms, exactly \
         received_at + visibility_timeout_ms, c2 asked and got {}: it should be visible again \
         from that instant",
        shown(again.as_ref())
    );

    // The redelivery starts a fresh timeout of its own.
    early(&mut run, "c2", "c3", deadline_ms);
    run.advance_ms(VISIBILITY_TIMEOUT_MS - 1);
    early(&mut run, "c2", "c3", deadline_ms);
    run.process_and_ack("c2", id);
}

#[test]
fn checks() {
    run_stages(
        "visibility-timeout",
        &[
            Stage {
                id: "crash-after-receive",
                title: "A consumer that crashes before its ack loses nothing",
                mentor: "A consumer took a job and died before it said \"done\". Where was that \
                         job in the meantime? Between receive and ack, who still has a copy, and \
                         once the visibility timeout is over, who gets it back?",
                run: crash_after_receive,
            },
            Stage {
                id: "acked-never-returns",
                title: "An acked message never comes back",
                mentor: "Close! Crashed jobs come back now, but so do finished ones. Between \
                         receive and ack, where does a message live in your queue, and is that \
                         where ack looks for it?",
                run: acked_never_returns,
            },
            Stage {
                id: "no-early-redelivery",
                title: "A message is hidden for exactly its visibility timeout",
                mentor: "Better! Nothing is lost and nothing finished comes back. But a job \
                         somebody is working on must be hidden from everyone else until its \
                         deadline, and visible again from that very millisecond. When does your \
                         queue hide a message, and from which instant does it show it again?",
                run: no_early_redelivery,
            },
        ],
    );
}
