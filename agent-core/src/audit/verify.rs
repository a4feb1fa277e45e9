//! Verifying the chain alone: walk it and report the first line where it breaks.
//!
//! Each line must parse, carry the next sequence number, name the previous line's hash as its
//! `prev_hash`, and hash to its own `hash`. An edited line fails its own hash; a removed or
//! reordered line fails the sequence or the link; a line cut off mid-write fails to parse.
//!
//! This catches accidents, not adversaries: whoever can write the file can cut it at a line
//! boundary or recompute every hash after an edit, and the chain still verifies. Checking a log
//! against an adversary (signatures, approvals, the witness) is
//! [`check_log`](super::check_log); this chain-only check stays as the quick check and as the
//! positive control of the tests, which show that each attack passes it.

use super::chain::hash_of_value_with;
use super::checkpoint::is_header;
use super::{GENESIS_HASH, SealedEvent};
use crate::canonical::NumberForm;
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    /// How many events the log holds.
    pub events: u64,
    /// The hash of the last event ([`GENESIS_HASH`] for an empty log).
    pub head_hash: String,
}

/// Where and how a chain broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ChainBreak {
    /// The first bad line, from 1.
    pub line: u64,
    /// What is wrong with it.
    pub kind: BreakKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BreakKind {
    /// Not a JSON object, or cut off.
    #[error("not a complete JSON event: {0}")]
    Unreadable(String),
    /// A required field is missing or of the wrong type.
    #[error("missing or invalid `{0}`")]
    MissingField(&'static str),
    /// The sequence number is not the next one: a line was removed, repeated or moved.
    #[error("expected event {expected}, found event {found} (a line is missing or out of order)")]
    Sequence {
        /// The number this line should carry.
        expected: u64,
        /// The number it carries.
        found: u64,
    },
    /// `prev_hash` does not name the previous line's hash.
    #[error("the link to the previous event is broken")]
    Link,
    /// The line's contents do not hash to its `hash`: it was edited.
    #[error("the event's contents do not match its hash (edited)")]
    Hash,
}

/// Why a file could not be verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The chain is broken.
    #[error("`{path}` {source}")]
    Broken {
        /// The file.
        path: String,
        /// Where and how.
        source: ChainBreak,
    },
}

/// Verifies the log at `path`.
pub fn verify_file(path: impl AsRef<Path>) -> Result<ChainSummary, VerifyError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let file = std::fs::File::open(path)
        .map_err(|source| VerifyError::Io { path: shown.clone(), source })?;
    let mut reader = std::io::BufReader::new(file);
    let mut lines = Vec::new();
    // Read raw lines, keeping whether each ended in a newline, so a cut-off last line is caught.
    loop {
        let mut line = Vec::new();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| VerifyError::Io { path: shown.clone(), source })?;
        if read == 0 {
            break;
        }
        lines.push(line);
    }
    verify_raw_lines(&lines).map_err(|source| VerifyError::Broken { path: shown, source })
}

/// The events of the log at `path`, in order, once its chain verifies: the reader for tools and
/// tests that want the events themselves. A last line torn by a crash (no newline) is not an
/// event and is left out; any other broken line is an error. It checks the chain only: check
/// the log with [`check_log`](super::check_log) before trusting it against an adversary.
pub fn read_events(path: impl AsRef<Path>) -> Result<Vec<SealedEvent>, VerifyError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let mut text = std::fs::read_to_string(path)
        .map_err(|source| VerifyError::Io { path: shown.clone(), source })?;
    text.truncate(text.rfind('\n').map_or(0, |at| at + 1));
    let broken = |source| VerifyError::Broken { path: shown.clone(), source };
    verify_lines(text.lines()).map_err(broken)?;
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| {
                let kind = BreakKind::Unreadable(format!("not an audit event: {error}"));
                broken(ChainBreak { line: index as u64 + 1, kind })
            })
        })
        .collect()
}

/// Verifies a log given as lines of text (without their newlines).
pub fn verify_lines<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> Result<ChainSummary, ChainBreak> {
    let raw: Vec<Vec<u8>> =
        lines.into_iter().map(|line| format!("{line}\n").into_bytes()).collect();
    verify_raw_lines(&raw)
}

fn verify_raw_lines(lines: &[Vec<u8>]) -> Result<ChainSummary, ChainBreak> {
    let mut expected_seq = 0u64;
    // A log with a header hashes with RFC 8785; one without is format 1 (see `check_log`).
    let mut form = NumberForm::Ecmascript;
    let mut previous_hash = GENESIS_HASH.to_owned();
    for (index, raw) in lines.iter().enumerate() {
        let line = index as u64 + 1;
        let broken = |kind| ChainBreak { line, kind };
        let Some(body) = raw.strip_suffix(b"\n") else {
            return Err(broken(BreakKind::Unreadable("the line is cut off".to_owned())));
        };
        let value: Value = serde_json::from_slice(body)
            .map_err(|error| broken(BreakKind::Unreadable(error.to_string())))?;
        if index == 0 && !is_header(&value) {
            form = NumberForm::Legacy;
        }
        let seq = value
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or(broken(BreakKind::MissingField("seq")))?;
        let prev = value
            .get("prev_hash")
            .and_then(Value::as_str)
            .ok_or(broken(BreakKind::MissingField("prev_hash")))?;
        let hash = value
            .get("hash")
            .and_then(Value::as_str)
            .ok_or(broken(BreakKind::MissingField("hash")))?
            .to_owned();
        if seq != expected_seq {
            return Err(broken(BreakKind::Sequence { expected: expected_seq, found: seq }));
        }
        if prev != previous_hash {
            return Err(broken(BreakKind::Link));
        }
        if hash_of_value_with(value, form) != hash {
            return Err(broken(BreakKind::Hash));
        }
        expected_seq += 1;
        previous_hash = hash;
    }
    Ok(ChainSummary { events: expected_seq, head_hash: previous_hash })
}
