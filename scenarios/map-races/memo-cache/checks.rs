//! Checks for `memo-cache`: the routing-rule cache keeps its promises however its callers
//! interleave.
//!
//! Every stage is a property over generated workloads: customers 7 and 8, rules cached by
//! main before the threads start, then calls of `route`, `offer` and `invalidate` from one
//! thread (the consumer, checked call by call against a small model of the promises), or from
//! two threads at once under every schedule (shuttle's depth-first search, exhaustive for
//! workloads this small). The loader the cache is built with stands for the routing service:
//! its n-th load of a customer returns version 10·n, and it writes each load into the story.
//!
//! A concurrent schedule is checked from the calls' start and return and the loads alone,
//! never against a reference cache: a rule returned must be one the loader produced or
//! someone offered; the loader may run for a customer once, plus once per `invalidate` of it
//! started before that load; a `route` that starts after an `invalidate` returned must not
//! return a rule loaded before that invalidate started; with offers and no invalidates, an
//! offer is refused only when a rule as new was there, taken only when none was, and the
//! newest rule offered or loaded is the one left once every thread is done.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex as StdMutex;

use bughunt_kit::check::{panic_text, run_stages, Ctx, Stage};
use bughunt_kit::explore::{explore, take_replay, Search};
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::story::{Story, Voice};
use bughunt_kit::sync::{name_this_thread, spawn_named, Arc};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// The checks' own thread is "main"; lines name the customer they are about.
const VOICE: Voice = Voice {
    item: "customer",
    ..Voice::new("main")
};

/// One call a thread makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Route(u64),
    /// `offer` a rule for the customer, of this version.
    Offer(u64, u64),
    Invalidate(u64),
}

impl Op {
    fn customer(self) -> u64 {
        match self {
            Op::Route(customer) | Op::Offer(customer, _) | Op::Invalidate(customer) => customer,
        }
    }

    fn told(self) -> String {
        match self {
            Op::Route(customer) => format!("route({customer})"),
            Op::Offer(customer, version) => {
                format!("offer(customer {customer}, version {version})")
            }
            Op::Invalidate(customer) => format!("invalidate({customer})"),
        }
    }
}

/// The queue the routing service names for a customer's rule of a version.
fn queue_of(customer: u64, version: u64) -> String {
    format!("orders-{customer}-v{version}")
}

fn offered(customer: u64, version: u64) -> Route {
    Route {
        customer,
        queue: queue_of(customer, version),
        version,
    }
}

/// What a call gave back.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Routed(Route),
    Offered(bool),
    Invalidated,
}

/// One call: who made it, where it started and returned in the story, and what it gave back.
#[derive(Clone)]
struct Call {
    actor: String,
    op: Op,
    started: usize,
    returned: Option<usize>,
    outcome: Option<Outcome>,
}

impl Call {
    fn told(&self) -> String {
        format!("{}'s {}", called(&self.actor), self.op.told())
    }

    fn routed(&self) -> Option<&Route> {
        match &self.outcome {
            Some(Outcome::Routed(route)) => Some(route),
            _ => None,
        }
    }
}

/// A thread as a sentence names it: "c1", "main", "the consumer".
fn called(actor: &str) -> String {
    if actor == "consumer" {
        "the consumer".to_owned()
    } else {
        actor.to_owned()
    }
}

/// One run of the loader.
#[derive(Clone)]
struct Load {
    actor: String,
    customer: u64,
    /// The how-many-th load of this customer.
    nth: u64,
    version: u64,
    at: usize,
}

#[derive(Default)]
struct Log {
    calls: Vec<Call>,
    loads: Vec<Load>,
    /// Whether the checks failed the schedule (else a panic came from the program).
    verdict: bool,
}

/// The story of the schedule being explored and the calls and loads in it. Recording uses
/// std mutexes, never held across a thread switch: it adds no schedule points of its own.
#[derive(Clone)]
struct Book {
    story: Story,
    log: std::sync::Arc<StdMutex<Log>>,
    /// What the story calls the checks' own thread in this stage.
    main: &'static str,
}

impl Book {
    fn new(main: &'static str) -> Book {
        Book {
            story: Story::new(VOICE),
            log: Default::default(),
            main,
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn restart(&self) {
        self.story.restart();
        *self.log() = Log::default();
    }

    /// The name of the thread running now, as the story tells it.
    fn current(&self) -> String {
        match bughunt_kit::thread::current().name() {
            Some(name) if name != "main-thread" && name != "main" => name.to_owned(),
            _ => self.main.to_owned(),
        }
    }

    /// Adds a line; returns its place in the story.
    fn line(
        &self,
        actor: &str,
        kind: EventKind,
        customer: Option<u64>,
        note: impl Into<String>,
    ) -> usize {
        self.story.line(actor, kind, customer, note);
        self.story.len() - 1
    }

    /// Fails the schedule with `detail`, as the checks' verdict.
    fn fail(&self, customer: Option<u64>, detail: String) -> ! {
        self.log().verdict = true;
        self.story.fail(customer, detail)
    }

    /// A loader that stands for the routing service: the n-th load of a customer returns
    /// version 10·n, written into the story.
    fn loader(&self) -> impl Fn(u64) -> Route + Send + Sync + 'static {
        let book = self.clone();
        move |customer| {
            let actor = book.current();
            let nth = book
                .log()
                .loads
                .iter()
                .filter(|load| load.customer == customer)
                .count() as u64
                + 1;
            let version = 10 * nth;
            let at = book.line(
                &actor,
                EventKind::Process,
                Some(customer),
                format!("the loader asks the routing service for customer {customer}: version {version} (load {nth} of {customer})"),
            );
            book.log().loads.push(Load {
                actor,
                customer,
                nth,
                version,
                at,
            });
            offered(customer, version)
        }
    }

    /// Makes `op` on `cache` as `actor`, with its start and return in the story.
    fn call(&self, cache: &RouteCache, actor: &str, op: Op) -> Outcome {
        let customer = op.customer();
        let started = self.line(
            actor,
            EventKind::Note,
            Some(customer),
            format!("{} starts", op.told()),
        );
        let at = {
            let mut log = self.log();
            log.calls.push(Call {
                actor: actor.to_owned(),
                op,
                started,
                returned: None,
                outcome: None,
            });
            log.calls.len() - 1
        };
        let outcome = match op {
            Op::Route(customer) => Outcome::Routed(cache.route(customer)),
            Op::Offer(customer, version) => {
                Outcome::Offered(cache.offer(offered(customer, version)))
            }
            Op::Invalidate(customer) => {
                cache.invalidate(customer);
                Outcome::Invalidated
            }
        };
        let (kind, note) = match &outcome {
            Outcome::Routed(route) => (
                EventKind::Deliver,
                format!(
                    "{} returned version {} (queue {})",
                    op.told(),
                    route.version,
                    route.queue
                ),
            ),
            Outcome::Offered(true) => (
                EventKind::Ack,
                format!("{} returned true: taken", op.told()),
            ),
            Outcome::Offered(false) => (
                EventKind::Reject,
                format!("{} returned false: refused", op.told()),
            ),
            Outcome::Invalidated => (EventKind::Note, format!("{} returned", op.told())),
        };
        let returned = self.line(actor, kind, Some(customer), note);
        let mut log = self.log();
        log.calls[at].returned = Some(returned);
        log.calls[at].outcome = Some(outcome.clone());
        outcome
    }

    /// The calls that started and never returned, in words: "c1's route(7)".
    fn open_calls(&self) -> Vec<String> {
        self.log()
            .calls
            .iter()
            .filter(|call| call.returned.is_none())
            .map(Call::told)
            .collect()
    }

    /// What went wrong in a failed schedule, in words, with its end drawn into `trace`.
    fn explain(&self, text: String, trace: &Trace) -> String {
        if self.log().verdict {
            return text;
        }
        let open = self.open_calls();
        let open_told = if open.is_empty() {
            "a call".to_owned()
        } else {
            open.join(" and ")
        };
        // The end of the story is drawn on the thread whose call never returned.
        let stopped = self
            .log()
            .calls
            .iter()
            .find(|call| call.returned.is_none())
            .map_or_else(|| self.main.to_owned(), |call| call.actor.clone());
        if text.contains("it already holds") {
            trace
                .event(stopped, EventKind::Stall)
                .note("deadlock: it waits for a lock it holds")
                .record();
            return format!(
                "deadlock: {open_told} asked for the rules' lock while its own thread still held \
                 a guard of that same lock; a thread never gets the write lock while it holds a \
                 read guard itself (nor a lock twice), so it waits for itself forever. Nothing \
                 else will ever happen in this run ({text})"
            );
        }
        if text.contains("deadlock") {
            trace
                .event(stopped, EventKind::Stall)
                .note("deadlock")
                .record();
            return format!(
                "deadlock: every thread still running waits for another, and none can go on; \
                 the calls that never returned: {open_told} ({text})"
            );
        }
        if text.contains("max_steps") {
            trace
                .event(stopped, EventKind::Stall)
                .note("no progress")
                .record();
            return format!(
                "a schedule ran {} steps without finishing: some thread keeps trying something \
                 that can never succeed; the calls that never returned: {open_told} ({text})",
                bughunt_kit::explore::STEPS_MAX
            );
        }
        trace
            .event(stopped, EventKind::Crash)
            .note(format!("{open_told} panicked"))
            .record();
        format!("{open_told} panicked: \"{text}\". A cache call must never panic, whatever another thread does to the map meanwhile")
    }
}

/// Runs `test` under the schedules of `search`, each with a fresh book. On a failure, draws
/// the failing schedule into `trace` and returns what went wrong, in words.
fn search_schedules(
    search: Search,
    main: &'static str,
    trace: &Trace,
    test: impl Fn(&Book) + Send + Sync + 'static,
) -> Result<(), String> {
    let book = Book::new(main);
    let explored = book.clone();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        explore(search, move || {
            explored.restart();
            test(&explored);
        })
    }));
    // A replay string cannot replay a generated workload: the workload, the search and its
    // seed can, and the check repeats them on every run.
    take_replay();
    let Err(payload) = outcome else {
        return Ok(());
    };
    book.story.draw_into(trace);
    let told = book.explain(panic_text(payload.as_ref()), trace);
    Err(format!("{told} (found by {})", search.describe()))
}

/// "version 10 (loaded by c1)" or "version 15 (offered by c2)".
fn origin(log: &Log, customer: u64, version: u64) -> Option<String> {
    if let Some(load) = log
        .loads
        .iter()
        .find(|load| load.customer == customer && load.version == version)
    {
        return Some(format!(
            "version {version}, loaded by {}",
            called(&load.actor)
        ));
    }
    log.calls
        .iter()
        .find(|call| call.op == Op::Offer(customer, version))
        .map(|call| format!("version {version}, offered by {}", called(&call.actor)))
}

/// Checks what a finished schedule did against the promises, from the calls and loads alone.
fn check_history(book: &Book) {
    let log = book.log();
    let calls = log.calls.clone();
    let loads = log.loads.clone();
    // Every rule returned is one the loader produced or someone offered, for that customer.
    for call in &calls {
        let Some(route) = call.routed() else { continue };
        let customer = call.op.customer();
        let known = route.customer == customer
            && route.queue == queue_of(customer, route.version)
            && origin(&log, customer, route.version).is_some();
        if !known {
            drop(log);
            book.fail(
                Some(customer),
                format!(
                    "{} returned {route:?}, a rule for customer {customer} that the loader never \
                 produced and nobody offered",
                    call.told()
                ),
            );
        }
    }
    drop(log);
    // The loader runs once per customer, plus once per invalidate started before the load.
    for load in &loads {
        let invalidated = calls
            .iter()
            .filter(|call| call.op == Op::Invalidate(load.customer) && call.started < load.at)
            .count() as u64;
        if load.nth > invalidated + 1 {
            let before: Vec<String> = loads
                .iter()
                .filter(|other| other.customer == load.customer && other.nth < load.nth)
                .map(|other| format!("load {} by {}", other.nth, called(&other.actor)))
                .collect();
            let since = match invalidated {
                0 => "no invalidate of it had started".to_owned(),
                1 => "only 1 invalidate of it had started".to_owned(),
                n => format!("only {n} invalidates of it had started"),
            };
            let why = if invalidated == 0 {
                "threads that miss at once must share one load"
            } else {
                "a rule loaded after an invalidate must be cached, so that the next caller finds it"
            };
            book.fail(
                Some(load.customer),
                format!(
                    "the loader ran for customer {} a {} time (by {}), after {}, and {since}: the \
                 routing service may be asked once per customer, plus once per invalidate ({why})",
                    load.customer,
                    nth_word(load.nth),
                    called(&load.actor),
                    before.join(", ")
                ),
            );
        }
    }
    // A route that starts after an invalidate returned gets no rule loaded before it started.
    for call in &calls {
        let Some(route) = call.routed() else { continue };
        let customer = call.op.customer();
        let Some(load) = loads
            .iter()
            .find(|load| load.customer == customer && load.version == route.version)
        else {
            continue;
        };
        let stale_by = calls.iter().find(|invalidate| {
            invalidate.op == Op::Invalidate(customer)
                && invalidate
                    .returned
                    .is_some_and(|returned| returned < call.started)
                && load.at < invalidate.started
        });
        if let Some(invalidate) = stale_by {
            book.fail(
                Some(customer),
                format!(
                "{} started after {} had returned, and returned version {}, loaded by {} before \
                 that invalidate started: a stale rule came back after it was invalidated",
                call.told(),
                invalidate.told(),
                route.version,
                called(&load.actor)
            ),
            );
        }
    }
    // With offers and no invalidates, the newest rule wins and each offer says what it did.
    let offered_customers: Vec<u64> = {
        let mut customers: Vec<u64> = calls
            .iter()
            .filter_map(|call| matches!(call.op, Op::Offer(..)).then_some(call.op.customer()))
            .collect();
        customers.sort_unstable();
        customers.dedup();
        customers
    };
    for customer in offered_customers {
        if calls.iter().any(|call| call.op == Op::Invalidate(customer)) {
            continue;
        }
        // Versions certainly cached (or certainly there to be cached) by a point of the story.
        let there_by = |at: usize, except: usize| -> u64 {
            let loaded = loads
                .iter()
                .filter(|load| load.customer == customer && load.at < at)
                .map(|load| load.version);
            let taken = calls.iter().enumerate().filter(|(index, call)| {
                *index != except
                    && matches!(call.op, Op::Offer(c, _) if c == customer)
                    && call.outcome == Some(Outcome::Offered(true))
                    && call.returned.is_some_and(|returned| returned < at)
            });
            loaded
                .chain(taken.map(|(_, call)| match call.op {
                    Op::Offer(_, version) => version,
                    _ => 0,
                }))
                .max()
                .unwrap_or(0)
        };
        for (index, call) in calls.iter().enumerate() {
            let Op::Offer(_, version) = call.op else {
                continue;
            };
            if call.op.customer() != customer {
                continue;
            }
            match call.outcome {
                Some(Outcome::Offered(true)) => {
                    let newest = there_by(call.started, index);
                    if newest >= version {
                        book.fail(
                            Some(customer),
                            format!(
                                "{} returned true (taken), but version {newest} of customer \
                             {customer} had been cached before it started, and with no invalidate \
                             the cached version only goes up: a rule no newer than the cached \
                             one was taken",
                                call.told()
                            ),
                        );
                    }
                }
                Some(Outcome::Offered(false)) => {
                    let returned = call.returned.unwrap_or(usize::MAX);
                    let loaded = loads
                        .iter()
                        .filter(|load| load.customer == customer && load.at < returned)
                        .map(|load| load.version);
                    let others = calls.iter().enumerate().filter(|(other, offer)| {
                        *other != index
                            && matches!(offer.op, Op::Offer(c, _) if c == customer)
                            && offer.started < returned
                    });
                    let newest = loaded
                        .chain(others.map(|(_, offer)| match offer.op {
                            Op::Offer(_, version) => version,
                            _ => 0,
                        }))
                        .max()
                        .unwrap_or(0);
                    if newest < version {
                        let what = if newest == 0 {
                            "no rule at all was cached or offered".to_owned()
                        } else {
                            format!("no rule newer than version {newest} was cached or offered")
                        };
                        book.fail(
                            Some(customer),
                            format!(
                            "{} returned false (refused), but while it ran {what}: a rule newer \
                             than the cached one must be taken",
                            call.told()
                        ),
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

fn nth_word(nth: u64) -> String {
    match nth {
        2 => "second".to_owned(),
        3 => "third".to_owned(),
        n => format!("{n}th"),
    }
}

/// Customers cached by main first, and the calls of each thread, all at once.
#[derive(Clone, Debug)]
struct Workload {
    cached: Vec<u64>,
    threads: Vec<Vec<Op>>,
}

fn tell(workload: &Workload) -> String {
    let mut parts = Vec::new();
    if !workload.cached.is_empty() {
        let cached: Vec<String> = workload
            .cached
            .iter()
            .map(|c| format!("route({c})"))
            .collect();
        parts.push(format!(
            "main first calls {} (so it is cached)",
            cached.join(", ")
        ));
    }
    for (t, ops) in workload.threads.iter().enumerate() {
        let calls: Vec<String> = ops.iter().map(|op| op.told()).collect();
        parts.push(format!("c{} calls {}", t + 1, calls.join(", then ")));
    }
    format!(
        "{}, all at once; then main calls route() for each customer",
        parts.join("; ")
    )
}

/// Runs one schedule of `workload`: main caches, the threads call at once, main routes every
/// customer touched once they are done, and the history is checked.
fn run_workload(workload: &Workload, book: &Book) {
    let cache = Arc::new(RouteCache::new(book.loader()));
    for customer in &workload.cached {
        book.call(&cache, "main", Op::Route(*customer));
    }
    bughunt_kit::steps::start_here();
    let threads: Vec<_> = workload
        .threads
        .iter()
        .enumerate()
        .map(|(t, ops)| {
            let cache = cache.clone();
            let book = book.clone();
            let ops = ops.clone();
            let name = format!("c{}", t + 1);
            spawn_named(name.clone(), move || {
                for op in ops {
                    book.call(&cache, &name, op);
                }
            })
        })
        .collect();
    for (t, thread) in threads.into_iter().enumerate() {
        if let Err(payload) = thread.join() {
            let text = panic_text(payload.as_ref());
            let open = book.open_calls().join(" and ");
            book.fail(
                None,
                format!(
                    "c{} panicked in {open}: \"{text}\". A cache call must never panic",
                    t + 1
                ),
            );
        }
    }
    let mut customers: Vec<u64> = workload
        .threads
        .iter()
        .flatten()
        .map(|op| op.customer())
        .collect();
    customers.extend(&workload.cached);
    customers.sort_unstable();
    customers.dedup();
    for customer in customers {
        book.call(&cache, "main", Op::Route(customer));
    }
    check_history(book);
}

const CUSTOMERS: &[u64] = &[7, 8];
const OFFER_VERSIONS: &[u64] = &[5, 15, 25, 35];
const SEARCH: Search = Search::Exhaustive {
    schedules_max: 3_000,
};

/// Checks `workloads` under every schedule; `after` checks what a stage promises besides the
/// history's invariants, once a schedule is done.
fn check_workloads(
    ctx: &mut Ctx,
    name: &str,
    cases: u32,
    workloads: impl Strategy<Value = Workload>,
    what: &str,
    after: fn(&Workload, &Book),
) {
    prop::for_all(ctx, name, cases, workloads, tell, |workload, trace| {
        let run = workload.clone();
        search_schedules(SEARCH, "main", trace, move |book| {
            run_workload(&run, book);
            after(&run, book);
        })
    });
    ctx.replay(format!(
        "{cases} generated workloads from a fixed seed ({what}), each under {}",
        SEARCH.describe()
    ));
}

/// One caller alone: each call against a model of the promises.
fn one_caller(ctx: &mut Ctx) {
    let op = prop_oneof![
        3 => proptest::sample::select(CUSTOMERS).prop_map(Op::Route),
        2 => (proptest::sample::select(CUSTOMERS), proptest::sample::select(OFFER_VERSIONS)).prop_map(|(c, v)| Op::Offer(c, v)),
        1 => proptest::sample::select(CUSTOMERS).prop_map(Op::Invalidate),
    ];
    let histories = proptest::collection::vec(op, 1..=7);
    let search = Search::Exhaustive { schedules_max: 10 };
    prop::for_all(
        ctx,
        "one caller gets what the promises say",
        24,
        histories,
        |ops: &Vec<Op>| {
            let calls: Vec<String> = ops.iter().map(|op| op.told()).collect();
            format!("the consumer alone calls {}", calls.join(", then "))
        },
        move |ops, trace| {
            let ops = ops.clone();
            search_schedules(search, "consumer", trace, move |book| {
                name_this_thread("consumer");
                one_caller_run(&ops, book);
            })
        },
    );
    ctx.replay(format!(
        "24 generated call sequences from a fixed seed, each under {}",
        search.describe()
    ));
}

fn one_caller_run(ops: &[Op], book: &Book) {
    let cache = RouteCache::new(book.loader());
    // The model: per customer, the version cached (and whether it was offered), and the loads.
    let mut cached: std::collections::BTreeMap<u64, u64> = Default::default();
    let mut loads: std::collections::BTreeMap<u64, u64> = Default::default();
    for op in ops {
        let customer = op.customer();
        let had = cached.get(&customer).copied();
        let state = match had {
            Some(version) => format!("customer {customer}'s cached rule was version {version}"),
            None => format!("nothing was cached for customer {customer}"),
        };
        let loads_before = book.log().loads.len();
        let got = book.call(&cache, "consumer", *op);
        let loaded = book.log().loads.len() - loads_before;
        let call = format!("the consumer's {}", op.told());
        match (op, got) {
            (Op::Route(_), Outcome::Routed(route)) => {
                let want = match had {
                    Some(version) => version,
                    None => {
                        let nth = loads.entry(customer).or_default();
                        *nth += 1;
                        cached.insert(customer, 10 * *nth);
                        10 * *nth
                    }
                };
                if had.is_some() && loaded > 0 {
                    book.fail(Some(customer), format!(
                        "{call} ran the loader, but {state}: a cached rule must be returned without asking the routing service"
                    ));
                }
                if had.is_none() && loaded != 1 {
                    book.fail(Some(customer), format!(
                        "{call} ran the loader {loaded} times, and {state}: a miss loads the rule once"
                    ));
                }
                if route != offered(customer, want) {
                    book.fail(Some(customer), format!(
                        "{call} returned version {} (queue {}), and {state}: it had to return version {want}{}",
                        route.version,
                        route.queue,
                        if had.is_none() { ", the rule the loader just produced" } else { "" }
                    ));
                }
            }
            (Op::Offer(_, version), Outcome::Offered(taken)) => {
                let want = had.is_none_or(|cached| *version > cached);
                if loaded > 0 {
                    book.fail(
                        Some(customer),
                        format!("{call} ran the loader: an offer brings its own rule"),
                    );
                }
                if taken != want {
                    book.fail(Some(customer), format!(
                        "{call} returned {taken}, and {state}: a rule is taken (true) exactly when it is newer than the cached one or none is cached, so it had to return {want}"
                    ));
                }
                if want {
                    cached.insert(customer, *version);
                }
            }
            (Op::Invalidate(_), _) => {
                if loaded > 0 {
                    book.fail(
                        Some(customer),
                        format!("{call} ran the loader: invalidate only forgets"),
                    );
                }
                cached.remove(&customer);
            }
            (op, got) => book.fail(Some(customer), format!("{} gave back {got:?}", op.told())),
        }
    }
}

/// Two threads routing the same customers at once, some cached, some not.
fn one_load_per_customer(ctx: &mut Ctx) {
    let routes = proptest::collection::vec(
        proptest::sample::select(CUSTOMERS).prop_map(Op::Route),
        1..=2,
    );
    let workloads = (
        proptest::collection::vec(proptest::sample::select(CUSTOMERS), 0..=1),
        routes.clone(),
        routes,
    )
        .prop_map(|(cached, c1, c2)| Workload {
            cached,
            threads: vec![c1, c2],
        });
    check_workloads(
        ctx,
        "two callers that miss at once share one load",
        8,
        workloads,
        "customers 7 and 8, one of them cached or none, two threads calling route() once or twice each",
        |_, _| {},
    );
}

/// A thread routing customers while another invalidates them.
fn lookup_during_invalidate(ctx: &mut Ctx) {
    let routes = proptest::collection::vec(
        proptest::sample::select(CUSTOMERS).prop_map(Op::Route),
        1..=2,
    );
    let invalidator =
        (proptest::sample::select(CUSTOMERS), proptest::bool::ANY).prop_map(|(customer, again)| {
            let mut ops = vec![Op::Invalidate(customer)];
            if again {
                ops.push(Op::Route(customer));
            }
            ops
        });
    let workloads = (routes, invalidator).prop_map(|(c1, c2)| {
        // Every customer the threads touch is cached first.
        let mut cached: Vec<u64> = c1.iter().chain(&c2).map(|op| op.customer()).collect();
        cached.sort_unstable();
        cached.dedup();
        Workload {
            cached,
            threads: vec![c1, c2],
        }
    });
    check_workloads(
        ctx,
        "a lookup racing an invalidate gets a fresh rule and never panics",
        8,
        workloads,
        "every customer touched cached first, one thread calling route() once or twice for 7 or 8, the other invalidating one of them and perhaps routing it again",
        |_, _| {},
    );
}

/// Two threads offering rules for one customer at once.
fn newest_offer_wins(ctx: &mut Ctx) {
    let offers = proptest::collection::vec(
        proptest::sample::select(OFFER_VERSIONS).prop_map(|v| Op::Offer(7, v)),
        1..=2,
    );
    let workloads =
        (proptest::bool::ANY, offers.clone(), offers).prop_map(|(cached, c1, c2)| Workload {
            cached: if cached { vec![7] } else { vec![] },
            threads: vec![c1, c2],
        });
    check_workloads(
        ctx,
        "the newest rule offered is the one that stays",
        8,
        workloads,
        "customer 7 cached (version 10) or not, two threads offering one or two rules each, versions 5 to 35",
        newest_left,
    );
}

/// Once every thread is done, main's route(7) returned the newest rule loaded or offered.
fn newest_left(workload: &Workload, book: &Book) {
    let log = book.log();
    let newest_offer = workload.threads.iter().flatten().filter_map(|op| match op {
        Op::Offer(7, version) => Some(*version),
        _ => None,
    });
    let newest = log
        .loads
        .iter()
        .filter(|load| load.customer == 7)
        .map(|load| load.version)
        .chain(newest_offer)
        .max()
        .unwrap_or(0);
    let last = log
        .calls
        .iter()
        .rev()
        .find(|call| call.actor == "main" && call.op == Op::Route(7))
        .and_then(|call| call.routed().cloned());
    let origin_newest = origin(&log, 7, newest).unwrap_or_default();
    drop(log);
    if let Some(route) = last {
        if route.version != newest {
            book.fail(
                Some(7),
                format!(
                "once every thread was done, main's route(7) returned version {}, but the newest \
                 rule for customer 7 was {origin_newest}: an older rule replaced a newer one",
                route.version
            ),
            );
        }
    }
}

#[test]
fn checks() {
    run_stages(
        "memo-cache",
        &[
            Stage {
                id: "one-caller",
                title: "One caller alone: route, offer and invalidate do what they promise",
                mentor: "Even one thread alone did not get what the cache promises: the story \
                         below ends where it stopped. If it waits for itself, which guard was \
                         still alive when the same thread asked for the lock again? A guard \
                         made in a `match` scrutinee lives to the end of the whole `match`, and \
                         one made in an `if let` scrutinee lives through its `else` too (edition \
                         2021); a thread that holds a read guard never gets the write lock. If \
                         nothing hangs, compare what the call returned with what the story says \
                         was cached.",
                run: one_caller,
            },
            Stage {
                id: "one-load-per-customer",
                title: "Two callers that miss the same customer at once share one load",
                mentor: "Better! One caller is served right. But two threads asking for the same \
                         customer at once broke a promise (the story below shows the schedule): \
                         both found nothing cached, and the routing service was asked twice. \
                         Between the moment your code sees the miss and the moment it inserts, \
                         can another thread miss too? Is the miss checked again under the write \
                         lock that inserts, with the load under that same lock?",
                run: one_load_per_customer,
            },
            Stage {
                id: "lookup-during-invalidate",
                title:
                    "A lookup racing an invalidate never panics and never brings back a stale rule",
                mentor: "Close! Loads are shared. But a route() racing an invalidate() of the \
                         same customer broke a promise (the story below says which: a panic, an \
                         extra load, or a stale rule). Does your code look the customer up once \
                         and use what that one look-up found, or does it look, let the lock go, \
                         and look again, trusting that what it saw is still there?",
                run: lookup_during_invalidate,
            },
            Stage {
                id: "newest-offer-wins",
                title:
                    "Rules offered at once: the newest one stays, and each offer says what it did",
                mentor: "Lookups are safe. But two threads offering rules for one customer at \
                         once broke a promise (the story below shows it): an older rule replaced \
                         a newer one, or an offer said the wrong thing. When your offer decides \
                         \"mine is newer\", can another offer change the cached rule before yours \
                         is inserted? Are the comparison and the insert under one write guard?",
                run: newest_offer_wins,
            },
        ],
    );
}
