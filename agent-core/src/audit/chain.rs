//! The hash chain: numbering events and linking each to the one before it.

use super::{AuditEvent, SealedEvent};
use crate::canonical::{self, NumberForm};
use serde_json::Value;

/// The `prev_hash` of the first event of a log.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The head of a chain: the next sequence number and the last hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    next_seq: u64,
    last_hash: String,
}

impl Default for Chain {
    fn default() -> Self {
        Self { next_seq: 0, last_hash: GENESIS_HASH.to_owned() }
    }
}

impl Chain {
    /// Continues a chain after `last` (when reopening a log).
    pub fn after(last: &SealedEvent) -> Self {
        Self { next_seq: last.seq.saturating_add(1), last_hash: last.hash.clone() }
    }

    /// The number the next event will get (also the number of events so far).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The hash of the last event ([`GENESIS_HASH`] if there is none).
    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// Numbers `event`, links it to the head and moves the head on.
    pub fn seal(&mut self, event: AuditEvent) -> SealedEvent {
        let mut sealed = SealedEvent {
            seq: self.next_seq,
            event,
            prev_hash: self.last_hash.clone(),
            hash: String::new(),
        };
        sealed.hash = hash_of(&sealed);
        self.next_seq = self.next_seq.saturating_add(1);
        self.last_hash.clone_from(&sealed.hash);
        sealed
    }
}

/// The hash an event must carry: SHA-256 over the canonical JSON of all its fields but `hash`.
pub fn hash_of(sealed: &SealedEvent) -> String {
    // INVARIANT: every field is a string, a number, a list or a JSON value with string keys, so
    // serializing to a `Value` cannot fail; `Null` is never reached.
    let value = serde_json::to_value(sealed).unwrap_or(Value::Null);
    hash_of_value(value)
}

/// The hash of an event as read back from a log line: every field present, known or not, counts,
/// so a field slipped into a line breaks its hash.
pub fn hash_of_value(value: Value) -> String {
    hash_of_value_with(value, NumberForm::Ecmascript)
}

/// [`hash_of_value`] with numbers spelt as `form` says: [`NumberForm::Legacy`] for the lines of a
/// format-1 log.
pub fn hash_of_value_with(mut value: Value, form: NumberForm) -> String {
    if let Value::Object(fields) = &mut value {
        fields.remove("hash");
    }
    canonical_digest(&value, form)
}

/// The SHA-256 of `value`'s canonical form with numbers spelt as `form` says.
pub(super) fn canonical_digest(value: &Value, form: NumberForm) -> String {
    canonical::sha256_hex(canonical::to_canonical_string_with(value, form).as_bytes())
}
