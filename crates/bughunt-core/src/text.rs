//! Text helpers for terminal pages: styles, headings, wrapped paragraphs.
//!
//! Pages are written with ANSI styles; the binary prints them through anstream, which strips
//! the styles for pipes, files and `NO_COLOR`.

use anstyle::{AnsiColor, Style};

/// Something went wrong.
pub const BAD: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));
/// Something held.
pub const GOOD: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));
/// A heading.
pub const STRONG: Style = Style::new().bold();

/// The width paragraphs wrap at.
pub const WRAP_COLUMNS: usize = 96;

/// A bold heading line.
pub fn heading(text: &str) -> String {
    format!("{STRONG}{text}{STRONG:#}\n")
}

/// `lead` in bold, then `body` wrapped at [`WRAP_COLUMNS`], continuation lines indented under
/// the body; a blank line after.
pub fn paragraph(lead: &str, body: &str) -> String {
    let indent = if lead.starts_with("  ") {
        "      "
    } else {
        "  "
    };
    let mut out = format!("{STRONG}{lead}{STRONG:#}");
    let mut column = lead.chars().count();
    let mut first_word = true;
    for word in body.split_whitespace() {
        let length = word.chars().count();
        if !first_word && column + 1 + length > WRAP_COLUMNS {
            out.push('\n');
            out.push_str(indent);
            column = indent.len();
        } else if !first_word {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += length;
        first_word = false;
    }
    out.push_str("\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long text wraps within the width and keeps every word.
    #[test]
    fn paragraphs_wrap() {
        let body = "word ".repeat(60);
        let text = paragraph("LESSON: ", &body);
        let plain = text
            .replace(&format!("{STRONG}"), "")
            .replace(&format!("{STRONG:#}"), "");
        assert!(plain
            .lines()
            .all(|line| line.chars().count() <= WRAP_COLUMNS));
        assert_eq!(plain.matches("word").count(), 60);
    }
}
