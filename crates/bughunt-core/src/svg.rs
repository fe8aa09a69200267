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
/// The height of one event's row, and the extra for its note.
const ROW_PX: i32 = 34;
const NOTE_PX: i32 = 16;
/// The narrowest and widest gap between two lifelines.
const GAP_MIN_PX: i32 = 150;
const GAP_MAX_PX: i32 = 340;
/// The most characters of a note drawn (a longer one is cut with an ellipsis).
const NOTE_CHARS_MAX: usize = 70;

pub const INK: RGBColor = RGBColor(34, 34, 34);
pub const MUTED: RGBColor = RGBColor(102, 102, 102);
pub const WRONG: RGBColor = RGBColor(200, 30, 30);
pub const WRONG_TINT: RGBColor = RGBColor(255, 228, 228);
pub const RIGHT: RGBColor = RGBColor(20, 130, 60);
pub const LANE: RGBColor = RGBColor(170, 170, 170);
pub const ACTOR_FILL: RGBColor = RGBColor(238, 242, 250);
pub const ACTOR_LINE: RGBColor = RGBColor(110, 130, 170);

fn text_width(text: &str) -> i32 {
    text.chars().count() as i32 * CHAR_PX
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

/// Draws events as a sequence diagram: a box and a lifeline per actor, an arrow per message
/// (red, ending in a cross, when it went wrong), a box on the lifeline for what an actor did
/// alone (red for a crash or a power cut), and a red band across for each verdict ("LOST m27").
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
    let gap = (arrow_label_max + 60)
        .max(name_max + 30)
        .clamp(GAP_MIN_PX, GAP_MAX_PX);
    let left = (name_max / 2 + 24).max(70);
    let column = |index: usize| left + index as i32 * gap;
    let index_of = |name: &str| actors.iter().position(|a| *a == name);
    // Room on the right for the text beside the last lifeline and for verdict bands.
    let side_max = events
        .iter()
        .map(|e| {
            let own = text_width(&label(e)) + 24;
            let note = note_of(e).map_or(0, |n| text_width(&n) * 7 / 8);
            match index_of(&e.actor) {
                Some(at) if e.to.is_none() => column(at) + own.max(note) + 12,
                _ if e.actor == VERDICT => {
                    left - 40 + text_width(&format!("✗ {}: {}", label(e), note_of(e).unwrap_or_default()))
                        + 30
                }
                _ => 0,
            }
        })
        .max()
        .unwrap_or(0);
    let width = (column(actors.len().saturating_sub(1)) + left).max(side_max) as u32;
    let rows: i32 = events
        .iter()
        .map(|e| ROW_PX + if e.note.is_some() && e.actor != VERDICT { NOTE_PX } else { 0 })
        .sum();
    let height = (12 + HEADER_PX + 14 + rows + 16) as u32;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        let draw = |result: Result<(), DrawingAreaErrorKind<std::io::Error>>| {
            result.expect("drawing into a string cannot fail")
        };
        let top = 12;
        let lane_top = top + HEADER_PX;
        let bottom = height as i32 - 8;
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
            draw(root.draw(&Text::new(
                name.to_string(),
                (x, top + HEADER_PX / 2),
                style(FONT, INK, HPos::Center, VPos::Center).clone(),
            )));
        }

        let mut y = lane_top + 14;
        for event in events {
            let bad = is_bad(event);
            let ink = if bad { WRONG } else { INK };
            let note = note_of(event);
            if event.actor == VERDICT {
                let mut text = format!("✗ {}", label(event));
                if let Some(note) = &note {
                    text.push_str(": ");
                    text.push_str(note);
                }
                draw(root.draw(&Rectangle::new(
                    [(8, y + 2), (width as i32 - 8, y + ROW_PX - 4)],
                    WRONG_TINT.filled(),
                )));
                draw(root.draw(&Rectangle::new(
                    [(8, y + 2), (width as i32 - 8, y + ROW_PX - 4)],
                    WRONG.stroke_width(1),
                )));
                draw(root.draw(&Text::new(
                    text,
                    (16, y + ROW_PX / 2 - 1),
                    style(FONT, WRONG, HPos::Left, VPos::Center).clone(),
                )));
                y += ROW_PX;
                continue;
            }
            let Some(from) = index_of(&event.actor) else {
                continue;
            };
            let target = event
                .to
                .as_deref()
                .and_then(index_of)
                .filter(|to| *to != from);
            let line_y = y + ROW_PX - 8;
            match target {
                Some(to) => {
                    let (x0, x1) = (column(from), column(to));
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
                    let middle = (x0 + x1) / 2;
                    draw(root.draw(&Text::new(
                        label(event),
                        (middle, line_y - 3),
                        style(FONT, ink, HPos::Center, VPos::Bottom).clone(),
                    )));
                    if let Some(note) = note {
                        draw(root.draw(&Text::new(
                            note,
                            (x0.min(x1) + 6, line_y + 3),
                            style(FONT_NOTE, MUTED, HPos::Left, VPos::Top).clone(),
                        )));
                    }
                }
                None => {
                    let x = column(from);
                    let text = label(event);
                    let box_right = x + 10 + text_width(&text) + 12;
                    let (fill, edge) = if bad {
                        (WRONG_TINT, WRONG)
                    } else {
                        (RGBColor(250, 250, 250), LANE)
                    };
                    draw(root.draw(&Rectangle::new(
                        [(x + 4, y + 6), (box_right, y + ROW_PX - 2)],
                        fill.filled(),
                    )));
                    draw(root.draw(&Rectangle::new(
                        [(x + 4, y + 6), (box_right, y + ROW_PX - 2)],
                        edge.stroke_width(1),
                    )));
                    if matches!(event.kind, EventKind::Crash | EventKind::PowerCut) {
                        draw(root.draw(&Cross::new(
                            (x, y + ROW_PX / 2 + 2),
                            7,
                            WRONG.stroke_width(3),
                        )));
                    }
                    draw(root.draw(&Text::new(
                        text,
                        (x + 12, y + ROW_PX / 2 + 2),
                        style(FONT, ink, HPos::Left, VPos::Center).clone(),
                    )));
                    if let Some(note) = note {
                        draw(root.draw(&Text::new(
                            note,
                            (x + 12, y + ROW_PX + 1),
                            style(FONT_NOTE, MUTED, HPos::Left, VPos::Top).clone(),
                        )));
                    }
                }
            }
            y += ROW_PX + if event.note.is_some() { NOTE_PX } else { 0 };
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
        let root =
            SVGBackend::with_string(&mut svg, (CHART_WIDTH_PX, CHART_HEIGHT_PX)).into_drawing_area();
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
            .x_desc(format!("{} (one sample per {})", first.series.per, first.series.per))
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
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3)));
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
        assert!(svg.contains(">\nproducer\n") && svg.contains(">\nc&lt;2&gt;\n"), "{svg}");
        assert!(svg.contains("send m27") && svg.contains("deliver m27"));
        assert!(svg.contains("before ack &amp; &quot;commit&quot;"));
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
