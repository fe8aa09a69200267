//! Checks for the server's graceful shutdown, as properties over generated histories.
//!
//! A history is a stream of requests handed to `accept` at uneven moments, with uneven work
//! times (some a few milliseconds, some around the drain deadline, some an hour), and a
//! shutdown at an uneven moment while requests are in flight. The listener goes on handing
//! requests over while shutdown runs and after it has returned, as a real listener does until
//! it is closed. Each history runs on a fresh tokio runtime with paused time, so an hour costs
//! nothing; every wait the harness makes is bounded, and a bound that runs out fails the
//! stage.
//!
//! Requests come and work ends on even milliseconds and shutdown is called on an odd one,
//! so no request ends at the very instant of the deadline: whether it could have finished in
//! time is always clear.
//!
//! What the server keeps is measured, not guessed: the test binary's allocator notes every
//! allocation `accept` makes and forgets it when it is freed, wherever that happens, so the
//! last stage sees the handlers a server holds on to after they have finished.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::history::Promises;
use bughunt_kit::paused;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::sink::{Sink, Work};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::time::{sleep_until, timeout_at, Instant};

/// The drain deadline the server promises (the same constant as the program's).
const DRAIN_DEADLINE_MS: u64 = 2_000;
/// How long past its deadline the harness waits for shutdown before calling it stuck.
const STUCK_AFTER_MS: u64 = 4_750;
const HOUR_MS: u64 = 3_600_000;
/// The first request id: ids past 100, so none is a small number by luck.
const FIRST_ID: u64 = 101;
/// Histories per property (a history costs well under a millisecond).
const CASES: u32 = 40;
/// How often monitoring reads `in_flight()`.
const SAMPLE_EVERY_MS: u64 = 250;

/// The most allocations made by `accept` that are followed until freed; any more are counted
/// as kept for good.
const FOLLOWED_MAX: usize = 1_024;

thread_local! {
    /// True while `accept` runs on this thread.
    static IN_ACCEPT: Cell<bool> = const { Cell::new(false) };
    /// Allocations `accept` made that are still live: (address, bytes); address 0 is a free slot.
    static FOLLOWED: RefCell<[(usize, usize); FOLLOWED_MAX]> = const { RefCell::new([(0, 0); FOLLOWED_MAX]) };
    /// Bytes `accept` allocated past `FOLLOWED_MAX` live allocations.
    static UNFOLLOWED: Cell<usize> = const { Cell::new(0) };
    /// Bytes `accept` allocated in all, freed or not.
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

/// std's allocator, noting what `accept` allocates (the histories run on one thread: the
/// runtime is a current-thread one). It never allocates itself.
struct Following;

#[global_allocator]
static FOLLOWING: Following = Following;

// SAFETY: every call is std's allocator's with the same arguments; the notes beside it touch
// only thread-locals that need no allocation and are never borrowed across a call.
unsafe impl GlobalAlloc for Following {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let at = unsafe { System.alloc(layout) };
        if !at.is_null() && IN_ACCEPT.try_with(Cell::get).unwrap_or(false) {
            let _ = ALLOCATED.try_with(|all| all.set(all.get() + layout.size()));
            let kept = FOLLOWED.try_with(|followed| {
                let mut followed = followed.borrow_mut();
                let slot = followed.iter_mut().find(|(address, _)| *address == 0);
                slot.map(|slot| *slot = (at as usize, layout.size())).is_some()
            });
            if kept != Ok(true) {
                let _ = UNFOLLOWED.try_with(|bytes| bytes.set(bytes.get() + layout.size()));
            }
        }
        at
    }

    unsafe fn dealloc(&self, at: *mut u8, layout: Layout) {
        let _ = FOLLOWED.try_with(|followed| {
            if let Ok(mut followed) = followed.try_borrow_mut() {
                if let Some(slot) = followed.iter_mut().find(|(address, _)| *address == at as usize) {
                    *slot = (0, 0);
                }
            }
        });
        unsafe { System.dealloc(at, layout) }
    }
}

/// Forgets what earlier histories' accepts allocated.
fn follow_afresh() {
    FOLLOWED.with(|followed| *followed.borrow_mut() = [(0, 0); FOLLOWED_MAX]);
    UNFOLLOWED.with(|bytes| bytes.set(0));
}

/// Bytes allocated by `accept` and not freed since.
fn kept_by_accept() -> usize {
    FOLLOWED.with(|followed| followed.borrow().iter().map(|(_, bytes)| bytes).sum::<usize>())
        + UNFOLLOWED.with(Cell::get)
}

/// Calls `accept`, noting what it allocates; returns its answer and the bytes it allocated.
fn accept_followed(server: &Server, request: Request) -> (Result<(), Request>, usize) {
    let before = ALLOCATED.with(Cell::get);
    IN_ACCEPT.with(|inside| inside.set(true));
    let answer = server.accept(request);
    IN_ACCEPT.with(|inside| inside.set(false));
    (answer, ALLOCATED.with(Cell::get) - before)
}

#[derive(Clone, Copy, Debug)]
struct RequestPlan {
    /// After the previous request (or the start).
    after_ms: u64,
    work_ms: u64,
}

#[derive(Clone, Debug)]
struct History {
    requests: Vec<RequestPlan>,
    shutdown_at_ms: u64,
}

impl History {
    /// (id, arrives at, work) of every request.
    fn requests(&self) -> Vec<(u64, u64, u64)> {
        let mut at_ms = 0;
        self.requests
            .iter()
            .enumerate()
            .map(|(index, plan)| {
                at_ms += plan.after_ms;
                (FIRST_ID + index as u64, at_ms, plan.work_ms)
            })
            .collect()
    }

    fn deadline_ms(&self) -> u64 {
        self.shutdown_at_ms + DRAIN_DEADLINE_MS
    }
}

fn duration(ms: u64) -> String {
    if ms == HOUR_MS {
        "an hour".to_owned()
    } else {
        format!("{ms} ms")
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps: Vec<(u64, String)> = self
            .requests()
            .into_iter()
            .map(|(id, at_ms, work_ms)| {
                (
                    at_ms,
                    format!(
                        "at {at_ms} ms the listener hands over m{id} (needs {})",
                        duration(work_ms)
                    ),
                )
            })
            .collect();
        steps.push((
            self.shutdown_at_ms,
            format!(
                "at {} ms the signal handler calls shutdown() (deadline {} ms)",
                self.shutdown_at_ms,
                self.deadline_ms()
            ),
        ));
        steps.sort_by_key(|(at_ms, _)| *at_ms);
        let steps: Vec<String> = steps.into_iter().map(|(_, step)| step).collect();
        write!(f, "{}", prop::numbered(&steps))
    }
}

fn request_plan() -> impl Strategy<Value = RequestPlan> {
    let work_ms = prop_oneof![
        3 => (1u64..1_500).prop_map(|half| half * 2),
        1 => Just(HOUR_MS),
    ];
    let after = prop_oneof![2 => 0u64..10, 1 => 0u64..800];
    (after, work_ms).prop_map(|(after, work_ms)| RequestPlan {
        after_ms: after * 2,
        work_ms,
    })
}

fn histories() -> impl Strategy<Value = History> {
    (
        prop::proptest::collection::vec(request_plan(), 1..9),
        0u64..1_500,
    )
        .prop_map(|(requests, shutdown)| History {
            requests,
            shutdown_at_ms: shutdown * 2 + 1,
        })
}

#[derive(Clone, Copy, Debug)]
enum Accepted {
    Yes { at_ms: u64 },
    Refused { at_ms: u64 },
}

struct Outcome {
    accepts: BTreeMap<u64, Accepted>,
    /// None: shutdown had not returned `STUCK_AFTER_MS` past its deadline.
    returned_at_ms: Option<u64>,
    report: Vec<u64>,
    /// At the moment shutdown returned.
    alive_at_return: u64,
    /// Once the runtime had run every ready task after that.
    tasks_alive: u64,
    /// Requests still being handled right after shutdown returned.
    in_sink_then: Vec<u64>,
    /// Every request's work, looked at once every request could have finished.
    works: Vec<Work>,
    /// What `in_flight()` said, read by monitoring now and then: (when, what).
    samples: Vec<(u64, Vec<u64>)>,
    /// Right after each request accepted before shutdown: (when, which, bytes allocated by
    /// every accept so far and still kept).
    kept: Vec<(u64, u64, usize)>,
    /// The most bytes one accept allocated: what a request costs the server while it runs.
    request_bytes: usize,
}

/// `watch`: monitoring reads `in_flight()` now and then (only the stage on what it lists
/// looks; the last stage is a server nobody monitors).
fn play(history: &History, trace: &Trace, watch: bool) -> Outcome {
    let requests = history.requests();
    paused::block_on(async {
        let start = Instant::now();
        let now_ms = || start.elapsed().as_millis() as u64;
        let sink = Sink::with_work_times(
            trace.clone(),
            1,
            requests.iter().map(|(id, _, work_ms)| (*id, *work_ms)),
        )
        .with_actor("handlers");
        let server = Server::new(sink.clone());
        let accepts = RefCell::new(BTreeMap::new());
        let kept = RefCell::new(Vec::new());
        let request_bytes = Cell::new(0);
        follow_afresh();
        let listener = async {
            for (id, at_ms, _) in &requests {
                sleep_until(start + Duration::from_millis(*at_ms)).await;
                trace.set_time_ms(*at_ms);
                let (answer, bytes) = accept_followed(&server, Request { id: *id });
                let accepted = answer.is_ok();
                if accepted && *at_ms < history.shutdown_at_ms {
                    request_bytes.set(request_bytes.get().max(bytes));
                    kept.borrow_mut().push((*at_ms, *id, kept_by_accept()));
                }
                let event = trace
                    .event("listener", EventKind::Send)
                    .to("server")
                    .msg(*id);
                if accepted {
                    event.note("accept(): taken").record();
                    accepts
                        .borrow_mut()
                        .insert(*id, Accepted::Yes { at_ms: *at_ms });
                } else {
                    event
                        .note("accept(): refused, the listener keeps it")
                        .record();
                    accepts
                        .borrow_mut()
                        .insert(*id, Accepted::Refused { at_ms: *at_ms });
                }
            }
        };
        let signal = async {
            sleep_until(start + Duration::from_millis(history.shutdown_at_ms)).await;
            trace.set_time_ms(history.shutdown_at_ms);
            trace
                .event("signal", EventKind::Shutdown)
                .to("server")
                .note(format!(
                    "shutdown(); deadline at {} ms; in flight: {:?}",
                    history.deadline_ms(),
                    server.in_flight()
                ))
                .record();
            let bound = start + Duration::from_millis(history.deadline_ms() + STUCK_AFTER_MS);
            let returned = timeout_at(bound, server.shutdown()).await;
            let at_ms = now_ms();
            trace.set_time_ms(at_ms);
            match returned {
                Ok(report) => {
                    trace
                        .event("server", EventKind::Exit)
                        .to("signal")
                        .note(format!(
                            "shutdown() returned; unfinished: {:?}",
                            report.unfinished
                        ))
                        .record();
                    (Some(at_ms), report.unfinished)
                }
                Err(_) => {
                    trace
                        .event("server", EventKind::Leak)
                        .note("shutdown() had not returned")
                        .record();
                    (None, Vec::new())
                }
            }
        };
        let signal_then_count = async {
            let (returned_at_ms, report) = signal.await;
            // At the very moment shutdown returned, before anything else runs.
            let alive_at_return = paused::tasks_alive();
            // Right after shutdown returned: let what is ready run, then count.
            let tasks_alive = paused::tasks_alive_after_settling().await;
            if tasks_alive > 0 {
                trace
                    .event("runtime", EventKind::Leak)
                    .note(format!(
                        "{tasks_alive} task(s) still alive right after shutdown() returned"
                    ))
                    .record();
            }
            (returned_at_ms, report, alive_at_return, tasks_alive)
        };
        let all_done = Cell::new(false);
        let samples = RefCell::new(Vec::new());
        let monitor = async {
            let mut at_ms = 0;
            while watch {
                at_ms += SAMPLE_EVERY_MS;
                sleep_until(start + Duration::from_millis(at_ms)).await;
                if all_done.get() {
                    break;
                }
                samples.borrow_mut().push((at_ms, server.in_flight()));
            }
        };
        let run = async {
            let both = tokio::join!(listener, signal_then_count);
            all_done.set(true);
            both
        };
        let (((), (returned_at_ms, report, alive_at_return, tasks_alive)), ()) =
            tokio::join!(run, monitor);
        // Let whatever still runs run on, so that work left in the sink shows whether it was
        // still going (it finishes) or was stopped (it never does).
        let last_ms = requests
            .iter()
            .map(|(_, at_ms, work_ms)| at_ms + work_ms)
            .max();
        let until_ms = last_ms.unwrap_or(0).max(history.deadline_ms()) + STUCK_AFTER_MS;
        sleep_until(start + Duration::from_millis(until_ms)).await;
        let works = sink.works();
        // Handlers still at work when shutdown returned: their work finished later. Work that
        // was stopped never finishes, so it is not among them.
        let in_sink_then = match returned_at_ms {
            Some(at_ms) => works
                .iter()
                .filter(|work| {
                    work.started_ms <= at_ms && work.finished_ms.is_some_and(|end| end > at_ms)
                })
                .map(|work| work.job)
                .collect(),
            None => Vec::new(),
        };
        Outcome {
            accepts: accepts.into_inner(),
            returned_at_ms,
            report,
            alive_at_return,
            tasks_alive,
            in_sink_then,
            samples: samples.into_inner(),
            works,
            kept: kept.into_inner(),
            request_bytes: request_bytes.get(),
        }
    })
}

fn names(ids: &[u64]) -> String {
    let named: Vec<String> = ids.iter().map(|id| format!("m{id}")).collect();
    named.join(", ")
}

/// Promise 1: shutdown returns by its deadline.
fn by_the_deadline(history: &History, outcome: &Outcome) -> Result<(), String> {
    let deadline_ms = history.deadline_ms();
    let late = match outcome.returned_at_ms {
        Some(at_ms) if at_ms <= deadline_ms => return Ok(()),
        Some(at_ms) => format!("returned only at {at_ms} ms"),
        None => format!("had still not returned {STUCK_AFTER_MS} ms after it"),
    };
    let running: Vec<String> = outcome
        .works
        .iter()
        .filter(|work| {
            work.started_ms <= deadline_ms && work.finished_ms.is_none_or(|end| end > deadline_ms)
        })
        .map(|work| {
            format!(
                "m{} (started at {} ms, needs {})",
                work.job,
                work.started_ms,
                duration(work.work_ms)
            )
        })
        .collect();
    let running = if running.is_empty() {
        "no request was still being handled then".to_owned()
    } else {
        format!("still being handled then: {}", running.join(", "))
    };
    Err(format!(
        "shutdown() was called at {} ms with a deadline at {deadline_ms} ms, and {late}; \
         {running}",
        history.shutdown_at_ms
    ))
}

/// Promise 2: when shutdown returns, no handler is alive.
fn nothing_left_running(history: &History, outcome: &Outcome) -> Result<(), String> {
    let Some(returned_ms) = outcome.returned_at_ms else {
        return Ok(());
    };
    if outcome.tasks_alive == 0 && outcome.alive_at_return == 0 {
        return Ok(());
    }
    if outcome.tasks_alive == 0 {
        return Err(format!(
            "shutdown() was called at {} ms and returned at {returned_ms} ms; at that moment \
             {} handler task(s) had not ended yet, and they ended only once the runtime ran \
             them again: shutdown told them to stop but did not wait until they had",
            history.shutdown_at_ms, outcome.alive_at_return
        ));
    }
    let how: Vec<String> = outcome
        .in_sink_then
        .iter()
        .map(|id| {
            let accepted = match outcome.accepts.get(id) {
                Some(Accepted::Yes { at_ms }) if *at_ms > history.shutdown_at_ms => {
                    format!("accepted at {at_ms} ms, after shutdown() was called")
                }
                Some(Accepted::Yes { at_ms }) => format!("accepted at {at_ms} ms"),
                _ => "accepted".to_owned(),
            };
            let work = outcome.works.iter().find(|work| work.job == *id);
            match work {
                Some(work) => format!("m{id} ({accepted}, needs {})", duration(work.work_ms)),
                None => format!("m{id} ({accepted})"),
            }
        })
        .collect();
    let doing = if how.is_empty() {
        "no request was being handled then".to_owned()
    } else {
        format!("still being handled: {}", how.join(", "))
    };
    Err(format!(
        "shutdown() was called at {} ms and returned at {returned_ms} ms, and once the runtime \
         had run every ready task, {} task(s) were still alive; {doing}",
        history.shutdown_at_ms, outcome.tasks_alive
    ))
}

/// Promise 3: accepted exactly until shutdown; every accepted request finished or reported,
/// never both; none stopped that could have finished by the deadline.
fn every_request_accounted(history: &History, outcome: &Outcome) -> Result<(), String> {
    listed_while_handled(outcome)?;
    let shutdown_ms = history.shutdown_at_ms;
    let deadline_ms = history.deadline_ms();
    for (id, accepted) in &outcome.accepts {
        match *accepted {
            Accepted::Yes { at_ms } if at_ms > shutdown_ms => {
                return Err(format!(
                    "accept() took m{id} at {at_ms} ms, after shutdown() had been called at \
                     {shutdown_ms} ms: from that moment every request must be refused"
                ))
            }
            Accepted::Refused { at_ms } if at_ms < shutdown_ms => {
                return Err(format!(
                    "accept() refused m{id} at {at_ms} ms, before shutdown() was called at \
                     {shutdown_ms} ms"
                ))
            }
            _ => {}
        }
    }
    for id in &outcome.report {
        if !matches!(outcome.accepts.get(id), Some(Accepted::Yes { .. })) {
            return Err(format!(
                "the report names m{id} as unfinished, but m{id} was never accepted"
            ));
        }
    }
    for (id, accepted) in &outcome.accepts {
        let Accepted::Yes { at_ms } = *accepted else {
            continue;
        };
        let works: Vec<&Work> = outcome
            .works
            .iter()
            .filter(|work| work.job == *id)
            .collect();
        let finished: Vec<u64> = works.iter().filter_map(|work| work.finished_ms).collect();
        let reported = outcome.report.iter().filter(|other| *other == id).count();
        let returned_ms = outcome.returned_at_ms.unwrap_or(u64::MAX);
        if works.len() > 1 {
            return Err(format!("m{id} was handled {} times", works.len()));
        }
        match (finished.first(), reported) {
            (Some(end), 0) if *end <= returned_ms => {}
            (Some(end), 0) => {
                return Err(format!(
                    "m{id} was finished at {end} ms, after shutdown() had returned at \
                     {returned_ms} ms without naming it"
                ))
            }
            (Some(end), _) => {
                return Err(format!(
                    "the report names m{id} as unfinished, but m{id} was finished at {end} ms"
                ))
            }
            (None, 1) => {}
            (None, 0) => {
                let what = match works.first() {
                    Some(work) => format!(
                        "its handler started at {} ms and never finished (it needed {})",
                        work.started_ms,
                        duration(work.work_ms)
                    ),
                    None => "its handler never even started".to_owned(),
                };
                return Err(format!(
                    "m{id} was accepted at {at_ms} ms; {what}; shutdown() (called at \
                     {shutdown_ms} ms) returned a report that does not name it: m{id} was \
                     dropped without a word"
                ));
            }
            (None, times) => {
                return Err(format!("the report names m{id} {times} times"));
            }
        }
        if let Some(work) = works.first() {
            let would_end_ms = work.started_ms + work.work_ms;
            if work.finished_ms.is_none() && would_end_ms < deadline_ms {
                return Err(format!(
                    "m{id}'s handler started at {} ms and needed {}, so it would have finished \
                     at {would_end_ms} ms, before the deadline at {deadline_ms} ms; but it was \
                     stopped unfinished (shutdown() was called at {shutdown_ms} ms)",
                    work.started_ms,
                    duration(work.work_ms)
                ));
            }
        }
    }
    Ok(())
}

/// Monitoring's readings: `in_flight()` lists each request accepted and not finished (nor
/// stopped by a shutdown that has returned), and only those. A request that starts or ends
/// at the very millisecond of a reading may be listed or not.
fn listed_while_handled(outcome: &Outcome) -> Result<(), String> {
    let returned_ms = outcome.returned_at_ms.unwrap_or(u64::MAX);
    for (at_ms, listed) in &outcome.samples {
        let at_ms = *at_ms;
        for id in listed {
            if !matches!(outcome.accepts.get(id), Some(Accepted::Yes { .. })) {
                return Err(format!(
                    "at {at_ms} ms, in_flight() listed m{id}, which was never accepted"
                ));
            }
        }
        for (id, accepted) in &outcome.accepts {
            let Accepted::Yes { at_ms: accepted_ms } = *accepted else {
                continue;
            };
            let finished_ms = outcome
                .works
                .iter()
                .find(|work| work.job == *id)
                .and_then(|work| work.finished_ms);
            let over_ms = finished_ms.unwrap_or(returned_ms);
            let is_listed = listed.contains(id);
            if accepted_ms < at_ms && at_ms < over_ms && !is_listed {
                return Err(format!(
                    "at {at_ms} ms, m{id} was being handled (accepted at {accepted_ms} ms, {}), \
                     but in_flight() listed {}",
                    match finished_ms {
                        Some(end) => format!("finished at {end} ms"),
                        None => "never finished".to_owned(),
                    },
                    if listed.is_empty() {
                        "nothing".to_owned()
                    } else {
                        names(listed)
                    }
                ));
            }
            if is_listed && over_ms < at_ms {
                return Err(format!(
                    "at {at_ms} ms, in_flight() still listed m{id}, {}",
                    match finished_ms {
                        Some(end) => format!("whose handler had finished at {end} ms"),
                        None =>
                            format!("which shutdown had stopped (it returned at {returned_ms} ms)"),
                    }
                ));
            }
        }
    }
    Ok(())
}

/// Promise 4: a handler that has finished is let go as requests come, not only when someone
/// reads `in_flight()`: before shutdown, what the server keeps from its accepts is at most
/// one request's worth for each request still being handled, and one more.
fn finished_let_go(outcome: &Outcome) -> Result<(), String> {
    for &(at_ms, id, kept) in &outcome.kept {
        let accepted: Vec<u64> = outcome
            .accepts
            .iter()
            .filter(|(_, accepted)| matches!(accepted, Accepted::Yes { at_ms: then } if *then <= at_ms))
            .map(|(id, _)| *id)
            .collect();
        // Work that ends at this very instant may not have ended yet when accept runs.
        let finished: Vec<u64> = accepted
            .iter()
            .copied()
            .filter(|id| outcome.works.iter().any(|work| work.job == *id && work.finished_ms.is_some_and(|end| end < at_ms)))
            .collect();
        let running = accepted.len() - finished.len();
        let bound = (running + 1) * outcome.request_bytes;
        if kept > bound {
            return Err(format!(
                "when m{id} was accepted at {at_ms} ms, {} request(s) had finished ({}) and {running} \
                 were being handled, and the server still kept {kept} bytes of what accept() had \
                 allocated: more than {} requests' worth ({} bytes each, the most one accept \
                 took). Nobody read in_flight() in this history, and nothing let the finished \
                 handlers go: a server nobody monitors would keep every handler it ever ran",
                finished.len(),
                names(&finished),
                running + 1,
                outcome.request_bytes
            ));
        }
    }
    Ok(())
}

/// Every stage draws the same histories and speaks for its own promise only: see
/// [`bughunt_kit::history`].
const PROMISES: Promises<History, Outcome> = Promises {
    name: "a server's shutdown keeps its promises",
    cases: CASES,
    each: &[by_the_deadline, nothing_left_running, every_request_accounted, |_, outcome| finished_let_go(outcome)],
};

fn property(ctx: &mut Ctx, stage: usize) {
    PROMISES.check(ctx, stage, histories(), |history, trace| play(history, trace, stage == 3));
}

#[test]
fn checks() {
    run_stages(
        "graceful-shutdown",
        &[
            Stage {
                id: "shutdown-meets-its-deadline",
                title: "Shutdown returns by its deadline",
                mentor: "Shutdown came back after its deadline, or not at all. What was it \
                         waiting for when the deadline passed? A deadline bounds a wait only if \
                         it is one instant for the whole drain, and something stops what is \
                         still running when it comes.",
                run: |ctx| property(ctx, 1),
            },
            Stage {
                id: "no-task-left",
                title: "When shutdown returns, no handler is alive",
                mentor: "Close! Shutdown returns in time, but request handlers were still \
                         alive after it did. Which handlers does your shutdown know about, and \
                         how? Could a handler start without being in that set, or after you \
                         took it? A task you spawned and dropped the handle of is not stopped, \
                         only forgotten.",
                run: |ctx| property(ctx, 2),
            },
            Stage {
                id: "every-request-accounted",
                title:
                    "Every request accepted is finished or reported; none accepted after shutdown",
                mentor: "Nearly there! Nothing is left running, but the requests don't add up. \
                         Once `accept` has taken a request, the caller counts on it being \
                         finished or named in the report, never both, never neither. Which \
                         requests did your shutdown stop, and does the report say so? Did any \
                         stop although it would have finished by the deadline, and did `accept` \
                         take anything after shutdown was called? (Monitoring reads \
                         `in_flight` meanwhile: it must list the requests being handled, and \
                         only those.)",
                run: |ctx| property(ctx, 3),
            },
            Stage {
                id: "finished-handlers-let-go",
                title: "A finished handler is let go as requests come, with nobody monitoring",
                mentor: "Nearly there! Everything adds up, but the server keeps what its \
                         finished handlers left behind. A `JoinSet` keeps every task that has \
                         ended, with its output, until something joins it, and a kept \
                         `JoinHandle` keeps its task until it is dropped. Which code of yours \
                         lets the finished ones go while the server runs, and does it run when \
                         nobody reads `in_flight()`? A server that only tidies up when it is \
                         watched grows with every request it serves.",
                run: |ctx| property(ctx, 4),
            },
        ],
    );
}
