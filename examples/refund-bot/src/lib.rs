//! The refund bot: a support agent whose guards hold when its model does not.
//!
//! Everything that makes the agent what it is lives in its manifest ([`manifest`], the file
//! `agent.toml`): model, prompt, tools and menu, scopes, policy, approvals, budgets, audit. The
//! [`runtime`] assembles the controls from it; the [`demo`] works through the ticket [`queue`]
//! and prints a [`transcript`]; `refund-bot audit …` ([`audit_cli`]) checks and questions the
//! audit log afterwards.
//!
//! Offline, the model is the gullible stand-in for a prompt-injected Claude
//! ([`tools::gullible::GullibleModel`]): it obeys every instruction it reads, so the demo shows
//! the runtime, not the model, stopping each attack. With `ANTHROPIC_API_KEY` set, the same agent
//! runs on Claude.

pub mod audit_cli;
pub mod demo;
pub mod manifest;
pub mod options;
pub mod queue;
pub mod runtime;
pub mod transcript;

/// The line (from 1) of a byte offset in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len())).map_or(1, |before| before.matches('\n').count() + 1)
}
