//! Minting and verifying Warden tokens: task tokens and per-call tokens.
//!
//! Run: `cargo bench -p guards --bench credentials` (medians in docs/performance.md).

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use agent_core::{AgentId, Scope, TaskId, canonical};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use guards::credentials::{Issuer, KeyRing, TaskGrant};
use serde_json::json;
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let keys = KeyRing::open(dir.path().join("keys"), now).unwrap_or_else(|e| unreachable!("{e}"));
    let issuer = Issuer::new("warden", keys).unwrap_or_else(|e| unreachable!("{e}"));
    let verifier = issuer.verifier().unwrap_or_else(|e| unreachable!("{e}"));
    let scope = |s: &str| Scope::new(s).unwrap_or_else(|e| unreachable!("{e}"));
    let grant = TaskGrant {
        agent: AgentId::new("refund-bot"),
        task: TaskId::new("T-1001"),
        audience: vec!["support-desk".into()],
        scopes: vec![scope("orders:read"), scope("refunds:write")],
        on_behalf_of: Some("noah_brown_6181".into()),
        lifetime: None,
    };
    let task_token = issuer.mint_task(&grant).unwrap_or_else(|e| unreachable!("{e}"));
    let args = json!({"order_id": "#W1001", "amount": 20, "reason": "chipped mug"});
    let digest = canonical::digest(&args);
    let refunds = scope("refunds:write");

    c.bench_function("credentials/mint_task_token", |b| {
        b.iter(|| black_box(issuer.mint_task(&grant)));
    });
    c.bench_function("credentials/verify_task_token", |b| {
        b.iter(|| black_box(verifier.verify(task_token.expose(), "support-desk")));
    });
    c.bench_function("credentials/mint_call_token", |b| {
        b.iter(|| {
            black_box(issuer.mint_call(
                &task_token,
                "support-desk",
                "issue_refund",
                &refunds,
                &digest,
            ))
        });
    });
    c.bench_function("credentials/verify_call_token", |b| {
        b.iter_batched(
            || {
                issuer
                    .mint_call(&task_token, "support-desk", "issue_refund", &refunds, &digest)
                    .unwrap_or_else(|e| unreachable!("{e}"))
            },
            |token| {
                black_box(verifier.verify_call(
                    token.expose(),
                    "support-desk",
                    "issue_refund",
                    &args,
                ))
            },
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(credential_benches, benches);
criterion_main!(credential_benches);
