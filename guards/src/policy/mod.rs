//! Policy: Cedar decides, per call, whether this agent may make this call for this task on this
//! data, and whether a human must say yes first.
//!
//! Rules live in Cedar files validated against a schema when they are loaded
//! ([`PolicyBundle::load`]); a rule that does not check stops the start. The [`PolicyGuard`] builds
//! each request from the call: the principal is the acting agent (with its role and team), the
//! action is the tool (grouped into `read`, `write`, `irreversible`), the resource is the record
//! the tool's declared argument names (resolved by an [`EntityResolver`]), and the context holds
//! the task and its customer, the arguments, the money moved, the budget used so far and the
//! provenance of the arguments. See `docs/policy.md` for how to write a rule.

mod bundle;
mod entities;
mod evaluate;
mod guard;

pub use bundle::{Mode, PolicyBundle, PolicyError};
pub use entities::{DerivedFacts, EntityResolver, ResolvedEntity, StaticEntities};
pub use evaluate::{CallFacts, Evaluation, OutboundFacts, Outcome, UNSCOPED};
pub use guard::{Explanation, PolicyGuard};
