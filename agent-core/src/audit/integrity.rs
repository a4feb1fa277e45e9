//! Checking a log against an adversary: the chain, every signature it carries, and its witness.
//!
//! [`verify_file`](super::verify_file) walks the hash chain, which anyone who can write the file
//! can recompute. [`check_log`] also checks what they cannot make:
//!
//! - the header (line 1): the log's format and id;
//! - every checkpoint: its signature verifies against the trusted keys, and the head it signs is
//!   this log's (its id), at this place (its size), with this chain (the previous line's hash);
//! - every approval: its signature verifies, the signed record is the one on the line, and it
//!   binds the call it approves (request id, tool, task, argument digest, and an `allow` only for
//!   an `approved` record); in a signed log, an approval that let a call through unsigned is
//!   tampering;
//! - the witness: its signed head verifies, names this log, and the log reaches it with the same
//!   hash there (a shorter log was cut; a different hash, or another id, was replaced); a sealed
//!   witness needs the seal.
//!
//! The verdict is one of three ([`IntegrityVerdict`]): **sealed** (all of the above, ending in the
//! seal of a clean close), **unsealed** (intact, but still running or stopped without a close:
//! what follows the last checkpoint is unsigned and the last line may be torn; nothing proves
//! tampering), or **tampered** (each [`Finding`] names the line and the kind).

use super::chain::canonical_digest;
use super::checkpoint::{LOG_FORMAT, SignatureCheck, SignedHead, TreeHead, is_header, read_header};
use super::{GENESIS_HASH, WitnessFile};
use crate::canonical::NumberForm;
use serde::Serialize;
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;

/// What a log's checks came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrityVerdict {
    /// Intact, every signature valid, the witness reached, and closed cleanly with a seal.
    Sealed,
    /// Intact as far as it goes, but not sealed: the runtime is still running, or stopped without
    /// closing (a crash, a kill, a full disk), or the log is not signed at all.
    Unsealed,
    /// Something a writer of the log could do, and the runtime never does, was found.
    Tampered,
}

impl IntegrityVerdict {
    /// The verdict in words nobody can miss.
    pub fn headline(self) -> &'static str {
        match self {
            Self::Sealed => "INTACT AND SEALED",
            Self::Unsealed => "INTACT, NOT SEALED",
            Self::Tampered => "TAMPERED",
        }
    }
}

/// One sign of tampering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The line, from 1, when it is about one.
    pub line: Option<u64>,
    /// What kind of tampering.
    pub kind: FindingKind,
    /// What was found, in a sentence.
    pub message: String,
}

/// The kinds of tampering [`check_log`] tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// The file is empty: every log begins with its header.
    Empty,
    /// A complete line that is not a JSON event.
    Unreadable,
    /// A line lacks `seq`, `prev_hash` or `hash`.
    MissingField,
    /// A line is missing, repeated or moved.
    Sequence,
    /// A line does not link to the one before it.
    Link,
    /// A line's contents do not match its hash: edited.
    Hash,
    /// The header is missing or not a header of this format.
    Header,
    /// A checkpoint's signature does not verify with the trusted keys.
    CheckpointSignature,
    /// A checkpoint's signed head is not this log's head at that place.
    CheckpointMismatch,
    /// An approval's signature does not verify.
    ApprovalSignature,
    /// An approval's signed record is not the record on the line, or does not bind its call.
    ApprovalMismatch,
    /// An approval let a call through with no signature, in a signed log.
    ApprovalUnsigned,
    /// The log ends before the head its witness holds.
    Truncated,
    /// The log is not the one its witness saw (another id, or another event at the head).
    Replaced,
    /// The log is signed, or a witness was expected, and there is none.
    WitnessMissing,
    /// The witness's signature does not verify, or it is not a witness.
    WitnessInvalid,
    /// The witness holds the seal of a clean close, and the log lacks it.
    SealRemoved,
}

/// Which witness to compare the log with.
#[derive(Debug, Clone)]
pub enum WitnessCheck {
    /// This witness must exist: its absence is tampering (for a runtime known to keep one).
    Expect(WitnessFile),
    /// The witness the log's header names, or else this one; either must exist (for a runtime
    /// known to sign every log it writes, wherever it was configured to keep the witness).
    Named(WitnessFile),
    /// Compare with this witness if the log is signed (a signed log always has one).
    IfSigned(WitnessFile),
    /// No witness is compared (the verdict can then not exclude a cut at the end).
    Skip,
}

/// A checkpoint as found in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointSeen {
    /// Its line, from 1.
    pub line: u64,
    /// The head it signs.
    pub head: TreeHead,
    /// The key that signed.
    pub key_id: String,
}

/// The witness's head, as compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WitnessSeen {
    /// The witness file.
    pub path: String,
    /// The head it holds (when it exists and parses).
    pub head: Option<TreeHead>,
}

/// Everything [`check_log`] found out about one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Integrity {
    /// The log file.
    pub path: String,
    /// The verdict.
    pub verdict: IntegrityVerdict,
    /// The log format (1 for a log without header).
    pub format: u64,
    /// The log's id, from its header.
    pub log_id: Option<String>,
    /// Whether the header says the log is signed.
    pub signed: bool,
    /// How many complete lines verified in chain order.
    pub events: u64,
    /// The hash of the last of them.
    pub head_hash: String,
    /// Every valid checkpoint, in order.
    pub checkpoints: Vec<CheckpointSeen>,
    /// Events after the last checkpoint: not covered by a signature.
    pub unsigned_events: u64,
    /// A last line cut off mid-write (no newline), as a crash or a full disk leaves it.
    pub torn_line: Option<u64>,
    /// Approval records whose signature verified and which bind their call.
    pub approvals_verified: u64,
    /// Approval records without a signature (refusals made before anyone was asked).
    pub approvals_unsigned: u64,
    /// The witness compared, if any.
    pub witness: Option<WitnessSeen>,
    /// Signs of tampering: empty unless the verdict is [`IntegrityVerdict::Tampered`].
    pub findings: Vec<Finding>,
}

impl Integrity {
    /// The last checkpoint, if any.
    pub fn last_checkpoint(&self) -> Option<&CheckpointSeen> {
        self.checkpoints.last()
    }

    /// A few lines for people: the verdict first, then what it rests on.
    pub fn describe(&self) -> String {
        let mut out = format!("{}: {}\n", self.path, self.verdict.headline());
        for finding in &self.findings {
            match finding.line {
                Some(line) => out.push_str(&format!("  line {line}: {}\n", finding.message)),
                None => out.push_str(&format!("  {}\n", finding.message)),
            }
        }
        let log = self.log_id.as_deref().unwrap_or("(no id)");
        out.push_str(&format!(
            "  log {log}, format {}, {} events in chain order, head {}\n",
            self.format, self.events, self.head_hash
        ));
        match self.last_checkpoint() {
            Some(last) => out.push_str(&format!(
                "  {} signed checkpoints; the last (line {}, key {}) covers {} events at {}{}\n",
                self.checkpoints.len(),
                last.line,
                last.key_id,
                last.head.size,
                last.head.time,
                if last.head.sealed { ", sealed" } else { "" },
            )),
            None if self.signed => out.push_str("  no valid signed checkpoint\n"),
            None => out.push_str("  the log is not signed: it can be checked for accidents only\n"),
        }
        if self.unsigned_events > 0 {
            out.push_str(&format!(
                "  {} events after the last checkpoint are not signed\n",
                self.unsigned_events
            ));
        }
        if let Some(line) = self.torn_line {
            out.push_str(&format!(
                "  line {line} is torn (cut off mid-write, as a crash or a full disk leaves it)\n"
            ));
        }
        out.push_str(&format!(
            "  {} approvals verified, {} unsigned refusals\n",
            self.approvals_verified, self.approvals_unsigned
        ));
        match &self.witness {
            Some(WitnessSeen { path, head: Some(head) }) => out.push_str(&format!(
                "  witness {path}: {} events at {}{}\n",
                head.size,
                head.time,
                if head.sealed { ", sealed" } else { "" }
            )),
            Some(WitnessSeen { path, head: None }) => {
                out.push_str(&format!("  witness {path}: none\n"));
            }
            None => out.push_str("  no witness compared\n"),
        }
        out
    }
}

/// Checks the log at `path`: the chain, every signature against `signatures`, and the witness.
/// An error means the file could not be read at all; anything found in it is in the result.
pub fn check_log(
    path: impl AsRef<Path>,
    signatures: &dyn SignatureCheck,
    witness: &WitnessCheck,
) -> Result<Integrity, std::io::Error> {
    let path = path.as_ref();
    let file = std::fs::File::open(path)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut walk = Walk::new(path, signatures);
    let named;
    let witness_file = match witness {
        WitnessCheck::Expect(file) | WitnessCheck::IfSigned(file) => Some(file),
        WitnessCheck::Named(fallback) => {
            named = witness_named_in(path).map_or_else(|| fallback.clone(), WitnessFile::at);
            Some(&named)
        }
        WitnessCheck::Skip => None,
    };
    let witnessed = witness_file.map(|file| walk.read_witness(file));
    walk.witness_size = witnessed
        .as_ref()
        .and_then(|w| w.as_ref().ok())
        .and_then(|w| w.as_ref())
        .map(|signed| signed.head.size);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if !walk.line(&line) {
            break;
        }
    }
    walk.finish(witness_file, witness, witnessed)
}

/// The witness a log's header names (`detail.witness`), if it names one.
fn witness_named_in(path: &Path) -> Option<std::path::PathBuf> {
    let header = read_header(std::fs::File::open(path).ok()?).ok()??;
    header.pointer("/detail/witness").and_then(Value::as_str).map(std::path::PathBuf::from)
}

/// The state of one walk down a log.
struct Walk<'a> {
    signatures: &'a dyn SignatureCheck,
    form: NumberForm,
    integrity: Integrity,
    previous_hash: String,
    /// The line number of the last line read.
    line_number: u64,
    /// Whether the last complete line was a seal.
    ends_sealed: bool,
    /// The size of the witness's head, to catch the hash there on the way.
    witness_size: Option<u64>,
    /// The hash of event `witness_size - 1`, once read.
    hash_at_witness: Option<String>,
    /// The walk stopped: the chain broke, or a torn line ended it.
    stopped: bool,
}

impl<'a> Walk<'a> {
    fn new(path: &Path, signatures: &'a dyn SignatureCheck) -> Self {
        Self {
            signatures,
            form: NumberForm::Ecmascript,
            integrity: Integrity {
                path: path.display().to_string(),
                verdict: IntegrityVerdict::Unsealed,
                format: LOG_FORMAT,
                log_id: None,
                signed: false,
                events: 0,
                head_hash: GENESIS_HASH.to_owned(),
                checkpoints: Vec::new(),
                unsigned_events: 0,
                torn_line: None,
                approvals_verified: 0,
                approvals_unsigned: 0,
                witness: None,
                findings: Vec::new(),
            },
            previous_hash: GENESIS_HASH.to_owned(),
            line_number: 0,
            ends_sealed: false,
            witness_size: None,
            hash_at_witness: None,
            stopped: false,
        }
    }

    fn find(&mut self, line: Option<u64>, kind: FindingKind, message: impl Into<String>) {
        self.integrity.findings.push(Finding { line, kind, message: message.into() });
    }

    /// Reads one raw line; `false` once nothing after it can be vouched for.
    fn line(&mut self, raw: &[u8]) -> bool {
        self.line_number += 1;
        let number = self.line_number;
        let Some(body) = raw.strip_suffix(b"\n") else {
            // Only the last line can lack its newline; the caller reads no further.
            self.integrity.torn_line = Some(number);
            self.stopped = true;
            return false;
        };
        let mut value: Value = match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(error) => {
                self.find(
                    Some(number),
                    FindingKind::Unreadable,
                    format!("not a JSON event: {error}"),
                );
                return self.stop();
            }
        };
        if number == 1 {
            self.header(&value);
        }
        let fields = (
            value.get("seq").and_then(Value::as_u64),
            value.get("prev_hash").and_then(Value::as_str),
            value.get("hash").and_then(Value::as_str),
        );
        let (Some(seq), Some(prev), Some(hash)) = fields else {
            self.find(
                Some(number),
                FindingKind::MissingField,
                "missing `seq`, `prev_hash` or `hash`",
            );
            return self.stop();
        };
        let expected = self.integrity.events;
        if seq != expected {
            let message = format!(
                "expected event {expected}, found event {seq} (a line is missing or out of order)"
            );
            self.find(Some(number), FindingKind::Sequence, message);
            return self.stop();
        }
        if prev != self.previous_hash {
            self.find(Some(number), FindingKind::Link, "the link to the previous event is broken");
            return self.stop();
        }
        let hash = hash.to_owned();
        // The hash covers every field but itself; nothing below reads `hash` from the line.
        if let Value::Object(fields) = &mut value {
            fields.remove("hash");
        }
        if canonical_digest(&value, self.form) != hash {
            self.find(
                Some(number),
                FindingKind::Hash,
                "the event's contents do not match its hash (edited)",
            );
            return self.stop();
        }
        let stage = value.get("stage").and_then(Value::as_str).unwrap_or_default();
        self.ends_sealed = false;
        match stage {
            "checkpoint" => self.checkpoint(number, seq, &value),
            "approval" => {
                self.approval(number, &value);
                self.integrity.unsigned_events += 1;
            }
            _ => self.integrity.unsigned_events += 1,
        }
        self.integrity.events += 1;
        if self.witness_size == Some(seq + 1) {
            self.hash_at_witness = Some(hash.clone());
        }
        self.integrity.head_hash.clone_from(&hash);
        self.previous_hash = hash;
        true
    }

    fn stop(&mut self) -> bool {
        self.stopped = true;
        false
    }

    fn header(&mut self, value: &Value) {
        if !is_header(value) {
            // No header: a format-1 log, hashed with serde_json's number spelling.
            self.integrity.format = 1;
            self.form = NumberForm::Legacy;
            return;
        }
        let detail = value.get("detail");
        let format = detail.and_then(|d| d.get("format")).and_then(Value::as_u64);
        let log_id = detail.and_then(|d| d.get("log_id")).and_then(Value::as_str);
        match (format, log_id) {
            (Some(LOG_FORMAT), Some(id)) => {
                self.integrity.log_id = Some(id.to_owned());
                self.integrity.signed =
                    detail.and_then(|d| d.get("signed")).and_then(Value::as_bool) == Some(true);
            }
            _ => {
                let message =
                    format!("the header is not a format-{LOG_FORMAT} header with a log id");
                self.find(Some(1), FindingKind::Header, message);
            }
        }
    }

    fn checkpoint(&mut self, number: u64, seq: u64, value: &Value) {
        let claimed: Option<SignedHead> =
            value.get("detail").cloned().and_then(|detail| serde_json::from_value(detail).ok());
        let Some(claimed) = claimed else {
            self.find(
                Some(number),
                FindingKind::CheckpointMismatch,
                "a checkpoint without a signed head",
            );
            return;
        };
        let (head, key_id) = match self.signatures.checkpoint(&claimed.signature) {
            Ok(signed) => signed,
            Err(error) => {
                let message = format!("the checkpoint's signature does not verify: {error}");
                self.find(Some(number), FindingKind::CheckpointSignature, message);
                return;
            }
        };
        let verdict = value.get("verdict").and_then(Value::as_str);
        let mismatch = if head != claimed.head || key_id != claimed.key_id {
            Some("the head on the line is not the head that was signed".to_owned())
        } else if Some(&head.log_id) != self.integrity.log_id.as_ref() {
            Some(format!("the signed head is of log `{}`, not this log", head.log_id))
        } else if head.size != seq || head.head_hash != self.previous_hash {
            Some(format!(
                "the signed head covers {} events ending in {}, but the chain here has {} ending \
                 in {} (the log was rewritten before this point)",
                head.size, head.head_hash, seq, self.previous_hash
            ))
        } else if head.sealed != (verdict == Some("sealed")) {
            Some(
                "the line's verdict does not say what the signed head says about the seal"
                    .to_owned(),
            )
        } else {
            None
        };
        if let Some(message) = mismatch {
            self.find(Some(number), FindingKind::CheckpointMismatch, message);
            return;
        }
        self.ends_sealed = head.sealed;
        self.integrity.unsigned_events = 0;
        self.integrity.checkpoints.push(CheckpointSeen { line: number, head, key_id });
    }

    fn approval(&mut self, number: u64, value: &Value) {
        let Some(record) = value.pointer("/detail/record") else { return };
        let signature = value.pointer("/detail/signature").filter(|s| !s.is_null());
        let allowed = value.get("verdict").and_then(Value::as_str) == Some("allow");
        let Some(signature) = signature else {
            if allowed && self.integrity.signed {
                let message = "an approval let the call through without a signature";
                self.find(Some(number), FindingKind::ApprovalUnsigned, message);
            } else {
                self.integrity.approvals_unsigned += 1;
            }
            return;
        };
        let signed = match self.signatures.approval(signature) {
            Ok(signed) => signed,
            Err(error) => {
                let message = format!("the approval's signature does not verify: {error}");
                self.find(Some(number), FindingKind::ApprovalSignature, message);
                return;
            }
        };
        if &signed != record {
            let said =
                |v: &Value| v.get("decision").and_then(Value::as_str).unwrap_or("?").to_owned();
            let message = format!(
                "the approval record on the line (decision `{}`) is not the one signed (decision `{}`)",
                said(record),
                said(&signed)
            );
            self.find(Some(number), FindingKind::ApprovalMismatch, message);
            return;
        }
        if let Some(message) = unbound(&signed, value, allowed) {
            self.find(Some(number), FindingKind::ApprovalMismatch, message);
            return;
        }
        self.integrity.approvals_verified += 1;
    }

    fn read_witness(&mut self, file: &WitnessFile) -> Result<Option<SignedHead>, String> {
        let witnessed = file.read()?;
        let Some(witnessed) = witnessed else { return Ok(None) };
        match self.signatures.checkpoint(&witnessed.signature) {
            Ok((head, _)) if head == witnessed.head => Ok(Some(witnessed)),
            Ok(_) => Err("the witness's head is not the head that was signed".to_owned()),
            Err(error) => Err(format!("the witness's signature does not verify: {error}")),
        }
    }

    fn finish(
        mut self,
        file: Option<&WitnessFile>,
        check: &WitnessCheck,
        witnessed: Option<Result<Option<SignedHead>, String>>,
    ) -> Result<Integrity, std::io::Error> {
        if self.line_number == 0 {
            self.find(
                None,
                FindingKind::Empty,
                "the file is empty, but every log begins with its header",
            );
        }
        let expected = match check {
            WitnessCheck::Expect(_) | WitnessCheck::Named(_) => true,
            WitnessCheck::IfSigned(_) => self.integrity.signed,
            WitnessCheck::Skip => false,
        };
        if let (Some(file), Some(witnessed)) = (file, witnessed) {
            let path = file.path().display().to_string();
            match witnessed {
                Err(message) => {
                    self.integrity.witness = Some(WitnessSeen { path, head: None });
                    self.find(None, FindingKind::WitnessInvalid, message);
                }
                Ok(None) => {
                    self.integrity.witness = Some(WitnessSeen { path: path.clone(), head: None });
                    if expected {
                        let message = format!(
                            "the witness `{path}` is missing: nothing shows how far the log reached"
                        );
                        self.find(None, FindingKind::WitnessMissing, message);
                    }
                }
                Ok(Some(signed)) => {
                    self.compare_with_witness(&signed.head);
                    self.integrity.witness = Some(WitnessSeen { path, head: Some(signed.head) });
                }
            }
        }
        self.integrity.verdict = if !self.integrity.findings.is_empty() {
            IntegrityVerdict::Tampered
        } else if self.integrity.signed
            && self.ends_sealed
            && !self.stopped
            && self.integrity.torn_line.is_none()
        {
            IntegrityVerdict::Sealed
        } else {
            IntegrityVerdict::Unsealed
        };
        Ok(self.integrity)
    }

    fn compare_with_witness(&mut self, head: &TreeHead) {
        let this_log = self.integrity.log_id.clone().unwrap_or_else(|| "(no id)".to_owned());
        if Some(&head.log_id) != self.integrity.log_id.as_ref() {
            let message = format!(
                "the witness is of log `{}`, but this file is log `{this_log}`: it was replaced",
                head.log_id
            );
            self.find(None, FindingKind::Replaced, message);
        } else if self.integrity.events < head.size {
            let message = format!(
                "the witness saw {} events, signed at {}; the log holds {} in chain order: it was \
                 cut short",
                head.size, head.time, self.integrity.events
            );
            self.find(None, FindingKind::Truncated, message);
        } else if self.hash_at_witness.as_deref() != Some(head.head_hash.as_str()) {
            let message = format!(
                "event {} is not the one the witness saw: the log was rewritten",
                head.size.saturating_sub(1)
            );
            self.find(Some(head.size), FindingKind::Replaced, message);
        } else if head.sealed && !(self.ends_sealed && self.integrity.events == head.size + 1) {
            // The seal is the line at `size`, and the last: a reopened log is checkpointed at
            // once, so its witness no longer holds a seal.
            let message = "the witness holds the seal of a clean close; the log does not end in it";
            self.find(None, FindingKind::SealRemoved, message);
        }
    }
}

/// Why a signed approval record does not bind the call on its line, if it does not.
fn unbound(record: &Value, line: &Value, allowed: bool) -> Option<String> {
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let task = text(line, "task");
    let call = text(line, "call_id");
    let request_id = match (&task, &call) {
        (Some(task), Some(call)) => Some(format!("{task}/{call}")),
        _ => None,
    };
    for (field, on_line) in [
        ("request_id", request_id),
        ("tool", text(line, "tool")),
        ("task", task),
        ("args_digest", text(line, "args_digest")),
    ] {
        if text(record, field) != on_line {
            return Some(format!(
                "the signed approval's `{field}` is {:?}, the call's is {on_line:?}: it approves \
                 another call",
                text(record, field).unwrap_or_default()
            ));
        }
    }
    if allowed && text(record, "decision").as_deref() != Some("approved") {
        return Some(format!(
            "the line lets the call through, but the signed decision is `{}`",
            text(record, "decision").unwrap_or_default()
        ));
    }
    None
}
