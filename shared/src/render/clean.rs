//! Text that cannot forge a line: what a requestor typed (`requested_by`, `reason`) and what
//! the tenant names (users, groups, mailboxes, Exchange's messages) reach the PSA note, the
//! text report and the email as one line each. A line break becomes a visible `↵`, any other
//! control or direction-changing character a `�`, so a reason cannot start a line of its own
//! that reads like the report's headline.

/// `s` on one line, with every line break shown as ` ↵ ` and every other control character
/// (and the bidirectional overrides that reorder what a reader sees) as `�`.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
                // CR LF is one break.
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str(" ↵ ");
            }
            '\t' => out.push(' '),
            c if c.is_control() || is_bidi_control(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn line_breaks_and_controls_stay_visible_on_one_line() {
        assert_eq!(
            one_line("Leaver\r\nSUCCESS — all access removed"),
            "Leaver ↵ SUCCESS — all access removed"
        );
        assert_eq!(one_line("a\nb\rc\u{2028}d"), "a ↵ b ↵ c ↵ d");
        assert_eq!(
            one_line("bell\u{7}esc\u{1b}[2J"),
            "bell\u{FFFD}esc\u{FFFD}[2J"
        );
        assert_eq!(one_line("gpj.\u{202E}exe"), "gpj.\u{FFFD}exe");
        assert_eq!(one_line("tab\there"), "tab here");
        assert_eq!(one_line("Jürgen Müller <j@x.de>"), "Jürgen Müller <j@x.de>");
    }
}
