//! A quote broker: one thread asks a pricing thread for many quotes over two bounded
//! channels, with several requests in flight at once.
//!
//! `quote_all` starts the pricer, sends it the batch on `requests` and reads the quotes back
//! on `replies`, both `sync_channel`s of configured capacities. Sending one request and
//! waiting for its quote would leave the pricer idle between requests, so the broker keeps
//! up to `window` requests unanswered; the pricer, for its part, prices several queued
//! requests per lookup of its price table. Both sides can wait: the broker when `requests`
//! is full, the pricer when `replies` is full. The window is what keeps them from waiting for
//! each other at the same time.
//!
//! `quote_all` promises, for every batch, every pair of capacities and every schedule: it
//! returns, without relying on a timer; it returns exactly one quote per request; and the
//! pricer does not outlive it.
//!
//! Before each call that can block, a thread says on the [`Log`] what it is about to wait
//! for, as a service writes a debug line: when a run hangs, the last line of each thread
//! says where it stopped.
//!
//! Where it comes from: request/reply over a pair of bounded queues is a classic cyclic
//! deadlock (each side blocked on the queue the other should empty); Tu et al.,
//! "Understanding Real-World Concurrency Bugs in Go" (ASPLOS 2019) found more blocking bugs
//! from message passing than from shared memory in six large Go projects.

//~ region
use bughunt_kit::sync::mpsc::{sync_channel, Receiver, SyncSender};
//~ wrong: std-channel
//~ // std's channels: the same API, and no crate to learn.
//~ use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
//~ wrong: spin-try-send
//~ use bughunt_kit::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
//~ alt: read-when-full
//~ use bughunt_kit::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
//~ alt: unbounded-replies
//~ use bughunt_kit::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
//~ end
use bughunt_kit::sync::Arc;
use bughunt_kit::thread::{self, JoinHandle};

/// The name the broker (the thread that calls `quote_all`) goes by in the log.
pub const BROKER: &str = "broker";
/// The pricing thread's name, in the log and to the thread library.
pub const PRICER: &str = "pricer";
/// The most requests the pricer prices per lookup of its price table.
pub const PRICES_PER_LOOKUP: usize = 3;

/// A request for a quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub sku: u64,
}

/// A quote, the answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub id: u64,
    pub price_cents: u64,
}

/// How much each channel holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Requests `requests` holds before the broker waits to send.
    pub requests_capacity: usize,
    /// Quotes `replies` holds before the pricer waits to send.
    pub replies_capacity: usize,
}

/// The price of a request: cheap and pure, so a test can say what every quote must be.
pub fn price(request: &Request) -> Quote {
    Quote { id: request.id, price_cents: 99 + request.sku.wrapping_mul(37) % 10_000 }
}

/// Where each thread says what it is about to wait for, before every call that can block.
/// A service would write these lines to its debug log; the checks draw them.
#[derive(Clone)]
pub struct Log {
    line: Arc<dyn Fn(&str, String) + Send + Sync>,
}

impl Log {
    pub fn new(line: impl Fn(&str, String) + Send + Sync + 'static) -> Log {
        Log { line: Arc::new(line) }
    }

    /// A log that writes nowhere.
    pub fn quiet() -> Log {
        Log::new(|_, _| {})
    }

    pub fn line(&self, thread: &str, what: String) {
        (self.line)(thread, what)
    }
}

/// Asks the pricer for a quote for every request of the batch.
pub fn quote_all(batch: Vec<Request>, settings: Settings, log: &Log) -> Vec<Quote> {
    let (requests, requests_rx) = sync_channel::<Request>(settings.requests_capacity);
    //~ region
    let (replies_tx, replies) = sync_channel::<Quote>(settings.replies_capacity);
    //~ wrong: double-replies-buffer
    //~ // Twice the room for quotes, so the pricer never waits for the broker.
    //~ let (replies_tx, replies) = sync_channel::<Quote>(settings.replies_capacity * 2);
    //~ alt: unbounded-replies
    //~ // Quotes never wait: the batch, which the broker already holds, bounds them.
    //~ let (replies_tx, replies) = channel::<Quote>();
    //~ end
    let pricer = start_pricer(requests_rx, replies_tx, log.clone());
    //~ site: window-too-wide
    // FIX: if both threads were waiting, the unanswered requests would fill `requests`,
    // fill `replies`, and put at least one in the pricer's hands: never have that many.
    let window = settings.requests_capacity + settings.replies_capacity + 1;
    //~ broken:
    //~ // Unanswered requests can fill `requests` and `replies`, one can be in the pricer's
    //~ // hands, and one in our own send.
    //~ let window = settings.requests_capacity + settings.replies_capacity + 2;
    //~ wrong: window-from-requests-only
    //~ // Both channels are as big as `requests`: fill both, and one in the pricer's hands.
    //~ let window = 2 * settings.requests_capacity + 1;
    //~ wrong: window-from-replies-only
    //~ // Room in `replies` for every quote but one, which the pricer holds.
    //~ let window = settings.replies_capacity + 2;
    //~ alt: one-at-a-time
    //~ // One request at a time: the simplest window that can never deadlock.
    //~ let window = 1;
    //~ end
    let mut quotes = Vec::with_capacity(batch.len());
    let mut unanswered = 0;
    //~ site: send-all-then-read
    for request in batch {
        if unanswered == window {
            quotes.push(take_quote(&replies, log));
            unanswered -= 1;
        }
        send_request(&requests, request, log);
        unanswered += 1;
    }
    while unanswered > 0 {
        quotes.push(take_quote(&replies, log));
        unanswered -= 1;
    }
    //~ broken:
    //~ // Send everything first: the channels' buffers keep both threads busy.
    //~ for request in batch {
    //~     send_request(&requests, request, log);
    //~     unanswered += 1;
    //~ }
    //~ while unanswered > 0 {
    //~     quotes.push(take_quote(&replies, log));
    //~     unanswered -= 1;
    //~ }
    //~ wrong: double-replies-buffer
    //~ for request in batch {
    //~     send_request(&requests, request, log);
    //~     unanswered += 1;
    //~ }
    //~ while unanswered > 0 {
    //~     quotes.push(take_quote(&replies, log));
    //~     unanswered -= 1;
    //~ }
    //~ wrong: pricer-try-send
    //~ for request in batch {
    //~     send_request(&requests, request, log);
    //~     unanswered += 1;
    //~ }
    //~ while unanswered > 0 {
    //~     quotes.push(take_quote(&replies, log));
    //~     unanswered -= 1;
    //~ }
    //~ alt: unbounded-replies
    //~ for request in batch {
    //~     send_request(&requests, request, log);
    //~     unanswered += 1;
    //~ }
    //~ while unanswered > 0 {
    //~     quotes.push(take_quote(&replies, log));
    //~     unanswered -= 1;
    //~ }
    //~ wrong: spin-try-send
    //~ // Never block on a full `requests`: offer each request until there is room.
    //~ for mut request in batch {
    //~     log.line(BROKER, format!("offers request {} on `requests` until there is room", request.id));
    //~     while let Err(TrySendError::Full(back)) = requests.try_send(request) {
    //~         request = back;
    //~         thread::yield_now();
    //~     }
    //~     unanswered += 1;
    //~ }
    //~ while unanswered > 0 {
    //~     quotes.push(take_quote(&replies, log));
    //~     unanswered -= 1;
    //~ }
    //~ alt: read-when-full
    //~ // No window arithmetic: when `requests` is full, take a quote first (one is coming,
    //~ // since a request is waiting), then try again.
    //~ let _ = window;
    //~ for mut request in batch {
    //~     loop {
    //~         match requests.try_send(request) {
    //~             Ok(()) => break,
    //~             Err(TrySendError::Full(back)) if unanswered > 0 => {
    //~                 request = back;
    //~                 quotes.push(take_quote(&replies, log));
    //~                 unanswered -= 1;
    //~             }
    //~             Err(TrySendError::Full(back)) => {
    //~                 send_request(&requests, back, log);
    //~                 break;
    //~             }
    //~             Err(TrySendError::Disconnected(_)) => panic!("the pricer stopped"),
    //~         }
    //~     }
    //~     unanswered += 1;
    //~ }
    //~ while unanswered > 0 {
    //~     quotes.push(take_quote(&replies, log));
    //~     unanswered -= 1;
    //~ }
    //~ alt: reader-thread
    //~ // A thread of its own reads the quotes, so the broker can send the whole batch.
    //~ let _ = (window, unanswered);
    //~ let total = batch.len();
    //~ let reader = thread::Builder::new()
    //~     .name("reader".into())
    //~     .spawn({
    //~         let log = log.clone();
    //~         move || (0..total).map(|_| take_quote_as("reader", &replies, &log)).collect::<Vec<Quote>>()
    //~     })
    //~     .expect("the reader thread could not start");
    //~ for request in batch {
    //~     send_request(&requests, request, log);
    //~ }
    //~ log.line(BROKER, "waits for the reader to finish (join)".into());
    //~ quotes = reader.join().expect("the reader panicked");
    //~ end
    // Closing `requests` ends the pricer's loop.
    drop(requests);
    log.line(BROKER, "waits for the pricer to finish (join)".into());
    pricer.join().expect("the pricer panicked");
    quotes
}

fn send_request(requests: &SyncSender<Request>, request: Request, log: &Log) {
    log.line(BROKER, format!("waits to send request {} on `requests`", request.id));
    requests.send(request).expect("the pricer stopped before the batch was over");
}

fn take_quote(replies: &Receiver<Quote>, log: &Log) -> Quote {
    take_quote_as(BROKER, replies, log)
}

fn take_quote_as(thread: &str, replies: &Receiver<Quote>, log: &Log) -> Quote {
    log.line(thread, "waits for a quote on `replies`".into());
    replies.recv().expect("the pricer stopped before answering")
}

//~ region
/// Starts the pricer: it prices requests until `requests` is closed, several per lookup.
fn start_pricer(requests: Receiver<Request>, replies: SyncSender<Quote>, log: Log) -> JoinHandle<()> {
//~ alt: unbounded-replies
//~ /// Starts the pricer: it prices requests until `requests` is closed, several per lookup.
//~ fn start_pricer(requests: Receiver<Request>, replies: Sender<Quote>, log: Log) -> JoinHandle<()> {
//~ end
    thread::Builder::new()
        .name(PRICER.into())
        .spawn(move || loop {
            log.line(PRICER, "waits for a request on `requests`".into());
            let Ok(first) = requests.recv() else {
                log.line(PRICER, "done: `requests` is closed".into());
                return;
            };
            let mut lookup = vec![first];
            //~ site: pricer-waits-for-a-full-lookup
            // FIX: take only what is already queued; waiting for more could wait for a
            // broker that is itself waiting for these quotes.
            while lookup.len() < PRICES_PER_LOOKUP {
                match requests.try_recv() {
                    Ok(request) => lookup.push(request),
                    Err(_) => break,
                }
            }
            //~ broken:
            //~ // A lookup is only worth it when it is full.
            //~ while lookup.len() < PRICES_PER_LOOKUP {
            //~     log.line(PRICER, "waits for more requests on `requests`".into());
            //~     match requests.recv() {
            //~         Ok(request) => lookup.push(request),
            //~         Err(_) => break,
            //~     }
            //~ }
            //~ wrong: pricer-waits-with-timeout
            //~ // Wait a little for company, never for long: if the broker is waiting for these
            //~ // quotes, the timeout ends the wait and the lookup prices what there is.
            //~ while lookup.len() < PRICES_PER_LOOKUP {
            //~     log.line(PRICER, "waits for more requests on `requests`".into());
            //~     match requests.recv_timeout(std::time::Duration::from_millis(2)) {
            //~         Ok(request) => lookup.push(request),
            //~         Err(_) => break,
            //~     }
            //~ }
            //~ alt: one-at-a-time
            //~ // One request per lookup.
            //~ end
            for request in lookup {
                let quote = price(&request);
                //~ region
                log.line(PRICER, format!("waits to send the quote for request {} on `replies`", request.id));
                if replies.send(quote).is_err() {
                    return; // Nobody is listening any more.
                }
                //~ wrong: pricer-try-send
                //~ // Never wait on `replies`: if the broker is busy, it is busy.
                //~ let _ = replies.try_send(quote);
                //~ end
            }
        })
        .expect("the pricer thread could not start")
}
