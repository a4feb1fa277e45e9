//! The audit trail: durable JSONL with group commit, a hash chain that shows tampering at the
//! right line, redaction, and a full disk that refuses calls instead of losing their record.

// Helpers and fakes here are test code too: a failed unwrap or a panic is a failed test.
// (clippy's allow-*-in-tests settings cover only `#[test]` functions, not their helpers.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use agent_core::audit::{
    AuditEvent, AuditLog, AuditSink, BreakKind, Commit, Fsync, JsonlSink, Stage, Verdict,
    VerifyError, verify_file,
};
use agent_core::{AgentId, EffectClass, Pipeline, TaskId, Tool, ToolMenu};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use support::*;

fn event(n: usize) -> AuditEvent {
    AuditEvent::for_task(
        &AgentId::new("a"),
        &[AgentId::new("a")],
        &TaskId::new(format!("t{n}")),
        Stage::Task,
        Verdict::Started,
    )
}

async fn write_log(path: &Path, events: usize) {
    let sink = JsonlSink::open(path, Fsync::OnCommit).unwrap();
    for n in 0..events {
        sink.append(event(n), Commit::Durable).await.unwrap();
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.iter().map(|line| format!("{line}\n")).collect::<String>()).unwrap();
}

fn broken_at(path: &Path) -> (u64, BreakKind) {
    match verify_file(path) {
        Err(VerifyError::Broken { source, .. }) => (source.line, source.kind),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[tokio::test]
async fn a_written_log_verifies_and_reopening_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/audit.jsonl");
    write_log(&path, 5).await;
    write_log(&path, 3).await;
    // The header, then eight events: reopening writes no second header.
    let summary = verify_file(&path).unwrap();
    assert_eq!(summary.events, 9);
    let seqs: Vec<u64> = lines(&path)
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(seqs, (0..9).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_edited_event_fails_at_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 6).await;
    let mut all = lines(&path);
    all[3] = all[3].replace("\"t2\"", "\"t9\"");
    write_lines(&path, &all);
    assert_eq!(broken_at(&path), (4, BreakKind::Hash));
}

#[tokio::test]
async fn an_edited_and_rehashed_event_fails_at_the_next_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 6).await;
    let mut all = lines(&path);
    // The forger recomputes the edited event's own hash, but cannot fix the next link without
    // rewriting every later event.
    let mut forged: serde_json::Value = serde_json::from_str(&all[2]).unwrap();
    forged["verdict"] = json!("ended");
    let mut without_hash = forged.clone();
    without_hash.as_object_mut().unwrap().remove("hash");
    forged["hash"] = json!(agent_core::canonical::digest(&without_hash));
    all[2] = forged.to_string();
    write_lines(&path, &all);
    assert_eq!(broken_at(&path), (4, BreakKind::Link));
}

#[tokio::test]
async fn a_field_slipped_into_an_event_breaks_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 3).await;
    let mut all = lines(&path);
    all[1] = all[1].replacen('{', "{\"approved_by\":\"ceo\",", 1);
    write_lines(&path, &all);
    assert_eq!(broken_at(&path), (2, BreakKind::Hash));
}

#[tokio::test]
async fn reordered_and_removed_events_fail_at_the_first_moved_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 6).await;
    let original = lines(&path);

    let mut swapped = original.clone();
    swapped.swap(2, 4);
    write_lines(&path, &swapped);
    assert_eq!(broken_at(&path), (3, BreakKind::Sequence { expected: 2, found: 4 }));

    let mut removed = original.clone();
    removed.remove(1);
    write_lines(&path, &removed);
    assert_eq!(broken_at(&path), (2, BreakKind::Sequence { expected: 1, found: 2 }));

    let mut duplicated = original;
    duplicated.insert(3, duplicated[2].clone());
    write_lines(&path, &duplicated);
    assert_eq!(broken_at(&path), (4, BreakKind::Sequence { expected: 3, found: 2 }));
}

#[tokio::test]
async fn a_log_cut_mid_line_fails_verification_and_cannot_be_continued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 4).await;
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
    // The header and four events: the fifth line is cut.
    assert!(matches!(broken_at(&path), (5, BreakKind::Unreadable(_))));
    let error = JsonlSink::open(&path, Fsync::OnCommit).err().unwrap();
    assert!(error.to_string().contains("line 5"), "{error}");
}

#[tokio::test]
async fn a_log_cut_at_a_line_boundary_is_caught_by_the_head_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = JsonlSink::open(&path, Fsync::OnCommit).unwrap();
    for n in 0..5 {
        sink.append(event(n), Commit::Durable).await.unwrap();
    }
    let (count, head) = sink.head();
    drop(sink);
    let mut all = lines(&path);
    all.truncate(3);
    write_lines(&path, &all);
    // The shorter file is a valid chain on its own; the anchor kept elsewhere shows the loss.
    let summary = verify_file(&path).unwrap();
    assert_eq!(summary.events, 3);
    assert_ne!((summary.events, summary.head_hash), (count, head));
}

#[tokio::test]
async fn a_second_writer_on_the_same_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let _first = JsonlSink::open(&path, Fsync::OnCommit).unwrap();
    let second = JsonlSink::open(&path, Fsync::OnCommit).err().unwrap();
    assert!(second.to_string().contains("in use by another process"), "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_share_commits_and_the_chain_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = Arc::new(JsonlSink::open(&path, Fsync::OnCommit).unwrap());
    let mut tasks = Vec::new();
    for n in 0..32 {
        let sink = Arc::clone(&sink);
        tasks.push(tokio::spawn(async move {
            for k in 0..20 {
                sink.append(event(n * 100 + k), Commit::Durable).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(verify_file(&path).unwrap().events, 641, "the header and 640 events");
    let fsyncs = sink.fsync_count();
    println!("640 durable appends from 32 tasks took {fsyncs} fsyncs");
    assert!(fsyncs < 640 / 2, "group commit should share fsyncs, ran {fsyncs}");
    // Positive control: one task alone pays one fsync per durable append.
    let alone = JsonlSink::open(dir.path().join("alone.jsonl"), Fsync::OnCommit).unwrap();
    for n in 0..10 {
        alone.append(event(n), Commit::Durable).await.unwrap();
    }
    // The header's own sync, then one per append.
    assert_eq!(alone.fsync_count(), 11);
}

#[tokio::test]
async fn a_full_disk_denies_the_call_and_loses_no_record() {
    // /dev/full accepts an open and fails every write with ENOSPC, like a full disk.
    let full = Path::new("/dev/full");
    assert!(full.exists(), "this test needs /dev/full");
    let timeline = Timeline::default();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let runs = tool.runs();
    let sink = Arc::new(JsonlSink::open(full, Fsync::OnCommit).unwrap());
    let menu = Arc::new(ToolMenu::new([Arc::new(tool) as Arc<dyn Tool>]).unwrap());
    let pipeline = Pipeline::new(menu, AuditLog::new(sink.clone()));

    let denied = pipeline
        .authorize(&request("c1", "issue_refund", json!({"order_id": "#W1"})), &context())
        .await
        .unwrap_err();
    assert_eq!(denied.reason.code, "audit_unavailable");
    assert!(denied.reason.detail.contains("No space left on device"), "{}", denied.reason.detail);
    assert!(runs.lock().unwrap().is_empty());
    // After a failed write the sink refuses everything: the end of the file is uncertain.
    let later = sink.append(event(1), Commit::Buffered).await.unwrap_err();
    assert!(later.to_string().contains("after an earlier write failed"), "{later}");

    // Positive control: the same pipeline over a real file runs the call.
    let dir = tempfile::tempdir().unwrap();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let runs = tool.runs();
    let menu = Arc::new(ToolMenu::new([Arc::new(tool) as Arc<dyn Tool>]).unwrap());
    let sink = Arc::new(JsonlSink::open(dir.path().join("a.jsonl"), Fsync::OnCommit).unwrap());
    let pipeline = Pipeline::new(menu, AuditLog::new(sink));
    let authorized = pipeline
        .authorize(&request("c1", "issue_refund", json!({"order_id": "#W1"})), &context())
        .await
        .unwrap();
    pipeline.menu().invoke(authorized).await.unwrap();
    assert_eq!(runs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn secrets_in_arguments_never_reach_the_log_but_the_digest_binds_the_real_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let timeline = Timeline::default();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let runs = tool.runs();
    let menu = Arc::new(ToolMenu::new([Arc::new(tool) as Arc<dyn Tool>]).unwrap());
    let pipeline = Pipeline::new(
        menu,
        AuditLog::new(Arc::new(JsonlSink::open(&path, Fsync::OnCommit).unwrap())),
    );
    let input = json!({
        "order_id": "#W1",
        "note": "my key is sk-ant-api03-AbCdEfGhIjKlMnOpQrSt and card 4111 1111 1111 1111",
    });
    let authorized = pipeline
        .authorize(&request("c1", "issue_refund", input.clone()), &context())
        .await
        .unwrap();
    assert_eq!(authorized.invocation().args_digest, agent_core::canonical::digest(&input));
    pipeline.menu().invoke(authorized).await.unwrap();

    let log = std::fs::read_to_string(&path).unwrap();
    assert!(!log.contains("sk-ant-api03"), "API key leaked into the audit log");
    assert!(!log.contains("4111 1111"), "card number leaked into the audit log");
    assert!(log.contains("[REDACTED]") && log.contains("[REDACTED card]"));
    // The tool itself got the real arguments.
    assert_eq!(runs.lock().unwrap()[0], input);
    verify_file(&path).unwrap();
}

#[tokio::test]
async fn every_event_carries_who_what_and_which_arguments() {
    let (timeline, sink, log) = timeline_log();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let menu = Arc::new(ToolMenu::new([Arc::new(tool) as Arc<dyn Tool>]).unwrap());
    let pipeline = Pipeline::new(menu, log).with_guard(Arc::new(ScriptedGuard::new("policy")));
    let input = json!({"order_id": "#W1", "amount": 12.5});
    let authorized = pipeline
        .authorize(&request("c1", "issue_refund", input.clone()), &context())
        .await
        .unwrap();
    pipeline.menu().invoke(authorized).await.unwrap();
    let events = sink.inner.events();
    assert_eq!(events.len(), 5);
    for (seq, sealed) in events.iter().enumerate() {
        assert_eq!(sealed.seq, seq as u64);
        let event = &sealed.event;
        assert_eq!(event.agent.as_str(), "support-agent");
        assert_eq!(event.chain, [AgentId::new("support-agent")]);
        assert_eq!(event.task.as_str(), "task-1");
        // Every event names the call by the runtime's id; the model's `c1` is an attribute.
        assert!(event.call_id.as_ref().unwrap().as_str().starts_with("call-"));
        assert_eq!(event.call_id, events[0].event.call_id);
        assert_eq!(event.tool.as_deref(), Some("issue_refund"));
        assert_eq!(
            event.args_digest.as_deref(),
            Some(agent_core::canonical::digest(&input).as_str())
        );
        assert!(event.time.ends_with('Z') && event.time.len() == 24, "{}", event.time);
        if seq > 0 {
            assert_eq!(sealed.prev_hash, events[seq - 1].hash);
        }
    }
    assert_eq!(events[2].event.guard.as_deref(), Some("policy"));
    assert_eq!(events[0].event.args, Some(input));
}

/// A writer for tracing-subscriber that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_event_is_mirrored_to_tracing_under_the_audit_target() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (timeline, sink, log) = timeline_log();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let menu = Arc::new(ToolMenu::new([Arc::new(tool) as Arc<dyn Tool>]).unwrap());
    let pipeline = Pipeline::new(menu, log);
    let denied =
        pipeline.authorize(&request("c1", "send_email", json!({"to": "x"})), &context()).await;
    assert!(denied.is_err());

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), sink.inner.events().len());
    let denial = &lines[0];
    assert_eq!(denial["target"], "audit");
    assert_eq!(denial["level"], "WARN");
    assert_eq!(denial["fields"]["tool"], "send_email");
    assert_eq!(denial["fields"]["verdict"], "deny");
    assert_eq!(denial["fields"]["stage"], "menu");
    assert_eq!(denial["fields"]["hash"], sink.inner.events()[0].hash);
}

#[tokio::test]
async fn the_query_store_mirrors_every_event_and_can_be_rebuilt_from_the_chain() {
    use agent_core::audit::{AuditQuery, AuditStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let store = Arc::new(AuditStore::open(dir.path().join("audit.sqlite")).unwrap());
    let log = AuditLog::new(Arc::new(JsonlSink::open(&path, Fsync::OnCommit).unwrap()))
        .with_mirror(store.clone());
    let timeline = Timeline::default();
    let tool = RecordingTool::new("issue_refund", EffectClass::Irreversible, &timeline);
    let menu = Arc::new(ToolMenu::new([Arc::new(tool) as Arc<dyn Tool>]).unwrap());
    let pipeline = Pipeline::new(menu, log)
        .with_guard(Arc::new(ScriptedGuard::new("policy").on("bad", support::Verdict::Deny)));
    let ok = pipeline
        .authorize(&request("good", "issue_refund", json!({"order_id": "#W1"})), &context())
        .await
        .unwrap();
    pipeline.menu().invoke(ok).await.unwrap();
    let _ = pipeline
        .authorize(&request("bad", "issue_refund", json!({"order_id": "#W2"})), &context())
        .await
        .unwrap_err();
    let _ =
        pipeline.authorize(&request("x", "send_email", json!({})), &context()).await.unwrap_err();

    let all = verify_file(&path).unwrap().events;
    assert_eq!(store.len().unwrap(), all);
    let denied =
        store.query(&AuditQuery { verdict: Some("deny".into()), ..AuditQuery::default() }).unwrap();
    let codes: Vec<&str> = denied.iter().map(|e| e.event.reasons[0].code.as_str()).collect();
    assert_eq!(codes, ["unknown_tool", "scripted_deny"], "newest first");
    let refunds = store
        .query(&AuditQuery {
            tool: Some("issue_refund".into()),
            verdict: Some("succeeded".into()),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(refunds.len(), 1);
    assert!(
        store
            .query(&AuditQuery {
                since: Some("2999-01-01T00:00:00.000Z".into()),
                ..AuditQuery::default()
            })
            .unwrap()
            .is_empty()
    );

    // The chain is the source of truth: a fresh store rebuilt from it answers the same.
    let rebuilt = AuditStore::in_memory().unwrap();
    assert_eq!(rebuilt.rebuild_from(&path).unwrap(), all);
    assert_eq!(
        rebuilt.query(&AuditQuery::default()).unwrap(),
        store.query(&AuditQuery::default()).unwrap()
    );
    // A chain that does not verify is not loaded.
    let mut lines: Vec<String> =
        std::fs::read_to_string(&path).unwrap().lines().map(str::to_owned).collect();
    lines.swap(1, 2);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    assert!(rebuilt.rebuild_from(&path).is_err());
    assert_eq!(rebuilt.len().unwrap(), all, "a refused rebuild leaves the store as it was");
}

#[tokio::test]
async fn the_event_reader_returns_the_verified_events_and_leaves_out_a_torn_last_line() {
    use agent_core::audit::read_events;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 3).await;
    let events = read_events(&path).unwrap();
    let seqs: Vec<u64> = events.iter().map(|sealed| sealed.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3], "the header and three events");
    assert_eq!(events[2].event.task.as_str(), "t1");
    // A crash tore the next line: the events before it are all there.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":4,");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(read_events(&path).unwrap().len(), 4);
    // An edited line is an error naming it, as for the chain check.
    let mut all = lines(&path);
    all[2] = all[2].replace("\"t1\"", "\"t9\"");
    write_lines(&path, &all);
    let error = read_events(&path).unwrap_err().to_string();
    assert!(error.contains("line 3"), "{error}");
}
