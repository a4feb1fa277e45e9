//! The adversarial eval harness: scenario files, scripted and gullible models, the scorecard and
//! the release gate.
//!
//! Scenarios script what a compromised model asks for, and the runtime, not the model, must hold;
//! each attack is also run with the guards off (a positive control) so an inert scenario cannot
//! pass as a stopped attack. It starts empty until its issue lands; today the guarantees it will
//! score are proven by `agent-core`'s tests.

pub use agent_core::danger;
