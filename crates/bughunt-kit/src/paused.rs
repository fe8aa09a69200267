//! Async checks on paused time.
//!
//! [`block_on`] runs a future on a single-threaded tokio runtime whose clock is paused: when
//! every task is waiting on a timer, tokio jumps straight to the next deadline. A 5-second
//! shutdown bound therefore costs no real time, and a consumer that never exits shows up as
//! an instant `Elapsed` from `tokio::time::timeout` instead of a hang.

use std::future::Future;

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
pub fn tasks_alive() -> u64 {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks() as u64
}
