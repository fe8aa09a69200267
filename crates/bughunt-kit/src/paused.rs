//! Async checks on paused time.
//!
//! [`block_on`] runs a future on a single-threaded tokio runtime whose clock is paused: when
//! every task is waiting on a timer, tokio jumps straight to the next deadline. A 5-second
//! shutdown bound, or a job that takes an hour, therefore costs no real time, and a consumer
//! that never exits shows up as an instant `Elapsed` from `tokio::time::timeout` instead of a
//! hang. A fresh runtime per history is cheap (tens of microseconds), and dropping it at the
//! end drops every task a history left behind, so no history sees another's tasks.

use std::future::Future;

/// How many times [`settle`] lets every ready task run.
pub const SETTLE_YIELDS: u32 = 16;

/// Runs `future` to completion on a fresh current-thread runtime with paused time.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("bughunt-kit: could not build a tokio runtime");
    runtime.block_on(future)
}

/// Tasks spawned on the current runtime that have not finished yet.
///
/// A task counts as alive until the runtime releases it, which can be a moment after it
/// returned (after a `oneshot` reply that was its last act, say): call [`settle`] first.
pub fn tasks_alive() -> u64 {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks() as u64
}

/// Lets every task that is ready run, [`SETTLE_YIELDS`] times over, without letting the
/// paused clock move: a task that is about to return does, and a task waiting for a timer or
/// a message still waits. Then [`tasks_alive`] counts only tasks that were really left
/// running.
pub async fn settle() {
    for _ in 0..SETTLE_YIELDS {
        tokio::task::yield_now().await;
    }
}

/// [`settle`], then [`tasks_alive`].
pub async fn tasks_alive_after_settling() -> u64 {
    settle().await;
    tasks_alive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A task that has returned is not counted; one waiting on an hour-long timer is, and
    /// settling does not move the clock.
    #[test]
    fn settling_counts_only_tasks_left_running() {
        block_on(async {
            let start = tokio::time::Instant::now();
            let done = tokio::spawn(async {});
            let _waiting = tokio::spawn(tokio::time::sleep(Duration::from_secs(3_600)));
            drop(done);
            assert_eq!(tasks_alive_after_settling().await, 1);
            assert_eq!(
                start.elapsed(),
                Duration::ZERO,
                "settling never moves the clock"
            );
        });
    }
}
