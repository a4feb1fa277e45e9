//! Credentials: short-lived, narrowly scoped tokens, checked at every call.
//!
//! An agent never holds a long-lived key. Each task runs with a **task token**: an EdDSA JWT that
//! names the agent, the tool servers it may reach, the task, the customer it serves and its
//! scopes, and expires in minutes. The [`CredentialGuard`] verifies it at every call and checks it
//! grants the tool's scope. For writes, [`CallTokens`] mints a **per-call token** bound to the tool
//! and the digest of the exact arguments, living seconds, accepted once: the tool server checks it
//! itself with [`Verifier::verify_call`]. A subagent gets an **attenuated** token
//! ([`Issuer::attenuate`]): fewer scopes, no later expiry, the delegation chain in `act`.
//!
//! ```
//! use agent_core::{AgentId, Scope, TaskId};
//! use guards::credentials::{Issuer, KeyRing, TaskGrant};
//!
//! let dir = tempfile::tempdir()?;
//! let issuer = Issuer::new("warden", KeyRing::open(dir.path().join("keys"), 1_700_000_000)?)?;
//! let token = issuer.mint_task(&TaskGrant {
//!     agent: AgentId::new("refund-bot"),
//!     task: TaskId::new("T-1001"),
//!     audience: vec!["support-desk".into()],
//!     scopes: vec![Scope::new("orders:read")?],
//!     on_behalf_of: Some("noah_brown_6181".into()),
//!     lifetime: None,
//! })?;
//! let claims = issuer.verifier()?.verify(token.expose(), "support-desk")?;
//! assert_eq!(claims.task, "T-1001");
//! // Another tool server refuses it.
//! let refused = issuer.verifier()?.verify(token.expose(), "mail-server").unwrap_err();
//! assert_eq!(refused.code(), "wrong_audience");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checked_tool;
mod claims;
mod guard;
mod issuer;
mod keys;
mod revocation;
mod verifier;

pub use checked_tool::{OwnerBinding, OwnerRefusal, OwnerResolver, Ownership, TokenCheckedTool};
pub use claims::{Actor, Claims};
pub use guard::CredentialGuard;
pub use issuer::{
    CallTokens, DEFAULT_CALL_LIFETIME, DEFAULT_TASK_LIFETIME, IssueError, Issuer, Narrowing,
    TaskGrant,
};
pub use keys::{KeyError, KeyRing};
pub use revocation::{ReplayCache, Revocations};
pub use verifier::{CredentialError, DEFAULT_LEEWAY_SECONDS, JwksError, Rejection, Verifier};

/// No Warden token may be valid for longer than this, whatever its issuer asks: one hour.
pub const MAX_LIFETIME_SECONDS: u64 = 3600;

/// Seconds since the epoch.
pub(crate) fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `bytes` random bytes from the system's CSPRNG, as hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut buffer = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buffer)?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}
