//! Checks for `request-reply-window`: `quote_all` returns, with one quote per request, and
//! joins its pricer, for every batch, every pair of capacities and every schedule.
//!
//! Each stage is a property over generated workloads: capacities of 0 (a rendezvous), 1, 2, 3 or 5 for each
//! channel (chosen apart, so the two differ), batches whose sizes straddle what the two
//! channels hold together (ids past 100, skus that repeat). Each workload runs under
//! shuttle: the first stage's under every schedule up to a budget (a depth-first search),
//! the second's under random schedules from a fixed seed. shuttle fails a schedule in which
//! every thread is blocked (a deadlock) and one that runs longer than its step bound (a
//! thread spinning for something that never comes). The program's `Log` says, before each
//! call that can block, what the thread waits for; the story of the failing schedule is
//! drawn from those lines, and a deadlock is told as where each blocked thread stopped, in
//! the program's own words. Never a wall-clock timeout.

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::Search;
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::story::{self, Story, Voice};
use bughunt_kit::trace::Trace;
use hunt::*;

/// The story is told as the program speaks: see [`Voice::channels`].
const VOICE: Voice = Voice::channels(BROKER);

/// The program's log, written into `story`.
fn log(story: &Story) -> Log {
    let story = story.clone();
    Log::new(move |thread, what| story.said(thread, what))
}

/// Two channels and the batch sent through them.
#[derive(Clone, Debug)]
struct Workload {
    settings: Settings,
    batch: Vec<Request>,
}

fn run_workload(workload: &Workload, story: &Story) {
    let quotes = quote_all(workload.batch.clone(), workload.settings, &log(story));
    let late = story.outlived(format!("quote_all returned {} quotes", quotes.len()));
    if let Some((who, note)) = late {
        story.fail(None, format!(
            "{who} was still running after quote_all returned (it then logged \"{note}\"): \
             quote_all must join the threads it started before it returns"
        ));
    }
    let batch = &workload.batch;
    for request in batch {
        let theirs: Vec<&Quote> = quotes.iter().filter(|quote| quote.id == request.id).collect();
        let want = price(request).price_cents;
        match theirs.as_slice() {
            [] => story.fail(Some(request.id), format!(
                "quote_all returned {} quotes for {} requests, and none for request {}: its quote \
                 was lost",
                quotes.len(),
                batch.len(),
                request.id
            )),
            [quote] if quote.price_cents != want => story.fail(Some(request.id), format!(
                "the quote for request {} says {} cents, and its price is {want}",
                request.id, quote.price_cents
            )),
            [_] => {}
            many => story.fail(Some(request.id), format!(
                "request {} was quoted {} times",
                request.id,
                many.len()
            )),
        }
    }
    if let Some(stray) = quotes.iter().find(|quote| batch.iter().all(|request| request.id != quote.id)) {
        story.fail(Some(stray.id), format!("quote_all returned a quote for request {}, which was not asked for", stray.id));
    }
}

/// Workloads whose batch size is drawn from `size(requests_capacity + replies_capacity)`.
fn workloads(size: fn(usize) -> std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Workload> {
    let capacities = || proptest::sample::select(vec![0usize, 1, 2, 3, 5]);
    (capacities(), capacities(), 100u64..400, 1u64..4)
        .prop_flat_map(move |(requests_capacity, replies_capacity, first, gap)| {
            (
                Just(Settings { requests_capacity, replies_capacity }),
                Just((first, gap)),
                proptest::collection::vec(0u64..3, size(requests_capacity + replies_capacity)),
            )
        })
        .prop_map(|(settings, (first, gap), skus)| Workload {
            settings,
            batch: skus
                .into_iter()
                .enumerate()
                .map(|(i, sku)| Request { id: first + gap * i as u64, sku: 7 + sku * 1_000 })
                .collect(),
        })
}

fn tell(workload: &Workload) -> String {
    let Settings { requests_capacity, replies_capacity } = workload.settings;
    let ids: Vec<String> = workload.batch.iter().map(|request| request.id.to_string()).collect();
    format!(
        "`requests` holds {requests_capacity}, `replies` holds {replies_capacity}; a batch of {} \
         request{} ({})",
        workload.batch.len(),
        if workload.batch.len() == 1 { "" } else { "s" },
        ids.join(", ")
    )
}

fn workload_holds(search: Search) -> impl Fn(&Workload, &Trace) -> Result<(), String> {
    move |workload, trace| {
        let run = workload.clone();
        story::search_schedules(VOICE, search, trace, move |story| run_workload(&run, story))
            .map(|_| ())
    }
}

const SMALL_WORKLOADS: u32 = 8;
const SMALL_SEARCH: Search = Search::Exhaustive { schedules_max: 500 };
const LARGE_WORKLOADS: u32 = 16;
const LARGE_SEARCH: Search = Search::Random { seed: 0x7265_706c, schedules: 32 };

/// No more requests than the two channels hold together, plus one.
fn within_the_buffers(both: usize) -> std::ops::RangeInclusive<usize> {
    1..=both + 1
}

/// More requests than that: up to ten more.
fn beyond_the_buffers(both: usize) -> std::ops::RangeInclusive<usize> {
    both + 2..=both + 11
}

fn small_batches(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "a batch the channels can hold is quoted whole",
        SMALL_WORKLOADS,
        workloads(within_the_buffers),
        tell,
        workload_holds(SMALL_SEARCH),
    );
    ctx.replay(format!(
        "{SMALL_WORKLOADS} generated workloads (no more requests than the channels hold, plus \
         one), each under {}",
        SMALL_SEARCH.describe()
    ));
}

fn large_batches(ctx: &mut Ctx) {
    prop::for_all(
        ctx,
        "a batch larger than the channels is quoted whole",
        LARGE_WORKLOADS,
        workloads(beyond_the_buffers),
        tell,
        workload_holds(LARGE_SEARCH),
    );
    ctx.replay(format!(
        "{LARGE_WORKLOADS} generated workloads (more requests than the channels hold), each \
         under {}",
        LARGE_SEARCH.describe()
    ));
}

#[test]
fn checks() {
    run_stages(
        "request-reply-window",
        &[
            Stage {
                id: "small-batches-quoted",
                title: "A batch that the two channels can hold is quoted whole",
                mentor: "Even a batch that the two channels can hold together did not come \
                         back as promised (every quote once, the pricer joined): the story \
                         below shows what each thread said last. Who is waiting for whom, and \
                         for what? Does the pricer wait for anything the broker will only send \
                         once it has its quotes? Is any quote thrown away on the way?",
                run: small_batches,
            },
            Stage {
                id: "large-batches-quoted",
                title: "A batch larger than both channels is quoted whole",
                mentor: "Better: small batches come back. A batch larger than the two channels \
                         did not (the story below is the smallest I found). When `requests` \
                         is full the broker waits for the pricer; when `replies` is full the \
                         pricer waits for the broker. How many unanswered requests does it \
                         take for both to be waiting at once, and does the broker ever have \
                         that many? A bigger buffer only moves the hang to a bigger batch.",
                run: large_batches,
            },
        ],
    );
}
