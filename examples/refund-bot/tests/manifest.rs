//! The manifest is validated strictly, and every error names the file and the line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use refund_bot::manifest::{Manifest, ManifestError, ToolSource, default_path};
use refund_bot::runtime::offered_tools;

/// The shipped manifest with `edit` applied, written to a temp dir and loaded.
fn load_edited(edit: impl Fn(&str) -> String) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(default_path()).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit must change the manifest");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, edited).unwrap();
    Manifest::load(&path, &offered_tools())
}

/// The 1-based line of the first line of the shipped manifest containing `needle`.
fn line_containing(needle: &str) -> usize {
    let text = std::fs::read_to_string(default_path()).unwrap();
    text.lines().position(|line| line.contains(needle)).unwrap() + 1
}

fn error_line(error: &ManifestError) -> usize {
    match error {
        ManifestError::Invalid { line, .. } => *line,
        other => panic!("expected an invalid-manifest error, got {other}"),
    }
}

#[test]
fn the_shipped_manifest_loads_with_a_narrow_menu() {
    let manifest = Manifest::load(default_path(), &offered_tools()).unwrap();
    assert_eq!(manifest.agent.id, "refund-bot");
    assert_eq!(manifest.tools.source, ToolSource::InProcess);
    for must in ["issue_refund", "return_delivered_order_items", "cancel_pending_order"] {
        assert!(manifest.tools.menu.iter().any(|tool| tool == must), "{must} is on the menu");
    }
    for never in ["send_email", "delete_customer_account"] {
        assert!(!manifest.tools.menu.iter().any(|tool| tool == never), "{never} is off the menu");
    }
    assert_eq!(manifest.budget.per_task.money_cents, Some(100_000));
    assert!(manifest.policy.ends_with("policy/policy.toml"));
}

#[test]
fn an_unknown_key_is_an_error_naming_its_line() {
    // A misspelt `menu` must never silently mean "no menu".
    let error = load_edited(|text| text.replacen("menu = [", "menus = [", 1)).unwrap_err();
    assert_eq!(error_line(&error), line_containing("menu = ["));
    let message = error.to_string();
    assert!(message.contains("agent.toml") && message.contains("menus"), "{message}");
}

#[test]
fn a_menu_entry_with_no_tool_behind_it_is_an_error_naming_its_line() {
    let error = load_edited(|text| {
        text.replacen("  \"calculate\",", "  \"calculate\",\n  \"wire_money\",", 1)
    })
    .unwrap_err();
    assert_eq!(error_line(&error), line_containing("\"calculate\",") + 1);
    assert!(error.to_string().contains("`wire_money`"), "{error}");
}

#[test]
fn a_tool_twice_on_the_menu_is_an_error() {
    let error = load_edited(|text| {
        text.replacen("  \"calculate\",", "  \"calculate\",\n  \"calculate\",", 1)
    })
    .unwrap_err();
    assert!(error.to_string().contains("twice"), "{error}");
}

#[test]
fn a_scope_no_tool_on_the_menu_needs_is_an_error() {
    // Least privilege: `email:send` with no e-mail tool on the menu is a scope an attacker could use.
    let error = load_edited(|text| {
        text.replacen("  \"refunds:write\",", "  \"refunds:write\",\n  \"email:send\",", 1)
    })
    .unwrap_err();
    assert_eq!(error_line(&error), line_containing("\"refunds:write\",") + 1);
    assert!(error.to_string().contains("email:send"), "{error}");
}

#[test]
fn bad_values_are_errors_naming_their_lines() {
    let error = load_edited(|text| {
        text.replacen("token_lifetime_seconds = 300", "token_lifetime_seconds = 86400", 1)
    })
    .unwrap_err();
    assert_eq!(error_line(&error), line_containing("token_lifetime_seconds"));

    let error =
        load_edited(|text| text.replacen("money = 1000.00", "money = -5.0", 1)).unwrap_err();
    assert_eq!(error_line(&error), line_containing("money = 1000.00"));

    let error = load_edited(|text| text.replacen("source = \"in-process\"", "source = \"ftp\"", 1))
        .unwrap_err();
    assert_eq!(error_line(&error), line_containing("source = \"in-process\""));
}

#[test]
fn a_syntax_error_names_its_line_and_a_missing_file_says_so() {
    let error = load_edited(|text| text.replacen("[policy]", "[policy", 1)).unwrap_err();
    assert_eq!(error_line(&error), line_containing("[policy]"));
    let missing = Manifest::load("/nonexistent/agent.toml", &offered_tools()).unwrap_err();
    assert!(missing.to_string().contains("cannot read the manifest"), "{missing}");
}
