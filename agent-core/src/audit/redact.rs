//! Redaction: secrets never reach the audit log, whatever the model or a tool put in a call.
//!
//! Two nets. By name: the value of any field whose name says it is a secret (`password`,
//! `api_key`, `authorization`, `access_token`, `card_number`, …) is replaced whole. By shape: in
//! every string, Anthropic-style API keys, bearer tokens, JWTs and card numbers (13 to 19 digits,
//! spaces or dashes allowed, passing the Luhn check) are replaced. Digests are taken over the real
//! arguments before redaction, so an approval still binds to what will actually run.

use super::AuditEvent;
use regex::{Captures, Regex};
use serde_json::Value;
use std::sync::LazyLock;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Redacts the parts of an event that can carry caller-supplied text: arguments, reasons, detail.
pub fn redact_event(event: &mut AuditEvent) {
    if let Some(args) = &mut event.args {
        redact_value(args);
    }
    for reason in &mut event.reasons {
        reason.detail = redact_text(&reason.detail);
    }
    redact_value(&mut event.detail);
}

/// Redacts a JSON value in place: secret-named fields whole, secret-shaped text within strings.
pub fn redact_value(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if SECRET_NAME.is_match(name) && !field.is_null() {
                    *field = Value::String(REDACTED.to_owned());
                } else {
                    redact_value(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(text) => {
            let redacted = redact_text(text);
            if redacted != *text {
                *text = redacted;
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Replaces secret-shaped substrings of `text`.
///
/// ```
/// use agent_core::audit::redact::redact_text;
/// let said = "key sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123 card 4111 1111 1111 1111";
/// assert_eq!(redact_text(said), "key [REDACTED] card [REDACTED card]");
/// // Order ids and short numbers are left alone.
/// assert_eq!(redact_text("order #W2611340, item 6469567736"), "order #W2611340, item 6469567736");
/// ```
pub fn redact_text(text: &str) -> String {
    let text = SECRET_SHAPE.replace_all(text, REDACTED);
    CARD_NUMBER
        .replace_all(&text, |found: &Captures<'_>| {
            let candidate = &found[0];
            if luhn_valid(candidate) { "[REDACTED card]".to_owned() } else { candidate.to_owned() }
        })
        .into_owned()
}

/// Field names whose values are secrets, whatever they look like.
static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)^(?:.*[_-])?(?:password|passwd|secret|token|access_token|refresh_token|api[_-]?key|authorization|cookie|private[_-]?key|card[_-]?number|cvv|cvc)$",
    )
});

/// Anthropic and other `sk-` keys, bearer tokens, and JWTs.
static SECRET_SHAPE: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"sk-ant-[A-Za-z0-9_\-]{8,}",
        r"|\bsk-[A-Za-z0-9_\-]{20,}",
        r"|(?i:bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*",
        r"|\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*",
    ))
});

/// 13 to 19 digits, optionally grouped by single spaces or dashes.
static CARD_NUMBER: LazyLock<Regex> = LazyLock::new(|| compile(r"\b\d(?:[ \-]?\d){12,18}\b"));

fn compile(pattern: &str) -> Regex {
    // INVARIANT: the patterns above are constants covered by the tests below; a typo fails every
    // test run, never production alone.
    #[expect(clippy::expect_used, reason = "constant patterns, checked by the unit tests")]
    Regex::new(pattern).expect("redaction pattern compiles")
}

/// The Luhn checksum that every payment card number satisfies.
fn luhn_valid(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(index, &digit)| {
            if index % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_key_and_card_number_are_removed_from_text() {
        let text = "use sk-ant-api03-Zx9_secret-KEY-value please, card 4111-1111-1111-1111";
        let redacted = redact_text(text);
        assert!(!redacted.contains("sk-ant"), "{redacted}");
        assert!(!redacted.contains("4111"), "{redacted}");
        assert_eq!(redacted, "use [REDACTED] please, card [REDACTED card]");
    }

    #[test]
    fn bearer_tokens_and_jwts_are_removed() {
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl";
        let redacted = redact_text(&format!("Authorization: Bearer abc.def-ghi_123 then {jwt}"));
        assert_eq!(redacted, "Authorization: [REDACTED] then [REDACTED]");
    }

    #[test]
    fn numbers_failing_luhn_are_kept() {
        // 16 digits, not a valid card number: a tracking id, say.
        assert_eq!(redact_text("tracking 1234567812345678"), "tracking 1234567812345678");
    }

    #[test]
    fn secret_named_fields_are_replaced_whole() {
        let mut value = json!({
            "order_id": "#W1",
            "api_key": "anything at all",
            "nested": [{"password": "hunter2", "note": "card 5555 5555 5555 4444"}],
            "max_tokens": 5,
        });
        redact_value(&mut value);
        assert_eq!(
            value,
            json!({
                "order_id": "#W1",
                "api_key": REDACTED,
                "nested": [{"password": REDACTED, "note": "card [REDACTED card]"}],
                "max_tokens": 5,
            })
        );
    }
}
