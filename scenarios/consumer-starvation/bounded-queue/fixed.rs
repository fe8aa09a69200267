//! A job queue between producers and consumers that may fall behind.
//!
//! Producers offer jobs with [`Queue::try_send`]; consumers take them, oldest first, with
//! [`Queue::receive`]. The queue is made for a given number of jobs, and a job it does not
//! take goes back to the producer inside [`Full`], so the producer decides what to do with
//! it: hold it, offer it again later, or report upstream that it is overloaded.
//!
//! The promises, for any capacity and any mix of offers and receives:
//! - at most `capacity` jobs ever wait in the queue ([`Queue::depth`] never exceeds it);
//! - `try_send` takes the job if, and only if, fewer than `capacity` jobs are waiting; if it
//!   does not, it hands back that same job in `Err(Full(job))`;
//! - every job taken is handed out by `receive` exactly once, oldest first: nothing the
//!   queue said Ok to is dropped, evicted or swapped for another.

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
    //~ region
    jobs: VecDeque<Job>,
    capacity: usize,
    /// Jobs taken since the queue was made, for metrics.
    accepted: usize,
    //~ wrong: power-of-two-ring
    //~ /// A ring of `capacity` rounded up to a power of two, so a mask replaces `%`.
    //~ slots: Vec<Option<Job>>,
    //~ head: usize,
    //~ len: usize,
    //~ capacity: usize,
    //~ accepted: usize,
    //~ wrong: ring-wastes-a-slot
    //~ /// A ring with a head and a tail: empty when they meet.
    //~ slots: Vec<Option<Job>>,
    //~ head: usize,
    //~ tail: usize,
    //~ capacity: usize,
    //~ accepted: usize,
    //~ alt: ring-buffer-head-len
    //~ /// Exactly `capacity` slots; the waiting jobs are the `len` slots from `head` on.
    //~ slots: Vec<Option<Job>>,
    //~ head: usize,
    //~ len: usize,
    //~ capacity: usize,
    //~ accepted: usize,
    //~ alt: two-stacks
    //~ /// New jobs pile onto `inbox`; `outbox` holds them reversed, oldest on top.
    //~ inbox: Vec<Job>,
    //~ outbox: Vec<Job>,
    //~ capacity: usize,
    //~ accepted: usize,
    //~ alt: free-slot-permits
    //~ jobs: VecDeque<Job>,
    //~ capacity: usize,
    //~ accepted: usize,
    //~ /// Places left: a send takes one, a receive gives one back.
    //~ free: usize,
    //~ wrong: permit-back-on-empty-receive
    //~ jobs: VecDeque<Job>,
    //~ capacity: usize,
    //~ accepted: usize,
    //~ /// Places left: a send takes one, a receive gives one back.
    //~ free: usize,
    //~ end
}

impl Queue {
    /// An empty queue made for `capacity` jobs.
    pub fn with_capacity(capacity: usize) -> Self {
        //~ region
        Self {
            jobs: VecDeque::with_capacity(capacity),
            capacity,
            accepted: 0,
        }
        //~ wrong: power-of-two-ring
        //~ let slots = capacity.max(1).next_power_of_two();
        //~ Self {
        //~     slots: (0..slots).map(|_| None).collect(),
        //~     head: 0,
        //~     len: 0,
        //~     capacity,
        //~     accepted: 0,
        //~ }
        //~ wrong: ring-wastes-a-slot
        //~ Self {
        //~     slots: (0..capacity.max(1)).map(|_| None).collect(),
        //~     head: 0,
        //~     tail: 0,
        //~     capacity,
        //~     accepted: 0,
        //~ }
        //~ alt: ring-buffer-head-len
        //~ Self {
        //~     slots: (0..capacity).map(|_| None).collect(),
        //~     head: 0,
        //~     len: 0,
        //~     capacity,
        //~     accepted: 0,
        //~ }
        //~ alt: two-stacks
        //~ Self {
        //~     inbox: Vec::new(),
        //~     outbox: Vec::new(),
        //~     capacity,
        //~     accepted: 0,
        //~ }
        //~ alt: free-slot-permits
        //~ Self {
        //~     jobs: VecDeque::new(),
        //~     capacity,
        //~     accepted: 0,
        //~     free: capacity,
        //~ }
        //~ wrong: permit-back-on-empty-receive
        //~ Self {
        //~     jobs: VecDeque::new(),
        //~     capacity,
        //~     accepted: 0,
        //~     free: capacity,
        //~ }
        //~ end
    }

    /// Offers a job to the queue: `Ok` if it took it, else the same job back in `Full`.
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
        //~ wrong: off-by-one
        //~ if self.jobs.len() > self.capacity {
        //~     return Err(Full(job));
        //~ }
        //~ wrong: bound-total-sends
        //~ // Refuse once the queue has taken as many jobs as it was made for.
        //~ if self.accepted >= self.capacity {
        //~     return Err(Full(job));
        //~ }
        //~ wrong: drop-when-full
        //~ // The queue is full: skip the job so memory stays bounded.
        //~ if self.jobs.len() >= self.capacity {
        //~     return Ok(());
        //~ }
        //~ wrong: drop-oldest
        //~ // The queue is full: make room by dropping the oldest job, the newest matters most.
        //~ if self.jobs.len() >= self.capacity {
        //~     self.jobs.pop_front();
        //~ }
        //~ wrong: swap-out-oldest
        //~ // The queue is full: the newest job matters most, so it goes in, and the producer
        //~ // gets the oldest back to retry. Nothing is lost, and the depth stays bounded.
        //~ if self.is_full() {
        //~     if let Some(oldest) = self.jobs.pop_front() {
        //~         self.jobs.push_back(job);
        //~         return Err(Full(oldest));
        //~     }
        //~     return Err(Full(job));
        //~ }
        //~ alt: free-slot-permits
        //~ let Some(left) = self.free.checked_sub(1) else {
        //~     return Err(Full(job));
        //~ };
        //~ self.free = left;
        //~ wrong: permit-back-on-empty-receive
        //~ let Some(left) = self.free.checked_sub(1) else {
        //~     return Err(Full(job));
        //~ };
        //~ self.free = left;
        //~ end
        //~ region
        self.jobs.push_back(job);
        self.accepted += 1;
        Ok(())
        //~ wrong: power-of-two-ring
        //~ let mask = self.slots.len() - 1;
        //~ self.slots[(self.head + self.len) & mask] = Some(job);
        //~ self.len += 1;
        //~ self.accepted += 1;
        //~ Ok(())
        //~ wrong: ring-wastes-a-slot
        //~ self.slots[self.tail] = Some(job);
        //~ self.tail = (self.tail + 1) % self.slots.len();
        //~ self.accepted += 1;
        //~ Ok(())
        //~ alt: ring-buffer-head-len
        //~ let tail = (self.head + self.len) % self.capacity;
        //~ self.slots[tail] = Some(job);
        //~ self.len += 1;
        //~ self.accepted += 1;
        //~ Ok(())
        //~ alt: two-stacks
        //~ self.inbox.push(job);
        //~ self.accepted += 1;
        //~ Ok(())
        //~ end
    }

    /// Whether the queue has no room left for another job.
    pub fn is_full(&self) -> bool {
        //~ site: bound-total-sends
        // FIX: what fills the queue is the jobs waiting now (its depth), not `accepted`, which
        // only ever grows: room must come back as the consumer takes jobs.
        let used = self.jobs.len();
        //~ broken:
        //~ let used = self.accepted;
        //~ wrong: power-of-two-ring
        //~ let used = self.len;
        //~ wrong: ring-wastes-a-slot
        //~ let used = self.depth();
        //~ alt: ring-buffer-head-len
        //~ let used = self.len;
        //~ alt: two-stacks
        //~ let used = self.inbox.len() + self.outbox.len();
        //~ alt: free-slot-permits
        //~ let used = self.capacity - self.free;
        //~ wrong: permit-back-on-empty-receive
        //~ let used = self.capacity.saturating_sub(self.free);
        //~ end
        //~ site: off-by-one-bound
        // FIX: `>=`: a queue made for `capacity` jobs is full once it holds that many. `>`
        // would take one job more than it was made for before it ever said no.
        used >= self.capacity
        //~ broken:
        //~ used > self.capacity
        //~ wrong: power-of-two-ring
        //~ // Full when every slot of the ring is taken.
        //~ used >= self.slots.len()
        //~ wrong: ring-wastes-a-slot
        //~ // One slot always stays free: with head == tail for both full and empty, a full
        //~ // ring would look empty.
        //~ used + 1 >= self.slots.len()
        //~ end
    }

    /// Takes the oldest waiting job, if there is one.
    pub fn receive(&mut self) -> Option<Job> {
        //~ region
        self.jobs.pop_front()
        //~ wrong: power-of-two-ring
        //~ if self.len == 0 {
        //~     return None;
        //~ }
        //~ let job = self.slots[self.head].take();
        //~ self.head = (self.head + 1) & (self.slots.len() - 1);
        //~ self.len -= 1;
        //~ job
        //~ wrong: ring-wastes-a-slot
        //~ if self.head == self.tail {
        //~     return None;
        //~ }
        //~ let job = self.slots[self.head].take();
        //~ self.head = (self.head + 1) % self.slots.len();
        //~ job
        //~ alt: ring-buffer-head-len
        //~ if self.len == 0 {
        //~     return None;
        //~ }
        //~ let job = self.slots[self.head].take();
        //~ self.head = (self.head + 1) % self.capacity;
        //~ self.len -= 1;
        //~ job
        //~ alt: two-stacks
        //~ if self.outbox.is_empty() {
        //~     while let Some(job) = self.inbox.pop() {
        //~         self.outbox.push(job);
        //~     }
        //~ }
        //~ self.outbox.pop()
        //~ alt: free-slot-permits
        //~ let job = self.jobs.pop_front()?;
        //~ self.free += 1;
        //~ Some(job)
        //~ wrong: permit-back-on-empty-receive
        //~ // A receive frees a place for the next send.
        //~ self.free += 1;
        //~ self.jobs.pop_front()
        //~ end
    }

    /// How many jobs are waiting now.
    pub fn depth(&self) -> usize {
        //~ region
        self.jobs.len()
        //~ wrong: power-of-two-ring
        //~ self.len
        //~ wrong: ring-wastes-a-slot
        //~ (self.tail + self.slots.len() - self.head) % self.slots.len()
        //~ alt: ring-buffer-head-len
        //~ self.len
        //~ alt: two-stacks
        //~ self.inbox.len() + self.outbox.len()
        //~ end
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
