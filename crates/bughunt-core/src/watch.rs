//! The logic of `bughunt watch`, apart from any terminal, file watcher or cargo.
//!
//! Watch is a loop over [`Input`]s (a save, a key, a finished check, the probe of file
//! events) that answers each with [`Action`]s for the binary to carry out. Everything that
//! decides something lives here, so it is tested without a terminal:
//!
//! - **One check at a time.** A check starts only when none runs. A save or `c` during a
//!   check queues exactly one re-check, however many come: the re-check reads the files as
//!   they are when it starts, so one is enough for every save before it.
//! - **Manual mode.** Where file events never arrive (network drives, WSL, some containers)
//!   saves are not seen; a probe file written at start must come back as an event within
//!   [`PROBE_BOUND`], else watch says so and switches to manual mode (`c` checks). In manual
//!   mode saves are ignored.
//! - **Keys work when they make sense.** `e` (explain) and `n` (next hunt) after a pass;
//!   `r` (reveal) asks first and the next key answers; `e`, `n` and `r` wait for a running
//!   check to finish. The status line lists exactly the keys that work now.

use std::time::Duration;

/// How long saves are gathered into one before a check starts. rustlings waits 200 ms; an
/// editor's save (write, or write to a temporary and rename) lands within a few, and a save
/// that leaves the sources as they were starts nothing, so 50 ms (watchexec's default) keeps
/// save-to-verdict within 100 ms of a plain warm `check`.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// How long the probe file's event may take to arrive before watch decides that file events
/// do not reach it: the debounce plus a wide margin for a busy machine.
pub const PROBE_BOUND: Duration = Duration::from_secs(3);

/// How many inputs may wait for the loop (saves, keys, a finished check). Senders of saves
/// drop theirs when it is full: one waiting save is as good as many.
pub const INPUT_QUEUE_MAX: usize = 64;

/// A key the learner pressed, as watch reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// `h`: the next hint.
    Hint,
    /// `c`: check now.
    Check,
    /// `e`: explain (after a pass).
    Explain,
    /// `n`: the next hunt or challenge (after a pass).
    Next,
    /// `r`: reveal the fix (asks first).
    Reveal,
    /// `y`: yes (to the reveal question).
    Yes,
    /// `o`: open the learner's file in the editor.
    Open,
    /// `q`, Ctrl-C or Ctrl-D.
    Quit,
    /// Anything else.
    Other,
}

impl Key {
    /// The key for a byte read from the terminal (raw mode: Ctrl-C arrives as 0x03).
    pub fn from_byte(byte: u8) -> Key {
        match byte {
            b'h' | b'H' => Key::Hint,
            b'c' | b'C' => Key::Check,
            b'e' | b'E' => Key::Explain,
            b'n' | b'N' => Key::Next,
            b'r' | b'R' => Key::Reveal,
            b'y' | b'Y' => Key::Yes,
            b'o' | b'O' => Key::Open,
            b'q' | b'Q' | 0x03 | 0x04 => Key::Quit,
            _ => Key::Other,
        }
    }
}

/// What happens to watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file in the hunt's `src/` changed (already debounced).
    Saved,
    Key(Key),
    /// The running check ended; `passed` when every stage passed.
    CheckFinished {
        passed: bool,
    },
    /// The probe file's event arrived: file events work here.
    ProbeSeen,
    /// [`PROBE_BOUND`] passed without the probe's event.
    ProbeTimedOut,
}

/// What the binary is to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a check of the current hunt (never while one runs).
    StartCheck,
    ShowHint,
    Explain,
    /// A challenge in the same category, else the next hunt; then the new hunt's page.
    Next,
    /// Ask whether to reveal; the next key answers.
    AskReveal,
    Reveal,
    OpenEditor,
    /// Say something on the status line (a refused key, a change of mode).
    Say(String),
    /// Redraw the status line: the keys that work changed.
    Status,
    Quit,
}

/// How saves are noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every save checks.
    Auto,
    /// Only `c` checks.
    Manual,
}

/// Watch's state: what runs, what waits, what the learner may do.
#[derive(Debug)]
pub struct Watch {
    pub mode: Mode,
    /// A check is running.
    pub checking: bool,
    /// A save (or `c`) came during the running check: one re-check follows it.
    pub queued: bool,
    /// The last check of this hunt passed.
    pub passed: bool,
    /// The reveal question is open: `y` reveals, any other key cancels.
    pub asking_reveal: bool,
    /// The probe's event is awaited.
    pub probing: bool,
}

impl Watch {
    /// A new watch and its first actions: a check of the hunt as it is, so the learner sees
    /// where they stand. In auto mode the probe is awaited.
    pub fn new(mode: Mode) -> (Watch, Vec<Action>) {
        let watch = Watch {
            mode,
            checking: true,
            queued: false,
            passed: false,
            asking_reveal: false,
            probing: mode == Mode::Auto,
        };
        (watch, vec![Action::StartCheck])
    }

    /// A check now, or one queued after the running one.
    fn check(&mut self) -> Vec<Action> {
        if self.checking {
            self.queued = true;
            Vec::new()
        } else {
            self.checking = true;
            vec![Action::StartCheck]
        }
    }

    /// The actions for `input`.
    pub fn step(&mut self, input: Input) -> Vec<Action> {
        if self.asking_reveal {
            if let Input::Key(key) = input {
                self.asking_reveal = false;
                return match key {
                    Key::Yes => vec![Action::Reveal, Action::Status],
                    Key::Quit => vec![Action::Quit],
                    _ => vec![Action::Say("Not revealed.".to_owned())],
                };
            }
        }
        match input {
            Input::Saved => match self.mode {
                Mode::Auto => self.check(),
                Mode::Manual => Vec::new(),
            },
            Input::CheckFinished { passed } => {
                self.checking = false;
                self.passed = passed;
                if self.queued {
                    self.queued = false;
                    self.check()
                } else {
                    vec![Action::Status]
                }
            }
            Input::ProbeSeen => {
                self.probing = false;
                Vec::new()
            }
            Input::ProbeTimedOut if self.probing => {
                self.probing = false;
                self.mode = Mode::Manual;
                vec![Action::Say(
                    "No file events arrive here (a network drive, WSL or a container?): manual mode, press c to check after you save.".to_owned(),
                )]
            }
            Input::ProbeTimedOut => Vec::new(),
            Input::Key(key) => self.key(key),
        }
    }

    fn key(&mut self, key: Key) -> Vec<Action> {
        let wait = || vec![Action::Say("Wait for the check to finish.".to_owned())];
        match key {
            Key::Quit => vec![Action::Quit],
            Key::Check => self.check(),
            Key::Hint => vec![Action::ShowHint],
            Key::Open => vec![Action::OpenEditor],
            Key::Explain | Key::Next | Key::Reveal if self.checking => wait(),
            Key::Explain if self.passed => vec![Action::Explain],
            Key::Next if self.passed => {
                self.passed = false;
                vec![Action::Next, Action::Status]
            }
            Key::Explain | Key::Next => vec![Action::Say(
                "That comes after a pass: fix the bug and save.".to_owned(),
            )],
            Key::Reveal => {
                self.asking_reveal = true;
                vec![Action::AskReveal]
            }
            Key::Yes | Key::Other => Vec::new(),
        }
    }

    /// The keys that work now, for the status line.
    pub fn keys(&self) -> Vec<(&'static str, &'static str)> {
        if self.asking_reveal {
            return vec![
                ("y", "reveal the fix (recorded)"),
                ("any other key", "cancel"),
            ];
        }
        let mut keys = Vec::new();
        if self.passed && !self.checking {
            keys.push(("e", "explain"));
            keys.push(("n", "next hunt"));
        }
        keys.push(("h", "hint"));
        keys.push(("c", "check now"));
        if !self.checking && !self.passed {
            keys.push(("r", "reveal"));
        }
        keys.push(("o", "open in editor"));
        keys.push(("q", "quit"));
        keys
    }

    /// The status line: what watch is doing, then the keys that work now.
    pub fn status_line(&self) -> String {
        let doing = match (self.checking, self.queued, self.mode) {
            (true, true, _) => "checking (another check follows: you saved meanwhile)",
            (true, false, _) => "checking…",
            (false, _, Mode::Auto) => "watching: save to check",
            (false, _, Mode::Manual) => "manual mode: press c to check",
        };
        let keys: Vec<String> = self
            .keys()
            .iter()
            .map(|(key, what)| format!("{key} {what}"))
            .collect();
        format!("[{doing}]  {}", keys.join(" · "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(mode: Mode) -> Watch {
        let (watch, actions) = Watch::new(mode);
        assert_eq!(actions, vec![Action::StartCheck]);
        watch
    }

    /// Many saves during a check queue exactly one re-check, which starts when the check
    /// ends; no second check ever starts while one runs.
    #[test]
    fn saves_during_a_check_queue_one_recheck() {
        let mut watch = started(Mode::Auto);
        for _ in 0..5 {
            assert_eq!(watch.step(Input::Saved), vec![]);
            assert_eq!(watch.step(Input::Key(Key::Check)), vec![]);
        }
        assert!(watch.queued);
        assert_eq!(
            watch.step(Input::CheckFinished { passed: false }),
            vec![Action::StartCheck]
        );
        assert!(watch.checking && !watch.queued);
        assert_eq!(
            watch.step(Input::CheckFinished { passed: true }),
            vec![Action::Status]
        );
        assert!(!watch.checking && watch.passed);
    }

    /// A save with no check running starts one at once.
    #[test]
    fn a_save_when_idle_checks_at_once() {
        let mut watch = started(Mode::Auto);
        watch.step(Input::CheckFinished { passed: false });
        assert_eq!(watch.step(Input::Saved), vec![Action::StartCheck]);
        assert_eq!(watch.step(Input::Saved), vec![]);
    }

    /// Replaying any sequence of inputs never starts a check while one runs, and never
    /// leaves a queued re-check behind once the checks settle.
    #[test]
    fn never_two_checks_at_once() {
        let inputs = [
            Input::Saved,
            Input::Key(Key::Check),
            Input::CheckFinished { passed: false },
            Input::CheckFinished { passed: true },
            Input::Key(Key::Next),
            Input::Key(Key::Reveal),
            Input::Key(Key::Yes),
            Input::ProbeTimedOut,
        ];
        // Every sequence of length 6 over the inputs (8^6 = 262,144), from a fixed order.
        let mut sequence = [0usize; 6];
        loop {
            let (mut watch, _) = Watch::new(Mode::Auto);
            let mut running = 1u32;
            for &index in &sequence {
                let input = inputs[index];
                if let Input::CheckFinished { .. } = input {
                    if running == 0 {
                        continue; // the binary only sends it for a running check
                    }
                    running -= 1;
                }
                for action in watch.step(input) {
                    if action == Action::StartCheck {
                        running += 1;
                    }
                }
                assert!(running <= 1, "two checks at once after {sequence:?}");
                assert_eq!(watch.checking, running == 1);
                assert!(!watch.queued || watch.checking);
            }
            // advance the odometer
            let mut place = 0;
            loop {
                if place == sequence.len() {
                    return;
                }
                sequence[place] += 1;
                if sequence[place] < inputs.len() {
                    break;
                }
                sequence[place] = 0;
                place += 1;
            }
        }
    }

    /// Manual mode ignores saves; `c` still checks.
    #[test]
    fn manual_mode_checks_on_c_only() {
        let mut watch = started(Mode::Manual);
        assert!(!watch.probing);
        watch.step(Input::CheckFinished { passed: false });
        assert_eq!(watch.step(Input::Saved), vec![]);
        assert_eq!(watch.step(Input::Key(Key::Check)), vec![Action::StartCheck]);
        watch.step(Input::CheckFinished { passed: false });
        assert!(watch.status_line().contains("manual mode"));
    }

    /// No probe event within the bound: watch says so and changes to manual mode; a probe
    /// seen in time keeps auto mode, and a late timeout then changes nothing.
    #[test]
    fn a_missing_probe_means_manual_mode() {
        let mut watch = started(Mode::Auto);
        let actions = watch.step(Input::ProbeTimedOut);
        assert!(matches!(&actions[..], [Action::Say(s)] if s.contains("No file events")));
        assert_eq!(watch.mode, Mode::Manual);

        let mut watch = started(Mode::Auto);
        watch.step(Input::ProbeSeen);
        assert_eq!(watch.step(Input::ProbeTimedOut), vec![]);
        assert_eq!(watch.mode, Mode::Auto);
    }

    /// `e` and `n` wait for a pass, and for the running check; after a pass they work, and
    /// the status line offers them.
    #[test]
    fn explain_and_next_come_after_a_pass() {
        let mut watch = started(Mode::Auto);
        assert!(
            matches!(&watch.step(Input::Key(Key::Explain))[..], [Action::Say(s)] if s.contains("Wait"))
        );
        watch.step(Input::CheckFinished { passed: false });
        assert!(
            matches!(&watch.step(Input::Key(Key::Next))[..], [Action::Say(s)] if s.contains("after a pass"))
        );
        assert!(!watch.status_line().contains("e explain"));
        watch.step(Input::Saved);
        watch.step(Input::CheckFinished { passed: true });
        assert!(watch.status_line().contains("e explain · n next hunt"));
        assert_eq!(watch.step(Input::Key(Key::Explain)), vec![Action::Explain]);
        assert_eq!(
            watch.step(Input::Key(Key::Next)),
            vec![Action::Next, Action::Status]
        );
        assert!(!watch.passed, "a new hunt is not passed");
    }

    /// `r` asks first: `y` reveals, another key cancels, `q` still quits.
    #[test]
    fn reveal_asks_first() {
        let mut watch = started(Mode::Auto);
        watch.step(Input::CheckFinished { passed: false });
        assert_eq!(watch.step(Input::Key(Key::Reveal)), vec![Action::AskReveal]);
        assert!(watch.status_line().contains("y reveal"));
        // A save while asking still checks.
        assert_eq!(watch.step(Input::Saved), vec![Action::StartCheck]);
        assert!(
            matches!(&watch.step(Input::Key(Key::Hint))[..], [Action::Say(s)] if s == "Not revealed.")
        );
        watch.step(Input::CheckFinished { passed: false });
        watch.step(Input::Key(Key::Reveal));
        assert_eq!(
            watch.step(Input::Key(Key::Yes)),
            vec![Action::Reveal, Action::Status]
        );
        watch.step(Input::Key(Key::Reveal));
        assert_eq!(watch.step(Input::Key(Key::Quit)), vec![Action::Quit]);
    }

    /// `q`, Ctrl-C and Ctrl-D quit, whatever runs.
    #[test]
    fn quit_keys() {
        for byte in [b'q', 0x03, 0x04] {
            let mut watch = started(Mode::Auto);
            assert_eq!(
                watch.step(Input::Key(Key::from_byte(byte))),
                vec![Action::Quit]
            );
        }
    }
}
