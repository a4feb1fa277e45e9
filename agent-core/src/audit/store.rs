//! The queryable audit store: every sealed event in SQLite, indexed by time, agent, task, tool
//! and verdict.
//!
//! The JSONL chain stays the source of truth; the store is a mirror for questions ("which
//! refunds were denied this week, by which rule?") and can be rebuilt from the chain at any time
//! ([`AuditStore::rebuild_from`]), which verifies the chain first. A mirror's failure is logged,
//! not fatal (see [`AuditMirror`]).

use super::verify::{VerifyError, verify_file};
use super::{AuditMirror, SealedEvent};
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// SQLite rows of sealed audit events.
pub struct AuditStore {
    connection: Mutex<Connection>,
}

/// What to look for; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this agent's events.
    pub agent: Option<String>,
    /// Only this task's events.
    pub task: Option<String>,
    /// Only events about this tool.
    pub tool: Option<String>,
    /// Only this verdict (`allow`, `deny`, `needs_approval`, …).
    pub verdict: Option<String>,
    /// Only events at or after this time (RFC 3339, compared as text: the log's times are UTC
    /// with a fixed width).
    pub since: Option<String>,
    /// At most this many events, newest first; all when `None`.
    pub limit: Option<u32>,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("audit store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// An event could not be read back.
    #[error("audit store holds an unreadable event: {0}")]
    Corrupt(String),
    /// The chain to rebuild from does not verify.
    #[error(transparent)]
    Chain(#[from] VerifyError),
    /// The chain file could not be read.
    #[error("cannot read `{path}`: {message}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        message: String,
    },
}

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        agent TEXT NOT NULL,
        task TEXT NOT NULL,
        tool TEXT,
        stage TEXT NOT NULL,
        verdict TEXT NOT NULL,
        reason TEXT,
        hash TEXT NOT NULL,
        event TEXT NOT NULL
    );
    -- Each filter's index is ordered by seq, so a newest-first query with a limit walks the index
    -- backwards and stops after N matches instead of sorting every match.
    CREATE INDEX IF NOT EXISTS events_time ON events (time);
    CREATE INDEX IF NOT EXISTS events_agent_seq ON events (agent, seq);
    CREATE INDEX IF NOT EXISTS events_task_seq ON events (task, seq);
    CREATE INDEX IF NOT EXISTS events_tool_seq ON events (tool, seq);
    CREATE INDEX IF NOT EXISTS events_verdict_seq ON events (verdict, seq);
";

impl AuditStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let connection = Connection::open(path)?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self { connection: Mutex::new(connection) })
    }

    /// A store in memory, for tests and one-off questions.
    pub fn in_memory() -> Result<Self, StoreError> {
        let connection = Connection::open_in_memory()?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self { connection: Mutex::new(connection) })
    }

    /// Adds one event (replacing a row with the same sequence number).
    pub fn insert(&self, sealed: &SealedEvent) -> Result<(), StoreError> {
        let connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        insert(&connection, sealed)
    }

    /// Adds many events in one transaction (much faster than one by one).
    pub fn insert_all<'a>(
        &self,
        events: impl IntoIterator<Item = &'a SealedEvent>,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        let transaction = connection.transaction()?;
        for sealed in events {
            insert(&transaction, sealed)?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// Empties the store and fills it from the JSONL chain at `path`, after verifying the chain:
    /// the store never holds what the chain cannot vouch for. Returns how many events it holds.
    pub fn rebuild_from(&self, path: impl AsRef<Path>) -> Result<u64, StoreError> {
        let path = path.as_ref();
        let summary = verify_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|error| StoreError::Io {
            path: path.display().to_string(),
            message: error.to_string(),
        })?;
        let mut connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        let transaction = connection.transaction()?;
        transaction.execute("DELETE FROM events", [])?;
        for line in text.lines() {
            let sealed: SealedEvent = serde_json::from_str(line)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            insert(&transaction, &sealed)?;
        }
        transaction.commit()?;
        Ok(summary.events)
    }

    /// The events matching `query`, newest first.
    pub fn query(&self, query: &AuditQuery) -> Result<Vec<SealedEvent>, StoreError> {
        // Only the filters given go into the SQL, so SQLite can use the index each one has
        // (`column = ? OR ? IS NULL` defeats the planner and scans every row).
        let mut clauses = Vec::new();
        let mut values: Vec<&str> = Vec::new();
        for (column, value) in [
            ("agent = ?", &query.agent),
            ("task = ?", &query.task),
            ("tool = ?", &query.tool),
            ("verdict = ?", &query.verdict),
            ("time >= ?", &query.since),
        ] {
            if let Some(value) = value {
                clauses.push(column);
                values.push(value);
            }
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let limit = query.limit.map_or(-1, i64::from);
        let sql = format!("SELECT event FROM events {filter} ORDER BY seq DESC LIMIT {limit}");
        let connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        let mut statement = connection.prepare_cached(&sql)?;
        let rows = statement
            .query_map(rusqlite::params_from_iter(values), |row| row.get::<_, String>(0))?;
        let mut events = Vec::new();
        for row in rows {
            let text = row?;
            events.push(
                serde_json::from_str(&text)
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?,
            );
        }
        Ok(events)
    }

    /// How many events the store holds.
    pub fn len(&self) -> Result<u64, StoreError> {
        let connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        let count: i64 =
            connection.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Whether the store holds no event.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

impl AuditMirror for AuditStore {
    fn mirror(&self, event: &SealedEvent) -> Result<(), String> {
        self.insert(event).map_err(|error| error.to_string())
    }
}

fn insert(connection: &Connection, sealed: &SealedEvent) -> Result<(), StoreError> {
    let event = &sealed.event;
    let text =
        serde_json::to_string(sealed).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    connection.execute(
        "INSERT OR REPLACE INTO events (seq, time, agent, task, tool, stage, verdict, reason, hash, event)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            i64::try_from(sealed.seq).unwrap_or(i64::MAX),
            event.time,
            event.agent.as_str(),
            event.task.as_str(),
            event.tool,
            event.stage.as_str(),
            event.verdict.as_str(),
            event.reasons.first().map(|reason| reason.code.as_str()),
            sealed.hash,
            text,
        ],
    )?;
    Ok(())
}
