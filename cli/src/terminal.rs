//! Text that came from the server, made safe to print on a terminal.
//!
//! A creditor, a reference, an agent's reply or an error detail may hold terminal controls:
//! `ESC[2J` clears the screen, an OSC 52 sequence writes the clipboard, a right-to-left
//! override (U+202E) reorders what follows. A hostile answer could hide or rewrite the rows a
//! person checks before approving money. Every command prints server text through
//! [`safe_line`] (one line: table cells, names, ids, error messages) or [`safe_text`] (a chat
//! reply, which may span lines). `--json` output is not passed through these: it stays the
//! exact JSON (serde_json escapes control characters there).
//!
//! Written by hand: the crates that handle escape sequences strip them (so a reader never
//! sees that something was there) and leave bidi controls alone.

use std::borrow::Cow;

/// `s` for a one-line slot (a table cell, a name): every control character, newline and tab
/// included, and every bidirectional formatting character is replaced by a visible stand-in.
pub fn safe_line(s: &str) -> Cow<'_, str> {
    replace(s, false)
}

/// `s` for multi-line text (a chat reply): like [`safe_line`], but newline and tab stay.
pub fn safe_text(s: &str) -> Cow<'_, str> {
    replace(s, true)
}

fn replace(s: &str, keep_lines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| needs_replacing(c) && !(keep_lines && matches!(c, '\n' | '\t'));
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            push_stand_in(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// C0 controls, DEL, C1 controls, and the Unicode bidirectional formatting characters (and
/// the line and paragraph separators, which some terminals treat as line breaks).
fn needs_replacing(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}' | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
    )
}

/// C0 controls and DEL become their Unicode control pictures (`␛` for ESC, `␇` for BEL),
/// one visible column each; everything else becomes `<U+XXXX>`.
fn push_stand_in(out: &mut String, c: char) {
    let code = u32::from(c);
    let picture = match code {
        0..=0x1f => char::from_u32(0x2400 + code),
        0x7f => Some('\u{2421}'),
        _ => None,
    };
    match picture {
        Some(p) => out.push(p),
        None => out.push_str(&format!("<U+{code:04X}>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_become_visible_and_plain_text_is_untouched() {
        assert!(matches!(safe_line("Alice £20 – café"), Cow::Borrowed(_)));
        assert_eq!(safe_line("a\u{1b}[2Jb"), "a␛[2Jb");
        assert_eq!(
            safe_line("\u{1b}]52;c;aGk=\u{7}"),
            "␛]52;c;aGk=␇",
            "OSC 52 clipboard write"
        );
        assert_eq!(safe_line("x\u{9b}31m"), "x<U+009B>31m", "C1 CSI");
        assert_eq!(safe_line("pay \u{202e}321"), "pay <U+202E>321");
        assert_eq!(safe_line("\u{2066}a\u{2069}"), "<U+2066>a<U+2069>");
        assert_eq!(safe_line("a\r\nb\tc\u{7f}"), "a␍␊b␉c␡");
        assert_eq!(safe_text("a\r\nb\tc"), "a␍\nb\tc");
    }
}
