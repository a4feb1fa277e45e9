//! Canonical JSON and argument digests: one byte string per JSON value, so one digest per call.
//!
//! An approval, a per-call credential and an audit event all refer to "these exact arguments" by
//! the SHA-256 of their canonical form. The form: object keys sorted by their UTF-16 code units
//! (as RFC 8785 orders them), no insignificant whitespace, strings and numbers as `serde_json`
//! writes them. It does not depend on the map type `serde_json` was built with, so a crate that
//! turns on `preserve_order` somewhere in the tree cannot change a digest.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `value` in canonical form.
///
/// ```
/// use serde_json::json;
/// let a = agent_core::canonical::to_canonical_string(&json!({"b": 1, "a": [true, null]}));
/// assert_eq!(a, r#"{"a":[true,null],"b":1}"#);
/// ```
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// The SHA-256 of the canonical form, as lowercase hex: the digest an approval or a per-call
/// credential is bound to.
///
/// ```
/// use serde_json::json;
/// use agent_core::canonical::digest;
/// // Key order and whitespace do not matter; one character of value does.
/// assert_eq!(digest(&json!({"amount": 5, "order": "#W1"})), digest(&json!({"order": "#W1", "amount": 5})));
/// assert_ne!(digest(&json!({"amount": 5})), digest(&json!({"amount": 50})));
/// ```
pub fn digest(value: &Value) -> String {
    sha256_hex(to_canonical_string(value).as_bytes())
}

/// The SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in hash {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(text) => write_string(text, out),
        // Null, booleans and numbers have one spelling in serde_json already.
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn write_string(text: &str, out: &mut String) {
    // Serializing a `&str` to JSON cannot fail; fall back to an escaped debug form rather than
    // panic, which would still be deterministic.
    match serde_json::to_string(text) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str(&format!("{text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_objects_are_sorted_at_every_level() {
        let value = json!({"z": {"b": 2, "a": 1}, "a": [{"y": 1, "x": 2}]});
        assert_eq!(to_canonical_string(&value), r#"{"a":[{"x":2,"y":1}],"z":{"a":1,"b":2}}"#);
    }

    #[test]
    fn strings_are_escaped() {
        let value = json!({"k": "quote \" and newline \n"});
        assert_eq!(to_canonical_string(&value), r#"{"k":"quote \" and newline \n"}"#);
    }

    #[test]
    fn digest_is_known_sha256() {
        // sha256("{}")
        assert_eq!(
            digest(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
