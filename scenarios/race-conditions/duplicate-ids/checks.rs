//! Checks for `duplicate-ids`: the allocator keeps its promises however producers interleave.
//!
//! Every stage is a property over generated workloads: a range of ids (its first id past 100,
//! its size not a power of two), some ids taken before the producers start, two or three
//! producer threads asking at once for single ids (`next_id()`) or blocks of uneven sizes
//! (`reserve_block(n)`), reporting what they sent (`mark_sent`), and a monitor reading
//! `high_water()`. The first four stages run two producers with one request each under every
//! schedule (shuttle's depth-first search, which covers a workload this small within 2,000
//! schedules unless the program has many synchronisation points of its own, a spin lock say:
//! then PCT schedules from a fixed seed follow); the last runs busier groups under random
//! schedules from a fixed seed (too many to try them all). Every
//! search is fair to a thread that yields and bounds the steps of a schedule (see
//! `bughunt_kit::explore`).
//!
//! Each schedule is checked against what the calls it ran allow, never against a reference
//! implementation: no id twice, every id in the range, the ids handed out dense, a refusal
//! only when too few ids were left, `high_water()` one past the highest id sent, and every
//! value a monitor read a value the mark had while it read, never lower than one read before.
//! A failing schedule's story (which producer got which ids, in what order) is drawn into the
//! stage's trace.

use std::collections::BTreeMap;
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
    note: String,
}

/// What a producer asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    /// `next_id()`.
    One,
    /// `reserve_block(n)`.
    Block(u64),
}

impl Ask {
    fn ids(self) -> u64 {
        match self {
            Ask::One => 1,
            Ask::Block(n) => n,
        }
    }

    fn call(self) -> String {
        match self {
            Ask::One => "next_id()".to_owned(),
            Ask::Block(n) => format!("reserve_block({n})"),
        }
    }
}

/// One request a producer made, where it started and returned in the story, and its answer.
#[derive(Clone)]
struct AskSpan {
    producer: usize,
    ask: Ask,
    got: Option<std::ops::Range<u64>>,
}

/// A `mark_sent(id)` call, with where it started and returned in the story.
#[derive(Clone, Copy)]
struct SentSpan {
    producer: usize,
    id: u64,
    started: usize,
    returned: usize,
}

/// A monitor's `high_water()` read.
#[derive(Clone, Copy)]
struct ReadSpan {
    started: usize,
    returned: usize,
    seen: u64,
}

#[derive(Default)]
struct Log {
    steps: Vec<Step>,
    asks: Vec<AskSpan>,
    sent: Vec<SentSpan>,
    reads: Vec<ReadSpan>,
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
    fn step(&self, actor: impl Into<String>, kind: EventKind, note: impl Into<String>) -> usize {
        let mut log = self.log();
        log.steps.push(Step { actor: actor.into(), kind, note: note.into() });
        log.steps.len() - 1
    }

    /// Records the verdict and fails the schedule with `detail`.
    fn fail(&self, detail: String) -> ! {
        self.step("ids", EventKind::Lost, detail.clone());
        panic!("{detail}");
    }

    /// Draws the story. An id is not a message, so no step is tagged with one (the notes
    /// name the ids).
    fn draw_into(&self, trace: &Trace) {
        for step in self.log().steps.iter() {
            trace.event(step.actor.clone(), step.kind).note(step.note.clone()).record();
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
        trace.event("ids", EventKind::Stall).note("deadlock: a thread waits for a lock it holds").record();
        return Err(format!(
            "deadlock: a method of IdAllocator locked a mutex while its own thread already held \
             the guard; a mutex is not reentrant, so the thread waits for itself forever ({text})"
        ));
    }
    if text.contains("deadlock") {
        trace.event("ids", EventKind::Stall).note("deadlock").record();
        return Err(format!(
            "deadlock: every thread still running waits for another, and none can go on ({text})"
        ));
    }
    if text.contains("max_steps") {
        trace.event("ids", EventKind::Stall).note("no progress").record();
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

/// A range, producers asking at once, and a monitor.
#[derive(Clone, Debug)]
struct Workload {
    /// The first id of the range.
    first: u64,
    /// How many ids the range holds.
    span: u64,
    /// Ids the main thread takes with `next_id()` before the producers start.
    taken: u64,
    /// Each producer's requests, in order.
    producers: Vec<Vec<Ask>>,
    /// Whether each producer calls `mark_sent` with the last id of each answer it gets.
    send: bool,
    /// How many times a monitor reads `high_water()` while the producers work (0: no monitor).
    reads: usize,
}

impl Workload {
    fn limit(&self) -> u64 {
        self.first + self.span
    }
}

fn ids_text(range: &std::ops::Range<u64>) -> String {
    if range.end - range.start == 1 {
        format!("id {}", range.start)
    } else {
        format!("ids {}..{}", range.start, range.end)
    }
}

fn tell(workload: &Workload) -> String {
    let mut parts = vec![format!(
        "the range is {}..{} ({} ids){}",
        workload.first,
        workload.limit(),
        workload.span,
        if workload.taken == 0 {
            String::new()
        } else {
            format!(
                " and {} were taken before the producers started",
                ids_text(&(workload.first..workload.first + workload.taken))
            )
        }
    )];
    for (p, asks) in workload.producers.iter().enumerate() {
        let calls: Vec<String> = asks
            .iter()
            .map(|ask| {
                if workload.send {
                    format!("{} and mark_sent(its last id)", ask.call())
                } else {
                    ask.call()
                }
            })
            .collect();
        parts.push(format!("p{} calls {}", p + 1, calls.join(", then ")));
    }
    if workload.reads > 0 {
        parts.push(format!(
            "a monitor reads high_water() {} time{}",
            workload.reads,
            if workload.reads == 1 { "" } else { "s" }
        ));
    }
    format!("{}, all at once", parts.join("; "))
}

/// Runs one schedule of `workload`. With `barrier`, every thread waits for the others before its
/// first call, so no thread's head start hides a race from a random search; a depth-first
/// search tries the schedules without head starts anyway, and a barrier would only add steps
/// to it.
fn run_workload(workload: &Workload, story: &Story, barrier: bool) {
    let first = workload.first;
    let limit = workload.limit();
    let ids = Arc::new(IdAllocator::new(first, limit));
    for k in 0..workload.taken {
        let want = first + k;
        match ids.next_id() {
            Some(id) if id == want => {}
            other => story.fail(format!(
                "before any producer started, main's next_id() call number {} on the range \
                 {first}..{limit} returned {other:?} (want Some({want}))",
                k + 1
            )),
        }
    }
    if workload.taken > 0 {
        story.step("main", EventKind::Note, format!(
            "took {} before the producers started",
            ids_text(&(first..first + workload.taken))
        ));
    }
    let start = barrier.then(|| Arc::new(Barrier::new(workload.producers.len() + usize::from(workload.reads > 0))));
    let mut producers = Vec::new();
    for (p, asks) in workload.producers.iter().enumerate() {
        let story = story.clone();
        let ids = ids.clone();
        let asks = asks.clone();
        let start = start.clone();
        let send = workload.send;
        producers.push(spawn_named(format!("p{}", p + 1), move || {
            if let Some(start) = start {
                start.wait();
            }
            let actor = format!("p{}", p + 1);
            for ask in asks {
                story.step(actor.clone(), EventKind::Note, format!("{} starts", ask.call()));
                let got = match ask {
                    Ask::One => ids.next_id().map(|id| id..id + 1),
                    Ask::Block(n) => ids.reserve_block(n),
                };
                match &got {
                    Some(range) => story.step(actor.clone(), EventKind::Note, format!(
                        "{} returned {}",
                        ask.call(),
                        match ask {
                            Ask::One => range.start.to_string(),
                            Ask::Block(_) => format!("{}..{}", range.start, range.end),
                        }
                    )),
                    None => story.step(actor.clone(), EventKind::Reject, format!("{} refused", ask.call())),
                };
                story.log().asks.push(AskSpan { producer: p, ask, got: got.clone() });
                if let (true, Some(range)) = (send, &got) {
                    if range.end > range.start {
                        let id = range.end - 1;
                        let started = story.step(actor.clone(), EventKind::Send, format!(
                            "sends m{id}, mark_sent({id}) starts"
                        ));
                        ids.mark_sent(id);
                        let returned = story.step(actor.clone(), EventKind::Note, format!("mark_sent({id}) returned"));
                        story.log().sent.push(SentSpan { producer: p, id, started, returned });
                    }
                }
            }
        }));
    }
    let monitor = (workload.reads > 0).then(|| {
        let story = story.clone();
        let ids = ids.clone();
        let start = start.clone();
        let reads = workload.reads;
        spawn_named("monitor", move || {
            if let Some(start) = start {
                start.wait();
            }
            for _ in 0..reads {
                let started = story.step("monitor", EventKind::Note, "high_water() starts");
                let seen = ids.high_water();
                let returned = story.step("monitor", EventKind::Note, format!("high_water() returned {seen}"));
                story.log().reads.push(ReadSpan { started, returned, seen });
            }
        })
    });
    for (p, producer) in producers.into_iter().enumerate() {
        producer.join().unwrap_or_else(|_| panic!("p{} panicked", p + 1));
    }
    if let Some(monitor) = monitor {
        monitor.join().unwrap_or_else(|_| panic!("the monitor panicked"));
    }
    let (asks, sent, reads) = {
        let log = story.log();
        (log.asks.clone(), log.sent.clone(), log.reads.clone())
    };
    let who = |span: &AskSpan| format!("p{}'s {}", span.producer + 1, span.ask.call());

    // Every id handed out: to main before the race, then to the producers.
    let mut owner: BTreeMap<u64, String> = (first..first + workload.taken)
        .map(|id| (id, "main's next_id() before the producers started".to_owned()))
        .collect();
    for span in &asks {
        let Some(range) = &span.got else { continue };
        if range.end - range.start != span.ask.ids() {
            story.fail(format!(
                "{} returned {}..{}, which is {} ids, not {}",
                who(span),
                range.start,
                range.end,
                range.end.saturating_sub(range.start),
                span.ask.ids()
            ));
        }
        for id in range.clone() {
            if let Some(before) = owner.get(&id) {
                let to = if range.end - range.start == 1 {
                    who(span)
                } else {
                    format!("{} ({})", who(span), ids_text(range))
                };
                story.fail(format!(
                    "id {id} was handed out twice: to {before} and to {to}; two messages now \
                     carry the same id"
                ));
            }
            let told = if range.end - range.start == 1 {
                who(span)
            } else {
                format!("{} ({})", who(span), ids_text(range))
            };
            owner.insert(id, told);
        }
    }
    for (id, to) in &owner {
        if *id < first || *id >= limit {
            story.fail(format!(
                "id {id} was handed out to {to}, outside the range {first}..{limit}: it may \
                 belong to another process's range"
            ));
        }
    }
    let handed = owner.len() as u64;
    if let Some(gap) = (first..first + handed).find(|id| !owner.contains_key(id)) {
        let highest = owner.keys().next_back().copied().unwrap_or(first);
        story.fail(format!(
            "{handed} ids were handed out, up to {highest}, but {gap} never was: a consumer \
             would take the gap for a lost message"
        ));
    }
    let left = workload.span - handed;
    for span in &asks {
        if span.got.is_none() && left >= span.ask.ids() {
            story.fail(format!(
                "{} was refused, yet when every producer was done {left} id{} ({}) had never \
                 been handed out",
                who(span),
                if left == 1 { "" } else { "s" },
                ids_text(&(first + handed..limit))
            ));
        }
    }

    // The mark is checked where producers report what they sent (the last two stages); the
    // stages before them are about the ids alone.
    let want_high = sent.iter().map(|s| s.id + 1).max().unwrap_or(first);
    let high = ids.high_water();
    if workload.send && high != want_high {
        let told: Vec<String> = sent.iter().map(|s| format!("p{} sent m{}", s.producer + 1, s.id)).collect();
        story.fail(format!(
            "{}, and after every producer was done high_water() says {high} (want {want_high}, \
             one past the highest id sent){}",
            if told.is_empty() { "nothing was sent".to_owned() } else { told.join(" and ") },
            if high < want_high { ": the mark went backwards" } else { "" }
        ));
    }
    for (r, read) in reads.iter().enumerate() {
        let floor = sent
            .iter()
            .filter(|s| s.returned < read.started)
            .map(|s| s.id + 1)
            .max()
            .unwrap_or(first);
        let mut could: Vec<u64> = sent.iter().filter(|s| s.started < read.returned).map(|s| s.id + 1).collect();
        could.push(first);
        if read.seen < floor || !could.contains(&read.seen) {
            story.fail(format!(
                "the monitor's high_water() read number {} returned {}, but while it ran the mark \
                 could only be {} or more, and only one past an id sent by then",
                r + 1,
                read.seen,
                floor
            ));
        }
        if r > 0 && read.seen < reads[r - 1].seen {
            story.fail(format!(
                "the monitor read high_water() {} and then {}: the mark went backwards",
                reads[r - 1].seen,
                read.seen
            ));
        }
    }

    // The counter itself: the next id must be the first one never handed out.
    let after = ids.next_id();
    let want = (handed < workload.span).then_some(first + handed);
    if after != want {
        story.fail(format!(
            "after every producer was done, {} had been handed out and next_id() returned \
             {after:?} (want {want:?})",
            if handed == 0 { "no id".to_owned() } else { ids_text(&(first..first + handed)) }
        ));
    }
    // Handing out an id is not sending it: the mark must not move.
    let high_after = ids.high_water();
    if workload.send && high_after != want_high {
        story.fail(format!(
            "after every producer was done high_water() said {want_high}; then main took one \
             more id with next_id() and sent nothing, and high_water() says {high_after}: the \
             mark follows the ids handed out, not the ids sent"
        ));
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
const PCT_SEED: u64 = 0x6964_7322;
const RANDOM_SEED: u64 = 0x6964_7321;
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

/// A range size that is not a power of two, from `sizes`.
fn span_of(sizes: &'static [u64]) -> impl Strategy<Value = u64> {
    proptest::sample::select(sizes)
}

fn block(sizes: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Ask> {
    sizes.prop_map(Ask::Block)
}

const ROOMY: &[u64] = &[23, 37, 50];
const TIGHT: &[u64] = &[3, 5, 6, 7];
const BUSY: &[u64] = &[5, 6, 7, 9, 10, 11, 13];


/// Two producers, one `next_id()` each, with plenty of ids left.
fn two_producers(ctx: &mut Ctx) {
    let workloads = (101u64..=950, span_of(ROOMY), 0u64..=2).prop_map(|(first, span, taken)| Workload {
        first,
        span,
        taken,
        producers: vec![vec![Ask::One], vec![Ask::One]],
        send: false,
        reads: 0,
    });
    check_workloads(
        ctx,
        "two producers get two different ids",
        3,
        workloads,
        Schedules::Every,
        "two producers, one next_id() each, plenty of ids left",
    );
}

/// A block and another request at the same moment, with plenty of ids left.
fn blocks(ctx: &mut Ctx) {
    let other = prop_oneof![Just(Ask::One), block(1..=3)];
    let workloads = (101u64..=950, span_of(ROOMY), 0u64..=2, block(2..=4), other).prop_map(
        |(first, span, taken, ask, other)| Workload {
            first,
            span,
            taken,
            producers: vec![vec![ask], vec![other]],
            send: false,
            reads: 0,
        },
    );
    check_workloads(
        ctx,
        "a block and another request never share an id",
        4,
        workloads,
        Schedules::Every,
        "p1 reserves a block of 2 to 4 ids while p2 asks for one id or a block, plenty of ids left",
    );
}

/// Two producers asking for the last ids of the range at once.
fn last_ids(ctx: &mut Ctx) {
    let ask = prop_oneof![3 => Just(Ask::One), 2 => block(2..=3)];
    let workloads = (101u64..=950, span_of(TIGHT), 1u64..=2, ask.clone(), ask).prop_map(
        |(first, span, left, p1, p2)| Workload {
            first,
            span,
            taken: span - left.min(span),
            producers: vec![vec![p1], vec![p2]],
            send: false,
            reads: 0,
        },
    );
    check_workloads(
        ctx,
        "the last ids of the range are handed out once, and only they",
        10,
        workloads,
        Schedules::Every,
        "one or two ids left, two producers asking for one id or a block of 2 or 3",
    );
}

/// Two producers send what they got; the mark must end one past the highest id sent. (A
/// monitor reading the mark meanwhile joins in the last stage: with a third thread, every
/// schedule is too many to try.)
fn high_water(ctx: &mut Ctx) {
    let ask = prop_oneof![Just(Ask::One), block(2..=3)];
    let workloads = (101u64..=950, span_of(ROOMY), 0u64..=2, ask.clone(), ask).prop_map(
        |(first, span, taken, p1, p2)| Workload {
            first,
            span,
            taken,
            producers: vec![vec![p1], vec![p2]],
            send: true,
            reads: 0,
        },
    );
    check_workloads(
        ctx,
        "high_water() ends one past the highest id sent",
        3,
        workloads,
        Schedules::Every,
        "two producers each take an id or a block and mark its last id sent",
    );
}

/// Two or three producers, several requests each, a monitor, and a range that may run out.
fn busy_producers(ctx: &mut Ctx) {
    let ask = prop_oneof![3 => Just(Ask::One), 2 => block(2..=4)];
    let producer = proptest::collection::vec(ask, 1..=3);
    let workloads = (
        101u64..=950,
        span_of(BUSY),
        0u64..=2,
        proptest::collection::vec(producer, 2..=3),
        1usize..=3,
    )
        .prop_map(|(first, span, taken, producers, reads)| Workload {
            first,
            span,
            taken: taken.min(span),
            producers,
            send: true,
            reads,
        });
    check_workloads(
        ctx,
        "busy producers keep every promise",
        8,
        workloads,
        Schedules::Random,
        "two or three producers with one to three requests each, ids and blocks of 2 to 4, a range of 5 to 13 ids that may run out, a monitor",
    );
}

#[test]
fn checks() {
    run_stages(
        "duplicate-ids",
        &[
            Stage {
                id: "two-producers",
                title: "Two producers asking at once get two different ids",
                mentor: "Two producers asked for an id at the same moment, and a promise broke \
                         (the story below shows the schedule, and says which: an id handed out \
                         twice, an id skipped, or a refusal while ids were left). Between reading \
                         the next id and writing it back, can another producer run? Is taking an \
                         id one indivisible step, and if that step can fail, does your code try \
                         again?",
                run: two_producers,
            },
            Stage {
                id: "blocks-do-not-overlap",
                title: "A block and another request at once never share an id",
                mentor: "Better! Single ids are safe now. But a block and another request at the \
                         same moment broke a promise (the story below shows which). Where does \
                         your block start: at the value the atomic step found, or at a value \
                         read before it? Is the whole block taken in one step?",
                run: blocks,
            },
            Stage {
                id: "last-ids",
                title: "The last ids of the range go out once, in range, and are refused only when gone",
                mentor: "Close! With plenty of ids everything holds. But at the end of the range \
                         a promise broke (the story below shows which: an id past the range, an \
                         id twice, or a refusal while ids were left). Is your check that ids \
                         are left part of the same atomic step as taking them? And when you \
                         refuse, do you leave the counter exactly as another producer may \
                         need it?",
                run: last_ids,
            },
            Stage {
                id: "high-water",
                title: "After two producers report at once, high_water() is one past the highest id sent",
                mentor: "Nearly there: ids are right. But the high-water mark broke its promise \
                         (the story below shows the sends and what the mark said after them). When two producers report \
                         at once, is raising the mark one indivisible step, and if it can fail, \
                         does your code try again?",
                run: high_water,
            },
            Stage {
                id: "busy-producers",
                title: "With several producers, requests and a monitor at once, every promise holds",
                mentor: "The two-producer races pass. With more producers and requests at once a \
                         promise broke: the story below is the smallest group I found that \
                         breaks it, and says which. Does each request take its ids in one step \
                         however many producers collide, and however many times in a row? Does \
                         a request ever give up while ids are left?",
                run: busy_producers,
            },
        ],
    );
}
