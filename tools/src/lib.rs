//! The support-desk domain as Warden tools, its MCP server, and the MCP client adapter.
//!
//! This crate will hold the tau2-bench-compatible retail desk (users, orders, products, tickets),
//! each operation as an [`agent_core::Tool`] with its scope and effect class, an MCP server
//! (rmcp) that verifies Warden tokens itself, and the adapter that imports an MCP server's tools
//! into a pinned menu. It starts empty until its issue lands.

pub use agent_core::{EffectClass, Tool, ToolSpec};
