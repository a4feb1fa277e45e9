//! The runtime cross-checks its parts before it runs anything: a policy that files a menu tool
//! under another effect than the tool declares stops the start, naming the schema's line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use refund_bot::manifest::{Manifest, default_path};
use refund_bot::runtime::{Runtime, Settings, offered_tools};

/// The shipped manifest, its audit and ledger in `dir`, its policy bundle copied into `dir`
/// with the schema edited by `edit`.
fn manifest_with_schema(dir: &std::path::Path, edit: impl FnOnce(String) -> String) -> Manifest {
    let mut manifest = Manifest::load(default_path(), &offered_tools()).unwrap();
    let shipped = manifest.policy.parent().unwrap().to_owned();
    for name in ["policy.toml", "refund.cedar", "fixtures.json"] {
        std::fs::copy(shipped.join(name), dir.join(name)).unwrap();
    }
    let schema = std::fs::read_to_string(shipped.join("refund.cedarschema")).unwrap();
    std::fs::write(dir.join("refund.cedarschema"), edit(schema)).unwrap();
    manifest.policy = dir.join("policy.toml");
    manifest.audit.dir = dir.to_owned();
    manifest.audit.witness_dir = dir.join("witness");
    manifest.ledger = dir.join("ledger.sqlite");
    manifest
}

#[tokio::test]
async fn a_write_tool_filed_under_read_in_the_policy_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with_schema(dir.path(), |schema| {
        schema.replace("action reply_to_customer in [write]", "action reply_to_customer in [read]")
    });
    let settings =
        Settings { audit_log: Some(dir.path().join("audit.jsonl")), ..Settings::default() };
    let error = match Runtime::start(manifest, settings, &[]).await {
        Ok(_) => panic!("the runtime started with a write tool filed under read"),
        Err(error) => error,
    };
    assert!(error.contains("refund.cedarschema` line"), "{error}");
    assert!(error.contains("`reply_to_customer` is declared `write` by its tool"), "{error}");

    // Positive control: the same start with the schema as shipped runs.
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with_schema(dir.path(), |schema| schema);
    let settings =
        Settings { audit_log: Some(dir.path().join("audit.jsonl")), ..Settings::default() };
    assert!(Runtime::start(manifest, settings, &[]).await.is_ok());
}
