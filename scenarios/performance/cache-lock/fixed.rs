//! A price cache in front of a slow upstream, shared by many request tasks.
//!
//! [`PriceCache::price`] answers a request for an item's price from the cache; on a miss it
//! fetches the price from the [`Upstream`], a round trip of [`FETCH_MS`], and keeps it.
//! [`PriceCache::update`] applies a batch of new prices (a price feed's message) at once.
//! The cache's map sits behind one [`Lock`], an async mutex that counts how often it is taken.
//!
//! The promises: every answer is a price the item had while the request was in progress, and
//! once an update has returned, no later request answers an older price; a request waits for
//! at most one fetch ([`FETCH_MS`]), never for another item's; a request for an item already
//! in the cache answers at once; an update never waits for a fetch; and a batch of updates
//! takes the lock once, however many prices it holds.
//!
//! Where it comes from: the commonest way a cache makes a service slower than no cache at
//! all: one lock around the map, held while the miss goes to the database, so every request
//! queues behind the slowest fetch; and a feed handler that takes the lock once per price, so
//! readers and writers hand the lock back and forth thousands of times a second.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

//~ region
use tokio::sync::{Mutex, MutexGuard};
//~ alt: rwlock
//~ use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
//~ alt: std-mutex-between-awaits
//~ use std::sync::{Mutex, MutexGuard};
//~ alt: single-flight
//~ use tokio::sync::{watch, Mutex, MutexGuard};
//~ end

/// How long one fetch from the upstream takes.
pub const FETCH_MS: u64 = 50;

/// The slow source of list prices. Cheap to clone: clones share the price list.
#[derive(Clone, Debug)]
pub struct Upstream {
    list: Arc<BTreeMap<u64, u64>>,
}

impl Upstream {
    pub fn new(list: BTreeMap<u64, u64>) -> Upstream {
        Upstream {
            list: Arc::new(list),
        }
    }

    /// The item's list price, after a round trip of [`FETCH_MS`] (0 for an unknown item).
    pub async fn fetch(&self, item: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(FETCH_MS)).await;
        self.list.get(&item).copied().unwrap_or(0)
    }
}

//~ region
/// The cache's lock: an async mutex that counts how often it is taken.
pub struct Lock<T> {
    inner: Mutex<T>,
    taken: AtomicU64,
}

impl<T> Lock<T> {
    pub fn new(value: T) -> Lock<T> {
        Lock {
            inner: Mutex::new(value),
            taken: AtomicU64::new(0),
        }
    }

    /// Takes the lock, waiting for it if another task holds it.
    pub async fn lock(&self) -> MutexGuard<'_, T> {
        self.taken.fetch_add(1, Ordering::Relaxed);
        self.inner.lock().await
    }

    /// Takes the lock if nobody holds it right now.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let guard = self.inner.try_lock().ok()?;
        self.taken.fetch_add(1, Ordering::Relaxed);
        Some(guard)
    }

    /// How many times the lock has been taken.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }
}
//~ alt: rwlock
//~ /// The cache's lock: an async read-write lock that counts how often it is taken.
//~ pub struct Lock<T> {
//~     inner: RwLock<T>,
//~     taken: AtomicU64,
//~ }
//~
//~ impl<T> Lock<T> {
//~     pub fn new(value: T) -> Lock<T> {
//~         Lock {
//~             inner: RwLock::new(value),
//~             taken: AtomicU64::new(0),
//~         }
//~     }
//~
//~     /// Takes the lock to read: many readers at once.
//~     pub async fn read(&self) -> RwLockReadGuard<'_, T> {
//~         self.taken.fetch_add(1, Ordering::Relaxed);
//~         self.inner.read().await
//~     }
//~
//~     /// Takes the lock to write: alone.
//~     pub async fn lock(&self) -> RwLockWriteGuard<'_, T> {
//~         self.taken.fetch_add(1, Ordering::Relaxed);
//~         self.inner.write().await
//~     }
//~
//~     /// How many times the lock has been taken.
//~     pub fn taken(&self) -> u64 {
//~         self.taken.load(Ordering::Relaxed)
//~     }
//~ }
//~ alt: std-mutex-between-awaits
//~ /// The cache's lock: a blocking mutex, never held across an `.await`, that counts how
//~ /// often it is taken.
//~ pub struct Lock<T> {
//~     inner: Mutex<T>,
//~     taken: AtomicU64,
//~ }
//~
//~ impl<T> Lock<T> {
//~     pub fn new(value: T) -> Lock<T> {
//~         Lock {
//~             inner: Mutex::new(value),
//~             taken: AtomicU64::new(0),
//~         }
//~     }
//~
//~     /// Takes the lock; the guard must be dropped before the next `.await`.
//~     pub fn lock(&self) -> MutexGuard<'_, T> {
//~         self.taken.fetch_add(1, Ordering::Relaxed);
//~         self.inner
//~             .lock()
//~             .unwrap_or_else(|poisoned| poisoned.into_inner())
//~     }
//~
//~     /// How many times the lock has been taken.
//~     pub fn taken(&self) -> u64 {
//~         self.taken.load(Ordering::Relaxed)
//~     }
//~ }
//~ end

//~ region
/// What the lock guards: the cached prices.
type Prices = HashMap<u64, u64>;
//~ alt: single-flight
//~ /// What the lock guards: the cached prices, and for each item being fetched, where its
//~ /// price will be announced.
//~ #[derive(Default)]
//~ struct Prices {
//~     known: HashMap<u64, u64>,
//~     fetching: HashMap<u64, watch::Receiver<Option<u64>>>,
//~ }
//~ end

/// The price cache.
pub struct PriceCache {
    upstream: Upstream,
    prices: Lock<Prices>,
}

impl PriceCache {
    pub fn new(upstream: Upstream) -> PriceCache {
        PriceCache {
            upstream,
            prices: Lock::new(Prices::default()),
        }
    }

    /// How many times the cache's lock has been taken so far.
    pub fn lock_taken(&self) -> u64 {
        self.prices.taken()
    }

    /// The item's price: from the cache, or fetched from the upstream and kept.
    pub async fn price(&self, item: u64) -> u64 {
        //~ site: lock-across-io
        // FIX: the lock is held to look and to insert, never across the fetch's `.await`:
        // while one request waits for the upstream, every other request can use the cache.
        if let Some(price) = self.prices.lock().await.get(&item) {
            return *price;
        }
        let fetched = self.upstream.fetch(item).await;
        let mut prices = self.prices.lock().await;
        //~ broken:
        //~ let mut prices = self.prices.lock().await;
        //~ if let Some(price) = prices.get(&item) {
        //~     return *price;
        //~ }
        //~ let fetched = self.upstream.fetch(item).await;
        //~ wrong: spawn-the-fetch
        //~ // The fetch runs on a task of its own, so the cache does not do the I/O.
        //~ let mut prices = self.prices.lock().await;
        //~ if let Some(price) = prices.get(&item) {
        //~     return *price;
        //~ }
        //~ let upstream = self.upstream.clone();
        //~ let fetched = tokio::spawn(async move { upstream.fetch(item).await })
        //~     .await
        //~     .expect("the fetch task does not panic");
        //~ wrong: release-and-retake
        //~ // Look with a short lock, then take it again for the miss.
        //~ if let Some(price) = self.prices.lock().await.get(&item) {
        //~     return *price;
        //~ }
        //~ let mut prices = self.prices.lock().await;
        //~ let fetched = self.upstream.fetch(item).await;
        //~ wrong: try-lock-poll
        //~ // Never block on the lock: try it, and come back a millisecond later.
        //~ let mut prices = loop {
        //~     if let Some(prices) = self.prices.try_lock() {
        //~         break prices;
        //~     }
        //~     tokio::time::sleep(Duration::from_millis(1)).await;
        //~ };
        //~ if let Some(price) = prices.get(&item) {
        //~     return *price;
        //~ }
        //~ let fetched = self.upstream.fetch(item).await;
        //~ wrong: fetch-every-time
        //~ // No lock across the fetch: fetch first, then keep what came back.
        //~ let fetched = self.upstream.fetch(item).await;
        //~ let mut prices = self.prices.lock().await;
        //~ alt: rwlock
        //~ // Readers share the lock; only an insert takes it alone, and never across the fetch.
        //~ if let Some(price) = self.prices.read().await.get(&item) {
        //~     return *price;
        //~ }
        //~ let fetched = self.upstream.fetch(item).await;
        //~ let mut prices = self.prices.lock().await;
        //~ alt: std-mutex-between-awaits
        //~ // A blocking mutex is fine in async code when no guard lives across an `.await`.
        //~ let cached = self.prices.lock().get(&item).copied();
        //~ if let Some(price) = cached {
        //~     return price;
        //~ }
        //~ let fetched = self.upstream.fetch(item).await;
        //~ let mut prices = self.prices.lock();
        //~ alt: single-flight
        //~ // One fetch per item in flight: a second request for it waits for that fetch's
        //~ // announcement instead of fetching again.
        //~ let mut prices = self.prices.lock().await;
        //~ if let Some(price) = prices.known.get(&item) {
        //~     return *price;
        //~ }
        //~ if let Some(announced) = prices.fetching.get(&item) {
        //~     let mut announced = announced.clone();
        //~     drop(prices);
        //~     let price = *announced
        //~         .wait_for(Option::is_some)
        //~         .await
        //~         .expect("the fetching request announces before it ends");
        //~     return price.expect("waited for Some");
        //~ }
        //~ let (announce, announced) = watch::channel(None);
        //~ prices.fetching.insert(item, announced);
        //~ drop(prices);
        //~ let fetched = self.upstream.fetch(item).await;
        //~ let mut prices = self.prices.lock().await;
        //~ prices.fetching.remove(&item);
        //~ end
        //~ site: stale-insert
        // FIX: an update may have come in during the fetch: it is newer than the list price
        // the fetch brought, so the fetched price goes in only if the item is still missing,
        // and the request answers whatever the cache holds now.
        *prices.entry(item).or_insert(fetched)
        //~ broken:
        //~ prices.insert(item, fetched);
        //~ fetched
        //~ wrong: invalidate-on-update
        //~ prices.insert(item, fetched);
        //~ fetched
        //~ alt: single-flight
        //~ let price = *prices.known.entry(item).or_insert(fetched);
        //~ drop(prices);
        //~ announce.send_replace(Some(price));
        //~ price
        //~ end
    }

    /// Applies a batch of new prices, all at once.
    pub async fn update(&self, batch: &[(u64, u64)]) {
        //~ site: lock-per-message
        // FIX: one lock for the whole batch: the map is updated in one go, and the lock is
        // taken once per message from the feed, not once per price in it.
        let mut prices = self.prices.lock().await;
        for (item, price) in batch {
            prices.insert(*item, *price);
        }
        //~ broken:
        //~ for (item, price) in batch {
        //~     self.prices.lock().await.insert(*item, *price);
        //~ }
        //~ wrong: hand-back-between-prices
        //~ // One lock for the batch, handed back between prices so readers are not kept
        //~ // waiting behind a long batch.
        //~ let mut prices = self.prices.lock().await;
        //~ for (item, price) in batch {
        //~     prices.insert(*item, *price);
        //~     drop(prices);
        //~     prices = self.prices.lock().await;
        //~ }
        //~ wrong: invalidate-on-update
        //~ // Drop the items from the cache instead of storing them: the next request fetches
        //~ // them fresh, and a fetch in flight can never overwrite a stored update.
        //~ let mut prices = self.prices.lock().await;
        //~ for (item, _) in batch {
        //~     prices.remove(item);
        //~ }
        //~ alt: std-mutex-between-awaits
        //~ let mut prices = self.prices.lock();
        //~ for (item, price) in batch {
        //~     prices.insert(*item, *price);
        //~ }
        //~ alt: single-flight
        //~ let mut prices = self.prices.lock().await;
        //~ for (item, price) in batch {
        //~     prices.known.insert(*item, *price);
        //~ }
        //~ end
    }
}
