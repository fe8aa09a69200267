//! `bughunt watch`: the current hunt checked on every save, the verdict shown in place.
//!
//! Four threads feed one bounded queue of events that the main thread reads, in order:
//! - the **key reader** reads standard input byte by byte (the terminal without line
//!   buffering, echo or signals, so Ctrl-C arrives as a key and quits like `q`); it pauses
//!   on request while an editor or a question has the terminal;
//! - the **file watcher** (notify, debounced by [`watch::DEBOUNCE`]) reports changed paths;
//! - the **checker** runs one check at a time, when the main thread asks, and sends the page
//!   `bughunt check` would print;
//! - after `n`, the new hunt's **prebuild**.
//!
//! What to do with each event is decided by [`bughunt_core::watch::Watch`]; this file only
//! carries it out. Every child (a check's cargo, a prebuild) runs in a session registered
//! with [`process`], so `q`, Ctrl-C, SIGTERM and SIGHUP end them all.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bughunt_core::home::Home;
use bughunt_core::hunt::{self, StartRequest, Verdict};
use bughunt_core::pages;
use bughunt_core::process;
use bughunt_core::text::{file_link, BAD, STRONG};
use bughunt_core::validate::Options;
use bughunt_core::watch::{self, Action, Input, Key, Mode, Watch};
use notify::RecursiveMode;

use crate::exit::{CmdResult, Exit};

pub const LONG_ABOUT: &str = "\
Check the current hunt on every save of its src/ folder, and show the verdict in place, as \
`bughunt check` prints it (the screen is cleared between checks). Saves during a check queue \
one more check; two checks of the hunt never run at once.

Keys:
  h  the next hint            c  check now
  e  explain (after a pass)   n  the next hunt or a challenge (after a pass)
  r  reveal the fix (asks)    o  open the file in $VISUAL / $EDITOR
  q  quit (Ctrl-C too): every check still running ends with watch
The status line at the bottom lists the keys that work at that moment.

Manual mode: where file events never arrive (network drives, WSL, some containers), watch \
notices at start (a probe file in .bughunt/ must come back as an event within 3 s), says so \
and checks only when you press c. `--manual` starts in it.";

#[derive(clap::Args)]
pub struct Args {
    /// Check only when you press `c`, not on every save.
    #[arg(long)]
    manual: bool,
    /// The bound on running each check, in seconds, counted once its build is over (the build
    /// has a bound of its own, 900 s), as for `bughunt check`; past it the check is stopped and
    /// counts as failed (a deadlock, or a task that never exits).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = hunt::CHECK_TIMEOUT_DEFAULT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    timeout: u64,
}

/// The probe file whose event proves that file events reach watch.
const PROBE_FILE: &str = ".bughunt/watch-probe";

/// How long the key reader may take to notice a pause request (it polls standard input with
/// this timeout), and so how long handing the terminal to an editor may wait for it.
const KEY_POLL: Duration = Duration::from_millis(100);
const KEY_PAUSE_BOUND: Duration = Duration::from_secs(2);

/// After `q`, how long a check being ended may take to report back.
const QUIT_BOUND: Duration = Duration::from_secs(10);

/// What the threads tell the main thread.
enum Event {
    Key(Key),
    /// Paths that changed (debounced).
    Changed(Vec<PathBuf>),
    WatchError(String),
    /// A check ended: its page, and whether it passed.
    Checked {
        page: String,
        passed: bool,
    },
}

/// The terminal, reading keys one at a time, and the way back to how it was.
struct RawTerminal {
    original: libc::termios,
}

impl RawTerminal {
    fn enter() -> Result<RawTerminal> {
        let mut original = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr(3) fills the termios on success, checked before use.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, original.as_mut_ptr()) } != 0 {
            bail!(
                "cannot read the terminal's settings: {}",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let original = unsafe { original.assume_init() };
        process::restore_terminal_on_interrupt(Some(original));
        let terminal = RawTerminal { original };
        terminal.raw()?;
        Ok(terminal)
    }

    /// Keys arrive one by one, unechoed, Ctrl-C and Ctrl-Z as bytes; output is untouched.
    fn raw(&self) -> Result<()> {
        let mut raw = self.original;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: tcsetattr(3) reads one valid termios.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            bail!(
                "cannot set up the terminal: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    fn restore(&self) {
        // SAFETY: as above.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.original);
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        self.restore();
        process::restore_terminal_on_interrupt(None);
    }
}

/// The key reader's controls. A pause is a flag the main thread raises; the reader, at the
/// top of its loop (within [`KEY_POLL`]), acknowledges it on `paused` and parks until the
/// flag is lowered and it is unparked, so it never reads a key meant for an editor.
struct KeyReader {
    pause: Arc<AtomicBool>,
    paused: Receiver<()>,
    reader: std::thread::Thread,
}

impl KeyReader {
    fn spawn(events: SyncSender<Event>) -> KeyReader {
        let pause = Arc::new(AtomicBool::new(false));
        let (paused_tx, paused_rx) = mpsc::sync_channel::<()>(1);
        let pause_flag = pause.clone();
        let reader = std::thread::spawn(move || loop {
            if pause_flag.load(Ordering::SeqCst) {
                // A full channel already holds an acknowledgement.
                let _ = paused_tx.try_send(());
                while pause_flag.load(Ordering::SeqCst) {
                    std::thread::park_timeout(KEY_POLL);
                }
                continue;
            }
            let mut poll = libc::pollfd {
                fd: libc::STDIN_FILENO,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut poll, 1, KEY_POLL.as_millis() as libc::c_int) };
            if ready <= 0 {
                continue; // nothing yet, or a signal interrupted the wait
            }
            let mut byte = 0u8;
            // SAFETY: reads at most one byte into `byte`.
            let read = unsafe { libc::read(libc::STDIN_FILENO, (&mut byte as *mut u8).cast(), 1) };
            let key = match read {
                1 => Key::from_byte(byte),
                -1 if matches!(
                    std::io::Error::last_os_error().kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) =>
                {
                    continue
                }
                // The terminal is gone (closed, hung up): as good as `q`.
                _ => Key::Quit,
            };
            if events.send(Event::Key(key)).is_err() || read != 1 {
                return;
            }
        });
        KeyReader {
            pause,
            paused: paused_rx,
            reader: reader.thread().clone(),
        }
    }

    /// Runs `f` with the terminal as it was before watch (an editor, a question), the
    /// reader paused, then takes the terminal back.
    fn hand_over<T>(&self, terminal: &RawTerminal, f: impl FnOnce() -> T) -> Result<T> {
        while self.paused.try_recv().is_ok() {} // an acknowledgement of an earlier pause
        self.pause.store(true, Ordering::SeqCst);
        // Bounded: a reader blocked on a full queue cannot answer, and the editor must open.
        let _ = self.paused.recv_timeout(KEY_PAUSE_BOUND);
        terminal.restore();
        let result = f();
        terminal.raw()?;
        self.pause.store(false, Ordering::SeqCst);
        self.reader.unpark();
        Ok(result)
    }
}

/// Runs checks one at a time, when asked, and sends their pages.
fn spawn_checker(home: Home, timeout: Duration, events: SyncSender<Event>) -> SyncSender<()> {
    let (requests_tx, requests_rx) = mpsc::sync_channel::<()>(1);
    std::thread::spawn(move || {
        while requests_rx.recv().is_ok() {
            let (page, passed) = match check_page(&home, timeout) {
                Ok(checked) => checked,
                Err(error) => (error_line(&error), false),
            };
            if events.send(Event::Checked { page, passed }).is_err() {
                return;
            }
        }
    });
    requests_tx
}

fn check_page(home: &Home, timeout: Duration) -> Result<(String, bool)> {
    let catalog = super::catalog()?;
    let checked = hunt::check(
        home,
        &catalog,
        timeout,
        &Options::default_cargo(),
        super::hunt::cargo_colour(),
    )?;
    Ok((
        pages::checked(home, &catalog, &checked),
        checked.verdict == Verdict::Passed,
    ))
}

fn error_line(error: &anyhow::Error) -> String {
    let chain: Vec<String> = error.chain().map(|cause| cause.to_string()).collect();
    format!(
        "{BAD}bughunt: {}{BAD:#}\n",
        chain.join(": ").replace('\n', " ")
    )
}

/// Watches the home's hunts and its `.bughunt/` folder (for the probe).
fn watch_files(
    home: &Home,
    events: SyncSender<Event>,
) -> Result<notify_debouncer_mini::Debouncer<notify::RecommendedWatcher>> {
    let mut debouncer = notify_debouncer_mini::new_debouncer(
        watch::DEBOUNCE,
        move |result: notify_debouncer_mini::DebounceEventResult| {
            let event = match result {
                Ok(changes) => Event::Changed(changes.into_iter().map(|c| c.path).collect()),
                Err(error) => Event::WatchError(error.to_string()),
            };
            // A full queue already holds a change: this one adds nothing.
            if let Err(TrySendError::Disconnected(_)) = events.try_send(event) {}
        },
    )
    .context("cannot watch files here")?;
    debouncer
        .watcher()
        .watch(&home.root.join("hunts"), RecursiveMode::Recursive)
        .context("cannot watch the hunts folder")?;
    debouncer
        .watcher()
        .watch(&home.root.join(".bughunt"), RecursiveMode::NonRecursive)
        .context("cannot watch the .bughunt folder")?;
    Ok(debouncer)
}

/// What the screen shows, redrawn whole after each change.
#[derive(Default)]
struct Screen {
    /// The last check's page.
    verdict: String,
    /// What came after it: a hint, a reveal, a new hunt's page.
    note: String,
    /// One line for the status: a refused key, a change of mode.
    said: String,
}

fn print(text: &str) -> Result<()> {
    let mut out = anstream::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Clears the screen and puts the cursor home (ESC [2J, ESC [H; not the scrollback, so a
/// long compile error stays readable above). Written past anstream, which would strip it
/// with the colours under `NO_COLOR`: clearing is watch's layout, not a style.
fn clear_screen() -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(b"\x1b[2J\x1b[H")?;
    out.flush()?;
    Ok(())
}

fn redraw(screen: &Screen, watch: &Watch, header: &str) -> Result<()> {
    clear_screen()?;
    let mut page = String::from(header);
    page.push_str(&screen.verdict);
    if !screen.note.is_empty() {
        page.push('\n');
        page.push_str(&screen.note);
    }
    page.push('\n');
    print(&page)?;
    print_status(screen, watch)
}

fn print_status(screen: &Screen, watch: &Watch) -> Result<()> {
    let mut line = String::new();
    if !screen.said.is_empty() {
        line.push_str(&format!("{STRONG}{}{STRONG:#}\n", screen.said));
    }
    line.push_str(&format!("{STRONG}{}{STRONG:#}\n", watch.status_line()));
    print(&line)
}

/// The header: which hunt, and its file as a link.
fn header(home: &Home) -> String {
    let catalog = match super::catalog() {
        Ok(catalog) => catalog,
        Err(_) => return String::new(),
    };
    match hunt::current(home, &catalog) {
        Ok((_, current, pick)) => {
            let lib = hunt::lib_path(&current);
            format!(
                "{STRONG}bughunt watch{STRONG:#} · {} · {}\n\n",
                pick.key(),
                file_link(&home.root.join(&lib), &lib)
            )
        }
        Err(_) => String::new(),
    }
}

/// The current hunt's `src/` folder.
fn current_src(home: &Home) -> Result<PathBuf> {
    let catalog = super::catalog()?;
    let (_, current, _) = hunt::current(home, &catalog)?;
    Ok(home.root.join(&current.dir).join("src"))
}

fn is_source_save(path: &Path, src: &Path) -> bool {
    path.starts_with(src) && path.extension().is_some_and(|e| e == "rs")
}

/// A fingerprint of the `.rs` files in `src` (names and bytes). A change event whose files
/// hash as before is no save: `start` writing a new hunt, an editor touching a file, the
/// second batch of one slow write.
fn sources_hash(src: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut files: Vec<PathBuf> = std::fs::read_dir(src)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        std::fs::read(&file).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}

pub fn run(args: Args) -> CmdResult {
    let home = Home::find_from_current_dir()?;
    let mut src = current_src(&home)?;
    let mut sources = sources_hash(&src);
    if !std::io::stdin().is_terminal() {
        bail!("watch reads keys from a terminal; run it in one, or use `bughunt check`");
    }
    let terminal = RawTerminal::enter()?;
    let probe = home.root.join(PROBE_FILE);
    // However watch ends (a key, an error), what it started ends before the terminal is
    // given back.
    let cleanup = EndChildren {
        probe: probe.clone(),
    };
    let (events_tx, events) = mpsc::sync_channel::<Event>(watch::INPUT_QUEUE_MAX);
    let keys = KeyReader::spawn(events_tx.clone());
    let checker = spawn_checker(
        home.clone(),
        Duration::from_secs(args.timeout),
        events_tx.clone(),
    );
    let mode = if args.manual {
        Mode::Manual
    } else {
        Mode::Auto
    };
    let (mut state, first) = Watch::new(mode);
    let mut screen = Screen::default();
    let mut probe_deadline = None;
    // The watcher lives as long as this binding: dropping it stops the events.
    let _watcher = match mode {
        Mode::Manual => None,
        Mode::Auto => match watch_files(&home, events_tx.clone()) {
            Ok(watcher) => {
                fs_write_probe(&probe)?;
                probe_deadline = Some(Instant::now() + watch::PROBE_BOUND);
                Some(watcher)
            }
            Err(error) => {
                screen.said = format!(
                    "{}: manual mode, press c to check.",
                    error_line(&error).trim_end()
                );
                state.step(Input::ProbeTimedOut);
                None
            }
        },
    };
    let mut head = header(&home);
    // The first check's status line follows.
    clear_screen()?;
    print(&head)?;
    let mut pending = first;
    let outcome = loop {
        let mut quit = false;
        for action in std::mem::take(&mut pending) {
            match action {
                Action::StartCheck => {
                    // At most one request waits: the state machine starts no check while one runs.
                    let _ = checker.try_send(());
                    print_status(&screen, &state)?;
                }
                Action::ShowHint => {
                    let catalog = super::catalog()?;
                    screen.note = match hunt::hint(&home, &catalog) {
                        Ok(hints) => pages::hints(&hints),
                        Err(error) => error_line(&error),
                    };
                    screen.said.clear();
                    redraw(&screen, &state, &head)?;
                }
                Action::Explain => {
                    print("\n")?;
                    let explained = keys.hand_over(&terminal, super::hunt::explain_asking)?;
                    if let Err(error) = explained {
                        print(&error_line(&error))?;
                    }
                    screen.said.clear();
                    print("\n")?;
                    print_status(&screen, &state)?;
                }
                Action::Next => {
                    let catalog = super::catalog()?;
                    let page = next_hunt(&home, &catalog);
                    screen.verdict = page;
                    screen.note.clear();
                    screen.said.clear();
                    src = current_src(&home)?;
                    sources = sources_hash(&src);
                    head = header(&home);
                    let home = home.clone();
                    // Built in a session of watch's, so `q` ends it too.
                    std::thread::spawn(move || {
                        if let Ok(catalog) = super::catalog() {
                            let _ = hunt::prebuild(&home, &catalog, &Options::default_cargo());
                        }
                    });
                }
                Action::AskReveal => {
                    screen.said =
                        "Reveal the fix? It is recorded as revealed. y to reveal, any other key to cancel.".to_owned();
                    print_status(&screen, &state)?;
                }
                Action::Reveal => {
                    let catalog = super::catalog()?;
                    screen.note = match hunt::reveal(&home, &catalog) {
                        Ok((hunt, fixed)) => pages::revealed(&hunt, &fixed),
                        Err(error) => error_line(&error),
                    };
                    screen.said.clear();
                }
                Action::OpenEditor => {
                    let lib = src.join("lib.rs");
                    match keys.hand_over(&terminal, || super::editor::open(&lib))? {
                        Ok(()) => screen.said.clear(),
                        Err(error) => screen.said = error_line(&error).trim_end().to_owned(),
                    }
                    redraw(&screen, &state, &head)?;
                }
                Action::Say(words) => {
                    screen.said = words;
                    print_status(&screen, &state)?;
                }
                Action::Status => redraw(&screen, &state, &head)?,
                Action::Quit => quit = true,
            }
        }
        if quit {
            break Ok(Exit::Success);
        }
        let event = match probe_deadline {
            Some(deadline) => {
                match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(event) => event,
                    Err(RecvTimeoutError::Timeout) => {
                        probe_deadline = None;
                        pending = state.step(Input::ProbeTimedOut);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break Ok(Exit::Success),
                }
            }
            None => match events.recv() {
                Ok(event) => event,
                Err(_) => break Ok(Exit::Success),
            },
        };
        pending = match event {
            Event::Key(key) => state.step(Input::Key(key)),
            Event::Changed(paths) => {
                let mut inputs = Vec::new();
                if probe_deadline.is_some() && paths.iter().any(|p| p == &probe) {
                    probe_deadline = None;
                    inputs.extend(state.step(Input::ProbeSeen));
                }
                if paths.iter().any(|p| is_source_save(p, &src)) {
                    let now = sources_hash(&src);
                    if now != sources {
                        sources = now;
                        inputs.extend(state.step(Input::Saved));
                    }
                }
                inputs
            }
            Event::WatchError(error) => {
                screen.said = format!("The file watcher failed ({error}); press c to check.");
                vec![Action::Status]
            }
            Event::Checked { page, passed } => {
                screen.verdict = page;
                screen.note.clear();
                screen.said.clear();
                let actions = state.step(Input::CheckFinished { passed });
                // The verdict shows at once, even when a queued re-check starts now.
                if !actions.contains(&Action::Status) {
                    redraw(&screen, &state, &head)?;
                }
                actions
            }
        };
    };
    // Quit: every child ends (a running check's cargo and tests, a prebuild), and a check
    // that was running reports back before watch leaves, so nothing it started outlives it.
    process::end_live_children();
    if state.checking {
        let deadline = Instant::now() + QUIT_BOUND;
        while let Ok(event) =
            events.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if matches!(event, Event::Checked { .. }) {
                break;
            }
        }
        process::end_live_children();
    }
    drop(cleanup);
    drop(terminal);
    print("\n")?;
    outcome
}

/// Ends every child session of watch's and removes the probe file when dropped.
struct EndChildren {
    probe: PathBuf,
}

impl Drop for EndChildren {
    fn drop(&mut self) {
        process::end_live_children();
        let _ = std::fs::remove_file(&self.probe);
    }
}

fn fs_write_probe(probe: &Path) -> Result<()> {
    std::fs::write(probe, format!("{}\n", std::process::id()))
        .with_context(|| format!("cannot write {}", probe.display()))
}

/// A challenge in the same category, else the next hunt in the curriculum: its page.
fn next_hunt(home: &Home, catalog: &bughunt_core::catalog::Catalog) -> String {
    let result = (|| -> Result<String> {
        Ok(match hunt::challenge(home, catalog)? {
            hunt::Challenged::Started(started) => {
                pages::challenged(home, catalog, &hunt::Challenged::Started(started))
            }
            exhausted @ hunt::Challenged::Exhausted { .. } => {
                let mut page = pages::challenged(home, catalog, &exhausted);
                let started = hunt::start(home, catalog, &StartRequest::default())?;
                page.push('\n');
                page.push_str(&pages::started(home, catalog, &started));
                page
            }
            not_yet @ hunt::Challenged::NotYet { .. } => pages::challenged(home, catalog, &not_yet),
        })
    })();
    result.unwrap_or_else(|error| error_line(&error))
}
