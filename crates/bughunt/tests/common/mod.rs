//! What more than one end-to-end test needs.

use std::time::{Duration, Instant};

/// How often a bounded wait looks again.
pub const POLL: Duration = Duration::from_millis(100);

/// Looks with `probe` every [`POLL`] until it finds something, for at most `bound`; fails
/// the test, naming `what`, when the bound passes. For what another process does in its own
/// time (a screen, a log file), which a test can only look at.
pub fn wait_for<T>(what: &str, bound: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {bound:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}
