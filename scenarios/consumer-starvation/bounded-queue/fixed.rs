//! A job queue between a producer and a consumer that may fall behind.
//!
//! The producer offers jobs with [`Queue::try_send`]; the consumer takes them, oldest first,
//! with [`Queue::receive`]. The queue is made for a given number of jobs, and a job it does
//! not take goes back to the producer inside [`Full`], so the producer decides what to do
//! with it: hold it, offer it again later, or report upstream that it is overloaded.

use std::collections::VecDeque;

/// One unit of work. Not `Clone`: a job is in one place at a time, queued or in the
/// producer's hands.
#[derive(Debug, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
}

/// The queue did not take the job: here it is back, untouched.
#[derive(Debug, PartialEq, Eq)]
pub struct Full(pub Job);

/// A first-in, first-out queue of jobs, made for `capacity` jobs.
#[derive(Debug)]
pub struct Queue {
    jobs: VecDeque<Job>,
    capacity: usize,
    /// Jobs taken since the queue was made, for metrics.
    accepted: usize,
}

impl Queue {
    /// An empty queue made for `capacity` jobs.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            jobs: VecDeque::with_capacity(capacity),
            capacity,
            accepted: 0,
        }
    }

    /// Offers a job to the queue.
    pub fn try_send(&mut self, job: Job) -> Result<(), Full> {
        //~ site: unbounded-send
        // FIX: `VecDeque::with_capacity` only preallocates: the deque grows past it without a
        // word, so nothing bounded this queue. The bound is checked here, before the push.
        if self.is_full() {
            // FIX: refuse, and hand the same job back. Returning Ok and dropping it (or evicting
            // the oldest) would hide the overload from the one party who can act on it: the
            // producer, who must now hold the job, slow down, and offer it again later.
            return Err(Full(job));
        }
        //~ broken:
        //~ end
        self.jobs.push_back(job);
        self.accepted += 1;
        Ok(())
    }

    /// Whether the queue has no room left for another job.
    pub fn is_full(&self) -> bool {
        //~ site: bound-total-sends
        // FIX: what fills the queue is the jobs waiting now (its depth), not `accepted`, which
        // only ever grows: room must come back as the consumer takes jobs.
        let used = self.jobs.len();
        //~ broken:
        //~ let used = self.accepted;
        //~ end
        //~ site: off-by-one-bound
        // FIX: `>=`: a queue made for `capacity` jobs is full once it holds that many. `>`
        // would take one job more than it was made for before it ever said no.
        used >= self.capacity
        //~ broken:
        //~ used > self.capacity
        //~ end
    }

    /// Takes the oldest waiting job, if there is one.
    pub fn receive(&mut self) -> Option<Job> {
        self.jobs.pop_front()
    }

    /// How many jobs are waiting now.
    pub fn depth(&self) -> usize {
        self.jobs.len()
    }

    /// How many jobs the queue was made for.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many jobs the queue has taken since it was made.
    pub fn accepted(&self) -> usize {
        self.accepted
    }
}
