//! Showing text from outside the trust boundary to people.
//!
//! Ticket bodies, tool arguments and tool output are written by whoever wrote them, attackers
//! included. Printed as they are, some characters let that text act on the reader's screen
//! rather than be read: escape sequences recolour or clear a terminal, bidirectional overrides
//! make text read backwards, zero-width characters hide words. Every place that shows such text
//! (the terminal approval prompt, the demo transcript, the audit review) asks this one predicate,
//! and shows the character some other way.

/// Whether `c` hides or moves text instead of showing as itself: control characters (C0, DEL,
/// C1, so also escape sequences and line breaks), bidirectional marks and overrides, zero-width
/// characters, Unicode line and paragraph separators, and the byte-order mark.
pub fn hides_or_moves_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_moves_or_hides_text_is_caught_and_ordinary_text_is_not() {
        for c in [
            '\x1b', '\n', '\u{7f}', '\u{9b}', '\u{202e}', '\u{2066}', '\u{200b}', '\u{2028}',
            '\u{feff}',
        ] {
            assert!(hides_or_moves_text(c), "{:?}", c);
        }
        for c in ['a', ' ', '€', 'é', '中', '\u{fffd}'] {
            assert!(!hides_or_moves_text(c), "{c:?}");
        }
    }
}
