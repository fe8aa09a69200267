//! A sink for async consumers: processing that takes (paused) time and is watched.
//!
//! Shutdown checks must know whether a job was *in flight* when shutdown came: started and
//! not finished. A consumer calls [`Sink::process`] for each job; the sink records the start,
//! waits its work time on tokio's clock (paused in checks, so no real time passes), and
//! records the end. A job started and never finished was cut off mid-work.

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
    work: Duration,
    record: Arc<Mutex<Record>>,
}

#[derive(Debug, Default)]
struct Record {
    started: Vec<u64>,
    finished: Vec<u64>,
}

impl Sink {
    /// A sink whose every job takes `work_ms` of tokio time, recording into `trace`.
    pub fn new(trace: Trace, work_ms: u64) -> Self {
        Self {
            trace,
            epoch: tokio::time::Instant::now(),
            actor: "consumer".to_owned(),
            work: Duration::from_millis(work_ms),
            record: Arc::default(),
        }
    }

    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The same sink (same record, same trace), drawn as used by `actor`: give each consumer
    /// of a demo its own, so the drawing says which one worked.
    pub fn with_actor(&self, actor: impl Into<String>) -> Sink {
        Sink {
            actor: actor.into(),
            ..self.clone()
        }
    }

    fn stamp(&self) {
        self.trace
            .set_time_ms(self.epoch.elapsed().as_millis() as u64);
    }

    /// Does the work for job `job`: takes the sink's work time and records start and end.
    pub async fn process(&self, job: u64) {
        self.record().started.push(job);
        self.stamp();
        self.trace
            .event(self.actor.clone(), EventKind::Deliver)
            .to("sink")
            .msg(job)
            .note("work starts")
            .record();
        tokio::time::sleep(self.work).await;
        self.record().finished.push(job);
        self.stamp();
        self.trace
            .event("sink", EventKind::Process)
            .msg(job)
            .note("work done")
            .record();
    }

    /// Jobs whose work started, in order.
    pub fn started(&self) -> Vec<u64> {
        self.record().started.clone()
    }

    /// Jobs whose work finished, in order.
    pub fn finished(&self) -> Vec<u64> {
        self.record().finished.clone()
    }

    /// Jobs started and never finished: cut off mid-work.
    pub fn cut_off(&self) -> Vec<u64> {
        let record = self.record();
        record
            .started
            .iter()
            .filter(|job| !record.finished.contains(job))
            .copied()
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
}
