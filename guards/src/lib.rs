//! Warden's stages: the guards that plug into `agent-core`'s pipeline.
//!
//! - [`credentials`]: short-lived EdDSA tokens per task, per-call tokens bound to the arguments,
//!   attenuation for subagents, revocation, and the [`credentials::CredentialGuard`].
//! - [`policy`]: Cedar policies per call, with `@approval` for "allowed with a human's yes",
//!   validated at start-up, budgets spent atomically with the decision, shadow mode and explain.
//! - [`approval`]: the approval channels (terminal, web console).
//! - [`notary`]: the runtime's signatures on its audit log (approval records, checkpoints), and
//!   their check against a JWK set.
//! - [`budget`]: the budget store (SQLite) behind the policy guard's hard caps.
//! - [`provenance`]: which arguments came only from untrusted content.
//!
//! Each stage is an implementation of one of `agent-core`'s roles ([`agent_core::Guard`],
//! [`agent_core::CallCredentials`], [`agent_core::Delegator`], [`agent_core::Approver`]); none
//! changes the pipeline itself.

pub mod approval;
pub mod budget;
pub mod credentials;
pub mod notary;
pub mod outbound;
pub mod policy;
pub mod provenance;

// The names an agent's assembly needs, at the root.
pub use budget::{BudgetStore, Limits};
pub use credentials::{
    CallTokens, CredentialGuard, Issuer, KeyRing, Revocations, TaskGrant, TokenCheckedTool,
    Verifier,
};
pub use notary::{IssuerNotary, LogSignatures};
pub use policy::{PolicyBundle, PolicyGuard};
