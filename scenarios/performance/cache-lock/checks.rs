//! Checks for the price cache, as properties over generated histories.
//!
//! A history is a few callers (request tasks and a price feed, up to four at once), each
//! making calls one after another at uneven moments: a request for an item's price, or an
//! update with a batch of new prices. Each history runs on a fresh tokio runtime with paused
//! time, so a fetch of `FETCH_MS` takes exactly that long and the time each call takes is a
//! number the checks can bound exactly; every call is bounded, and a bound that runs out
//! fails a stage.
//!
//! The checks see the cache only from outside: when each call was made and returned, what it
//! answered, and how many times the cache's lock had been taken around each update. So any
//! correct cache passes: one mutex, a read-write lock, a blocking mutex never held across an
//! `.await`, one fetch per item in flight.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::history::Promises;
use bughunt_kit::paused;
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;
use tokio::time::{sleep, timeout, Instant};

/// How long one fetch takes (the same constant as the program's).
const FETCH_MS: u64 = 50;
/// How long the harness waits for one call before calling it stuck.
const STUCK_AFTER_MS: u64 = 60_000;
/// The items: ids past 100, so none is a small number by luck.
const FIRST_ITEM: u64 = 101;
const ITEMS: u64 = 3;
/// The first call's id, as the trace names calls.
const FIRST_CALL: u64 = 1;
/// Histories per property (a history costs well under a millisecond).
const CASES: u32 = 384;
/// At most this many callers (the harness joins a fixed number of lanes).
const MAX_CALLERS: usize = 4;

/// The upstream's list price of an item.
fn list_price(item: u64) -> u64 {
    item * 10 + 7
}

#[derive(Clone, Debug)]
enum Op {
    Price(u64),
    Update(Vec<(u64, u64)>),
}

#[derive(Clone, Debug)]
struct CallPlan {
    /// After the caller's previous call returned (or the start).
    after_ms: u64,
    op: Op,
}

#[derive(Clone, Debug)]
struct History {
    callers: Vec<Vec<CallPlan>>,
}

fn caller_name(caller: usize) -> String {
    format!("c{}", caller + 1)
}

fn batch_text(batch: &[(u64, u64)]) -> String {
    let prices: Vec<String> = batch
        .iter()
        .map(|(item, price)| format!("item {item} = {price}"))
        .collect();
    format!("[{}]", prices.join(", "))
}

impl History {
    /// (id, caller, plan) of every call, ids in caller order.
    fn calls(&self) -> Vec<(u64, usize, CallPlan)> {
        bughunt_kit::history::numbered_calls(&self.callers, FIRST_CALL)
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps = Vec::new();
        for (id, caller, plan) in self.calls() {
            let what = match &plan.op {
                Op::Price(item) => format!("asks for the price of item {item} (call {id})"),
                Op::Update(batch) => format!("updates {} (call {id})", batch_text(batch)),
            };
            steps.push(format!(
                "{} waits {} ms, then {what}",
                caller_name(caller),
                plan.after_ms
            ));
        }
        write!(
            f,
            "{} caller(s), each call after the caller's previous one returned, a fetch of \
             {FETCH_MS} ms, list prices item × 10 + 7: {}",
            self.callers.len(),
            prop::numbered(&steps)
        )
    }
}

fn item() -> impl Strategy<Value = u64> {
    (0..ITEMS).prop_map(|index| FIRST_ITEM + index)
}

fn call_plan() -> impl Strategy<Value = CallPlan> {
    let after_ms = prop_oneof![
        1 => Just(0u64),
        2 => (1u64..FETCH_MS * 2).prop_map(|half| half * 2),
    ];
    let batch = prop::proptest::collection::btree_map(item(), 2_000u64..3_000, 2..=ITEMS as usize)
        .prop_map(|prices| prices.into_iter().collect::<Vec<_>>());
    let op = prop_oneof![
        3 => item().prop_map(Op::Price),
        1 => batch.prop_map(Op::Update),
    ];
    (after_ms, op).prop_map(|(after_ms, op)| CallPlan { after_ms, op })
}

fn histories() -> impl Strategy<Value = History> {
    prop::proptest::collection::vec(
        prop::proptest::collection::vec(call_plan(), 1..=5),
        1..=MAX_CALLERS,
    )
    .prop_map(|callers| History { callers })
}

#[derive(Clone, Debug)]
struct Call {
    id: u64,
    caller: usize,
    op: Op,
    started_ms: u64,
    /// `None`: it had not returned `STUCK_AFTER_MS` after it was made.
    ended_ms: Option<u64>,
    /// What a price request answered.
    answer: Option<u64>,
    /// How many times the lock was taken while an update ran.
    taken: u64,
}

impl Call {
    fn made(&self) -> String {
        let what = match &self.op {
            Op::Price(item) => format!("asked for the price of item {item}"),
            Op::Update(batch) => format!("updated {}", batch_text(batch)),
        };
        format!(
            "{} {what} at {} ms (call {})",
            caller_name(self.caller),
            self.started_ms,
            self.id
        )
    }
}

struct Outcome {
    calls: Vec<Call>,
}

fn play(history: &History, trace: &Trace) -> Outcome {
    let calls = history.calls();
    paused::block_on(async {
        let start = Instant::now();
        let now_ms = || start.elapsed().as_millis() as u64;
        let list = (FIRST_ITEM..FIRST_ITEM + ITEMS)
            .map(|item| (item, list_price(item)))
            .collect::<BTreeMap<_, _>>();
        let cache = PriceCache::new(Upstream::new(list));
        let record = RefCell::new(Vec::new());
        let lane = |caller: usize| {
            let mine: Vec<(u64, CallPlan)> = calls
                .iter()
                .filter(|(_, of, _)| *of == caller)
                .map(|(id, _, plan)| (*id, plan.clone()))
                .collect();
            let (cache, record) = (&cache, &record);
            async move {
                let me = caller_name(caller);
                for (id, plan) in mine {
                    sleep(Duration::from_millis(plan.after_ms)).await;
                    let started_ms = now_ms();
                    trace.set_time_ms(started_ms);
                    let asked = match &plan.op {
                        Op::Price(item) => format!("price(item {item})"),
                        Op::Update(batch) => format!("update({})", batch_text(batch)),
                    };
                    trace
                        .event(me.clone(), EventKind::Send)
                        .to("cache")
                        .msg(id)
                        .note(asked)
                        .record();
                    let before = cache.lock_taken();
                    let bound = Duration::from_millis(STUCK_AFTER_MS);
                    let (returned, answer) = match &plan.op {
                        Op::Price(item) => match timeout(bound, cache.price(*item)).await {
                            Ok(price) => (true, Some(price)),
                            Err(_) => (false, None),
                        },
                        Op::Update(batch) => {
                            (timeout(bound, cache.update(batch)).await.is_ok(), None)
                        }
                    };
                    let taken = cache.lock_taken() - before;
                    let ended_ms = now_ms();
                    trace.set_time_ms(ended_ms);
                    let waited = ended_ms - started_ms;
                    if returned {
                        let note = match answer {
                            Some(price) => format!("{price}, after {waited} ms"),
                            None => format!("done after {waited} ms, the lock taken {taken}×"),
                        };
                        trace
                            .event("cache", EventKind::Ack)
                            .to(me.clone())
                            .msg(id)
                            .note(note)
                            .record();
                    } else {
                        trace
                            .event(me.clone(), EventKind::Leak)
                            .msg(id)
                            .note(format!("had not returned after {waited} ms"))
                            .record();
                    }
                    record.borrow_mut().push(Call {
                        id,
                        caller,
                        op: plan.op.clone(),
                        started_ms,
                        ended_ms: returned.then_some(ended_ms),
                        answer,
                        taken,
                    });
                }
            }
        };
        let callers = history.callers.len();
        let lane = &lane;
        let maybe = |caller: usize| async move {
            if caller < callers {
                lane(caller).await;
            }
        };
        tokio::join!(maybe(0), maybe(1), maybe(2), maybe(3));
        let mut calls = record.into_inner();
        calls.sort_by_key(|call| call.id);
        Outcome { calls }
    })
}

/// The updates of `item`: (started, ended, price).
fn updates_of(outcome: &Outcome, item: u64) -> Vec<(u64, u64, u64)> {
    outcome
        .calls
        .iter()
        .filter_map(|call| match (&call.op, call.ended_ms) {
            (Op::Update(batch), Some(ended)) => batch
                .iter()
                .find(|(of, _)| *of == item)
                .map(|(_, price)| (call.started_ms, ended, *price)),
            _ => None,
        })
        .collect()
}

/// Promise 1: every call returns, and every answer is a price the item had while the request
/// was in progress: the price in force when it was made (the last update that had returned,
/// or the list price), or one an update made before it returned set.
fn right_prices(_: &History, outcome: &Outcome) -> Result<(), String> {
    for call in &outcome.calls {
        let Some(ended) = call.ended_ms else {
            return Err(format!(
                "{}, and the call had not returned {STUCK_AFTER_MS} ms later",
                call.made()
            ));
        };
        let (Op::Price(item), Some(answer)) = (&call.op, call.answer) else {
            continue;
        };
        let updates = updates_of(outcome, *item);
        let floor = updates
            .iter()
            .filter(|(_, done, _)| *done < call.started_ms)
            .map(|(_, done, _)| *done)
            .max();
        let mut valid: Vec<u64> = updates
            .iter()
            .filter(|(began, done, _)| *began <= ended && floor.is_none_or(|floor| *done >= floor))
            .map(|(_, _, price)| *price)
            .collect();
        if floor.is_none() {
            valid.push(list_price(*item));
        }
        if !valid.contains(&answer) {
            let in_force = match floor {
                Some(floor) => {
                    let newest: Vec<String> = updates
                        .iter()
                        .filter(|(_, done, _)| *done == floor)
                        .map(|(_, _, price)| price.to_string())
                        .collect();
                    format!(
                        "an update that had returned at {floor} ms had set it to {}",
                        newest.join(" or ")
                    )
                }
                None => format!("its list price is {}", list_price(*item)),
            };
            return Err(format!(
                "{}, and the cache answered {answer} at {ended} ms; but {in_force}, and no \
                 update in progress during the request set {answer}: an older price came back \
                 after a newer one had been stored",
                call.made()
            ));
        }
    }
    Ok(())
}

/// Promise 2: a request waits for at most one fetch, and an update for none.
fn no_waiting_on_others(_: &History, outcome: &Outcome) -> Result<(), String> {
    for call in &outcome.calls {
        let ended = call.ended_ms.unwrap_or(u64::MAX);
        let waited = ended - call.started_ms;
        let (bound, what) = match call.op {
            Op::Price(_) => (FETCH_MS, format!("one fetch ({FETCH_MS} ms)")),
            Op::Update(_) => (0, "no fetch at all (0 ms)".to_owned()),
        };
        if waited > bound {
            let others: Vec<String> = outcome
                .calls
                .iter()
                .filter(|other| {
                    other.id != call.id
                        && matches!(other.op, Op::Price(_))
                        && other.started_ms < ended
                        && other.ended_ms.unwrap_or(u64::MAX) > call.started_ms
                })
                .map(|other| format!("call {}", other.id))
                .collect();
            let during = if others.is_empty() {
                String::new()
            } else {
                let verb = if others.len() == 1 { "was" } else { "were" };
                format!(", while {} {verb} in progress", others.join(", "))
            };
            return Err(format!(
                "{}, and it returned only at {ended} ms, {waited} ms later{during}; it should \
                 wait for {what}: it waited for fetches that were not its own",
                call.made()
            ));
        }
    }
    Ok(())
}

/// Promise 3: a request for an item already in the cache (an earlier request for it, or an
/// update of it, had returned) answers at once.
fn hits_at_once(_: &History, outcome: &Outcome) -> Result<(), String> {
    for call in &outcome.calls {
        let (Op::Price(item), Some(ended)) = (&call.op, call.ended_ms) else {
            continue;
        };
        if ended == call.started_ms {
            continue;
        }
        let known = outcome.calls.iter().find(|earlier| {
            earlier.ended_ms.is_some_and(|done| done < call.started_ms)
                && match &earlier.op {
                    Op::Price(of) => of == item,
                    Op::Update(batch) => batch.iter().any(|(of, _)| of == item),
                }
        });
        if let Some(earlier) = known {
            return Err(format!(
                "{}, and it answered only at {ended} ms; but call {} had already returned at \
                 {} ms, having brought or stored item {item}'s price, so the cache had it: a hit must answer at once, \
                 not fetch again",
                call.made(),
                earlier.id,
                earlier.ended_ms.unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// Promise 4: an update takes the cache's lock once, however many prices its batch holds.
fn one_lock_per_batch(_: &History, outcome: &Outcome) -> Result<(), String> {
    for call in &outcome.calls {
        let Op::Update(batch) = &call.op else {
            continue;
        };
        if call.taken > 1 {
            return Err(format!(
                "{}, a batch of {} prices, and the cache's lock was taken {} times while it \
                 ran: once per batch is the promise, so a feed of a thousand prices a second \
                 takes the lock a thousand times, each one a chance for every request to queue \
                 behind it, and a reader can see half a batch applied",
                call.made(),
                batch.len(),
                call.taken
            ));
        }
    }
    Ok(())
}

/// Every stage draws the same histories and speaks for its own promise only: see
/// [`bughunt_kit::history`].
const PROMISES: Promises<History, Outcome> = Promises {
    name: "the price cache keeps its promises",
    cases: CASES,
    each: &[
        right_prices,
        no_waiting_on_others,
        hits_at_once,
        one_lock_per_batch,
    ],
};

fn property(ctx: &mut Ctx, stage: usize) {
    PROMISES.check(ctx, stage, histories(), play);
}

#[test]
fn checks() {
    run_stages(
        "cache-lock",
        &[
            Stage {
                id: "right-prices",
                title: "Every request answers a price the item had while it was asked",
                mentor: "A request answered a price that was already out of date. Follow the \
                         item through the history: a request missed and went to the upstream, \
                         and while its fetch was on the way, an update stored a newer price. \
                         When the fetch came back, what did your code do with the list price it \
                         brought, and what did the next request for that item see? An update \
                         is newer than any fetch that started before it, and the upstream knows only the list price: an \
                         update that merely drops the item from the cache is lost at the next \
                         fetch.",
                run: |ctx| property(ctx, 1),
            },
            Stage {
                id: "no-wait-for-another-fetch",
                title: "A request waits for one fetch at most, an update for none",
                mentor: "The answers are right, but a call waited for fetches that were not its \
                         own. With the lock held across the upstream's `.await`, every other \
                         request (even one for a price already cached) and every update queue \
                         behind that fetch: N requests that miss at once take N × FETCH_MS \
                         instead of FETCH_MS. Where is the lock between the look-up and the \
                         insert? Spawning the fetch, polling with `try_lock`, or taking the lock \
                         twice with the fetch inside the second still hold it across the wait. \
                         The bound: a request returns within FETCH_MS, an update at once.",
                run: |ctx| property(ctx, 2),
            },
            Stage {
                id: "hits-answer-at-once",
                title: "A price already in the cache comes back at once",
                mentor: "Better! Nobody waits for another's fetch now, but a request for an item \
                         the cache already had went to the upstream anyway, and took a whole \
                         FETCH_MS. A cache that fetches on every request is no cache: look in \
                         the map first, and fetch only on a miss. The bound: 0 ms for an item \
                         whose price a returned call had already brought or stored.",
                run: |ctx| property(ctx, 3),
            },
            Stage {
                id: "one-lock-per-batch",
                title: "A batch of updates takes the lock once",
                mentor: "Close! Requests are fast, but an update took the cache's lock once per \
                         price in its batch. Each acquisition is a point where readers and the \
                         writer hand the lock back and forth, and a request can see half a \
                         batch applied. Take the lock once, apply the whole batch, and let it \
                         go. Handing it back between prices to be kind to readers is the same \
                         thing again.",
                run: |ctx| property(ctx, 4),
            },
        ],
    );
}
