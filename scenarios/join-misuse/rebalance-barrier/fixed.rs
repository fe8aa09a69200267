//! A consumer group's rebalance: every consumer hands back its partitions, and only then does
//! the new generation start.
//!
//! `rebalance` starts one thread per consumer. Each consumer revokes its partitions (commits
//! the offsets it has processed) and files a [`Report`], then meets the others and the
//! coordinator (the thread that called `rebalance`) at the `revoked` barrier. Past the
//! barrier, each consumer would fetch from its new partitions and the coordinator commits the
//! new generation: if any consumer were still holding its old partitions at that moment, two
//! consumers would process the same partition at once.
//!
//! `rebalance` promises, for every plan and every schedule of its threads:
//! - every thread, consumers and coordinator, leaves the barrier, and `rebalance` returns
//!   with no thread left running;
//! - at the moment each thread leaves the barrier, every consumer has filed its report
//!   (what each thread saw is in [`Outcome::seen`]);
//! - a consumer whose revoke fails still reports (as failed) and still meets the others at
//!   the barrier, and `rebalance` returns `Err` with every failed consumer's name instead of
//!   a new generation.
//!
//! Before each call that can block, a thread says on the [`Log`] what it is about to wait
//! for, as a service writes a debug line: when a run hangs, the last line of each thread says
//! where it stopped.
//!
//! Where it comes from: Kafka's consumer-group protocol has every member rejoin (after
//! revoking its partitions) before the leader assigns the next generation; Go's
//! `sync.WaitGroup` misuse (an `Add` that counts the wrong number of `Done`s) is a classic
//! blocking bug in Tu et al., "Understanding Real-World Concurrency Bugs in Go" (ASPLOS 2019).

//~ region
use bughunt_kit::sync::{Arc, Barrier, Mutex};
//~ wrong: std-barrier
//~ // std's barrier: the same API, nothing to learn.
//~ use bughunt_kit::sync::{Arc, Mutex};
//~ use std::sync::Barrier;
//~ wrong: latch-notify-one
//~ use bughunt_kit::sync::{Arc, Condvar, Mutex};
//~ alt: condvar-latch
//~ use bughunt_kit::sync::{Arc, Condvar, Mutex};
//~ alt: go-channels
//~ use bughunt_kit::sync::mpsc::{channel, Sender};
//~ use bughunt_kit::sync::{Arc, Mutex};
//~ wrong: spin-on-reports
//~ use bughunt_kit::sync::{Arc, Mutex};
//~ end
use bughunt_kit::thread::{self, JoinHandle};

/// The thread that calls `rebalance`, as the log names it.
pub const COORDINATOR: &str = "coordinator";

/// The name of consumer `index` (0-based): c1, c2, ...
pub fn consumer_name(index: usize) -> String {
    format!("c{}", index + 1)
}

/// What a consumer's revoke does in this rebalance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoke {
    /// It commits its offsets and hands its partitions back.
    Commits,
    /// Its offset commit fails (the broker is unreachable).
    Fails,
}

/// What a consumer filed before the barrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub consumer: String,
    pub revoked: bool,
}

/// What one thread saw the moment it left the barrier: how many reports had been filed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub thread: String,
    pub reports: usize,
}

/// What a rebalance did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// One entry per thread (every consumer and the coordinator), in the order they left.
    pub seen: Vec<Seen>,
    /// The new generation, or the names of the consumers whose revoke failed.
    pub result: Result<u64, Vec<String>>,
}

/// Where each thread says what it is about to wait for, before every call that can block.
/// A service would write these lines to its debug log; the checks draw them.
#[derive(Clone)]
pub struct Log {
    line: Arc<dyn Fn(&str, String) + Send + Sync>,
}

impl Log {
    pub fn new(line: impl Fn(&str, String) + Send + Sync + 'static) -> Log {
        Log { line: Arc::new(line) }
    }

    /// A log that writes nowhere.
    pub fn quiet() -> Log {
        Log::new(|_, _| {})
    }

    pub fn line(&self, thread: &str, what: String) {
        (self.line)(thread, what)
    }
}

/// Rebalances a group of `plan.len()` consumers (consumer `i` revokes as `plan[i]` says) from
/// `generation` to the next one.
pub fn rebalance(plan: &[Revoke], generation: u64, log: &Log) -> Outcome {
    let consumers = plan.len();
    let reports: Arc<Mutex<Vec<Report>>> = Arc::new(Mutex::new(Vec::new()));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    //~ site: barrier-size
    // FIX: the coordinator waits at the barrier too, so it counts as one of its parties.
    let barrier = Arc::new(Barrier::new(consumers + 1));
    //~ broken:
    //~ // One party per consumer.
    //~ let barrier = Arc::new(Barrier::new(consumers));
    //~ wrong: coordinator-skips-barrier
    //~ // One party per consumer: the coordinator reads the reports instead of waiting.
    //~ let barrier = Arc::new(Barrier::new(consumers));
    //~ alt: coordinator-joins-instead
    //~ // The consumers meet among themselves; the coordinator joins them instead.
    //~ let barrier = Arc::new(Barrier::new(consumers));
    //~ wrong: latch-notify-one
    //~ let barrier = Arc::new(Latch::new(consumers + 1));
    //~ alt: condvar-latch
    //~ let barrier = Arc::new(Latch::new(consumers + 1));
    //~ alt: go-channels
    //~ let (arrived_tx, arrived) = channel::<()>();
    //~ let mut go_senders: Vec<Sender<()>> = Vec::new();
    //~ wrong: spin-on-reports
    //~ // Nothing to meet at: the coordinator watches the reports come in.
    //~ end
    let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(consumers);
    for (index, revoke) in plan.iter().copied().enumerate() {
        let name = consumer_name(index);
        let reports = reports.clone();
        let seen = seen.clone();
        let log = log.clone();
        //~ region
        let barrier = barrier.clone();
        //~ alt: go-channels
        //~ let arrived_tx = arrived_tx.clone();
        //~ let (go_tx, go) = channel::<()>();
        //~ go_senders.push(go_tx);
        //~ wrong: spin-on-reports
        //~ end
        let consumer = move || {
            log.line(&name, "revokes its partitions (commits its offsets)".into());
            let revoked = revoke == Revoke::Commits;
            //~ site: fail-before-barrier
            // FIX: a failed revoke is reported too, and the consumer still meets the others.
            reports.lock().unwrap().push(Report { consumer: name.clone(), revoked });
            //~ broken:
            //~ if !revoked {
            //~     // Nothing was handed back, so there is nothing to wait for: leave the group.
            //~     log.line(&name, "its revoke failed: leaves the group".into());
            //~     return;
            //~ }
            //~ reports.lock().unwrap().push(Report { consumer: name.clone(), revoked });
            //~ wrong: failure-reported-after-barrier
            //~ if revoked {
            //~     reports.lock().unwrap().push(Report { consumer: name.clone(), revoked });
            //~ }
            //~ wrong: revoke-after-wait
            //~ // Reported after the barrier (see below).
            //~ end
            //~ region
            log.line(&name, "waits at the `revoked` barrier".into());
            barrier.wait();
            //~ alt: go-channels
            //~ log.line(&name, "waits for the coordinator's go on its `go` channel".into());
            //~ arrived_tx.send(()).expect("the coordinator is gone");
            //~ go.recv().expect("the coordinator is gone");
            //~ wrong: spin-on-reports
            //~ // Reported: the coordinator will see it; nothing to wait for here.
            //~ end
            //~ region
            //~ wrong: failure-reported-after-barrier
            //~ if !revoked {
            //~     // Tell the coordinator only once everyone has met.
            //~     reports.lock().unwrap().push(Report { consumer: name.clone(), revoked });
            //~ }
            //~ wrong: revoke-after-wait
            //~ // Everyone is here: hand the partitions back now.
            //~ reports.lock().unwrap().push(Report { consumer: name.clone(), revoked });
            //~ end
            let filed = reports.lock().unwrap().len();
            seen.lock().unwrap().push(Seen { thread: name.clone(), reports: filed });
            log.line(&name, format!("left the barrier: {filed} reports filed"));
        };
        handles.push(
            thread::Builder::new()
                .name(consumer_name(index))
                .spawn(consumer)
                .expect("a consumer thread could not start"),
        );
    }
    //~ site: coordinator-waits
    log.line(COORDINATOR, "waits at the `revoked` barrier".into());
    barrier.wait();
    //~ broken:
    //~ // The coordinator only reads the reports; the consumers meet at the barrier.
    //~ for handle in handles.drain(..) {
    //~     log.line(COORDINATOR, "waits for a consumer to finish (join)".into());
    //~     handle.join().expect("a consumer panicked");
    //~ }
    //~ wrong: coordinator-skips-barrier
    //~ // The consumers meet at the barrier; the coordinator starts on the reports meanwhile.
    //~ alt: coordinator-joins-instead
    //~ for handle in handles.drain(..) {
    //~     log.line(COORDINATOR, "waits for a consumer to finish (join)".into());
    //~     handle.join().expect("a consumer panicked");
    //~ }
    //~ alt: go-channels
    //~ for _ in 0..consumers {
    //~     log.line(COORDINATOR, "waits for a consumer's arrival on `arrived`".into());
    //~     arrived.recv().expect("a consumer is gone");
    //~ }
    //~ wrong: spin-on-reports
    //~ log.line(COORDINATOR, "watches the reports until every consumer has filed one".into());
    //~ while reports.lock().unwrap().len() < consumers {
    //~     thread::yield_now();
    //~ }
    //~ end
    let filed = reports.lock().unwrap().len();
    seen.lock().unwrap().push(Seen { thread: COORDINATOR.into(), reports: filed });
    log.line(COORDINATOR, format!("left the barrier: {filed} reports filed"));
    //~ region
    //~ alt: go-channels
    //~ for go_tx in go_senders {
    //~     go_tx.send(()).expect("a consumer is gone");
    //~ }
    //~ end
    for handle in handles {
        log.line(COORDINATOR, "waits for a consumer to finish (join)".into());
        handle.join().expect("a consumer panicked");
    }
    let failed: Vec<String> = reports
        .lock()
        .unwrap()
        .iter()
        .filter(|report| !report.revoked)
        .map(|report| report.consumer.clone())
        .collect();
    let seen = seen.lock().unwrap().clone();
    let result = if failed.is_empty() { Ok(generation + 1) } else { Err(failed) };
    Outcome { seen, result }
}

//~ region
//~ wrong: latch-notify-one
//~ /// A barrier of our own: a count of arrivals under a lock, and a condition to wait on.
//~ struct Latch {
//~     parties: usize,
//~     arrived: Mutex<usize>,
//~     opened: Condvar,
//~ }
//~
//~ impl Latch {
//~     fn new(parties: usize) -> Latch {
//~         Latch { parties, arrived: Mutex::new(0), opened: Condvar::new() }
//~     }
//~
//~     fn wait(&self) {
//~         let mut arrived = self.arrived.lock().unwrap();
//~         *arrived += 1;
//~         if *arrived == self.parties {
//~             // The last one in wakes the one waiting.
//~             self.opened.notify_one();
//~             return;
//~         }
//~         while *arrived < self.parties {
//~             arrived = self.opened.wait(arrived).unwrap();
//~         }
//~     }
//~ }
//~ alt: condvar-latch
//~ /// A barrier of our own: a count of arrivals under a lock, and a condition to wait on.
//~ struct Latch {
//~     parties: usize,
//~     arrived: Mutex<usize>,
//~     opened: Condvar,
//~ }
//~
//~ impl Latch {
//~     fn new(parties: usize) -> Latch {
//~         Latch { parties, arrived: Mutex::new(0), opened: Condvar::new() }
//~     }
//~
//~     fn wait(&self) {
//~         let mut arrived = self.arrived.lock().unwrap();
//~         *arrived += 1;
//~         if *arrived == self.parties {
//~             self.opened.notify_all();
//~             return;
//~         }
//~         while *arrived < self.parties {
//~             arrived = self.opened.wait(arrived).unwrap();
//~         }
//~     }
//~ }
//~ end
