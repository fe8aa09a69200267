//! `bughunt mcp` spoken to over JSON-RPC on stdio, as an assistant's client would: initialize,
//! list the tools, run a demo, then start → check (fails) → hint → (the reference fix, written
//! by the test) → check (passes) → explain.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

mod common;
use common::wait_for;

use bughunt_core::catalog::Catalog;
use serde_json::{json, Value};

/// The longest one request may take (a check builds the hunt crate).
const REPLY_BOUND: Duration = Duration::from_secs(600);

struct Client {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    next_id: u64,
}

impl Client {
    fn spawn(home: &Path) -> Client {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("bughunt"))
            .arg("mcp")
            .current_dir(home)
            .env(
                "CARGO_TARGET_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("shared-target"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::sync_channel(64);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Client {
            child,
            stdin,
            lines,
            next_id: 1,
        }
    }

    fn send(&mut self, message: Value) {
        writeln!(self.stdin, "{message}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Sends a request and waits (bounded) for the response with its id. Every line the
    /// server writes must be JSON-RPC: nothing but protocol on stdout.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let line = self
                .lines
                .recv_timeout(REPLY_BOUND)
                .unwrap_or_else(|_| panic!("no answer to {method} within {REPLY_BOUND:?}"));
            let message: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
                panic!("stdout carried something that is not JSON-RPC: {line}")
            });
            assert_eq!(message["jsonrpc"], "2.0", "{line}");
            if message["id"] == id {
                assert!(message.get("error").is_none(), "{method} failed: {line}");
                return message["result"].clone();
            }
        }
    }

    fn call(&mut self, tool: &str, arguments: Value) -> (String, Value, bool) {
        let result = self.request("tools/call", json!({"name": tool, "arguments": arguments}));
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let is_error = result["isError"] == true;
        (text, result["structuredContent"].clone(), is_error)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The whole hunt, through the protocol.
#[test]
fn an_assistant_runs_a_hunt_over_mcp() {
    let dir = tempfile::tempdir().unwrap();
    let init = assert_cmd::Command::cargo_bin("bughunt")
        .unwrap()
        .current_dir(dir.path())
        .args(["init", "home", "--no-build"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(init.status.success());
    let home = dir.path().join("home");
    assert!(home.join(".github/agents/bughunt.agent.md").is_file());
    let vscode: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join(".vscode/mcp.json")).unwrap())
            .unwrap();
    assert_eq!(vscode["servers"]["bughunt"]["args"][0], "mcp");
    let portable: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join(".mcp.json")).unwrap()).unwrap();
    assert_eq!(portable["mcpServers"]["bughunt"]["command"], "bughunt");

    let mut client = Client::spawn(&home);
    let initialized = client.request(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}),
    );
    assert_eq!(initialized["serverInfo"]["name"], "bughunt");
    assert!(initialized["instructions"]
        .as_str()
        .unwrap()
        .contains("ONLY when the learner explicitly asks"));
    client.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));

    let tools = client.request("tools/list", json!({}));
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "list",
        "demo",
        "start",
        "hint",
        "check",
        "explain",
        "reveal",
        "status",
        "challenge",
        "for",
    ] {
        assert!(
            names.contains(&expected),
            "tool {expected} missing from {names:?}"
        );
    }

    let (demo, _, error) = client.call("demo", json!({"id": "message-loss"}));
    assert!(
        !error && demo.contains("BUG DEMONSTRATION") && demo.contains("LOST"),
        "{demo}"
    );
    assert!(
        !demo.contains('\u{1b}'),
        "tool text is plain, without colour"
    );

    let (started, _, error) = client.call("start", json!({"id": "message-loss", "seed": 9}));
    assert!(!error, "{started}");
    assert!(
        started.contains("🔴 BUG HUNT: Message loss") && started.contains("Hint Level 1"),
        "{started}"
    );
    assert!(!started.contains("Hint Level 2"));
    // As after the command line's `start`, the new crate is built in the background.
    let log = home.join(".bughunt/prebuild.log");
    let log = wait_for(
        "the background build's log",
        Duration::from_secs(900),
        || std::fs::read_to_string(&log).ok(),
    );
    assert!(log.contains("built in"), "{log}");

    let (failing, verdict, _) = client.call("check", json!({}));
    assert_eq!(verdict["verdict"], "failed", "{failing}");
    assert!(failing.contains("The bug is still there"), "{failing}");

    let (hint, _, _) = client.call("hint", json!({}));
    assert!(hint.contains("Hint Level 2"), "{hint}");

    let (status, structured, _) = client.call("status", json!({}));
    let lib = home.join(
        structured["current"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{status}")),
    );
    let catalog = Catalog::embedded().unwrap();
    let template = catalog
        .template(structured["current"]["id"].as_str().unwrap())
        .unwrap();
    std::fs::write(&lib, template.fixed_rs(9)).unwrap();

    let (passing, verdict, _) = client.call("check", json!({}));
    assert_eq!(verdict["verdict"], "passed", "{passing}");

    let (explained, _, error) = client.call("explain", json!({}));
    assert!(
        !error && explained.contains("WHAT'S WRONG:") && explained.contains("KEY POINTS"),
        "{explained}"
    );

    let (_, _, error) = client.call("for", json!({"topic": "graceful shutdown"}));
    assert!(!error);
}

impl Client {
    /// Writes `raw` as one line and waits (bounded) for the next line the server writes.
    fn raw(&mut self, raw: &[u8]) -> Value {
        self.stdin.write_all(raw).unwrap();
        self.stdin.write_all(b"\n").unwrap();
        self.stdin.flush().unwrap();
        let line = self
            .lines
            .recv_timeout(REPLY_BOUND)
            .unwrap_or_else(|_| panic!("no answer within {REPLY_BOUND:?}"));
        serde_json::from_str(&line).unwrap()
    }
}

/// Regression: a malformed line or a message without `jsonrpc` got no answer, `arguments`
/// given as a string was answered -32601 "method not found", a 16 MB request got no answer,
/// and an error echoed a 4 MB topic back. Each now gets its JSON-RPC error (or a bounded
/// one), and the server goes on serving.
#[test]
fn malformed_requests_get_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::spawn(dir.path());
    client.request(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}),
    );
    client.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));

    let answer = client.raw(b"{this is not json");
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    let answer = client.raw(br#"{"id": 7, "method": "tools/list"}"#);
    assert_eq!(
        (answer["error"]["code"].clone(), answer["id"].clone()),
        (json!(-32600), json!(7))
    );
    let answer = client.raw(
        br#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"for","arguments":"{\"topic\":\"ack\"}"}}"#,
    );
    assert_eq!(
        (answer["error"]["code"].clone(), answer["id"].clone()),
        (json!(-32602), json!(8))
    );
    let mut huge = br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"for","arguments":{"topic":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 16 * 1024 * 1024));
    huge.extend_from_slice(br#""}}}"#);
    let answer = client.raw(&huge);
    assert_eq!(
        answer["error"]["code"], -32600,
        "a 16 MB request is refused"
    );

    let topic = "q".repeat(3 * 1024 * 1024);
    let (text, _, is_error) = client.call("for", json!({ "topic": topic }));
    assert!(
        is_error && text.contains("a topic is a few words"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(text.len() < 10_000, "the error echoed {} bytes", text.len());
    let (text, _, is_error) = client.call("list", json!({}));
    assert!(
        !is_error && text.contains("visibility-timeout"),
        "still serving: {text}"
    );
}
