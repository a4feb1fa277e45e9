//! Canonical JSON and argument digests: one byte string per JSON value, so one digest per call.
//!
//! An approval, a per-call credential and an audit event all refer to "these exact arguments" by
//! the SHA-256 of their canonical form, and the audit chain hashes each event the same way. The
//! form is the JSON Canonicalization Scheme, RFC 8785, exactly, so a verifier written elsewhere
//! (the tests check one in Python, with the `rfc8785` package) computes the same digests:
//!
//! - object keys sorted by their UTF-16 code units, at every level;
//! - no insignificant whitespace;
//! - strings escaped as ECMAScript's `JSON.stringify` escapes them (`\b \t \n \f \r \" \\`,
//!   other control characters as lowercase `\u00xx`, everything else as UTF-8);
//! - numbers as ECMAScript writes an IEEE 754 double (`1e+21`, `0.000001`, `4.5`, never `4.50`
//!   or `1.0`). An integer a double cannot hold exactly (beyond ±2^53) is written as the nearest
//!   double, as the RFC requires; such numbers are not I-JSON (RFC 7493), and the pipeline refuses
//!   tool arguments that hold one ([`non_i_json_number`]) so that no two calls share a digest.
//!
//! It does not depend on the map type `serde_json` was built with, so a crate that turns on
//! `preserve_order` somewhere in the tree cannot change a digest.
//!
//! Audit logs written before this form (format 1, whose numbers were spelt as `serde_json` spells
//! them) are still verified with that spelling: see [`NumberForm`].

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
    to_canonical_string_with(value, NumberForm::Ecmascript)
}

/// How numbers are spelt in a canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberForm {
    /// RFC 8785: as ECMAScript writes a double. Everything written now.
    Ecmascript,
    /// As `serde_json` writes the number: the form of format-1 audit logs, kept only to verify
    /// them (it differs for fractions and very large numbers: `1e21` against `1e+21`).
    Legacy,
}

/// Writes `value` in canonical form with numbers spelt as `form` says.
pub fn to_canonical_string_with(value: &Value, form: NumberForm) -> String {
    let mut out = String::new();
    write_canonical(value, form, &mut out);
    out
}

/// The first number in `value` that a double cannot hold exactly, if any: an integer beyond
/// ±2^53. RFC 8785 writes such a number as the nearest double, so two different ones could share
/// a digest; I-JSON (RFC 7493 §2.2) tells senders not to use them, and the pipeline refuses them.
///
/// ```
/// use serde_json::json;
/// use agent_core::canonical::non_i_json_number;
/// assert_eq!(non_i_json_number(&json!({"amount": 9007199254740992_u64})), None);
/// assert_eq!(non_i_json_number(&json!({"amount": [9007199254740993_u64]})).as_deref(), Some("9007199254740993"));
/// ```
pub fn non_i_json_number(value: &Value) -> Option<String> {
    match value {
        Value::Number(number) => {
            let exact = match (number.as_u64(), number.as_i64()) {
                (Some(unsigned), _) => unsigned <= MAX_EXACT_INTEGER,
                (None, Some(signed)) => signed.unsigned_abs() <= MAX_EXACT_INTEGER,
                // A fraction or exponent was parsed as a double already: it is exact as written.
                (None, None) => true,
            };
            (!exact).then(|| number.to_string())
        }
        Value::Array(items) => items.iter().find_map(non_i_json_number),
        Value::Object(map) => map.values().find_map(non_i_json_number),
        _ => None,
    }
}

/// The largest integer every double between it and zero can hold: 2^53.
const MAX_EXACT_INTEGER: u64 = 1 << 53;

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

fn write_canonical(value: &Value, form: NumberForm, out: &mut String) {
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
                write_canonical(item, form, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, form, out);
            }
            out.push(']');
        }
        Value::String(text) => write_string(text, out),
        Value::Number(number) => match form {
            NumberForm::Ecmascript => write_number(number, out),
            NumberForm::Legacy => out.push_str(&number.to_string()),
        },
        // Null and booleans have one spelling.
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Writes a number as ECMAScript's `Number.prototype.toString` writes the double it denotes
/// (ECMA-262 §6.1.6.1.20, which RFC 8785 §3.2.2.3 adopts).
fn write_number(number: &serde_json::Number, out: &mut String) {
    // Integers a double holds exactly need no float formatting (and are the common case).
    if let Some(unsigned) = number.as_u64().filter(|&n| n <= MAX_EXACT_INTEGER) {
        out.push_str(&unsigned.to_string());
        return;
    }
    if let Some(signed) = number.as_i64().filter(|n| n.unsigned_abs() <= MAX_EXACT_INTEGER) {
        out.push_str(&signed.to_string());
        return;
    }
    // INVARIANT: serde_json numbers are finite (it has no NaN or infinity), so `as_f64` is `Some`.
    write_double(number.as_f64().unwrap_or(0.0), out);
}

/// Rust picks the upper of two shortest spellings that are exactly as near the double; ECMAScript
/// picks the even one (ECMA-262 §6.1.6.1.20, note 2: `1424953923781206.2`, not `.3`). Two
/// shortest spellings can both round-trip only at 16 or 17 digits, so shorter ones are left alone.
fn round_half_to_even(value: f64, digits: &mut String, exponent: i32) {
    let Some(last) = digits.bytes().last().map(|byte| byte - b'0') else { return };
    if digits.len() < 16 || last % 2 == 0 {
        return;
    }
    let mut lower = digits.clone();
    lower.pop();
    lower.push(char::from(b'0' + last - 1));
    // The double's exact decimal expansion (a double has at most 767 significant digits).
    let exact = format!("{value:.800e}");
    let (exact_mantissa, exact_exponent) = exact.split_once('e').unwrap_or((&exact, "0"));
    if exact_exponent.parse::<i32>().ok() != Some(exponent) {
        return;
    }
    let exact_digits: String = exact_mantissa.chars().filter(char::is_ascii_digit).collect();
    // A tie: the exact value is the lower spelling followed by a 5 and nothing else.
    let tie = exact_digits.strip_prefix(lower.as_str()).and_then(|rest| rest.strip_prefix('5'));
    let lower_round_trips = format!("{}.{}e{exponent}", &lower[..1], &lower[1..])
        .parse::<f64>()
        .is_ok_and(|parsed| parsed.to_bits() == value.to_bits());
    if tie.is_some_and(|rest| rest.bytes().all(|byte| byte == b'0')) && lower_round_trips {
        *digits = lower;
    }
}

/// The ECMAScript spelling of a finite double.
fn write_double(value: f64, out: &mut String) {
    if value == 0.0 {
        // Both zeros are "0".
        out.push('0');
        return;
    }
    if value < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, which is what ECMAScript asks for
    // ("k is as small as possible"): `d[.ddd]e[-]x`.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    round_half_to_even(value.abs(), &mut digits, exponent);
    // In ECMAScript's terms the value is digits × 10^(n − k), with k digits.
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let n = exponent + 1;
    let zeros = |count: i32| "0".repeat(usize::try_from(count).unwrap_or(0));
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.push_str(&zeros(n - k));
    } else if 0 < n && n <= 21 {
        let (whole, fraction) = digits.split_at(usize::try_from(n).unwrap_or(0));
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.push_str(&zeros(-n));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).unsigned_abs().to_string());
    }
}

/// Writes a JSON string as RFC 8785 §3.2.2.2 says (ECMAScript's `JSON.stringify`): `"` and `\\`
/// and the control characters escaped (the short forms where there is one, else `\u00xx` in
/// lowercase), everything else as it is.
fn write_string(text: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (at, byte) in text.bytes().enumerate() {
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every byte escaped is ASCII, so `at` is a character boundary.
        out.push_str(&text[start..at]);
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        } else {
            out.push_str(short);
        }
        start = at + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
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

    /// Every character below U+0080 is escaped exactly as `serde_json` (and `JSON.stringify`)
    /// escape it, and everything above is written as it is.
    #[test]
    fn every_ascii_character_and_some_beyond_are_escaped_as_json_stringify_does() {
        let text: String =
            (0u8..0x80).map(char::from).chain("é€😀\u{2028}\u{7f}".chars()).collect();
        let expected = serde_json::to_string(&text).unwrap();
        assert_eq!(to_canonical_string(&json!(text)), expected);
        assert!(
            expected.contains("\\u001f") && expected.contains("\\b") && expected.contains("\\f")
        );
    }

    /// RFC 8785 Appendix B: IEEE 754 doubles and their canonical spelling.
    #[test]
    fn numbers_are_spelt_as_rfc_8785_appendix_b() {
        let cases: [(u64, &str); 24] = [
            (0x0000_0000_0000_0000, "0"),
            (0x8000_0000_0000_0000, "0"),
            (0x0000_0000_0000_0001, "5e-324"),
            (0x8000_0000_0000_0001, "-5e-324"),
            (0x7fef_ffff_ffff_ffff, "1.7976931348623157e+308"),
            (0xffef_ffff_ffff_ffff, "-1.7976931348623157e+308"),
            (0x4340_0000_0000_0000, "9007199254740992"),
            (0xc340_0000_0000_0000, "-9007199254740992"),
            (0x4430_0000_0000_0000, "295147905179352830000"),
            (0x44b5_2d02_c7e1_4af5, "9.999999999999997e+22"),
            (0x44b5_2d02_c7e1_4af6, "1e+23"),
            (0x44b5_2d02_c7e1_4af7, "1.0000000000000001e+23"),
            (0x444b_1ae4_d6e2_ef4e, "999999999999999700000"),
            (0x444b_1ae4_d6e2_ef4f, "999999999999999900000"),
            (0x444b_1ae4_d6e2_ef50, "1e+21"),
            (0x3eb0_c6f7_a0b5_ed8c, "9.999999999999997e-7"),
            (0x3eb0_c6f7_a0b5_ed8d, "0.000001"),
            (0x41b3_de43_5555_5553, "333333333.3333332"),
            (0x41b3_de43_5555_5554, "333333333.33333325"),
            (0x41b3_de43_5555_5555, "333333333.3333333"),
            (0x41b3_de43_5555_5556, "333333333.3333334"),
            (0x41b3_de43_5555_5557, "333333333.33333343"),
            (0xbecb_f647_612f_3696, "-0.0000033333333333333333"),
            (0x4314_3ff3_c1cb_0959, "1424953923781206.2"),
        ];
        for (bits, expected) in cases {
            let value = json!(f64::from_bits(bits));
            assert_eq!(to_canonical_string(&value), expected, "{bits:016x}");
        }
    }

    /// Integers beyond what a double holds are written as the nearest double (RFC 8785 §3.2.2.3),
    /// and the legacy form keeps every digit.
    #[test]
    fn large_integers_are_written_as_doubles() {
        let value = json!(u64::MAX);
        assert_eq!(to_canonical_string(&value), "18446744073709552000");
        assert_eq!(to_canonical_string_with(&value, NumberForm::Legacy), "18446744073709551615");
        assert_eq!(to_canonical_string(&json!(-9_007_199_254_740_993_i64)), "-9007199254740992");
        assert_eq!(
            non_i_json_number(&json!(-9_007_199_254_740_993_i64)).as_deref(),
            Some("-9007199254740993")
        );
        assert_eq!(non_i_json_number(&json!({"a": [1.5e300, -3]})), None);
    }

    /// RFC 8785 §3.2.2: the sample input, parsed from its text, and its canonical output.
    #[test]
    fn the_rfc_sample_canonicalizes_as_the_rfc_shows() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let value: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            to_canonical_string(&value),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    /// RFC 8785 §3.2.3: keys sorted by UTF-16 code units, so the emoji (a surrogate pair) sorts
    /// before U+FB33 although its code point is larger.
    #[test]
    fn keys_sort_by_utf16_code_units_as_the_rfc_shows() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let value: Value = serde_json::from_str(input).unwrap();
        let expected = concat!(
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",",
            "\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",",
            "\"\u{1f600}\":\"Emoji: Grinning Face\",",
            "\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
        );
        assert_eq!(to_canonical_string(&value), expected);
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
