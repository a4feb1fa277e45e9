//! A tool that checks the caller's token itself, as a tool server would, and whose data it serves.
//!
//! The pipeline's [`CredentialGuard`](super::CredentialGuard) checks the task token before a call
//! is authorized; a tool server must not take that on trust. An MCP server does its own check
//! ([`Verifier::verify_presented`]); [`TokenCheckedTool`] gives a tool that runs in the agent's
//! own process the same defence in depth: reads need a task token with the tool's scope, writes a
//! per-call token bound to the tool and the exact arguments, spent on first use.
//!
//! A valid token is not enough: a token issued for one customer must not read or change another
//! customer's records. [`OwnerBinding`] is that rule, in one place for every tool server (this
//! wrapper and the MCP server both use it): the record a tool declares it touches
//! ([`ToolSpec::resource`]) is looked up in the server's own data through an [`OwnerResolver`],
//! and the call is refused (`wrong_owner`) unless its owner is the customer the token serves
//! (`on_behalf_of`). Guards know no records: the domain implements [`OwnerResolver`].
//!
//! ```text
//! token for A, get_order_details(B's order)  -> refused: wrong_owner (the tool never runs)
//! token for A, get_order_details(A's order)  -> runs
//! token for A, get_order_details(no such)    -> refused: wrong_owner (same answer: existence
//!                                               of others' records is not revealed)
//! token for nobody, any owned record         -> refused: wrong_owner (fail closed)
//! any token, a product (owned by nobody)     -> runs
//! ```

use super::{Claims, Verifier};
use agent_core::Tool;
use agent_core::tool::{Invocation, ResourceRef, ToolError, ToolOutput, ToolSpec};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;

/// Wraps a tool so that it refuses any call whose credential does not allow it.
pub struct TokenCheckedTool {
    inner: Arc<dyn Tool>,
    verifier: Arc<Verifier>,
    audience: String,
    owners: Option<OwnerBinding>,
}

impl TokenCheckedTool {
    /// `inner`, reachable only with a token `verifier` accepts for `audience`.
    ///
    /// This checks the token alone. A tool that touches customers' records should also be bound
    /// to their owners with [`with_owners`](Self::with_owners), or a token for one customer can
    /// read another's:
    ///
    /// ```text
    /// TokenCheckedTool::new(tool, verifier, "support-desk")                          // token only
    /// TokenCheckedTool::new(tool, verifier, "support-desk").with_owners(desk_owners) // and whose
    /// ```
    pub fn new(inner: Arc<dyn Tool>, verifier: Arc<Verifier>, audience: impl Into<String>) -> Self {
        Self { inner, verifier, audience: audience.into(), owners: None }
    }

    /// Also refuses a call whose record (`spec.resource`) is not owned by the customer the
    /// verified token serves, as [`OwnerBinding::check`] decides.
    #[must_use]
    pub fn with_owners(mut self, owners: Arc<dyn OwnerResolver>) -> Self {
        self.owners = Some(OwnerBinding::new(owners));
        self
    }
}

#[async_trait]
impl Tool for TokenCheckedTool {
    fn spec(&self) -> &ToolSpec {
        self.inner.spec()
    }

    async fn call(&self, input: Value, invocation: &Invocation) -> Result<ToolOutput, ToolError> {
        let refused =
            |code: &str| ToolError::Rejected(format!("refused by the tool server: {code}"));
        let token = invocation.credential.as_ref().ok_or_else(|| refused("no credential"))?;
        // Who is calling first: a caller who cannot prove it learns nothing about any record.
        let claims = self
            .verifier
            .verify_presented(token.expose(), &self.audience, self.inner.spec(), &input)
            .map_err(|rejection| refused(rejection.code()))?;
        if let Some(owners) = &self.owners {
            owners.check(self.inner.spec(), &input, &claims).map_err(|why| refused(why.code()))?;
        }
        self.inner.call(input, invocation).await
    }
}

/// Who owns a record: the hook through which a tool server learns whose data a call touches.
///
/// Implemented by the domain over the server's own database (the support desk does, in `tools`),
/// never from what the caller says.
pub trait OwnerResolver: Send + Sync {
    /// Who owns the `entity_type` record with id `id`. `Err` when that cannot be told (an entity
    /// type the domain has no rule for, a store that cannot be read): the call is then refused.
    fn owner(&self, entity_type: &str, id: &str) -> Result<Ownership, String>;
}

/// Whose a record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// No customer's: a kind of record anyone may see, such as a catalogue entry.
    Unowned,
    /// The customer with this id.
    Customer(String),
    /// No such record. It is refused like another customer's record, so that a token for one
    /// customer cannot learn which of another's records exist.
    Missing,
}

/// The rule binding each call to the customer its token serves: one rule for every tool server.
#[derive(Clone)]
pub struct OwnerBinding {
    owners: Arc<dyn OwnerResolver>,
}

impl OwnerBinding {
    /// The rule over the records `owners` knows.
    pub fn new(owners: Arc<dyn OwnerResolver>) -> Self {
        Self { owners }
    }

    /// Whether a call of `spec` with `input`, made with a token already verified as `claims`,
    /// touches only what the token's customer owns.
    ///
    /// A call that declares no record, or whose record is [`Ownership::Unowned`], passes. A
    /// record owned by the token's customer passes. Everything else is refused: another
    /// customer's record, a record that does not exist, any owned record when the token serves
    /// no customer (an operator's task serving nobody may not touch customers' records), and a
    /// record whose owner cannot be told.
    ///
    /// A refusal is also a `tracing` event (target `audit`) with the tool, task, `jti`, the
    /// token's customer, the record's owner and the reason code; a tool server returns only the
    /// code to its caller.
    pub fn check(
        &self,
        spec: &ToolSpec,
        input: &Value,
        claims: &Claims,
    ) -> Result<(), OwnerRefusal> {
        let Some(resource) = &spec.resource else { return Ok(()) };
        let verdict = self.verdict(resource, input, claims.on_behalf_of.as_deref());
        if let Err(refusal) = &verdict {
            tracing::warn!(
                target: "audit",
                tool = spec.name.as_str(),
                task = claims.task.as_str(),
                jti = claims.jti.as_str(),
                customer = claims.on_behalf_of.as_deref(),
                entity_type = resource.entity_type.as_str(),
                owner = refusal.owner(),
                reason = refusal.code(),
                detail = %refusal,
                "a call was refused for whose record it touches"
            );
        }
        verdict
    }

    fn verdict(
        &self,
        resource: &ResourceRef,
        input: &Value,
        customer: Option<&str>,
    ) -> Result<(), OwnerRefusal> {
        let Some(id) = input.get(&resource.argument).and_then(Value::as_str) else {
            return Err(OwnerRefusal::OwnerUnknown(format!(
                "the call names no `{}` in `{}`",
                resource.entity_type, resource.argument
            )));
        };
        let ownership =
            self.owners.owner(&resource.entity_type, id).map_err(OwnerRefusal::OwnerUnknown)?;
        let owner = match ownership {
            Ownership::Unowned => return Ok(()),
            Ownership::Customer(owner) if customer == Some(owner.as_str()) => return Ok(()),
            Ownership::Customer(owner) => Some(owner),
            Ownership::Missing => None,
        };
        Err(OwnerRefusal::WrongOwner {
            entity_type: resource.entity_type.clone(),
            id: id.to_owned(),
            owner,
            customer: customer.map(str::to_owned),
        })
    }
}

/// Why a call was refused for whose record it touches. The detail is for the audit log: it names
/// the record's owner, who is not the caller's to know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerRefusal {
    /// The record is not the token's customer's: another customer's, one that does not exist, or
    /// any owned record when the token serves no customer.
    #[error(
        "`{entity_type}` `{id}` is {} and the token serves {}",
        owner.as_ref().map_or("not on record".to_owned(), |owner| format!("owned by `{owner}`")),
        customer.as_ref().map_or("no customer".to_owned(), |customer| format!("`{customer}`"))
    )]
    WrongOwner {
        /// The record's entity type.
        entity_type: String,
        /// The record's id, as the call named it.
        id: String,
        /// Its owner; `None` when there is no such record.
        owner: Option<String>,
        /// The customer the token serves, if any.
        customer: Option<String>,
    },
    /// The owner could not be told, so the call is refused.
    #[error("the owner of the record cannot be told: {0}")]
    OwnerUnknown(String),
}

impl OwnerRefusal {
    /// The stable reason code: `wrong_owner` or `owner_unknown`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongOwner { .. } => "wrong_owner",
            Self::OwnerUnknown(_) => "owner_unknown",
        }
    }

    /// The record's owner, when it has one (for the audit log only).
    pub fn owner(&self) -> Option<&str> {
        match self {
            Self::WrongOwner { owner, .. } => owner.as_deref(),
            Self::OwnerUnknown(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_core::{Scope, ToolName};
    use serde_json::json;

    /// Orders `#1` (alice's) and `#2` (bob's); products are nobody's; anything else is unknown.
    struct Shop;

    impl OwnerResolver for Shop {
        fn owner(&self, entity_type: &str, id: &str) -> Result<Ownership, String> {
            match (entity_type, id) {
                ("Order", "#1") => Ok(Ownership::Customer("alice".into())),
                ("Order", "#2") => Ok(Ownership::Customer("bob".into())),
                ("Order", _) => Ok(Ownership::Missing),
                ("Product", _) => Ok(Ownership::Unowned),
                (other, _) => Err(format!("no rule for `{other}`")),
            }
        }
    }

    fn spec(entity_type: Option<&str>) -> ToolSpec {
        let spec = ToolSpec::new(
            ToolName::new("look").unwrap(),
            "",
            json!({"type": "object"}),
            Scope::new("orders:read").unwrap(),
        );
        match entity_type {
            Some(entity_type) => spec.touches(entity_type, "id"),
            None => spec,
        }
    }

    fn claims(customer: Option<&str>) -> Claims {
        Claims {
            iss: "warden".into(),
            sub: "bot".into(),
            aud: vec!["desk".into()],
            task: "t".into(),
            serves: Vec::new(),
            on_behalf_of: customer.map(str::to_owned),
            scope: "orders:read".into(),
            iat: 0,
            nbf: 0,
            exp: 1,
            jti: "j".into(),
            act: None,
            tool: None,
            args_digest: None,
        }
    }

    fn check(
        entity_type: Option<&str>,
        id: Value,
        customer: Option<&str>,
    ) -> Result<(), &'static str> {
        OwnerBinding::new(Arc::new(Shop))
            .check(&spec(entity_type), &json!({ "id": id }), &claims(customer))
            .map_err(|refusal| refusal.code())
    }

    #[test]
    fn only_the_owner_passes_and_a_missing_record_is_refused_like_anothers() {
        assert_eq!(check(Some("Order"), json!("#1"), Some("alice")), Ok(()));
        assert_eq!(check(Some("Order"), json!("#2"), Some("alice")), Err("wrong_owner"));
        assert_eq!(check(Some("Order"), json!("#9"), Some("alice")), Err("wrong_owner"));
        assert_eq!(check(Some("Order"), json!("#2"), Some("bob")), Ok(()));
    }

    #[test]
    fn a_token_serving_nobody_touches_only_what_nobody_owns() {
        assert_eq!(check(Some("Order"), json!("#1"), None), Err("wrong_owner"));
        assert_eq!(check(Some("Product"), json!("p"), None), Ok(()));
        assert_eq!(check(None, json!("#1"), None), Ok(()), "a call naming no record");
    }

    #[test]
    fn an_owner_that_cannot_be_told_is_a_refusal() {
        assert_eq!(check(Some("Invoice"), json!("i"), Some("alice")), Err("owner_unknown"));
        assert_eq!(check(Some("Order"), json!(1), Some("alice")), Err("owner_unknown"));
    }

    #[test]
    fn the_detail_names_the_owner_for_the_audit_log() {
        let refusal = OwnerBinding::new(Arc::new(Shop))
            .check(&spec(Some("Order")), &json!({"id": "#2"}), &claims(Some("alice")))
            .unwrap_err();
        assert_eq!(refusal.owner(), Some("bob"));
        assert_eq!(
            refusal.to_string(),
            "`Order` `#2` is owned by `bob` and the token serves `alice`"
        );
    }
}
