//! A search front-end's fan-out: one fetch per shard, all at once, and every answer collected.
//!
//! `gather` spawns one task per shard on the current tokio runtime and collects what each
//! returns: a page of results, or the error its shard gave.
//!
//! `gather` promises, for every set of shards:
//! - every shard is answered exactly once in what it returns: its page, or its error (an
//!   error is reported, never dropped, and never stops the others being collected);
//! - the fetches run at the same time: `gather` returns as soon as the slowest one is done,
//!   not after the sum of their times;
//! - no task it spawned is still alive when it returns.
//!
//! Where it comes from: moby/moby pull request #25384 (a GoKer kernel): `wg.Wait()` called
//! inside the loop that starts the goroutines, which there hung; waiting for one task at a
//! time inside the loop serialises the fan-out instead. Dropped `JoinHandle`s and early
//! returns are the Rust forms of the goroutine nobody waits for.

use std::time::Duration;

//~ region
use tokio::task::JoinSet;
//~ alt: vec-of-handles
//~ use tokio::task::JoinHandle;
//~ alt: channel-by-count
//~ use tokio::sync::mpsc;
//~ alt: file-inside-each-task
//~ use std::sync::{Arc, Mutex};
//~ use tokio::task::JoinSet;
//~ wrong: per-handle-timeout
//~ use tokio::task::JoinHandle;
//~ use tokio::time::timeout;
//~ wrong: vec-handles-return-on-error
//~ use tokio::task::JoinHandle;
//~ wrong: semaphore-of-two
//~ use std::sync::Arc;
//~ use tokio::sync::Semaphore;
//~ use tokio::task::JoinSet;
//~ alt: channel-until-closed
//~ use tokio::sync::mpsc;
//~ wrong: sender-kept-open
//~ use tokio::sync::mpsc;
//~ end

/// One shard to ask, as the cluster map describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub id: u64,
    /// How long this shard takes to answer.
    pub work_ms: u64,
    /// Whether this shard answers with an error.
    pub fails: bool,
}

/// A shard's page of results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub shard: u64,
    pub hits: u64,
}

/// A shard that answered with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchError {
    pub shard: u64,
}

/// What a fan-out collected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gathered {
    pub pages: Vec<Page>,
    pub errors: Vec<FetchError>,
}

/// The hits a shard reports: pure, so a test can say what every page must hold.
pub fn hits_of(shard: u64) -> u64 {
    shard.wrapping_mul(7_919) % 1_000
}

/// Asks one shard; takes the shard's `work_ms`.
pub async fn fetch(shard: Shard) -> Result<Page, FetchError> {
    tokio::time::sleep(Duration::from_millis(shard.work_ms)).await;
    if shard.fails {
        Err(FetchError { shard: shard.id })
    } else {
        Ok(Page { shard: shard.id, hits: hits_of(shard.id) })
    }
}

/// Asks every shard at once and returns every answer.
pub async fn gather(shards: Vec<Shard>) -> Gathered {
    let mut gathered = Gathered::default();
    //~ region
    //~ wrong: progress-ticker-left-running
    //~ // Operators like to see a slow fan-out making progress.
    //~ let expected = shards.len();
    //~ tokio::spawn(async move {
    //~     loop {
    //~         tokio::time::sleep(Duration::from_millis(250)).await;
    //~         let _still_out = expected;
    //~     }
    //~ });
    //~ end
    //~ site: join-inside-loop
    let mut fetches = JoinSet::new();
    for shard in shards {
        fetches.spawn(fetch(shard));
    }
    //~ broken:
    //~ let mut fetches = JoinSet::new();
    //~ for shard in shards {
    //~     fetches.spawn(fetch(shard));
    //~     // Collect as we go, so the set never grows.
    //~     if let Some(answer) = fetches.join_next().await {
    //~         file(&mut gathered, answer.expect("a fetch panicked"));
    //~     }
    //~ }
    //~ wrong: chunks-of-two
    //~ let mut fetches = JoinSet::new();
    //~ for chunk in shards.chunks(2) {
    //~     // Two at a time, so the backend is never flooded.
    //~     for shard in chunk {
    //~         fetches.spawn(fetch(*shard));
    //~     }
    //~     while let Some(answer) = fetches.join_next().await {
    //~         file(&mut gathered, answer.expect("a fetch panicked"));
    //~     }
    //~ }
    //~ wrong: semaphore-of-two
    //~ // At most two fetches at a time, so the backend is never flooded.
    //~ let permits = Arc::new(Semaphore::new(2));
    //~ let mut fetches = JoinSet::new();
    //~ for shard in shards {
    //~     let permits = permits.clone();
    //~     fetches.spawn(async move {
    //~         let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
    //~         fetch(shard).await
    //~     });
    //~ }
    //~ alt: vec-of-handles
    //~ let fetches: Vec<JoinHandle<Result<Page, FetchError>>> =
    //~     shards.into_iter().map(|shard| tokio::spawn(fetch(shard))).collect();
    //~ wrong: per-handle-timeout
    //~ let fetches: Vec<JoinHandle<Result<Page, FetchError>>> =
    //~     shards.into_iter().map(|shard| tokio::spawn(fetch(shard))).collect();
    //~ wrong: vec-handles-return-on-error
    //~ let fetches: Vec<JoinHandle<Result<Page, FetchError>>> =
    //~     shards.into_iter().map(|shard| tokio::spawn(fetch(shard))).collect();
    //~ alt: channel-by-count
    //~ let expected = shards.len();
    //~ let (answers_tx, mut answers) = mpsc::channel::<Result<Page, FetchError>>(expected.max(1));
    //~ for shard in shards {
    //~     let answers_tx = answers_tx.clone();
    //~     tokio::spawn(async move {
    //~         // Room for every answer: this send never waits.
    //~         let _ = answers_tx.send(fetch(shard).await).await;
    //~     });
    //~ }
    //~ drop(answers_tx);
    //~ alt: file-inside-each-task
    //~ let shared = Arc::new(Mutex::new(Gathered::default()));
    //~ let mut fetches = JoinSet::new();
    //~ for shard in shards {
    //~     let shared = shared.clone();
    //~     fetches.spawn(async move {
    //~         let answer = fetch(shard).await;
    //~         file(&mut shared.lock().expect("a task panicked while filing"), answer);
    //~     });
    //~ }
    //~ alt: join-all
    //~ // Collecting futures into a JoinSet spawns each one.
    //~ let fetches: JoinSet<Result<Page, FetchError>> = shards.into_iter().map(fetch).collect();
    //~ alt: channel-until-closed
    //~ let (answers_tx, mut answers) = mpsc::unbounded_channel();
    //~ for shard in shards {
    //~     let answers_tx = answers_tx.clone();
    //~     tokio::spawn(async move {
    //~         let _ = answers_tx.send(fetch(shard).await);
    //~     });
    //~ }
    //~ // Only the tasks hold senders now: the channel closes when the last one is done.
    //~ drop(answers_tx);
    //~ wrong: sender-kept-open
    //~ let (answers_tx, mut answers) = mpsc::unbounded_channel();
    //~ for shard in shards {
    //~     let answers_tx = answers_tx.clone();
    //~     tokio::spawn(async move {
    //~         let _ = answers_tx.send(fetch(shard).await);
    //~     });
    //~ }
    //~ end
    //~ site: stop-at-first-error
    while let Some(answer) = fetches.join_next().await {
        file(&mut gathered, answer.expect("a fetch panicked"));
    }
    //~ broken:
    //~ while let Some(answer) = fetches.join_next().await {
    //~     let answer = answer.expect("a fetch panicked");
    //~     let failed = answer.is_err();
    //~     file(&mut gathered, answer);
    //~     if failed {
    //~         // The result is incomplete anyway: answer the caller now.
    //~         return gathered;
    //~     }
    //~ }
    //~ alt: vec-of-handles
    //~ // In the order they were started: each await waits only for what is still running.
    //~ for fetch in fetches {
    //~     file(&mut gathered, fetch.await.expect("a fetch panicked"));
    //~ }
    //~ wrong: vec-handles-return-on-error
    //~ for fetch in fetches {
    //~     let answer = fetch.await.expect("a fetch panicked");
    //~     let failed = answer.is_err();
    //~     file(&mut gathered, answer);
    //~     if failed {
    //~         // The result is incomplete anyway: answer the caller now.
    //~         return gathered;
    //~     }
    //~ }
    //~ wrong: per-handle-timeout
    //~ for fetch in fetches {
    //~     // A shard slower than this is not worth waiting for.
    //~     if let Ok(answer) = timeout(Duration::from_millis(2_000), fetch).await {
    //~         file(&mut gathered, answer.expect("a fetch panicked"));
    //~     }
    //~ }
    //~ alt: channel-by-count
    //~ for _ in 0..expected {
    //~     let answer = answers.recv().await.expect("a fetch task ended without answering");
    //~     file(&mut gathered, answer);
    //~ }
    //~ alt: file-inside-each-task
    //~ while let Some(done) = fetches.join_next().await {
    //~     done.expect("a fetch panicked");
    //~ }
    //~ gathered = std::mem::take(&mut *shared.lock().expect("a task panicked while filing"));
    //~ alt: join-all
    //~ for answer in fetches.join_all().await {
    //~     file(&mut gathered, answer);
    //~ }
    //~ alt: channel-until-closed
    //~ while let Some(answer) = answers.recv().await {
    //~     file(&mut gathered, answer);
    //~ }
    //~ wrong: sender-kept-open
    //~ // The channel ends when every task has sent its answer.
    //~ while let Some(answer) = answers.recv().await {
    //~     file(&mut gathered, answer);
    //~ }
    //~ wrong: try-join-next
    //~ // Let the fetches run, then take every answer that is there, without blocking.
    //~ tokio::task::yield_now().await;
    //~ while let Some(answer) = fetches.try_join_next() {
    //~     file(&mut gathered, answer.expect("a fetch panicked"));
    //~ }
    //~ wrong: whole-gather-timeout
    //~ // Nobody waits more than a second for a search: answer with what has come by then.
    //~ let _ = tokio::time::timeout(Duration::from_secs(1), async {
    //~     while let Some(answer) = fetches.join_next().await {
    //~         file(&mut gathered, answer.expect("a fetch panicked"));
    //~     }
    //~ })
    //~ .await;
    //~ end
    gathered
}

/// Puts one shard's answer where it belongs.
fn file(gathered: &mut Gathered, answer: Result<Page, FetchError>) {
    //~ site: errors-dropped
    match answer {
        Ok(page) => gathered.pages.push(page),
        // FIX: a failed shard is reported, not dropped.
        Err(error) => gathered.errors.push(error),
    }
    //~ broken:
    //~ // A shard that failed has no page to add.
    //~ if let Ok(page) = answer {
    //~     gathered.pages.push(page);
    //~ }
    //~ end
}
