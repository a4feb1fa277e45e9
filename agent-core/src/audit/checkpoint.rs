//! Signed checkpoints: the runtime's signature over the head of its log, and the anchors that keep
//! the latest one outside the log.
//!
//! The hash chain alone detects accidents: anyone who can write the file can recompute it. So the
//! sink signs the chain's head ([`TreeHead`]: which log, how many events, the last hash, when)
//! with the runtime's Ed25519 key, the key of the JWK set it publishes, and writes the signature
//! into the log as a `checkpoint` line. It does so after the header, every
//! [`CheckpointPolicy::every_events`] events, every [`CheckpointPolicy::every`] while events wait
//! unsigned, and once more, `sealed`, when the log is closed cleanly.
//!
//! An edit, a re-chained range or a cut inside the signed part no longer matches a signature the
//! editor cannot make. A cut at the end is caught by an [`Anchor`]: each signed head is also
//! handed to places that rewriting the log does not rewrite, such as a [`WitnessFile`] in another
//! directory and the query store. The scheme follows RFC 6962's signed tree heads (a signature
//! over size, root and time, kept by others) and AWS CloudTrail's digest files (signed heads
//! delivered apart from the logs); see docs/threat-model.md for what it does not stop.

use super::SealedEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The version of the log format the sink writes: a header line first, RFC 8785 canonical JSON
/// for every hash, signed checkpoints. Format 1 (no header, `serde_json`'s number spelling) is
/// still verified, never continued.
pub const LOG_FORMAT: u64 = 2;

/// Whether a parsed line is a log's header (stage `log`): a log whose first line is not one is
/// format 1.
pub(super) fn is_header(line: &Value) -> bool {
    line.get("stage").and_then(Value::as_str) == Some("log")
}

/// The header of the log read from `reader` (its first line, parsed), if it has one.
pub(super) fn read_header(reader: impl std::io::Read) -> std::io::Result<Option<Value>> {
    use std::io::{BufRead, Read};
    let mut first = Vec::new();
    std::io::BufReader::new(reader).take(1 << 20).read_until(b'\n', &mut first)?;
    Ok(serde_json::from_slice(&first).ok().filter(is_header))
}

/// What a checkpoint signs: the head of one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    /// The log, as named in its header: each log gets its own id, so one run's log cannot stand
    /// in for another's.
    pub log_id: String,
    /// How many events the head covers: those numbered `0..size`.
    pub size: u64,
    /// The hash of event `size - 1`.
    pub head_hash: String,
    /// When it was signed, as RFC 3339 UTC.
    pub time: String,
    /// Whether this is the seal of a clean close: nothing more was to be written.
    pub sealed: bool,
}

/// A signature over a [`TreeHead`], as the log and the anchors keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedHead {
    /// The head.
    pub head: TreeHead,
    /// The id of the key that signed (the `kid` of the JWK set).
    pub key_id: String,
    /// The signature, as the signer writes it (a JWS in its flattened JSON form).
    pub signature: Value,
}

/// A signature made by a [`HeadSigner`].
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// The id of the key that signed.
    pub key_id: String,
    /// The signature itself.
    pub value: Value,
}

/// Signs checkpoints (the `guards` crate signs with the runtime's Ed25519 key).
pub trait HeadSigner: Send + Sync {
    /// A signature over `head`, or why it could not be made.
    fn sign(&self, head: &TreeHead) -> Result<Signature, String>;
}

/// Checks the signatures a log carries, against keys the verifier trusts (the `guards` crate
/// checks them against a JWK set).
pub trait SignatureCheck {
    /// The head a checkpoint signature vouches for, and the id of the key that made it.
    fn checkpoint(&self, signature: &Value) -> Result<(TreeHead, String), String>;
    /// The approval record an approval signature vouches for, as JSON.
    fn approval(&self, signature: &Value) -> Result<Value, String>;
}

/// A place outside the log that keeps the latest signed head.
pub trait Anchor: Send + Sync {
    /// What it is, for messages (`witness /var/warden/witness/run.jsonl.witness.json`).
    fn describe(&self) -> String;
    /// Keeps `head`. `own_lines` are the lines the sink wrote itself since the last anchoring
    /// (the header of a new log, then the `checkpoint` line that signs `head`, last), which no
    /// [`AuditMirror`](super::AuditMirror) sees: a query store adds them to its rows.
    fn anchor(&self, head: &SignedHead, own_lines: &[SealedEvent]) -> Result<(), String>;
    /// Where a verifier finds this anchor's copy of the head, if it is a file: the log's header
    /// names the first such place, so that `check_log` can find the witness of any log.
    fn location(&self) -> Option<PathBuf> {
        None
    }

    /// Whether the log must stop when this anchor fails. A witness must hold every head, or a
    /// cut could go unseen; a query store is rebuilt from the log anyway.
    fn is_required(&self) -> bool {
        true
    }
}

/// When the sink signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// A checkpoint once this many events wait unsigned.
    pub every_events: u64,
    /// A checkpoint once the oldest unsigned event has waited this long.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    /// 1,000 events or one second, whichever comes first: at most about a second of events, or
    /// fewer than 1,000, can be unsigned when the process dies.
    fn default() -> Self {
        Self { every_events: 1000, every: Duration::from_secs(1) }
    }
}

/// Signing for a sink: who signs, when, and where the signed heads also go.
#[derive(Clone)]
pub struct Checkpoints {
    /// The signer.
    pub signer: std::sync::Arc<dyn HeadSigner>,
    /// When to sign.
    pub policy: CheckpointPolicy,
    /// Where each signed head is also kept.
    pub anchors: Vec<std::sync::Arc<dyn Anchor>>,
}

impl Checkpoints {
    /// Signing with `signer` on the default policy, with no anchor yet.
    pub fn new(signer: std::sync::Arc<dyn HeadSigner>) -> Self {
        Self { signer, policy: CheckpointPolicy::default(), anchors: Vec::new() }
    }

    /// Signs on `policy`.
    #[must_use]
    pub fn with_policy(mut self, policy: CheckpointPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Also keeps every signed head in `anchor`.
    #[must_use]
    pub fn with_anchor(mut self, anchor: std::sync::Arc<dyn Anchor>) -> Self {
        self.anchors.push(anchor);
        self
    }
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("policy", &self.policy)
            .field("anchors", &self.anchors.iter().map(|a| a.describe()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The witness of one log: a small file, in a directory of its own, holding the latest signed
/// head. It is replaced atomically (a temporary file, `fsync`, rename) after the checkpoint line
/// is durable in the log, so after a crash the log always reaches its witness.
#[derive(Debug, Clone)]
pub struct WitnessFile {
    path: PathBuf,
}

impl WitnessFile {
    /// The witness of the log at `log`, kept in `dir`:
    /// `<dir>/<log file name>.<12 hex digits>.witness.json`, the digits naming the log's directory
    /// (a digest of its resolved path), so that logs of one name in different directories keep
    /// apart. It is named after where the log is, never after what it holds, so a log replaced by
    /// another run's meets the witness of the log it replaced.
    pub fn for_log(dir: impl AsRef<Path>, log: impl AsRef<Path>) -> Self {
        let log = log.as_ref();
        let name = log
            .file_name()
            .map_or_else(|| "audit.jsonl".to_owned(), |name| name.to_string_lossy().into_owned());
        let parent = log.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let place = std::fs::canonicalize(parent)
            .or_else(|_| std::path::absolute(parent))
            .unwrap_or_else(|_| parent.to_path_buf());
        let digest = crate::canonical::sha256_hex(place.to_string_lossy().as_bytes());
        Self { path: dir.as_ref().join(format!("{name}.{}.witness.json", &digest[..12])) }
    }

    /// A witness at exactly `path` (an auditor's copy, say).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The witness file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The signed head the witness holds: `Ok(None)` when there is no witness file.
    pub fn read(&self) -> Result<Option<SignedHead>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(format!("cannot read `{}`: {error}", self.path.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| format!("`{}` is not a witness: {error}", self.path.display()))
    }
}

impl Anchor for WitnessFile {
    fn describe(&self) -> String {
        format!("witness `{}`", self.path.display())
    }

    fn location(&self) -> Option<PathBuf> {
        Some(std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone()))
    }

    fn anchor(&self, head: &SignedHead, _own_lines: &[SealedEvent]) -> Result<(), String> {
        use std::io::Write;
        let shown = self.path.display();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        let text = serde_json::to_vec_pretty(head).map_err(|e| e.to_string())?;
        let temporary = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&text)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)?;
            // The rename is durable only once the directory is.
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|error| format!("cannot write the witness `{shown}`: {error}"))
    }
}
