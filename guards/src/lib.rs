//! Warden's stages: the guards that plug into `agent-core`'s pipeline.
//!
//! - [`credentials`]: short-lived EdDSA tokens per task, per-call tokens bound to the arguments,
//!   attenuation for subagents, revocation, and the [`credentials::CredentialGuard`].
//!
//! Each stage is an implementation of one of `agent-core`'s roles ([`agent_core::Guard`],
//! [`agent_core::CallCredentials`], [`agent_core::Delegator`], [`agent_core::Approver`]); none
//! changes the pipeline itself. Cedar policy, approval channels, budgets and provenance arrive with
//! their own issues.

pub mod credentials;
