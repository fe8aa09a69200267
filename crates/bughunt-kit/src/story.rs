//! # Stories: what each thread of an explored schedule did, in the program's own words
//!
//! A schedule checker says only *that* a schedule failed ("deadlock! blocked tasks: [w1,
//! reporter]"). A learner needs *why*: who held what, who waited for what, and who could
//! have ended each wait. The programs of the shuttle hunts say so as they run, on a `Log`
//! of their own (a line before each call that can block, and, for a named lock, when it is
//! held and released); a [`Story`] keeps those lines, per thread, as the schedule runs.
//!
//! ## How to use it
//! Describe how the program speaks in a [`Voice`] (what the checker's main thread is
//! called, which word comes before a message's number), then run each schedule through
//! [`search_schedules`]: it hands the test a fresh [`Story`] per schedule, and on a failure
//! draws the failing schedule into the stage's trace and returns what went wrong in words.
//! A hunt's checks write the program's log into the story: [`Story::said`] for a plain
//! line, [`Story::waits`], [`Story::holds`] and [`Story::releases`] for a named lock,
//! [`Story::waits_to_send`] (and its companions) for a bounded channel.
//!
//! A deadlock is told as each waiting thread, what it holds, what it waits for and who
//! could end that wait, then the cycle they make: "w1 holds `queue` and waits for `stats`,
//! held by the reporter; the reporter holds `stats` and waits for `queue`, held by w1: a
//! cycle, w1 ─ waits for `stats` (held by reporter) ─► reporter ─ waits for `queue` (held
//! by w1) ─► w1". A program that logs no locks (only lines) has its deadlock told as where
//! each thread the checker found blocked last said it was.
//!
//! ## How to debug a failure
//! The story is drawn into the stage's trace line by line, with a `stall` event where each
//! blocked thread stopped: `bughunt check` shows it. In a test of your own, print
//! [`Story::lines`].
//!
//! ## Limits
//! The story records only what the program says: a thread that blocks without a line
//! first is told as "blocked (it logged nothing)". Recording uses a std mutex, never held
//! across a switch, so it adds no schedule points of its own.

use crate::check::panic_text;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::explore::{explore, take_replay, Explored, Search, STEPS_MAX};
use crate::trace::{EventKind, Trace};

/// How many times [`Story::outlived`] lets the other threads go first: enough for a thread
/// that is still running to say so on its log.
pub const OUTLIVE_YIELDS: usize = 20;

/// How a program speaks on its log, for the story to tell it in the same words.
#[derive(Clone, Copy, Debug)]
pub struct Voice {
    /// What the story calls the thread the checker names `main-thread` (the thread that runs
    /// the check itself: "the broker", "the coordinator").
    pub main: &'static str,
    /// The word before a message's number in a line ("job" for "completes job 101"): a line
    /// that names one is drawn about that message. Empty: lines are about no message.
    pub item: &'static str,
    /// The message a thread works on, from its name, for a line that names none ("job-101"
    /// is about 101).
    pub thread_item: fn(&str) -> Option<u64>,
    /// How a said line is drawn.
    pub kind: fn(&str) -> EventKind,
    /// Whether a said line means its thread has finished its part.
    pub finished: fn(&str) -> bool,
    /// How a deadlock names the threads that had finished: "had already finished".
    pub finished_as: &'static str,
    /// What else to say when a schedule runs out of steps, after "some thread keeps trying
    /// something that can never succeed": " (a poll loop whose partner is not there)".
    pub spinning: &'static str,
}

impl Voice {
    /// A voice whose checker's main thread is called `main`; lines about no message, drawn
    /// as notes, none of them saying a thread finished.
    pub const fn new(main: &'static str) -> Voice {
        Voice {
            main,
            item: "",
            thread_item: |_| None,
            kind: |_| EventKind::Note,
            finished: |_| false,
            finished_as: "had already finished",
            spinning: "",
        }
    }

    /// The voice of a program whose threads hand jobs over channels and say, before each
    /// call that can block, what they wait for: "waits to send job 101" and "waits to hand"
    /// are drawn as sends, "waits for a reply" as a delivery; a thread that says "done…" or
    /// "stops…" has finished; a line is about the job it names.
    pub const fn channels(main: &'static str) -> Voice {
        Voice {
            item: "job",
            kind: |note| {
                if note.contains("waits to send") || note.contains("waits to hand") {
                    EventKind::Send
                } else if note.contains("waits for a") {
                    EventKind::Deliver
                } else {
                    EventKind::Note
                }
            },
            finished: |note| note.starts_with("done") || note.starts_with("stops"),
            spinning: " (a poll loop whose partner is not there)",
            ..Voice::new(main)
        }
    }

    /// The message `note` (said by `thread`) is about.
    fn about(&self, thread: &str, note: &str) -> Option<u64> {
        number_after(note, self.item).or_else(|| (self.thread_item)(thread))
    }
}

/// The number right after `word` and a space in `text`: `number_after("completes job 101",
/// "job")` is 101. None for an empty `word`.
pub fn number_after(text: &str, word: &str) -> Option<u64> {
    if word.is_empty() {
        return None;
    }
    let prefix = format!("{word} ");
    let rest = &text[text.find(&prefix)? + prefix.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A thread as a sentence names it: "w1", "c2", "job-101" and "an unnamed thread (task 3)"
/// as they are, any other name as "the reporter".
pub fn called(thread: &str) -> String {
    if thread.ends_with(|last: char| last.is_ascii_digit()) || thread.starts_with("an unnamed") {
        thread.to_owned()
    } else {
        format!("the {thread}")
    }
}

/// "an event", "a job".
fn a(item: &str) -> String {
    if item.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {item}")
    } else {
        format!("a {item}")
    }
}

/// "`queue`, `stats`", or "nothing".
fn held(locks: &[&'static str]) -> String {
    if locks.is_empty() {
        "nothing".to_owned()
    } else {
        locks
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One line of a story.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The thread that said it, or "check" for the checks' verdict.
    pub actor: String,
    /// How it is drawn.
    pub kind: EventKind,
    /// The message it is about.
    pub msg: Option<u64>,
    /// What was said.
    pub note: String,
}

/// Everything a story keeps. Recording never holds its mutex across a switch.
#[derive(Default)]
struct State {
    lines: Vec<Line>,
    /// Threads in the order they first spoke.
    actors: Vec<String>,
    /// Per thread, the locks it holds, in the order it took them.
    holds: BTreeMap<String, Vec<&'static str>>,
    /// Per thread, the lock it said it waits for and has not got yet.
    waits: BTreeMap<String, &'static str>,
    /// Per thread, the channel and message it said it waits to send and has not sent yet.
    sending: BTreeMap<String, (&'static str, u64)>,
    /// Per thread, the channel it said it waits to receive from.
    receiving: BTreeMap<String, &'static str>,
    /// Per channel, the thread that receives from it.
    receivers: BTreeMap<&'static str, String>,
}

impl State {
    /// Who holds `lock` now.
    fn holders(&self, lock: &str) -> Vec<String> {
        self.holds
            .iter()
            .filter(|(_, locks)| locks.contains(&lock))
            .map(|(thread, _)| thread.clone())
            .collect()
    }

    fn holding(&self, thread: &str) -> &[&'static str] {
        self.holds.get(thread).map(Vec::as_slice).unwrap_or(&[])
    }

    /// What `thread` waits for, who could end the wait, and how that one is named in a
    /// drawn cycle ("held by", "from").
    fn blocked_on(
        &self,
        thread: &str,
        item: &str,
    ) -> Option<(String, Option<String>, &'static str)> {
        if let Some(lock) = self.waits.get(thread) {
            return Some((
                format!("`{lock}`"),
                self.holders(lock).into_iter().next(),
                "held by",
            ));
        }
        let (channel, number) = self.sending.get(thread)?;
        Some((
            format!("room on `{channel}` for {item} {number}"),
            self.receivers.get(channel).cloned(),
            "from",
        ))
    }

    /// The sentence a deadlock report must contain for `thread`, if it waits.
    fn waiter_part(&self, thread: &str, item: &str) -> Option<String> {
        let holds = held(self.holding(thread));
        if let Some(lock) = self.waits.get(thread) {
            return Some(format!(
                "{} holds {holds} and waits for `{lock}`",
                called(thread)
            ));
        }
        let (channel, number) = self.sending.get(thread)?;
        Some(format!(
            "{} holds {holds} and waits to send {item} {number} on `{channel}`",
            called(thread)
        ))
    }
}

/// The story of the schedule being explored: every line each thread said, in order, and
/// what each thread holds and waits for now. Cloning shares it.
#[derive(Clone)]
pub struct Story {
    voice: Voice,
    state: Arc<Mutex<State>>,
}

impl Story {
    /// An empty story, told in `voice`.
    pub fn new(voice: Voice) -> Story {
        Story {
            voice,
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets everything: a new schedule starts.
    pub fn restart(&self) {
        *self.state() = State::default();
    }

    fn thread<'a>(&self, thread: &'a str) -> &'a str {
        if thread == "main-thread" {
            self.voice.main
        } else {
            thread
        }
    }

    /// Adds a line: `msg`, or else the message the line names. The actor "check" is the
    /// checks' own voice, never a thread of the story.
    pub fn line(&self, actor: &str, kind: EventKind, msg: Option<u64>, note: impl Into<String>) {
        let actor = self.thread(actor);
        let note = note.into();
        let msg = msg.or_else(|| self.voice.about(actor, &note));
        let mut state = self.state();
        if actor != "check" && !state.actors.iter().any(|known| known == actor) {
            state.actors.push(actor.to_owned());
        }
        state.lines.push(Line {
            actor: actor.to_owned(),
            kind,
            msg,
            note,
        });
    }

    /// A line the program logged: drawn as its voice says.
    pub fn said(&self, thread: &str, note: impl Into<String>) {
        let note = note.into();
        self.line(thread, (self.voice.kind)(&note), None, note);
    }

    /// `thread` is about to wait for the lock `lock`.
    pub fn waits(&self, thread: &str, lock: &'static str) {
        let thread = self.thread(thread);
        let note = {
            let mut state = self.state();
            state.waits.insert(thread.to_owned(), lock);
            format!("holds {}, waits for `{lock}`", held(state.holding(thread)))
        };
        self.line(thread, EventKind::Note, None, note);
    }

    /// `thread` now holds `lock`.
    pub fn holds(&self, thread: &str, lock: &'static str) {
        let thread = self.thread(thread);
        let note = {
            let mut state = self.state();
            state.waits.remove(thread);
            let holds = state.holds.entry(thread.to_owned()).or_default();
            holds.push(lock);
            format!("holds {}", held(holds))
        };
        self.line(thread, EventKind::Process, None, note);
    }

    /// `thread` released `lock`. A guard dropped while its thread unwinds from a failed
    /// schedule (shuttle panics a thread that locks a mutex it holds) is no part of the
    /// story: the report must show what the thread held when it stopped.
    pub fn releases(&self, thread: &str, lock: &'static str) {
        if std::thread::panicking() {
            return;
        }
        let thread = self.thread(thread);
        let note = {
            let mut state = self.state();
            let holds = state.holds.entry(thread.to_owned()).or_default();
            if let Some(at) = holds.iter().rposition(|name| *name == lock) {
                holds.remove(at);
            }
            format!("releases `{lock}`; holds {}", held(holds))
        };
        self.line(thread, EventKind::Ack, None, note);
    }

    /// `thread` is about to send message `number` on the bounded channel `channel`, and
    /// waits if it is full.
    pub fn waits_to_send(&self, thread: &str, channel: &'static str, number: u64) {
        let thread = self.thread(thread);
        let note = {
            let mut state = self.state();
            state.sending.insert(thread.to_owned(), (channel, number));
            format!(
                "holds {}, waits to send {} {number} on `{channel}`",
                held(state.holding(thread)),
                self.voice.item
            )
        };
        self.line(thread, EventKind::Send, None, note);
    }

    /// `thread` sent message `number` on `channel`.
    pub fn sent(&self, thread: &str, channel: &'static str, number: u64) {
        let thread = self.thread(thread);
        self.state().sending.remove(thread);
        self.line(
            thread,
            EventKind::Note,
            None,
            format!("sent {} {number} on `{channel}`", self.voice.item),
        );
    }

    /// `thread` is about to wait for a message on `channel`: it is the channel's receiver.
    pub fn waits_to_receive(&self, thread: &str, channel: &'static str) {
        let thread = self.thread(thread);
        let note = {
            let mut state = self.state();
            state.receiving.insert(thread.to_owned(), channel);
            state.receivers.insert(channel, thread.to_owned());
            format!(
                "holds {}, waits for {} on `{channel}`",
                held(state.holding(thread)),
                a(self.voice.item)
            )
        };
        self.line(thread, EventKind::Note, None, note);
    }

    /// `thread` received message `number` from `channel`.
    pub fn received(&self, thread: &str, channel: &'static str, number: u64) {
        let thread = self.thread(thread);
        self.state().receiving.remove(thread);
        self.line(
            thread,
            EventKind::Deliver,
            None,
            format!("received {} {number} from `{channel}`", self.voice.item),
        );
    }

    /// Says, for the checker's main thread, that the call under test has `returned`; lets the
    /// other threads go first [`OUTLIVE_YIELDS`] times; returns the first thing another thread
    /// said after that, with the thread as a sentence names it ("the pricer", "w2"): a thread
    /// the call left running.
    pub fn outlived(&self, returned: impl Into<String>) -> Option<(String, String)> {
        let at = self.len();
        self.line(self.voice.main, EventKind::Note, None, returned);
        for _ in 0..OUTLIVE_YIELDS {
            crate::thread::yield_now();
        }
        let state = self.state();
        let late = state.lines[at + 1..]
            .iter()
            .find(|line| line.actor != self.voice.main && line.actor != "check")?;
        Some((called(&late.actor), late.note.clone()))
    }

    /// Every line so far, in order.
    pub fn lines(&self) -> Vec<Line> {
        self.state().lines.clone()
    }

    /// How many lines so far.
    pub fn len(&self) -> usize {
        self.state().lines.len()
    }

    /// Whether nothing has been said yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What `thread` last said.
    pub fn last_of(&self, thread: &str) -> Option<String> {
        self.state()
            .lines
            .iter()
            .rev()
            .find(|line| line.actor == thread)
            .map(|line| line.note.clone())
    }

    /// What each thread last said ("the reporter holds `stats`"), in the order the threads
    /// first spoke.
    pub fn last_lines(&self) -> Vec<String> {
        let state = self.state();
        state
            .actors
            .iter()
            .filter_map(|actor| {
                let last = state.lines.iter().rev().find(|line| line.actor == *actor)?;
                Some(format!("{} {}", called(actor), last.note))
            })
            .collect()
    }

    /// The threads that said they finished, in the order they did.
    pub fn finished(&self) -> Vec<String> {
        let finished = self.voice.finished;
        self.state()
            .lines
            .iter()
            .filter(|line| finished(&line.note))
            .map(|line| line.actor.clone())
            .collect()
    }

    /// Records the checks' verdict and fails the schedule with `detail`.
    pub fn fail(&self, msg: Option<u64>, detail: String) -> ! {
        self.line("check", EventKind::Lost, msg, detail.clone());
        panic!("{detail}");
    }

    /// Draws every line into `trace`.
    pub fn draw_into(&self, trace: &Trace) {
        for line in self.state().lines.iter() {
            let event = trace
                .event(line.actor.clone(), line.kind)
                .note(line.note.clone());
            match line.msg {
                Some(msg) => event.msg(msg).record(),
                None => event.record(),
            }
        }
    }

    /// The deadlock, in words: each thread waiting for a lock or to send, what it holds, what
    /// it waits for and who could end that wait, each receiver waiting; then the cycle they
    /// make. None if no thread waits for a lock or to send.
    pub fn deadlock(&self) -> Option<String> {
        let state = self.state();
        let item = self.voice.item;
        let waiting: Vec<&String> = state
            .actors
            .iter()
            .filter(|actor| state.waits.contains_key(*actor) || state.sending.contains_key(*actor))
            .collect();
        let first = (*waiting.first()?).clone();
        let mut who = Vec::new();
        for thread in &waiting {
            let part = state.waiter_part(thread, item)?;
            if let Some(lock) = state.waits.get(*thread) {
                let by = state.holders(lock);
                let by = if by.iter().any(|holder| holder == *thread) {
                    "which it holds itself: a guard from its earlier lock is still alive, and a mutex is not reentrant"
                        .to_owned()
                } else if by.is_empty() {
                    "which nobody holds".to_owned()
                } else {
                    format!(
                        "held by {}",
                        by.iter()
                            .map(|holder| called(holder))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    )
                };
                who.push(format!("{part}, {by}"));
            } else if let Some((channel, _)) = state.sending.get(*thread) {
                let by = match state.receivers.get(channel) {
                    Some(receiver) => {
                        format!("which only {} makes, by receiving", called(receiver))
                    }
                    None => "and nobody receives from it".to_owned(),
                };
                who.push(format!("{part}, which is full: it needs room, {by}"));
            }
        }
        for (thread, channel) in &state.receiving {
            if !waiting.contains(&thread) {
                who.push(format!(
                    "{} waits for {} on `{channel}`",
                    called(thread),
                    a(item)
                ));
            }
        }
        // Follow "waits for something only X can give" from the first waiting thread until a
        // thread repeats.
        let mut path: Vec<String> = vec![first];
        let mut cycle = None;
        for _ in 0..=waiting.len() {
            let at = path.last().expect("the path starts with a thread").clone();
            let Some((_, Some(next), _)) = state.blocked_on(&at, item) else {
                break;
            };
            if let Some(start) = path.iter().position(|thread| *thread == next) {
                let ring: Vec<&String> =
                    path[start..].iter().chain(std::iter::once(&next)).collect();
                let arrows: Vec<String> = ring
                    .windows(2)
                    .map(|pair| {
                        let (what, _, by) = state.blocked_on(pair[0], item).unwrap_or_default();
                        format!("{} ─ waits for {what} ({by} {}) ─►", pair[0], pair[1])
                    })
                    .collect();
                cycle = Some(format!("{} {next}", arrows.join(" ")));
                break;
            }
            path.push(next);
        }
        let drawn = match cycle {
            Some(cycle) => format!(": a cycle, {cycle}"),
            None => String::new(),
        };
        Some(format!(
            "deadlock: {}{drawn}. Nothing else will ever happen in this run",
            who.join("; ")
        ))
    }

    /// Whether `told` names every waiting thread, what it holds and what it waits for.
    pub fn names_every_waiter(&self, told: &str) -> Result<(), String> {
        let state = self.state();
        for thread in state.waits.keys().chain(state.sending.keys()) {
            let Some(part) = state.waiter_part(thread, self.voice.item) else {
                continue;
            };
            if !told.contains(&part) {
                return Err(format!(
                    "the deadlock report \"{told}\" does not say \"{part}\""
                ));
            }
        }
        Ok(())
    }

    /// A deadlock in which no thread waits for a lock or to send: where each thread the
    /// checker found `blocked` last said it was.
    fn blocked_where(&self, blocked: &[String], trace: &Trace) -> String {
        let mut stopped = Vec::new();
        for thread in blocked {
            match self.last_of(thread) {
                Some(what) => {
                    trace
                        .event(thread.clone(), EventKind::Stall)
                        .note(format!("stopped here: {what}"))
                        .record();
                    stopped.push(format!("{} {what}", called(thread)));
                }
                None => {
                    trace
                        .event(thread.clone(), EventKind::Stall)
                        .note("stopped (it logged nothing)")
                        .record();
                    stopped.push(format!("{thread} is blocked (it logged nothing)"));
                }
            }
        }
        let finished = self.finished();
        let gone = if finished.is_empty() {
            String::new()
        } else {
            format!(" ({} {})", finished.join(", "), self.voice.finished_as)
        };
        match stopped.as_slice() {
            [] => "deadlock: every thread still running is blocked, and none can wake another".to_owned(),
            [only] => format!(
                "deadlock: {only}, and no other thread is left that could ever do its half{gone}. \
                 Nothing else will ever happen in this run"
            ),
            _ => format!(
                "deadlock: every thread still running is blocked, each waiting for another: {}{gone}. \
                 Nothing else will ever happen in this run",
                stopped.join("; ")
            ),
        }
    }

    /// The failure of a schedule, in words, with the story drawn into `trace`.
    fn told(&self, text: String, trace: &Trace) -> String {
        self.draw_into(trace);
        if text.contains("deadlock") {
            let Some(told) = self.deadlock() else {
                return self.blocked_where(&blocked_threads(&text, self.voice.main), trace);
            };
            // The report must name every waiting thread: a report that does not is the
            // checks' own bug, and says so rather than teach half a story.
            if let Err(gap) = self.names_every_waiter(&told) {
                return format!("{told} (and a bug in these checks: {gap})");
            }
            let state = self.state();
            for thread in state.waits.keys().chain(state.sending.keys()) {
                let (what, _, _) = state
                    .blocked_on(thread, self.voice.item)
                    .unwrap_or_default();
                trace
                    .event(thread.clone(), EventKind::Stall)
                    .note(format!(
                        "stopped here: holds {}, waits for {what}",
                        held(state.holding(thread))
                    ))
                    .record();
            }
            return told;
        }
        if text.contains("max_steps") {
            trace
                .event(self.voice.main, EventKind::Stall)
                .note("no progress")
                .record();
            return format!(
                "a schedule ran {STEPS_MAX} steps without finishing, although every thread that \
                 yields let the others run first: some thread keeps trying something that can \
                 never succeed{}. What each thread said last: {}",
                self.voice.spinning,
                self.last_lines().join("; ")
            );
        }
        text
    }
}

/// The threads shuttle names in "deadlock! blocked tasks: [a (task 0), b (task 1,
/// detached)]", its main thread called `main`.
pub fn blocked_threads(text: &str, main: &str) -> Vec<String> {
    let Some(start) = text.find("blocked tasks: [") else {
        return Vec::new();
    };
    let list = &text[start + "blocked tasks: [".len()..];
    let list = &list[..list.rfind(']').unwrap_or(list.len())];
    list.split("), ")
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let name = item.split(" (task").next().unwrap_or(item).trim();
            let task = item
                .split("(task ")
                .nth(1)
                .unwrap_or("")
                .trim_end_matches(')');
            match name {
                "main-thread" => main.to_owned(),
                "<unknown>" => format!("an unnamed thread (task {task})"),
                name => name.to_owned(),
            }
        })
        .collect()
}

/// Runs `test` under the schedules of `search`, each with a fresh story told in `voice`. On
/// a failure, draws the failing schedule into `trace` and returns what went wrong, in words,
/// ending with the search that found it.
pub fn search_schedules(
    voice: Voice,
    search: Search,
    trace: &Trace,
    test: impl Fn(&Story) + Send + Sync + 'static,
) -> Result<Explored, String> {
    let story = Story::new(voice);
    let explored = story.clone();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        explore(search, move || {
            explored.restart();
            // The failing schedule's steps call the check's own thread what the story does.
            crate::sync::name_this_thread(voice.main);
            test(&explored);
        })
    }));
    // A replay string cannot replay a generated workload: the workload, the search and its
    // seed can, and the check repeats them on every run.
    take_replay();
    let payload = match outcome {
        Ok(explored) => return Ok(explored),
        Err(payload) => payload,
    };
    let told = story.told(panic_text(payload.as_ref()), trace);
    Err(format!("{told} (found by {})", search.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOICE: Voice = Voice {
        item: "job",
        ..Voice::new("main")
    };

    /// A two-lock cycle is told with both threads, what each holds and waits for, and drawn.
    #[test]
    fn a_two_lock_cycle_names_both_threads() {
        let story = Story::new(VOICE);
        story.waits("w1", "queue");
        story.holds("w1", "queue");
        story.waits("reporter", "stats");
        story.holds("reporter", "stats");
        story.waits("w1", "stats");
        story.waits("reporter", "queue");
        let told = story.deadlock().unwrap_or_default();
        story.names_every_waiter(&told).unwrap();
        for part in [
            "deadlock: w1 holds `queue` and waits for `stats`, held by the reporter",
            "the reporter holds `stats` and waits for `queue`, held by w1",
            "a cycle, w1 ─ waits for `stats` (held by reporter) ─► reporter ─ waits for `queue` (held by w1) ─► w1",
        ] {
            assert!(told.contains(part), "the deadlock report \"{told}\" does not say \"{part}\"");
        }
    }

    /// A thread that waits for the lock it holds is told so.
    #[test]
    fn a_lock_held_by_its_waiter_is_told() {
        let story = Story::new(VOICE);
        story.waits("w2", "queue");
        story.holds("w2", "queue");
        story.waits("w2", "queue");
        let told = story.deadlock().unwrap_or_default();
        assert!(
            told.contains("w2 holds `queue` and waits for `queue`, which it holds itself"),
            "the deadlock report \"{told}\" does not say that w2 waits for the lock it holds"
        );
    }

    /// A cycle through a full channel names the receiver that could make room.
    #[test]
    fn a_lock_and_channel_cycle_names_the_receiver() {
        let story = Story::new(Voice {
            item: "event",
            ..Voice::new("publisher")
        });
        story.waits_to_receive("handler", "events");
        story.waits("main-thread", "registry");
        story.holds("main-thread", "registry");
        story.waits_to_send("main-thread", "events", 3);
        story.received("handler", "events", 1);
        story.waits("handler", "registry");
        let told = story.deadlock().unwrap_or_default();
        story.names_every_waiter(&told).unwrap();
        for part in [
            "the publisher holds `registry` and waits to send event 3 on `events`, which is full: it needs room, which only the handler makes",
            "the handler holds nothing and waits for `registry`, held by the publisher",
            "publisher ─ waits for room on `events` for event 3 (from handler) ─►",
            "handler ─ waits for `registry` (held by publisher) ─►",
        ] {
            assert!(told.contains(part), "the deadlock report \"{told}\" does not say \"{part}\"");
        }
    }

    /// Lines name their message, a thread's name or none; the checks' verdict is no thread.
    #[test]
    fn lines_are_about_the_message_they_name() {
        let story = Story::new(Voice {
            thread_item: |thread| thread.strip_prefix("job-")?.parse().ok(),
            ..VOICE
        });
        story.said("w1", "completes job 104");
        story.said("job-105", "indexes");
        story.said("reporter", "reports");
        story.line("check", EventKind::Lost, None, "job 7 was lost");
        let msgs: Vec<Option<u64>> = story.lines().iter().map(|line| line.msg).collect();
        assert_eq!(msgs, [Some(104), Some(105), None, Some(7)]);
        assert_eq!(
            story.last_lines(),
            [
                "w1 completes job 104",
                "job-105 indexes",
                "the reporter reports"
            ]
        );
        assert_eq!(number_after("a job 12, then", "job"), Some(12));
        assert_eq!(called("job-101"), "job-101");
        assert_eq!(called("coordinator"), "the coordinator");
    }

    /// shuttle's list of blocked tasks, read back in the program's names.
    #[test]
    fn blocked_tasks_are_read_in_the_programs_names() {
        let text = "deadlock! blocked tasks: [main-thread (task 0), w1 (task 1), <unknown> (task 2, detached)]";
        assert_eq!(
            blocked_threads(text, "broker"),
            ["broker", "w1", "an unnamed thread (task 2, detached)"]
        );
    }

    /// Under shuttle, a real lock-order inversion fails the search, and the failure is told
    /// with both threads, from what they logged, and drawn into the trace.
    #[cfg(feature = "shuttle")]
    #[test]
    fn an_explored_deadlock_is_told_in_the_programs_words() {
        use crate::sync::{Arc, Mutex};
        use crate::thread;
        let trace = Trace::new();
        let outcome = search_schedules(
            VOICE,
            Search::Random {
                seed: 7,
                schedules: 200,
            },
            &trace,
            |story| {
                let locks = Arc::new((Mutex::new(()), Mutex::new(())));
                let take = |story: &Story,
                            first: (&'static str, &Mutex<()>),
                            second: (&'static str, &Mutex<()>)| {
                    let me = thread::current().name().unwrap_or("main-thread").to_owned();
                    story.waits(&me, first.0);
                    let one = first.1.lock().unwrap();
                    story.holds(&me, first.0);
                    story.waits(&me, second.0);
                    let two = second.1.lock().unwrap();
                    story.holds(&me, second.0);
                    drop(two);
                    story.releases(&me, second.0);
                    drop(one);
                    story.releases(&me, first.0);
                };
                let other = {
                    let (locks, story) = (locks.clone(), story.clone());
                    thread::Builder::new()
                        .name("reporter".into())
                        .spawn(move || take(&story, ("stats", &locks.1), ("queue", &locks.0)))
                        .unwrap()
                };
                take(story, ("queue", &locks.0), ("stats", &locks.1));
                other.join().unwrap();
            },
        );
        let told = outcome.expect_err("a lock-order inversion deadlocks under some schedule");
        for part in [
            "the main holds `queue` and waits for `stats`, held by the reporter",
            "the reporter holds `stats` and waits for `queue`, held by the main",
            "(found by ",
        ] {
            assert!(told.contains(part), "\"{told}\" does not say \"{part}\"");
        }
        assert!(
            trace.count(EventKind::Stall) >= 2,
            "each blocked thread is drawn where it stopped"
        );
    }

    /// A thread the call under test left running is caught saying something after the call
    /// returned, and named as a sentence names it.
    #[cfg(feature = "shuttle")]
    #[test]
    fn a_thread_left_running_is_caught() {
        let trace = Trace::new();
        let outcome = search_schedules(
            Voice::channels("broker"),
            Search::Random {
                seed: 3,
                schedules: 50,
            },
            &trace,
            |story| {
                let pricer = story.clone();
                crate::thread::Builder::new()
                    .name("pricer".into())
                    .spawn(move || pricer.said("pricer", "prices job 101"))
                    .unwrap();
                if let Some((who, note)) = story.outlived("quote_all returned") {
                    story.fail(None, format!("{who} was still running: it said \"{note}\""));
                }
            },
        );
        let told = outcome.expect_err("some schedule runs the pricer after quote_all returned");
        assert!(
            told.starts_with("the pricer was still running: it said \"prices job 101\""),
            "{told}"
        );
    }
}
