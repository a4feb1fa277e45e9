//! The append-only JSON Lines sink, with group commit.
//!
//! One writer thread owns the file. Appends queue up on a channel; the writer takes everything
//! queued, seals it into the chain in arrival order, writes it with one `write`, and if any event
//! in the batch asked for [`Commit::Durable`], makes the file durable with one `fdatasync` before
//! answering anyone in the batch. Under load, 32 tasks that each wait for their intent record
//! share a handful of `fsync`s instead of paying for 32.
//!
//! The writer fails closed: after any failed write (a full disk, say) the end of the file is
//! uncertain, so it refuses every later event rather than extend a chain it cannot vouch for.

use super::chain::{Chain, hash_of_value};
use super::{AuditError, AuditEvent, AuditSink, Commit, SealedEvent};
use async_trait::async_trait;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// When the sink calls `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Once per batch that holds a [`Commit::Durable`] event (group commit). The default.
    #[default]
    OnCommit,
    /// Never: events reach the OS page cache only. For benchmarks and throwaway runs; a power
    /// loss can take the last events with it.
    Never,
}

/// An append-only JSON Lines audit log, one sealed event per line.
pub struct JsonlSink {
    path: PathBuf,
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    head: Arc<Mutex<Chain>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Job {
    event: AuditEvent,
    commit: Commit,
    reply: oneshot::Sender<Result<SealedEvent, AuditError>>,
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
        let head = Arc::new(Mutex::new(chain.clone()));
        let (sender, receiver) = mpsc::channel();
        let writer = Writer { file, path: shown.clone(), chain, fsync, head: Arc::clone(&head) };
        let writer = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(io_error)?;
        Ok(Self { path, queue: Mutex::new(Some(sender)), head, writer: Mutex::new(Some(writer)) })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of events written and the hash of the last: an anchor to keep elsewhere, so a
    /// log cut short at the end can be told from a complete one.
    pub fn head(&self) -> (u64, String) {
        let head = self.head.lock().unwrap_or_else(PoisonError::into_inner);
        (head.next_seq(), head.last_hash().to_owned())
    }

    /// Stops accepting events, waits until those already queued are written, and closes the
    /// file (releasing its lock).
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).take();
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(writer) = writer {
            // The writer only panics on a bug; there is nothing more to do with one here.
            let _ = writer.join();
        }
    }
}

#[async_trait]
impl AuditSink for JsonlSink {
    async fn append(&self, event: AuditEvent, commit: Commit) -> Result<SealedEvent, AuditError> {
        let (reply, answer) = oneshot::channel();
        {
            let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let sender = queue.as_ref().ok_or(AuditError::Closed)?;
            sender.send(Job { event, commit, reply }).map_err(|_| AuditError::Closed)?;
        }
        answer.await.map_err(|_| AuditError::Closed)?
    }
}

impl Drop for JsonlSink {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread's state.
struct Writer {
    file: File,
    path: String,
    chain: Chain,
    fsync: Fsync,
    head: Arc<Mutex<Chain>>,
}

/// The most events written in one batch, so one slow batch cannot grow without bound.
const MAX_BATCH: usize = 1024;

impl Writer {
    fn run(mut self, receiver: mpsc::Receiver<Job>) {
        let mut failure: Option<String> = None;
        while let Ok(first) = receiver.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if let Some(cause) = &failure {
                let error = AuditError::Poisoned { path: self.path.clone(), cause: cause.clone() };
                for job in batch {
                    let _ = job.reply.send(Err(error.clone()));
                }
                continue;
            }
            match self.write_batch(&batch) {
                Ok(sealed) => {
                    *self.head.lock().unwrap_or_else(PoisonError::into_inner) = self.chain.clone();
                    for (job, event) in batch.into_iter().zip(sealed) {
                        let _ = job.reply.send(Ok(event));
                    }
                }
                Err(message) => {
                    let error =
                        AuditError::Io { path: self.path.clone(), message: message.clone() };
                    for job in batch {
                        let _ = job.reply.send(Err(error.clone()));
                    }
                    failure = Some(message);
                }
            }
        }
    }

    /// Seals and writes a batch; the chain head moves only if the whole batch was written.
    fn write_batch(&mut self, batch: &[Job]) -> Result<Vec<SealedEvent>, String> {
        let mut chain = self.chain.clone();
        let mut bytes = Vec::with_capacity(batch.len() * 512);
        let mut sealed = Vec::with_capacity(batch.len());
        for job in batch {
            let event = chain.seal(job.event.clone());
            serde_json::to_writer(&mut bytes, &event).map_err(|error| error.to_string())?;
            bytes.push(b'\n');
            sealed.push(event);
        }
        self.file.write_all(&bytes).map_err(|error| error.to_string())?;
        let durable = batch.iter().any(|job| job.commit == Commit::Durable);
        if durable && self.fsync == Fsync::OnCommit {
            self.file.sync_data().map_err(|error| error.to_string())?;
        }
        self.chain = chain;
        Ok(sealed)
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
