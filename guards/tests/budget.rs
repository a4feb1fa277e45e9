//! Budget store: caps hold under concurrency (threads, two handles, separate processes), survive a
//! restart, and count every call exactly once.

// (clippy's allow-*-in-tests settings cover only `#[test]` functions, not their helpers.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Clarity over the lint: 200_00 reads as $200.00.
#![allow(clippy::inconsistent_digit_grouping, reason = "amounts are written dollars_cents")]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use guards::budget::{
    BudgetError, BudgetStore, Caps, Class, Counters, Limits, Spend, Usage, Verdict,
};

const DAY: &str = "2026-11-25";
const NEXT_DAY: &str = "2026-11-26";

fn refund<'a>(call_key: &'a str, customer: Option<&'a str>, money_cents: i64) -> Spend<'a> {
    Spend {
        call_key,
        task: "task-1",
        serves: &[],
        agent: "refund-bot",
        delegators: &[],
        customer,
        day: DAY,
        class: Class::Irreversible,
        money_cents,
    }
}

fn customer_money_cap(cents: i64) -> Limits {
    Limits {
        per_customer_per_day: Caps { money_cents: Some(cents), ..Caps::default() },
        ..Limits::default()
    }
}

fn spend_always(
    store: &BudgetStore,
    spend: &Spend<'_>,
    limits: &Limits,
) -> Result<(), BudgetError> {
    store.transact(spend, limits, |_| Verdict::Spend(()))
}

fn usage_of(store: &BudgetStore, customer: Option<&str>, day: &str) -> Usage {
    store.usage("task-1", "refund-bot", customer, day).unwrap()
}

/// Asserts, straight from the file, that every counter row equals the sum of the unreleased ledger
/// rows of its scope: the O(1) counters never drift from the ledger.
fn assert_counters_match_ledger(path: &Path) {
    let connection = rusqlite::Connection::open(path).unwrap();
    for (table, group, first) in [
        ("task_usage", "task", "task"),
        ("agent_usage", "agent, day", "agent"),
        ("customer_usage", "customer, day", "customer"),
    ] {
        let mismatches: i64 = connection
            .query_row(
                &format!(
                    "WITH ledger AS (
                         SELECT {group},
                             SUM(class = 'read') AS r, SUM(class = 'write') AS w,
                             SUM(class = 'irreversible') AS i, SUM(money_cents) AS m
                         FROM spends WHERE released = 0 AND {first} IS NOT NULL GROUP BY {group})
                     SELECT COUNT(*) FROM {table} c FULL JOIN ledger l USING ({group})
                     WHERE COALESCE(c.read_calls, 0) != COALESCE(l.r, 0)
                        OR COALESCE(c.write_calls, 0) != COALESCE(l.w, 0)
                        OR COALESCE(c.irreversible_calls, 0) != COALESCE(l.i, 0)
                        OR COALESCE(c.money_cents, 0) != COALESCE(l.m, 0)"
                ),
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(mismatches, 0, "{table} disagrees with the ledger");
    }
}

/// `threads` threads start together, each trying to spend `cents` with its own call key, on the
/// stores given round-robin. Returns the number that won and the errors of those that lost.
fn race(
    stores: &[Arc<BudgetStore>],
    threads: usize,
    cents: i64,
    limits: Limits,
) -> (usize, Vec<BudgetError>) {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let key = format!("task-1/race-{i}");
                barrier.wait();
                spend_always(&store, &refund(&key, Some("cus_1"), cents), &limits)
            })
        })
        .collect();
    let mut wins = 0;
    let mut losses = Vec::new();
    for handle in handles {
        match handle.join().unwrap() {
            Ok(()) => wins += 1,
            Err(error) => losses.push(error),
        }
    }
    (wins, losses)
}

fn assert_all_exceeded(losses: &[BudgetError], scope: &str, counter: &str) {
    for loss in losses {
        assert!(
            matches!(loss, BudgetError::Exceeded { scope: s, counter: c, .. } if *s == scope && *c == counter),
            "unexpected error: {loss}"
        );
    }
}

#[test]
fn the_store_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BudgetStore>();
}

#[test]
fn sixteen_threads_racing_for_200_dollars_in_30_dollar_refunds_win_exactly_six() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.db");
    let store = Arc::new(BudgetStore::open(&path).unwrap());
    let (wins, losses) = race(std::slice::from_ref(&store), 16, 30_00, customer_money_cap(200_00));
    assert_eq!(wins, 6);
    assert_eq!(losses.len(), 10);
    assert_all_exceeded(&losses, "customer_today", "money_cents");
    assert!(
        losses
            .iter()
            .all(|e| matches!(e, BudgetError::Exceeded { cap: 200_00, would_be: 210_00, .. }))
    );
    let usage = usage_of(&store, Some("cus_1"), DAY);
    assert_eq!(usage.customer_today.money_cents, 180_00);
    assert_eq!(usage.customer_today.irreversible_calls, 6);
    assert_counters_match_ledger(&path);
}

#[test]
fn threads_racing_for_the_last_three_irreversible_calls_win_exactly_three() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.db");
    let store = Arc::new(BudgetStore::open(&path).unwrap());
    let limits = Limits {
        per_agent_per_day: Caps { irreversible_calls: Some(10), ..Caps::default() },
        ..Limits::default()
    };
    for i in 0..7 {
        let key = format!("warm-up-{i}");
        spend_always(&store, &refund(&key, None, 0), &limits).unwrap();
    }
    let (wins, losses) = race(std::slice::from_ref(&store), 16, 0, limits);
    assert_eq!(wins, 3);
    assert_all_exceeded(&losses, "agent_today", "irreversible_calls");
    assert_eq!(usage_of(&store, None, DAY).agent_today.irreversible_calls, 10);
}

#[test]
fn two_stores_on_one_file_still_let_exactly_six_win() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.db");
    let first = Arc::new(BudgetStore::open(&path).unwrap());
    let second = Arc::new(BudgetStore::open(&path).unwrap());
    let (wins, losses) =
        race(&[first.clone(), second.clone()], 16, 30_00, customer_money_cap(200_00));
    assert_eq!(wins, 6);
    assert_all_exceeded(&losses, "customer_today", "money_cents");
    assert_eq!(usage_of(&first, Some("cus_1"), DAY).customer_today.money_cents, 180_00);
    assert_eq!(usage_of(&second, Some("cus_1"), DAY).customer_today.money_cents, 180_00);
    assert_counters_match_ledger(&path);
}

const CHILD_DB: &str = "BUDGET_TEST_CHILD_DB";
const CHILD_ID: &str = "BUDGET_TEST_CHILD_ID";

/// Runs only inside `separate_processes_racing_for_the_same_dollars_win_exactly_six`, which starts
/// this test binary several times with the environment below.
#[test]
#[ignore = "a child process of separate_processes_racing_for_the_same_dollars_win_exactly_six"]
fn child_process_spends() {
    let path = PathBuf::from(std::env::var(CHILD_DB).unwrap());
    let id = std::env::var(CHILD_ID).unwrap();
    let go = path.with_extension("go");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !go.exists() {
        assert!(Instant::now() < deadline, "the parent never said go");
        std::thread::sleep(Duration::from_millis(1));
    }
    let store = BudgetStore::open(&path).unwrap();
    let limits = customer_money_cap(200_00);
    let mut wins = 0;
    for call in 0..4 {
        let key = format!("task-1/process-{id}-call-{call}");
        match spend_always(&store, &refund(&key, Some("cus_1"), 30_00), &limits) {
            Ok(()) => wins += 1,
            Err(BudgetError::Exceeded { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    println!("WINS={wins}");
}

#[test]
fn separate_processes_racing_for_the_same_dollars_win_exactly_six() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.db");
    drop(BudgetStore::open(&path).unwrap());
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|id| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_process_spends", "--ignored", "--nocapture"])
                .env(CHILD_DB, &path)
                .env(CHILD_ID, id.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(path.with_extension("go"), "").unwrap();
    let mut wins = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "child failed: {stdout}");
        let line = stdout.lines().find_map(|line| line.strip_prefix("WINS=")).unwrap();
        wins += line.trim().parse::<usize>().unwrap();
    }
    assert_eq!(wins, 6, "16 attempts at $30 against $200 across 4 processes");
    let store = BudgetStore::open(&path).unwrap();
    assert_eq!(usage_of(&store, Some("cus_1"), DAY).customer_today.money_cents, 180_00);
    assert_counters_match_ledger(&path);
}

/// Runs only inside `a_spend_survives_the_process_aborting_right_after_commit`.
#[test]
#[ignore = "a child process of a_spend_survives_the_process_aborting_right_after_commit"]
fn child_process_spends_then_aborts() {
    let path = PathBuf::from(std::env::var(CHILD_DB).unwrap());
    let store = BudgetStore::open(&path).unwrap();
    spend_always(&store, &refund("k1", Some("cus_1"), 42_00), &Limits::default()).unwrap();
    // No destructor runs: no checkpoint, no clean close. Only what the commit wrote is left.
    std::process::abort();
}

#[test]
fn a_spend_survives_the_process_aborting_right_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.db");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_spends_then_aborts", "--ignored"])
        .env(CHILD_DB, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to abort");
    let store = BudgetStore::open(&path).unwrap();
    assert_eq!(usage_of(&store, Some("cus_1"), DAY).customer_today.money_cents, 42_00);
    assert_counters_match_ledger(&path);
}

#[test]
fn concurrent_spends_retries_and_releases_keep_counters_equal_to_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.db");
    let stores =
        [Arc::new(BudgetStore::open(&path).unwrap()), Arc::new(BudgetStore::open(&path).unwrap())];
    let limits = Limits {
        per_task: Caps { write_calls: Some(40), ..Caps::default() },
        per_customer_per_day: Caps { money_cents: Some(500_00), ..Caps::default() },
        ..Limits::default()
    };
    let handles: Vec<_> = (0..8)
        .map(|thread| {
            let store = Arc::clone(&stores[thread % 2]);
            std::thread::spawn(move || {
                for op in 0..40 {
                    // Keys shared between threads, so retries and releases collide.
                    let key = format!("k{}", (thread * 7 + op) % 25);
                    let class = [Class::Read, Class::Write, Class::Irreversible][op % 3];
                    let day = [DAY, NEXT_DAY][op % 2];
                    let spend = Spend { class, day, ..refund(&key, Some("cus_1"), 25_00) };
                    match op % 4 {
                        3 => store.release(&key).unwrap(),
                        _ => match spend_always(&store, &spend, &limits) {
                            Ok(())
                            | Err(BudgetError::Exceeded { .. })
                            | Err(BudgetError::CallKeyReused { .. }) => {}
                            Err(other) => panic!("unexpected error: {other}"),
                        },
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_counters_match_ledger(&path);
    let usage = usage_of(&stores[0], Some("cus_1"), DAY);
    assert!(usage.task.write_calls <= 40);
    assert!(usage.customer_today.money_cents <= 500_00);
}

#[test]
fn usage_survives_dropping_and_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.db");
    let store = BudgetStore::open(&path).unwrap();
    spend_always(&store, &refund("k1", Some("cus_1"), 12_34), &Limits::default()).unwrap();
    drop(store);

    let store = BudgetStore::open(&path).unwrap();
    let usage = usage_of(&store, Some("cus_1"), DAY);
    assert_eq!(usage.task.money_cents, 12_34);
    assert_eq!(usage.customer_today.irreversible_calls, 1);
    // The ledger survived too: a retry still counts once, and the spend can still be released.
    spend_always(&store, &refund("k1", Some("cus_1"), 12_34), &Limits::default()).unwrap();
    assert_eq!(usage_of(&store, Some("cus_1"), DAY).task.money_cents, 12_34);
    store.release("k1").unwrap();
    drop(store);
    let store = BudgetStore::open(&path).unwrap();
    assert_eq!(usage_of(&store, Some("cus_1"), DAY), Usage::default());
}

#[test]
fn release_gives_the_spend_back_once_and_ignores_unknown_keys() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = customer_money_cap(100_00);
    spend_always(&store, &refund("k1", Some("cus_1"), 60_00), &limits).unwrap();
    spend_always(&store, &refund("k2", Some("cus_1"), 40_00), &limits).unwrap();
    assert!(matches!(
        spend_always(&store, &refund("k3", Some("cus_1"), 1), &limits),
        Err(BudgetError::Exceeded { would_be: 100_01, .. })
    ));

    store.release("k1").unwrap();
    store.release("k1").unwrap();
    store.release("never-recorded").unwrap();
    let usage = usage_of(&store, Some("cus_1"), DAY);
    assert_eq!(usage.customer_today.money_cents, 40_00, "a double release gives back once");
    assert_eq!(usage.task.irreversible_calls, 1);

    // The released money can be spent again, and only it.
    spend_always(&store, &refund("k3", Some("cus_1"), 60_00), &limits).unwrap();
    assert!(spend_always(&store, &refund("k4", Some("cus_1"), 1), &limits).is_err());
}

#[test]
fn spending_the_same_call_key_twice_counts_once() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = customer_money_cap(50_00);
    spend_always(&store, &refund("k1", Some("cus_1"), 50_00), &limits).unwrap();
    // A retry with the cap already reached still succeeds: it is the same spend.
    let retry = store.transact(&refund("k1", Some("cus_1"), 50_00), &limits, |usage| {
        assert_eq!(usage.customer_today.money_cents, 50_00, "the retry sees its first recording");
        Verdict::Spend("retried")
    });
    assert_eq!(retry.unwrap(), "retried");
    // Even across midnight: it stays on its first day.
    let late = Spend { day: NEXT_DAY, ..refund("k1", Some("cus_1"), 50_00) };
    spend_always(&store, &late, &limits).unwrap();
    assert_eq!(usage_of(&store, Some("cus_1"), DAY).customer_today.money_cents, 50_00);
    assert_eq!(usage_of(&store, Some("cus_1"), NEXT_DAY).customer_today, Counters::default());
    assert_eq!(usage_of(&store, Some("cus_1"), DAY).task.irreversible_calls, 1);
}

#[test]
fn a_released_key_spent_again_counts_again() {
    let store = BudgetStore::in_memory().unwrap();
    spend_always(&store, &refund("k1", None, 10_00), &Limits::default()).unwrap();
    store.release("k1").unwrap();
    spend_always(&store, &refund("k1", None, 7_00), &Limits::default()).unwrap();
    assert_eq!(usage_of(&store, None, DAY).task.money_cents, 7_00);
    assert_eq!(usage_of(&store, None, DAY).task.irreversible_calls, 1);
}

#[test]
fn a_call_key_reused_for_a_different_spend_is_refused_and_records_nothing() {
    let store = BudgetStore::in_memory().unwrap();
    spend_always(&store, &refund("k1", Some("cus_1"), 1_00), &Limits::default()).unwrap();
    // Riding a small recorded refund to move a large one must not work.
    let bigger = refund("k1", Some("cus_1"), 1_000_00);
    let error = spend_always(&store, &bigger, &Limits::default()).unwrap_err();
    assert!(matches!(&error, BudgetError::CallKeyReused { call_key } if call_key == "k1"));
    assert_eq!(error.to_string(), "call key `k1` is already recorded for a different spend");
    let other_customer = refund("k1", Some("cus_2"), 1_00);
    assert!(spend_always(&store, &other_customer, &Limits::default()).is_err());
    let other_class = Spend { class: Class::Read, ..refund("k1", Some("cus_1"), 1_00) };
    assert!(spend_always(&store, &other_class, &Limits::default()).is_err());
    assert_eq!(usage_of(&store, Some("cus_1"), DAY).task.money_cents, 1_00);
    assert_eq!(usage_of(&store, Some("cus_2"), DAY).customer_today, Counters::default());
}

#[test]
fn customer_and_agent_counters_start_again_each_day_but_task_counters_do_not() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = Limits {
        per_task: Caps { money_cents: Some(100_00), ..Caps::default() },
        per_agent_per_day: Caps { irreversible_calls: Some(1), ..Caps::default() },
        per_customer_per_day: Caps { money_cents: Some(40_00), ..Caps::default() },
    };
    spend_always(&store, &refund("k1", Some("cus_1"), 40_00), &limits).unwrap();
    assert!(spend_always(&store, &refund("k2", Some("cus_1"), 40_00), &limits).is_err());

    let tomorrow = Spend { day: NEXT_DAY, ..refund("k2", Some("cus_1"), 40_00) };
    spend_always(&store, &tomorrow, &limits).unwrap();
    let usage = usage_of(&store, Some("cus_1"), NEXT_DAY);
    assert_eq!(usage.task.money_cents, 80_00, "the task keeps counting across days");
    assert_eq!(usage.agent_today.irreversible_calls, 1);
    assert_eq!(usage.customer_today.money_cents, 40_00);
    assert_eq!(usage_of(&store, Some("cus_1"), DAY).customer_today.money_cents, 40_00);

    // Day three: the agent and customer are fresh, but the task cap still binds.
    let day_three = Spend { day: "2026-11-27", ..refund("k3", Some("cus_1"), 40_00) };
    let error = spend_always(&store, &day_three, &limits).unwrap_err();
    assert!(matches!(
        error,
        BudgetError::Exceeded {
            scope: "task",
            counter: "money_cents",
            cap: 100_00,
            would_be: 120_00
        }
    ));
}

#[test]
fn no_spend_records_nothing_and_decide_sees_the_usage_before_the_spend() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = Limits::default();
    let seen = store
        .transact(&refund("k1", Some("cus_1"), 5_00), &limits, |usage| Verdict::Spend(*usage))
        .unwrap();
    assert_eq!(seen, Usage::default());
    let seen = store
        .transact(&refund("k2", Some("cus_1"), 7_00), &limits, |usage| Verdict::NoSpend(*usage))
        .unwrap();
    assert_eq!(seen.customer_today.money_cents, 5_00);
    assert_eq!(seen.task.irreversible_calls, 1);
    assert_eq!(usage_of(&store, Some("cus_1"), DAY), seen, "NoSpend recorded nothing");
    // And NoSpend really left no ledger entry: k2 is free for a different spend.
    spend_always(&store, &refund("k2", Some("cus_1"), 1_00), &limits).unwrap();
    assert_eq!(usage_of(&store, Some("cus_1"), DAY).task.money_cents, 6_00);
}

#[test]
fn caps_are_inclusive_and_only_counters_the_spend_raises_are_checked() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = Limits {
        per_task: Caps { irreversible_calls: Some(3), money_cents: Some(0), ..Caps::default() },
        per_agent_per_day: Caps { read_calls: Some(0), ..Caps::default() },
        ..Limits::default()
    };
    for key in ["k1", "k2", "k3"] {
        spend_always(&store, &refund(key, None, 0), &limits).unwrap();
    }
    let error = spend_always(&store, &refund("k4", None, 0), &limits).unwrap_err();
    assert!(matches!(
        error,
        BudgetError::Exceeded { scope: "task", counter: "irreversible_calls", cap: 3, would_be: 4 }
    ));
    assert_eq!(
        error.to_string(),
        "budget exceeded: task irreversible_calls would reach 4, cap is 3"
    );
    // A write is not refused by the irreversible cap, nor by the money cap it does not raise.
    let write = Spend { class: Class::Write, ..refund("w1", None, 0) };
    spend_always(&store, &write, &limits).unwrap();
    // A cap of zero refuses the first spend that raises its counter.
    let read = Spend { class: Class::Read, ..refund("r1", None, 0) };
    assert!(matches!(
        spend_always(&store, &read, &limits),
        Err(BudgetError::Exceeded {
            scope: "agent_today",
            counter: "read_calls",
            cap: 0,
            would_be: 1
        })
    ));
    let paid = Spend { class: Class::Write, ..refund("w2", None, 1) };
    assert!(matches!(
        spend_always(&store, &paid, &limits),
        Err(BudgetError::Exceeded { counter: "money_cents", .. })
    ));
}

#[test]
fn customer_caps_do_not_apply_to_spends_without_a_customer() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = customer_money_cap(0);
    spend_always(&store, &refund("k1", None, 99_00), &limits).unwrap();
    assert!(spend_always(&store, &refund("k2", Some("cus_1"), 1), &limits).is_err());
    assert_eq!(usage_of(&store, Some("cus_1"), DAY).customer_today, Counters::default());
}

#[test]
fn an_exceeded_spend_records_nothing() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = customer_money_cap(10_00);
    let mut decided = false;
    let result = store.transact(&refund("k1", Some("cus_1"), 11_00), &limits, |_| {
        decided = true;
        Verdict::Spend(())
    });
    assert!(decided, "the caps are checked after the decision, on a Spend verdict");
    assert!(result.is_err());
    assert_eq!(usage_of(&store, Some("cus_1"), DAY), Usage::default());
    // Nothing in the ledger either: the key is free for a smaller spend.
    spend_always(&store, &refund("k1", Some("cus_1"), 10_00), &limits).unwrap();
}

#[test]
fn malformed_spends_are_refused_and_record_nothing() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = Limits::default();
    let cases = [
        Spend { money_cents: -5_00, ..refund("k1", Some("cus_1"), 0) },
        refund("", Some("cus_1"), 1),
        Spend { day: "2026-11-5", ..refund("k1", Some("cus_1"), 1) },
        Spend { day: "25/11/2026", ..refund("k1", Some("cus_1"), 1) },
        Spend { day: "", ..refund("k1", Some("cus_1"), 1) },
    ];
    for spend in cases {
        let result = store.transact(&spend, &limits, |_| -> Verdict<()> {
            panic!("decide must not run for a malformed spend")
        });
        assert!(matches!(result, Err(BudgetError::Invalid(_))), "{spend:?}");
    }
    assert_eq!(usage_of(&store, Some("cus_1"), DAY), Usage::default());
    assert!(matches!(store.usage("task-1", "a", None, "2026-1-01"), Err(BudgetError::Invalid(_))));
}

#[test]
fn a_counter_that_would_overflow_is_refused_even_without_a_cap() {
    let store = BudgetStore::in_memory().unwrap();
    spend_always(&store, &refund("k1", None, i64::MAX), &Limits::default()).unwrap();
    let error = spend_always(&store, &refund("k2", None, 1), &Limits::default()).unwrap_err();
    assert!(matches!(
        error,
        BudgetError::Exceeded { counter: "money_cents", cap: i64::MAX, would_be: i64::MAX, .. }
    ));
    let huge_cap = Limits {
        per_task: Caps { read_calls: Some(u64::MAX), ..Caps::default() },
        ..Limits::default()
    };
    let read = Spend { class: Class::Read, ..refund("k3", None, 0) };
    spend_always(&store, &read, &huge_cap).unwrap();
}

#[test]
fn a_panic_in_decide_rolls_back_and_leaves_the_store_usable() {
    let store = BudgetStore::in_memory().unwrap();
    let limits = Limits::default();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.transact(&refund("k1", None, 5), &limits, |_| -> Verdict<()> { panic!("boom") })
    }));
    assert!(result.is_err());
    assert_eq!(usage_of(&store, None, DAY), Usage::default());
    spend_always(&store, &refund("k1", None, 5), &limits).unwrap();
    assert_eq!(usage_of(&store, None, DAY).task.money_cents, 5);
}

fn store_error(result: Result<BudgetStore, BudgetError>) -> String {
    match result {
        Err(BudgetError::Store(message)) => message,
        Err(other) => panic!("expected a store error, got {other}"),
        Ok(_) => panic!("expected a store error, the store opened"),
    }
}

#[test]
fn a_directory_a_missing_folder_or_a_garbage_file_is_a_clear_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let message = store_error(BudgetStore::open(dir.path()));
    assert!(message.contains(&dir.path().display().to_string()), "{message}");
    assert!(message.contains("cannot open"), "{message}");

    let missing = dir.path().join("no-such-folder").join("budget.db");
    let message = store_error(BudgetStore::open(&missing));
    assert!(message.contains("no-such-folder"), "{message}");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a_u8; 8192]).unwrap();
    let message = store_error(BudgetStore::open(&garbage));
    assert!(message.contains("garbage.db"), "{message}");
    assert!(message.contains("not a database"), "{message}");
}

#[test]
fn a_store_written_by_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.db");
    drop(BudgetStore::open(&path).unwrap());
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let message = store_error(BudgetStore::open(&path));
    assert!(message.contains("schema version 99"), "{message}");
}

#[test]
fn a_write_lock_held_past_the_busy_timeout_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.db");
    let store = BudgetStore::open_with_busy_timeout(&path, Duration::from_millis(100)).unwrap();
    // Another process holds the write lock and does not let go.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let start = Instant::now();
    let error = spend_always(&store, &refund("k1", None, 1), &Limits::default()).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(100), "it waited for the lock first");
    let BudgetError::Store(message) = &error else { panic!("expected a store error, got {error}") };
    assert!(message.contains("budget.db") && message.contains("locked"), "{message}");
    assert!(store.release("k1").is_err());
    // Reads are not blocked in WAL mode.
    assert_eq!(usage_of(&store, None, DAY), Usage::default());
    blocker.execute_batch("ROLLBACK").unwrap();
    spend_always(&store, &refund("k1", None, 1), &Limits::default()).unwrap();
}

#[test]
fn median_transact_time_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = BudgetStore::open(&dir.path().join("budget.db")).unwrap();
    let limits = Limits {
        per_task: Caps { irreversible_calls: Some(10_000), ..Caps::default() },
        per_agent_per_day: Caps { money_cents: Some(i64::MAX), ..Caps::default() },
        per_customer_per_day: Caps { money_cents: Some(i64::MAX), ..Caps::default() },
    };
    let mut times = Vec::with_capacity(1000);
    for i in 0..1000 {
        let key = format!("task-1/call-{i}");
        let customer = format!("cus_{}", i % 50);
        let spend = refund(&key, Some(&customer), 1_00);
        let start = Instant::now();
        store
            .transact(&spend, &limits, |usage| {
                Verdict::Spend(usage.customer_today.money_cents < 1_000_00)
            })
            .unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "transact on a file (1000 spends): median {:?}, p99 {:?}, max {:?}",
        times[500], times[990], times[999]
    );
    assert_eq!(usage_of(&store, None, DAY).task.irreversible_calls, 1000);
}
