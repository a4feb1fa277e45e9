//! The cost of the path of one call: `authorize` + `invoke` of a no-op tool with the menu check,
//! the schema check, three allow-all guards and the JSONL audit sink (5 buffered events and 2
//! durable ones per call: menu, schema, 3 guards, intent, outcome).
//!
//! Run: `cargo bench -p agent-core --bench pipeline`; medians are in
//! `target/criterion/authorize_invoke/*/new/estimates.json` (see docs/performance.md).
//!
//! - `fsync_per_call`: one task, each call waits for its own fsyncs (intent and outcome).
//! - `group_commit_32_tasks`: 32 concurrent tasks; the figure is wall time divided by calls, so it
//!   shows what group commit buys in throughput.
//! - `no_fsync`: events reach the page cache only.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use agent_core::audit::{AuditLog, Fsync, JsonlSink};
use agent_core::danger::DangerousAllowAll;
use agent_core::pipeline::CallRequest;
use agent_core::tool::{Invocation, ToolError, ToolOutput};
use agent_core::{CallContext, Pipeline, Scope, Tool, ToolMenu, ToolName, ToolSpec};
use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Noop(ToolSpec);

#[async_trait]
impl Tool for Noop {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    async fn call(&self, _input: Value, _invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        Ok(ToolOutput::text("ok"))
    }
}

fn pipeline(dir: &Path, name: &str, fsync: Fsync) -> Arc<Pipeline> {
    let spec = ToolSpec::new(
        ToolName::new("lookup_order").unwrap_or_else(|_| unreachable!()),
        "Looks up an order",
        json!({"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^#W[0-9]+$"}},
               "required": ["order_id"], "additionalProperties": false}),
        Scope::new("orders:read").unwrap_or_else(|_| unreachable!()),
    );
    let menu =
        ToolMenu::new([Arc::new(Noop(spec)) as Arc<dyn Tool>]).unwrap_or_else(|_| unreachable!());
    let sink = JsonlSink::open(dir.join(name), fsync).unwrap_or_else(|e| unreachable!("{e}"));
    let mut pipeline = Pipeline::new(Arc::new(menu), AuditLog::new(Arc::new(sink)));
    for guard in ["credential", "policy", "budget"] {
        pipeline = pipeline.with_guard(Arc::new(DangerousAllowAll::named(guard)));
    }
    Arc::new(pipeline)
}

async fn one_call(pipeline: &Pipeline, ctx: &CallContext, n: u64) {
    let request = CallRequest::new("lookup_order", json!({"order_id": "#W2611340"}))
        .proposed_as(format!("c{n}"));
    let authorized =
        pipeline.authorize(&request, ctx).await.unwrap_or_else(|d| unreachable!("{d}"));
    black_box(pipeline.menu().invoke(authorized).await.unwrap_or_else(|e| unreachable!("{e}")));
}

fn sequential(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    name: &str,
    fsync: Fsync,
) {
    let pipeline = pipeline(dir, name, fsync);
    let ctx = CallContext::new("bench".into(), "task".into());
    c.bench_function(&format!("authorize_invoke/{name}"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for n in 0..iters {
                    one_call(&pipeline, &ctx, n).await;
                }
                start.elapsed()
            })
        });
    });
}

fn concurrent(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) {
    const TASKS: u64 = 32;
    let pipeline = pipeline(dir, "group_commit_32_tasks", Fsync::OnCommit);
    c.bench_function("authorize_invoke/group_commit_32_tasks", |b| {
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(TASKS);
            let elapsed = runtime.block_on(async {
                let start = Instant::now();
                let mut tasks = Vec::new();
                for t in 0..TASKS {
                    let pipeline = Arc::clone(&pipeline);
                    tasks.push(tokio::spawn(async move {
                        let ctx =
                            CallContext::new("bench".into(), format!("task-{t}").as_str().into());
                        for n in 0..per_task {
                            one_call(&pipeline, &ctx, n).await;
                        }
                    }));
                }
                for task in tasks {
                    let _ = task.await;
                }
                start.elapsed()
            });
            // Wall time per call, scaled to the iterations asked for.
            elapsed.mul_f64(iters as f64 / (per_task * TASKS) as f64)
        });
    });
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|_| unreachable!());
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap_or_else(|_| unreachable!());
    sequential(c, &runtime, dir.path(), "no_fsync", Fsync::Never);
    sequential(c, &runtime, dir.path(), "fsync_per_call", Fsync::OnCommit);
    concurrent(c, &runtime, dir.path());
}

criterion_group! {
    name = pipeline_benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(8));
    targets = benches
}
criterion_main!(pipeline_benches);
