//! The HTML pages, seen as a person sees them: every demo's page (and a check's page) is
//! loaded in headless Chromium, driven over the DevTools protocol on a pipe. Each page must
//! load, log no error, throw nothing, fetch nothing but itself, and paint something that is
//! not blank; every SVG in it must be well-formed XML.
//!
//! Without a browser the test says, loudly, that it was skipped; under CI (the `CI`
//! variable set) a missing browser is a failure. `BUGHUNT_WRITE_PICTURE=1` also writes the
//! README's picture, docs/demo-page.png.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use base64::Engine;
use serde_json::{json, Value};

/// The bound on any one answer or event from the browser.
const ANSWER_BOUND: Duration = Duration::from_secs(60);
/// The size of the window pages are drawn in.
const VIEWPORT: (u32, u32) = (1100, 900);

fn bughunt() -> Command {
    Command::cargo_bin("bughunt").unwrap()
}

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BUGHUNT_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A headless Chromium driven over `--remote-debugging-pipe`: commands go to its fd 3 and
/// answers and events come from its fd 4, each a JSON text ended by a NUL byte. A thread
/// reads the answers into a channel, so every wait has a deadline. Dropping it kills the
/// browser and everything it started (its own process group).
struct Browser {
    child: Child,
    to_browser: std::io::PipeWriter,
    from_browser: Receiver<Value>,
    /// Events read while waiting for something else, oldest first.
    events: VecDeque<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the browser's own process group, which it leads.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Browser {
    fn launch(program: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (commands_read, commands_write) = std::io::pipe().unwrap();
        let (answers_read, answers_write) = std::io::pipe().unwrap();
        let (read_fd, write_fd) = (commands_read.as_raw_fd(), answers_write.as_raw_fd());
        let mut command = Command::new(program);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. The
        // pipe ends are first copied above 10, so moving them to 3 and 4 never overwrites
        // one with the other.
        unsafe {
            command.pre_exec(move || {
                let high_read = libc::fcntl(read_fd, libc::F_DUPFD_CLOEXEC, 10);
                let high_write = libc::fcntl(write_fd, libc::F_DUPFD_CLOEXEC, 10);
                if high_read < 0
                    || high_write < 0
                    || libc::dup2(high_read, 3) < 0
                    || libc::dup2(high_write, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        // The browser holds its ends now; ours close, so its exit ends the reader below.
        drop(commands_read);
        drop(answers_write);
        let (sender, from_browser) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = answers_read;
            let mut pending: Vec<u8> = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let read = match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(read) => read,
                };
                pending.extend_from_slice(&chunk[..read]);
                while let Some(end) = pending.iter().position(|b| *b == 0) {
                    let message: Vec<u8> = pending.drain(..=end).collect();
                    let value = serde_json::from_slice(&message[..end]).unwrap();
                    if sender.send(value).is_err() {
                        return;
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            to_browser: commands_write,
            from_browser,
            events: VecDeque::new(),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Page", "Runtime", "Log", "Network"] {
            browser.call(&format!("{domain}.enable"), json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": VIEWPORT.0, "height": VIEWPORT.1, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    fn next_message(&mut self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.from_browser.recv_timeout(left) {
            Ok(value) => value,
            Err(RecvTimeoutError::Timeout) => {
                panic!("the browser did not answer within {ANSWER_BOUND:?} ({waiting_for})")
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the browser closed its pipe while we waited for {waiting_for}")
            }
        }
    }

    /// Sends a command (to the page, once attached) and waits for its answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser.write_all(&bytes).unwrap();
        let deadline = Instant::now() + ANSWER_BOUND;
        loop {
            let value = self.next_message(deadline, method);
            if value["id"] == json!(id) {
                if let Some(error) = value.get("error") {
                    panic!("{method} failed: {error}");
                }
                return value["result"].clone();
            }
            self.events.push_back(value);
        }
    }

    /// Waits for an event of the page, keeping every event read on the way.
    fn wait_for(&mut self, method: &str) {
        if self.events.iter().any(|e| e["method"] == json!(method)) {
            return;
        }
        let deadline = Instant::now() + ANSWER_BOUND;
        loop {
            let value = self.next_message(deadline, method);
            let found = value["method"] == json!(method);
            self.events.push_back(value);
            if found {
                return;
            }
        }
    }
}

/// What one page showed in the browser.
struct Seen {
    problems: Vec<String>,
    screenshot: Vec<u8>,
}

/// Loads a page, waits for its load event, and collects what went wrong: console errors,
/// uncaught exceptions, logged errors, requests for anything but the page itself, SVGs
/// that did not render. The screenshot is of the window, or of the `whole` page.
fn visit(browser: &mut Browser, page: &Path, whole: bool) -> Seen {
    let url = format!("file://{}", page.display());
    browser.events.clear();
    browser.call("Page.navigate", json!({"url": url}));
    browser.wait_for("Page.loadEventFired");
    let svgs_drawn = browser.call(
        "Runtime.evaluate",
        json!({"expression": "[...document.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().width > 100 && s.getBoundingClientRect().height > 40).length", "returnByValue": true}),
    )["result"]["value"]
        .as_u64()
        .unwrap();
    let mut capture = json!({"format": "png", "captureBeyondViewport": false});
    if whole {
        let size = browser.call("Page.getLayoutMetrics", json!({}))["cssContentSize"].clone();
        capture = json!({"format": "png", "captureBeyondViewport": true,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}});
    }
    let screenshot = browser.call("Page.captureScreenshot", capture)["data"]
        .as_str()
        .map(|data| {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap()
        })
        .unwrap();
    let mut problems = Vec::new();
    for event in &browser.events {
        let params = &event["params"];
        match event["method"].as_str().unwrap_or_default() {
            "Runtime.exceptionThrown" => problems.push(format!("uncaught exception: {params}")),
            "Runtime.consoleAPICalled" if params["type"] == json!("error") => {
                problems.push(format!("console error: {params}"))
            }
            "Log.entryAdded" if params["entry"]["level"] == json!("error") => {
                problems.push(format!("logged error: {}", params["entry"]))
            }
            "Network.requestWillBeSent" => {
                let requested = params["request"]["url"].as_str().unwrap_or_default();
                if requested != url {
                    problems.push(format!("a network request for {requested}"));
                }
            }
            _ => {}
        }
    }
    let text = std::fs::read_to_string(page).unwrap();
    let svgs_in_file = svgs(&text).len() as u64;
    if svgs_drawn != svgs_in_file {
        problems.push(format!(
            "{svgs_drawn} of {svgs_in_file} SVGs were drawn at a visible size"
        ));
    }
    Seen {
        problems,
        screenshot,
    }
}

/// The README's picture: the open page from "The run" to the depth chart, at 3/4 scale.
fn write_picture(browser: &mut Browser) {
    let expression = "(() => { const top = document.getElementById('run').getBoundingClientRect().top + scrollY - 12; \
        const bottom = document.getElementById('over-time').getBoundingClientRect().bottom + scrollY + 12; \
        return [top, bottom - top]; })()";
    let span = browser.call(
        "Runtime.evaluate",
        json!({"expression": expression, "returnByValue": true}),
    )["result"]["value"]
        .clone();
    let clip = json!({"x": 0, "y": span[0], "width": VIEWPORT.0, "height": span[1], "scale": 0.75});
    let data = browser.call(
        "Page.captureScreenshot",
        json!({"format": "png", "captureBeyondViewport": true, "clip": clip}),
    )["data"]
        .as_str()
        .map(|data| {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap()
        })
        .unwrap();
    let picture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/demo-page.png");
    std::fs::write(&picture, &data).unwrap();
}

/// Every `<svg>…</svg>` in a page's text.
fn svgs(page: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..]
            .find("</svg>")
            .map(|end| start + end + "</svg>".len())
            .expect("an <svg> is closed");
        found.push(&rest[start..end]);
        rest = &rest[end..];
    }
    found
}

/// The screenshot is a real picture: over its top part, many colours, and a good share of
/// pixels that are not the background.
fn assert_not_blank(name: &str, png_bytes: &[u8]) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert!(
        info.width >= 400 && info.height >= 300,
        "{name}: the screenshot is {}x{}",
        info.width,
        info.height
    );
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buffer[..info.buffer_size()]
        .chunks(channels)
        .map(|p| &p[..3])
        .collect();
    let background = pixels[0];
    let different = pixels.iter().filter(|p| **p != background).count();
    let mut colours: Vec<&[u8]> = pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() >= 16,
        "{name}: the page shows only {} colours",
        colours.len()
    );
    assert!(
        different * 50 > pixels.len(),
        "{name}: only {different} of {} pixels differ from the background",
        pixels.len()
    );
}

fn demo_ids() -> Vec<String> {
    let output = bughunt().args(["list", "--json"]).output().unwrap();
    assert!(output.status.success());
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .filter(|t| t["demo"] == json!(true))
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A failing check of a schedule-explored hunt, as the kit reports it: its steps name the
/// learner's lines, its trace shows the two threads.
fn failing_check_page(dir: &Path) -> PathBuf {
    use bughunt_core::home::Home;
    use bughunt_core::hunt::{Checked, Verdict};
    use bughunt_kit::report::{CheckReport, StageReport, Status, Step};
    use bughunt_kit::trace::{EventKind, Trace};

    let trace = Trace::new();
    trace
        .event("worker", EventKind::Note)
        .note("holds queue, wants stats")
        .record();
    trace
        .event("reporter", EventKind::Note)
        .note("holds stats, wants queue")
        .record();
    trace
        .event("verdict", EventKind::Note)
        .note("deadlock: every thread waits for a lock another holds")
        .record();
    let step = |thread: &str, line: u32, code: &str| Step {
        thread: thread.into(),
        file: "src/lib.rs".into(),
        line,
        code: code.into(),
        effect: None,
    };
    let stage = |id: &str, title: &str, status: Status| StageReport {
        id: id.into(),
        title: title.into(),
        status,
        mentor: "Two locks taken in two orders: find the order every path agrees on.".into(),
        detail: None,
        location: None,
        replay: None,
        elapsed_ms: 3,
        trace: Vec::new(),
        steps: Vec::new(),
    };
    let mut failing = stage("schedules", "every schedule <ends>", Status::Failed);
    failing.detail = Some("deadlock after 4 steps in schedule 7 of 31".into());
    failing.location = Some(
        dir.join("hunts/01/tests/checks.rs:40")
            .display()
            .to_string(),
    );
    failing.replay = Some("shuttle check_dfs, 31 schedules".into());
    failing.trace = trace.events();
    failing.steps = vec![
        step("worker", 21, "let queue = self.queue.lock().unwrap();"),
        step("reporter", 34, "let stats = self.stats.lock().unwrap();"),
        step("worker", 22, "let mut stats = self.stats.lock().unwrap();"),
        step(
            "reporter",
            35,
            "let queue = self.queue.lock().unwrap(); // <waits>",
        ),
    ];
    let report = CheckReport {
        format: bughunt_kit::report::REPORT_FORMAT,
        template: "queue-and-stats".into(),
        nonce: String::new(),
        stages: vec![
            stage("compiles", "it builds", Status::Passed),
            failing,
            stage("stress", "under load", Status::NotRun),
        ],
    };
    let checked = Checked {
        key: "queue-and-stats/reporter-takes-stats-first".into(),
        lib: "hunts/01-queue-and-stats/src/lib.rs".into(),
        verdict: Verdict::Failed("schedules".into()),
        report: Some(report),
        cargo_stderr: String::new(),
        restored: Vec::new(),
        compiled: Vec::new(),
        timeout: Duration::from_secs(60),
        first_pass: false,
        hints_left: 2,
        completed_category: None,
    };
    let home = Home {
        root: dir.to_owned(),
    };
    let page = dir.join("check.html");
    let html = bughunt_core::html::check_page(&home, &checked);
    assert!(html.contains("every schedule &lt;ends&gt;"));
    assert!(html.contains("src/lib.rs:35 · where it broke"));
    std::fs::write(&page, html).unwrap();
    page
}

/// Every demo's page and a failing check's page load in Chromium without errors or network
/// requests, paint a real picture, and hold only well-formed SVG; the demo pages are the
/// same bytes twice.
#[test]
fn every_page_renders_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let mut pages = Vec::new();
    for id in demo_ids() {
        let page = dir.path().join(format!("{id}.html"));
        let output = bughunt()
            .args(["demo", &id, "--format", "html", "--output"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            page.display().to_string(),
            "{id}: the page's path is printed"
        );
        let again = dir.path().join(format!("{id}-again.html"));
        bughunt()
            .args(["demo", &id, "--format", "html", "--output"])
            .arg(&again)
            .output()
            .unwrap();
        assert_eq!(
            std::fs::read(&page).unwrap(),
            std::fs::read(&again).unwrap(),
            "{id}: the page is not deterministic"
        );
        pages.push((id, page));
    }
    assert!(pages.len() >= 10, "only {} demos", pages.len());
    pages.push(("check".to_owned(), failing_check_page(dir.path())));

    for (name, page) in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let svgs = svgs(&text);
        assert!(!svgs.is_empty(), "{name}: no pictures");
        for svg in svgs {
            if let Err(error) = roxmltree::Document::parse(svg) {
                panic!("{name}: an SVG is not well-formed XML: {error}");
            }
        }
        let outside_icon = text.replace("<link rel=\"icon\" href=\"data:,\">", "");
        for forbidden in ["<script", "src=", "href=", "@import", "url("] {
            assert!(
                !outside_icon.contains(forbidden),
                "{name}: the page holds {forbidden}"
            );
        }
    }

    let Some(program) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("no Chromium found (CI must install the `chromium` package; .ci/run does)");
        }
        eprintln!("\n!!!!!!!!\n!!! SKIPPED: pages were not checked in a browser: no chromium on PATH (apt-get install chromium, or set BUGHUNT_CHROMIUM)\n!!!!!!!!\n");
        return;
    };
    let mut browser = Browser::launch(&program);
    for (name, page) in &pages {
        let seen = visit(&mut browser, page, false);
        assert!(
            seen.problems.is_empty(),
            "{name}: {}",
            seen.problems.join("; ")
        );
        assert_not_blank(name, &seen.screenshot);
        if let Some(dir) = std::env::var_os("BUGHUNT_SCREENSHOTS") {
            // For looking at the pages whole: `BUGHUNT_SCREENSHOTS=DIR`.
            let whole = visit(&mut browser, page, true);
            std::fs::write(
                Path::new(&dir).join(format!("{name}.png")),
                &whole.screenshot,
            )
            .unwrap();
        }
        if name == "bounded-queue" && std::env::var_os("BUGHUNT_WRITE_PICTURE").is_some() {
            write_picture(&mut browser);
        }
    }

    // The checks above can fail: a page that logs an error, throws, fetches something and
    // paints nothing is caught on every count.
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><head><link rel=\"icon\" href=\"data:,\"></head><body>\
         <img src=\"http://127.0.0.1:9/x.png\">\
         <script>console.error('drawn wrong'); throw new Error('uncaught');</script>\
         </body></html>",
    )
    .unwrap();
    let seen = visit(&mut browser, &bad, false);
    let problems = seen.problems.join("\n");
    for expected in [
        "console error",
        "uncaught exception",
        "a network request for http://127.0.0.1:9/x.png",
    ] {
        assert!(
            problems.contains(expected),
            "not seen: {expected} in {problems}"
        );
    }
    let blank = std::panic::catch_unwind(|| assert_not_blank("bad", &seen.screenshot));
    assert!(blank.is_err(), "a blank page passed as a picture");
}

/// Outside a hunt home, a demo page goes to `bughunt-pages/` in the temporary folder, and
/// its path is the one line printed.
#[test]
fn demo_page_goes_to_the_temporary_folder_outside_a_home() {
    let temporary = tempfile::tempdir().unwrap();
    let output = bughunt()
        .args(["demo", "message-loss", "--format", "html"])
        .current_dir(temporary.path())
        .env("TMPDIR", temporary.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let expected = temporary
        .path()
        .join("bughunt-pages/demo-visibility-timeout.html");
    assert_eq!(printed, format!("{}\n", expected.display()));
    assert!(std::fs::read_to_string(&expected)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));
}

/// When nothing can open the page, the page is still written and one line says where it is.
#[test]
fn open_without_a_browser_says_where_the_page_is() {
    let temporary = tempfile::tempdir().unwrap();
    let page = temporary.path().join("page.html");
    let output = bughunt()
        .args([
            "demo",
            "message-loss",
            "--format",
            "html",
            "--open",
            "--output",
        ])
        .arg(&page)
        .env("BROWSER", temporary.path().join("no-such-browser"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("bughunt: the page is written but could not be opened; open "));
    assert!(stderr.contains(&page.display().to_string()));
    assert!(page.is_file());
}

/// `--output` and `--open` belong to the HTML page; with another format they are refused.
#[test]
fn output_without_html_is_refused() {
    let output = bughunt()
        .args(["demo", "message-loss", "--output", "x.txt"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--format html"));
}
