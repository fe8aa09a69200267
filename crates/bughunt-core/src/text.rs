//! Text helpers for terminal pages: styles, headings, wrapped paragraphs.
//!
//! Pages are written with ANSI styles; the binary prints them through anstream, which strips
//! the styles for pipes, files and `NO_COLOR`.
//!
//! File paths are hyperlinks (OSC 8, `file://` URLs), as cargo prints them: a terminal that
//! knows OSC 8 makes them clickable, others show the text. anstream strips them with the
//! styles, so a pipe, `--color never` and `NO_COLOR` get the bare path.

use std::path::Path;

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

/// `shown` as an OSC 8 hyperlink to the file `path` (absolute), for a terminal page.
pub fn file_link(path: &Path, shown: &str) -> String {
    format!("\x1b]8;;{}\x1b\\{shown}\x1b]8;;\x1b\\", file_url(path))
}

/// A `file://` URL for an absolute path, with this machine's host name (as OSC 8 asks, so a
/// terminal on another machine over ssh does not open its own file of that name).
pub fn file_url(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut url = format!("file://{}", host_name());
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(byte as char);
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `len` bytes into the buffer we own.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let name = String::from_utf8_lossy(&buffer[..end]).into_owned();
    // Anything but a plain host name would break the URL: then none (a local file).
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        name
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link is the OSC 8 sequence around the text, with a percent-encoded `file://` URL;
    /// anstream's stripping (pipes, `--color never`, `NO_COLOR`, the MCP server) leaves the
    /// bare text.
    #[test]
    fn file_links_are_osc8_and_strip_to_the_text() {
        let link = file_link(
            Path::new("/home/a b/hunts/01-x/src/lib.rs"),
            "hunts/01-x/src/lib.rs",
        );
        assert!(link.starts_with("\x1b]8;;file://"), "{link:?}");
        assert!(link.contains(
            "/home/a%20b/hunts/01-x/src/lib.rs\x1b\\hunts/01-x/src/lib.rs\x1b]8;;\x1b\\"
        ));
        assert_eq!(
            anstream::adapter::strip_str(&link).to_string(),
            "hunts/01-x/src/lib.rs"
        );
        let styled = format!("Edit  {STRONG}{link}{STRONG:#} then");
        assert_eq!(
            anstream::adapter::strip_str(&styled).to_string(),
            "Edit  hunts/01-x/src/lib.rs then"
        );
    }

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
