//! Drawing traces as sequence diagrams: in the terminal, and as Mermaid for GitHub.
//!
//! Both drawings show a *story* (see [`bughunt_kit::trace::story`]): the few events about
//! one message, not the thousands of a whole run.

use bughunt_kit::trace::{Event, EventKind};

/// The actor name verdict events use; drawn across the whole width, not as a lifeline.
pub const VERDICT: &str = "verdict";

/// The widest gap between two lifelines, in columns.
const GAP_MAX: usize = 28;

fn verb(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Send => "send",
        EventKind::Deliver => "deliver",
        EventKind::Redeliver => "redeliver",
        EventKind::Process => "process",
        EventKind::Ack => "ack",
        EventKind::AckLost => "ack LOST in transit",
        EventKind::Crash => "CRASH",
        EventKind::Stall => "stall",
        EventKind::Reject => "full: rejected",
        EventKind::Write => "write",
        EventKind::Sync => "fsync",
        EventKind::PowerCut => "POWER CUT",
        EventKind::Recover => "recovered",
        EventKind::Shutdown => "shutdown",
        EventKind::Exit => "exit",
        EventKind::Leak => "LEAKED",
        EventKind::Lost => "LOST",
        EventKind::Duplicate => "DUPLICATE",
        EventKind::Note => "",
    }
}

/// The words drawn for an event: "deliver m27".
pub fn label(event: &Event) -> String {
    let verb = verb(event.kind);
    match (event.msg, verb.is_empty()) {
        (Some(msg), false) => format!("{verb} m{msg}"),
        (Some(msg), true) => format!("m{msg}"),
        (None, _) => verb.to_owned(),
    }
}

/// Whether an event marks something going wrong.
pub fn is_bad(event: &Event) -> bool {
    event.kind.is_fault_or_verdict() || event.kind == EventKind::Reject
}

fn actors(events: &[Event]) -> Vec<String> {
    let mut actors: Vec<String> = Vec::new();
    for event in events {
        for name in std::iter::once(&event.actor).chain(event.to.as_ref()) {
            if name != VERDICT && !actors.contains(name) {
                actors.push(name.clone());
            }
        }
    }
    actors
}

fn width(text: &str) -> usize {
    text.chars().count()
}

fn truncate(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// One drawn line, and whether it shows something going wrong.
pub struct Line {
    pub text: String,
    pub bad: bool,
}

/// Draws events as a terminal sequence diagram: actor names on top, a lifeline for each,
/// arrows between them, notes beside them, verdicts across.
pub fn terminal(events: &[Event]) -> Vec<Line> {
    let actors = actors(events);
    if actors.is_empty() {
        return Vec::new();
    }
    let label_max = events
        .iter()
        .filter(|e| e.to.is_some())
        .map(|e| width(&label(e)))
        .max()
        .unwrap_or(0);
    let name_max = actors.iter().map(|a| width(a)).max().unwrap_or(1);
    let gap = (label_max + 6).max(name_max + 2).clamp(12, GAP_MAX);
    let first = name_max / 2 + 1;
    let column: Vec<usize> = (0..actors.len()).map(|i| first + i * gap).collect();
    let total = column[actors.len() - 1] + 2;
    let index_of = |name: &str| actors.iter().position(|a| a == name);

    let lifelines = || -> Vec<char> {
        let mut row = vec![' '; total];
        for &x in &column {
            row[x] = '│';
        }
        row
    };
    let put = |row: &mut Vec<char>, at: usize, text: &str| {
        for (offset, ch) in text.chars().enumerate() {
            let x = at + offset;
            if x >= row.len() {
                row.resize(x + 1, ' ');
            }
            row[x] = ch;
        }
    };
    let finish = |row: Vec<char>| row.into_iter().collect::<String>().trim_end().to_owned();

    let mut lines = Vec::new();
    let mut header = vec![' '; total + name_max];
    for (name, &x) in actors.iter().zip(&column) {
        let start = x.saturating_sub(width(name) / 2);
        put(&mut header, start, name);
    }
    lines.push(Line {
        text: finish(header),
        bad: false,
    });

    for event in events {
        let bad = is_bad(event);
        if event.actor == VERDICT {
            // "✗ LOST m27: why", or "✗ why" for a verdict about no message in particular.
            let parts: Vec<String> = [Some(label(event)), event.note.clone()]
                .into_iter()
                .flatten()
                .filter(|part| !part.is_empty())
                .collect();
            lines.push(Line {
                text: format!("✗ {}", parts.join(": ")),
                bad: true,
            });
            continue;
        }
        let Some(from) = index_of(&event.actor) else {
            continue;
        };
        let mut row = lifelines();
        let target = event
            .to
            .as_deref()
            .and_then(index_of)
            .filter(|to| *to != from);
        let text_end = match target {
            Some(to) => {
                let (left, right) = (column[from.min(to)], column[from.max(to)]);
                for cell in row.iter_mut().take(right).skip(left + 1) {
                    *cell = '─';
                }
                if to > from {
                    row[right - 1] = '►';
                } else {
                    row[left + 1] = '◄';
                }
                let room = right - left - 4;
                let text = format!(" {} ", truncate(&label(event), room.saturating_sub(2)));
                put(&mut row, left + 2, &text);
                right + 1
            }
            None => {
                let text = format!(" {}", label(event));
                put(&mut row, column[from] + 1, &text);
                column[from] + 1 + width(&text)
            }
        };
        let mut text = finish(row);
        if let Some(note) = &event.note {
            let pad = text_end.saturating_sub(width(&text)) + 2;
            text.push_str(&" ".repeat(pad));
            text.push_str(&format!("({note})"));
        }
        lines.push(Line { text, bad });
    }
    lines
}

fn mermaid_id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Mermaid text must not contain `;` or `#` (statement separator, entity codes).
fn mermaid_text(text: &str) -> String {
    text.replace(';', ",")
        .replace('#', "no. ")
        .replace('\n', " ")
}

/// One section of a Mermaid diagram: a shaded box with a heading and the events.
pub struct MermaidSection<'a> {
    pub heading: String,
    pub rgb: (u8, u8, u8),
    pub events: &'a [Event],
}

/// A Mermaid `sequenceDiagram` of the sections, with every actor declared once.
pub fn mermaid(sections: &[MermaidSection<'_>]) -> String {
    let all: Vec<Event> = sections
        .iter()
        .flat_map(|s| s.events.iter().cloned())
        .collect();
    let actors = actors(&all);
    let mut out = String::from("sequenceDiagram\n");
    for actor in &actors {
        out.push_str(&format!(
            "    participant {} as {}\n",
            mermaid_id(actor),
            mermaid_text(actor)
        ));
    }
    let span = match (actors.first(), actors.last()) {
        (Some(first), Some(last)) if first != last => {
            format!("{},{}", mermaid_id(first), mermaid_id(last))
        }
        (Some(only), _) => mermaid_id(only),
        _ => return out,
    };
    for section in sections {
        let (r, g, b) = section.rgb;
        out.push_str(&format!("    rect rgb({r}, {g}, {b})\n"));
        out.push_str(&format!(
            "    Note over {span}: {}\n",
            mermaid_text(&section.heading)
        ));
        for event in section.events {
            let text = {
                let mut text = label(event);
                match &event.note {
                    Some(note) if text.is_empty() => text = note.clone(),
                    Some(note) => text.push_str(&format!(" ({note})")),
                    None => {}
                }
                mermaid_text(&text)
            };
            if event.actor == VERDICT {
                out.push_str(&format!("    Note over {span}: ✗ {text}\n"));
                continue;
            }
            let from = mermaid_id(&event.actor);
            match event.to.as_deref().filter(|to| *to != event.actor) {
                Some(to) => {
                    let arrow = if is_bad(event) { "-x" } else { "->>" };
                    out.push_str(&format!("    {from}{arrow}{}: {text}\n", mermaid_id(to)));
                }
                None => out.push_str(&format!("    Note over {from}: {text}\n")),
            }
        }
        out.push_str("    end\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bughunt_kit::trace::Trace;

    fn lost_message() -> Vec<Event> {
        let trace = Trace::new();
        trace
            .event("producer", EventKind::Send)
            .to("queue")
            .msg(27)
            .record();
        trace
            .event("queue", EventKind::Deliver)
            .to("c2")
            .msg(27)
            .record();
        trace
            .event("c2", EventKind::Crash)
            .msg(27)
            .note("before ack")
            .record();
        trace
            .event(VERDICT, EventKind::Lost)
            .msg(27)
            .note("m27 was sent and never processed")
            .record();
        trace.events()
    }

    /// Arrows point the right way between the right lifelines; faults and verdicts are marked.
    #[test]
    fn terminal_drawing() {
        let lines = terminal(&lost_message());
        let text: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert!(
            text[0].contains("producer") && text[0].contains("queue") && text[0].contains("c2")
        );
        assert!(text[1].contains("send m27") && text[1].contains('►'));
        assert!(text[2].contains("deliver m27"));
        assert!(text[3].contains("CRASH m27") && text[3].contains("(before ack)"));
        assert!(text[4].starts_with("✗ LOST m27: m27 was sent"));
        let bad: Vec<bool> = lines.iter().map(|l| l.bad).collect();
        assert_eq!(bad, vec![false, false, false, true, true]);
        // Lifelines line up: the queue's column is the same on the header's row and below.
        let queue_column = text[1].chars().position(|c| c == '►').unwrap() + 1;
        assert_eq!(text[3].chars().nth(queue_column), Some('│'));
    }

    /// A verdict about no message in particular reads as its words alone, not "✗ : words".
    #[test]
    fn a_verdict_without_a_message() {
        let trace = Trace::new();
        trace.event("c1", EventKind::Note).note("calls").record();
        trace
            .event(VERDICT, EventKind::Note)
            .note("two probes at once")
            .record();
        let events = trace.events();
        let lines = terminal(&events);
        assert_eq!(lines.last().unwrap().text, "✗ two probes at once");
        let text = mermaid(&[MermaidSection {
            heading: "wrong way".into(),
            rgb: (255, 230, 230),
            events: &events,
        }]);
        assert!(text.contains(": ✗ two probes at once\n"), "{text}");
    }

    /// Mermaid output declares participants, uses arrows, and keeps text Mermaid-safe.
    #[test]
    fn mermaid_drawing() {
        let events = lost_message();
        let text = mermaid(&[MermaidSection {
            heading: "wrong way; #1".into(),
            rgb: (255, 230, 230),
            events: &events,
        }]);
        assert!(text.starts_with("sequenceDiagram\n"));
        assert!(text.contains("participant producer as producer"));
        assert!(text.contains("producer->>queue: send m27"));
        assert!(text.contains("Note over c2: CRASH m27 (before ack)"));
        assert!(text.contains("Note over producer,c2: wrong way, no. 1"));
        assert!(text.trim_end().ends_with("end"));
    }
}
