//! Asks one approval at the terminal, as the runtime would, and prints the answer.
//!
//! ```text
//! cargo run -p guards --example terminal_approval
//! ```
//!
//! Shows a refund request on stderr (its amount and payment method marked as coming from
//! untrusted ticket text), reads `y` or `n` and an optional comment from the terminal, and prints
//! the answer on stdout as one line of JSON, for example
//! `{"Approved":{"request_id":"ticket-4711/toolu_01","args_digest":"…","approver":"alice","channel":"terminal","comment":null}}`.
//! Without a terminal (`setsid cargo run …`) it prints a `Refused` answer with the code
//! `no_terminal`. `tests/approval_terminal.rs` runs it under tmux and types the answer.

use agent_core::guard::ApprovalNeed;
use agent_core::{AgentId, ApprovalRequest, Approver, CallId, Reason, TaskId, ToolName, canonical};
use guards::approval::TerminalApprover;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::ExitCode;
use time::format_description::well_known::Rfc3339;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let request = match refund_request() {
        Ok(request) => request,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let answer = TerminalApprover::new().decide(request).await;
    match serde_json::to_string(&answer) {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A refund whose amount and payment method appear only in the customer's ticket.
fn refund_request() -> Result<ApprovalRequest, Box<dyn std::error::Error>> {
    let args = json!({
        "order_id": "#W2611340",
        "amount": 1000,
        "payment_method_id": "credit_card_9999",
    });
    let evidence = json!({
        "mode": "enforce",
        "policies": ["refund-over-limit-needs-approval"],
        "usage": {
            "task": {"read_calls": 2, "write_calls": 0, "irreversible_calls": 0, "money_cents": 0},
            "agent_today": {"read_calls": 40, "write_calls": 3, "irreversible_calls": 2, "money_cents": 31_500},
            "customer_today": {"read_calls": 2, "write_calls": 0, "irreversible_calls": 0, "money_cents": 0},
        },
        "argument_provenance": {
            "order_id": {"origin": "trusted"},
            "amount": {"origin": "untrusted_only", "sources": ["ticket"]},
            "payment_method_id": {"origin": "untrusted_only", "sources": ["ticket"]},
        },
    });
    let expires_at =
        (time::OffsetDateTime::now_utc() + time::Duration::minutes(5)).format(&Rfc3339)?;
    Ok(ApprovalRequest {
        id: "ticket-4711/toolu_01".to_owned(),
        tool: ToolName::new("issue_refund")?,
        args_digest: canonical::digest(&args),
        args,
        agent: AgentId::new("refund-bot"),
        chain: vec![AgentId::new("support-desk"), AgentId::new("refund-bot")],
        task: TaskId::new("ticket-4711"),
        call_id: CallId::new("toolu_01"),
        on_behalf_of: Some("cust_1042".to_owned()),
        stated_reason: "The customer asks for a refund of their damaged order.".to_owned(),
        needs: vec![ApprovalNeed {
            reason: Reason::new("policy_requires_approval", "refunds over 500 need a person's yes"),
            policies: vec!["refund-over-limit-needs-approval".to_owned()],
        }],
        evidence: BTreeMap::from([("policy".to_owned(), evidence)]),
        expires_at,
    })
}
