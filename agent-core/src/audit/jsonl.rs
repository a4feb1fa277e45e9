//! The append-only JSON Lines sink, with group commit.
//!
//! Appending is two steps. **Write**: under a short lock, the event is sealed into the chain and
//! its line written to the file (to the OS page cache: microseconds). **Commit**, only for
//! [`Commit::Durable`] events: the caller waits until an `fdatasync` that started after its line
//! was written has finished. One caller at a time runs the `fdatasync`, for every line written so
//! far; the others wait for it and are covered by it. So 32 tasks that each wait for their
//! intent record share a handful of `fsync`s instead of paying for 32 (group commit).
//!
//! The sink fails closed: after any failed write or sync (a full disk, say) the end of the file
//! is uncertain, so it refuses every later event rather than extend a chain it cannot vouch for.
//!
//! Every log begins with a header line (stage `log`, verdict `opened`) naming its format and its
//! id. A sink opened with [`Checkpoints`] also signs the head after the header, then whenever the
//! policy says (a thread of its own waits for the moment, so no caller pays for a signature), and
//! seals the log at [`JsonlSink::close`]. Each checkpoint line is made durable before its head
//! goes to the anchors, so a witness is never ahead of the log it witnesses. A signature or a
//! required anchor that fails poisons the sink like a failed write: the log could no longer be
//! vouched for, so nothing more is recorded and no more tools run.

use super::chain::{Chain, hash_of_value};
use super::checkpoint::{Checkpoints, LOG_FORMAT, SignedHead, TreeHead, read_header};
use super::{AuditError, AuditEvent, AuditSink, Commit, SealedEvent, Stage, Verdict, now_rfc3339};
use crate::ids::{AgentId, TaskId};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::sync::Notify;

/// The agent named on the lines the log writes about itself (its header and checkpoints).
pub const LOG_AGENT: &str = "audit";
/// The task named on the lines the log writes about itself.
pub const LOG_TASK: &str = "log";

/// When the sink calls `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Before a [`Commit::Durable`] append returns, shared between concurrent callers (group
    /// commit). The default.
    #[default]
    OnCommit,
    /// Never: events reach the OS page cache only. For benchmarks and throwaway runs; a power
    /// loss can take the last events with it.
    Never,
}

/// An append-only JSON Lines audit log, one sealed event per line.
pub struct JsonlSink {
    path: PathBuf,
    shared: Arc<Shared>,
    signer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The header of a new log, until the mirrors have had it.
    unmirrored: Mutex<Option<SealedEvent>>,
    header_mirrored: std::sync::atomic::AtomicBool,
}

/// What the appenders, the syncing caller and the signing thread share.
struct Shared {
    path: String,
    file: File,
    fsync: Fsync,
    log_id: String,
    checkpoints: Option<Checkpoints>,
    writes: Mutex<Writes>,
    /// Wakes the signing thread when enough events wait unsigned, or the sink stops.
    wake: Condvar,
    /// Held for a whole checkpoint, so heads reach the anchors in the order they were signed; it
    /// guards the lines the sink wrote itself that the anchors have not been given yet.
    signing: Mutex<Vec<SealedEvent>>,
    syncs: Mutex<Syncs>,
    synced: Notify,
}

struct Writes {
    chain: Chain,
    failure: Option<String>,
    closed: bool,
    /// The sink was dropped: the signing thread ends (without sealing: that is for `close`).
    stopping: bool,
    /// Events written since the last checkpoint.
    unsigned: u64,
    /// When the oldest of them was written.
    unsigned_since: Option<Instant>,
}

struct Syncs {
    /// How many events are known to be on stable storage.
    durable: u64,
    /// Whether an `fdatasync` is running.
    in_progress: bool,
    /// How many `fdatasync`s have run.
    count: u64,
}

impl JsonlSink {
    /// Opens (or creates) the log at `path` and continues its chain, without signing: the log
    /// verifies as intact at best, never as sealed. Production runtimes use
    /// [`open_signed`](Self::open_signed).
    ///
    /// Refuses a log whose last line is cut off or unreadable, a log in an older format, and a
    /// log another process has open: each would make the chain ambiguous.
    pub fn open(path: impl AsRef<Path>, fsync: Fsync) -> Result<Self, AuditError> {
        Self::open_with(path, fsync, None)
    }

    /// Opens (or creates) the log at `path`, signing checkpoints as `checkpoints` says. A new
    /// log's header is signed at once, so its witness exists from the first line.
    pub fn open_signed(
        path: impl AsRef<Path>,
        fsync: Fsync,
        checkpoints: Checkpoints,
    ) -> Result<Self, AuditError> {
        Self::open_with(path, fsync, Some(checkpoints))
    }

    fn open_with(
        path: impl AsRef<Path>,
        fsync: Fsync,
        checkpoints: Option<Checkpoints>,
    ) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let io_error = |error: std::io::Error| AuditError::Io {
            path: shown.clone(),
            message: error.to_string(),
        };
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(AuditError::Locked(shown)),
            Err(std::fs::TryLockError::Error(error)) => return Err(io_error(error)),
        }
        let existing = existing_log(&mut file, &shown)?;
        let fresh = existing.is_none();
        let (chain, log_id, unsigned) = match existing {
            Some(existing) => existing,
            None => (Chain::default(), format!("log-{}", crate::ids::unique_suffix()), 0),
        };
        let durable = chain.next_seq();
        let shared = Arc::new(Shared {
            path: shown,
            file,
            fsync,
            log_id,
            checkpoints,
            writes: Mutex::new(Writes {
                chain,
                failure: None,
                closed: false,
                stopping: false,
                unsigned,
                unsigned_since: (unsigned > 0).then(Instant::now),
            }),
            wake: Condvar::new(),
            signing: Mutex::new(Vec::new()),
            syncs: Mutex::new(Syncs { durable, in_progress: false, count: 0 }),
            synced: Notify::new(),
        });
        // A device (a pipe to a collector, `/dev/full` in tests) has no past to continue and is
        // never verified as a file: it gets no header.
        let header = if fresh && is_regular_file(&shared.file) {
            Some(shared.write_header()?)
        } else {
            None
        };
        // A new log's witness exists from its first line; a reopened log's witness moves past
        // any seal at once (a seal is only ever the last line).
        if shared.checkpoints.is_some() {
            shared.checkpoint(false)?;
        }
        let signer = match &shared.checkpoints {
            None => None,
            Some(_) => {
                let signing = Arc::clone(&shared);
                let thread = std::thread::Builder::new()
                    .name("audit-checkpoints".to_owned())
                    .spawn(move || signing.sign_when_due())
                    .map_err(|error| AuditError::Io {
                        path: shared.path.clone(),
                        message: format!("cannot start the checkpoint thread: {error}"),
                    })?;
                Some(thread)
            }
        };
        Ok(Self {
            path,
            shared,
            signer: Mutex::new(signer),
            header_mirrored: std::sync::atomic::AtomicBool::new(header.is_none()),
            unmirrored: Mutex::new(header),
        })
    }

    /// The log's id, as its header names it.
    pub fn log_id(&self) -> &str {
        &self.shared.log_id
    }

    /// Signs the head now (if the sink signs and anything is unsigned), as the policy would at
    /// its next moment. Returns the signed head, or `None` when there was nothing to sign.
    pub fn checkpoint_now(&self) -> Result<Option<SignedHead>, AuditError> {
        if self.shared.checkpoints.is_none() || self.shared.writes().unsigned == 0 {
            return Ok(None);
        }
        self.shared.checkpoint(false).map(Some)
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of events written and the hash of the last: an anchor to keep elsewhere, so a
    /// log cut short at the end can be told from a complete one.
    pub fn head(&self) -> (u64, String) {
        let writes = self.shared.writes();
        (writes.chain.next_seq(), writes.chain.last_hash().to_owned())
    }

    /// How many `fdatasync`s the sink has run: with group commit, fewer than durable appends.
    pub fn fsync_count(&self) -> u64 {
        self.shared.syncs().count
    }

    /// Closes the log: a signing sink writes its seal (the signed final head, durable and
    /// anchored) and stops signing. Nothing is accepted after. Closing twice is harmless.
    pub fn close(&self) -> Result<Option<SignedHead>, AuditError> {
        let sealed = if self.shared.checkpoints.is_some() && !self.shared.writes().closed {
            Some(self.shared.checkpoint(true)?)
        } else {
            self.shared.writes().closed = true;
            None
        };
        self.stop_signing();
        Ok(sealed)
    }

    fn stop_signing(&self) {
        self.shared.writes().stopping = true;
        self.shared.wake.notify_all();
        let thread = self.signer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for JsonlSink {
    /// Dropped without [`close`](Self::close), the log stays unsealed, as after a crash.
    fn drop(&mut self) {
        self.stop_signing();
    }
}

#[async_trait]
impl AuditSink for JsonlSink {
    async fn append(&self, event: AuditEvent, commit: Commit) -> Result<SealedEvent, AuditError> {
        let sealed = self.shared.write(event)?;
        if commit == Commit::Durable && self.shared.fsync == Fsync::OnCommit {
            Arc::clone(&self.shared).make_durable(sealed.seq + 1).await?;
        }
        Ok(sealed)
    }

    fn close(&self) -> Result<Option<SignedHead>, AuditError> {
        JsonlSink::close(self)
    }

    fn take_unmirrored(&self) -> Vec<SealedEvent> {
        use std::sync::atomic::Ordering;
        if self.header_mirrored.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.header_mirrored.store(true, Ordering::Release);
        self.unmirrored.lock().unwrap_or_else(PoisonError::into_inner).take().into_iter().collect()
    }
}

fn is_regular_file(file: &File) -> bool {
    file.metadata().is_ok_and(|metadata| metadata.is_file())
}

impl Shared {
    fn writes(&self) -> MutexGuard<'_, Writes> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn syncs(&self) -> MutexGuard<'_, Syncs> {
        self.syncs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn poisoned(&self, cause: &str) -> AuditError {
        AuditError::Poisoned { path: self.path.clone(), cause: cause.to_owned() }
    }

    /// Seals an event of the run and writes its line, in chain order.
    fn write(&self, event: AuditEvent) -> Result<SealedEvent, AuditError> {
        let mut writes = self.writes();
        let sealed = self.write_locked(&mut writes, event)?;
        writes.unsigned += 1;
        writes.unsigned_since.get_or_insert_with(Instant::now);
        if let Some(checkpoints) = &self.checkpoints
            && writes.unsigned >= checkpoints.policy.every_events
        {
            self.wake.notify_one();
        }
        Ok(sealed)
    }

    /// The first line of a new log: its format, its id, and how it is signed.
    fn write_header(&self) -> Result<SealedEvent, AuditError> {
        let mut header = AuditEvent::for_task(
            &AgentId::new(LOG_AGENT),
            &[],
            &TaskId::new(LOG_TASK),
            Stage::Log,
            Verdict::Opened,
        );
        header.detail = json!({
            "format": LOG_FORMAT,
            "log_id": self.log_id,
            "canonical_json": "RFC 8785",
            "signed": self.checkpoints.is_some(),
            "checkpoint_every_events": self.checkpoints.as_ref().map(|c| c.policy.every_events),
            "checkpoint_every_ms": self.checkpoints.as_ref()
                .map(|c| u64::try_from(c.policy.every.as_millis()).unwrap_or(u64::MAX)),
            "anchors": self.checkpoints.as_ref()
                .map(|c| c.anchors.iter().map(|anchor| anchor.describe()).collect::<Vec<_>>()),
            "witness": self.checkpoints.as_ref()
                .and_then(|c| c.anchors.iter().find_map(|anchor| anchor.location())),
        });
        let mut writes = self.writes();
        let line = self.write_locked(&mut writes, header)?;
        drop(writes);
        if self.checkpoints.is_some() {
            self.signing.lock().unwrap_or_else(PoisonError::into_inner).push(line.clone());
        }
        self.sync_now()?;
        Ok(line)
    }

    /// Signs the head, writes the checkpoint line, makes it durable, then hands the signed head
    /// to every anchor. `sealed` closes the log.
    fn checkpoint(&self, sealed: bool) -> Result<SignedHead, AuditError> {
        let Some(checkpoints) = &self.checkpoints else {
            return Err(AuditError::Checkpoint {
                path: self.path.clone(),
                message: "this log is not signed".to_owned(),
            });
        };
        let mut own_lines = self.signing.lock().unwrap_or_else(PoisonError::into_inner);
        let (line, signed) = {
            let mut writes = self.writes();
            if let Some(cause) = &writes.failure {
                return Err(self.poisoned(cause));
            }
            if writes.closed {
                return Err(AuditError::Closed);
            }
            let head = TreeHead {
                log_id: self.log_id.clone(),
                size: writes.chain.next_seq(),
                head_hash: writes.chain.last_hash().to_owned(),
                time: now_rfc3339(),
                sealed,
            };
            let signature = catch_unwind(AssertUnwindSafe(|| checkpoints.signer.sign(&head)))
                .unwrap_or_else(|_| Err("the signer panicked".to_owned()));
            let signature = match signature {
                Ok(signature) => signature,
                Err(message) => return Err(self.fail_checkpoint(&mut writes, message)),
            };
            let signed = SignedHead { head, key_id: signature.key_id, signature: signature.value };
            let verdict = if sealed { Verdict::Sealed } else { Verdict::Signed };
            let mut event = AuditEvent::for_task(
                &AgentId::new(LOG_AGENT),
                &[],
                &TaskId::new(LOG_TASK),
                Stage::Checkpoint,
                verdict,
            );
            // INVARIANT: a signed head is strings, numbers and a JSON value: it serializes.
            event.detail = serde_json::to_value(&signed).unwrap_or(Value::Null);
            let line = self.write_locked(&mut writes, event)?;
            writes.unsigned = 0;
            writes.unsigned_since = None;
            writes.closed = sealed;
            (line, signed)
        };
        // Durable before it is anchored: a witness must never be ahead of its log.
        self.sync_now()?;
        own_lines.push(line);
        for anchor in &checkpoints.anchors {
            if let Err(message) = anchor.anchor(&signed, &own_lines) {
                if anchor.is_required() {
                    return Err(self.fail_checkpoint(&mut self.writes(), message));
                }
                tracing::warn!(target: "audit", anchor = anchor.describe(), %message,
                    "audit anchor failed");
            }
        }
        own_lines.clear();
        Ok(signed)
    }

    fn fail_checkpoint(&self, writes: &mut Writes, message: String) -> AuditError {
        tracing::error!(target: "audit", path = %self.path, %message,
            "audit checkpoint failed: the log refuses every event from here");
        writes.failure = Some(format!("checkpoint failed: {message}"));
        AuditError::Checkpoint { path: self.path.clone(), message }
    }

    /// The signing thread: waits until the policy says a checkpoint is due, signs, repeats;
    /// ends when the sink stops, closes or fails.
    fn sign_when_due(&self) {
        let Some(policy) = self.checkpoints.as_ref().map(|c| c.policy) else { return };
        loop {
            let mut writes = self.writes();
            loop {
                if writes.stopping || writes.closed || writes.failure.is_some() {
                    return;
                }
                let due = writes.unsigned_since.map(|since| since + policy.every);
                let now = Instant::now();
                if writes.unsigned >= policy.every_events || due.is_some_and(|due| now >= due) {
                    break;
                }
                let wait = due.map_or(policy.every, |due| due.saturating_duration_since(now));
                writes =
                    self.wake.wait_timeout(writes, wait).unwrap_or_else(PoisonError::into_inner).0;
            }
            drop(writes);
            // A failure is recorded in the sink (which then refuses events) and ends the loop.
            let _ = self.checkpoint(false);
        }
    }

    /// `fdatasync`s everything written so far, outside the group commit (for the header and the
    /// checkpoints, which are written from outside any caller's append).
    fn sync_now(&self) -> Result<(), AuditError> {
        if self.fsync == Fsync::Never {
            return Ok(());
        }
        let target = self.writes().chain.next_seq();
        if let Err(error) = self.file.sync_data() {
            let cause = format!("fdatasync failed: {error}");
            self.writes().failure = Some(cause.clone());
            return Err(self.poisoned(&cause));
        }
        {
            let mut syncs = self.syncs();
            syncs.count += 1;
            syncs.durable = syncs.durable.max(target);
        }
        self.synced.notify_waiters();
        Ok(())
    }

    /// Seals `event` into the chain and writes its line; the caller holds the write lock.
    fn write_locked(
        &self,
        writes: &mut Writes,
        event: AuditEvent,
    ) -> Result<SealedEvent, AuditError> {
        if let Some(cause) = &writes.failure {
            return Err(self.poisoned(cause));
        }
        if writes.closed {
            return Err(AuditError::Closed);
        }
        let sealed = writes.chain.seal(event);
        let mut line = serde_json::to_vec(&sealed).map_err(|error| AuditError::Io {
            path: self.path.clone(),
            message: error.to_string(),
        })?;
        line.push(b'\n');
        // One `write` per line, through an append-mode descriptor, under the lock: lines are never
        // interleaved and always in chain order.
        if let Err(error) = (&self.file).write_all(&line) {
            writes.failure = Some(error.to_string());
            return Err(AuditError::Io { path: self.path.clone(), message: error.to_string() });
        }
        Ok(sealed)
    }

    /// Waits until the first `upto` events are on stable storage, running the `fdatasync` if
    /// nobody else is.
    async fn make_durable(self: Arc<Self>, upto: u64) -> Result<(), AuditError> {
        loop {
            let notified = self.synced.notified();
            tokio::pin!(notified);
            // Register for the wake-up before looking, so a sync that ends in between is not missed.
            notified.as_mut().enable();
            if let Some(cause) = &self.writes().failure {
                return Err(self.poisoned(cause));
            }
            let lead = {
                let mut syncs = self.syncs();
                if syncs.durable >= upto {
                    return Ok(());
                }
                !std::mem::replace(&mut syncs.in_progress, true)
            };
            if lead {
                // Everything written before this point is covered by the sync below.
                let target = self.writes().chain.next_seq();
                let shared = Arc::clone(&self);
                // The sync runs to the end on a blocking thread even if this caller is cancelled,
                // so `in_progress` is always cleared and the waiters always woken.
                let _ = tokio::task::spawn_blocking(move || shared.sync(target)).await;
            }
            notified.await;
        }
    }

    fn sync(&self, target: u64) {
        let result = self.file.sync_data();
        if let Err(error) = &result {
            self.writes().failure = Some(format!("fdatasync failed: {error}"));
        }
        {
            let mut syncs = self.syncs();
            syncs.in_progress = false;
            syncs.count += 1;
            if result.is_ok() {
                syncs.durable = syncs.durable.max(target);
            }
        }
        self.synced.notify_waiters();
    }
}

/// What continuing an existing log needs: its chain, its id, and how many events wait unsigned.
type Existing = (Chain, String, u64);

/// Reads an existing log's header and last line to continue its chain; `None` for a new log.
///
/// Only regular files are read: a device such as `/dev/full` is written to but has no past.
fn existing_log(file: &mut File, path: &str) -> Result<Option<Existing>, AuditError> {
    let io_error = |error: std::io::Error| AuditError::Io {
        path: path.to_owned(),
        message: error.to_string(),
    };
    let metadata = file.metadata().map_err(io_error)?;
    if !metadata.is_file() || metadata.len() == 0 {
        return Ok(None);
    }
    let corrupt =
        |line: u64, message: String| AuditError::Corrupt { path: path.to_owned(), line, message };
    let log_id =
        log_id_of_header(file).map_err(io_error)?.map_err(|message| corrupt(1, message))?;
    let text = last_line(file, metadata.len()).map_err(io_error)?;
    let last = text
        .ok_or_else(|| "the last line is cut off (no final newline)".to_owned())
        .and_then(|text| {
            serde_json::from_str::<Value>(&text).map_err(|error| format!("not JSON: {error}"))
        })
        .and_then(|value| {
            let event = serde_json::from_value::<SealedEvent>(value.clone())
                .map_err(|error| format!("not an audit event: {error}"))?;
            if hash_of_value(value) == event.hash {
                Ok(event)
            } else {
                Err("the last event's hash does not match its contents".to_owned())
            }
        });
    match last {
        Ok(event) => {
            let unsigned = u64::from(event.event.stage != Stage::Checkpoint);
            Ok(Some((Chain::after(&event), log_id, unsigned)))
        }
        // Counting lines reads the whole file: done only to name the bad line in the error.
        Err(message) => Err(corrupt(count_lines(file).unwrap_or(0), message)),
    }
}

/// The log id in the header (the first line), or why the log cannot be continued.
fn log_id_of_header(file: &mut File) -> std::io::Result<Result<String, String>> {
    file.seek(SeekFrom::Start(0))?;
    let header = read_header(&mut *file)?;
    let is_header = header.is_some();
    let format = header.as_ref().and_then(|h| h.pointer("/detail/format")).and_then(Value::as_u64);
    let log_id = header.as_ref().and_then(|h| h.pointer("/detail/log_id")).and_then(Value::as_str);
    Ok(match (is_header, format, log_id) {
        (true, Some(LOG_FORMAT), Some(id)) => Ok(id.to_owned()),
        (true, Some(other), _) => Err(format!(
            "the log is in format {other}; this runtime writes format {LOG_FORMAT}: start a new log"
        )),
        _ => Err(format!(
            "the log has no header, so it is in format 1 (before signed checkpoints); it can \
             still be verified but not continued: start a new log (format {LOG_FORMAT})"
        )),
    })
}

/// The text of the last line, or `None` if the file does not end in a newline. Reads backwards in
/// blocks, so reopening a large log is cheap.
fn last_line(file: &mut File, len: u64) -> std::io::Result<Option<String>> {
    const BLOCK: u64 = 64 * 1024;
    let mut tail: Vec<u8> = Vec::new();
    let mut start = len;
    // Find the newline before the last line (skipping the file's final newline).
    loop {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0; usize::try_from(start - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
        start = from;
        let search_end = tail.len().saturating_sub(1);
        if tail[..search_end].contains(&b'\n') || start == 0 {
            break;
        }
    }
    let complete = tail.last() == Some(&b'\n');
    let body = if complete { &tail[..tail.len() - 1] } else { &tail[..] };
    let line_start = body.iter().rposition(|&byte| byte == b'\n').map_or(0, |at| at + 1);
    let line_text = String::from_utf8_lossy(&body[line_start..]).into_owned();
    Ok(complete.then_some(line_text))
}

/// The number of the last line (a final line without newline counts).
fn count_lines(file: &mut File) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = std::io::BufReader::new(&mut *file);
    let mut count = 0u64;
    let mut buffer = [0u8; 64 * 1024];
    let mut last = b'\n';
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        count += buffer[..read].iter().filter(|&&byte| byte == b'\n').count() as u64;
        last = buffer[read - 1];
    }
    Ok(if last == b'\n' { count } else { count + 1 })
}
