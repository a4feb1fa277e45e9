//! Loading and saving: tau2-bench's file loads unchanged and round-trips without loss; bad files
//! are refused with the file and the record named; saves are atomic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use support::{mini_path, state, tau2_path};
use tools::{Database, Desk, LoadError};

fn json_of(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Loads `path`, saves it elsewhere, and checks the saved JSON equals the original.
fn assert_round_trip(path: &std::path::Path) -> Desk {
    let desk = Desk::load(path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.json");
    desk.save(&saved).unwrap();
    assert_eq!(json_of(&saved), json_of(path), "{} changed in a round trip", path.display());
    desk
}

#[test]
fn tau2_benchmark_file_loads_unchanged_and_round_trips() {
    let path = tau2_path();
    if !path.exists() {
        eprintln!(
            "tau2-bench's db.json is not at {} (a fresh clone lacks it): checking the mini \
             fixture only",
            path.display()
        );
        assert_round_trip(&mini_path());
        return;
    }
    let desk = assert_round_trip(&path);
    let db = desk.snapshot();
    assert_eq!((db.products.len(), db.users.len(), db.orders.len()), (50, 500, 1000));
    assert!(db.tickets.is_empty() && db.outbox.is_empty() && db.transfers.is_empty());
    // Keys keep the file's order, which is the order tau2 searches users in.
    let original = json_of(&path);
    let first_user = original["users"].as_object().unwrap().keys().next().unwrap();
    assert_eq!(db.users.keys().next().unwrap(), first_user);
    // Spot checks of typed fields against the raw file.
    let order = &db.orders["#W2611340"];
    assert_eq!(order.user_id, "james_li_5688");
    assert_eq!(order.paid_cents(), 53665);
    assert_eq!(order.status.as_str(), original["orders"]["#W2611340"]["status"]);
}

#[test]
fn mini_fixture_loads_and_round_trips() {
    let desk = assert_round_trip(&mini_path());
    let db = desk.snapshot();
    assert_eq!(
        (db.products.len(), db.users.len(), db.orders.len(), db.tickets.len()),
        (3, 3, 7, 3)
    );
    let statuses: std::collections::HashSet<&str> =
        db.orders.values().map(|order| order.status.as_str()).collect();
    for status in ["pending", "processed", "delivered", "cancelled"] {
        assert!(statuses.contains(status), "the fixture has no {status} order");
    }
}

#[test]
fn unknown_fields_survive_a_round_trip() {
    let mut value = json_of(&mini_path());
    value["schema_version"] = Value::from(3);
    value["orders"]["#W1000001"]["gift_wrap"] = Value::from(true);
    value["users"]["ava_lee_1002"]["payment_methods"]["paypal_2222221"]["verified"] =
        Value::from("yes");
    value["products"]["1000000001"]["variants"]["2000000001"]["weight_grams"] = Value::from(180);
    let db = Database::from_value(value.clone()).unwrap();
    assert_eq!(serde_json::to_value(&db).unwrap(), value);
}

#[test]
fn integer_amounts_stay_integers() {
    let mut value = json_of(&mini_path());
    value["users"]["ava_lee_1002"]["payment_methods"]["gift_card_2222222"]["balance"] =
        Value::from(100);
    let db = Database::from_value(value.clone()).unwrap();
    assert_eq!(serde_json::to_value(&db).unwrap(), value);
}

#[test]
fn bad_json_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{\"products\": {").unwrap();
    let error = Desk::load(&path).unwrap_err();
    assert!(matches!(error, LoadError::Syntax { .. }));
    assert!(error.to_string().contains("broken.json"), "{error}");
}

#[test]
fn a_wrong_shape_is_refused_naming_the_file_and_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shape.json");
    let mut value = json_of(&mini_path());
    value["orders"]["#W1000002"]["status"] = Value::from("lost in space");
    std::fs::write(&path, value.to_string()).unwrap();
    let message = Desk::load(&path).unwrap_err().to_string();
    assert!(message.contains("shape.json") && message.contains("orders.#W1000002"), "{message}");
    assert!(message.contains("lost in space"), "{message}");

    value = json_of(&mini_path());
    value.as_object_mut().unwrap().remove("users");
    std::fs::write(&path, value.to_string()).unwrap();
    let message = Desk::load(&path).unwrap_err().to_string();
    assert!(message.contains("missing the `users` table"), "{message}");

    value = json_of(&mini_path());
    value["users"]["liam_chen_1003"]["user_id"] = Value::from("someone_else");
    std::fs::write(&path, value.to_string()).unwrap();
    let message = Desk::load(&path).unwrap_err().to_string();
    assert!(message.contains("users.liam_chen_1003") && message.contains("someone_else"));
}

#[test]
fn a_missing_file_is_refused_naming_it() {
    let error = Desk::load("/nonexistent/desk.json").unwrap_err();
    assert!(matches!(error, LoadError::Read { .. }));
    assert!(error.to_string().contains("/nonexistent/desk.json"));
}

#[test]
fn tickets_load_from_a_file_beside_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut value = json_of(&mini_path());
    let tickets = value.as_object_mut().unwrap().remove("tickets").unwrap();
    let (db_path, tickets_path) = (dir.path().join("db.json"), dir.path().join("tickets.json"));
    std::fs::write(&db_path, value.to_string()).unwrap();
    std::fs::write(&tickets_path, tickets.to_string()).unwrap();

    assert!(Desk::load(&db_path).unwrap().snapshot().tickets.is_empty());
    let desk = Desk::load_with_tickets(&db_path, &tickets_path).unwrap();
    assert_eq!(desk.ticket("T-1002").unwrap().user_id, "ava_lee_1002");

    std::fs::write(&tickets_path, "[1, 2]").unwrap();
    let message = Desk::load_with_tickets(&db_path, &tickets_path).unwrap_err().to_string();
    assert!(message.contains("tickets.json"), "{message}");
}

#[test]
fn save_replaces_the_file_atomically_and_leaves_no_temporary_file() {
    let desk = support::mini_desk();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("desk.json");
    std::fs::write(&path, "old contents").unwrap();
    desk.save(&path).unwrap();
    assert_eq!(Desk::load(&path).unwrap().snapshot(), desk.snapshot());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["desk.json".to_owned()]);
}

#[test]
fn a_failed_save_leaves_the_old_file() {
    let desk = support::mini_desk();
    let dir = tempfile::tempdir().unwrap();
    // The destination is a directory: the rename fails after the temporary file was written.
    let path = dir.path().join("taken");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("inside"), "keep").unwrap();
    let error = desk.save(&path).unwrap_err();
    assert!(error.to_string().contains("taken"), "{error}");
    assert_eq!(std::fs::read_to_string(path.join("inside")).unwrap(), "keep");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a temporary file was left");
}

#[test]
fn the_demo_desk_is_built_in() {
    let desk = Desk::demo().unwrap();
    let db = desk.snapshot();
    assert_eq!(db.products.len(), 50);
    assert!(db.users.len() >= 100 && db.orders.len() >= 200 && !db.tickets.is_empty());
    assert_eq!(state(&desk), state(&Desk::new(db)));
}
