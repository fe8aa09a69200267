//! Checks for the payments consumer: on an at-least-once broker, with lost acks, crashes,
//! restarts and a second consumer, every payment is credited exactly once.
//!
//! Every stage is one property, "every payment is credited exactly once", checked over
//! histories drawn from a fixed seed; each stage lets in one more kind of trouble, so the
//! first stage that fails names the trouble the fix does not survive. The expected outcome is
//! fully specified (each payment in the balance once), so each history is compared with it
//! after every step.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::clock::Clock;
use bughunt_kit::invariant::{self, Invariant, Violation};
use bughunt_kit::ledger::{self, Store};
use bughunt_kit::prop::{self, proptest::prelude::*};
use bughunt_kit::queue::{Broker, Delivery};
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

const VISIBILITY_TIMEOUT_MS: u64 = 30_000;
/// The amount that repeats: two different payments can say the same thing.
const SAME_AMOUNT_CENTS: i64 = 1_000;
/// Histories per stage: enough to meet every crash point, little enough to stay fast.
const CASES: u32 = 64;
/// The most rounds of "wait out the timeout, take everything" that end a history.
const DRAIN_ROUNDS_MAX: u64 = 4;
const CONSUMERS: [&str; 2] = ["c1", "c2"];
/// How far past the last id the next one can be when ids are far apart. Every fixed-width
/// set of applied ids (a 64- or 128-bit mask, 100 or 1000 slots, ids cut to 16 or 32 bits)
/// gives two of these ids one place.
const ID_GAPS: [u64; 8] = [64, 128, 100, 1_000, 4_096, 65_536, 720_720, 1 << 32];
/// The first ids when ids are far apart: small, and past what 32 bits hold.
const FAR_FIRST_IDS: [u64; 4] = [1, 64, 1 << 32, (1 << 40) + 3];

/// What happens to one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Handled, acked, the ack arrives.
    Ack,
    /// Handled, acked, the ack is lost on the network.
    AckLost,
    /// The process dies right after the receive, before handling.
    CrashBeforeHandle,
    /// The process dies right after its k-th ledger commit while handling (or after
    /// handling, before its ack, if it commits fewer times).
    CrashAfterCommit(u8),
    /// A slow consumer: it holds the message and handles it later (`Finish`).
    Hold,
    /// The process stalls right after its k-th ledger commit while handling, until its
    /// visibility timeout is over; meanwhile the other consumer gets the message again,
    /// handles it and acks; then the first goes on and acks.
    StallAfterCommit(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// The producer sends a payment: a fresh amount, or one of the amounts that repeat; its
    /// id right after the last one's, or `ID_GAPS[gap]` past it.
    Send { repeated: Option<u8>, gap: Option<u8> },
    /// A consumer receives the next visible message.
    Deliver { consumer: usize, fate: Fate },
    /// A slow consumer handles and acks the oldest message it holds.
    Finish { consumer: usize },
    /// The consumer process restarts; what it holds is dropped, unhandled.
    Restart { consumer: usize },
    /// Time passes.
    Wait { ms: u64 },
}

#[derive(Clone, Debug)]
struct History {
    /// The id the broker gives its first message.
    first_id: u64,
    ops: Vec<Op>,
}

/// Which trouble a stage lets in.
#[derive(Clone, Copy)]
struct Mix {
    consumers: usize,
    repeated_amounts: bool,
    restarts: bool,
    crash_before_handle: bool,
    crash_between_commits: bool,
    slow_consumers: bool,
    stalls: bool,
    /// Ids far apart and large, as a broker shared with other queues gives them.
    id_gaps: bool,
    sends_max: usize,
    ops_max: usize,
}

const LOST_ACKS: Mix = Mix {
    consumers: 1,
    repeated_amounts: false,
    restarts: false,
    crash_before_handle: false,
    crash_between_commits: false,
    slow_consumers: false,
    stalls: false,
    id_gaps: false,
    sends_max: 8,
    ops_max: 24,
};

fn amount_of(op_sends_before: usize, repeated: Option<u8>) -> i64 {
    match repeated {
        Some(pick) if pick % 3 == 2 => 4_200,
        Some(_) => SAME_AMOUNT_CENTS,
        // Fresh amounts never equal one another or the repeated ones.
        None => 10_001 + 37 * op_sends_before as i64,
    }
}

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1_000) {
        format!("{} s", ms / 1_000)
    } else {
        format!("{ms} ms")
    }
}

fn ordinal(n: u8) -> String {
    match n {
        1 => "1st".to_owned(),
        2 => "2nd".to_owned(),
        3 => "3rd".to_owned(),
        _ => format!("{n}th"),
    }
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fate::Ack => write!(f, "handles it and acks"),
            Fate::AckLost => write!(f, "handles it and acks, and the ack is lost"),
            Fate::CrashBeforeHandle => write!(f, "crashes before handling it"),
            Fate::CrashAfterCommit(k) => write!(
                f,
                "crashes right after its {} ledger commit for it (or after handling it, before its ack)",
                ordinal(*k)
            ),
            Fate::Hold => write!(f, "holds it, slow"),
            Fate::StallAfterCommit(k) => write!(
                f,
                "stalls right after its {} ledger commit for it until its timeout is over (the \
                 other consumer gets it again meanwhile), then goes on and acks",
                ordinal(*k)
            ),
        }
    }
}

/// The history in words, amounts resolved.
fn tell(history: &History) -> String {
    let mut sends = 0;
    let steps: Vec<String> = history
        .ops
        .iter()
        .map(|op| match op {
            Op::Send { repeated, gap } => {
                let amount = amount_of(sends, *repeated);
                sends += 1;
                match gap.filter(|_| sends > 1) {
                    Some(gap) => format!(
                        "send a payment of {amount} cents, its id {} past the last one",
                        ID_GAPS[usize::from(gap)]
                    ),
                    None => format!("send a payment of {amount} cents"),
                }
            }
            Op::Deliver { consumer, fate } => {
                format!(
                    "{} receives the next message and {fate}",
                    CONSUMERS[*consumer]
                )
            }
            Op::Finish { consumer } => format!(
                "{} finally handles the oldest message it holds and acks",
                CONSUMERS[*consumer]
            ),
            Op::Restart { consumer } => format!("{} restarts", CONSUMERS[*consumer]),
            Op::Wait { ms } => format!("wait {}", seconds(*ms)),
        })
        .collect();
    format!(
        "ids start at {}: {}; then the consumers catch up",
        history.first_id,
        prop::numbered(&steps)
    )
}

/// Weighted choices as a table: a raw number picks an entry, and 0 (where shrinking goes)
/// picks the first.
fn table<T: Copy>(weighted: &[(usize, T)]) -> Vec<T> {
    weighted
        .iter()
        .flat_map(|(weight, choice)| std::iter::repeat_n(*choice, *weight))
        .collect()
}

#[derive(Clone, Copy)]
enum Kind {
    Send,
    Deliver,
    Wait,
    Restart,
    Finish,
}

/// Decodes one raw number into an operation of the stage's mix. Histories are drawn as raw
/// numbers, which proptest generates and shrinks far faster than a tree of strategies, and
/// read as operations here; a raw 0 is the plainest operation, a send of a fresh amount.
fn decode(mix: &Mix, kinds: &[Kind], fates: &[Fate], raw: u32) -> Op {
    let kind = kinds[raw as usize % kinds.len()];
    let rest = raw / kinds.len() as u32;
    let consumer = rest as usize % mix.consumers;
    match kind {
        Kind::Send => Op::Send {
            repeated: (mix.repeated_amounts && rest % 10 < 7).then_some((rest / 10) as u8),
            gap: (mix.id_gaps && (rest / 1_000) % 3 == 0)
                .then_some(((rest / 3_000) as usize % ID_GAPS.len()) as u8),
        },
        Kind::Deliver => Op::Deliver {
            consumer,
            fate: fates[(rest / 2) as usize % fates.len()],
        },
        Kind::Wait => {
            let spread = u64::from(rest / 7);
            let ms = match rest % 7 {
                0..=2 => 1 + spread % 2_500,
                3 | 4 => VISIBILITY_TIMEOUT_MS,
                _ => VISIBILITY_TIMEOUT_MS / 2 + spread % (VISIBILITY_TIMEOUT_MS * 3 / 2),
            };
            Op::Wait { ms }
        }
        Kind::Restart => Op::Restart { consumer },
        Kind::Finish => Op::Finish { consumer },
    }
}

fn histories(mix: Mix) -> impl Strategy<Value = History> {
    let mut fates = vec![(4, Fate::Ack), (3, Fate::AckLost)];
    if mix.crash_before_handle {
        fates.push((2, Fate::CrashBeforeHandle));
    }
    if mix.crash_between_commits {
        fates.extend([
            (3, Fate::CrashAfterCommit(1)),
            (2, Fate::CrashAfterCommit(2)),
            (1, Fate::CrashAfterCommit(3)),
            (1, Fate::CrashAfterCommit(4)),
            (1, Fate::CrashAfterCommit(5)),
        ]);
    }
    if mix.slow_consumers {
        fates.push((2, Fate::Hold));
    }
    if mix.stalls {
        fates.extend([
            (3, Fate::StallAfterCommit(1)),
            (2, Fate::StallAfterCommit(2)),
            (1, Fate::StallAfterCommit(3)),
        ]);
    }
    let mut kinds = vec![(4, Kind::Send), (5, Kind::Deliver), (2, Kind::Wait)];
    if mix.restarts {
        kinds.push((1, Kind::Restart));
    }
    if mix.slow_consumers {
        kinds.push((2, Kind::Finish));
    }
    let (fates, kinds) = (table(&fates), table(&kinds));
    let first_ids: &'static [u64] = if mix.id_gaps {
        &FAR_FIRST_IDS
    } else {
        &[1, 99, 100, 101, 127, 1_000_001]
    };
    let raw_ops = prop::proptest::collection::vec(any::<u32>(), 1..=mix.ops_max);
    (0..first_ids.len(), raw_ops).prop_map(move |(first, raw_ops)| {
        // Keep the number of payments under the stage's bound.
        let mut sends = 0;
        let ops = raw_ops
            .iter()
            .map(|raw| decode(&mix, &kinds, &fates, *raw))
            .filter(|op| {
                if matches!(op, Op::Send { .. }) {
                    sends += 1;
                    sends <= mix.sends_max
                } else {
                    true
                }
            })
            .collect();
        History {
            first_id: first_ids[first],
            ops,
        }
    })
}

/// One consumer process: the learner's consumer, its connection, what it holds.
struct Process {
    consumer: Consumer,
    ledger: Ledger,
    held: Vec<Delivery>,
}

impl Process {
    fn start(store: &Store) -> Self {
        Self {
            consumer: Consumer::new(),
            ledger: Ledger::open(store.clone()),
            held: Vec::new(),
        }
    }
}

/// The other consumer's turn while a process is stalled: its process (lent to the stall and
/// given back), and what its handle did.
struct Meanwhile {
    other: usize,
    commits: u8,
    helper: Rc<RefCell<Option<Process>>>,
    outcome: Rc<RefCell<Option<HelperOutcome>>>,
}

struct HelperOutcome {
    attempt: u32,
    /// The balance when the stall began, and after the other consumer's handle.
    before: i64,
    after: i64,
}

/// How a handle ended.
enum Handled {
    Returned,
    Crashed,
}

/// One history acted out on the broker, the store and the learner's code.
struct Run<'t> {
    trace: &'t Trace,
    clock: Clock,
    broker: Broker,
    store: Store,
    processes: Vec<Process>,
    /// The amount each message pays.
    amount_cents: BTreeMap<u64, i64>,
    /// How much of each message's payment is in the balance, as the balance moved while it
    /// was handled.
    credited_cents: BTreeMap<u64, i64>,
    /// What happened to each message, in words.
    story: BTreeMap<u64, Vec<String>>,
    /// How many times each message was handled.
    handled: BTreeMap<u64, u32>,
    /// The time of the next thing told, when it happened before now (a stalled handle).
    told_at_ms: Option<u64>,
    /// Handles that moved the balance so far, and that count at each message's first credit.
    credits: u64,
    first_credit: BTreeMap<u64, u64>,
}

impl<'t> Run<'t> {
    fn new(trace: &'t Trace, first_id: u64) -> Self {
        let clock = Clock::new();
        let store = Store::new();
        Self {
            trace,
            broker: Broker::new(clock.clone(), VISIBILITY_TIMEOUT_MS).with_first_id(first_id),
            clock,
            processes: CONSUMERS.iter().map(|_| Process::start(&store)).collect(),
            store,
            amount_cents: BTreeMap::new(),
            credited_cents: BTreeMap::new(),
            story: BTreeMap::new(),
            handled: BTreeMap::new(),
            told_at_ms: None,
            credits: 0,
            first_credit: BTreeMap::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn tell(&mut self, id: u64, what: String) {
        let at = seconds(self.told_at_ms.take().unwrap_or_else(|| self.now_ms()));
        self.story
            .entry(id)
            .or_default()
            .push(format!("at {at} {what}"));
    }

    fn story_of(&self, id: u64) -> String {
        self.story
            .get(&id)
            .map(|s| s.join("; "))
            .unwrap_or_default()
    }

    /// The balance, read through a new connection (the learner's own schema).
    fn balance_cents(&self) -> i64 {
        Ledger::open(self.store.clone()).balance_cents()
    }

    fn wait(&mut self, ms: u64) {
        self.trace.set_time_ms(self.clock.advance_ms(ms));
    }

    /// Sends a payment; with a `gap`, its id is that far past the last message's (the ids
    /// between go to other queues).
    fn send(&mut self, amount: i64, gap: Option<u64>) {
        let last_id = self.amount_cents.keys().next_back().copied();
        let gap = gap.filter(|_| last_id.is_some());
        if let Some(gap) = gap {
            self.broker.skip_ids(gap - 1);
        }
        let id = self
            .broker
            .send(amount.to_string())
            .expect("the broker has room for a few payments");
        self.amount_cents.insert(id, amount);
        self.credited_cents.insert(id, 0);
        self.trace
            .event("producer", EventKind::Send)
            .to("broker")
            .msg(id)
            .note(format!("pay {amount} cents"))
            .record();
        match (gap, last_id) {
            (Some(gap), Some(last_id)) => self.tell(
                id,
                format!(
                    "m{id} was sent, paying {amount} cents (its id is {gap} past m{last_id}'s: \
                     the ids between went to other queues)"
                ),
            ),
            _ => self.tell(id, format!("m{id} was sent, paying {amount} cents")),
        }
    }

    fn receive(&mut self, who: usize) -> Option<Delivery> {
        let delivery = self.broker.receive()?;
        let kind = if delivery.attempt == 1 {
            EventKind::Deliver
        } else {
            EventKind::Redeliver
        };
        self.trace
            .event("broker", kind)
            .to(CONSUMERS[who])
            .msg(delivery.id)
            .note(format!("attempt {}", delivery.attempt))
            .record();
        Some(delivery)
    }

    /// A new process takes `who`'s place; what the old one held is dropped.
    fn restart(&mut self, who: usize, why: &str, holding: Option<u64>) {
        let name = CONSUMERS[who];
        self.store.restart();
        for dropped in std::mem::take(&mut self.processes[who].held) {
            self.tell(
                dropped.id,
                format!("{name} restarted while holding m{}, unhandled", dropped.id),
            );
        }
        let mut event = self
            .trace
            .event(name, EventKind::Crash)
            .note(format!("{why}; a new {name} starts on the same ledger"));
        if let Some(id) = holding {
            event = event.msg(id);
        }
        event.record();
        self.processes[who] = Process::start(&self.store);
    }

    /// Runs the learner's `handle`, with a crash armed after `crash_after` commits, and
    /// checks what it did to the balance.
    /// Arms a stall of `who` after `commits` ledger commits: the other consumer then gets
    /// `delivery` again (its timeout over), handles it and acks.
    fn arm_stall(
        &mut self,
        who: usize,
        delivery: &Delivery,
        commits: u8,
        balance_before_cents: i64,
    ) -> Meanwhile {
        let other = (who + 1) % CONSUMERS.len();
        let (name, other_name) = (CONSUMERS[who], CONSUMERS[other]);
        let stand_in = Process::start(&self.store);
        let helper = Rc::new(RefCell::new(Some(std::mem::replace(
            &mut self.processes[other],
            stand_in,
        ))));
        let outcome = Rc::new(RefCell::new(None));
        let (store, clock, trace) = (self.store.clone(), self.clock.clone(), self.trace.clone());
        let redelivery = Delivery {
            attempt: delivery.attempt + 1,
            ..delivery.clone()
        };
        let (lent, told) = (helper.clone(), outcome.clone());
        self.store.stall_after_commits(u64::from(commits), move || {
            let Some(mut process) = lent.borrow_mut().take() else {
                return;
            };
            let id = redelivery.id;
            let before = Ledger::open(store.clone()).balance_cents();
            let stalled_delta = before - balance_before_cents;
            if stalled_delta != 0 {
                trace
                    .event(name, EventKind::Process)
                    .to("ledger")
                    .msg(id)
                    .note(format!("{stalled_delta:+} cents, balance {before}"))
                    .record();
            }
            trace
                .event(name, EventKind::Stall)
                .msg(id)
                .note(format!(
                    "{name} stalls past the visibility timeout of m{id}"
                ))
                .record();
            trace.set_time_ms(clock.advance_ms(VISIBILITY_TIMEOUT_MS));
            trace
                .event("broker", EventKind::Redeliver)
                .to(other_name)
                .msg(id)
                .note(format!(
                    "attempt {}, while {name} is stalled past its timeout",
                    redelivery.attempt
                ))
                .record();
            store.traced(&trace, other_name, Some(id));
            process.consumer.handle(&mut process.ledger, &redelivery);
            store.traced(&trace, name, Some(id));
            let after = Ledger::open(store.clone()).balance_cents();
            let delta = after - before;
            if delta != 0 {
                trace
                    .event(other_name, EventKind::Process)
                    .to("ledger")
                    .msg(id)
                    .note(format!("{delta:+} cents, balance {after}"))
                    .record();
            }
            trace
                .event(other_name, EventKind::Ack)
                .to("broker")
                .msg(id)
                .record();
            *told.borrow_mut() = Some(HelperOutcome {
                attempt: redelivery.attempt,
                before,
                after,
            });
            *lent.borrow_mut() = Some(process);
        });
        Meanwhile {
            other,
            commits,
            helper,
            outcome,
        }
    }

    fn handle(
        &mut self,
        who: usize,
        delivery: &Delivery,
        crash_after: Option<u8>,
        stall_after: Option<u8>,
    ) -> Result<Handled, String> {
        let name = CONSUMERS[who];
        let id = delivery.id;
        let amount = self.amount_cents[&id];
        let before = self.balance_cents();
        *self.handled.entry(id).or_insert(0) += 1;
        let commits_before = self.store.commits();
        let started_ms = self.now_ms();
        let meanwhile = stall_after.map(|commits| self.arm_stall(who, delivery, commits, before));
        self.store.traced(self.trace, name, Some(id));
        if let Some(commits) = crash_after {
            self.store.crash_after_commits(u64::from(commits));
        }
        let process = &mut self.processes[who];
        let outcome = ledger::catching_crash(|| {
            process.consumer.handle(&mut process.ledger, delivery);
        });
        self.store.disarm();
        self.store.unstall();
        self.store.untraced();
        let mut before = before;
        let mut stalled = None;
        if let Some(meanwhile) = meanwhile {
            let helper = meanwhile.helper.borrow_mut().take();
            self.processes[meanwhile.other] = helper.unwrap_or_else(|| Process::start(&self.store));
            let helped = meanwhile.outcome.borrow_mut().take();
            if let Some(helped) = helped {
                let other_name = CONSUMERS[meanwhile.other];
                stalled = Some(meanwhile.commits);
                self.told_at_ms = Some(started_ms);
                self.account(
                    name,
                    id,
                    helped.before - before,
                    helped.before,
                    format!(
                        "{name} handled m{id} (attempt {}) and stalled right after its {} ledger \
                         commit for it",
                        delivery.attempt,
                        ordinal(meanwhile.commits)
                    ),
                    false,
                    false,
                )?;
                self.account(
                    other_name,
                    id,
                    helped.after - helped.before,
                    helped.after,
                    format!(
                        "while {name} was stalled past its visibility timeout, {other_name} got \
                         m{id} again (attempt {}) and handled it",
                        helped.attempt
                    ),
                    false,
                    false,
                )?;
                self.broker.ack(id);
                self.tell(id, format!("{other_name} acked m{id}"));
                before = helped.after;
                if self.credited_cents[&id] != amount {
                    return Err(self.fail(
                        Invariant::AtLeastOnce,
                        id,
                        format!(
                            "{other_name} handled m{id} and acked it, and its payment of {amount} \
                             cents is not in the balance: {}",
                            self.story_of(id)
                        ),
                    ));
                }
            }
        }
        let commits_made = self.store.commits() - commits_before;
        let crashed = outcome.is_err() || crash_after.is_some();
        if crashed {
            // A store that died mid-handle must come back before the balance can be read.
            self.store.restart();
        }
        let after = self.balance_cents();
        let delta = after - before;
        let attempt = delivery.attempt;
        let how = match (&outcome, crash_after, stalled) {
            (Err(crash), _, _) => format!(
                "{name} handled m{id} (attempt {attempt}) and crashed right after its {} ledger \
                 commit for it",
                ordinal(u8::try_from(crash.after_commit - commits_before).unwrap_or(u8::MAX))
            ),
            (Ok(()), Some(_), _) => format!(
                "{name} handled m{id} (attempt {attempt}) in {commits_made} ledger commit(s) and \
                 crashed before its ack"
            ),
            (Ok(()), None, Some(_)) => {
                format!("{name} woke up and finished its handling of m{id} (attempt {attempt})")
            }
            (Ok(()), None, None) => format!("{name} handled m{id} (attempt {attempt})"),
        };
        self.account(name, id, delta, after, how, crashed, true)?;
        if crashed {
            return Ok(Handled::Crashed);
        }
        Ok(Handled::Returned)
    }

    /// Books `delta`, the move of the balance while `name` handled m`id`, against that
    /// message, tells it, draws it (unless it was drawn as it happened), and checks it.
    #[allow(clippy::too_many_arguments)]
    fn account(
        &mut self,
        name: &str,
        id: u64,
        delta: i64,
        after: i64,
        how: String,
        crashed: bool,
        draw: bool,
    ) -> Result<(), String> {
        let amount = self.amount_cents[&id];
        *self.credited_cents.entry(id).or_insert(0) += delta;
        let credited = self.credited_cents[&id];
        let effect = match delta {
            0 => "the balance did not change".to_owned(),
            _ => format!("the balance moved by {delta:+} cents"),
        };
        self.tell(id, format!("{how}: {effect}"));
        if draw && delta != 0 {
            self.trace
                .event(name, EventKind::Process)
                .to("ledger")
                .msg(id)
                .note(format!("{delta:+} cents, balance {after}"))
                .record();
        } else if draw {
            self.trace
                .event(name, EventKind::Note)
                .msg(id)
                .note(if crashed {
                    format!("balance still {after} when {name} died")
                } else {
                    format!("no change by {name}: balance stays {after}")
                })
                .record();
        }
        if delta != 0 && delta != amount && delta != -amount {
            return Err(self.fail(
                Invariant::ExactlyOnceEffects,
                id,
                format!(
                    "m{id} pays {amount} cents, and handling it moved the balance by {delta:+} \
                     cents: {}",
                    self.story_of(id)
                ),
            ));
        }
        if delta != 0 {
            self.credits += 1;
            self.first_credit.entry(id).or_insert(self.credits);
        }
        if credited > amount {
            let between = self.credits - self.first_credit[&id] - 1;
            let others = match between {
                0 => String::new(),
                1 => "; one other payment was credited in between".to_owned(),
                n => format!("; {n} other payments were credited in between"),
            };
            return Err(self.fail(
                Invariant::ExactlyOnceEffects,
                id,
                format!(
                    "m{id} pays {amount} cents and the balance now holds it {} times: {}{others}",
                    credited / amount.max(1),
                    self.story_of(id)
                ),
            ));
        }
        if credited < 0 {
            return Err(self.fail(
                Invariant::AtLeastOnce,
                id,
                format!(
                    "m{id} pays {amount} cents and the balance holds {credited} cents of it: {}",
                    self.story_of(id)
                ),
            ));
        }
        Ok(())
    }

    /// `who` acks `delivery`, which it has handled; `lost` acks never arrive.
    fn ack(&mut self, who: usize, delivery: &Delivery, lost: bool) -> Result<(), String> {
        let name = CONSUMERS[who];
        let id = delivery.id;
        if lost {
            self.trace
                .event(name, EventKind::AckLost)
                .to("broker")
                .msg(id)
                .note("lost on the network")
                .record();
            self.tell(id, format!("{name}'s ack of m{id} was lost"));
        } else {
            self.broker.ack(id);
            self.trace
                .event(name, EventKind::Ack)
                .to("broker")
                .msg(id)
                .record();
            self.tell(id, format!("{name} acked m{id}"));
        }
        let amount = self.amount_cents[&id];
        if self.credited_cents[&id] != amount {
            let note = if self.handled.get(&id) == Some(&1) {
                format!(
                    " (nothing had handled m{id} before in this run, and the ledger was new at \
                     its start)"
                )
            } else {
                String::new()
            };
            return Err(self.fail(
                Invariant::AtLeastOnce,
                id,
                format!(
                    "{name} handled m{id} and acked it, and its payment of {amount} cents is not \
                     in the balance{note}: {}",
                    self.story_of(id)
                ),
            ));
        }
        Ok(())
    }

    fn fail(&self, invariant: Invariant, id: u64, detail: String) -> String {
        invariant::mark(
            self.trace,
            &[Violation {
                invariant,
                msg: Some(id),
                detail: detail.clone(),
            }],
        );
        detail
    }

    fn deliver(&mut self, who: usize, fate: Fate) -> Result<(), String> {
        let Some(delivery) = self.receive(who) else {
            return Ok(());
        };
        let name = CONSUMERS[who];
        let (id, attempt) = (delivery.id, delivery.attempt);
        match fate {
            Fate::Ack | Fate::AckLost => {
                if let Handled::Returned = self.handle(who, &delivery, None, None)? {
                    self.ack(who, &delivery, fate == Fate::AckLost)?;
                }
            }
            Fate::CrashBeforeHandle => {
                self.tell(
                    id,
                    format!(
                        "{name} received m{id} (attempt {attempt}) and crashed before handling it"
                    ),
                );
                self.restart(
                    who,
                    &format!("{name} crashed holding m{id}, before handling it"),
                    Some(id),
                );
            }
            Fate::CrashAfterCommit(commits) => {
                self.handle(who, &delivery, Some(commits), None)?;
                self.restart(
                    who,
                    &format!("{name} crashed while handling m{id}, before its ack"),
                    Some(id),
                );
            }
            Fate::StallAfterCommit(commits) => {
                if let Handled::Returned = self.handle(who, &delivery, None, Some(commits))? {
                    self.ack(who, &delivery, false)?;
                }
            }
            Fate::Hold => {
                self.tell(
                    id,
                    format!("{name} received m{id} (attempt {attempt}) and held it, slow"),
                );
                self.processes[who].held.push(delivery);
            }
        }
        Ok(())
    }

    fn finish(&mut self, who: usize) -> Result<(), String> {
        if self.processes[who].held.is_empty() {
            return Ok(());
        }
        let delivery = self.processes[who].held.remove(0);
        if let Handled::Returned = self.handle(who, &delivery, None, None)? {
            self.ack(who, &delivery, false)?;
        }
        Ok(())
    }

    fn apply(&mut self, history: &History) -> Result<(), String> {
        let mut sends = 0;
        for op in &history.ops {
            match *op {
                Op::Send { repeated, gap } => {
                    let gap = gap.map(|gap| ID_GAPS[usize::from(gap)]);
                    self.send(amount_of(sends, repeated), gap);
                    sends += 1;
                }
                Op::Deliver { consumer, fate } => self.deliver(consumer, fate)?,
                Op::Finish { consumer } => self.finish(consumer)?,
                Op::Restart { consumer } => {
                    let name = CONSUMERS[consumer];
                    self.restart(consumer, &format!("{name} restarts (a deploy)"), None);
                }
                Op::Wait { ms } => self.wait(ms),
            }
        }
        // The slow consumers finish, then c1 takes whatever is left until the broker is empty.
        for who in 0..CONSUMERS.len() {
            while !self.processes[who].held.is_empty() {
                self.finish(who)?;
            }
        }
        let deliveries_max = 4 * self.amount_cents.len() + 8;
        for _ in 0..DRAIN_ROUNDS_MAX {
            if self.broker.depth() == 0 {
                break;
            }
            self.wait(VISIBILITY_TIMEOUT_MS);
            for _ in 0..deliveries_max {
                if self.broker.depth() == 0 {
                    break;
                }
                self.deliver(0, Fate::Ack)?;
            }
        }
        for (&id, &amount) in &self.amount_cents {
            let credited = self.credited_cents[&id];
            if credited != amount {
                return Err(self.fail(
                    Invariant::AtLeastOnce,
                    id,
                    format!(
                        "m{id} pays {amount} cents and, once every message was handled and \
                         acked, the balance held {credited} cents of it: {}",
                        self.story_of(id)
                    ),
                ));
            }
        }
        let expected: i64 = self.amount_cents.values().sum();
        let balance = self.balance_cents();
        if balance != expected {
            return Err(format!(
                "the payments sent add up to {expected} cents and the balance says {balance}"
            ));
        }
        Ok(())
    }
}

fn exactly_once(ctx: &mut Ctx, name: &str, cases: u32, mix: Mix) {
    prop::for_all(ctx, name, cases, histories(mix), tell, |history, trace| {
        Run::new(trace, history.first_id).apply(history)
    });
}

fn lost_ack_redelivery(ctx: &mut Ctx) {
    exactly_once(ctx, "credited once despite lost acks", CASES, LOST_ACKS);
}

fn distinct_payments_both_count(ctx: &mut Ctx) {
    let mix = Mix {
        repeated_amounts: true,
        ..LOST_ACKS
    };
    exactly_once(ctx, "equal payments both count", CASES, mix);
}

fn far_apart_ids_both_count(ctx: &mut Ctx) {
    let mix = Mix {
        repeated_amounts: true,
        id_gaps: true,
        ..LOST_ACKS
    };
    exactly_once(ctx, "ids far apart and large", CASES, mix);
}

fn dedupe_survives_restart(ctx: &mut Ctx) {
    let mix = Mix {
        consumers: 2,
        repeated_amounts: true,
        restarts: true,
        id_gaps: true,
        ..LOST_ACKS
    };
    exactly_once(ctx, "once across consumer processes", CASES, mix);
}

fn redelivery_after_crash_counts(ctx: &mut Ctx) {
    let mix = Mix {
        consumers: 2,
        repeated_amounts: true,
        restarts: true,
        crash_before_handle: true,
        id_gaps: true,
        ..LOST_ACKS
    };
    exactly_once(ctx, "a crash before crediting loses nothing", CASES, mix);
}

fn crash_between_writes(ctx: &mut Ctx) {
    let mix = Mix {
        consumers: 2,
        repeated_amounts: true,
        restarts: true,
        crash_before_handle: true,
        crash_between_commits: true,
        slow_consumers: true,
        id_gaps: true,
        ..LOST_ACKS
    };
    exactly_once(ctx, "a crash between two commits", CASES, mix);
}

fn slow_first_attempt(ctx: &mut Ctx) {
    let mix = Mix {
        consumers: 2,
        repeated_amounts: true,
        restarts: true,
        crash_before_handle: true,
        crash_between_commits: true,
        slow_consumers: true,
        stalls: true,
        id_gaps: true,
        ..LOST_ACKS
    };
    exactly_once(
        ctx,
        "a first attempt that stalls between two commits",
        CASES,
        mix,
    );
}

fn every_payment_exactly_once(ctx: &mut Ctx) {
    let mix = Mix {
        consumers: 2,
        repeated_amounts: true,
        restarts: true,
        crash_before_handle: true,
        crash_between_commits: true,
        slow_consumers: true,
        stalls: true,
        id_gaps: true,
        sends_max: 40,
        ops_max: 120,
    };
    exactly_once(ctx, "long runs, every fault", 32, mix);
}

#[test]
fn checks() {
    run_stages(
        "idempotent-consumer",
        &[
            Stage {
                id: "lost-ack-redelivery",
                title: "A payment redelivered after a lost ack is credited once",
                mentor: "The broker cannot tell a lost ack from a consumer that never did the \
                         work, so it delivers again: at-least-once means this will happen. Follow \
                         the message named below through the history: which of its deliveries \
                         changed the balance, and what could tell a second delivery from a new \
                         payment, or a new payment from an old one?",
                run: lost_ack_redelivery,
            },
            Stage {
                id: "distinct-payments-both-count",
                title: "Two different payments of the same amount both count",
                mentor: "Close! Two customers can pay 10.00 in the same minute: two messages, two \
                         payments, saying the same thing. What identifies a message, as opposed \
                         to what it says?",
                run: distinct_payments_both_count,
            },
            Stage {
                id: "far-apart-ids-both-count",
                title: "Two payments whose ids are far apart both count",
                mentor: "Good! Message ids are unique, not small and not dense: the broker hands \
                         ids to other queues too, so the next one can be 64, a million or 2^32 \
                         past the last. Follow the two messages named below: does your record of \
                         applied messages give every possible id a place of its own, or can two \
                         ids land on the same one?",
                run: far_apart_ids_both_count,
            },
            Stage {
                id: "dedupe-survives-restart",
                title: "Deduplication holds across consumer processes",
                mentor: "Nearly there! A message can be redelivered to another consumer process: \
                         the other consumer, or the same one after a restart, with a new \
                         `Consumer` and a new connection to the ledger. What does that process \
                         know about the payments the first one applied, and where is it kept?",
                run: dedupe_survives_restart,
            },
            Stage {
                id: "redelivery-after-crash-counts",
                title: "A redelivery after a crash before crediting still counts",
                mentor: "Better! But a redelivery is not always a duplicate: a consumer can crash \
                         after receiving a message and before crediting anything, and that \
                         message can come back after newer ones were applied. Who knows for sure \
                         whether a message's payment is already in?",
                run: redelivery_after_crash_counts,
            },
            Stage {
                id: "crash-between-writes",
                title: "A crash between two ledger commits neither loses nor doubles a payment",
                mentor: "Almost! A consumer process can die between any two commits to the \
                         ledger. If it dies right after one of your commits for a payment, what \
                         does the ledger then say about that payment, and what will its \
                         redelivery do?",
                run: crash_between_writes,
            },
            Stage {
                id: "slow-first-attempt",
                title: "A first attempt that stalls between two commits and finishes after the \
                        redelivery credits nothing more",
                mentor: "So close! A consumer can stall, not die, between two of its ledger \
                         commits, for longer than its visibility timeout: the message goes to \
                         the other consumer, which handles it, and then the first one wakes up \
                         and carries on. What did your first commit find out, and is it still \
                         true when your next commit runs?",
                run: slow_first_attempt,
            },
            Stage {
                id: "every-payment-exactly-once",
                title: "Every payment is credited exactly once over long runs with every fault",
                mentor: "Last one! Over a long run, with every fault at once, a message can come \
                         back after many others were applied. Follow the message named below: \
                         what did your code remember about it at each of its deliveries, and for \
                         how long?",
                run: every_payment_exactly_once,
            },
        ],
    );
}
