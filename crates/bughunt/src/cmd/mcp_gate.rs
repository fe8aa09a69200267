//! The gate in front of the MCP server: every line a client sends gets an answer.
//!
//! The MCP SDK answers well-formed JSON-RPC and drops the rest in silence, so a client that
//! sends a malformed line, a message without `"jsonrpc": "2.0"`, tool arguments that are not
//! an object, or a request of many megabytes waits for an answer that never comes. The gate
//! reads standard input line by line, up to [`REQUEST_BYTES_MAX`] a line, answers each such
//! message itself with the JSON-RPC error it deserves (-32700 parse error, -32600 invalid
//! request, -32602 invalid params), and hands every other line to the server. Both the
//! server's answers and the gate's go out through one writer, a line at a time, so they never
//! interleave.

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

/// The longest request line accepted; a longer one is answered with -32600 and skipped.
pub const REQUEST_BYTES_MAX: usize = 4 * 1024 * 1024;

/// How many outgoing lines may wait for standard output.
const OUTGOING_LINES_MAX: usize = 64;

/// The server's ends of the in-memory pipes to the gate.
pub struct Gated {
    /// What the server reads: the requests that passed the gate.
    pub reader: DuplexStream,
    /// What the server writes: its answers, which the gate sends on.
    pub writer: DuplexStream,
}

/// What to do with one incoming line.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Hand it to the server.
    Pass,
    /// Answer it with this error and drop it.
    Answer(Value),
    /// Nothing to do (a blank line).
    Skip,
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

/// The id to answer with: the request's own when it is a string or a number, else null.
fn id_of(message: &Value) -> Value {
    match message.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    }
}

fn judge(line: &[u8]) -> Verdict {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Skip;
    }
    let message: Value = match serde_json::from_slice(line) {
        Ok(message) => message,
        Err(_) => return Verdict::Answer(error(Value::Null, -32700, "Parse error: not JSON")),
    };
    let Some(object) = message.as_object() else {
        return Verdict::Answer(error(
            Value::Null,
            -32600,
            "Invalid Request: a message is one JSON object",
        ));
    };
    let id = id_of(&message);
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Verdict::Answer(error(
            id,
            -32600,
            "Invalid Request: \"jsonrpc\" must be \"2.0\"",
        ));
    }
    let is_response = object.contains_key("result") || object.contains_key("error");
    if !is_response && !object.get("method").is_some_and(Value::is_string) {
        return Verdict::Answer(error(
            id,
            -32600,
            "Invalid Request: \"method\" must be a string",
        ));
    }
    if object.get("method").and_then(Value::as_str) == Some("tools/call") {
        let params = object.get("params");
        let arguments_ok = params
            .and_then(|p| p.get("arguments"))
            .is_none_or(|arguments| arguments.is_object() || arguments.is_null());
        let name_ok = params
            .and_then(|p| p.get("name"))
            .is_some_and(Value::is_string);
        if !params.is_some_and(Value::is_object) || !name_ok || !arguments_ok {
            return Verdict::Answer(error(
                id,
                -32602,
                "Invalid params: tools/call takes {\"name\": string, \"arguments\": object}",
            ));
        }
    }
    Verdict::Pass
}

/// Reads one line of at most [`REQUEST_BYTES_MAX`] bytes into `line`; past that, the rest of
/// the line is read and thrown away. Returns (bytes seen, whether it was too long); 0 bytes
/// seen is the end of input.
async fn read_bounded_line(
    input: &mut (impl tokio::io::AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<(usize, bool)> {
    line.clear();
    let mut seen = 0;
    let mut too_long = false;
    loop {
        let buffer = input.fill_buf().await?;
        if buffer.is_empty() {
            return Ok((seen, too_long));
        }
        let (chunk, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (&buffer[..=end], true),
            None => (buffer, false),
        };
        let taken = chunk.len();
        if !too_long {
            if line.len() + taken > REQUEST_BYTES_MAX {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        seen += taken;
        input.consume(taken);
        if done {
            return Ok((seen, too_long));
        }
    }
}

/// Starts the gate between `input`/`output` and a server, and returns the server's ends.
pub fn start(
    input: impl AsyncRead + Unpin + Send + 'static,
    mut output: impl AsyncWrite + Unpin + Send + 'static,
) -> Gated {
    // Bytes written to `server_input` are read from `reader`; bytes the server writes to
    // `writer` are read from `server_output`.
    let (reader, mut server_input) = tokio::io::duplex(64 * 1024);
    let (writer, server_output) = tokio::io::duplex(64 * 1024);
    let (outgoing_tx, mut outgoing_rx) = mpsc::channel::<Vec<u8>>(OUTGOING_LINES_MAX);

    // The one writer of standard output.
    tokio::spawn(async move {
        while let Some(line) = outgoing_rx.recv().await {
            if output.write_all(&line).await.is_err() || output.flush().await.is_err() {
                break;
            }
        }
    });

    // The server's answers, a whole line at a time.
    let answers = outgoing_tx.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(server_output);
        let mut line = Vec::new();
        loop {
            line.clear();
            match lines.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if answers.send(line.clone()).await.is_err() {
                        break;
                    }
                }
            }
        }
    });

    // The client's requests: judged, then answered or passed on.
    tokio::spawn(async move {
        let mut input = BufReader::new(input);
        let mut line = Vec::new();
        loop {
            let verdict = match read_bounded_line(&mut input, &mut line).await {
                Ok((0, _)) | Err(_) => break,
                Ok((_, true)) => Verdict::Answer(error(
                    Value::Null,
                    -32600,
                    &format!("Invalid Request: over {REQUEST_BYTES_MAX} bytes"),
                )),
                Ok((_, false)) => judge(&line),
            };
            match verdict {
                Verdict::Skip => {}
                Verdict::Pass => {
                    if !line.ends_with(b"\n") {
                        line.push(b'\n');
                    }
                    if server_input.write_all(&line).await.is_err() {
                        break;
                    }
                }
                Verdict::Answer(answer) => {
                    let mut text = answer.to_string().into_bytes();
                    text.push(b'\n');
                    if outgoing_tx.send(text).await.is_err() {
                        break;
                    }
                }
            }
        }
        // End of input: the server sees it too, and ends.
        let _ = server_input.shutdown().await;
    });

    Gated { reader, writer }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(verdict: Verdict) -> (i64, Value) {
        match verdict {
            Verdict::Answer(answer) => (
                answer["error"]["code"].as_i64().unwrap(),
                answer["id"].clone(),
            ),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    /// Each kind of malformed message gets its JSON-RPC error, with the request's id where
    /// it has one; well-formed ones pass.
    #[test]
    fn malformed_messages_get_their_errors() {
        assert_eq!(code(judge(b"{not json")), (-32700, Value::Null));
        assert_eq!(
            code(judge(br#"{"id":4,"method":"tools/list"}"#)),
            (-32600, json!(4))
        );
        assert_eq!(code(judge(b"[1,2]")), (-32600, Value::Null));
        assert_eq!(
            code(judge(
                br#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"for","arguments":"{\"topic\":\"ack\"}"}}"#
            )),
            (-32602, json!("a"))
        );
        assert_eq!(
            judge(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list","arguments":{}}}"#),
            Verdict::Pass
        );
        assert_eq!(
            judge(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Verdict::Pass
        );
        assert_eq!(judge(b"  \n"), Verdict::Skip);
    }

    /// A line over the bound is refused whole, and the next line is read as usual.
    #[tokio::test]
    async fn long_lines_are_refused_and_skipped() {
        let mut text = vec![b'x'; REQUEST_BYTES_MAX + 10];
        text.extend_from_slice(b"\n{\"a\":1}\n");
        let mut input = BufReader::new(&text[..]);
        let mut line = Vec::new();
        let (seen, too_long) = read_bounded_line(&mut input, &mut line).await.unwrap();
        assert_eq!((seen, too_long), (REQUEST_BYTES_MAX + 11, true));
        let (_, too_long) = read_bounded_line(&mut input, &mut line).await.unwrap();
        assert!(!too_long);
        assert_eq!(line, b"{\"a\":1}\n");
    }
}
