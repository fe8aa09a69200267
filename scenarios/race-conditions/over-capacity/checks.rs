//! Checks for `over-capacity`: the queue keeps its bound however producers and consumers
//! interleave.
//!
//! Every stage is a property over generated workloads: a capacity that is not a power of two,
//! a backlog queued before the threads start, producers pushing jobs (`try_push`) or reserving
//! room for batches (`try_reserve(n)`, then `push_reserved`), and consumers popping
//! (`try_pop`), all at once. The first three stages run two threads under every schedule
//! (shuttle's depth-first search, which covers a workload this small within 2,000 schedules
//! unless the program has many synchronisation points of its own: then PCT schedules from a
//! fixed seed follow); the last runs busier groups under random schedules from a fixed seed
//! (too many to try them all). Every search is
//! fair to a thread that yields and bounds the steps of a schedule (see
//! `bughunt_kit::explore`).
//!
//! Each schedule is checked against what the calls it ran allow, never against a reference
//! implementation. A call takes effect at one instant between its start and its return, so at
//! each point of the story the depth is at least what the calls that had returned put in,
//! minus what the pops that had started took out, and at most what the calls that had started
//! put in, minus what the pops that had returned took out. The depth's lower bound must never
//! exceed the capacity; a refusal must have seen the upper bound too full at some point while
//! it ran; a pop that found nothing must have seen the jobs' lower bound at zero. After every
//! thread is done the queue is drained: every accepted job must come out exactly once. Then the
//! queue must take exactly `capacity` new jobs and give them back in order.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex as StdMutex;

use bughunt_kit::check::{panic_text, run_stages, Ctx, Stage};
use bughunt_kit::explore::{explore, Explored, Search};
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::sync::{spawn_named, Arc, Barrier};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// One thing a thread did in the schedule being explored.
struct Step {
    actor: String,
    kind: EventKind,
    msg: Option<u64>,
    note: String,
}

/// What a call did to the queue, once it returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// `try_push(job)`: `Ok` queued it, `Err` refused it.
    Push { job: u64, ok: bool },
    /// `try_reserve(n)`: `ok` reserved `n` slots.
    Reserve { n: usize, ok: bool },
    /// `push_reserved(job)`: a reserved slot now holds `job`.
    Fill { job: u64 },
    /// `try_pop()`.
    Pop { got: Option<u64> },
}

/// One call, where it started and returned in the story, and what it did.
#[derive(Clone)]
struct CallSpan {
    actor: String,
    effect: Effect,
    started: usize,
    returned: usize,
}

impl CallSpan {
    fn told(&self) -> String {
        let call = match self.effect {
            Effect::Push { job, ok: true } => format!("try_push({job}) (accepted)"),
            Effect::Push { job, ok: false } => format!("try_push({job}) (refused)"),
            Effect::Reserve { n, ok: true } => format!("try_reserve({n}) (granted)"),
            Effect::Reserve { n, ok: false } => format!("try_reserve({n}) (refused)"),
            Effect::Fill { job } => format!("push_reserved({job})"),
            Effect::Pop { got: Some(job) } => format!("try_pop() (got {job})"),
            Effect::Pop { got: None } => "try_pop() (got nothing)".to_owned(),
        };
        format!("{}'s {call}", self.actor)
    }

    /// What it adds to the depth once it has taken effect.
    fn depth_added(&self) -> i64 {
        match self.effect {
            Effect::Push { ok: true, .. } => 1,
            Effect::Reserve { n, ok: true } => n as i64,
            _ => 0,
        }
    }

    /// What it adds to the jobs queued once it has taken effect.
    fn jobs_added(&self) -> i64 {
        match self.effect {
            Effect::Push { ok: true, .. } | Effect::Fill { .. } => 1,
            _ => 0,
        }
    }

    fn took(&self) -> bool {
        matches!(self.effect, Effect::Pop { got: Some(_) })
    }
}

#[derive(Default)]
struct Log {
    steps: Vec<Step>,
    calls: Vec<CallSpan>,
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
        self.step("queue", EventKind::Lost, msg, detail.clone());
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
        trace.event("queue", EventKind::Stall).note("deadlock: a thread waits for a lock it holds").record();
        return Err(format!(
            "deadlock: a method of WorkQueue locked a mutex while its own thread already held \
             the guard; a mutex is not reentrant, so the thread waits for itself forever ({text})"
        ));
    }
    if text.contains("deadlock") {
        trace.event("queue", EventKind::Stall).note("deadlock").record();
        return Err(format!(
            "deadlock: every thread still running waits for another, and none can go on ({text})"
        ));
    }
    if text.contains("max_steps") {
        trace.event("queue", EventKind::Stall).note("no progress").record();
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

/// What a producer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `try_push` one job.
    Push,
    /// `try_reserve(n)`, then (if granted) `push_reserved` `n` jobs.
    Batch(usize),
}

/// A queue, its backlog, and the threads that work on it at once.
#[derive(Clone, Debug)]
struct Workload {
    capacity: usize,
    /// Jobs queued by main before the threads start (101, 102, ...).
    backlog: usize,
    producers: Vec<Vec<Op>>,
    /// How many times each consumer calls `try_pop()`.
    consumers: Vec<usize>,
    /// Whether a producer fills its own reservations (else main fills them once every
    /// thread is done: fewer steps to search, the same bound to keep).
    fill_in_thread: bool,
}

/// The job ids of producer `p`: p1's are 201, 202, ..., p2's 301, ...
fn job_id(p: usize, k: usize) -> u64 {
    100 * (p as u64 + 2) + k as u64 + 1
}

fn tell(workload: &Workload) -> String {
    let mut parts = vec![format!(
        "capacity {}, {} job{} queued before the threads start",
        workload.capacity,
        workload.backlog,
        if workload.backlog == 1 { "" } else { "s" }
    )];
    for (p, ops) in workload.producers.iter().enumerate() {
        let mut k = 0;
        let calls: Vec<String> = ops
            .iter()
            .map(|op| match op {
                Op::Push => {
                    k += 1;
                    format!("try_push({})", job_id(p, k - 1))
                }
                Op::Batch(n) => {
                    let first = job_id(p, k);
                    k += n;
                    if workload.fill_in_thread {
                        format!("try_reserve({n}) and push_reserved({first}..)")
                    } else {
                        format!("try_reserve({n})")
                    }
                }
            })
            .collect();
        parts.push(format!("p{} calls {}", p + 1, calls.join(", then ")));
    }
    for (c, pops) in workload.consumers.iter().enumerate() {
        parts.push(format!(
            "c{} calls try_pop() {pops} time{}",
            c + 1,
            if *pops == 1 { "" } else { "s" }
        ));
    }
    format!("{}, all at once", parts.join("; "))
}

fn record(story: &Story, actor: &str, effect: Effect, started: usize) {
    let (kind, msg, note) = match effect {
        Effect::Push { job, ok: true } => (EventKind::Send, Some(job), format!("try_push({job}) accepted")),
        Effect::Push { job, ok: false } => (EventKind::Reject, Some(job), format!("try_push({job}) refused: full")),
        Effect::Reserve { n, ok: true } => (EventKind::Note, None, format!("try_reserve({n}) granted")),
        Effect::Reserve { n, ok: false } => (EventKind::Reject, None, format!("try_reserve({n}) refused: full")),
        Effect::Fill { job } => (EventKind::Send, Some(job), format!("push_reserved({job}) returned")),
        Effect::Pop { got: Some(job) } => (EventKind::Deliver, Some(job), format!("try_pop() returned {job}")),
        Effect::Pop { got: None } => (EventKind::Note, None, "try_pop() returned nothing".to_owned()),
    };
    let returned = story.step(actor, kind, msg, note);
    story.log().calls.push(CallSpan { actor: actor.to_owned(), effect, started, returned });
}

fn reserve(story: &Story, queue: &WorkQueue, actor: &str, n: usize) -> Option<Reservation> {
    let started = story.step(actor, EventKind::Note, None, format!("try_reserve({n}) starts"));
    let reservation = queue.try_reserve(n);
    record(story, actor, Effect::Reserve { n, ok: reservation.is_some() }, started);
    reservation
}

fn fill(story: &Story, queue: &WorkQueue, actor: &str, reservation: &mut Reservation, job: u64) {
    let started = story.step(actor, EventKind::Note, Some(job), format!("push_reserved({job}) starts"));
    queue.push_reserved(reservation, job);
    record(story, actor, Effect::Fill { job }, started);
}

/// Runs one schedule of `workload`. With `barrier`, every thread waits for the others before its
/// first call, so no thread's head start hides a race from a random search; a depth-first
/// search tries the schedules without head starts anyway, and a barrier would only add steps
/// to it.
fn run_workload(workload: &Workload, story: &Story, barrier: bool) {
    let capacity = workload.capacity;
    let queue = Arc::new(WorkQueue::new(capacity));
    for k in 0..workload.backlog {
        let job = 101 + k as u64;
        if queue.try_push(job).is_err() {
            story.fail(Some(job), format!(
                "main's try_push({job}) was refused with {k} jobs queued in a queue of capacity \
                 {capacity}, before any other thread started"
            ));
        }
    }
    if workload.backlog > 0 {
        story.step("main", EventKind::Send, None, format!(
            "queued jobs 101..={} before the threads started",
            100 + workload.backlog
        ));
    }
    let start = barrier.then(|| Arc::new(Barrier::new(workload.producers.len() + workload.consumers.len())));
    let mut producers = Vec::new();
    for (p, ops) in workload.producers.iter().enumerate() {
        let story = story.clone();
        let queue = queue.clone();
        let ops = ops.clone();
        let start = start.clone();
        let fill_here = workload.fill_in_thread;
        producers.push(spawn_named(format!("p{}", p + 1), move || {
            if let Some(start) = start {
                start.wait();
            }
            let actor = format!("p{}", p + 1);
            let mut k = 0;
            let mut unfilled = Vec::new();
            for op in ops {
                match op {
                    Op::Push => {
                        let job = job_id(p, k);
                        k += 1;
                        let started = story.step(actor.clone(), EventKind::Note, Some(job), format!("try_push({job}) starts"));
                        let ok = queue.try_push(job).is_ok();
                        record(&story, &actor, Effect::Push { job, ok }, started);
                    }
                    Op::Batch(n) => {
                        let first = k;
                        k += n;
                        if let Some(mut reservation) = reserve(&story, &queue, &actor, n) {
                            if fill_here {
                                for i in 0..n {
                                    fill(&story, &queue, &actor, &mut reservation, job_id(p, first + i));
                                }
                            } else {
                                unfilled.push((reservation, first, n));
                            }
                        }
                    }
                }
            }
            unfilled
        }));
    }
    let mut consumers = Vec::new();
    for (c, pops) in workload.consumers.iter().copied().enumerate() {
        let story = story.clone();
        let queue = queue.clone();
        let start = start.clone();
        consumers.push(spawn_named(format!("c{}", c + 1), move || {
            if let Some(start) = start {
                start.wait();
            }
            let actor = format!("c{}", c + 1);
            for _ in 0..pops {
                let started = story.step(actor.clone(), EventKind::Note, None, "try_pop() starts");
                let got = queue.try_pop();
                record(&story, &actor, Effect::Pop { got }, started);
            }
        }));
    }
    let mut unfilled = Vec::new();
    for (p, producer) in producers.into_iter().enumerate() {
        let left = producer.join().unwrap_or_else(|_| panic!("p{} panicked", p + 1));
        unfilled.extend(left.into_iter().map(|(reservation, first, n)| (p, reservation, first, n)));
    }
    for (c, consumer) in consumers.into_iter().enumerate() {
        consumer.join().unwrap_or_else(|_| panic!("c{} panicked", c + 1));
    }
    let calls = story.log().calls.clone();
    let backlog = workload.backlog as i64;
    let steps = story.log().steps.len();

    // The depth can only have been over capacity if its lower bound was.
    for t in 0..steps {
        let added: Vec<&CallSpan> = calls.iter().filter(|call| call.returned <= t && call.depth_added() > 0).collect();
        let taken = calls.iter().filter(|call| call.started <= t && call.took()).count() as i64;
        let depth = backlog + added.iter().map(|call| call.depth_added()).sum::<i64>() - taken;
        if depth > capacity as i64 {
            let told: Vec<String> = added.iter().map(|call| call.told()).collect();
            let what = if added.iter().any(|call| matches!(call.effect, Effect::Reserve { .. })) {
                "jobs and reserved slots"
            } else {
                "jobs"
            };
            let pops = match taken {
                0 => "no pop had started".to_owned(),
                1 => "only 1 pop had started".to_owned(),
                _ => format!("only {taken} pops had started"),
            };
            story.fail(None, format!(
                "the queue held at least {depth} {what} at once, over its capacity of {capacity}: \
                 {} job{} queued before the threads started, then {} had returned, and {pops}",
                workload.backlog,
                if workload.backlog == 1 { "" } else { "s" },
                told.join(", ")
            ));
        }
    }
    // A refusal must have met a queue too full for it, at some point while it ran.
    for refused in calls.iter().filter(|call| matches!(call.effect, Effect::Push { ok: false, .. } | Effect::Reserve { ok: false, .. })) {
        let wanted = match refused.effect {
            Effect::Reserve { n, .. } => n as i64,
            _ => 1,
        };
        let most = (refused.started..=refused.returned)
            .map(|t| {
                let added: i64 = calls.iter().filter(|call| call.started <= t).map(CallSpan::depth_added).sum();
                let taken = calls.iter().filter(|call| call.returned <= t && call.took()).count() as i64;
                backlog + added - taken
            })
            .max()
            .unwrap_or(backlog);
        if most + wanted <= capacity as i64 {
            story.fail(None, format!(
                "{} was refused, but while it ran the queue held at most {most} jobs and reserved \
                 slots, so {wanted} more would have fit in its capacity of {capacity}",
                refused.told()
            ));
        }
    }
    // A pop that found nothing must have met a queue with no job in it.
    for empty in calls.iter().filter(|call| call.effect == Effect::Pop { got: None }) {
        let least = (empty.started..=empty.returned)
            .map(|t| {
                let added: i64 = calls.iter().filter(|call| call.returned <= t).map(CallSpan::jobs_added).sum();
                let taken = calls.iter().filter(|call| call.started <= t && call.took()).count() as i64;
                backlog + added - taken
            })
            .min()
            .unwrap_or(backlog);
        if least > 0 {
            story.fail(None, format!(
                "{} found nothing, but all the while it ran at least {least} job{} sat in the queue",
                empty.told(),
                if least == 1 { "" } else { "s" }
            ));
        }
    }

    // Main fills what producers reserved and did not fill, then drains the queue.
    for (p, mut reservation, first, n) in unfilled {
        for i in 0..n {
            fill(story, &queue, "main", &mut reservation, job_id(p, first + i));
        }
    }
    let mut drained = Vec::new();
    let accepted: Vec<(u64, String)> = {
        let log = story.log();
        let mut accepted: Vec<(u64, String)> = (0..workload.backlog)
            .map(|k| (101 + k as u64, "main before the threads started".to_owned()))
            .collect();
        for call in &log.calls {
            match call.effect {
                Effect::Push { job, ok: true } | Effect::Fill { job } => accepted.push((job, call.told())),
                _ => {}
            }
        }
        accepted
    };
    for _ in 0..accepted.len() + capacity + 1 {
        match queue.try_pop() {
            Some(job) => drained.push(job),
            None => break,
        }
    }
    if !drained.is_empty() {
        story.step("main", EventKind::Deliver, None, format!(
            "after every thread was done, drained {}",
            drained.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut popped: Vec<(u64, String)> = story
        .log()
        .calls
        .iter()
        .filter_map(|call| match call.effect {
            Effect::Pop { got: Some(job) } => Some((job, call.told())),
            _ => None,
        })
        .collect();
    popped.extend(drained.iter().map(|job| (*job, "main's drain after every thread was done".to_owned())));
    for (i, (job, by)) in popped.iter().enumerate() {
        if let Some((_, before)) = popped[..i].iter().find(|(seen, _)| seen == job) {
            story.fail(Some(*job), format!("job {job} came out twice: to {before}, and to {by}"));
        }
        if !accepted.iter().any(|(queued, _)| queued == job) {
            story.fail(Some(*job), format!("{by} returned job {job}, which the queue never accepted"));
        }
    }
    for (job, by) in &accepted {
        if !popped.iter().any(|(seen, _)| seen == job) {
            story.fail(Some(*job), format!(
                "job {job}, accepted by {by}, never came out, not even when the queue was drained \
                 after every thread was done: it was lost"
            ));
        }
    }

    // Empty now: the queue takes exactly `capacity` new jobs and gives them back in order.
    let fresh: Vec<u64> = (0..capacity as u64).map(|k| 9001 + k).collect();
    for job in &fresh {
        if queue.try_push(*job).is_err() {
            story.fail(Some(*job), format!(
                "after every job was drained, main's try_push({job}) was refused with {} of \
                 {capacity} slots filled since: the queue lost track of its depth",
                job - 9001
            ));
        }
    }
    if queue.try_push(9999).is_ok() {
        story.fail(Some(9999), format!(
            "after every job was drained, the queue accepted {} new jobs, over its capacity of \
             {capacity}: it lost track of its depth",
            capacity + 1
        ));
    }
    for job in &fresh {
        let got = queue.try_pop();
        if got != Some(*job) {
            story.fail(Some(*job), format!(
                "after every job was drained, main pushed {}..={} alone, and try_pop() returned \
                 {got:?} where {job} was next",
                fresh[0],
                fresh[fresh.len() - 1]
            ));
        }
    }
}

/// How a stage searches the schedules of each workload.
#[derive(Clone, Copy)]
enum Schedules {
    /// Depth-first, every schedule; a program with so many synchronisation points that
    /// [`DFS_SCHEDULES_MAX`] runs out first (a spin lock, say) gets [`PCT_SCHEDULES`] PCT
    /// schedules from a fixed seed after it, so a correct but busy program finishes in time.
    Every,
    /// Random schedules from a fixed seed, fair to yields.
    Random,
}

const DFS_SCHEDULES_MAX: usize = 2_000;
const PCT_SCHEDULES: usize = 200;
const PCT_SEED: u64 = 0x6675_6c6d;
const RANDOM_SEED: u64 = 0x6675_6c6c;
const RANDOM_SCHEDULES: usize = 30;

impl Schedules {
    fn first(self) -> Search {
        match self {
            Schedules::Every => Search::Exhaustive { schedules_max: DFS_SCHEDULES_MAX },
            Schedules::Random => Search::Random { seed: RANDOM_SEED, schedules: RANDOM_SCHEDULES },
        }
    }

    fn describe(self) -> String {
        match self {
            Schedules::Every => format!(
                "{}; if that many do not cover every schedule, then {}",
                self.first().describe(),
                Search::Pct { seed: PCT_SEED, depth: 3, schedules: PCT_SCHEDULES }.describe()
            ),
            Schedules::Random => self.first().describe(),
        }
    }
}

/// Searches one workload; on a failure, returns what went wrong and which search found it.
fn search_workload(workload: &Workload, schedules: Schedules, trace: &Trace) -> Result<(), String> {
    let barrier = matches!(schedules, Schedules::Random);
    let run = workload.clone();
    let first = schedules.first();
    let explored = search_schedules(first, trace, move |story| run_workload(&run, story, barrier))
        .map_err(|detail| format!("{detail} (found by {})", first.describe()))?;
    if explored.complete || !matches!(schedules, Schedules::Every) {
        return Ok(());
    }
    let pct = Search::Pct { seed: PCT_SEED, depth: 3, schedules: PCT_SCHEDULES };
    let run = workload.clone();
    search_schedules(pct, trace, move |story| run_workload(&run, story, barrier))
        .map(|_| ())
        .map_err(|detail| {
            format!(
                "{detail} (found by {}, after {} depth-first schedules passed)",
                pct.describe(),
                explored.schedules
            )
        })
}

/// Checks `workloads` (`cases` of them) under `schedules`, shrinking a failing one.
fn check_workloads(
    ctx: &mut Ctx,
    name: &str,
    cases: u32,
    workloads: impl Strategy<Value = Workload>,
    schedules: Schedules,
    what: &str,
) {
    prop::for_all(
        ctx,
        name,
        cases,
        workloads,
        tell,
        move |workload, trace| {
            let verdict = search_workload(workload, schedules, trace);
            // A shuttle replay string alone cannot replay a generated workload: the history
            // told, the search and its seed can, and the check repeats them every run.
            bughunt_kit::explore::take_replay();
            verdict
        },
    );
    ctx.replay(format!(
        "{cases} generated workloads from a fixed seed ({what}), each searched with {}",
        schedules.describe()
    ));
}

/// Capacities that are not powers of two.
const CAPACITIES: &[usize] = &[3, 5, 6, 7];
const BUSY_CAPACITIES: &[usize] = &[3, 5, 6, 7, 9, 10];


/// Two producers pushing into the last free slots.
fn two_producers(ctx: &mut Ctx) {
    let pushes = proptest::collection::vec(Just(Op::Push), 1..=2);
    let workloads = (proptest::sample::select(CAPACITIES), 1usize..=2, pushes.clone(), pushes).prop_map(
        |(capacity, room, p1, p2)| Workload {
            capacity,
            backlog: capacity - room,
            producers: vec![p1, p2],
            consumers: vec![],
            fill_in_thread: false,
        },
    );
    check_workloads(
        ctx,
        "two producers never overfill the queue",
        3,
        workloads,
        Schedules::Every,
        "one or two slots free, two producers pushing one or two jobs each",
    );
}

/// Two consumers popping a backlog.
fn two_consumers(ctx: &mut Ctx) {
    let workloads = (proptest::sample::select(CAPACITIES), 1usize..=3, 1usize..=2, 1usize..=2).prop_map(
        |(capacity, backlog, c1, c2)| Workload {
            capacity,
            backlog: backlog.min(capacity),
            producers: vec![],
            consumers: vec![c1, c2],
            fill_in_thread: false,
        },
    );
    check_workloads(
        ctx,
        "two consumers never take the same job",
        3,
        workloads,
        Schedules::Every,
        "one to three jobs queued, two consumers popping once or twice each",
    );
}

/// Two batch producers reserving the last free slots.
fn reservations(ctx: &mut Ctx) {
    let workloads = (proptest::sample::select(CAPACITIES), 2usize..=4, 2usize..=3, 1usize..=3).prop_map(
        |(capacity, room, n1, n2)| Workload {
            capacity,
            backlog: capacity - room.min(capacity),
            producers: vec![vec![Op::Batch(n1)], vec![Op::Batch(n2)]],
            consumers: vec![],
            fill_in_thread: false,
        },
    );
    check_workloads(
        ctx,
        "two reservations never overbook the queue",
        4,
        workloads,
        Schedules::Every,
        "two to four slots free, two producers reserving 2 or 3 and 1 to 3 slots",
    );
}

/// Producers and consumers at once, pushes and batches, a queue that fills and empties.
fn busy_queue(ctx: &mut Ctx) {
    let op = prop_oneof![3 => Just(Op::Push), 1 => (1usize..=3).prop_map(Op::Batch)];
    let producer = proptest::collection::vec(op, 1..=3);
    let workloads = (
        proptest::sample::select(BUSY_CAPACITIES),
        0usize..=3,
        proptest::collection::vec(producer, 2..=3),
        proptest::collection::vec(1usize..=3, 1..=2),
    )
        .prop_map(|(capacity, room, producers, consumers)| Workload {
            capacity,
            backlog: capacity - room.min(capacity),
            producers,
            consumers,
            fill_in_thread: true,
        });
    check_workloads(
        ctx,
        "a busy queue keeps its bound and every job",
        6,
        workloads,
        Schedules::Random,
        "two or three producers with one to three pushes or batches each, one or two consumers, zero to three slots free",
    );
}

#[test]
fn checks() {
    run_stages(
        "over-capacity",
        &[
            Stage {
                id: "two-producers",
                title: "Two producers pushing into the last free slots never overfill the queue",
                mentor: "Two producers pushed at the same moment, and a promise broke (the story \
                         below shows the schedule, and says which: more jobs than the capacity, \
                         or a push refused while there was room). When your code decides there \
                         is room, can another producer take that room before your push lands? \
                         Are the check and the push under one guard?",
                run: two_producers,
            },
            Stage {
                id: "two-consumers",
                title: "Two consumers never take the same job, and lose none",
                mentor: "Better! Pushes keep the bound. But two consumers popping at once broke a \
                         promise (the story below says which job). Is the job you return the \
                         very job you removed, and are looking at it and removing it one step \
                         under one guard?",
                run: two_consumers,
            },
            Stage {
                id: "reservations",
                title: "Two batch reservations at once never overbook the queue",
                mentor: "Close! Single pushes and pops are safe. But two batch producers \
                         reserving at once broke a promise (the story below shows it). Does the \
                         room check count every slot already taken, reserved ones too, and is \
                         it under the same guard as the reservation it allows?",
                run: reservations,
            },
            Stage {
                id: "busy-queue",
                title: "With producers, batches and consumers at once, the bound and every job hold",
                mentor: "The two-thread races pass. With more producers, batches and consumers at \
                         once a promise broke: the story below is the smallest group I found that \
                         breaks it, and says which. Does every check of the room count queued \
                         jobs and reserved slots alike, and happen under the same guard as the \
                         push or reservation it allows, however many threads push at once and \
                         however far from full the queue looks?",
                run: busy_queue,
            },
        ],
    );
}
