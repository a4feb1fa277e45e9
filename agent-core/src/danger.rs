//! Things that weaken a guarantee, named so that nobody uses them by accident.
//!
//! Everything here exists for a measured reason: benchmarks need guards that cost nothing but
//! their call, and the eval harness needs a guards-off positive control to prove that an attack
//! scenario really attacks. Production code has no business importing this module; grep for
//! `danger::` to audit who does.

use crate::guard::{CallContext, Decision, Guard, ProposedCall};

/// A guard that allows every call. Benchmarks and positive controls only.
#[derive(Debug, Clone, Default)]
pub struct DangerousAllowAll {
    name: String,
}

impl DangerousAllowAll {
    /// An allow-all guard with a name for the audit log.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl Guard for DangerousAllowAll {
    fn name(&self) -> &str {
        if self.name.is_empty() { "dangerous_allow_all" } else { &self.name }
    }

    fn check(&self, _call: &ProposedCall<'_>, _ctx: &CallContext) -> Decision {
        Decision::Allow
    }
}
