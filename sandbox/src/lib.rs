//! `ralio-sandbox`: a faithful, strict local implementation of the Ralio API.
//!
//! Every test, example and demo of the `ralio` SDK runs against it, and users can run their own
//! integration tests against it. It implements the wire protocol described in the repository's
//! `docs/protocol.md` independently of the SDK: assertions and DPoP proofs are verified here with
//! `jsonwebtoken` (on aws-lc-rs), an implementation the SDK does not use, so the SDK and the
//! sandbox check each other.
//!
//! # In your tests
//!
//! Start it in-process, register with a ticket it mints, point the client at
//! [`Sandbox::base_url`], and play the owner with its methods: [`Sandbox::approve_intent`] and
//! [`Sandbox::reject_intent`] decide a payment waiting for approval (above the approval
//! threshold, £100 by default: [`SandboxBuilder::approval_threshold`]),
//! [`Sandbox::pending_intent_ids`] lists them, [`Sandbox::revoke_binding`] revokes a
//! credential, [`Sandbox::set_faults`] injects failures. The `ralio` README's "Testing your
//! integration" shows a whole test.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ralio_sandbox::SandboxError> {
//! use ralio_sandbox::{Sandbox, TicketSpec};
//!
//! let sandbox = Sandbox::builder().start().await?; // on a free loopback port
//! let ticket = sandbox.mint_ticket(TicketSpec::default());
//! // … register with `ticket` at `sandbox.base_url()`, then ask the agent to pay £250 …
//! for id in sandbox.pending_intent_ids() {
//!     sandbox.approve_intent(&id)?; // the payment executes
//! }
//! # let _ = ticket;
//! # Ok(()) }
//! ```
//!
//! The same operations are available over HTTP for other languages and for `ralio sandbox`
//! (the [admin API](#admin-api), off by default).
//!
//! # Behaviour worth knowing
//!
//! - Registration, token endpoint and resources follow `docs/protocol.md`, error codes and
//!   statuses included. Assertions may live at most 300 s; `iat` may be at most 10 s in the
//!   future; proofs are accepted up to 300 s old; every `jti` is single-use.
//! - A missing `Authorization` header gets `401` with `WWW-Authenticate: DPoP algs="ES256"` and no
//!   error code (RFC 6750 §3.1); a proof whose key is not the token's gets `invalid_dpop_proof`;
//!   a missing scope gets `403` with `error="insufficient_scope"`.
//! - [`NonceMode::Require`] also requires a DPoP proof at the token endpoint (without one the
//!   answer is `400 use_dpop_nonce` with a `DPoP-Nonce` header). Nonces rotate every 60 s (or
//!   on [`Sandbox::rotate_nonce`]); the previous nonce stays valid for one rotation.
//! - Every response carries `Date` from the server's clock, which the clock-offset fault moves.
//! - The expected `htu` and assertion `aud` come from [`Sandbox::base_url`] (the listening
//!   address, or [`SandboxBuilder::public_url`]), never from the request's `Host` header.
//! - Tickets never carry `agents:config` (human-only): the admin API refuses such a ticket with
//!   `422`, and registration with a ticket minted through [`Sandbox::mint_ticket`] that carries
//!   it (or an unknown scope) answers `422 invalid_scope` and creates no binding.
//! - [`Answers::Varied`] (builder [`SandboxBuilder::answers`], binary flag `--variants`, or
//!   `RALIO_SANDBOX_VARIANTS=1`) answers in the legal variety the official SDKs show a real server
//!   may use: integer `agent_number`, naive timestamps, left-out and `null` optional fields,
//!   unknown fields and statuses, plain 401s without a challenge, SSE with keep-alives, CRLF and
//!   records split across frames. Deterministic from the seed; [`Answers`] lists each variation
//!   with its evidence. [`Answers::Uniform`] is the default.
//! - Route keys for counters and `fail_next` faults are `"METHOD /route/pattern"`, for example
//!   `"POST /oauth/token"` or `"GET /api/credential-bindings/registrations/{poll_token}"`.
//!
//! # Admin API
//!
//! Served only with [`SandboxBuilder::admin_api`] (`ralio sandbox` serves it on loopback
//! addresses).
//!
//! | method, path | body | answer |
//! | --- | --- | --- |
//! | `POST /sandbox/tickets` | `{agent_id?, scopes?, expires_in? (s)}` | `201 {ticket, agent_id, scopes}`; `422` for a scope a binding cannot hold |
//! | `GET /sandbox/counters` | | [`Counters`] |
//! | `GET`/`PUT /sandbox/faults` | [`Faults`] (`latency_ms`) | the faults now in force |
//! | `GET /sandbox/registrations` | | `{fingerprints: [..]}` pending legacy registrations |
//! | `POST /sandbox/registrations/{poll_token or fingerprint}/approve` | | `{client_id}` |
//! | `POST /sandbox/registrations/{poll_token or fingerprint}/reject` | | `204` |
//! | `GET /sandbox/payment-intents/pending` | | `{ids: [..]}` newest first |
//! | `POST /sandbox/payment-intents/{id}/approve` | | `204` (the intent executes) |
//! | `POST /sandbox/payment-intents/{id}/reject` | `{reason?}` | `204` |
//! | `POST /sandbox/bindings/{client_id}/revoke` | | `204` |
//! | `POST /sandbox/bindings/{client_id}/revoke-refresh-family` | | `204` |
//! | `POST /sandbox/nonce/rotate` | | `204` |
//! | `GET /sandbox/console` | | the owner's console, an HTML page ([`Sandbox::console_url`]) |
//! | `GET /sandbox/console/fragment` | | the page's live part, HTML |
//! | `GET /sandbox/console/events` | | `text/event-stream`: `changed` when what the page shows changed |
//!
//! Unknown ids answer `404`, an intent that is not pending `409`, both `{"detail": "…"}`.
//!
//! The admin API answers only requests whose `Host` is the sandbox's own address or public URL
//! (a guard against DNS rebinding). It refuses writes (any method but `GET`, `HEAD`, `OPTIONS`)
//! that a browser marks as coming from another origin (`Sec-Fetch-Site` other than
//! `same-origin` or `none`, an `Origin` other than the sandbox's) with `403`, and bodies a page
//! may send cross-origin without a preflight (form data, plain text) with `415`; it grants no
//! CORS preflight. A program that sends no `Origin` (curl, a test) is served.
//!
//! # The owner's console
//!
//! `/sandbox/console` lets a person play the account owner in a browser: approve or reject
//! pending payment intents (a rejection asks for the reason) and pending legacy registrations,
//! see the balance, spend limit, approval threshold and recent activity, and mint a ticket. It
//! is server-rendered HTML (every string from the state escaped) with a small script and a
//! stylesheet embedded in the crate; its `Content-Security-Policy` allows nothing but its own
//! origin and no framing. Open pages follow an event stream and fetch the live part again when
//! something changed, so a program waiting with `wait_for_outcome` sees the owner's click at
//! its next poll.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ralio_sandbox::SandboxError> {
//! use ralio_sandbox::{Sandbox, TicketSpec};
//! let sandbox = Sandbox::builder().seed(7).start().await?;
//! let ticket = sandbox.mint_ticket(TicketSpec::default());
//! println!("{} {}", sandbox.base_url(), ticket.len());
//! # Ok(()) }
//! ```

// Handlers answer early with a ready `Response` as the error side; it is not a hot path.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Scope that lets a binding chat with its agent.
pub const SCOPE_AGENTS_EXECUTE: &str = "agents:execute";
/// Scope that lets a binding read transactions and payment intents.
pub const SCOPE_TRANSACTIONS_READ: &str = "transactions:read";
/// Human-only scope: a credential binding can never hold it.
pub const SCOPE_AGENTS_CONFIG: &str = "agents:config";

/// How the server uses DPoP nonces (RFC 9449 §8 and §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NonceMode {
    /// No nonces (the Ralio default).
    #[default]
    Off,
    /// Fresh nonces ride on responses; a proof without a nonce is accepted, one with a stale
    /// nonce is challenged with `use_dpop_nonce`.
    Offer,
    /// Every proof must carry a current server nonce, else `use_dpop_nonce`.
    Require,
}

/// What a registration ticket grants. `Default`: the default agent, both binding scopes, 1 hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketSpec {
    /// Agent the binding will act for; `None` means the sandbox's default agent. An unknown id
    /// creates that agent.
    pub agent_id: Option<String>,
    /// Scope ceiling of the ticket.
    pub scopes: Vec<String>,
    /// Time until the ticket expires (by the server's clock).
    pub expires_in: Duration,
}

impl Default for TicketSpec {
    fn default() -> Self {
        Self {
            agent_id: None,
            scopes: vec![
                SCOPE_AGENTS_EXECUTE.to_owned(),
                SCOPE_TRANSACTIONS_READ.to_owned(),
            ],
            expires_in: Duration::from_secs(3600),
        }
    }
}

/// Injected faults. All off by default. Set with [`SandboxBuilder::faults`],
/// [`Sandbox::set_faults`] or `PUT /sandbox/faults` (same JSON shape as this struct, durations in
/// milliseconds as `latency_ms`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Fraction (0.0 to 1.0) of Ralio API requests answered with `error_status`.
    pub error_rate: f64,
    /// The next N requests of a route answer `error_status`. Keys are route keys such as
    /// `"POST /api/chat"` or `"GET /api/transactions"` (method, space, route pattern).
    pub fail_next: BTreeMap<String, u32>,
    /// Status of injected errors; 0 means 500.
    pub error_status: u16,
    /// Latency added before every Ralio API request is handled.
    #[serde(with = "duration_ms", rename = "latency_ms")]
    pub latency: Duration,
    /// Cut the chat stream's connection after this many events (no `reply` arrives).
    pub stream_cut_after: Option<u32>,
    /// Send an `error` event after this many events and end the stream.
    pub stream_error_after: Option<u32>,
    /// Seconds the server's clock is ahead (positive) or behind (negative) the real one. It shows
    /// in the `Date` header and in every `iat`/`exp` check.
    pub clock_offset_secs: i64,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Request counters, so tests can assert "exactly one mint".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Successful `client_credentials` grants.
    pub token_mints: u64,
    /// Successful `refresh_token` grants.
    pub refreshes: u64,
    /// Registration requests answered 201 or 202.
    pub registrations: u64,
    /// Every request that reached `POST /api/chat` or `POST /api/chat/stream`, whatever its outcome.
    pub chat_posts: u64,
    /// Requests per route key (`"GET /api/agents"`, `"POST /oauth/token"`, ...), whatever their outcome.
    pub requests: BTreeMap<String, u64>,
    /// Total latency fault served, in milliseconds: each request held back by
    /// [`Faults::latency`] adds its delay once the delay has passed.
    #[serde(default)]
    pub injected_latency_ms: u64,
    /// Plain `401 {"detail": "Token expired"}` answers (no `WWW-Authenticate`) sent to resource
    /// calls by [`Answers::Varied`]; always 0 in [`Answers::Uniform`].
    #[serde(default)]
    pub plain_401s: u64,
}

/// Errors of the sandbox's own Rust API (not the HTTP API).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The listening socket could not be bound.
    #[error("could not listen on {addr}: choose a free address or port 0")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// No payment intent has that id.
    #[error("no payment intent {id} in this sandbox: list them with GET /api/payment-intents")]
    UnknownIntent {
        /// Id asked for.
        id: String,
    },
    /// The intent is not waiting for approval.
    #[error(
        "payment intent {id} is {status}, not pending_approval: only pending intents can be decided"
    )]
    IntentNotPending {
        /// Intent id.
        id: String,
        /// Its approval status.
        status: String,
    },
    /// No pending legacy registration matches.
    #[error(
        "no pending registration matches: pass the poll token or the key fingerprint of a registration answered 202"
    )]
    UnknownRegistration,
    /// No binding has that client id.
    #[error("no credential binding {client_id} in this sandbox")]
    UnknownBinding {
        /// Client id asked for.
        client_id: String,
    },
    /// A builder setting is out of range.
    #[error("invalid sandbox setting {setting}: {reason}")]
    InvalidConfig {
        /// Which setting.
        setting: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Configures and starts a [`Sandbox`].
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    config: Config,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) seed: u64,
    pub(crate) nonce_mode: NonceMode,
    pub(crate) legacy_registration: bool,
    pub(crate) access_token_lifetime: Duration,
    pub(crate) refresh_token_lifetime: Duration,
    pub(crate) rate_limit: Option<u32>,
    pub(crate) admin_api: bool,
    pub(crate) addr: SocketAddr,
    pub(crate) public_url: Option<String>,
    pub(crate) balance: Decimal,
    pub(crate) spend_limit: Decimal,
    pub(crate) approval_threshold: Decimal,
    pub(crate) faults: Faults,
    pub(crate) answers: Answers,
    /// Why `RALIO_SANDBOX_VARIANTS` could not be read; `start` reports it.
    pub(crate) answers_env_error: Option<&'static str>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 0,
            nonce_mode: NonceMode::Off,
            legacy_registration: false,
            access_token_lifetime: Duration::from_secs(1800),
            refresh_token_lifetime: Duration::from_secs(30 * 24 * 3600),
            rate_limit: None,
            admin_api: false,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            balance: Decimal::new(1_000_000, 2),
            spend_limit: Decimal::new(100_000, 2),
            approval_threshold: Decimal::new(10_000, 2),
            faults: Faults::default(),
            answers: Answers::Uniform,
            answers_env_error: None,
        }
    }
}

impl SandboxBuilder {
    /// Seed of the deterministic ids and of the fault dice (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }
    /// DPoP nonce behaviour (default [`NonceMode::Off`]).
    pub fn nonce_mode(mut self, mode: NonceMode) -> Self {
        self.config.nonce_mode = mode;
        self
    }
    /// Registration answers 202 with a poll token and waits for approval (default false).
    pub fn legacy_registration(mut self, on: bool) -> Self {
        self.config.legacy_registration = on;
        self
    }
    /// Lifetime of access tokens (default 1800 s).
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.access_token_lifetime = lifetime;
        self
    }
    /// Requests per second per binding on the resource endpoints; `None` (default) is unlimited.
    pub fn rate_limit(mut self, per_second: Option<u32>) -> Self {
        self.config.rate_limit = per_second;
        self
    }
    /// Seconds the server's clock runs ahead (positive) or behind (negative).
    pub fn clock_offset(mut self, secs: i64) -> Self {
        self.config.faults.clock_offset_secs = secs;
        self
    }
    /// Serve the admin API under `/sandbox/…` (default false).
    pub fn admin_api(mut self, on: bool) -> Self {
        self.config.admin_api = on;
        self
    }
    /// Listening address (default `127.0.0.1:0`, a free port).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.config.addr = addr;
        self
    }
    /// The URL clients use to reach the sandbox when it is not `http://<listening address>`
    /// (behind a proxy, in a container); required when listening on `0.0.0.0` or `::`. DPoP
    /// `htu` and assertion `aud` must name it, as they must name the real server's URL; the
    /// request's `Host` header never counts. An origin, `http(s)://host[:port]`, without path,
    /// query or credentials; a trailing `/` is dropped. `None` (default): `http://<address>`.
    pub fn public_url(mut self, url: Option<&str>) -> Self {
        self.config.public_url = url.map(str::to_owned);
        self
    }
    /// Starting balance of every agent, GBP (default 10,000.00).
    pub fn balance(mut self, amount: Decimal) -> Self {
        self.config.balance = amount;
        self
    }
    /// Largest single payment the agent may make, GBP (default 1,000.00).
    pub fn spend_limit(mut self, amount: Decimal) -> Self {
        self.config.spend_limit = amount;
        self
    }
    /// Payments above this wait for approval, GBP (default 100.00).
    pub fn approval_threshold(mut self, amount: Decimal) -> Self {
        self.config.approval_threshold = amount;
        self
    }
    /// Initial faults (default none). `clock_offset` set before is overwritten.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.config.faults = faults;
        self
    }

    /// How responses are shaped (default [`Answers::Uniform`], or what `RALIO_SANDBOX_VARIANTS`
    /// says; this call overrides the variable).
    pub fn answers(mut self, answers: Answers) -> Self {
        self.config.answers = answers;
        self.config.answers_env_error = None;
        self
    }

    /// Binds the socket and starts serving in the background on the current Tokio runtime.
    pub async fn start(self) -> Result<Sandbox, SandboxError> {
        server::start(self.config).await
    }
}

/// A running sandbox. It shuts down when dropped.
pub struct Sandbox {
    base_url: String,
    local_addr: SocketAddr,
    state: Arc<state::Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Open console pages hold event streams, which graceful shutdown would wait for.
        self.state.close_changes();
    }
}

impl Sandbox {
    /// A builder with the defaults. The answer mode starts from the environment variable
    /// `RALIO_SANDBOX_VARIANTS` (see [`Answers::from_env`]), so a test suite can run against both
    /// modes without code changes; [`SandboxBuilder::answers`] overrides it.
    pub fn builder() -> SandboxBuilder {
        let mut config = Config::default();
        match Answers::from_env() {
            Ok(a) => config.answers = a,
            Err(reason) => config.answers_env_error = Some(reason),
        }
        SandboxBuilder { config }
    }

    /// The answer mode this sandbox runs in.
    pub fn answers(&self) -> Answers {
        self.state.config.answers
    }

    /// The URL clients use, without a trailing slash: the configured
    /// [`public_url`](SandboxBuilder::public_url), else `http://127.0.0.1:PORT` (the listening
    /// address). DPoP `htu` and assertion `aud` must name it.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the sandbox listens on (the port chosen when the builder asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The owner's console, `…/sandbox/console`, when the admin API is on
    /// ([`SandboxBuilder::admin_api`]): a page where a person approves or rejects pending
    /// payments and registrations, sees the balance, limits and recent activity, and mints
    /// tickets. It answers only requests addressed to this sandbox's own address.
    pub fn console_url(&self) -> Option<String> {
        self.state
            .config
            .admin_api
            .then(|| format!("{}{}", self.base_url, console::PATH))
    }

    /// The absolute token URL (`aud` of client assertions, `htu` of token-endpoint proofs).
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base_url)
    }

    /// Mints a one-time registration ticket `ralio-reg-…`.
    pub fn mint_ticket(&self, spec: TicketSpec) -> String {
        self.state.mint_ticket(spec)
    }

    /// A snapshot of the request counters.
    pub fn counters(&self) -> Counters {
        self.state.counters()
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        self.state.faults()
    }

    /// Approves a pending legacy registration, found by poll token or key fingerprint (jkt).
    /// Returns the new binding's client id.
    pub fn approve_binding(&self, poll_token_or_fingerprint: &str) -> Result<String, SandboxError> {
        self.state
            .decide_registration(poll_token_or_fingerprint, true)
            .map(|c| c.unwrap_or_default())
    }

    /// Rejects a pending legacy registration, found by poll token or key fingerprint (jkt).
    pub fn reject_binding(&self, poll_token_or_fingerprint: &str) -> Result<(), SandboxError> {
        self.state
            .decide_registration(poll_token_or_fingerprint, false)
            .map(|_| ())
    }

    /// Key fingerprints (jkt) of the legacy registrations waiting for a decision.
    pub fn pending_binding_fingerprints(&self) -> Vec<String> {
        self.state.pending_registration_fingerprints()
    }

    /// Approves a payment intent waiting for approval; it executes at once.
    pub fn approve_intent(&self, id: &str) -> Result<(), SandboxError> {
        self.state.decide_intent(id, None)
    }

    /// Rejects a payment intent waiting for approval, with a decision reason.
    pub fn reject_intent(&self, id: &str, reason: &str) -> Result<(), SandboxError> {
        self.state.decide_intent(id, Some(reason))
    }

    /// Ids of the payment intents waiting for approval, newest first.
    pub fn pending_intent_ids(&self) -> Vec<String> {
        self.state.pending_intent_ids()
    }

    /// Revokes every refresh-token family of the binding, with the access tokens issued from them.
    pub fn revoke_refresh_family(&self, client_id: &str) -> Result<(), SandboxError> {
        self.state.revoke_families(client_id)
    }

    /// Revokes the binding: its tokens die and its assertions are refused with `invalid_client`.
    pub fn revoke_binding(&self, client_id: &str) -> Result<(), SandboxError> {
        self.state.revoke_binding(client_id)
    }

    /// Replaces the server's DPoP nonce now (the previous one stays valid until the next rotation).
    pub fn rotate_nonce(&self) {
        self.state.rotate_nonce();
    }

    /// Current balance of an agent, GBP; `None` for an unknown agent.
    pub fn balance(&self, agent_id: &str) -> Option<Decimal> {
        self.state.lock().agents.get(agent_id).map(|a| a.balance)
    }

    /// Id of the agent that tickets bind to by default.
    pub fn default_agent_id(&self) -> String {
        self.state.default_agent_id()
    }
}

pub use variants::{ANSWERS_ENV, Answers, plain_401_every};

mod admin;
mod agent;
mod auth;
mod console;
mod jose;
mod oauth;
mod registration;
mod resources;
mod server;
mod state;
mod variants;
