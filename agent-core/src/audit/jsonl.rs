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

use super::chain::{Chain, hash_of_value};
use super::{AuditError, AuditEvent, AuditSink, Commit, SealedEvent};
use async_trait::async_trait;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

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
}

/// What the appenders and the syncing caller share.
struct Shared {
    path: String,
    file: File,
    fsync: Fsync,
    writes: Mutex<Writes>,
    syncs: Mutex<Syncs>,
    synced: Notify,
}

struct Writes {
    chain: Chain,
    failure: Option<String>,
    closed: bool,
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
    /// Opens (or creates) the log at `path` and continues its chain.
    ///
    /// Refuses a log whose last line is cut off or unreadable, and a log another process has
    /// open: either would make the chain ambiguous.
    pub fn open(path: impl AsRef<Path>, fsync: Fsync) -> Result<Self, AuditError> {
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
        let chain = chain_of_existing(&mut file, &shown)?;
        let durable = chain.next_seq();
        let shared = Shared {
            path: shown,
            file,
            fsync,
            writes: Mutex::new(Writes { chain, failure: None, closed: false }),
            syncs: Mutex::new(Syncs { durable, in_progress: false, count: 0 }),
            synced: Notify::new(),
        };
        Ok(Self { path, shared: Arc::new(shared) })
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

    /// Stops accepting events.
    pub fn close(&self) {
        self.shared.writes().closed = true;
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

    /// Seals the event and writes its line, in chain order.
    fn write(&self, event: AuditEvent) -> Result<SealedEvent, AuditError> {
        let mut writes = self.writes();
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

/// Reads the last line of an existing log to continue its chain.
///
/// Only regular files are read: a device such as `/dev/full` is written to but has no past.
fn chain_of_existing(file: &mut File, path: &str) -> Result<Chain, AuditError> {
    let io_error = |error: std::io::Error| AuditError::Io {
        path: path.to_owned(),
        message: error.to_string(),
    };
    let metadata = file.metadata().map_err(io_error)?;
    if !metadata.is_file() || metadata.len() == 0 {
        return Ok(Chain::default());
    }
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
        Ok(event) => Ok(Chain::after(&event)),
        // Counting lines reads the whole file: done only to name the bad line in the error.
        Err(message) => Err(AuditError::Corrupt {
            path: path.to_owned(),
            line: count_lines(file).unwrap_or(0),
            message,
        }),
    }
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
