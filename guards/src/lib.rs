//! Warden's stages: the guards that plug into `agent-core`'s pipeline.
//!
//! This crate will hold the credential issuer and verifier (short-lived EdDSA JWTs, attenuation
//! for subagents, revocation), the Cedar policy guard, the approval channels (terminal, web
//! console), budgets and provenance. Each is an implementation of [`agent_core::Guard`] or
//! [`agent_core::Approver`]; none changes the pipeline itself.
//!
//! It starts empty: the spine (`agent-core`) lands first, and the guards arrive with their own
//! issues, each with the attacks it stops as tests.

pub use agent_core::{Decision, Guard, Reason};
