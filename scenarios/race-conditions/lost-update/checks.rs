//! Checks for `lost-update`: the counts stay exact however the consumers' threads interleave.
//!
//! The first three stages each run a tiny workload (two threads, one or two calls each) under
//! every schedule shuttle can produce (depth-first search, up to a budget; a program with so
//! many synchronisation points that the budget runs out gets PCT schedules after it), so the
//! classic lost update is found on every run and told in the words of that schedule. The fourth stage is a property
//! over generated workloads: two or three consumers, each receiving and finishing its own
//! messages, and two monitors taking snapshots, all at once, each searched with random
//! schedules from a fixed seed within a budget (too many threads to try every schedule); every search
//! is fair to a thread that yields and bounds the steps of a schedule (see
//! `bughunt_kit::explore`). Each schedule is checked against what the calls it ran allow: the
//! final counts equal the calls made, and each snapshot is a state the counts were in at some
//! instant while it ran. The stage after it is a property of the same kind over a monitor
//! taking reports with `take_and_reset()` while one or two consumers work: the reports plus the
//! counts left after the last one add up to exactly the calls made. The last stage holds a
//! report to what a snapshot is held to, one instant: first c1 receives and finishes m1 while
//! the monitor takes one report, under every schedule; then the generated reporting
//! workloads, where the reports summed so far must be a state the counts were in at some
//! instant while the report ran. When a schedule fails, its story is drawn into the stage's
//! trace.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex as StdMutex;

use bughunt_kit::check::{panic_text, run_stages, Ctx, Stage};
use bughunt_kit::explore::{explore, Explored, Search};
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::prop;
use bughunt_kit::sync::{spawn_named, Arc, Barrier};
use bughunt_kit::thread;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// One thing a thread did in the schedule being explored.
struct Step {
    actor: String,
    kind: EventKind,
    msg: Option<u64>,
    note: String,
}

/// One call a consumer made, with the positions in the story where it started and returned.
#[derive(Clone, Copy)]
struct CallSpan {
    consumer: usize,
    call: Call,
    started: usize,
    returned: Option<usize>,
}

/// A monitor's snapshot, with where it started and returned in the story.
#[derive(Clone, Copy)]
struct SnapshotSpan {
    monitor: usize,
    started: usize,
    returned: usize,
    seen: Counts,
}

#[derive(Default)]
struct Log {
    steps: Vec<Step>,
    calls: Vec<CallSpan>,
    snapshots: Vec<SnapshotSpan>,
}

/// The story of the schedule being explored, in the order things happened. A std mutex, not
/// the checker's: recording must add no thread switches of its own, and it is never held
/// across one.
#[derive(Clone, Default)]
struct Story {
    log: std::sync::Arc<StdMutex<Log>>,
}

impl Story {
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the previous schedule: a new one starts.
    fn restart(&self) {
        *self.log() = Log::default();
    }

    /// Records a step; returns its position in the story.
    fn step(&self, actor: impl Into<String>, kind: EventKind, msg: Option<u64>, note: impl Into<String>) -> usize {
        let mut log = self.log();
        log.steps.push(Step { actor: actor.into(), kind, msg, note: note.into() });
        log.steps.len() - 1
    }

    /// Records the verdict and fails the schedule with `detail`.
    fn fail(&self, msg: Option<u64>, detail: String) -> ! {
        self.step("progress", EventKind::Lost, msg, detail.clone());
        panic!("{detail}");
    }

    fn draw_into(&self, trace: &Trace) {
        for step in self.log().steps.iter() {
            let event = trace.event(step.actor.clone(), step.kind).note(step.note.clone());
            match step.msg {
                Some(msg) => event.msg(msg).record(),
                None => event.record(),
            }
        }
    }
}


/// Runs `test` under the schedules of `search`. On a failure, draws the failing schedule into
/// `trace` and returns what went wrong, in words.
fn search_schedules(
    search: Search,
    trace: &Trace,
    test: impl Fn(&Story) + Send + Sync + 'static,
) -> Result<Explored, String> {
    let story = Story::default();
    let explored = story.clone();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        explore(search, move || {
            explored.restart();
            test(&explored);
        })
    }));
    let payload = match outcome {
        Ok(explored) => return Ok(explored),
        Err(payload) => payload,
    };
    story.draw_into(trace);
    let text = panic_text(payload.as_ref());
    if text.contains("tried to acquire a Mutex it already holds") {
        trace.event("progress", EventKind::Stall).note("deadlock: a thread waits for a lock it holds").record();
        return Err(format!(
            "deadlock: a method of Progress locked its mutex while its own thread already held \
             the guard; a mutex is not reentrant, so the thread waits for itself forever ({text})"
        ));
    }
    if text.contains("deadlock") {
        trace.event("progress", EventKind::Stall).note("deadlock").record();
        return Err(format!(
            "deadlock: every thread still running waits for another, and none can go on ({text})"
        ));
    }
    if text.contains("max_steps") {
        trace.event("progress", EventKind::Stall).note("no progress").record();
        return Err(format!(
            "a schedule ran {} steps without finishing, although the search let every thread \
             that yields be overtaken: some thread waits for something no schedule makes \
             happen. If a thread waits by spinning, does its loop call \
             bughunt_kit::thread::yield_now()? ({text})",
            bughunt_kit::explore::STEPS_MAX
        ));
    }
    Err(text)
}

/// Runs one hand-written workload depth-first, every schedule; if there are more than the
/// budget allows (a program with many synchronisation points), PCT from a fixed seed goes on
/// where the depth-first search stopped. Fails the stage on a failing schedule.
fn explore_story(ctx: &mut Ctx, workload: &str, test: fn(&Story)) {
    let dfs = Search::Exhaustive { schedules_max: STORY_SCHEDULES_MAX };
    let pct = Search::Pct { seed: 0x6c6f_7374, depth: 3, schedules: STORY_PCT_SCHEDULES };
    ctx.replay(format!(
        "{}: {workload}; the schedules are tried in the same order on every run, so the \
         schedule shown here is the one that fails each time",
        dfs.describe()
    ));
    let explored = match search_schedules(dfs, &ctx.trace, test) {
        Ok(explored) => explored,
        Err(detail) => panic!("{detail}"),
    };
    if explored.complete {
        ctx.replay(format!(
            "{}: {workload}; all {} schedules passed",
            dfs.describe(),
            explored.schedules
        ));
        return;
    }
    ctx.replay(format!(
        "{workload}: the depth-first search stopped after {} schedules without running out, \
         then {}; the schedules are the same on every run",
        explored.schedules,
        pct.describe()
    ));
    if let Err(detail) = search_schedules(pct, &ctx.trace, test) {
        panic!("{detail} (found by PCT, after {} depth-first schedules passed)", explored.schedules);
    }
}

/// The depth-first budget of a hand-written story, and the PCT schedules that follow it when
/// the budget runs out before the schedules do.
const STORY_SCHEDULES_MAX: usize = 3_000;
const STORY_PCT_SCHEDULES: usize = 300;

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
    spawn_named(actor, move || {
        story.step(actor, kind, Some(msg), format!("{what} starts"));
        call(&progress);
        story.step(actor, EventKind::Note, Some(msg), format!("{what} returned"));
    })
}

const RECEIVE: (EventKind, &str) = (EventKind::Deliver, "record_received()");
const FINISH: (EventKind, &str) = (EventKind::Process, "record_processed()");

/// c1 has received m1 and finishes it while c2 receives m2: both updates must count.
fn receive_during_finish(ctx: &mut Ctx) {
    explore_story(ctx, "c1 finishes m1 while c2 receives m2, each calling Progress once", |story| {
        let progress = Arc::new(Progress::new());
        progress.record_received();
        story.step("c1", EventKind::Deliver, Some(1), "received m1 (before the race)");
        let c1 = spawn_call(story, &progress, "c1", 1, Progress::record_processed, FINISH);
        let c2 = spawn_call(story, &progress, "c2", 2, Progress::record_received, RECEIVE);
        c1.join().expect("c1 panicked");
        c2.join().expect("c2 panicked");
        let counts = progress.snapshot();
        let want = Counts { received: 2, processed: 1 };
        if counts.received < want.received {
            story.fail(Some(2), format!(
                "c2 received m2 while c1 finished m1, and afterwards the counts say received \
                 {}, processed {} (want received 2, processed 1): m2's receive is missing",
                counts.received, counts.processed
            ));
        }
        if counts.processed < want.processed {
            story.fail(Some(1), format!(
                "c1 finished m1 while c2 received m2, and afterwards the counts say received \
                 {}, processed {} (want received 2, processed 1): m1's finish is missing",
                counts.received, counts.processed
            ));
        }
        if counts != want {
            story.fail(None, format!(
                "after c1 finished m1 and c2 received m2, the counts say received {}, processed \
                 {} (want received 2, processed 1)",
                counts.received, counts.processed
            ));
        }
    });
}

/// c1 and c2 finish m1 and m2 at the same moment: processed must go from 0 to 2.
fn two_consumers_finish(ctx: &mut Ctx) {
    explore_story(ctx, "c1 finishes m1 while c2 finishes m2, each calling record_processed() once", |story| {
        let progress = Arc::new(Progress::new());
        progress.record_received();
        progress.record_received();
        story.step("c1", EventKind::Deliver, Some(1), "received m1 (before the race)");
        story.step("c2", EventKind::Deliver, Some(2), "received m2 (before the race)");
        let c1 = spawn_call(story, &progress, "c1", 1, Progress::record_processed, FINISH);
        let c2 = spawn_call(story, &progress, "c2", 2, Progress::record_processed, FINISH);
        c1.join().expect("c1 panicked");
        c2.join().expect("c2 panicked");
        let counts = progress.snapshot();
        if counts.processed != 2 {
            story.fail(None, format!(
                "c1 finished m1 and c2 finished m2 at the same time, but processed went from 0 \
                 to {}: one finish was not counted",
                counts.processed
            ));
        }
        if counts != (Counts { received: 2, processed: 2 }) {
            story.fail(None, format!(
                "after m1 and m2 were received and finished, the counts say received {}, \
                 processed {} (want 2 and 2)",
                counts.received, counts.processed
            ));
        }
    });
}

/// c1 receives and then finishes m1 while the monitor reads the counts once with `read`
/// (named `what` in the story); both threads are joined. Returns the counters and what the
/// monitor read.
fn c1_beside_the_monitor(
    story: &Story,
    what: &'static str,
    read: fn(&Progress) -> Counts,
) -> (Arc<Progress>, Counts) {
    let progress = Arc::new(Progress::new());
    let c1 = {
        let story = story.clone();
        let progress = progress.clone();
        spawn_named("c1", move || {
            story.step("c1", EventKind::Deliver, Some(1), "record_received() starts");
            progress.record_received();
            story.step("c1", EventKind::Process, Some(1), "record_processed() starts");
            progress.record_processed();
            story.step("c1", EventKind::Note, Some(1), "record_processed() returned");
        })
    };
    let monitor = {
        let story = story.clone();
        let progress = progress.clone();
        spawn_named("monitor", move || {
            story.step("monitor", EventKind::Note, Some(1), format!("{what} starts"));
            let seen = read(&progress);
            story.step("monitor", EventKind::Note, Some(1), format!(
                "{what} returned received {}, processed {}",
                seen.received, seen.processed
            ));
            seen
        })
    };
    c1.join().expect("c1 panicked");
    let seen = monitor.join().expect("the monitor panicked");
    (progress, seen)
}

/// The monitor takes a snapshot while c1 receives and finishes m1: whatever instant it sees,
/// it never sees a message finished that was not received.
fn snapshot_is_consistent(ctx: &mut Ctx) {
    explore_story(ctx, "c1 receives then finishes m1 while the monitor takes one snapshot()", |story| {
        let (progress, seen) = c1_beside_the_monitor(story, "snapshot()", Progress::snapshot);
        if seen.processed > seen.received {
            story.fail(Some(1), format!(
                "the monitor's snapshot says received {}, processed {}: m1 finished before it \
                 was received, a state that never existed (in_flight() would underflow)",
                seen.received, seen.processed
            ));
        }
        let valid = [
            Counts { received: 0, processed: 0 },
            Counts { received: 1, processed: 0 },
            Counts { received: 1, processed: 1 },
        ];
        if !valid.contains(&seen) {
            story.fail(Some(1), format!(
                "the monitor saw received {}, processed {}, which is none of the states c1 went \
                 through while handling m1",
                seen.received, seen.processed
            ));
        }
        let last = progress.snapshot();
        if last != (Counts { received: 1, processed: 1 }) {
            story.fail(Some(1), format!(
                "after c1 received and finished m1, snapshot() says received {}, processed {}",
                last.received, last.processed
            ));
        }
    });
}

/// What a consumer calls, in order: each `Process` finishes its oldest received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Receive,
    Process,
}

/// A group at work: each consumer's calls, and how many snapshots each monitor takes.
#[derive(Clone, Debug)]
struct Workload {
    consumers: Vec<Vec<Call>>,
    monitors: Vec<usize>,
}

impl Workload {
    /// The message ids of consumer `c`'s calls: each receive takes a new id, each process
    /// finishes the oldest one still open. Ids are unique across the group.
    fn ids(&self, c: usize) -> Vec<u64> {
        let first: u64 = self.consumers[..c]
            .iter()
            .map(|calls| calls.iter().filter(|call| **call == Call::Receive).count() as u64)
            .sum::<u64>()
            + 1;
        let mut next = first;
        let mut open = std::collections::VecDeque::new();
        self.consumers[c]
            .iter()
            .map(|call| match call {
                Call::Receive => {
                    open.push_back(next);
                    next += 1;
                    next - 1
                }
                Call::Process => open.pop_front().unwrap_or(0),
            })
            .collect()
    }

    /// The search for this workload: random schedules from a fixed seed, fair to yields.
    /// Four threads or more have too many schedules to try them all (the stages before this
    /// one try every schedule of the two-thread races); random schedules preempt a thread
    /// in the middle of a call far more often than PCT's few priority changes do, and a torn
    /// snapshot needs exactly that: two updates landing between the snapshot's two reads.
    fn search(&self) -> Search {
        Search::Random { seed: RANDOM_SEED, schedules: RANDOM_SCHEDULES }
    }
}

const RANDOM_SEED: u64 = 0x6c6f_7374;
const RANDOM_SCHEDULES: usize = 40;
const WORKLOADS: u32 = 12;

fn tell(workload: &Workload) -> String {
    let mut parts: Vec<String> = (0..workload.consumers.len())
        .map(|c| {
            let ids = workload.ids(c);
            let calls: Vec<String> = workload.consumers[c]
                .iter()
                .zip(ids)
                .map(|(call, id)| match call {
                    Call::Receive => format!("record_received() for m{id}"),
                    Call::Process => format!("record_processed() for m{id}"),
                })
                .collect();
            format!("c{} calls {}", c + 1, calls.join(" then "))
        })
        .collect();
    for (m, snapshots) in workload.monitors.iter().enumerate() {
        parts.push(format!(
            "monitor {} takes {snapshots} snapshot{}",
            m + 1,
            if *snapshots == 1 { "" } else { "s" }
        ));
    }
    format!("{}, all at once; {}", parts.join("; "), workload.search().describe())
}

fn workloads() -> impl Strategy<Value = Workload> {
    let consumer = proptest::collection::vec(any::<bool>(), 1..=3).prop_map(|receives| {
        let mut open = 0;
        receives
            .into_iter()
            .map(|receive| {
                if receive || open == 0 {
                    open += 1;
                    Call::Receive
                } else {
                    open -= 1;
                    Call::Process
                }
            })
            .collect::<Vec<Call>>()
    });
    (
        proptest::collection::vec(consumer, 2..=3),
        proptest::collection::vec(1usize..=3, 2..=2),
    )
        .prop_map(|(consumers, monitors)| Workload { consumers, monitors })
}

/// The states the counts may have been in at some instant while `snapshot` ran. Each call
/// takes effect at one instant between its start and its return, so at an instant between
/// story steps `i` and `i + 1` each consumer has made a prefix of its calls: at least those
/// that had returned by step `i`, at most those that had started by then. The counts at that
/// instant are the sum over consumers; the snapshot must be one of them for some `i` while
/// it ran. (Checking one instant for all consumers at once is what catches a snapshot that
/// mixes two instants.)
fn possible_states(workload: &Workload, calls: &[CallSpan], snapshot: &SnapshotSpan) -> Vec<Counts> {
    let mut possible: Vec<Counts> = Vec::new();
    for i in snapshot.started..snapshot.returned {
        let mut states = vec![Counts::default()];
        for (c, consumer_calls) in workload.consumers.iter().enumerate() {
            let spans: Vec<&CallSpan> = calls.iter().filter(|span| span.consumer == c).collect();
            let done = spans.iter().filter(|span| span.returned.is_some_and(|at| at <= i)).count();
            let begun = spans.iter().filter(|span| span.started <= i).count();
            let mut next = Vec::new();
            for k in done..=begun.max(done) {
                let received =
                    consumer_calls[..k].iter().filter(|call| **call == Call::Receive).count() as u64;
                for state in &states {
                    let sum = Counts {
                        received: state.received + received,
                        processed: state.processed + (k as u64 - received),
                    };
                    if !next.contains(&sum) {
                        next.push(sum);
                    }
                }
            }
            states = next;
        }
        for state in states {
            if !possible.contains(&state) {
                possible.push(state);
            }
        }
    }
    possible.sort_by_key(|state| (state.received, state.processed));
    possible
}

fn run_workload(workload: &Workload, story: &Story) {
    let progress = Arc::new(Progress::new());
    // Every thread starts its calls at once, so no thread's head start hides a race.
    let start = Arc::new(Barrier::new(workload.consumers.len() + workload.monitors.len()));
    let mut consumers = Vec::new();
    for (c, calls) in workload.consumers.iter().enumerate() {
        let story = story.clone();
        let progress = progress.clone();
        let calls = calls.clone();
        let ids = workload.ids(c);
        let start = start.clone();
        consumers.push(spawn_named(format!("c{}", c + 1), move || {
            start.wait();
            let actor = format!("c{}", c + 1);
            for (call, id) in calls.into_iter().zip(ids) {
                let (kind, what) = match call {
                    Call::Receive => RECEIVE,
                    Call::Process => FINISH,
                };
                let started = story.step(actor.clone(), kind, Some(id), format!("{what} starts"));
                let index = {
                    let mut log = story.log();
                    log.calls.push(CallSpan { consumer: c, call, started, returned: None });
                    log.calls.len() - 1
                };
                match call {
                    Call::Receive => progress.record_received(),
                    Call::Process => progress.record_processed(),
                }
                let returned = story.step(actor.clone(), EventKind::Note, Some(id), format!("{what} returned"));
                story.log().calls[index].returned = Some(returned);
            }
        }));
    }
    let mut monitors = Vec::new();
    for (m, snapshots) in workload.monitors.iter().copied().enumerate() {
        let story = story.clone();
        let progress = progress.clone();
        let start = start.clone();
        monitors.push(spawn_named(format!("monitor{}", m + 1), move || {
            start.wait();
            let actor = format!("monitor{}", m + 1);
            for _ in 0..snapshots {
                let started = story.step(actor.clone(), EventKind::Note, None, "snapshot() starts");
                let seen = progress.snapshot();
                let returned = story.step(actor.clone(), EventKind::Note, None, format!(
                    "snapshot() returned received {}, processed {}",
                    seen.received, seen.processed
                ));
                story.log().snapshots.push(SnapshotSpan { monitor: m, started, returned, seen });
            }
        }));
    }
    for (c, consumer) in consumers.into_iter().enumerate() {
        consumer.join().unwrap_or_else(|_| panic!("c{} panicked", c + 1));
    }
    for (m, monitor) in monitors.into_iter().enumerate() {
        monitor.join().unwrap_or_else(|_| panic!("monitor {} panicked", m + 1));
    }
    let (calls, snapshots) = {
        let log = story.log();
        (log.calls.clone(), log.snapshots.clone())
    };
    for snapshot in &snapshots {
        let states = possible_states(workload, &calls, snapshot);
        if !states.contains(&snapshot.seen) {
            let told: Vec<String> = states
                .iter()
                .map(|state| format!("{}/{}", state.received, state.processed))
                .collect();
            story.fail(None, format!(
                "monitor {}'s snapshot() returned received {}, processed {}, but while it ran \
                 the counts (received/processed) could only be {}: the snapshot mixes two \
                 instants",
                snapshot.monitor + 1,
                snapshot.seen.received,
                snapshot.seen.processed,
                told.join(" or ")
            ));
        }
    }
    for pair in snapshots.windows(2) {
        let (earlier, later) = (pair[0], pair[1]);
        if earlier.monitor == later.monitor
            && (later.seen.received < earlier.seen.received || later.seen.processed < earlier.seen.processed)
        {
            story.fail(None, format!(
                "monitor {} saw received {}, processed {} and then received {}, processed {}: \
                 the counts went backwards",
                earlier.monitor + 1,
                earlier.seen.received,
                earlier.seen.processed,
                later.seen.received,
                later.seen.processed
            ));
        }
    }
    let want = Counts {
        received: calls.iter().filter(|span| span.call == Call::Receive).count() as u64,
        processed: calls.iter().filter(|span| span.call == Call::Process).count() as u64,
    };
    let last = progress.snapshot();
    if last != want {
        story.fail(None, format!(
            "every consumer returned, after {} record_received() and {} record_processed() \
             calls in all, and snapshot() says received {}, processed {}: {} update(s) lost",
            want.received,
            want.processed,
            last.received,
            last.processed,
            (want.received + want.processed).abs_diff(last.received + last.processed)
        ));
    }
}

/// Two or three consumers and two monitors at once: every count exact, every snapshot an
/// instant that existed.
fn busy_group(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "a busy group keeps exact counts and real snapshots",
        WORKLOADS,
        workloads(),
        tell,
        |workload, trace| {
            let search = workload.search();
            let run = workload.clone();
            let verdict = search_schedules(search, trace, move |story| run_workload(&run, story));
            // A shuttle replay string alone cannot replay a generated workload: the history
            // told below, the search and its seed can, and the check repeats them every run.
            bughunt_kit::explore::take_replay();
            verdict
                .map(|_| ())
                .map_err(|detail| format!("{detail} (found by {})", search.describe()))
        },
    );
    ctx.replay(format!(
        "{WORKLOADS} generated workloads from a fixed seed (two or three consumers, two \
         monitors), each searched with {}",
        Search::Random { seed: RANDOM_SEED, schedules: RANDOM_SCHEDULES }.describe()
    ));
}

/// A group at work while its monitor takes reports: each consumer's calls, and how many
/// times the monitor calls `take_and_reset()`.
#[derive(Clone, Debug)]
struct Reporting {
    group: Workload,
    reports: usize,
}

fn reportings() -> impl Strategy<Value = Reporting> {
    (workloads(), 1usize..=2).prop_map(|(mut group, reports)| {
        // One or two consumers and one monitor: few threads, so each search is cheap and
        // the gap between a report and its reset is hit often.
        group.consumers.truncate(2);
        group.monitors = vec![reports];
        Reporting { group, reports }
    })
}

fn tell_reporting(reporting: &Reporting) -> String {
    let parts: Vec<String> = (0..reporting.group.consumers.len())
        .map(|c| {
            let calls: Vec<String> = reporting.group.consumers[c]
                .iter()
                .zip(reporting.group.ids(c))
                .map(|(call, id)| match call {
                    Call::Receive => format!("record_received() for m{id}"),
                    Call::Process => format!("record_processed() for m{id}"),
                })
                .collect();
            format!("c{} calls {}", c + 1, calls.join(" then "))
        })
        .collect();
    format!(
        "{}; the monitor calls take_and_reset() {} time{}, all at once; {}",
        parts.join("; "),
        reporting.reports,
        if reporting.reports == 1 { "" } else { "s" },
        reporting.group.search().describe()
    )
}

/// Runs `reporting` and checks that the reports plus what is left add up to the calls made;
/// with `one_instant`, also that each report is the change of the counts up to one instant
/// while it ran (so the reports so far, summed, are a state the counts were really in).
fn run_reporting(reporting: &Reporting, story: &Story, one_instant: bool) {
    let progress = Arc::new(Progress::new());
    let start = Arc::new(Barrier::new(reporting.group.consumers.len() + 1));
    let mut consumers = Vec::new();
    for (c, calls) in reporting.group.consumers.iter().enumerate() {
        let story = story.clone();
        let progress = progress.clone();
        let calls = calls.clone();
        let ids = reporting.group.ids(c);
        let start = start.clone();
        consumers.push(spawn_named(format!("c{}", c + 1), move || {
            start.wait();
            let actor = format!("c{}", c + 1);
            for (call, id) in calls.into_iter().zip(ids) {
                let (kind, what) = match call {
                    Call::Receive => RECEIVE,
                    Call::Process => FINISH,
                };
                let started = story.step(actor.clone(), kind, Some(id), format!("{what} starts"));
                let index = {
                    let mut log = story.log();
                    log.calls.push(CallSpan { consumer: c, call, started, returned: None });
                    log.calls.len() - 1
                };
                match call {
                    Call::Receive => progress.record_received(),
                    Call::Process => progress.record_processed(),
                }
                let returned = story.step(actor.clone(), EventKind::Note, Some(id), format!("{what} returned"));
                story.log().calls[index].returned = Some(returned);
            }
        }));
    }
    let monitor = {
        let story = story.clone();
        let progress = progress.clone();
        let reports = reporting.reports;
        spawn_named("monitor", move || {
            start.wait();
            let mut taken = Vec::new();
            for _ in 0..reports {
                let started = story.step("monitor", EventKind::Note, None, "take_and_reset() starts");
                let report = progress.take_and_reset();
                let returned = story.step("monitor", EventKind::Note, None, format!(
                    "take_and_reset() returned received {}, processed {}",
                    report.received, report.processed
                ));
                story.log().snapshots.push(SnapshotSpan { monitor: 0, started, returned, seen: report });
                taken.push(report);
            }
            taken
        })
    };
    for (c, consumer) in consumers.into_iter().enumerate() {
        consumer.join().unwrap_or_else(|_| panic!("c{} panicked", c + 1));
    }
    let reports = monitor.join().unwrap_or_else(|_| panic!("the monitor panicked"));
    let left = progress.snapshot();
    let done = |wanted: Call| {
        reporting.group.consumers.iter().flatten().filter(|call| **call == wanted).count() as u64
    };
    let want = Counts { received: done(Call::Receive), processed: done(Call::Process) };
    let told = Counts {
        received: reports.iter().map(|report| report.received).sum::<u64>() + left.received,
        processed: reports.iter().map(|report| report.processed).sum::<u64>() + left.processed,
    };
    if told != want {
        let listed: Vec<String> = reports
            .iter()
            .map(|report| format!("{}/{}", report.received, report.processed))
            .collect();
        let (fewer, more) = (
            (want.received + want.processed).saturating_sub(told.received + told.processed),
            (told.received + told.processed).saturating_sub(want.received + want.processed),
        );
        let verdict = match (fewer, more) {
            (0, _) => format!("{more} update(s) counted twice"),
            (_, 0) => format!("{fewer} update(s) in no report and not left in the counts either"),
            _ => "some updates lost and others counted twice".to_owned(),
        };
        story.fail(None, format!(
            "the consumers made {} record_received() and {} record_processed() calls; the \
             monitor's reports (received/processed) were {} and the counts left after them \
             say received {}, processed {}: together received {}, processed {}, so {verdict}",
            want.received,
            want.processed,
            listed.join(" then "),
            left.received,
            left.processed,
            told.received,
            told.processed
        ));
    }
    if !one_instant {
        return;
    }
    let (calls, spans) = {
        let log = story.log();
        (log.calls.clone(), log.snapshots.clone())
    };
    let mut so_far = Counts::default();
    for (k, span) in spans.iter().enumerate() {
        so_far.received += span.seen.received;
        so_far.processed += span.seen.processed;
        let states = possible_states(&reporting.group, &calls, &SnapshotSpan { seen: so_far, ..*span });
        if !states.contains(&so_far) {
            let told: Vec<String> = states
                .iter()
                .map(|state| format!("{}/{}", state.received, state.processed))
                .collect();
            story.fail(None, format!(
                "report {} said received {}, processed {}; with the reports before it, that \
                 says the consumers had made {} receives and {} finishes at the instant of the \
                 report, but while take_and_reset() ran the totals (received/processed) could \
                 only be {}: the report's two counts were taken at two instants",
                k + 1,
                span.seen.received,
                span.seen.processed,
                so_far.received,
                so_far.processed,
                told.join(" or ")
            ));
        }
    }
}

/// Consumers at work while the monitor takes reports: every update is in exactly one report
/// or in what is left after the last one.
fn reports_add_up(ctx: &mut Ctx) {
    reporting_property(ctx, "the reports plus what is left add up to what the consumers did", false);
    ctx.replay(format!(
        "{REPORTINGS} generated workloads from a fixed seed (one or two consumers, one monitor \
         taking one or two reports), each searched with {}",
        Search::Random { seed: RANDOM_SEED, schedules: RANDOM_SCHEDULES }.describe()
    ));
}

/// The property `name` over generated reporting workloads: [`run_reporting`] under each
/// group's search, holding each report to one instant when `one_instant`.
fn reporting_property(ctx: &mut Ctx, name: &str, one_instant: bool) {
    prop::for_all(
        ctx,
        name,
        REPORTINGS,
        reportings(),
        tell_reporting,
        move |reporting, trace| {
            let search = reporting.group.search();
            let run = reporting.clone();
            let verdict = search_schedules(search, trace, move |story| run_reporting(&run, story, one_instant));
            bughunt_kit::explore::take_replay();
            verdict
                .map(|_| ())
                .map_err(|detail| format!("{detail} (found by {})", search.describe()))
        },
    );
}

const REPORTINGS: u32 = 8;

/// The monitor takes one report while c1 receives and then finishes m1, under every
/// schedule; then generated groups with one or two reports, under random schedules. Each
/// report must be the counts of one instant: one of the states c1 went through, and the
/// counts left after it what came after that instant.
fn report_is_one_instant(ctx: &mut Ctx) {
    explore_story(ctx, "c1 receives then finishes m1 while the monitor takes one report with take_and_reset()", |story| {
        let (progress, report) = c1_beside_the_monitor(story, "take_and_reset()", Progress::take_and_reset);
        let left = progress.snapshot();
        let valid = [
            Counts { received: 0, processed: 0 },
            Counts { received: 1, processed: 0 },
            Counts { received: 1, processed: 1 },
        ];
        if !valid.contains(&report) {
            story.fail(Some(1), format!(
                "the monitor's report says received {}, processed {}, which is none of the \
                 states c1 went through while handling m1 (0/0, 1/0, 1/1): its two counts were \
                 taken at two instants, with m1's receive and finish landing between them",
                report.received, report.processed
            ));
        }
        let told = Counts {
            received: report.received + left.received,
            processed: report.processed + left.processed,
        };
        if told != (Counts { received: 1, processed: 1 }) {
            story.fail(Some(1), format!(
                "the report said received {}, processed {} and the counts left after it say \
                 received {}, processed {}: together not the one receive and one finish c1 made",
                report.received, report.processed, left.received, left.processed
            ));
        }
    });
    reporting_property(ctx, "every report is the counts of one instant", true);
}

#[test]
fn checks() {
    run_stages(
        "lost-update",
        &[
            Stage {
                id: "receive-during-finish",
                title: "A receive and a finish at the same moment both count",
                mentor: "A receive and a finish at the same moment must both count, and this \
                         time they did not (the story below shows the schedule). Between reading \
                         the counts and writing them back, can another consumer run, and what \
                         happens to its update when your copy is written back? (If the story \
                         shows a deadlock instead: a mutex is not reentrant, so locking it again \
                         while you hold its guard waits for yourself.)",
                run: receive_during_finish,
            },
            Stage {
                id: "two-consumers-finish",
                title: "Two consumers finishing at once both count",
                mentor: "Better! A receive and a finish at once both count. But two finishes at \
                         once did not (the story below shows the schedule). Between reading the \
                         count and writing it back, can another thread run? Is the \
                         read-add-write one indivisible step, and if it can fail, does your \
                         code try again?",
                run: two_consumers_finish,
            },
            Stage {
                id: "snapshot-is-consistent",
                title: "The monitor never sees more finished than received",
                mentor: "Close! Updates at the same moment all count now. But what the monitor \
                         saw (the story below shows it) was not a state the counts were in at \
                         any instant while it looked. Are received and processed read at one \
                         instant, or one after the other with updates possible in between?",
                run: snapshot_is_consistent,
            },
            Stage {
                id: "busy-group",
                title: "With several consumers and monitors at once, every count is exact and every snapshot real",
                mentor: "Nearly there: the two-thread races pass. With several consumers and \
                         monitors at once, a promise broke: the story below is the smallest \
                         group I found that breaks it, and says which (an update lost, a \
                         snapshot that was never an instant, or threads that never finish). Is \
                         each update one indivisible step however many threads update at once? \
                         Is each snapshot one instant of the counts, whatever order you read \
                         them in, and however often the counts move while you read?",
                run: busy_group,
            },
            Stage {
                id: "reports-add-up",
                title: "Every update is in exactly one report, or still in the counts",
                mentor: "Almost done: counts and snapshots hold. But while the monitor took \
                         reports, the reports plus what was left did not add up to what the \
                         consumers did (the story below is the smallest case I found). Are the \
                         report and the reset one step, or can a consumer update the counts \
                         between them?",
                run: reports_add_up,
            },
            Stage {
                id: "report-is-one-instant",
                title: "Each report is the counts of one instant",
                mentor: "Last one: every update is in exactly one report. But a report is read \
                         as a pair, like a snapshot: the monitor subtracts one count from the \
                         other. The report below pairs counts that were never true together \
                         (the story shows the schedule). Are both counts read and zeroed at one \
                         instant, or one after the other with updates possible in between?",
                run: report_is_one_instant,
            },
        ],
    );
}
