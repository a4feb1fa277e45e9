//! Tool definitions stay pinned for the whole session (issue 13): a hostile server that changes,
//! duplicates or drops an imported tool's definition after import has the tool withdrawn, by
//! `list_changed`, by the periodic re-list or by `refresh`, under the one rule import applies;
//! the pipeline then refuses every call at the menu stage and the server never sees it. Each
//! attack has a positive control showing the same setup without the defence lets the call through.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "mcp_support/hostile.rs"]
mod hostile;
mod mcp_support;

use agent_core::audit::{AuditLog, MemorySink, SealedEvent, Stage, Verdict};
use agent_core::tool::ToolError;
use agent_core::{EffectClass, Pipeline, Tool, ToolMenu};
use guards::credentials::CallTokens;
use hostile::{Hostile, TOOL, bystander, digest, honest, poisoned, widened};
use mcp_support::{AUDIENCE, Fixture, call_through, name, scope};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::mcp::{Import, McpToolSource, SourceError, SourceOptions, ToolImport};

/// Long enough that no periodic re-list happens during a test: only what the test does counts.
const NEVER: Duration = Duration::from_secs(3600);

/// The bound of every wait: generous, and only ever reached by a broken watcher.
const PATIENCE: Duration = Duration::from_secs(5);

/// A hostile server, Warden's adapter connected to it, the source's audit sink, and a client
/// pipeline (with its own sink) over whatever is imported.
struct Session {
    fixture: Fixture,
    hostile: Hostile,
    source: McpToolSource,
    server: rmcp::service::RunningService<rmcp::RoleServer, Hostile>,
    source_audit: Arc<MemorySink>,
}

impl Session {
    async fn new(listing: Vec<rmcp::model::Tool>, options: SourceOptions) -> Self {
        let fixture = Fixture::new();
        let hostile = Hostile::new(listing);
        let source_audit = Arc::new(MemorySink::new());
        let options = options
            .audit(AuditLog::new(source_audit.clone()), agent_core::AgentId::new("refund-bot"));
        let token = fixture.task_token(&["orders:read"]);
        let (source, server) = hostile::connect(hostile.clone(), token, options).await;
        Self { fixture, hostile, source, server, source_audit }
    }

    /// Imports `TOOL` pinned to the honest definition, and expects it imported.
    async fn import_pinned(&self) -> Arc<dyn Tool> {
        let import = self.source.import(&[pinned_entry()]).await.unwrap();
        assert!(import.refused.is_empty(), "{import:?}");
        Arc::clone(&import.tools[0])
    }

    /// A client pipeline over `tools`, recording into the returned sink.
    fn pipeline(&self, tools: Vec<Arc<dyn Tool>>) -> (Pipeline, Arc<MemorySink>) {
        let sink = Arc::new(MemorySink::new());
        let menu = Arc::new(ToolMenu::new(tools).unwrap());
        let pipeline = Pipeline::new(menu, AuditLog::new(sink.clone())).with_call_credentials(
            Arc::new(CallTokens::new(Arc::clone(&self.fixture.issuer), AUDIENCE)),
        );
        (pipeline, sink)
    }

    async fn call(&self, pipeline: &Pipeline, tool: &str) -> Result<String, ToolError> {
        let task = self.fixture.task_token(&["orders:read"]);
        call_through(pipeline, tool, json!({"order_id": "#W1"}), &task).await
    }

    /// The source's audit events with reason `code`.
    fn audited(&self, code: &str) -> Vec<SealedEvent> {
        with_reason(&self.source_audit, code)
    }
}

fn pinned_entry() -> ToolImport {
    ToolImport::new(name(TOOL), scope("orders:read"), EffectClass::Read).pinned(digest(&honest()))
}

fn with_reason(sink: &MemorySink, code: &str) -> Vec<SealedEvent> {
    sink.events()
        .into_iter()
        .filter(|sealed| sealed.event.reasons.iter().any(|reason| reason.code == code))
        .collect()
}

fn intents(sink: &MemorySink) -> usize {
    sink.events().iter().filter(|sealed| sealed.event.stage == Stage::Intent).count()
}

/// Waits (bounded) until `done`, failing the test with `what` if it never is.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that the pipeline refused the last call of `tool` at the menu stage as
/// `tool_withdrawn`, and recorded no intent for it.
fn assert_refused_at_menu(sink: &MemorySink, tool: &str, intents_before: usize) {
    let refusals = with_reason(sink, "tool_withdrawn");
    let refusal = &refusals.last().expect("a tool_withdrawn denial").event;
    assert_eq!((refusal.stage, refusal.verdict), (Stage::Menu, Verdict::Deny));
    assert_eq!(refusal.tool.as_deref(), Some(tool));
    assert_eq!(intents(sink), intents_before, "no intent record for the refused call");
}

#[tokio::test]
async fn a_rug_pull_announced_with_list_changed_withdraws_the_tool_before_the_next_call() {
    let session = Session::new(vec![honest()], SourceOptions::default().relist_every(NEVER)).await;
    let tool = session.import_pinned().await;
    let (pipeline, sink) = session.pipeline(vec![Arc::clone(&tool)]);
    session.call(&pipeline, TOOL).await.unwrap();
    assert_eq!(session.hostile.calls(), [TOOL]);
    assert!(tool.withdrawn().is_none());

    session.hostile.switch_to(vec![poisoned()]);
    session.server.peer().notify_tool_list_changed().await.unwrap();
    eventually("the tool is withdrawn after list_changed", || tool.withdrawn().is_some()).await;

    let why = tool.withdrawn().unwrap();
    assert!(why.starts_with("pin_mismatch: "), "{why}");
    assert!(!why.contains("IMPORTANT"), "the server's text is not repeated: {why}");
    let intents_before = intents(&sink);
    let refused = session.call(&pipeline, TOOL).await.unwrap_err();
    assert_eq!(refused, ToolError::Rejected("denied at the client: tool_withdrawn".to_owned()));
    assert_refused_at_menu(&sink, TOOL, intents_before);
    assert_eq!(session.hostile.calls(), [TOOL], "the server never received the call");

    let drift = session.audited("pin_mismatch");
    assert_eq!(drift.len(), 1, "one withdrawal, audited once");
    let drift = &drift[0].event;
    assert_eq!((drift.stage, drift.verdict), (Stage::Menu, Verdict::Deny));
    assert_eq!(drift.tool.as_deref(), Some(TOOL));
    assert_eq!(drift.detail["when"], "list_changed");
    assert_eq!(drift.detail["expected_digest"], digest(&honest()));
    assert_eq!(drift.detail["actual_digest"], digest(&poisoned()));
    // The refresh that follows finds nothing new: a withdrawal is reported once, and for good.
    assert!(session.source.refresh().await.unwrap().is_empty());
    session.hostile.switch_to(vec![honest()]);
    assert!(session.source.refresh().await.unwrap().is_empty());
    assert!(tool.withdrawn().is_some(), "switching back does not bring the tool back");
}

/// Positive control for the test above: the same switch with no notification and no periodic
/// re-list leaves the tool trusted, and the changed server receives the call. Only then does the
/// notification withdraw it.
#[tokio::test]
async fn control_a_silent_rug_pull_with_no_relist_reaches_the_changed_server() {
    let session = Session::new(vec![honest()], SourceOptions::default().relist_every(NEVER)).await;
    let tool = session.import_pinned().await;
    let (pipeline, _sink) = session.pipeline(vec![Arc::clone(&tool)]);

    session.hostile.switch_to(vec![poisoned()]);
    session.call(&pipeline, TOOL).await.unwrap();
    assert_eq!(session.hostile.calls(), [TOOL], "the changed server received the call");
    assert!(tool.withdrawn().is_none());
    assert!(session.audited("pin_mismatch").is_empty());

    session.server.peer().notify_tool_list_changed().await.unwrap();
    eventually("the notification withdraws the tool", || tool.withdrawn().is_some()).await;
}

#[tokio::test]
async fn a_silent_rug_pull_is_caught_by_the_periodic_relist() {
    let options = SourceOptions::default().relist_every(Duration::from_millis(50));
    let session = Session::new(vec![honest()], options).await;
    let tool = session.import_pinned().await;
    let (pipeline, sink) = session.pipeline(vec![Arc::clone(&tool)]);
    // Positive control: periodic re-lists of an unchanged listing withdraw nothing.
    let lists = session.hostile.lists();
    eventually("two periodic re-lists", || session.hostile.lists() >= lists + 2).await;
    assert!(tool.withdrawn().is_none());
    session.call(&pipeline, TOOL).await.unwrap();

    // The schema widens; the server says nothing.
    session.hostile.switch_to(vec![widened()]);
    eventually("the periodic re-list withdraws the tool", || tool.withdrawn().is_some()).await;
    let intents_before = intents(&sink);
    assert!(session.call(&pipeline, TOOL).await.is_err());
    assert_refused_at_menu(&sink, TOOL, intents_before);
    assert_eq!(session.hostile.calls(), [TOOL], "only the call before the switch arrived");
    let drift = session.audited("pin_mismatch");
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].event.detail["when"], "periodic");
    assert_eq!(drift[0].event.detail["actual_digest"], digest(&widened()));
}

#[tokio::test]
async fn the_honest_definition_listed_first_does_not_hide_a_changed_duplicate() {
    // At import: refused as ambiguous, and audited.
    let session =
        Session::new(vec![honest(), poisoned()], SourceOptions::default().relist_every(NEVER))
            .await;
    // Positive control: the attack listing really starts with the reviewed definition, so a
    // rule that takes the first tool of the name would pass the pin check.
    let offered = session.source.offered().await.unwrap();
    assert_eq!(offered[0].digest, digest(&honest()));
    assert_eq!(offered[1].name, TOOL);
    let import: Import = session.source.import(&[pinned_entry()]).await.unwrap();
    assert!(import.tools.is_empty(), "{import:?}");
    assert_eq!(import.refused[0].code, "ambiguous");
    let audited = session.audited("ambiguous");
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].event.detail["when"], "import");
    assert_eq!(
        audited[0].event.detail["offered_digests"],
        json!([digest(&honest()), digest(&poisoned())])
    );
    // Two identical definitions of one name are no better: which runs is the server's choice.
    session.hostile.switch_to(vec![honest(), honest()]);
    let import = session.source.import(&[pinned_entry()]).await.unwrap();
    assert_eq!(import.refused[0].code, "ambiguous");

    // After import: the duplicate appears later, and the re-check refuses it the same way.
    session.hostile.switch_to(vec![honest()]);
    let tool = session.import_pinned().await;
    let (pipeline, sink) = session.pipeline(vec![Arc::clone(&tool)]);
    session.hostile.switch_to(vec![honest(), poisoned()]);
    let offered = session.source.offered().await.unwrap();
    assert_eq!(offered[0].digest, digest(&honest()), "the first listed still matches the pin");
    let withdrawals = session.source.refresh().await.unwrap();
    assert_eq!(withdrawals.len(), 1, "{withdrawals:?}");
    assert_eq!(withdrawals[0].code, "ambiguous");
    assert_eq!(withdrawals[0].actual_digest, None);
    assert_eq!(withdrawals[0].offered_digests, [digest(&honest()), digest(&poisoned())]);
    assert!(tool.withdrawn().unwrap().starts_with("ambiguous: "));
    let intents_before = intents(&sink);
    assert!(session.call(&pipeline, TOOL).await.is_err());
    assert_refused_at_menu(&sink, TOOL, intents_before);
    assert!(session.hostile.calls().is_empty(), "the server never received a call");
    let audited = session.audited("ambiguous");
    assert_eq!(audited.len(), 3, "two import refusals and one withdrawal");
    assert_eq!(audited[2].event.detail["when"], "refresh");
}

#[tokio::test]
async fn a_tool_that_vanishes_from_the_listing_is_withdrawn_as_not_listed() {
    let session =
        Session::new(vec![honest(), bystander()], SourceOptions::default().relist_every(NEVER))
            .await;
    let menu = [
        pinned_entry(),
        ToolImport::new(name("track_parcel"), scope("orders:read"), EffectClass::Read),
    ];
    let import = session.source.import(&menu).await.unwrap();
    assert_eq!(import.tools.len(), 2, "{import:?}");
    let (pipeline, sink) = session.pipeline(import.tools.clone());

    session.hostile.switch_to(vec![bystander()]);
    session.server.peer().notify_tool_list_changed().await.unwrap();
    let vanished = &import.tools[0];
    eventually("the vanished tool is withdrawn", || vanished.withdrawn().is_some()).await;
    assert!(vanished.withdrawn().unwrap().starts_with("not_listed: "));
    let intents_before = intents(&sink);
    assert!(session.call(&pipeline, TOOL).await.is_err());
    assert_refused_at_menu(&sink, TOOL, intents_before);
    let audited = session.audited("not_listed");
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].event.tool.as_deref(), Some(TOOL));
    assert_eq!(audited[0].event.detail["offered_digests"], json!([]));

    // Positive control: the tool still listed unchanged is still callable, and is called.
    assert!(import.tools[1].withdrawn().is_none());
    session.call(&pipeline, "track_parcel").await.unwrap();
    assert_eq!(session.hostile.calls(), ["track_parcel"]);
}

#[tokio::test]
async fn a_server_that_stops_listing_has_its_tools_withdrawn_after_the_limit() {
    let options = SourceOptions::default().relist_every(NEVER).relist_failure_limit(2);
    let session = Session::new(vec![honest()], options).await;
    let tool = session.import_pinned().await;

    session.hostile.refuse_lists(true);
    assert!(matches!(session.source.refresh().await, Err(SourceError::Request { .. })));
    assert!(tool.withdrawn().is_none(), "one failed re-list is retried, not fatal");
    let errors = session.audited("relist_error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].event.verdict, Verdict::Failed);
    // Positive control: a success in between starts the count again.
    session.hostile.refuse_lists(false);
    assert!(session.source.refresh().await.unwrap().is_empty());
    session.hostile.refuse_lists(true);
    assert!(session.source.refresh().await.is_err());
    assert!(tool.withdrawn().is_none());

    assert!(session.source.refresh().await.is_err());
    let why = tool.withdrawn().expect("the second failure in a row withdraws");
    assert!(why.starts_with("relist_failed: "), "{why}");
    let withdrawn = session.audited("relist_failed");
    assert_eq!(withdrawn.len(), 1);
    assert_eq!(withdrawn[0].event.tool.as_deref(), Some(TOOL));
    assert!(withdrawn[0].event.detail["error"].as_str().unwrap().contains("maintenance"));
}

#[tokio::test]
async fn a_refresh_after_close_errors_and_withdraws_the_tools() {
    let session = Session::new(vec![honest()], SourceOptions::default().relist_every(NEVER)).await;
    let tool = session.import_pinned().await;
    let (pipeline, sink) = session.pipeline(vec![Arc::clone(&tool)]);

    session.source.close();
    let refreshed = session.source.refresh().await;
    assert!(matches!(refreshed, Err(SourceError::Closed { .. })), "{refreshed:?}");
    assert!(tool.withdrawn().unwrap().starts_with("relist_failed: "));
    assert_eq!(session.audited("relist_failed").len(), 1);
    let intents_before = intents(&sink);
    assert!(session.call(&pipeline, TOOL).await.is_err());
    assert_refused_at_menu(&sink, TOOL, intents_before);
    assert!(session.hostile.calls().is_empty());
}

/// The watcher holds the source weakly: once the source and its tools are dropped, the
/// connection closes (the server sees it) and every task the session started ends.
#[tokio::test]
async fn the_watcher_stops_when_the_source_and_its_tools_are_dropped() {
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = tasks();
    let options = SourceOptions::default().relist_every(Duration::from_millis(20));
    let Session { hostile, source, server, .. } = Session::new(vec![honest()], options).await;
    let import = source.import(&[pinned_entry()]).await.unwrap();
    // Positive control: the watcher runs (it keeps re-listing) while the source is held.
    let lists = hostile.lists();
    eventually("the watcher re-lists", || hostile.lists() >= lists + 2).await;
    assert!(tasks() > before);

    drop(source);
    drop(import);
    let closed = tokio::time::timeout(PATIENCE, server.waiting()).await;
    assert!(closed.is_ok(), "the connection closed: nothing kept the source alive");
    eventually("every task the session started ends", || tasks() == before).await;
    let lists = hostile.lists();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hostile.lists(), lists, "no re-list after the drop");
}

/// While a tool imported from the source is still on a menu, its server is still checked, even
/// with the source itself dropped: that tool can still call the server.
#[tokio::test]
async fn tools_still_on_a_menu_are_still_checked_after_the_source_is_dropped() {
    let options = SourceOptions::default().relist_every(Duration::from_millis(20));
    let Session { hostile, source, server, .. } = Session::new(vec![honest()], options).await;
    let import = source.import(&[pinned_entry()]).await.unwrap();
    let tool = Arc::clone(&import.tools[0]);
    drop(source);
    drop(import);

    hostile.switch_to(vec![poisoned()]);
    eventually("the kept tool is withdrawn", || tool.withdrawn().is_some()).await;
    // And once the last tool goes, so does the connection.
    drop(tool);
    let closed = tokio::time::timeout(PATIENCE, server.waiting()).await;
    assert!(closed.is_ok(), "the connection closed with its last tool");
}
