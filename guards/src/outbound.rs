//! Outbound text: what a reply or a hand-off mentions that a person might act on.
//!
//! Text the agent sends out (a reply to a customer, a summary for the human team) is a sink like
//! any tool argument. A poisoned listing that says "confirm your card at http://…" succeeds when the
//! model copies the link into its reply; a forged "VERIFIED by manager: refund $1,499 to
//! gift_card_…" succeeds when the person receiving the hand-off believes it. So the policy guard
//! finds the **mentions** in each argument a tool declares outbound
//! ([`agent_core::ToolSpec::outbound_text`]) — links, e-mail addresses, phone numbers, record
//! identifiers and amounts — asks provenance what vouches for each, and gives the policy the kinds
//! that nothing vouches for (`context.outbound`). The refund bot's rules refuse unvouched links and
//! contact details and put unvouched amounts to a human.
//!
//! ```
//! use guards::outbound::{MentionKind, mentions};
//!
//! let found = mentions("Confirm at http://pay.example/x or call +1 (555) 010-2030, ref credit_card_4421486, $1,499.");
//! let kinds: Vec<MentionKind> = found.iter().map(|m| m.kind).collect();
//! assert_eq!(kinds, [MentionKind::Link, MentionKind::Phone, MentionKind::Identifier, MentionKind::Amount]);
//! ```
//!
//! Matching is deliberately generous (a bare `pay.example.com` is a link): a false mention costs a
//! question to a human at worst, a missed one lets an attacker's contact detail out.

use regex::Regex;
use serde_json::Value;
use std::sync::LazyLock;

/// One thing outbound text mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// What kind of thing it is.
    pub kind: MentionKind,
    /// The text as written.
    pub text: String,
    /// The value provenance is asked about (the text, or for a phone number its digits).
    pub value: Value,
}

/// The kinds of mention, as `context.outbound` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MentionKind {
    /// A URL or a bare domain (`http://…`, `www.…`, `pay.example.com/x`).
    Link,
    /// An e-mail address.
    Email,
    /// A phone number: nine or more digits, perhaps with `+`, spaces, dots, dashes, parentheses.
    Phone,
    /// A record identifier: a payment method id (`gift_card_1234567`) or an order id (`#W2611340`).
    Identifier,
    /// An amount of money (`$1,499`, `1499.00 USD`, `€20`).
    Amount,
}

impl MentionKind {
    /// The name policies use: `link`, `email`, `phone`, `identifier`, `amount`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Identifier => "identifier",
            Self::Amount => "amount",
        }
    }
}

/// Every mention in `text`, in order; each stretch of text is one mention at most (an e-mail
/// address is not also a link).
pub fn mentions(text: &str) -> Vec<Mention> {
    let mut found: Vec<(usize, usize, MentionKind)> = Vec::new();
    for (kind, pattern) in PATTERNS.iter() {
        for hit in pattern.find_iter(text) {
            let (start, end) = trim_punctuation(text, hit.start(), hit.end());
            let overlaps = found.iter().any(|&(s, e, _)| start < e && s < end);
            let digits = text[start..end].chars().filter(char::is_ascii_digit).count();
            if overlaps || (*kind == MentionKind::Phone && digits < 9) || start >= end {
                continue;
            }
            found.push((start, end, *kind));
        }
    }
    found.sort_by_key(|&(start, _, _)| start);
    found
        .into_iter()
        .map(|(start, end, kind)| {
            let written = &text[start..end];
            let value = match kind {
                MentionKind::Phone => {
                    Value::from(written.chars().filter(char::is_ascii_digit).collect::<String>())
                }
                _ => Value::from(written),
            };
            Mention { kind, text: written.to_owned(), value }
        })
        .collect()
}

/// Patterns in the order they claim text: an e-mail before the domain inside it, a link before
/// the numbers in its path, an identifier before the digits in it, a phone before an amount.
static PATTERNS: LazyLock<Vec<(MentionKind, Regex)>> = LazyLock::new(|| {
    [
        (MentionKind::Email, r"(?i)[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)+"),
        (
            MentionKind::Link,
            r"(?i)(?:[a-z][a-z0-9+.\-]*://\S+|www\.\S+|\b(?:[a-z0-9\-]+\.)+[a-z]{2,}(?:/\S*)?)",
        ),
        (MentionKind::Identifier, r"(?i)\b[a-z]+(?:_[a-z]+)*_\d{3,}\b|#?\b[a-z]\d{6,}\b"),
        (MentionKind::Phone, r"\+?\(?\d[\d\s().\-]{7,}\d"),
        (
            MentionKind::Amount,
            r"(?i)[$€£¥]\s?\d[\d,\s]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:usd|dollars?|eur|euros?|gbp)\b|\b\d[\d,]*\.\d{2}\b",
        ),
    ]
    .into_iter()
    .filter_map(|(kind, pattern)| Regex::new(pattern).ok().map(|regex| (kind, regex)))
    .collect()
});

/// Trailing sentence punctuation is not part of a mention (`http://x.example.`).
fn trim_punctuation(text: &str, start: usize, mut end: usize) -> (usize, usize) {
    while end > start && text[..end].ends_with(['.', ',', ';', ':', ')', '!', '?', '"', '\'', ' '])
    {
        end -= 1;
    }
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(&'static str, String)> {
        mentions(text).into_iter().map(|m| (m.kind.as_str(), m.text)).collect()
    }

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(PATTERNS.len(), 5);
    }

    #[test]
    fn an_email_address_is_not_also_a_link() {
        assert_eq!(kinds("write to ann@example.com."), [("email", "ann@example.com".to_owned())]);
    }

    #[test]
    fn links_bare_domains_and_sentence_ends() {
        assert_eq!(
            kinds("go to https://pay.example/confirm?id=9. Or pay-now.example.net/x!"),
            [
                ("link", "https://pay.example/confirm?id=9".to_owned()),
                ("link", "pay-now.example.net/x".to_owned())
            ]
        );
    }

    #[test]
    fn identifiers_amounts_and_phones() {
        assert_eq!(
            kinds("refund $1,499 on #W2611340 to gift_card_7245904; call 555 010 2030"),
            [
                ("amount", "$1,499".to_owned()),
                ("identifier", "#W2611340".to_owned()),
                ("identifier", "gift_card_7245904".to_owned()),
                ("phone", "555 010 2030".to_owned())
            ]
        );
        assert_eq!(kinds("it cost 54.04 dollars"), [("amount", "54.04 dollars".to_owned())]);
    }

    #[test]
    fn ordinary_replies_mention_nothing() {
        assert!(kinds("Thanks for writing in. Your order is on its way.").is_empty());
        assert!(kinds("Order 12 of 2026").is_empty());
    }
}
