//! A consumer's cache of per-customer routing rules.
//!
//! Before a consumer forwards a message it asks `route(customer)` which queue that customer's
//! messages go to. The rule comes from the routing service, through the `loader` the cache
//! was built with: a slow call, rate-limited per customer, so the cache keeps every rule it
//! loads. The routing service also pushes newer rules as they change (`offer`), and tells
//! the consumer to forget a customer's rule when it must be loaded afresh (`invalidate`).
//! Any number of threads share one cache. The cache promises:
//!
//! - the loader runs for a customer at most once, plus once after each `invalidate` of that
//!   customer: threads that miss at the same moment share one load;
//! - `route` never panics, and returns a rule the loader produced or someone offered;
//! - after `invalidate(customer)` returns, no `route(customer)` that starts later returns a
//!   rule loaded before that invalidate started;
//! - an offered rule is cached only if it is newer (a higher version) than the rule cached,
//!   and `offer` says whether it was: the newest rule offered is the one that stays.
//!
//! Where it comes from: the check-then-insert that shared maps invite in every language (Go's
//! `if _, ok := m[k]; !ok { m[k] = load(k) }` across two lock scopes), the cache stampede
//! and stale sets that Facebook's memcache leases were built against ("Scaling Memcache at
//! Facebook", NSDI 2013), and the read guard alive in a `match` while the same thread asks for
//! the write lock, among the double locks Qin et al. found most common in Rust programs
//! ("Understanding Memory and Thread Safety Practices and Issues in Real-World Rust
//! Programs", PLDI 2020).

use std::collections::BTreeMap;

//~ region
use bughunt_kit::sync::RwLock;
//~ wrong: std-rwlock
//~ // std's RwLock: the same API, and no checker types in production code.
//~ use std::sync::RwLock;
//~ alt: one-mutex
//~ use bughunt_kit::sync::Mutex;
//~ alt: slot-per-customer
//~ use bughunt_kit::sync::{Arc, Mutex};
//~ alt: copy-on-write
//~ use bughunt_kit::sync::{Arc, Mutex, RwLock};
//~ end

/// A customer's routing rule, as the routing service hands it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub customer: u64,
    /// The queue this customer's messages go to.
    pub queue: String,
    /// Newer rules have higher versions.
    pub version: u64,
}

/// Asks the routing service for a customer's rule.
pub type Loader = Box<dyn Fn(u64) -> Route + Send + Sync>;

//~ region
//~ alt: slot-per-customer
//~ /// One customer's rule, or `None` until it is loaded. Its lock is held for the load, so
//~ /// threads that miss the same customer wait for one load instead of starting their own.
//~ type Slot = Arc<Mutex<Option<Route>>>;
//~
//~ end
/// The routing rules this consumer knows, by customer.
pub struct RouteCache {
    //~ region
    rules: RwLock<BTreeMap<u64, Route>>,
    //~ alt: one-mutex
    //~ /// Every look-up, load and change holds this one lock.
    //~ rules: Mutex<BTreeMap<u64, Route>>,
    //~ alt: slot-per-customer
    //~ /// The map is locked only to find or make a customer's slot, never during a load.
    //~ slots: Mutex<BTreeMap<u64, Slot>>,
    //~ alt: copy-on-write
    //~ /// The current rules: readers clone the `Arc` and look up without any lock held.
    //~ current: RwLock<Arc<BTreeMap<u64, Route>>>,
    //~ /// Held by whoever makes the next version of the rules: one writer at a time.
    //~ writer: Mutex<()>,
    //~ end
    loader: Loader,
}

impl RouteCache {
    /// An empty cache that loads missing rules with `loader`.
    pub fn new(loader: impl Fn(u64) -> Route + Send + Sync + 'static) -> Self {
        RouteCache {
            //~ region
            rules: RwLock::new(BTreeMap::new()),
            //~ alt: one-mutex
            //~ rules: Mutex::new(BTreeMap::new()),
            //~ alt: slot-per-customer
            //~ slots: Mutex::new(BTreeMap::new()),
            //~ alt: copy-on-write
            //~ current: RwLock::new(Arc::new(BTreeMap::new())),
            //~ writer: Mutex::new(()),
            //~ end
            loader: Box::new(loader),
        }
    }

    /// The rule for `customer`: the cached one, else one loaded now (and cached).
    pub fn route(&self, customer: u64) -> Route {
        //~ region
        if let Some(route) = self.cached(customer) {
            return route;
        }
        self.load(customer)
        //~ wrong: if-let-else-holds-the-read-guard
        //~ // One look-up for the check and the copy: no invalidate can slip in between.
        //~ if let Some(route) = self.rules.read().unwrap().get(&customer) {
        //~     route.clone()
        //~ } else {
        //~     self.load(customer)
        //~ }
        //~ end
    }

    /// Loads the rule for `customer` on a miss, caches it and returns it.
    fn load(&self, customer: u64) -> Route {
        //~ site: check-then-insert
        // FIX: check again under the write lock, and load and insert under it: a thread that
        // missed at the same moment waits, then finds the rule this one loaded.
        let mut rules = self.rules.write().unwrap();
        rules
            .entry(customer)
            .or_insert_with(|| (self.loader)(customer))
            .clone()
        //~ broken:
        //~ let route = (self.loader)(customer);
        //~ self.rules.write().unwrap().insert(customer, route.clone());
        //~ route
        //~ wrong: load-then-insert-if-absent
        //~ // Load without holding any lock (the routing service is slow), then keep whichever
        //~ // rule got there first, so every caller sees the same one.
        //~ let loaded = (self.loader)(customer);
        //~ let mut rules = self.rules.write().unwrap();
        //~ rules.entry(customer).or_insert(loaded).clone()
        //~ wrong: write-lock-without-recheck
        //~ // The load and the insert under the write lock: nobody can interleave.
        //~ let mut rules = self.rules.write().unwrap();
        //~ let route = (self.loader)(customer);
        //~ rules.insert(customer, route.clone());
        //~ route
        //~ alt: one-mutex
        //~ let mut rules = self.rules.lock().unwrap();
        //~ if let Some(route) = rules.get(&customer) {
        //~     return route.clone();
        //~ }
        //~ let route = (self.loader)(customer);
        //~ rules.insert(customer, route.clone());
        //~ route
        //~ alt: slot-per-customer
        //~ // Under the customer's own lock: loads of other customers go on meanwhile.
        //~ let slot = self.slot(customer);
        //~ let mut rule = slot.lock().unwrap();
        //~ if let Some(route) = rule.as_ref() {
        //~     return route.clone();
        //~ }
        //~ let route = (self.loader)(customer);
        //~ *rule = Some(route.clone());
        //~ route
        //~ alt: copy-on-write
        //~ let _writer = self.writer.lock().unwrap();
        //~ let snapshot = self.current.read().unwrap().clone();
        //~ if let Some(route) = snapshot.get(&customer) {
        //~     return route.clone();
        //~ }
        //~ let route = (self.loader)(customer);
        //~ let mut next = (*snapshot).clone();
        //~ next.insert(customer, route.clone());
        //~ *self.current.write().unwrap() = Arc::new(next);
        //~ route
        //~ end
    }

    /// The cached rule for `customer`, if there is one.
    fn cached(&self, customer: u64) -> Option<Route> {
        //~ site: check-then-use
        // FIX: the look-up and the copy happen under one read guard: what was found is what
        // is returned, whatever an invalidate does a moment later.
        self.rules.read().unwrap().get(&customer).cloned()
        //~ broken:
        //~ if !self.rules.read().unwrap().contains_key(&customer) {
        //~     return None;
        //~ }
        //~ // Cached: copy it out.
        //~ Some(self.rules.read().unwrap()[&customer].clone())
        //~ wrong: load-when-it-vanished
        //~ if !self.rules.read().unwrap().contains_key(&customer) {
        //~     return None;
        //~ }
        //~ // An invalidate may have removed it since: then ask the routing service directly.
        //~ let cached = self.rules.read().unwrap().get(&customer).cloned();
        //~ Some(cached.unwrap_or_else(|| (self.loader)(customer)))
        //~ alt: one-mutex
        //~ self.rules.lock().unwrap().get(&customer).cloned()
        //~ alt: slot-per-customer
        //~ // The slot is cloned out of the map first: the map's lock is not held while the
        //~ // slot's is awaited.
        //~ let slot = self.slots.lock().unwrap().get(&customer).cloned()?;
        //~ let rule = slot.lock().unwrap().clone();
        //~ rule
        //~ alt: copy-on-write
        //~ let snapshot = self.current.read().unwrap().clone();
        //~ snapshot.get(&customer).cloned()
        //~ end
    }

    //~ region
    //~ alt: slot-per-customer
    //~ /// The slot of `customer`, made empty if it has none. The map's lock is released
    //~ /// before the caller locks the slot.
    //~ fn slot(&self, customer: u64) -> Slot {
    //~     self.slots.lock().unwrap().entry(customer).or_default().clone()
    //~ }
    //~
    //~ end
    /// Caches `route` if it is newer than the rule cached for its customer (or none is).
    /// Returns whether it was cached.
    pub fn offer(&self, route: Route) -> bool {
        //~ site: read-guard-in-match
        // FIX: one write guard for the comparison and the insert: the guard is named, and
        // nothing locks the map again while it lives.
        let mut rules = self.rules.write().unwrap();
        let newer = match rules.get(&route.customer) {
            Some(cached) => route.version > cached.version,
            None => true,
        };
        if newer {
            rules.insert(route.customer, route);
        }
        newer
        //~ broken:
        //~ match self.rules.read().unwrap().get(&route.customer) {
        //~     Some(cached) if cached.version >= route.version => false,
        //~     _ => {
        //~         self.rules.write().unwrap().insert(route.customer, route);
        //~         true
        //~     }
        //~ }
        //~ wrong: read-check-then-write
        //~ // Decide under the read guard, and let it go before taking the write lock.
        //~ let newer = match self.rules.read().unwrap().get(&route.customer) {
        //~     Some(cached) => route.version > cached.version,
        //~     None => true,
        //~ };
        //~ if newer {
        //~     self.rules.write().unwrap().insert(route.customer, route);
        //~ }
        //~ newer
        //~ wrong: try-write-in-the-arm
        //~ // Never wait for the write lock in here: if it is taken, someone else is updating.
        //~ match self.rules.read().unwrap().get(&route.customer) {
        //~     Some(cached) if cached.version >= route.version => false,
        //~     _ => match self.rules.try_write() {
        //~         Ok(mut rules) => {
        //~             rules.insert(route.customer, route);
        //~             true
        //~         }
        //~         Err(_) => false,
        //~     },
        //~ }
        //~ alt: one-mutex
        //~ let mut rules = self.rules.lock().unwrap();
        //~ match rules.entry(route.customer) {
        //~     std::collections::btree_map::Entry::Occupied(mut cached) => {
        //~         if cached.get().version >= route.version {
        //~             return false;
        //~         }
        //~         cached.insert(route);
        //~     }
        //~     std::collections::btree_map::Entry::Vacant(empty) => {
        //~         empty.insert(route);
        //~     }
        //~ }
        //~ true
        //~ alt: slot-per-customer
        //~ let slot = self.slot(route.customer);
        //~ let mut rule = slot.lock().unwrap();
        //~ if rule.as_ref().is_some_and(|cached| cached.version >= route.version) {
        //~     return false;
        //~ }
        //~ *rule = Some(route);
        //~ true
        //~ alt: copy-on-write
        //~ let _writer = self.writer.lock().unwrap();
        //~ let snapshot = self.current.read().unwrap().clone();
        //~ if snapshot.get(&route.customer).is_some_and(|cached| cached.version >= route.version) {
        //~     return false;
        //~ }
        //~ let mut next = (*snapshot).clone();
        //~ next.insert(route.customer, route);
        //~ *self.current.write().unwrap() = Arc::new(next);
        //~ true
        //~ end
    }

    /// Forgets the rule cached for `customer`: the next `route(customer)` loads it afresh.
    pub fn invalidate(&self, customer: u64) {
        //~ region
        self.rules.write().unwrap().remove(&customer);
        //~ alt: one-mutex
        //~ self.rules.lock().unwrap().remove(&customer);
        //~ alt: slot-per-customer
        //~ // A thread loading into the old slot keeps its rule to itself: the next caller gets
        //~ // a new slot and loads afresh.
        //~ self.slots.lock().unwrap().remove(&customer);
        //~ alt: copy-on-write
        //~ let _writer = self.writer.lock().unwrap();
        //~ let mut next = (**self.current.read().unwrap()).clone();
        //~ next.remove(&customer);
        //~ *self.current.write().unwrap() = Arc::new(next);
        //~ end
    }
}
