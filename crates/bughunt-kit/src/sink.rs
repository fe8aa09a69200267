//! A sink for async consumers: processing that takes (paused) time and is watched.
//!
//! Shutdown checks must know whether a job was *in flight* when shutdown came: started and
//! not finished. A consumer calls [`Sink::process`] for each job; the sink records the start,
//! waits the job's work time on tokio's clock (paused in checks, so no real time passes), and
//! records the end. A job started and never finished was cut off mid-work. Work times can
//! differ job by job ([`Sink::with_work_times`]): a slow downstream is rarely evenly slow.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::trace::{EventKind, Trace};

/// Where consumers put their work. Clones share the record.
#[derive(Clone, Debug)]
pub struct Sink {
    trace: Trace,
    /// Who is drawn handing work to the sink.
    actor: String,
    /// Event times are tokio time since the sink was made (paused time in checks).
    epoch: tokio::time::Instant,
    /// Work time of a job not listed in `work_ms_of`.
    work: Duration,
    work_ms_of: Arc<BTreeMap<u64, u64>>,
    record: Arc<Mutex<Record>>,
}

/// One job's work in the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    pub job: u64,
    /// Who handed it over (see [`Sink::with_actor`]).
    pub actor: String,
    /// Since the sink was made, in ms of tokio time.
    pub started_ms: u64,
    /// None: not finished (yet, or ever: cut off).
    pub finished_ms: Option<u64>,
    /// How long it needs.
    pub work_ms: u64,
}

#[derive(Debug, Default)]
struct Record {
    /// In the order the work started.
    works: Vec<Work>,
    /// Jobs in the order they finished.
    finished: Vec<u64>,
}

impl Sink {
    /// A sink whose every job takes `work_ms` of tokio time, recording into `trace`.
    pub fn new(trace: Trace, work_ms: u64) -> Self {
        Self::with_work_times(trace, work_ms, [])
    }

    /// A sink where job `id` takes the time `work_ms` lists for it, and any other job
    /// `default_work_ms`.
    pub fn with_work_times(
        trace: Trace,
        default_work_ms: u64,
        work_ms: impl IntoIterator<Item = (u64, u64)>,
    ) -> Self {
        // Its times count from its making on the runtime's clock. Outside a runtime that is
        // the real clock, and the real time until the runtime starts would creep into every
        // time the sink records: a run would differ from the next.
        assert!(
            tokio::runtime::Handle::try_current().is_ok(),
            "bughunt-kit: make a Sink inside the runtime whose time it measures (inside \
             paused::block_on), not before it"
        );
        Self {
            trace,
            epoch: tokio::time::Instant::now(),
            actor: "consumer".to_owned(),
            work: Duration::from_millis(default_work_ms),
            work_ms_of: Arc::new(work_ms.into_iter().collect()),
            record: Arc::default(),
        }
    }

    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The same sink (same record, same trace), drawn as used by `actor`: give each consumer
    /// its own, so the drawing and [`Sink::works`] say which one worked.
    pub fn with_actor(&self, actor: impl Into<String>) -> Sink {
        Sink {
            actor: actor.into(),
            ..self.clone()
        }
    }

    /// Milliseconds of tokio time since the sink was made.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn stamp(&self) -> u64 {
        let now_ms = self.now_ms();
        self.trace.set_time_ms(now_ms);
        now_ms
    }

    /// How long job `job` takes.
    pub fn work_of(&self, job: u64) -> Duration {
        self.work_ms_of
            .get(&job)
            .map_or(self.work, |ms| Duration::from_millis(*ms))
    }

    /// Does the work for job `job`: takes its work time and records start and end.
    pub async fn process(&self, job: u64) {
        let work = self.work_of(job);
        let started_ms = self.stamp();
        let index = {
            let mut record = self.record();
            record.works.push(Work {
                job,
                actor: self.actor.clone(),
                started_ms,
                finished_ms: None,
                work_ms: work.as_millis() as u64,
            });
            record.works.len() - 1
        };
        self.trace
            .event(self.actor.clone(), EventKind::Deliver)
            .to("sink")
            .msg(job)
            .note(format!("work starts ({} ms)", work.as_millis()))
            .record();
        tokio::time::sleep(work).await;
        let finished_ms = self.stamp();
        {
            let mut record = self.record();
            record.works[index].finished_ms = Some(finished_ms);
            record.finished.push(job);
        }
        self.trace
            .event("sink", EventKind::Process)
            .msg(job)
            .note("work done")
            .record();
    }

    /// Every job's work, in the order it started.
    pub fn works(&self) -> Vec<Work> {
        self.record().works.clone()
    }

    /// Jobs whose work started, in order.
    pub fn started(&self) -> Vec<u64> {
        self.record().works.iter().map(|work| work.job).collect()
    }

    /// Jobs whose work finished, in order.
    pub fn finished(&self) -> Vec<u64> {
        self.record().finished.clone()
    }

    /// Jobs started and not finished: cut off mid-work, or still at it.
    pub fn cut_off(&self) -> Vec<u64> {
        self.record()
            .works
            .iter()
            .filter(|work| work.finished_ms.is_none())
            .map(|work| work.job)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work takes paused time; a job aborted mid-work shows as cut off.
    #[test]
    fn records_start_and_end() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let trace = Trace::new();
            let sink = Sink::new(trace.clone(), 50);
            let start = tokio::time::Instant::now();
            sink.process(1).await;
            assert_eq!(start.elapsed(), Duration::from_millis(50));
            let stamps: Vec<u64> = trace.events().iter().map(|e| e.at_ms).collect();
            assert_eq!(stamps, vec![0, 50], "events carry the sink's own time");
            let worker = sink.clone();
            let task = tokio::spawn(async move { worker.process(2).await });
            tokio::time::sleep(Duration::from_millis(10)).await;
            task.abort();
            let _ = task.await;
            assert_eq!(sink.finished(), vec![1]);
            assert_eq!(sink.cut_off(), vec![2]);
        });
    }

    /// A sink made before its runtime would count real time: it is refused, in words.
    #[test]
    fn a_sink_outside_a_runtime_is_refused() {
        let made = std::panic::catch_unwind(|| Sink::new(Trace::new(), 5));
        let text = crate::check::panic_text(made.expect_err("refused").as_ref());
        assert!(text.contains("inside the runtime"), "{text}");
    }

    /// Each job takes its own time, and the record says who worked on it and when.
    #[test]
    fn uneven_work_times() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let sink = Sink::with_work_times(Trace::new(), 5, [(7, 3_600_000)]).with_actor("c2");
            sink.process(1).await;
            sink.process(7).await;
            let works = sink.works();
            assert_eq!(works[0].finished_ms, Some(5));
            assert_eq!(works[1].started_ms, 5);
            assert_eq!(works[1].finished_ms, Some(3_600_005));
            assert_eq!(works[1].actor, "c2");
        });
    }
}
