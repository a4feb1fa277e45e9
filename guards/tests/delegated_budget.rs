//! Budgets follow the work: a sub-task's spend counts against every task it serves and every
//! agent above it, so a parent and its helpers share one allowance instead of each holding one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::inconsistent_digit_grouping, reason = "amounts are written dollars_cents")]

use guards::budget::{BudgetError, BudgetStore, Caps, Class, Limits, Spend, Verdict};

const DAY: &str = "2026-12-01";

/// A $40 refund for Mateo by `agent` in `task`, serving `serves` under `delegators`.
fn refund<'a>(
    call_key: &'a str,
    task: &'a str,
    serves: &'a [&'a str],
    agent: &'a str,
    delegators: &'a [&'a str],
) -> Spend<'a> {
    Spend {
        call_key,
        task,
        serves,
        agent,
        delegators,
        customer: Some("mateo"),
        day: DAY,
        class: Class::Irreversible,
        money_cents: 40_00,
    }
}

fn spend(store: &BudgetStore, spend: &Spend<'_>, limits: &Limits) -> Result<(), BudgetError> {
    store.transact(spend, limits, |_| Verdict::Spend(()))
}

/// At most $100 per task.
fn per_task_100() -> Limits {
    Limits { per_task: Caps { money_cents: Some(100_00), ..Caps::default() }, ..Limits::default() }
}

#[test]
fn a_parent_and_two_helpers_share_the_parents_allowance() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = per_task_100();
    let root = ["T-1"];
    spend(&store, &refund("T-1/c1", "T-1", &[], "bot", &[]), &limits).unwrap();
    spend(&store, &refund("T-1/h.1/c1", "T-1/h.1", &root, "helper", &["bot"]), &limits).unwrap();
    // The third $40 would take the ticket to $120: refused, though this helper spent nothing.
    let third = refund("T-1/h.2/c1", "T-1/h.2", &root, "helper", &["bot"]);
    match spend(&store, &third, &limits) {
        Err(BudgetError::Exceeded { scope: "task", would_be: 120_00, .. }) => {}
        other => panic!("expected the root task's cap to refuse, got {other:?}"),
    }
    let usage = store.usage("T-1", "bot", Some("mateo"), DAY).unwrap();
    assert_eq!(usage.task.money_cents, 80_00, "the root holds both spends");
    assert_eq!(usage.agent_today.money_cents, 80_00, "and so does the root agent's day");
    assert_eq!(store.usage("T-1/h.1", "helper", None, DAY).unwrap().task.money_cents, 40_00);

    // The decision sees the root's counters, not the helper's fresh slate.
    let seen = store
        .transact(&third, &Limits::default(), |usage| Verdict::NoSpend(usage.task.money_cents))
        .unwrap();
    assert_eq!(seen, 80_00);
}

#[test]
fn positive_control_helpers_that_serve_nothing_each_get_a_fresh_allowance() {
    // As before the roll-up: sub-tasks named only by their own id.
    let store = BudgetStore::in_memory().unwrap();
    let limits = per_task_100();
    spend(&store, &refund("T-1/c1", "T-1", &[], "bot", &[]), &limits).unwrap();
    spend(&store, &refund("T-1/h.1/c1", "T-1/h.1", &[], "helper", &[]), &limits).unwrap();
    spend(&store, &refund("T-1/h.2/c1", "T-1/h.2", &[], "helper", &[]), &limits).unwrap();
    assert_eq!(store.usage("T-1", "bot", Some("mateo"), DAY).unwrap().task.money_cents, 40_00);
    assert_eq!(
        store.usage("T-1", "bot", Some("mateo"), DAY).unwrap().customer_today.money_cents,
        120_00,
        "the ticket moved $120 past a $100 cap"
    );
}

#[test]
fn a_released_helper_spend_is_taken_off_every_row_it_was_added_to() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = per_task_100();
    let root = ["T-1"];
    spend(&store, &refund("T-1/h.1/c1", "T-1/h.1", &root, "helper", &["bot"]), &limits).unwrap();
    store.release("T-1/h.1/c1").unwrap();
    let usage = store.usage("T-1", "bot", Some("mateo"), DAY).unwrap();
    assert_eq!(
        (usage.task.money_cents, usage.agent_today.money_cents, usage.customer_today.money_cents),
        (0, 0, 0)
    );
    assert_eq!(store.usage("T-1/h.1", "helper", None, DAY).unwrap().task.money_cents, 0);
    // A retry of the released key counts again, on every row.
    spend(&store, &refund("T-1/h.1/c1", "T-1/h.1", &root, "helper", &["bot"]), &limits).unwrap();
    assert_eq!(store.usage("T-1", "bot", None, DAY).unwrap().task.money_cents, 40_00);
}

#[test]
fn a_helper_of_a_helper_is_held_to_the_caps_of_every_task_above_it() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = per_task_100();
    let chain = ["T-1", "T-1/h.1"];
    for n in 0..2 {
        let key = format!("T-1/h.1/g.2/c{n}");
        let deep = refund(&key, "T-1/h.1/g.2", &chain, "grandhelper", &["bot", "helper"]);
        spend(&store, &deep, &limits).unwrap();
    }
    assert_eq!(store.usage("T-1/h.1", "helper", None, DAY).unwrap().task.money_cents, 80_00);
    assert_eq!(store.usage("T-1", "bot", None, DAY).unwrap().agent_today.money_cents, 80_00);
    let third = refund("T-1/c9", "T-1", &[], "bot", &[]);
    assert!(matches!(spend(&store, &third, &limits), Err(BudgetError::Exceeded { .. })));
}

#[test]
fn a_retry_naming_other_parents_is_another_call_and_is_refused() {
    // The same call key with another lineage would move its spend between budgets on release.
    let store = BudgetStore::in_memory().unwrap();
    let limits = Limits::default();
    spend(&store, &refund("k", "T-1/h.1", &["T-1"], "helper", &["bot"]), &limits).unwrap();
    let other = refund("k", "T-1/h.1", &[], "helper", &["bot"]);
    assert!(matches!(spend(&store, &other, &limits), Err(BudgetError::CallKeyReused { .. })));
}

#[test]
fn a_version_1_ledger_is_migrated_and_keeps_its_spends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        // A ledger as version 1 wrote it.
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE spends (call_key TEXT NOT NULL PRIMARY KEY, task TEXT NOT NULL,
                 agent TEXT NOT NULL, customer TEXT, day TEXT NOT NULL, class TEXT NOT NULL,
                 money_cents INTEGER NOT NULL, released INTEGER NOT NULL DEFAULT 0,
                 recorded_at TEXT NOT NULL DEFAULT 'x', released_at TEXT) WITHOUT ROWID;
             CREATE TABLE task_usage (task TEXT NOT NULL PRIMARY KEY, read_calls INTEGER NOT NULL,
                 write_calls INTEGER NOT NULL, irreversible_calls INTEGER NOT NULL,
                 money_cents INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO spends (call_key, task, agent, customer, day, class, money_cents)
                 VALUES ('T-0/c1', 'T-0', 'bot', NULL, '2026-12-01', 'irreversible', 500);
             INSERT INTO task_usage VALUES ('T-0', 0, 0, 1, 500);
             CREATE TABLE agent_usage (agent TEXT NOT NULL, day TEXT NOT NULL,
                 read_calls INTEGER NOT NULL, write_calls INTEGER NOT NULL,
                 irreversible_calls INTEGER NOT NULL, money_cents INTEGER NOT NULL,
                 PRIMARY KEY (agent, day)) WITHOUT ROWID;
             INSERT INTO agent_usage VALUES ('bot', '2026-12-01', 0, 0, 1, 500);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = BudgetStore::open(&path).unwrap();
    assert_eq!(store.usage("T-0", "bot", None, DAY).unwrap().task.money_cents, 500);
    store.release("T-0/c1").unwrap();
    assert_eq!(store.usage("T-0", "bot", None, DAY).unwrap().task.money_cents, 0);
}
