//! The typed Ralio API client generated at build time by progenitor from
//! `openapi/ralio.json` (see `build.rs`). Nothing here is written by hand.
//!
//! This is the low-level layer: one builder method per operation on [`Client`], request and
//! response types in [`types`]. The easy way to use it is through a
//! [`RalioClient`](crate::RalioClient): `client.api().call(|api| api.list_agents().send())`
//! runs it on the client's own stack (auth, retries, tracing) and maps every failure to
//! [`crate::Error`], whatever the status. On its own, construct it with
//! [`Client::new_with_client`]`(base_url, reqwest_client, middleware_client)`: every request
//! runs through the `ClientWithMiddleware`; the plain `reqwest::Client` argument is only what
//! [`ClientInfo::client`] returns. Do not use `Client::new`: it sets a 15 s total timeout that
//! cuts chat streams.
//!
//! On its own, an error status comes back as progenitor's [`Error`]: a status the operation
//! documents as [`Error::ErrorResponse`] (status, headers and the body as the document
//! describes it), any other status as [`Error::UnexpectedResponse`] with the whole
//! `reqwest::Response`. Which statuses an operation documents is the document's choice and
//! changes with it, so match both (or go through `RalioClient::api`).

#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    unused_imports,
    elided_lifetimes_in_paths,
    unreachable_pub
)]

include!(concat!(env!("OUT_DIR"), "/ralio_api.rs"));
