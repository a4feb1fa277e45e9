//! The queryable audit store: every sealed event in SQLite, indexed by time, agent, task, tool
//! and verdict.
//!
//! The JSONL chain stays the source of truth; the store is a mirror for questions ("which
//! refunds were denied this week, by which rule?") and can be rebuilt from the chain at any time
//! ([`AuditStore::rebuild_from`]), which verifies the chain first. A mirror's failure is logged,
//! not fatal (see [`AuditMirror`]).
//!
//! The store knows which log it mirrors: it keeps the latest signed head of that log (it is one
//! of the sink's [`Anchor`]s, and a rebuild takes the log's last checkpoint). Before it is
//! trusted, [`AuditStore::mismatch_with`] compares it with the log as checked: the same log, the
//! same signed head, every event there with its hash and link intact. A deleted, edited or
//! slipped-in row is found, and the store is rebuilt or refused.

use super::chain::hash_of_value;
use super::checkpoint::{Anchor, SignedHead};
use super::integrity::Integrity;
use super::verify::{VerifyError, read_events};
use super::{AuditMirror, GENESIS_HASH, SealedEvent, Stage};
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
    /// The chain to rebuild from cannot be read or does not verify.
    #[error(transparent)]
    Chain(#[from] VerifyError),
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
    -- The latest signed head of the log the rows mirror: one row.
    CREATE TABLE IF NOT EXISTS head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        log_id TEXT NOT NULL,
        size INTEGER NOT NULL,
        head_hash TEXT NOT NULL,
        signed_head TEXT NOT NULL
    );
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
    /// the store never holds what the chain cannot vouch for. A last line torn by a crash is not
    /// an event and is left out; anything else broken is an error. Returns how many events it
    /// holds.
    pub fn rebuild_from(&self, path: impl AsRef<Path>) -> Result<u64, StoreError> {
        let events = read_events(path)?;
        let mut connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        let transaction = connection.transaction()?;
        transaction.execute("DELETE FROM events", [])?;
        transaction.execute("DELETE FROM head", [])?;
        let mut last_head = None;
        for sealed in &events {
            insert(&transaction, sealed)?;
            if sealed.event.stage == Stage::Checkpoint {
                last_head = serde_json::from_value::<SignedHead>(sealed.event.detail.clone()).ok();
            }
        }
        if let Some(head) = &last_head {
            record_head(&transaction, head)?;
        }
        transaction.commit()?;
        Ok(events.len() as u64)
    }

    /// The signed head of the log the store mirrors, as it last recorded it.
    pub fn head(&self) -> Result<Option<SignedHead>, StoreError> {
        let connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        let text: Option<String> = connection
            .query_row("SELECT signed_head FROM head WHERE id = 1", [], |row| row.get(0))
            .map(Some)
            .or_else(|error| match error {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })?;
        text.map(|text| {
            serde_json::from_str(&text).map_err(|error| StoreError::Corrupt(error.to_string()))
        })
        .transpose()
    }

    /// Why the store does not mirror the log `integrity` describes, or `None` when it does: it
    /// names the same log and the same last signed head, and holds exactly the log's events,
    /// each with its hash and its link to the one before.
    pub fn mismatch_with(&self, integrity: &Integrity) -> Result<Option<String>, StoreError> {
        let expected = integrity.last_checkpoint().map(|checkpoint| &checkpoint.head);
        let recorded = self.head()?;
        match (&recorded, expected) {
            // An unsigned log: only the rows can be compared.
            (None, None) => {}
            (None, Some(_)) => {
                return Ok(Some("the store records no signed head of this log".to_owned()));
            }
            (Some(recorded), _) if Some(&recorded.head.log_id) != integrity.log_id.as_ref() => {
                let other = &recorded.head.log_id;
                return Ok(Some(format!("the store mirrors log `{other}`, another log")));
            }
            (Some(recorded), expected) if expected != Some(&recorded.head) => {
                return Ok(Some(format!(
                    "the store's signed head ({} events at {}) is not the log's last ({})",
                    recorded.head.size,
                    recorded.head.time,
                    expected.map_or_else(
                        || "none".to_owned(),
                        |head| format!("{} events at {}", head.size, head.time)
                    ),
                )));
            }
            (Some(_), _) => {}
        }
        let head_at = recorded.map(|recorded| (recorded.head.size, recorded.head.head_hash));
        let connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        let mut statement =
            connection.prepare("SELECT seq, hash, event FROM events ORDER BY seq")?;
        let mut rows = statement.query([])?;
        let mut expected_seq = 0u64;
        let mut previous = GENESIS_HASH.to_owned();
        while let Some(row) = rows.next()? {
            let seq = u64::try_from(row.get::<_, i64>(0)?).unwrap_or(u64::MAX);
            let hash: String = row.get(1)?;
            let text: String = row.get(2)?;
            if seq != expected_seq {
                return Ok(Some(format!("the store lacks event {expected_seq} of the log")));
            }
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            let linked = value.get("prev_hash").and_then(serde_json::Value::as_str)
                == Some(previous.as_str());
            let own = value.get("hash").and_then(serde_json::Value::as_str) == Some(hash.as_str());
            if !linked || !own || hash_of_value(value) != hash {
                return Ok(Some(format!("the store's event {seq} is not the log's (edited)")));
            }
            if head_at
                .as_ref()
                .is_some_and(|(size, head_hash)| seq + 1 == *size && hash != *head_hash)
            {
                return Ok(Some(format!("the store's event {seq} is not the signed head")));
            }
            previous = hash;
            expected_seq += 1;
        }
        if expected_seq != integrity.events || previous != integrity.head_hash {
            return Ok(Some(format!(
                "the store holds {expected_seq} events, the log {}",
                integrity.events
            )));
        }
        Ok(None)
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

impl Anchor for AuditStore {
    fn describe(&self) -> String {
        "the query store".to_owned()
    }

    fn anchor(&self, head: &SignedHead, own_lines: &[SealedEvent]) -> Result<(), String> {
        let mut connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        let mut store = || -> Result<(), StoreError> {
            let transaction = connection.transaction()?;
            for line in own_lines {
                insert(&transaction, line)?;
            }
            record_head(&transaction, head)?;
            transaction.commit()?;
            Ok(())
        };
        store().map_err(|error| error.to_string())
    }

    /// The store is rebuilt from the log when it falls behind; the witness is what must hold.
    fn is_required(&self) -> bool {
        false
    }
}

fn record_head(connection: &Connection, head: &SignedHead) -> Result<(), StoreError> {
    let text =
        serde_json::to_string(head).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    connection.execute(
        "INSERT OR REPLACE INTO head (id, log_id, size, head_hash, signed_head) VALUES (1, ?1, ?2, ?3, ?4)",
        params![
            head.head.log_id,
            i64::try_from(head.head.size).unwrap_or(i64::MAX),
            head.head.head_hash,
            text
        ],
    )?;
    Ok(())
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
