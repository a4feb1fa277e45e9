//! The scenario's human: approves, refuses, or stays silent, as the file says.

use crate::scenario::{Answer, ApproverSpec, CallPattern};
use agent_core::approval::{ApprovalAnswer, ApprovalGrant, ApprovalRequest, Approver};
use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scripted reviewer that counts how often it was asked.
pub struct ScenarioReviewer {
    answer: Answer,
    approve_only: Vec<CallPattern>,
    asked: AtomicUsize,
}

impl ScenarioReviewer {
    /// The reviewer a scenario's `[approver]` describes.
    pub fn new(spec: &ApproverSpec) -> Self {
        Self {
            answer: spec.answer,
            approve_only: spec.approve_only.clone(),
            asked: AtomicUsize::new(0),
        }
    }

    /// How many requests it was shown.
    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }

    /// Whether this reviewer says yes to `request`: everything, or only the calls listed.
    fn approves(&self, request: &ApprovalRequest) -> bool {
        self.approve_only.is_empty()
            || self.approve_only.iter().any(|call| {
                call.tool == request.tool.as_str()
                    && refund_bot::queue::input_contains(&request.args, &call.input)
            })
    }
}

#[async_trait]
impl Approver for ScenarioReviewer {
    async fn decide(&self, request: ApprovalRequest) -> ApprovalAnswer {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let grant = ApprovalGrant::for_request(&request, "eval-reviewer", "scripted");
        match self.answer {
            Answer::Approve if self.approves(&request) => ApprovalAnswer::Approved(grant),
            Answer::Approve | Answer::Deny => {
                let mut refusal = grant;
                refusal.comment = Some(format!("the reviewer said no to `{}`", request.tool));
                ApprovalAnswer::Denied(refusal)
            }
            // The pipeline's timeout ends the wait, as with a reviewer who never answers.
            Answer::Timeout => std::future::pending().await,
        }
    }
}
