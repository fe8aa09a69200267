//! Checks for `queue-and-stats`: under every schedule the workers and the reporter finish,
//! every job is done exactly once, and every report is one consistent moment.
//!
//! Each stage is a property over generated workloads: 1 to 6 jobs (ids past 100, some
//! failing once or twice, so `requeue` runs), one or two workers and a reporter asking for 1
//! to 3 reports, run under shuttle: the first stage under every schedule up to a budget (a
//! depth-first search), the second under random schedules from a fixed seed. shuttle fails a
//! schedule in which every thread is blocked (a deadlock) and one that runs longer than its
//! step bound (a thread spinning on something that never comes): never a wall-clock timeout.
//! Every `Lock` says on the program's `Log` which lock a thread is about to wait for, and
//! when it holds or releases one; the checks keep, per thread, what it holds, so a deadlock
//! is told as who holds what and waits for what, and its cycle drawn, in the program's names.

use bughunt_kit::check::{run_stages, Ctx, Stage};
use bughunt_kit::explore::Search;
use bughunt_kit::prop;
use bughunt_kit::prop::proptest::{self, prelude::*};
use bughunt_kit::story::{self, Story, Voice};
use bughunt_kit::sync::Arc;
use bughunt_kit::trace::{EventKind, Trace};
use hunt::*;

/// The checks' own thread is "main"; a line is about the job it names.
const VOICE: Voice = Voice { item: "job", ..Voice::new("main") };

/// The program's log, written into `story` with what each thread holds and waits for.
fn log(story: &Story) -> Log {
    let story = story.clone();
    Log::new(move |thread, step| match step {
        Step::Waits(lock) => story.waits(thread, lock),
        Step::Holds(lock) => story.holds(thread, lock),
        Step::Releases(lock) => story.releases(thread, lock),
        Step::Says(what) => story.said(thread, what),
    })
}

/// The jobs said completed, in order.
fn completed(story: &Story) -> Vec<u64> {
    story.lines().iter().filter(|line| line.note.starts_with("completes job")).filter_map(|line| line.msg).collect()
}

/// The jobs, the workers and the reports asked for.
#[derive(Clone, Debug)]
struct Workload {
    jobs: Vec<Job>,
    workers: usize,
    reports: usize,
}

fn workloads() -> impl Strategy<Value = Workload> {
    (proptest::collection::vec(0u32..3, 1..=5), 100u64..400, 1u64..4, 1usize..=2, 1usize..=3).prop_map(
        |(failures, first, gap, workers, reports)| Workload {
            jobs: failures
                .into_iter()
                .enumerate()
                .map(|(i, failures)| Job { id: first + gap * i as u64, failures })
                .collect(),
            workers,
            reports,
        },
    )
}

fn tell(workload: &Workload) -> String {
    let jobs: Vec<String> = workload
        .jobs
        .iter()
        .map(|job| match job.failures {
            0 => job.id.to_string(),
            1 => format!("{} (fails once)", job.id),
            n => format!("{} (fails {n} times)", job.id),
        })
        .collect();
    format!(
        "job{} {}; {} worker{}; a reporter asking for {} report{}",
        if jobs.len() == 1 { "" } else { "s" },
        jobs.join(", "),
        workload.workers,
        if workload.workers == 1 { "" } else { "s" },
        workload.reports,
        if workload.reports == 1 { "" } else { "s" },
    )
}

/// Pushes the jobs, runs the workers and the reporter to the end, and returns the reports
/// and the final one.
fn run_workload(workload: &Workload, story: &Story) -> (Vec<Report>, Report) {
    let dispatcher = Arc::new(Dispatcher::new(log(story)));
    for job in &workload.jobs {
        dispatcher.push(*job);
    }
    let mut threads = Vec::new();
    for n in 1..=workload.workers {
        let dispatcher = dispatcher.clone();
        let thread = bughunt_kit::thread::Builder::new()
            .name(format!("w{n}"))
            .spawn(move || {
                work(&dispatcher);
                Vec::new()
            })
            .expect("a worker could not start");
        threads.push(thread);
    }
    let reports = workload.reports;
    let reporter = {
        let dispatcher = dispatcher.clone();
        bughunt_kit::thread::Builder::new()
            .name("reporter".into())
            .spawn(move || (0..reports).map(|_| dispatcher.report()).collect::<Vec<Report>>())
            .expect("the reporter could not start")
    };
    threads.push(reporter);
    let mut seen = Vec::new();
    for thread in threads {
        seen.extend(thread.join().expect("a thread panicked"));
    }
    story.line("main", EventKind::Note, None, "every thread has finished");
    let last = dispatcher.report();
    (seen, last)
}

/// Every job done exactly once, and the last report says so.
fn all_done(workload: &Workload, story: &Story, last: &Report) {
    let completed = completed(story);
    for job in &workload.jobs {
        match completed.iter().filter(|id| **id == job.id).count() {
            1 => {}
            0 => story.fail(None, format!("every thread finished, and job {} was never completed", job.id)),
            n => story.fail(None, format!("job {} was completed {n} times", job.id)),
        }
    }
    let jobs = workload.jobs.len() as u64;
    let retries: u64 = workload.jobs.iter().map(|job| u64::from(job.failures)).sum();
    let want = Report { backlog: 0, pushed: jobs, taken: jobs + retries, requeued: retries, done: jobs };
    if *last != want {
        story.fail(None, format!(
            "after every thread finished, the counters say {last:?}; {jobs} jobs failing {retries} \
             attempts in all make {want:?}"
        ));
    }
}

/// What is wrong with a report, if anything.
fn inconsistent(report: &Report) -> Option<String> {
    let Report { backlog, pushed, taken, requeued, done } = *report;
    if backlog as u64 + taken != pushed + requeued {
        return Some(format!(
            "a report says backlog {backlog} + taken {taken} = {}, and pushed {pushed} + requeued \
             {requeued} = {}: it read the queue and the counters at two different moments",
            backlog as u64 + taken,
            pushed + requeued
        ));
    }
    if done + requeued > taken {
        return Some(format!(
            "a report says done {done} + requeued {requeued} > taken {taken}: more jobs finished \
             than were taken"
        ));
    }
    None
}

fn finishes_holds(search: Search) -> impl Fn(&Workload, &Trace) -> Result<(), String> {
    move |workload, trace| {
        let run = workload.clone();
        story::search_schedules(VOICE, search, trace, move |story| {
            let (_, last) = run_workload(&run, story);
            all_done(&run, story, &last);
        })
        .map(|_| ())
    }
}

fn consistent_holds(search: Search) -> impl Fn(&Workload, &Trace) -> Result<(), String> {
    move |workload, trace| {
        let run = workload.clone();
        story::search_schedules(VOICE, search, trace, move |story| {
            let (reports, last) = run_workload(&run, story);
            all_done(&run, story, &last);
            for report in &reports {
                if let Some(wrong) = inconsistent(report) {
                    story.fail(None, wrong);
                }
            }
        })
        .map(|_| ())
    }
}

const FINISH_WORKLOADS: u32 = 10;
const FINISH_SEARCH: Search = Search::Random { seed: 0x6465_6164, schedules: 48 };
const CONSISTENT_WORKLOADS: u32 = 10;
const CONSISTENT_SEARCH: Search = Search::Random { seed: 0x636f_6e73, schedules: 48 };

fn every_schedule_finishes(ctx: &mut Ctx) {
    prop::for_all(ctx, "every schedule finishes, every job done once", FINISH_WORKLOADS, workloads(), tell, finishes_holds(FINISH_SEARCH));
    ctx.replay(format!("{FINISH_WORKLOADS} generated workloads, each under {}", FINISH_SEARCH.describe()));
}

fn reports_consistent(ctx: &mut Ctx) {
    prop::for_all(ctx, "every report is one consistent moment", CONSISTENT_WORKLOADS, workloads(), tell, consistent_holds(CONSISTENT_SEARCH));
    ctx.replay(format!("{CONSISTENT_WORKLOADS} generated workloads, each under {}", CONSISTENT_SEARCH.describe()));
}

#[test]
fn checks() {
    run_stages(
        "queue-and-stats",
        &[
            Stage {
                id: "every-schedule-finishes",
                title: "Under every schedule, the workers and the reporter finish, every job done once",
                mentor: "Some schedule stopped for good: the story below ends with each \
                         blocked thread, what it holds and what it waits for. Which locks does \
                         each path take, and in which order? Two paths that take the same two \
                         locks in opposite orders can each hold one and wait for the other. A \
                         helper called with a lock held takes its own locks in that order too. \
                         (A timer is no way out: these checks explore schedules, not time.)",
                run: every_schedule_finishes,
            },
            Stage {
                id: "reports-consistent",
                title: "Every report is one consistent moment of the queue and its counters",
                mentor: "No schedule hangs, and a report mixed two moments: the backlog and \
                         the counters it shows were never true together. Between the two \
                         reads (or the two writes) of that run, which thread changed the \
                         queue or the counters? What would have to be held for the report to \
                         see both at once, and in which order?",
                run: reports_consistent,
            },
        ],
    );
}
