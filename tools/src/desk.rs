//! The desk: one database shared by every tool and by the policy, loaded from and saved to a file.
//!
//! Every call takes the one lock, so each call sees and leaves a consistent database. Writes are
//! also **idempotent per call**: the first successful result of each (task, call id) is kept, and
//! a retry of the same call returns it without applying the change again, so a retried refund
//! never refunds twice. A retry that reuses a call id with different arguments is refused.

use crate::records::{Database, Email, Order, ShapeError, Ticket, Transfer, User};
use agent_core::tool::{Invocation, ToolError, ToolOutput};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The demo database the generator makes from seed 7 (`tools/data/demo-db.json`).
const DEMO_DB: &str = include_str!("../data/demo-db.json");

/// The demo ticket queue from the same seed (`tools/data/demo-tickets.json`).
const DEMO_TICKETS: &str = include_str!("../data/demo-tickets.json");

/// The support desk's state, shared (cheap to clone) by its tools and its entity resolver.
#[derive(Clone, Default)]
pub struct Desk {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    db: Database,
    /// The first successful result of every write, by call.
    applied: HashMap<CallKey, Applied>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CallKey {
    task: String,
    call: String,
}

struct Applied {
    tool: String,
    args_digest: String,
    output: ToolOutput,
}

/// Why a desk file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("`{path}` is not valid JSON: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and why parsing stopped.
        source: serde_json::Error,
    },
    /// The file is JSON but not a desk database (or ticket queue).
    #[error("`{path}` is not a desk file: {source}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The record that is wrong and why.
        source: ShapeError,
    },
}

/// Why the desk could not be saved. The file at the destination is then unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// Writing the temporary file or renaming it over the destination failed.
    #[error("cannot save the desk to `{path}`: {source}")]
    Write {
        /// The destination.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The database could not be written as JSON.
    #[error("cannot write the desk as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Desk {
    /// A desk over `db`.
    pub fn new(db: Database) -> Self {
        Self { state: Arc::new(Mutex::new(State { db, applied: HashMap::new() })) }
    }

    /// Loads a desk database: tau2-bench's retail `db.json` unchanged, or a desk file that also
    /// holds `tickets`, `outbox` and `transfers`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let db = Database::from_value(read_json(path)?)
            .map_err(|source| LoadError::Shape { path: path.to_owned(), source })?;
        Ok(Self::new(db))
    }

    /// Loads a desk database and a ticket queue kept beside it (an object of tickets keyed by
    /// ticket id). Its tickets are added to those the database already holds.
    pub fn load_with_tickets(
        db_path: impl AsRef<Path>,
        tickets_path: impl AsRef<Path>,
    ) -> Result<Self, LoadError> {
        let desk = Self::load(db_path)?;
        let path = tickets_path.as_ref();
        let tickets = Database::tickets_from_value(read_json(path)?)
            .map_err(|source| LoadError::Shape { path: path.to_owned(), source })?;
        desk.lock().db.tickets.extend(tickets);
        Ok(desk)
    }

    /// The demo desk: the database and tickets committed in `tools/data/`, built into the binary.
    pub fn demo() -> Result<Self, LoadError> {
        let parse = |name: &str, text: &str| {
            serde_json::from_str(text)
                .map_err(|source| LoadError::Syntax { path: PathBuf::from(name), source })
        };
        let shape = |name: &str| {
            let path = PathBuf::from(name);
            move |source| LoadError::Shape { path, source }
        };
        let mut db =
            Database::from_value(parse("demo-db.json", DEMO_DB)?).map_err(shape("demo-db.json"))?;
        let tickets = Database::tickets_from_value(parse("demo-tickets.json", DEMO_TICKETS)?)
            .map_err(shape("demo-tickets.json"))?;
        db.tickets.extend(tickets);
        Ok(Self::new(db))
    }

    /// Saves the whole desk to `path` atomically: it is written to a temporary file in the same
    /// directory, flushed to disk, then renamed over `path`, so a reader (or a crash) sees the old
    /// file or the new one, never half of one.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SaveError> {
        let path = path.as_ref();
        let mut text = serde_json::to_string_pretty(&self.lock().db)?;
        text.push('\n');
        write_atomically(path, text.as_bytes())
            .map_err(|source| SaveError::Write { path: path.to_owned(), source })
    }

    /// Files a ticket in the queue (replacing one with the same id), so the desk's ticket tools
    /// can read and answer it.
    pub fn file_ticket(&self, ticket: Ticket) {
        self.lock().db.tickets.insert(ticket.ticket_id.clone(), ticket);
    }

    /// A copy of the whole database as it is now.
    pub fn snapshot(&self) -> Database {
        self.lock().db.clone()
    }

    /// A copy of the order `order_id`.
    pub fn order(&self, order_id: &str) -> Option<Order> {
        self.lock().db.orders.get(order_id).cloned()
    }

    /// A copy of the customer `user_id`.
    pub fn user(&self, user_id: &str) -> Option<User> {
        self.lock().db.users.get(user_id).cloned()
    }

    /// A copy of the ticket `ticket_id`.
    pub fn ticket(&self, ticket_id: &str) -> Option<Ticket> {
        self.lock().db.tickets.get(ticket_id).cloned()
    }

    /// Everything refunded on the order so far, in cents.
    pub fn refunds_total(&self, order_id: &str) -> Option<i64> {
        self.lock().db.orders.get(order_id).map(Order::refunded_cents)
    }

    /// The e-mails sent so far, oldest first.
    pub fn outbox(&self) -> Vec<Email> {
        self.lock().db.outbox.clone()
    }

    /// The conversations handed to people so far, oldest first.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.lock().db.transfers.clone()
    }

    /// Runs a read against the database.
    pub(crate) fn read<R>(&self, read: impl FnOnce(&Database) -> R) -> R {
        read(&self.lock().db)
    }

    /// Runs a write once per call: a retry of a call that succeeded returns the first output and
    /// changes nothing. The write must check everything before it changes anything (each
    /// operation is written that way), so a refused write leaves the database as it was.
    pub(crate) fn write_once(
        &self,
        tool: &str,
        invocation: &Invocation,
        write: impl FnOnce(&mut Database) -> Result<ToolOutput, ToolError>,
    ) -> Result<ToolOutput, ToolError> {
        let key = CallKey {
            task: invocation.task.as_str().to_owned(),
            call: invocation.call_id.as_str().to_owned(),
        };
        let mut state = self.lock();
        if let Some(applied) = state.applied.get(&key) {
            return if applied.tool == tool && applied.args_digest == invocation.args_digest {
                Ok(applied.output.clone())
            } else {
                Err(ToolError::Rejected(format!(
                    "call id `{}` was already used for a different call in this task",
                    key.call
                )))
            };
        }
        let output = write(&mut state.db)?;
        let applied = Applied {
            tool: tool.to_owned(),
            args_digest: invocation.args_digest.clone(),
            output: output.clone(),
        };
        state.applied.insert(key, applied);
        Ok(output)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot have left a half-applied write: every write
        // checks before it changes anything, and its changes cannot panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Desk")
            .field("products", &state.db.products.len())
            .field("users", &state.db.users.len())
            .field("orders", &state.db.orders.len())
            .field("tickets", &state.db.tickets.len())
            .finish_non_exhaustive()
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
    serde_json::from_str(&text)
        .map_err(|source| LoadError::Syntax { path: path.to_owned(), source })
}

/// Numbers temporary files, so that two saves in one process never share one.
static NEXT_TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to a temporary sibling of `path`, syncs it, and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let serial = NEXT_TEMPORARY.fetch_add(1, Ordering::Relaxed);
    let temporary = directory.join(format!(".{name}.{}-{serial}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        // Best effort: the temporary file is garbage either way, and the error that matters is
        // the one above.
        let _ = std::fs::remove_file(&temporary);
    }
    result
}
