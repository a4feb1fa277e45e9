//! Identifiers: newtypes so an agent id can never be passed where a task id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an identifier.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }
    };
}

identifier!(
    /// The identity of an agent (or subagent): the principal of every call it makes.
    AgentId
);
identifier!(
    /// One task: one conversation with the model, such as the handling of one ticket.
    TaskId
);
identifier!(
    /// One tool call, as numbered by the runtime: [`Pipeline::authorize`](crate::Pipeline::authorize)
    /// mints one for every call it is asked about ([`CallId::mint`]). The model's own `tool_use`
    /// id is never one of these: it is text the model wrote, kept only to answer the model and as
    /// a recorded attribute. Budgets, approvals, per-call tokens, idempotency and the audit's
    /// grouping all key on this id, so a model repeating an id gains nothing.
    CallId
);

impl CallId {
    /// A new id, unique across runs and processes: `call-` and a [`unique_suffix`].
    pub fn mint() -> Self {
        Self(format!("call-{}", unique_suffix()))
    }
}

/// Text no other call of this function returns, in this process or (with overwhelming
/// probability) any other: the time in milliseconds, the process id, a count of the ids this
/// process made, and 32 random bits, in hex. Ids the runtime keys on are made of it, never of
/// anything the model or a tool chose.
pub fn unique_suffix() -> String {
    static MINTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    let count = MINTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{millis:x}-{:x}-{count:x}-{:08x}", std::process::id(), fastrand::u32(..))
}
