//! The credential guard: the task's token must be valid, issued to this agent for this task and
//! customer, and grant the scope of the tool called.

use super::verifier::{CredentialError, Rejection, Verifier};
use agent_core::guard::{CallContext, Decision, Guard, ProposedCall, Reason};
use std::sync::Arc;

/// Checks the task's credential on every call. Put it first in the pipeline: nothing else should
/// spend effort on a call whose caller cannot prove who it is.
pub struct CredentialGuard {
    verifier: Arc<Verifier>,
    audience: String,
}

impl CredentialGuard {
    /// A guard for calls to the tool server `audience`.
    pub fn new(verifier: Arc<Verifier>, audience: impl Into<String>) -> Self {
        Self { verifier, audience: audience.into() }
    }

    fn checked(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> Result<(), Rejection> {
        let token = ctx
            .credential
            .as_ref()
            .ok_or(Rejection { error: CredentialError::Missing, jti: None })?;
        let claims = self.verifier.verify(token.expose(), &self.audience)?;
        let reject = |error| Err(Rejection { error, jti: Some(claims.jti.clone()) });
        if claims.is_call_token() {
            return reject(CredentialError::NotATaskToken);
        }
        if claims.actor() != ctx.agent.as_str() || claims.chain() != ctx.chain {
            let chain = |ids: &[agent_core::AgentId]| {
                ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(" > ")
            };
            return reject(CredentialError::WrongAgent {
                token: chain(&claims.chain()),
                caller: chain(&ctx.chain),
            });
        }
        if claims.task != ctx.task.as_str() {
            return reject(CredentialError::WrongTask {
                token: claims.task.clone(),
                caller: ctx.task.to_string(),
            });
        }
        // A sub-task's token names the tasks it serves; a caller claiming fewer would keep its
        // spend off its parents' budgets.
        if !claims.serves.iter().map(String::as_str).eq(ctx.serves.iter().map(|t| t.as_str())) {
            return reject(CredentialError::WrongTask {
                token: lineage(claims.serves.iter().map(String::as_str), &claims.task),
                caller: lineage(ctx.serves.iter().map(|task| task.as_str()), ctx.task.as_str()),
            });
        }
        if claims.on_behalf_of.is_some() && claims.on_behalf_of != ctx.on_behalf_of {
            return reject(CredentialError::WrongCustomer);
        }
        if !claims.grants(&call.spec.required_scope) {
            return reject(CredentialError::ScopeMissing(call.spec.required_scope.to_string()));
        }
        Ok(())
    }
}

impl Guard for CredentialGuard {
    fn name(&self) -> &str {
        "credential"
    }

    fn check(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> Decision {
        match self.checked(call, ctx) {
            Ok(()) => Decision::Allow,
            Err(rejection) => Decision::Deny(Reason::new(rejection.code(), rejection.to_string())),
        }
    }

    /// After an approval wait the token is verified again, whole: it may have expired or been
    /// revoked (the task ended) while the reviewer read.
    fn recheck(&self, call: &ProposedCall<'_>, ctx: &CallContext) -> Decision {
        self.check(call, ctx)
    }
}

/// A task and the tasks it serves, as `root > parent > task`.
fn lineage<'a>(serves: impl Iterator<Item = &'a str>, task: &'a str) -> String {
    serves.chain([task]).collect::<Vec<_>>().join(" > ")
}
