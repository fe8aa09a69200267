//! Pictures for the HTML pages, drawn with plotters' SVG backend: a trace as a sequence
//! diagram, and a demo's sampled numbers (queue depth per tick) as a line chart.
//!
//! Both are plain SVG text with no fonts, scripts or links: the page that holds them works
//! offline. plotters escapes every text it draws, and its output depends only on its input,
//! so the same trace gives the same bytes (`demo --format html` stays deterministic).

use bughunt_kit::demo::Series;
use bughunt_kit::trace::{Event, EventKind};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::diagram::{is_bad, label, VERDICT};

/// The font size of a sequence diagram's words, in plotters' units (the SVG says 1/1.24 of it).
const FONT: f64 = 18.6;
/// The font size of the notes under an arrow.
const FONT_NOTE: f64 = 16.1;
/// A generous width of one character at [`FONT`], in pixels, for laying out.
const CHAR_PX: i32 = 8;
/// The height of the actor boxes on top.
const HEADER_PX: i32 = 34;
/// The height of an arrow's row; of a line of words in a box or band; of a line of a note.
const ROW_PX: i32 = 34;
const LINE_PX: i32 = 19;
const NOTE_PX: i32 = 16;
/// The room right of the last lifeline, for boxes and notes; the narrowest diagram.
const SIDE_PX: i32 = 210;
const WIDTH_MIN_PX: i32 = 420;
/// The widest a note beside a box makes the diagram, in pixels (it wraps past that).
const NOTE_ROOM_PX: i32 = 220;
/// The most characters on one line of a box.
const BOX_CHARS_MAX: usize = 34;
/// The narrowest and widest gap between two lifelines.
const GAP_MIN_PX: i32 = 130;
const GAP_MAX_PX: i32 = 340;
/// The most characters of a note drawn (a longer one is cut with an ellipsis).
const NOTE_CHARS_MAX: usize = 160;

pub const INK: RGBColor = RGBColor(34, 34, 34);
pub const MUTED: RGBColor = RGBColor(102, 102, 102);
pub const WRONG: RGBColor = RGBColor(200, 30, 30);
pub const WRONG_TINT: RGBColor = RGBColor(255, 228, 228);
pub const RIGHT: RGBColor = RGBColor(20, 130, 60);
pub const LANE: RGBColor = RGBColor(170, 170, 170);
pub const ACTOR_FILL: RGBColor = RGBColor(238, 242, 250);
pub const ACTOR_LINE: RGBColor = RGBColor(110, 130, 170);

fn text_width(text: &str) -> i32 {
    // Capitals are wider than the average letter ("CRASH", "LOST").
    text.chars()
        .map(|c| {
            if c.is_uppercase() {
                CHAR_PX + 3
            } else {
                CHAR_PX
            }
        })
        .sum()
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn style(size: f64, colour: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    let font: FontDesc<'static> = ("sans-serif", size).into_font();
    font.color(&colour).pos(Pos::new(h, v))
}

fn actors(events: &[Event]) -> Vec<&str> {
    let mut actors: Vec<&str> = Vec::new();
    for event in events {
        for name in std::iter::once(&event.actor).chain(event.to.as_ref()) {
            if name != VERDICT && !actors.contains(&name.as_str()) {
                actors.push(name);
            }
        }
    }
    actors
}

/// What a row shows beside its arrow or box: the note, cut to a readable length.
fn note_of(event: &Event) -> Option<String> {
    event.note.as_deref().map(|note| cut(note, NOTE_CHARS_MAX))
}

/// An event's words and its note; a bare note ("holds queue, wants stats") is the words.
fn words(event: &Event) -> (String, Option<String>) {
    let label = label(event);
    match note_of(event) {
        Some(note) if label.is_empty() => (note, None),
        note => (label, note),
    }
}

/// Breaks text into lines of at most `max` characters, at spaces where it can.
fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(8);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_owned();
        // A word longer than a line is cut into pieces.
        while word.chars().count() > max {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(max).collect();
            word = word.chars().skip(max).collect();
            lines.push(head);
        }
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > max {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// How one event is drawn, laid out: its lines of words and its height.
enum Row {
    /// A verdict: a red band across the whole diagram.
    Band { lines: Vec<String> },
    /// A message from one lifeline to another, its label above, its note under.
    Arrow {
        from: usize,
        to: usize,
        label: String,
        note: Vec<String>,
    },
    /// What an actor did alone: a box on its lifeline, its note under.
    Box {
        at: usize,
        lines: Vec<String>,
        note: Vec<String>,
    },
}

impl Row {
    fn height(&self) -> i32 {
        match self {
            Row::Band { lines } => 14 + lines.len() as i32 * LINE_PX,
            Row::Arrow { note, .. } => ROW_PX + note.len() as i32 * NOTE_PX,
            Row::Box { lines, note, .. } => {
                14 + lines.len() as i32 * LINE_PX + note.len() as i32 * NOTE_PX
            }
        }
    }
}

/// Draws events as a sequence diagram: a box and a lifeline per actor, an arrow per message
/// (red when it went wrong, ending in a cross when it never arrived), a box on the lifeline
/// for what an actor did alone (red, with a cross, for a crash or a power cut), and a red
/// band across for each verdict ("LOST m27"). Long words wrap, so the picture keeps a
/// readable size wherever it is shown.
pub fn sequence(events: &[Event]) -> String {
    let actors = actors(events);
    if actors.is_empty() && events.is_empty() {
        return String::new();
    }
    let arrow_label_max = events
        .iter()
        .filter(|e| e.to.is_some())
        .map(|e| text_width(&label(e)))
        .max()
        .unwrap_or(0);
    let name_max = actors.iter().map(|a| text_width(a)).max().unwrap_or(0);
    let gap = (arrow_label_max + 40)
        .max(name_max + 30)
        .clamp(GAP_MIN_PX, GAP_MAX_PX);
    let left = (name_max / 2 + 24).max(60);
    let column = |index: usize| left + index as i32 * gap;
    let index_of = |name: &str| actors.iter().position(|a| *a == name);
    // As wide as the lanes and the boxes beside them need (a box's words wrap at
    // BOX_CHARS_MAX), up to SIDE_PX right of the last lane; notes and bands wrap to fit.
    let last_lane = column(actors.len().saturating_sub(1));
    let boxes_right = events
        .iter()
        .filter(|e| e.actor != VERDICT)
        .filter(|e| e.to.as_ref().is_none_or(|to| *to == e.actor))
        .filter_map(|e| {
            let at = index_of(&e.actor)?;
            let (label, note) = words(e);
            let own = text_width(&label).min(BOX_CHARS_MAX as i32 * CHAR_PX);
            let note = note.map_or(0, |n| (text_width(&n) * 7 / 8).min(NOTE_ROOM_PX));
            Some(column(at) + 48 + own.max(note))
        })
        .max()
        .unwrap_or(0);
    let width = boxes_right
        .min(last_lane + SIDE_PX)
        .max(last_lane + (name_max / 2 + 24).max(60))
        .max(WIDTH_MIN_PX);
    let fits = |from_x: i32| ((width - from_x - 12) / CHAR_PX).max(10) as usize;

    let rows: Vec<(Row, &Event)> = events
        .iter()
        .filter_map(|event| {
            let (label, note) = words(event);
            if event.actor == VERDICT {
                let text = match note {
                    Some(note) => format!("✗ {label}: {note}"),
                    None => format!("✗ {label}"),
                };
                return Some((
                    Row::Band {
                        lines: wrap(&text, fits(24)),
                    },
                    event,
                ));
            }
            let from = index_of(&event.actor)?;
            let target = event
                .to
                .as_deref()
                .and_then(index_of)
                .filter(|to| *to != from);
            let row = match target {
                Some(to) => Row::Arrow {
                    from,
                    to,
                    label,
                    note: note
                        .map(|n| wrap(&n, fits(column(from.min(to)) + 6) * 8 / 7))
                        .unwrap_or_default(),
                },
                None => {
                    let x = column(from);
                    Row::Box {
                        at: from,
                        lines: wrap(&label, fits(x + 12).min(BOX_CHARS_MAX)),
                        note: note
                            .map(|n| wrap(&n, fits(x + 12) * 8 / 7))
                            .unwrap_or_default(),
                    }
                }
            };
            Some((row, event))
        })
        .collect();
    let top = 12;
    let lane_top = top + HEADER_PX;
    let height = lane_top + 12 + rows.iter().map(|(r, _)| r.height()).sum::<i32>() + 14;

    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (width as u32, height as u32)).into_drawing_area();
        let draw = |result: Result<(), DrawingAreaErrorKind<std::io::Error>>| {
            result.expect("drawing into a string cannot fail")
        };
        let text = |words: &str, at: (i32, i32), size: f64, colour: RGBColor, h: HPos, v: VPos| {
            Text::new(words.to_owned(), at, style(size, colour, h, v))
        };
        let bottom = height - 8;
        for (index, name) in actors.iter().enumerate() {
            let x = column(index);
            let half = (text_width(name) / 2 + 14).max(36);
            draw(root.draw(&PathElement::new(
                vec![(x, lane_top), (x, bottom)],
                LANE.stroke_width(1),
            )));
            draw(root.draw(&Rectangle::new(
                [(x - half, top), (x + half, lane_top)],
                ACTOR_FILL.filled(),
            )));
            draw(root.draw(&Rectangle::new(
                [(x - half, top), (x + half, lane_top)],
                ACTOR_LINE.stroke_width(1),
            )));
            draw(root.draw(&text(
                name,
                (x, top + HEADER_PX / 2),
                FONT,
                INK,
                HPos::Center,
                VPos::Center,
            )));
        }

        let mut y = lane_top + 12;
        for (row, event) in &rows {
            let bad = is_bad(event);
            let ink = if bad { WRONG } else { INK };
            match row {
                Row::Band { lines } => {
                    let corners = [(8, y + 2), (width - 8, y + row.height() - 4)];
                    draw(root.draw(&Rectangle::new(corners, WRONG_TINT.filled())));
                    draw(root.draw(&Rectangle::new(corners, WRONG.stroke_width(1))));
                    for (index, line) in lines.iter().enumerate() {
                        let line_y = y + 8 + index as i32 * LINE_PX;
                        draw(root.draw(&text(
                            line,
                            (18, line_y),
                            FONT,
                            WRONG,
                            HPos::Left,
                            VPos::Top,
                        )));
                    }
                }
                Row::Arrow {
                    from,
                    to,
                    label,
                    note,
                } => {
                    let (x0, x1) = (column(*from), column(*to));
                    let line_y = y + ROW_PX - 8;
                    let direction = if x1 > x0 { 1 } else { -1 };
                    let stroke = if bad { 2 } else { 1 };
                    draw(root.draw(&PathElement::new(
                        vec![(x0, line_y), (x1 - direction * 2, line_y)],
                        ink.stroke_width(stroke),
                    )));
                    if event.kind == EventKind::AckLost {
                        // Lost on the way: a cross where it should have arrived.
                        draw(root.draw(&Cross::new(
                            (x1 - direction * 10, line_y),
                            6,
                            WRONG.stroke_width(3),
                        )));
                    } else {
                        let tip = x1 - direction;
                        draw(root.draw(&Polygon::new(
                            vec![
                                (tip, line_y),
                                (tip - direction * 10, line_y - 5),
                                (tip - direction * 10, line_y + 5),
                            ],
                            ink.filled(),
                        )));
                    }
                    draw(root.draw(&text(
                        label,
                        ((x0 + x1) / 2, line_y - 3),
                        FONT,
                        ink,
                        HPos::Center,
                        VPos::Bottom,
                    )));
                    for (index, line) in note.iter().enumerate() {
                        draw(root.draw(&text(
                            line,
                            (x0.min(x1) + 6, line_y + 3 + index as i32 * NOTE_PX),
                            FONT_NOTE,
                            MUTED,
                            HPos::Left,
                            VPos::Top,
                        )));
                    }
                }
                Row::Box { at, lines, note } => {
                    let crossed = matches!(event.kind, EventKind::Crash | EventKind::PowerCut);
                    // A crash's cross sits on the lifeline; its box starts beside the cross.
                    let x = column(*at) + if crossed { 10 } else { 0 };
                    let longest = lines.iter().map(|l| text_width(l)).max().unwrap_or(0);
                    let corners = [
                        (x + 4, y + 4),
                        (x + 20 + longest, y + 10 + lines.len() as i32 * LINE_PX),
                    ];
                    let (fill, edge) = if bad {
                        (WRONG_TINT, WRONG)
                    } else {
                        (RGBColor(250, 250, 250), LANE)
                    };
                    draw(root.draw(&Rectangle::new(corners, fill.filled())));
                    draw(root.draw(&Rectangle::new(corners, edge.stroke_width(1))));
                    if crossed {
                        draw(root.draw(&Cross::new(
                            (column(*at), y + 7 + LINE_PX / 2),
                            7,
                            WRONG.stroke_width(3),
                        )));
                    }
                    for (index, line) in lines.iter().enumerate() {
                        draw(root.draw(&text(
                            line,
                            (x + 12, y + 7 + index as i32 * LINE_PX),
                            FONT,
                            ink,
                            HPos::Left,
                            VPos::Top,
                        )));
                    }
                    let note_top = corners[1].1 + 2;
                    for (index, line) in note.iter().enumerate() {
                        draw(root.draw(&text(
                            line,
                            (x + 12, note_top + index as i32 * NOTE_PX),
                            FONT_NOTE,
                            MUTED,
                            HPos::Left,
                            VPos::Top,
                        )));
                    }
                }
            }
            y += row.height();
        }
        draw(root.present());
    }
    svg
}

/// One line of a chart: its name, its colour and its samples.
pub struct ChartLine<'a> {
    pub name: &'a str,
    pub colour: RGBColor,
    pub series: &'a Series,
}

/// The chart's size in pixels.
const CHART_WIDTH_PX: u32 = 860;
const CHART_HEIGHT_PX: u32 = 340;

/// Draws sampled numbers (one line per run, on one scale) as a line chart, with the bound
/// (the first line's, if it has one) drawn across as a dashed line and named.
pub fn chart(lines: &[ChartLine<'_>]) -> String {
    let Some(first) = lines.first() else {
        return String::new();
    };
    let samples = lines
        .iter()
        .map(|l| l.series.values.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let bound = first.series.bound;
    let top = lines
        .iter()
        .flat_map(|l| l.series.values.iter().copied())
        .chain(bound)
        .max()
        .unwrap_or(1)
        .max(1);
    let y_max = top + top / 10 + 1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (CHART_WIDTH_PX, CHART_HEIGHT_PX))
            .into_drawing_area();
        let fail = |error: &dyn std::fmt::Debug| -> ! {
            panic!("drawing a chart into a string cannot fail: {error:?}")
        };
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0u64..(samples as u64 - 1), 0u64..y_max)
            .unwrap_or_else(|e| fail(&e));
        chart
            .configure_mesh()
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(220, 220, 220))
            .axis_style(MUTED)
            .x_desc(first.series.per.clone())
            .y_desc(first.series.label.clone())
            .label_style(("sans-serif", 16.0).into_font().color(&INK))
            .axis_desc_style(("sans-serif", 17.0).into_font().color(&INK))
            .draw()
            .unwrap_or_else(|e| fail(&e));
        if let Some(bound) = bound {
            chart
                .draw_series(std::iter::once(DashedPathElement::new(
                    vec![(0, bound), (samples as u64 - 1, bound)],
                    8,
                    5,
                    RGBColor(120, 120, 120).stroke_width(2),
                )))
                .unwrap_or_else(|e| fail(&e))
                .label(format!("the bound, {bound}"))
                .legend(|(x, y)| {
                    DashedPathElement::new(
                        vec![(x, y), (x + 20, y)],
                        5,
                        3,
                        RGBColor(120, 120, 120).stroke_width(2),
                    )
                });
        }
        for line in lines {
            let colour = line.colour;
            chart
                .draw_series(AreaSeries::new(
                    line.series
                        .values
                        .iter()
                        .enumerate()
                        .map(|(x, y)| (x as u64, *y)),
                    0,
                    colour.mix(0.12),
                ))
                .unwrap_or_else(|e| fail(&e));
            chart
                .draw_series(LineSeries::new(
                    line.series
                        .values
                        .iter()
                        .enumerate()
                        .map(|(x, y)| (x as u64, *y)),
                    colour.stroke_width(3),
                ))
                .unwrap_or_else(|e| fail(&e))
                .label(line.name.to_owned())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(LANE)
            .label_font(("sans-serif", 16.0).into_font().color(&INK))
            .draw()
            .unwrap_or_else(|e| fail(&e));
        root.present().unwrap_or_else(|e| fail(&e));
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use bughunt_kit::trace::Trace;

    fn lost() -> Vec<Event> {
        let trace = Trace::new();
        trace
            .event("producer", EventKind::Send)
            .to("queue")
            .msg(27)
            .record();
        trace
            .event("queue", EventKind::Deliver)
            .to("c<2>")
            .msg(27)
            .record();
        trace
            .event("c<2>", EventKind::Crash)
            .msg(27)
            .note("before ack & \"commit\"")
            .record();
        trace
            .event(VERDICT, EventKind::Lost)
            .msg(27)
            .note("m27 was sent and never processed")
            .record();
        trace.events()
    }

    /// The diagram names every actor and event, escapes text, marks the fault and the loss
    /// in red, and is the same bytes every time.
    #[test]
    fn sequence_diagram() {
        let svg = sequence(&lost());
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains(">\nproducer\n") && svg.contains(">\nc&lt;2&gt;\n"),
            "{svg}"
        );
        assert!(svg.contains("send m27") && svg.contains("deliver m27"));
        assert!(
            svg.contains("before ack")
                && svg.contains("&amp;")
                && svg.contains("&quot;commit&quot;")
        );
        assert!(svg.contains("✗ LOST m27: m27 was sent"));
        assert!(svg.contains("#C81E1E"), "the wrong colour is used");
        assert_eq!(svg, sequence(&lost()));
    }

    /// The chart draws one line per run and the bound, named in a legend.
    #[test]
    fn depth_chart() {
        let broken = Series {
            label: "queue depth".into(),
            per: "tick".into(),
            bound: Some(50),
            values: vec![0, 100, 400, 960, 500, 0],
        };
        let fixed = Series {
            values: vec![0, 50, 50, 50, 40, 0],
            ..broken.clone()
        };
        let svg = chart(&[
            ChartLine {
                name: "wrong way",
                colour: WRONG,
                series: &broken,
            },
            ChartLine {
                name: "right way",
                colour: RIGHT,
                series: &fixed,
            },
        ]);
        assert!(svg.starts_with("<svg"));
        for words in ["wrong way", "right way", "the bound, 50", "queue depth"] {
            assert!(svg.contains(words), "{words} missing");
        }
        assert!(svg.contains("<polyline"));
    }
}
