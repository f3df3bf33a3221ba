//! The typed Ralio API client generated at build time by progenitor from
//! `openapi/ralio.json` (see `build.rs`). Nothing here is written by hand.
//!
//! This is the low-level layer: one builder method per operation on [`Client`], request and
//! response types in [`types`]. Construct it with
//! [`Client::new_with_client`]`(base_url, reqwest_client, middleware_client)`: every request
//! runs through the `ClientWithMiddleware` (see `crate::transport::hooks`); the plain `reqwest::Client`
//! argument is only what [`ClientInfo::client`] returns. Do not use `Client::new`: it sets a
//! 15 s total timeout that cuts chat streams.
//!
//! Error responses (4xx/5xx) come back as
//! [`Error::ErrorResponse`]`(`[`ResponseValue`]`<`[`ByteStream`]`>)`: status, headers and the raw
//! body, so the caller keeps them even when the body is not the documented JSON.

#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    unused_imports,
    elided_lifetimes_in_paths,
    unreachable_pub
)]

include!(concat!(env!("OUT_DIR"), "/ralio_api.rs"));
