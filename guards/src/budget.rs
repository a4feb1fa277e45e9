//! Budgets: hard caps on what an agent may do, whatever the model asks.
//!
//! A prompt injection can talk the model into anything, so some limits must not depend on the
//! model at all: how many read, write and irreversible calls a task may make, and how much money
//! (refunds, in integer cents) may move, per task, per agent per day and per customer per day. The
//! usage so far is also an input to the policy engine ("refunds over $50 need a human when the
//! customer already had one today"), so one store serves both.
//!
//! # Why the decision and the spend share one transaction
//!
//! Checking the budget and recording the spend in two steps is a race: sixteen concurrent calls
//! each read "$180 of $200 spent", each decide that $30 more is fine, and each record it. The
//! customer gets $660. [`BudgetStore::transact`] therefore takes SQLite's write lock first
//! (`BEGIN IMMEDIATE`), reads the usage, runs the caller's decision, checks the caps and records
//! the spend, and only then commits. Every other writer, in this process or another one sharing
//! the file, waits for the lock, so it decides on usage that already includes this spend.
//!
//! ```
//! use guards::budget::{BudgetError, BudgetStore, Caps, Class, Limits, Spend, Verdict};
//!
//! let store = BudgetStore::in_memory()?;
//! let limits = Limits {
//!     per_customer_per_day: Caps { money_cents: Some(200_00), ..Caps::default() },
//!     ..Limits::default()
//! };
//! let refund = Spend {
//!     call_key: "task-1/call-1",
//!     task: "task-1",
//!     serves: &[],
//!     agent: "refund-bot",
//!     delegators: &[],
//!     customer: Some("cus_42"),
//!     day: "2026-11-25",
//!     class: Class::Irreversible,
//!     money_cents: 30_00,
//! };
//! // The decision sees the usage before this spend, while the store holds the write lock.
//! let allowed = store.transact(&refund, &limits, |usage| {
//!     if usage.customer_today.money_cents < 100_00 { Verdict::Spend(true) } else { Verdict::NoSpend(false) }
//! })?;
//! assert!(allowed);
//! assert_eq!(store.usage("task-1", "refund-bot", Some("cus_42"), "2026-11-25")?.task.money_cents, 30_00);
//! # Ok::<(), BudgetError>(())
//! ```

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

/// How much a call changes, for counting (the runtime maps its own effect classes to this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Reads only.
    Read,
    /// Changes something that can be changed back.
    Write,
    /// Changes something for good (a refund, a sent email).
    Irreversible,
}

/// Counters of one budget scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Counters {
    /// Calls of class [`Class::Read`].
    pub read_calls: u64,
    /// Calls of class [`Class::Write`].
    pub write_calls: u64,
    /// Calls of class [`Class::Irreversible`].
    pub irreversible_calls: u64,
    /// Money moved, in integer cents.
    pub money_cents: i64,
}

/// Caps of one scope; `None` means no cap.
///
/// A spend is allowed while the counter it would reach stays at or under the cap: with a cap of 3
/// irreversible calls, the third call passes and the fourth is refused. A cap of 0 refuses every
/// spend that would raise that counter. A counter that a spend does not raise is not checked, so a
/// read call is not refused because the money cap was reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Caps {
    /// Cap on [`Counters::read_calls`].
    pub read_calls: Option<u64>,
    /// Cap on [`Counters::write_calls`].
    pub write_calls: Option<u64>,
    /// Cap on [`Counters::irreversible_calls`].
    pub irreversible_calls: Option<u64>,
    /// Cap on [`Counters::money_cents`].
    pub money_cents: Option<i64>,
}

/// The three scopes' caps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Limits {
    /// Caps for one task, whatever the day.
    pub per_task: Caps,
    /// Caps for one agent on one UTC day.
    pub per_agent_per_day: Caps,
    /// Caps for one customer on one UTC day; they apply only to spends that name a customer.
    pub per_customer_per_day: Caps,
}

/// Usage of the three scopes, as the policy sees it.
///
/// For a delegated call, `task` and `agent_today` are the counters of the root task and the root
/// agent, which hold the spend of every sub-task and subagent under them: the whole piece of
/// work, never a fresh slate for a helper.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Usage {
    /// The counters of the task the call serves at the root (the call's own task for a root).
    pub task: Counters,
    /// The root agent's counters for the day of the spend.
    pub agent_today: Counters,
    /// The customer's counters for the day of the spend; zero when the spend names no customer.
    pub customer_today: Counters,
}

/// One call's spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spend<'a> {
    /// Unique per call, e.g. `"task/call_id"`: recording the same key twice counts once.
    pub call_key: &'a str,
    /// The task the call belongs to.
    pub task: &'a str,
    /// The tasks `task` serves, root first, when it was delegated (empty for a root task): the
    /// spend counts against each of them too, and against their caps.
    pub serves: &'a [&'a str],
    /// The agent making the call.
    pub agent: &'a str,
    /// The agents above `agent` in the delegation chain, root first (empty for a root agent):
    /// the spend counts against each one's day too.
    pub delegators: &'a [&'a str],
    /// The customer the call acts on, if any.
    pub customer: Option<&'a str>,
    /// The UTC day of the call, as `YYYY-MM-DD` (e.g. `"2026-11-25"`), given by the caller.
    pub day: &'a str,
    /// How much the call changes.
    pub class: Class,
    /// Money the call moves, in integer cents; never negative.
    pub money_cents: i64,
}

/// What the caller's decision function says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<T> {
    /// Record the spend (if the caps allow it) and return the value.
    Spend(T),
    /// Record nothing and return the value.
    NoSpend(T),
}

/// Why a budget operation failed. The caller treats every error as a denial: fail closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// The spend would take a counter over its cap; nothing was recorded.
    #[error("budget exceeded: {scope} {counter} would reach {would_be}, cap is {cap}")]
    Exceeded {
        /// `"task"`, `"agent_today"` or `"customer_today"`.
        scope: &'static str,
        /// `"read_calls"`, `"write_calls"`, `"irreversible_calls"` or `"money_cents"`.
        counter: &'static str,
        /// The cap; `i64::MAX` when the counter has no cap but would overflow.
        cap: i64,
        /// The value the counter would reach with this spend.
        would_be: i64,
    },
    /// The spend is malformed (an empty call key, a day not in `YYYY-MM-DD` form, negative money);
    /// nothing was recorded.
    #[error("invalid spend: {0}")]
    Invalid(String),
    /// The call key is already recorded for a different spend; nothing was recorded.
    #[error("call key `{call_key}` is already recorded for a different spend")]
    CallKeyReused {
        /// The reused key.
        call_key: String,
    },
    /// SQLite failed; the message names the store's file.
    #[error("{0}")]
    Store(String),
}

/// Budget counters and the ledger of spends, in one SQLite database.
///
/// Share one store between threads (it is `Sync`); several stores, in this process or others, may
/// open the same file: SQLite's file lock serializes their transactions.
#[derive(Debug)]
pub struct BudgetStore {
    connection: Mutex<Connection>,
    /// For error messages: the file, or `:memory:`.
    location: String,
}

impl BudgetStore {
    /// Opens the store at `path`, creating the file and its schema if needed.
    ///
    /// The file is put in WAL mode with `synchronous=NORMAL`: a commit writes to the WAL without an
    /// fsync, so it survives the process crashing (the OS holds the write), and the database is
    /// never corrupted; an OS crash or power loss may lose the last few commits, which then count
    /// as never spent. Budgets tolerate that; an fsync per call would cost more than the call.
    pub fn open(path: &Path) -> Result<Self, BudgetError> {
        Self::open_with_busy_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// Like [`BudgetStore::open`], waiting at most `busy_timeout` for another connection's write
    /// lock before an operation fails (closed) with [`BudgetError::Store`].
    pub fn open_with_busy_timeout(
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<Self, BudgetError> {
        let location = path.display().to_string();
        let fail = |e: rusqlite::Error| store_error(&location, "cannot open", &e);
        let connection = Connection::open(path).map_err(fail)?;
        connection.busy_timeout(busy_timeout).map_err(fail)?;
        let mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(fail)?;
        // The durability argument above holds only in WAL mode: refuse to run without it.
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(BudgetError::Store(format!(
                "budget store `{location}`: cannot enable WAL mode (journal mode is `{mode}`)"
            )));
        }
        // NORMAL, not FULL: no fsync per commit; a process crash loses nothing (see above).
        connection.pragma_update(None, "synchronous", "NORMAL").map_err(fail)?;
        Self::with_schema(connection, location)
    }

    /// Opens a store that lives in memory and is lost when dropped; for tests and dry runs.
    pub fn in_memory() -> Result<Self, BudgetError> {
        let location = ":memory:".to_owned();
        let connection =
            Connection::open_in_memory().map_err(|e| store_error(&location, "cannot open", &e))?;
        Self::with_schema(connection, location)
    }

    /// The usage of a task, of its agent on `day` and of its customer (if any) on `day`. A task's
    /// and an agent's counters include what their sub-tasks and subagents spent.
    pub fn usage(
        &self,
        task: &str,
        agent: &str,
        customer: Option<&str>,
        day: &str,
    ) -> Result<Usage, BudgetError> {
        check_day(day)?;
        let mut connection = self.lock();
        // A read transaction, so the three scopes come from one snapshot.
        let tx = connection.transaction().map_err(|e| self.error("cannot read usage", &e))?;
        let usage = read_usage(&tx, task, agent, customer, day)
            .map_err(|e| self.error("cannot read usage", &e))?;
        tx.commit().map_err(|e| self.error("cannot read usage", &e))?;
        Ok(usage)
    }

    /// Decides and spends atomically.
    ///
    /// In one transaction that holds the database's write lock: reads the usage, calls
    /// `decide(&usage)`; if it returns [`Verdict::Spend`], checks that usage plus this spend stays
    /// within every cap of every scope, records the spend and commits. Returns `decide`'s value, or
    /// [`BudgetError::Exceeded`] naming the first scope and counter that would go over.
    ///
    /// Recording is idempotent per [`Spend::call_key`]: if the key is already recorded and not
    /// released, `decide` sees usage that already includes it, and a `Spend` verdict returns the
    /// value without counting again (a retry that crosses midnight stays on its first day). If the
    /// recorded spend differs in task, agent, customer, class or money, the call fails with
    /// [`BudgetError::CallKeyReused`]. A released key counts again when spent again.
    ///
    /// `decide` runs while this store's mutex and SQLite's write lock are held: keep it short, and
    /// never call back into the store from it.
    ///
    /// ```no_run
    /// # use guards::budget::{BudgetStore, Limits, Spend, Verdict};
    /// # fn f(store: &BudgetStore, spend: &Spend<'_>, limits: &Limits) -> Result<(), guards::budget::BudgetError> {
    /// // Wrong: deadlocks, the store is already locked for this transaction.
    /// store.transact(spend, limits, |_| {
    ///     let _ = store.usage(spend.task, spend.agent, spend.customer, spend.day);
    ///     Verdict::Spend(())
    /// })?;
    /// // Right: decide on the usage you are given.
    /// store.transact(spend, limits, |usage| {
    ///     if usage.task.irreversible_calls < 3 { Verdict::Spend(()) } else { Verdict::NoSpend(()) }
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn transact<T>(
        &self,
        spend: &Spend<'_>,
        limits: &Limits,
        decide: impl FnOnce(&Usage) -> Verdict<T>,
    ) -> Result<T, BudgetError> {
        check_spend(spend)?;
        let mut connection = self.lock();
        let fail = |e: rusqlite::Error| self.error("cannot record spend", &e);
        let tx = begin_immediate(&mut connection).map_err(fail)?;
        let rows = spend_rows(spend);
        let counted = read_rows(&tx, &rows).map_err(fail)?;
        let usage = usage_of(&rows, &counted);
        let value = match decide(&usage) {
            Verdict::NoSpend(value) => {
                tx.commit().map_err(fail)?;
                return Ok(value);
            }
            Verdict::Spend(value) => value,
        };
        match ledger_entry(&tx, spend.call_key).map_err(fail)? {
            Some(entry) if !entry.released => {
                // Already counted. Dropping `tx` rolls back a transaction that wrote nothing.
                if entry.same_call_as(spend) {
                    Ok(value)
                } else {
                    Err(BudgetError::CallKeyReused { call_key: spend.call_key.to_owned() })
                }
            }
            _ => {
                let delta = Counters::one_call(spend.class, spend.money_cents);
                check_caps(&rows, &counted, &delta, limits)?;
                record(&tx, spend, &rows, &delta).map_err(fail)?;
                tx.commit().map_err(fail)?;
                Ok(value)
            }
        }
    }

    /// Gives back a recorded spend (a later stage refused the call). Idempotent; unknown keys are
    /// a no-op.
    pub fn release(&self, call_key: &str) -> Result<(), BudgetError> {
        let mut connection = self.lock();
        let fail = |e: rusqlite::Error| self.error("cannot release spend", &e);
        let tx = begin_immediate(&mut connection).map_err(fail)?;
        if let Some(entry) = ledger_entry(&tx, call_key).map_err(fail)?
            && !entry.released
        {
            unrecord(&tx, call_key, &entry).map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }

    fn with_schema(mut connection: Connection, location: String) -> Result<Self, BudgetError> {
        let fail = |e: rusqlite::Error| store_error(&location, "cannot create schema", &e);
        let tx = begin_immediate(&mut connection).map_err(fail)?;
        let version: i64 =
            tx.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(fail)?;
        if version > SCHEMA_VERSION {
            return Err(BudgetError::Store(format!(
                "budget store `{location}`: schema version {version} is newer than this build \
                 understands ({SCHEMA_VERSION})"
            )));
        }
        tx.execute_batch(SCHEMA).map_err(fail)?;
        if version == 1 {
            // Version 1 ledgers knew no delegation: every spend served only its own task.
            tx.execute_batch(
                "ALTER TABLE spends ADD COLUMN serves TEXT NOT NULL DEFAULT '[]';
                 ALTER TABLE spends ADD COLUMN delegators TEXT NOT NULL DEFAULT '[]';",
            )
            .map_err(fail)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(Self { connection: Mutex::new(connection), location })
    }

    /// Locks the connection. A panic in a previous `decide` poisons the mutex, but its transaction
    /// was rolled back when the panic dropped it, so the connection is sound: recover it.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn error(&self, what: &str, error: &rusqlite::Error) -> BudgetError {
        store_error(&self.location, what, error)
    }
}

/// Today's date, UTC, in the `YYYY-MM-DD` form budgets count days in.
pub fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}", now.year(), u8::from(now.month()), now.day())
}

/// Version of [`SCHEMA`], kept in `PRAGMA user_version`; a newer file is refused, an older one
/// migrated (2 added the tasks and agents a delegated spend serves).
const SCHEMA_VERSION: i64 = 2;

/// How long [`BudgetStore::open`] lets a writer wait for another connection's write lock before
/// failing (closed). A transaction holds the lock for well under a millisecond, so five seconds
/// means something is stuck.
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The ledger of spends, and one counter table per scope so that reading usage is three
/// primary-key lookups, whatever the ledger's size. The counter tables are updated in the same
/// transaction as the ledger, so they always equal the sum of its unreleased rows.
///
/// Every lookup goes through a primary key (the ledger by `call_key`, the counters by their
/// scope's key), so there is no secondary index to slow the writes. The `CHECK`s make a bug that
/// would drive a counter negative fail the transaction instead of freeing budget.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spends (
    call_key    TEXT    NOT NULL PRIMARY KEY,
    task        TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    customer    TEXT,
    serves      TEXT    NOT NULL DEFAULT '[]',
    delegators  TEXT    NOT NULL DEFAULT '[]',
    day         TEXT    NOT NULL,
    class       TEXT    NOT NULL CHECK (class IN ('read', 'write', 'irreversible')),
    money_cents INTEGER NOT NULL CHECK (money_cents >= 0),
    released    INTEGER NOT NULL DEFAULT 0 CHECK (released IN (0, 1)),
    recorded_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    released_at TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS task_usage (
    task               TEXT    NOT NULL PRIMARY KEY,
    read_calls         INTEGER NOT NULL CHECK (read_calls >= 0),
    write_calls        INTEGER NOT NULL CHECK (write_calls >= 0),
    irreversible_calls INTEGER NOT NULL CHECK (irreversible_calls >= 0),
    money_cents        INTEGER NOT NULL CHECK (money_cents >= 0)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agent_usage (
    agent              TEXT    NOT NULL,
    day                TEXT    NOT NULL,
    read_calls         INTEGER NOT NULL CHECK (read_calls >= 0),
    write_calls        INTEGER NOT NULL CHECK (write_calls >= 0),
    irreversible_calls INTEGER NOT NULL CHECK (irreversible_calls >= 0),
    money_cents        INTEGER NOT NULL CHECK (money_cents >= 0),
    PRIMARY KEY (agent, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS customer_usage (
    customer           TEXT    NOT NULL,
    day                TEXT    NOT NULL,
    read_calls         INTEGER NOT NULL CHECK (read_calls >= 0),
    write_calls        INTEGER NOT NULL CHECK (write_calls >= 0),
    irreversible_calls INTEGER NOT NULL CHECK (irreversible_calls >= 0),
    money_cents        INTEGER NOT NULL CHECK (money_cents >= 0),
    PRIMARY KEY (customer, day)
) WITHOUT ROWID;
";

/// One budget scope and its counter table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Task,
    AgentToday,
    CustomerToday,
}

impl Scope {
    /// The name in [`BudgetError::Exceeded`].
    fn name(self) -> &'static str {
        match self {
            Scope::Task => "task",
            Scope::AgentToday => "agent_today",
            Scope::CustomerToday => "customer_today",
        }
    }

    fn select_sql(self) -> &'static str {
        match self {
            Scope::Task => {
                "SELECT read_calls, write_calls, irreversible_calls, money_cents \
                 FROM task_usage WHERE task = ?1"
            }
            Scope::AgentToday => {
                "SELECT read_calls, write_calls, irreversible_calls, money_cents \
                 FROM agent_usage WHERE agent = ?1 AND day = ?2"
            }
            Scope::CustomerToday => {
                "SELECT read_calls, write_calls, irreversible_calls, money_cents \
                 FROM customer_usage WHERE customer = ?1 AND day = ?2"
            }
        }
    }

    /// Adds `?2..?5` (after the key) to the scope's counters, creating the row at zero if needed.
    fn add_sql(self) -> &'static str {
        match self {
            Scope::Task => {
                "INSERT INTO task_usage (task, read_calls, write_calls, irreversible_calls, money_cents)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (task) DO UPDATE SET
                     read_calls = read_calls + excluded.read_calls,
                     write_calls = write_calls + excluded.write_calls,
                     irreversible_calls = irreversible_calls + excluded.irreversible_calls,
                     money_cents = money_cents + excluded.money_cents"
            }
            Scope::AgentToday => {
                "INSERT INTO agent_usage (agent, day, read_calls, write_calls, irreversible_calls, money_cents)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (agent, day) DO UPDATE SET
                     read_calls = read_calls + excluded.read_calls,
                     write_calls = write_calls + excluded.write_calls,
                     irreversible_calls = irreversible_calls + excluded.irreversible_calls,
                     money_cents = money_cents + excluded.money_cents"
            }
            Scope::CustomerToday => {
                "INSERT INTO customer_usage (customer, day, read_calls, write_calls, irreversible_calls, money_cents)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (customer, day) DO UPDATE SET
                     read_calls = read_calls + excluded.read_calls,
                     write_calls = write_calls + excluded.write_calls,
                     irreversible_calls = irreversible_calls + excluded.irreversible_calls,
                     money_cents = money_cents + excluded.money_cents"
            }
        }
    }

    /// Takes `?2..?5` (after the key) off the counters of an existing row. Not an upsert: SQLite
    /// checks the `CHECK`s on the row to insert before it sees the conflict, and negative counts
    /// would fail them.
    fn subtract_sql(self) -> &'static str {
        match self {
            Scope::Task => {
                "UPDATE task_usage SET read_calls = read_calls - ?2, write_calls = write_calls - ?3,
                     irreversible_calls = irreversible_calls - ?4, money_cents = money_cents - ?5
                 WHERE task = ?1"
            }
            Scope::AgentToday => {
                "UPDATE agent_usage SET read_calls = read_calls - ?3, write_calls = write_calls - ?4,
                     irreversible_calls = irreversible_calls - ?5, money_cents = money_cents - ?6
                 WHERE agent = ?1 AND day = ?2"
            }
            Scope::CustomerToday => {
                "UPDATE customer_usage SET read_calls = read_calls - ?3, write_calls = write_calls - ?4,
                     irreversible_calls = irreversible_calls - ?5, money_cents = money_cents - ?6
                 WHERE customer = ?1 AND day = ?2"
            }
        }
    }

    /// The caps that apply to this scope.
    fn caps(self, limits: &Limits) -> &Caps {
        match self {
            Scope::Task => &limits.per_task,
            Scope::AgentToday => &limits.per_agent_per_day,
            Scope::CustomerToday => &limits.per_customer_per_day,
        }
    }
}

/// One counter row: its scope, its key, and its day (none for a task).
type Row<'a> = (Scope, &'a str, Option<&'a str>);

/// The counter rows one call touches: its task and every task it serves, its agent and every
/// agent above it on its day, its customer on its day. Roots come first in each scope, and no row
/// appears twice (a row counted twice would count one call twice).
fn scope_keys<'a>(
    task: &'a str,
    serves: &[&'a str],
    agent: &'a str,
    delegators: &[&'a str],
    customer: Option<&'a str>,
    day: &'a str,
) -> Vec<Row<'a>> {
    let mut rows: Vec<Row<'a>> = Vec::with_capacity(serves.len() + delegators.len() + 3);
    let mut push = |row: Row<'a>| {
        if !rows.contains(&row) {
            rows.push(row);
        }
    };
    for task in serves.iter().copied().chain([task]) {
        push((Scope::Task, task, None));
    }
    for agent in delegators.iter().copied().chain([agent]) {
        push((Scope::AgentToday, agent, Some(day)));
    }
    if let Some(customer) = customer {
        push((Scope::CustomerToday, customer, Some(day)));
    }
    rows
}

/// The rows a spend touches.
fn spend_rows<'a>(spend: &Spend<'a>) -> Vec<Row<'a>> {
    scope_keys(spend.task, spend.serves, spend.agent, spend.delegators, spend.customer, spend.day)
}

/// The usage the policy sees: each scope's first (root) row.
fn usage_of(rows: &[Row<'_>], counted: &[Counters]) -> Usage {
    let first = |wanted: Scope| {
        rows.iter()
            .zip(counted)
            .find(|((scope, _, _), _)| *scope == wanted)
            .map(|(_, counters)| *counters)
            .unwrap_or_default()
    };
    Usage {
        task: first(Scope::Task),
        agent_today: first(Scope::AgentToday),
        customer_today: first(Scope::CustomerToday),
    }
}

impl Counters {
    /// One call of `class` moving `money_cents`.
    fn one_call(class: Class, money_cents: i64) -> Self {
        let mut counters = Counters { money_cents, ..Counters::default() };
        match class {
            Class::Read => counters.read_calls = 1,
            Class::Write => counters.write_calls = 1,
            Class::Irreversible => counters.irreversible_calls = 1,
        }
        counters
    }
}

impl Class {
    fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Irreversible => "irreversible",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Class::Read),
            "write" => Some(Class::Write),
            "irreversible" => Some(Class::Irreversible),
            _ => None,
        }
    }
}

/// A row of the ledger.
struct LedgerEntry {
    task: String,
    serves: Vec<String>,
    agent: String,
    delegators: Vec<String>,
    customer: Option<String>,
    day: String,
    class: Class,
    money_cents: i64,
    released: bool,
}

impl LedgerEntry {
    /// Whether `spend` is a retry of this entry's call. The day is left out on purpose: a retry
    /// may cross midnight, and it still counts once, on its first day.
    fn same_call_as(&self, spend: &Spend<'_>) -> bool {
        self.task == spend.task
            && self.serves.iter().map(String::as_str).eq(spend.serves.iter().copied())
            && self.agent == spend.agent
            && self.delegators.iter().map(String::as_str).eq(spend.delegators.iter().copied())
            && self.customer.as_deref() == spend.customer
            && self.class == spend.class
            && self.money_cents == spend.money_cents
    }
}

fn store_error(location: &str, what: &str, error: &rusqlite::Error) -> BudgetError {
    BudgetError::Store(format!("budget store `{location}`: {what}: {error}"))
}

/// Starts a write transaction, taking SQLite's write lock now rather than at the first write, so
/// that nobody can change the usage between our read and our write. If a panic in `decide` left a
/// transaction open (it should not: dropping a `Transaction` rolls back), it is rolled back first.
fn begin_immediate(connection: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    if !connection.is_autocommit() {
        connection.execute_batch("ROLLBACK")?;
    }
    connection.transaction_with_behavior(TransactionBehavior::Immediate)
}

fn read_usage(
    tx: &Transaction<'_>,
    task: &str,
    agent: &str,
    customer: Option<&str>,
    day: &str,
) -> rusqlite::Result<Usage> {
    let rows = scope_keys(task, &[], agent, &[], customer, day);
    Ok(usage_of(&rows, &read_rows(tx, &rows)?))
}

/// The counters of each row, in order.
fn read_rows(tx: &Transaction<'_>, rows: &[Row<'_>]) -> rusqlite::Result<Vec<Counters>> {
    rows.iter().map(|(scope, key, day)| read_counters(tx, *scope, key, *day)).collect()
}

fn read_counters(
    tx: &Transaction<'_>,
    scope: Scope,
    key: &str,
    day: Option<&str>,
) -> rusqlite::Result<Counters> {
    let mut statement = tx.prepare_cached(scope.select_sql())?;
    let counters_of = |row: &rusqlite::Row<'_>| {
        // Call counters are stored as SQLite integers (i64); the schema keeps them >= 0.
        let calls = |index: usize| -> rusqlite::Result<u64> {
            let value: i64 = row.get(index)?;
            u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
        };
        Ok(Counters {
            read_calls: calls(0)?,
            write_calls: calls(1)?,
            irreversible_calls: calls(2)?,
            money_cents: row.get(3)?,
        })
    };
    let counters = match day {
        Some(day) => statement.query_row((key, day), counters_of),
        None => statement.query_row([key], counters_of),
    }
    .optional()?;
    Ok(counters.unwrap_or_default())
}

/// Whether [`change_counters`] adds a call to its scopes or takes it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Add,
    Subtract,
}

/// Adds `delta` to (or takes it off) the counters of every scope the call touches.
fn change_counters(
    tx: &Transaction<'_>,
    keys: &[Row<'_>],
    delta: &Counters,
    change: Change,
) -> rusqlite::Result<()> {
    // SQLite integers are i64; a call delta is 0 or 1, so the conversion cannot fail in practice.
    let integer = |calls: u64| {
        i64::try_from(calls).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    };
    let (read, write, irreversible, money) = (
        integer(delta.read_calls)?,
        integer(delta.write_calls)?,
        integer(delta.irreversible_calls)?,
        delta.money_cents,
    );
    for &(scope, key, day) in keys {
        let sql = match change {
            Change::Add => scope.add_sql(),
            Change::Subtract => scope.subtract_sql(),
        };
        let mut statement = tx.prepare_cached(sql)?;
        let changed = match day {
            Some(day) => statement.execute((key, day, read, write, irreversible, money))?,
            None => statement.execute((key, read, write, irreversible, money))?,
        };
        // A subtraction from a missing row means the counters and the ledger disagree: fail
        // (closed) rather than carry on with counters that no longer mean anything.
        if changed != 1 {
            return Err(rusqlite::Error::StatementChangedRows(changed));
        }
    }
    Ok(())
}

fn ledger_entry(tx: &Transaction<'_>, call_key: &str) -> rusqlite::Result<Option<LedgerEntry>> {
    let mut statement = tx.prepare_cached(
        "SELECT task, agent, customer, day, class, money_cents, released, serves, delegators \
         FROM spends WHERE call_key = ?1",
    )?;
    statement
        .query_row([call_key], |row| {
            let class: String = row.get(4)?;
            let class = Class::parse(&class).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    4,
                    rusqlite::types::Type::Text,
                    format!("unknown class `{class}`").into(),
                )
            })?;
            let list = |index: usize| -> rusqlite::Result<Vec<String>> {
                let text: String = row.get(index)?;
                serde_json::from_str(&text).map_err(|error| {
                    rusqlite::Error::FromSqlConversionFailure(
                        index,
                        rusqlite::types::Type::Text,
                        Box::new(error),
                    )
                })
            };
            Ok(LedgerEntry {
                task: row.get(0)?,
                serves: list(7)?,
                agent: row.get(1)?,
                delegators: list(8)?,
                customer: row.get(2)?,
                day: row.get(3)?,
                class,
                money_cents: row.get(5)?,
                released: row.get(6)?,
            })
        })
        .optional()
}

/// Writes the spend to the ledger (reviving a released entry with the same key) and counts it.
fn record(
    tx: &Transaction<'_>,
    spend: &Spend<'_>,
    rows: &[Row<'_>],
    delta: &Counters,
) -> rusqlite::Result<()> {
    let list = |items: &[&str]| {
        serde_json::to_string(items)
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
    };
    let mut statement = tx.prepare_cached(
        "INSERT INTO spends (call_key, task, agent, customer, day, class, money_cents, serves,
                             delegators)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (call_key) DO UPDATE SET
             task = excluded.task, agent = excluded.agent, customer = excluded.customer,
             day = excluded.day, class = excluded.class, money_cents = excluded.money_cents,
             serves = excluded.serves, delegators = excluded.delegators,
             released = 0, recorded_at = excluded.recorded_at, released_at = NULL",
    )?;
    statement.execute((
        spend.call_key,
        spend.task,
        spend.agent,
        spend.customer,
        spend.day,
        spend.class.as_str(),
        spend.money_cents,
        list(spend.serves)?,
        list(spend.delegators)?,
    ))?;
    change_counters(tx, rows, delta, Change::Add)
}

/// Marks the entry released and takes it off the counters it was added to.
fn unrecord(tx: &Transaction<'_>, call_key: &str, entry: &LedgerEntry) -> rusqlite::Result<()> {
    let serves: Vec<&str> = entry.serves.iter().map(String::as_str).collect();
    let delegators: Vec<&str> = entry.delegators.iter().map(String::as_str).collect();
    let keys = scope_keys(
        &entry.task,
        &serves,
        &entry.agent,
        &delegators,
        entry.customer.as_deref(),
        &entry.day,
    );
    change_counters(
        tx,
        &keys,
        &Counters::one_call(entry.class, entry.money_cents),
        Change::Subtract,
    )?;
    let mut statement = tx.prepare_cached(
        "UPDATE spends SET released = 1, released_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         WHERE call_key = ?1",
    )?;
    statement.execute([call_key])?;
    Ok(())
}

/// Checks that every row the call touches stays within its scope's caps with `delta` added: a
/// sub-task is held to the caps of every task it serves, so it never has more headroom than its
/// parent has left.
fn check_caps(
    rows: &[Row<'_>],
    counted: &[Counters],
    delta: &Counters,
    limits: &Limits,
) -> Result<(), BudgetError> {
    for (&(scope, _, _), current) in rows.iter().zip(counted) {
        let caps = scope.caps(limits);
        let name = scope.name();
        let calls = |calls: u64| i128::from(calls);
        check_counter(
            name,
            "read_calls",
            calls(current.read_calls),
            calls(delta.read_calls),
            caps.read_calls.map(calls),
        )?;
        check_counter(
            name,
            "write_calls",
            calls(current.write_calls),
            calls(delta.write_calls),
            caps.write_calls.map(calls),
        )?;
        check_counter(
            name,
            "irreversible_calls",
            calls(current.irreversible_calls),
            calls(delta.irreversible_calls),
            caps.irreversible_calls.map(calls),
        )?;
        check_counter(
            name,
            "money_cents",
            i128::from(current.money_cents),
            i128::from(delta.money_cents),
            caps.money_cents.map(i128::from),
        )?;
    }
    Ok(())
}

/// Refuses a counter that `delta` raises past its cap. Counters live in SQLite's 64-bit integers,
/// so `i64::MAX` caps every counter, even one without a cap; the arithmetic is in `i128` so it
/// cannot overflow on the way.
fn check_counter(
    scope: &'static str,
    counter: &'static str,
    current: i128,
    delta: i128,
    cap: Option<i128>,
) -> Result<(), BudgetError> {
    if delta <= 0 {
        return Ok(());
    }
    let representable = i128::from(i64::MAX);
    let cap = cap.map_or(representable, |cap| cap.min(representable));
    let would_be = current + delta;
    if would_be <= cap {
        return Ok(());
    }
    let saturate = |value: i128| i64::try_from(value).unwrap_or(i64::MAX);
    Err(BudgetError::Exceeded { scope, counter, cap: saturate(cap), would_be: saturate(would_be) })
}

fn check_spend(spend: &Spend<'_>) -> Result<(), BudgetError> {
    if spend.call_key.is_empty() {
        return Err(BudgetError::Invalid("the call key is empty".to_owned()));
    }
    if spend.money_cents < 0 {
        return Err(BudgetError::Invalid(format!(
            "money must not be negative, got `{}` cents",
            spend.money_cents
        )));
    }
    check_day(spend.day)
}

/// Days must be `YYYY-MM-DD`: `2026-1-5` and `2026-01-05` would otherwise be two budgets.
fn check_day(day: &str) -> Result<(), BudgetError> {
    let bytes = day.as_bytes();
    let well_formed = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, byte)| match i {
            4 | 7 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    if well_formed {
        Ok(())
    } else {
        Err(BudgetError::Invalid(format!("day `{day}` is not in `YYYY-MM-DD` form")))
    }
}
