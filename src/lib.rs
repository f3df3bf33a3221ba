//! Rust SDK for the Ralio agentic payment API.
//!
//! Work in progress: see the README for what has landed.

pub mod auth;
