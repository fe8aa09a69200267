//! A trace: what happened, in order, so a failure can be drawn and not only asserted.
//!
//! Harnesses record events as they drive the code under test (the learner's code never has
//! to): who did what to whom, about which message, at which simulated time. `seq` is the
//! logical time: the order in which events were recorded. Traces are bounded: after
//! [`MAX_EVENTS`] events, further ones are counted in `dropped` and not kept.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// The most events one trace keeps.
pub const MAX_EVENTS: usize = 100_000;

/// What kind of thing happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A producer hands a message to a queue or log.
    Send,
    /// The queue gives a message to a consumer.
    Deliver,
    /// A message that was delivered before is delivered again.
    Redeliver,
    /// A consumer's side effect happened (a row written, an account credited).
    Process,
    /// An acknowledgement: consumer to broker, or log to producer.
    Ack,
    /// An ack that was sent but never arrived.
    AckLost,
    /// An actor crashed.
    Crash,
    /// An actor stopped taking work for a while.
    Stall,
    /// The queue refused a message (it is full) and said so.
    Reject,
    /// Bytes written to a file (not yet durable).
    Write,
    /// fsync.
    Sync,
    /// The power went.
    PowerCut,
    /// Data read back after a restart.
    Recover,
    /// A shutdown was asked for.
    Shutdown,
    /// An actor finished.
    Exit,
    /// A task still running when it should have ended.
    Leak,
    /// A message that is gone for good.
    Lost,
    /// A side effect that happened more than once.
    Duplicate,
    /// Anything else worth showing.
    Note,
}

impl EventKind {
    /// Faults and verdicts: the events a drawing must never leave out.
    pub fn is_fault_or_verdict(self) -> bool {
        matches!(
            self,
            EventKind::AckLost
                | EventKind::Crash
                | EventKind::Stall
                | EventKind::PowerCut
                | EventKind::Leak
                | EventKind::Lost
                | EventKind::Duplicate
        )
    }
}

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Logical time: the position of this event in the trace.
    pub seq: u64,
    /// Simulated time in milliseconds, where the harness has a clock (else 0).
    pub at_ms: u64,
    /// The actor that acted.
    pub actor: String,
    /// The actor acted upon, for events drawn as an arrow.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to: Option<String>,
    pub kind: EventKind,
    /// The message this is about.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub msg: Option<u64>,
    /// A few words for the drawing.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
}

/// A shared, bounded event recorder. Clones record into the same trace.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    inner: Arc<Mutex<TraceState>>,
}

#[derive(Debug, Default)]
struct TraceState {
    events: Vec<Event>,
    next_seq: u64,
    dropped: u64,
    now_ms: u64,
}

/// A builder for one event: `trace.event("producer", EventKind::Send).to("queue").msg(3).record()`.
#[must_use = "call .record() to keep the event"]
pub struct EventBuilder<'a> {
    trace: &'a Trace,
    event: Event,
}

impl EventBuilder<'_> {
    pub fn to(mut self, actor: impl Into<String>) -> Self {
        self.event.to = Some(actor.into());
        self
    }
    pub fn msg(mut self, id: u64) -> Self {
        self.event.msg = Some(id);
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.event.note = Some(note.into());
        self
    }
    pub fn record(self) {
        self.trace.push(self.event);
    }
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, TraceState> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the simulated time stamped on the events recorded from now on.
    pub fn set_time_ms(&self, now_ms: u64) {
        self.state().now_ms = now_ms;
    }

    /// Starts an event by `actor`.
    pub fn event(&self, actor: impl Into<String>, kind: EventKind) -> EventBuilder<'_> {
        EventBuilder {
            trace: self,
            event: Event {
                seq: 0,
                at_ms: 0,
                actor: actor.into(),
                to: None,
                kind,
                msg: None,
                note: None,
            },
        }
    }

    fn push(&self, mut event: Event) {
        let mut state = self.state();
        if state.events.len() >= MAX_EVENTS {
            state.dropped += 1;
            return;
        }
        event.seq = state.next_seq;
        event.at_ms = state.now_ms;
        state.next_seq += 1;
        state.events.push(event);
    }

    /// The `seq` the next recorded event will get: a bookmark into the trace.
    pub fn next_seq(&self) -> u64 {
        self.state().next_seq
    }

    /// A copy of every event kept, in order.
    pub fn events(&self) -> Vec<Event> {
        self.state().events.clone()
    }

    /// How many events did not fit.
    pub fn dropped(&self) -> u64 {
        self.state().dropped
    }

    /// Message ids of the events of one kind, in order, repeats kept.
    pub fn msgs(&self, kind: EventKind) -> Vec<u64> {
        self.state()
            .events
            .iter()
            .filter(|event| event.kind == kind)
            .filter_map(|event| event.msg)
            .collect()
    }

    /// How many events of one kind.
    pub fn count(&self, kind: EventKind) -> u64 {
        self.state()
            .events
            .iter()
            .filter(|event| event.kind == kind)
            .count() as u64
    }
}

/// The story of one message: every event about it, plus any power cut while it was alive.
/// This is what a drawing of a failure shows. Harnesses tag faults with the message they
/// hit (a crash holding m27 is about m27), so the story needs no guessing.
pub fn story(events: &[Event], msg: u64) -> Vec<Event> {
    let about = |e: &&Event| e.msg == Some(msg);
    let (Some(first), Some(last)) = (events.iter().find(about), events.iter().rfind(about)) else {
        return Vec::new();
    };
    events
        .iter()
        .filter(|e| e.seq >= first.seq && e.seq <= last.seq)
        .filter(|e| e.msg == Some(msg) || (e.msg.is_none() && e.kind == EventKind::PowerCut))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events get increasing logical times and the simulated time in force.
    #[test]
    fn records_in_order_with_time() {
        let trace = Trace::new();
        trace
            .event("producer", EventKind::Send)
            .to("queue")
            .msg(1)
            .record();
        trace.set_time_ms(30);
        trace
            .event("queue", EventKind::Deliver)
            .to("c1")
            .msg(1)
            .record();
        let events = trace.events();
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].seq, events[0].at_ms), (0, 0));
        assert_eq!((events[1].seq, events[1].at_ms), (1, 30));
        assert_eq!(trace.msgs(EventKind::Deliver), vec![1]);
    }

    /// A story keeps the message's events (its consumer's crash among them) and the power cut.
    #[test]
    fn story_of_a_lost_message() {
        let trace = Trace::new();
        trace
            .event("producer", EventKind::Send)
            .to("queue")
            .msg(1)
            .record();
        trace
            .event("producer", EventKind::Send)
            .to("queue")
            .msg(2)
            .record();
        trace
            .event("queue", EventKind::Deliver)
            .to("c2")
            .msg(1)
            .record();
        trace.event("c1", EventKind::Crash).msg(2).record();
        trace.event("c2", EventKind::Crash).msg(1).record();
        trace.event("disk", EventKind::PowerCut).record();
        trace.event("queue", EventKind::Lost).msg(1).record();
        let kinds: Vec<EventKind> = story(&trace.events(), 1).iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::Send,
                EventKind::Deliver,
                EventKind::Crash,
                EventKind::PowerCut,
                EventKind::Lost
            ]
        );
        assert!(story(&trace.events(), 9).is_empty());
    }

    /// The trace is bounded; what does not fit is counted.
    #[test]
    fn bounded() {
        let trace = Trace::new();
        for _ in 0..MAX_EVENTS + 5 {
            trace.event("p", EventKind::Note).record();
        }
        assert_eq!(trace.events().len(), MAX_EVENTS);
        assert_eq!(trace.dropped(), 5);
    }
}
