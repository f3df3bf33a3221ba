//! Registration: turn a one-time ticket into an active credential binding.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ralio::register::{register, RegisterOptions};
//! use ralio::store::FileStore;
//!
//! // The ticket comes from RALIO_REGISTRATION_TICKET unless given here.
//! let store = FileStore::from_env()?;
//! let binding = register(&store, RegisterOptions::new()).await?;
//! println!("registered {} with {:?}; key at {}", binding.client_id, binding.scopes, binding.key_location);
//! # Ok(()) }
//! ```
//!
//! The steps follow the protocol: the P-256 key is generated here and never leaves the host
//! (or stays in the [`Signer`] given with [`RegisterOptions::signer`]); the store stages it
//! durably before the request (and removes it again when registration fails); the
//! fingerprint the server echoes is checked against the key; the first token is minted right
//! away and its refresh token saved in the store.
//!
//! Older servers answer `202` and wait for the owner's approval: registration then keeps the
//! pending registration (poll token, API URL, key) in the store, polls (every 3 s, for up to
//! 15 minutes, both configurable) and reports progress to a callback. Only the server's
//! `rejected` or `expired` deletes the key; after a timeout or a failed poll, [`resume`]
//! continues where the wait stopped, in this process or a later one (`ralio register
//! --resume`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::api::types::RegisterCredentialBindingResponse;

use crate::auth::{
    AuthError, KeyError, MemoryRefreshTokenStore, PrivateKey, Signer, TokenManager,
    TokenManagerConfig,
};
use crate::scope::Scope;
use crate::store::{CredentialStore, Identity, PendingRegistration, StoreError};

/// Variable holding the default registration ticket.
const TICKET_VAR: &str = "RALIO_REGISTRATION_TICKET";
use crate::config::{DEFAULT_API_URL, ENV_API_URL as API_URL_VAR};

const REGISTRATIONS_PATH: &str = "/api/credential-bindings/registrations";

/// What registration reports to a [`RegisterOptions::on_progress`] callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationProgress {
    /// The public key is being sent with the ticket.
    #[non_exhaustive]
    Submitting {
        /// Thumbprint of the key being registered.
        fingerprint: String,
    },
    /// Legacy flow: the server is waiting for the owner to approve; registration keeps polling.
    #[non_exhaustive]
    AwaitingApproval {
        /// Thumbprint the owner sees in the console.
        fingerprint: String,
        /// Time spent waiting so far.
        elapsed: Duration,
        /// Time left before registration gives up.
        remaining: Duration,
        /// The status of the last answer (`pending_approval`, or one this SDK does not know,
        /// which is polled through as well); `None` before the first answer.
        status: Option<String>,
    },
    /// The binding is active.
    #[non_exhaustive]
    Active {
        /// The new binding's client id.
        client_id: String,
    },
}

type ProgressFn = Arc<dyn Fn(&RegistrationProgress) + Send + Sync>;

/// Options of [`register`]. `Default` is: ticket from `RALIO_REGISTRATION_TICKET`, API from
/// `RALIO_API_URL` (else production), a freshly generated key, the ticket's full scope ceiling,
/// no overwrite, legacy polling every 3 s for up to 15 minutes.
#[derive(Clone)]
pub struct RegisterOptions {
    ticket: Option<SecretString>,
    base_url: Option<String>,
    requested_scopes: Vec<Scope>,
    client_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    overwrite: bool,
    signer: Option<Arc<dyn Signer>>,
    poll_interval: Duration,
    approval_timeout: Duration,
    progress: Option<ProgressFn>,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        Self {
            ticket: None,
            base_url: None,
            requested_scopes: Vec::new(),
            client_metadata: None,
            overwrite: false,
            signer: None,
            poll_interval: Duration::from_secs(3),
            approval_timeout: Duration::from_secs(15 * 60),
            progress: None,
        }
    }
}

impl fmt::Debug for RegisterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterOptions")
            .field("ticket", &self.ticket.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("requested_scopes", &self.requested_scopes)
            .field("overwrite", &self.overwrite)
            .field("signer", &self.signer)
            .field("poll_interval", &self.poll_interval)
            .field("approval_timeout", &self.approval_timeout)
            .finish_non_exhaustive()
    }
}

impl RegisterOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The one-time `ralio-reg-…` ticket (instead of `RALIO_REGISTRATION_TICKET`).
    pub fn ticket(mut self, ticket: impl Into<String>) -> Self {
        self.ticket = Some(SecretString::from(ticket.into()));
        self
    }

    /// The API origin (instead of `RALIO_API_URL` or production). A trailing `/` is dropped.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Scopes to request (at most the ticket's ceiling): [`Scope`]s or their wire strings.
    /// Empty (the default) lets the server grant the full ceiling.
    pub fn requested_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Scope>,
    {
        self.requested_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Free-form client metadata shown to the owner (host name, version, ...).
    pub fn client_metadata(mut self, metadata: serde_json::Map<String, serde_json::Value>) -> Self {
        self.client_metadata = Some(metadata);
        self
    }

    /// Replace an identity or key file that already exists (default false: refuse).
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Register this signer's key (for example a Vault Transit key) instead of generating one.
    pub fn signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Legacy flow: time between two polls (default 3 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Legacy flow: how long to wait for the owner's approval (default 15 minutes).
    pub fn approval_timeout(mut self, timeout: Duration) -> Self {
        self.approval_timeout = timeout;
        self
    }

    /// Called as registration advances (to drive a spinner, for example).
    pub fn on_progress(
        mut self,
        f: impl Fn(&RegistrationProgress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Ignored: registration always uses a private client that never follows redirects (10 s
    /// connect and 30 s request timeouts), because a redirect would re-send the ticket to
    /// whatever origin it names, and a caller's client may follow redirects.
    #[deprecated(note = "ignored: registration always uses a private client without redirects")]
    pub fn http_client(self, client: reqwest::Client) -> Self {
        drop(client);
        self
    }

    fn report(&self, event: RegistrationProgress) {
        if let Some(f) = &self.progress {
            f(&event);
        }
    }
}

/// An active credential binding, as [`register`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Binding {
    /// The binding's client id (`cb_…`).
    pub client_id: String,
    /// The scopes the binding holds (from the first token's `scope`).
    pub scopes: Vec<Scope>,
    /// The key's RFC 7638 thumbprint.
    pub fingerprint: String,
    /// Where the key is kept, in words (a file path, a keyring entry, a Vault path).
    pub key_location: String,
}

/// An error code of the registration endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationErrorCode {
    /// `invalid_ticket` (400).
    InvalidTicket,
    /// `ticket_expired` (410).
    TicketExpired,
    /// `ticket_already_consumed` (409).
    TicketAlreadyConsumed,
    /// `public_key_already_in_use` (409).
    PublicKeyAlreadyInUse,
    /// `invalid_public_key` (422).
    InvalidPublicKey,
    /// `invalid_scope` (422).
    InvalidScope,
    /// `scope_exceeds_ticket_ceiling` (422).
    ScopeExceedsTicketCeiling,
    /// A code this SDK does not know, or none.
    Other(String),
}

impl RegistrationErrorCode {
    fn parse(code: &str) -> Self {
        match code {
            "invalid_ticket" => Self::InvalidTicket,
            "ticket_expired" => Self::TicketExpired,
            "ticket_already_consumed" => Self::TicketAlreadyConsumed,
            "public_key_already_in_use" => Self::PublicKeyAlreadyInUse,
            "invalid_public_key" => Self::InvalidPublicKey,
            "invalid_scope" => Self::InvalidScope,
            "scope_exceeds_ticket_ceiling" => Self::ScopeExceedsTicketCeiling,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The code as the server spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidTicket => "invalid_ticket",
            Self::TicketExpired => "ticket_expired",
            Self::TicketAlreadyConsumed => "ticket_already_consumed",
            Self::PublicKeyAlreadyInUse => "public_key_already_in_use",
            Self::InvalidPublicKey => "invalid_public_key",
            Self::InvalidScope => "invalid_scope",
            Self::ScopeExceedsTicketCeiling => "scope_exceeds_ticket_ceiling",
            Self::Other(code) => code,
        }
    }

    /// What the caller should do about this code.
    fn advice(&self) -> &'static str {
        match self {
            Self::InvalidTicket => {
                "check that the whole ralio-reg-… ticket was copied, or ask the owner for a new one"
            }
            Self::TicketExpired => "ask the owner to mint a new ticket in the console",
            Self::TicketAlreadyConsumed => {
                "someone else used this ticket: ask the owner to revoke the credential it created and mint a new ticket"
            }
            Self::PublicKeyAlreadyInUse => {
                "this key is already registered; register again so a fresh key is generated"
            }
            Self::InvalidPublicKey => {
                "the server refused the key; register again with a fresh P-256 key"
            }
            Self::InvalidScope => {
                "request only agents:execute and/or transactions:read, or no scopes for the ticket's full ceiling"
            }
            Self::ScopeExceedsTicketCeiling => {
                "request fewer scopes, or ask the owner for a ticket with a higher scope ceiling"
            }
            Self::Other(_) => "check the ticket and the API URL, then try again",
        }
    }
}

/// Why registration failed. Messages say what to do; they never contain the ticket, the key or
/// a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// No ticket was given and `RALIO_REGISTRATION_TICKET` is unset.
    #[error(
        "no registration ticket: pass one or set RALIO_REGISTRATION_TICKET; the owner mints it in the console under Settings → Credentials"
    )]
    MissingTicket,
    /// The ticket given is empty once surrounding whitespace is trimmed. Nothing was sent.
    #[error(
        "the registration ticket is empty (only whitespace was given); paste the whole ralio-reg-… ticket"
    )]
    EmptyTicket,
    /// The store already holds an identity and overwriting was not asked for.
    #[error(
        "{store} already holds the identity of binding {client_id}; pass overwrite to replace it (revoke the old binding in the console if it is no longer used)"
    )]
    #[non_exhaustive]
    AlreadyRegistered {
        /// The store.
        store: String,
        /// The client id already stored.
        client_id: String,
    },
    /// The server refused the registration.
    #[error("registration refused (HTTP {}): {message}; {}", status.as_u16(), code.advice())]
    #[non_exhaustive]
    Refused {
        /// HTTP status.
        status: StatusCode,
        /// The error code.
        code: RegistrationErrorCode,
        /// The server's description, with where and by whom a consumed ticket was used.
        message: String,
        /// When a consumed ticket was used, if the server said.
        used_at: Option<String>,
        /// Which host used a consumed ticket, if the server said.
        used_by_host: Option<String>,
    },
    /// The server's fingerprint differs from the local key's: the binding is live under a key
    /// this host does not hold.
    #[error(
        "the server registered key {server} but this host holds key {local}: binding {client_id} is live under a key this host does not have; the local key was deleted; revoke the binding in the console under Settings → Credentials"
    )]
    #[non_exhaustive]
    FingerprintMismatch {
        /// The binding created, if the server said.
        client_id: String,
        /// Thumbprint of the local key.
        local: String,
        /// Thumbprint the server computed.
        server: String,
    },
    /// Legacy flow: the owner rejected the registration.
    #[error(
        "the owner rejected this registration (key {fingerprint}); ask them why, then register again with a new ticket"
    )]
    #[non_exhaustive]
    ApprovalRejected {
        /// Thumbprint of the key.
        fingerprint: String,
    },
    /// Legacy flow: the pending registration expired or disappeared on the server.
    #[error(
        "the pending registration (key {fingerprint}) {reason} before the owner approved it; register again with a new ticket"
    )]
    #[non_exhaustive]
    ApprovalExpired {
        /// Thumbprint of the key.
        fingerprint: String,
        /// `expired`, or `is no longer known to the server` (404).
        reason: &'static str,
    },
    /// Legacy flow: the owner did not approve in time. The registration is still pending on
    /// the server; when the store kept it (`pending`), [`resume`] continues it.
    #[error(
        "the owner did not approve the registration (key {fingerprint}) within {waited:?}; {}",
        match pending {
            Some(at) => format!("it is still pending, and its key and poll token are kept in {at}: once the owner approved it in the console, resume it (ralio::register::resume; the CLI: `ralio register --resume`)"),
            None => "ask them to approve it in the console and run registration again, or raise the approval timeout".to_owned(),
        }
    )]
    #[non_exhaustive]
    ApprovalTimedOut {
        /// Thumbprint of the key.
        fingerprint: String,
        /// How long registration waited.
        waited: Duration,
        /// Where the pending registration is kept, when the store keeps it.
        pending: Option<String>,
    },
    /// Legacy flow: polling failed for another reason than a decision (an error answer, a
    /// broken connection, an answer the SDK cannot use). The registration may still be
    /// pending: its key and poll token are kept (`pending`) for [`resume`].
    #[error(
        "polling the pending registration (key {fingerprint}) failed; {}",
        match pending {
            Some(at) => format!("its key and poll token are kept in {at}: resume it once the problem is fixed (ralio::register::resume; the CLI: `ralio register --resume`)"),
            None => "this store cannot keep it for later: register again with a new ticket".to_owned(),
        }
    )]
    PollFailed {
        /// Thumbprint of the key.
        fingerprint: String,
        /// Where the pending registration is kept, when the store keeps it.
        pending: Option<String>,
        /// What failed.
        #[source]
        source: Box<RegistrationError>,
    },
    /// [`resume`] found no pending registration in the store. Nothing was sent.
    #[error(
        "nothing to resume: there is no pending registration in the {store}; start a registration with a new ticket"
    )]
    NothingToResume {
        /// The store.
        store: String,
    },
    /// A registration is still waiting for the owner's approval in this store, and
    /// overwrite was not asked for. Nothing was sent.
    #[error(
        "a registration of key {fingerprint} is still waiting for the owner's approval in the {store}; resume it (ralio::register::resume; the CLI: `ralio register --resume`), or pass overwrite to abandon it and register again"
    )]
    AlreadyPending {
        /// The store.
        store: String,
        /// Thumbprint of the pending registration's key.
        fingerprint: String,
    },
    /// [`resume`] was given another API URL than the one the pending registration was sent
    /// to. Nothing was sent.
    #[error(
        "the pending registration was sent to {pending_url}, not {url}; resume it with that API URL"
    )]
    PendingElsewhere {
        /// The API origin the registration was sent to.
        pending_url: String,
        /// The API origin given.
        url: String,
    },
    /// The server failed (5xx) without registering anything.
    #[error(
        "the registration server failed (HTTP {}); nothing was registered: try again later",
        status.as_u16()
    )]
    #[non_exhaustive]
    ServerError {
        /// HTTP status.
        status: StatusCode,
    },
    /// The server answered something the protocol does not allow.
    #[error(
        "the registration server answered unexpectedly (HTTP {}): {reason}; check RALIO_API_URL",
        status.as_u16()
    )]
    #[non_exhaustive]
    UnexpectedResponse {
        /// HTTP status.
        status: StatusCode,
        /// What was wrong.
        reason: String,
    },
    /// The server could not be reached.
    #[error(
        "could not reach the registration server at {url}; check the network and RALIO_API_URL"
    )]
    #[non_exhaustive]
    Http {
        /// The URL that failed (no secrets: the poll token is left out).
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The registration request failed in the middleware stack before an answer arrived.
    #[error("the registration request to {url} failed before an answer arrived")]
    #[non_exhaustive]
    Middleware {
        /// The URL (no secrets: the poll token is left out).
        url: String,
        /// What failed.
        #[source]
        source: crate::auth::BoxError,
    },
    /// A key could not be generated.
    #[error("could not generate a P-256 key")]
    Key(#[source] KeyError),
    /// The signer given with [`RegisterOptions::signer`] has a public key the registration
    /// endpoint cannot take. Nothing was sent.
    #[error(
        "the signer's public key cannot be registered (it is not a P-256 JWK); use a P-256 (ES256) key; nothing was sent"
    )]
    UnsupportedSignerKey,
    /// The API URL is unusable, for example `http://` to a host that is not loopback (the
    /// ticket would travel in clear text). Nothing was sent.
    #[error("the API URL cannot be used for registration; nothing was sent")]
    InvalidUrl(#[source] crate::error::ConfigError),
    /// The store failed before the request (nothing was registered).
    #[error("the credential store failed before registration; nothing was registered")]
    Store(#[source] StoreError),
    /// The binding is active but its identity could not be saved.
    #[error(
        "binding {client_id} is active but could not be saved; {}",
        match staged_key {
            Some(at) => format!("its key is kept at {at}: fix the store, then save the identity (client id {client_id} with that key) into it, for example with CredentialStore::save_identity(&Identity::new(\"{client_id}\", key)); or revoke the binding in the console under Settings → Credentials and register again"),
            None => "revoke it in the console under Settings → Credentials and register again".to_owned(),
        }
    )]
    #[non_exhaustive]
    SaveFailed {
        /// The binding.
        client_id: String,
        /// Where the key was staged before the request, when the store staged it: the key
        /// is still there.
        staged_key: Option<String>,
        /// The store's error (boxed: it keeps this error small).
        #[source]
        source: Box<StoreError>,
    },
    /// The binding is active and saved, but minting its first token failed.
    #[error(
        "binding {client_id} is active and saved, but its first token could not be minted; the client will mint again when it starts"
    )]
    #[non_exhaustive]
    FirstToken {
        /// The binding.
        client_id: String,
        /// Why the mint failed.
        #[source]
        source: AuthError,
    },
}

/// Registers this host with a one-time ticket, saves the identity and the first refresh token
/// in `store`, and returns the binding. See the [module docs](self) for the steps.
///
/// In the legacy approval flow the registration is kept in the store while it waits (see
/// [`CredentialStore::save_pending_registration`]): when the owner does not approve in time,
/// or polling fails, the key and the poll token stay, and [`resume`] continues later. The
/// key is deleted only when the server says the registration was rejected or expired (or
/// when it failed before the server accepted it).
pub async fn register(
    store: &dyn CredentialStore,
    options: RegisterOptions,
) -> Result<Binding, RegistrationError> {
    let ticket = options
        .ticket
        .clone()
        .or_else(|| crate::config::env_var(TICKET_VAR).map(SecretString::from))
        .ok_or(RegistrationError::MissingTicket)?;
    let ticket = trimmed_ticket(ticket)?;
    let base = crate::config::validate_base_url(&resolve_base_url(options.base_url.as_deref()))
        .map_err(RegistrationError::InvalidUrl)?;
    ensure_slot_free(store, &options).await?;
    let staged = stage(store, &options).await?;
    let result = submit_and_finish(store, &base, &ticket, &staged, &options).await;
    settle(store, &staged, result).await
}

/// Continues a legacy registration that [`register`] left waiting for the owner's approval
/// (after [`RegistrationError::ApprovalTimedOut`] or [`RegistrationError::PollFailed`], in
/// this process or an earlier one): polls until the binding is active, rejected or expired,
/// or until [`RegisterOptions::approval_timeout`], reporting progress as [`register`] does,
/// then saves the identity and the first refresh token.
///
/// The ticket is not needed (nor sent). Polling goes to the API URL the registration was sent
/// to; a different [`RegisterOptions::base_url`] is refused. A registration of a remote
/// signer's key needs the same [`RegisterOptions::signer`] again. With nothing pending in
/// `store` this is [`RegistrationError::NothingToResume`], before any request.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use ralio::register::{resume, RegisterOptions};
/// use ralio::store::FileStore;
///
/// let binding = resume(&FileStore::from_env()?, RegisterOptions::new()).await?;
/// println!("registered {}", binding.client_id);
/// # Ok(()) }
/// ```
pub async fn resume(
    store: &dyn CredentialStore,
    options: RegisterOptions,
) -> Result<Binding, RegistrationError> {
    let pending = store
        .load_pending_registration()
        .await
        .map_err(RegistrationError::Store)?
        .ok_or_else(|| RegistrationError::NothingToResume {
            store: store.describe(),
        })?;
    let base = crate::config::validate_base_url(pending.base_url())
        .map_err(RegistrationError::InvalidUrl)?;
    if let Some(given) = options.base_url.as_deref().filter(|s| !s.is_empty()) {
        let given = crate::config::validate_base_url(given.trim_end_matches('/'))
            .map_err(RegistrationError::InvalidUrl)?;
        if given != base {
            return Err(RegistrationError::PendingElsewhere {
                pending_url: base,
                url: given,
            });
        }
    }
    let fingerprint = pending.fingerprint().to_owned();
    let kept = Some(format!("the {}", store.describe()));
    let staged = match (pending.key(), &options.signer) {
        (Some(key), _) => Staged {
            local_key: Some(key.clone()),
            signer: Arc::new(key.clone()),
            fingerprint,
            location: Some(format!("the staged key in the {}", store.describe())),
        },
        (None, Some(signer)) if signer.thumbprint().as_str() == fingerprint => Staged {
            local_key: None,
            signer: Arc::clone(signer),
            fingerprint,
            location: None,
        },
        (None, _) => {
            return Err(RegistrationError::Store(StoreError::Missing {
                store: store.describe(),
                what: format!("the key of the pending registration (key {fingerprint})"),
                hint: "its key lives in a remote signer: pass that signer again (RegisterOptions::signer)".to_owned(),
            }));
        }
    };
    let options = options.requested_scopes(pending.requested_scopes().to_vec());
    let result = async {
        let api = registration_api(&base).map_err(|source| RegistrationError::PollFailed {
            fingerprint: staged.fingerprint.clone(),
            pending: kept.clone(),
            source: Box::new(RegistrationError::Http {
                url: base.clone(),
                source,
            }),
        })?;
        let (client_id, scopes) = poll(
            &api,
            pending.poll_token(),
            &staged,
            &options,
            kept.clone(),
            true,
        )
        .await?;
        finish(store, &base, &staged, client_id, scopes, &options).await
    }
    .await;
    settle(store, &staged, result).await
}

/// The key being registered: generated here (and staged in the store), or a signer's.
struct Staged {
    local_key: Option<PrivateKey>,
    signer: Arc<dyn Signer>,
    fingerprint: String,
    /// Where the store staged the key (`None`: it did not, the key is in memory or remote).
    location: Option<String>,
}

/// Step 1: refuses to replace an identity, or to start over a pending registration, unless
/// overwrite was asked for (then the pending one is abandoned: its staged key is removed).
async fn ensure_slot_free(
    store: &dyn CredentialStore,
    options: &RegisterOptions,
) -> Result<(), RegistrationError> {
    if !options.overwrite
        && let Some(existing) = store
            .load_identity()
            .await
            .map_err(RegistrationError::Store)?
    {
        return Err(RegistrationError::AlreadyRegistered {
            store: store.describe(),
            client_id: existing.client_id().to_owned(),
        });
    }
    match store.load_pending_registration().await {
        Ok(None) => Ok(()),
        Ok(Some(pending)) if !options.overwrite => Err(RegistrationError::AlreadyPending {
            store: store.describe(),
            fingerprint: pending.fingerprint().to_owned(),
        }),
        Ok(Some(pending)) => {
            if let Some(key) = pending.key()
                && let Err(e) = store.discard_staged_key(key).await
            {
                tracing::warn!(error = %e, "could not remove the key of the abandoned pending registration");
            }
            store
                .clear_pending_registration()
                .await
                .map_err(RegistrationError::Store)
        }
        // A record this store cannot read (a corrupt one, or a Vault policy without the
        // pending-registration path) is nothing `resume` could continue either: registration
        // goes on (overwrite also tries to remove it).
        Err(e) => {
            tracing::warn!(error = %e, "could not read the pending registration; registering anew");
            if options.overwrite
                && let Err(e) = store.clear_pending_registration().await
            {
                tracing::warn!(error = %e, "could not remove the unreadable pending registration");
            }
            Ok(())
        }
    }
}

/// Step 2: the key (generated, or the caller's signer), staged durably in the store before
/// anything is sent.
async fn stage(
    store: &dyn CredentialStore,
    options: &RegisterOptions,
) -> Result<Staged, RegistrationError> {
    let (local_key, signer): (Option<PrivateKey>, Arc<dyn Signer>) = match &options.signer {
        Some(signer) => (None, Arc::clone(signer)),
        None => {
            let key = PrivateKey::generate().map_err(RegistrationError::Key)?;
            (Some(key.clone()), Arc::new(key))
        }
    };
    let location = match &local_key {
        Some(key) => store
            .stage_key(key, options.overwrite)
            .await
            .map_err(RegistrationError::Store)?,
        None => None,
    };
    Ok(Staged {
        fingerprint: signer.thumbprint().as_str().to_owned(),
        local_key,
        signer,
        location,
    })
}

/// Step 3: the request, the checks of its answer, the poll of the legacy flow (the pending
/// registration is kept in the store first), and [`finish`]. No cleanup here: see [`settle`].
async fn submit_and_finish(
    store: &dyn CredentialStore,
    base: &str,
    ticket: &SecretString,
    staged: &Staged,
    options: &RegisterOptions,
) -> Result<Binding, RegistrationError> {
    // Always a private client, whatever the caller passed: a redirect would carry the ticket
    // in the re-sent body to another origin, and a caller's client may follow redirects.
    let api = registration_api(base).map_err(|source| RegistrationError::Http {
        url: base.to_owned(),
        source,
    })?;
    options.report(RegistrationProgress::Submitting {
        fingerprint: staged.fingerprint.clone(),
    });
    let accepted = submit(&api, base, ticket, staged.signer.as_ref(), options).await?;
    let (server_fingerprint, client_id, scopes, poll_token) = match accepted {
        RegisterCredentialBindingResponse::Response(r) => {
            (r.fingerprint, Some(r.client_id), r.scopes, None)
        }
        RegisterCredentialBindingResponse::Pending(p) => {
            (p.fingerprint, None, None, Some(p.poll_token))
        }
    };
    // A client id names files and keyring entries and is shown to the user: refuse an unsafe
    // one before it is used anywhere, the fingerprint error's message included.
    let client_id = client_id.map(checked_client_id).transpose()?;
    if server_fingerprint != staged.fingerprint {
        return Err(RegistrationError::FingerprintMismatch {
            client_id: client_id.unwrap_or_default(),
            local: staged.fingerprint.clone(),
            server: server_fingerprint,
        });
    }
    let (client_id, server_scopes) = match (client_id, poll_token) {
        (Some(id), _) if !id.is_empty() => (id, scopes),
        (_, Some(poll_token)) => {
            let poll_token = SecretString::from(poll_token);
            let pending = PendingRegistration::new(
                poll_token.clone(),
                base,
                staged.fingerprint.clone(),
                options.requested_scopes.clone(),
                staged.local_key.clone(),
            );
            // Kept before the first poll, so a timeout, a lost connection or a killed
            // process leaves something to resume.
            let kept = match store.save_pending_registration(&pending).await {
                Ok(kept) => kept,
                Err(e) => {
                    tracing::warn!(error = %e, "could not keep the pending registration; it cannot be resumed if this wait ends early");
                    None
                }
            };
            poll(&api, &poll_token, staged, options, kept, false).await?
        }
        _ => {
            return Err(RegistrationError::UnexpectedResponse {
                status: StatusCode::CREATED,
                reason: "the answer has an empty client_id".to_owned(),
            });
        }
    };
    finish(store, base, staged, client_id, server_scopes, options).await
}

/// The legacy poll, with its failures told apart: rejected and expired end the registration;
/// a timeout or any other failure leaves it pending (kept in the store at `kept`, if it is).
async fn poll(
    api: &crate::api::Client,
    poll_token: &SecretString,
    staged: &Staged,
    options: &RegisterOptions,
    kept: Option<String>,
    immediate: bool,
) -> Result<(String, Option<Vec<String>>), RegistrationError> {
    let polled = poll_approval(api, poll_token, &staged.fingerprint, options, immediate)
        .await
        .and_then(|(id, scopes)| Ok((checked_client_id(id)?, scopes)));
    polled.map_err(|e| match e {
        e @ (RegistrationError::ApprovalRejected { .. }
        | RegistrationError::ApprovalExpired { .. }) => e,
        RegistrationError::ApprovalTimedOut {
            fingerprint,
            waited,
            ..
        } => RegistrationError::ApprovalTimedOut {
            fingerprint,
            waited,
            pending: kept,
        },
        other => RegistrationError::PollFailed {
            fingerprint: staged.fingerprint.clone(),
            pending: kept,
            source: Box::new(other),
        },
    })
}

/// Step 4: the binding is active: save the identity, mint the first token, save its refresh
/// token (with the token URL that issued it).
async fn finish(
    store: &dyn CredentialStore,
    base: &str,
    staged: &Staged,
    client_id: String,
    server_scopes: Option<Vec<String>>,
    options: &RegisterOptions,
) -> Result<Binding, RegistrationError> {
    options.report(RegistrationProgress::Active {
        client_id: client_id.clone(),
    });
    let identity = match &staged.local_key {
        Some(key) => Identity::new(client_id.clone(), key.clone()),
        None => Identity::with_signer(client_id.clone(), Arc::clone(&staged.signer)),
    };
    let key_location =
        store
            .save_identity(&identity)
            .await
            .map_err(|source| RegistrationError::SaveFailed {
                client_id: client_id.clone(),
                staged_key: staged.location.clone(),
                source: Box::new(source),
            })?;

    // Tokens of an earlier identity in this slot belong to another binding.
    store
        .clear_refresh_token()
        .await
        .map_err(|source| RegistrationError::SaveFailed {
            client_id: client_id.clone(),
            staged_key: None,
            source: Box::new(source),
        })?;
    let first_token = |source| RegistrationError::FirstToken {
        client_id: client_id.clone(),
        source,
    };
    let refresh = Arc::new(MemoryRefreshTokenStore::new());
    let tokens = TokenManager::builder(
        TokenManagerConfig::ralio(base, client_id.clone()).map_err(first_token)?,
        Arc::clone(&staged.signer),
    )
    .refresh_token_store(refresh.clone())
    .build()
    .map_err(first_token)?;
    tokens.access_token().await.map_err(first_token)?;
    if let Some(token) = refresh.current() {
        match refresh.issuer() {
            Some(issuer) => store.save_refresh_token_record(None, &token, &issuer).await,
            None => store.save_refresh_token(None, &token).await,
        }
        .map_err(|source| RegistrationError::SaveFailed {
            client_id: client_id.clone(),
            staged_key: staged.location.clone(),
            source: Box::new(source),
        })?;
    }
    let granted = tokens
        .token_info()
        .map(|info| info.scopes)
        .unwrap_or_default();
    let scopes = if granted.is_empty() {
        server_scopes
            .map(|s| s.into_iter().map(Scope::from).collect())
            .unwrap_or_else(|| options.requested_scopes.clone())
    } else {
        granted
    };
    Ok(Binding {
        client_id,
        scopes,
        fingerprint: staged.fingerprint.clone(),
        key_location,
    })
}

/// The one place a registration cleans up after itself, from its outcome:
///
/// - active (or active and saved, but the first token failed): the pending record goes;
/// - still pending (timed out, polling failed) or active but not saved: everything stays, so
///   that [`resume`] (or the saved key) can finish it;
/// - anything else (refused, rejected, expired, a bad answer): the staged key and the pending
///   record go.
async fn settle(
    store: &dyn CredentialStore,
    staged: &Staged,
    result: Result<Binding, RegistrationError>,
) -> Result<Binding, RegistrationError> {
    let (discard_key, clear_pending) = match &result {
        Ok(_) | Err(RegistrationError::FirstToken { .. }) => (false, true),
        Err(
            RegistrationError::ApprovalTimedOut { .. }
            | RegistrationError::PollFailed { .. }
            | RegistrationError::SaveFailed { .. },
        ) => (false, false),
        Err(_) => (true, true),
    };
    if discard_key
        && staged.location.is_some()
        && let Some(key) = &staged.local_key
        && let Err(e) = store.discard_staged_key(key).await
    {
        tracing::warn!(error = %e, "could not remove the key of a failed registration");
    }
    if clear_pending && let Err(e) = store.clear_pending_registration().await {
        tracing::warn!(error = %e, "could not remove the record of the ended registration");
    }
    result
}

/// The ticket without surrounding whitespace (a pasted ticket often carries some); an empty one
/// is refused before any request.
fn trimmed_ticket(ticket: SecretString) -> Result<SecretString, RegistrationError> {
    let trimmed = ticket.expose_secret().trim();
    if trimmed.is_empty() {
        return Err(RegistrationError::EmptyTicket);
    }
    if trimmed.len() == ticket.expose_secret().len() {
        return Ok(ticket);
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

/// Refuses a client id from the server that is not `cb_` and a bounded charset, before
/// anything is written (it names files and keyring entries, and is shown to the user).
fn checked_client_id(client_id: String) -> Result<String, RegistrationError> {
    crate::store::validate_client_id(&client_id)
        .map(|()| client_id)
        .map_err(|why| RegistrationError::UnexpectedResponse {
            status: StatusCode::CREATED,
            reason: format!("the client_id it returned is not a valid client id ({why})"),
        })
}

fn resolve_base_url(explicit: Option<&str>) -> String {
    let from_env = crate::config::env_var(API_URL_VAR);
    let chosen = explicit
        .filter(|s| !s.is_empty())
        .or(from_env.as_deref().filter(|s| !s.is_empty()))
        .unwrap_or(DEFAULT_API_URL);
    chosen.trim_end_matches('/').to_owned()
}

/// The registration endpoint's generated client: a private client (no redirects) under the
/// common layers (user agent, traceparent, retry policy), without the auth layer.
fn registration_api(base: &str) -> reqwest::Result<crate::api::Client> {
    let http = crate::transport::private_client()?;
    let settings = crate::transport::StackSettings::default();
    let stack = crate::transport::stack(http.clone(), &settings, None, None, false);
    Ok(crate::api::Client::new_with_client(base, http, stack))
}

/// A failed registration call: a refusal (status and at most 64 KiB of body) or the
/// [`RegistrationError`] it already is. `shown_url` names the endpoint without secrets.
async fn registration_failure(
    mut e: progenitor_client::Error<crate::api::ByteStream>,
    shown_url: &str,
) -> Result<(StatusCode, Vec<u8>), RegistrationError> {
    use crate::transport::body::read_error_body;
    use progenitor_client::Error as P;
    let unexpected = |reason: &str| RegistrationError::UnexpectedResponse {
        status: StatusCode::OK,
        reason: reason.to_owned(),
    };
    if let Some(mw) = crate::transport::hooks::take_middleware_error(&mut e) {
        return Err(match mw {
            reqwest_middleware::Error::Reqwest(source) => RegistrationError::Http {
                url: shown_url.to_owned(),
                source: source.without_url(),
            },
            reqwest_middleware::Error::Middleware(source) => RegistrationError::Middleware {
                url: shown_url.to_owned(),
                source: source.into(),
            },
        });
    }
    match e {
        P::ErrorResponse(answer) => {
            let status = answer.status();
            Ok((
                status,
                read_error_body(answer.into_inner().into_inner()).await,
            ))
        }
        P::UnexpectedResponse(answer) => {
            let status = answer.status();
            Ok((status, read_error_body(answer.bytes_stream()).await))
        }
        P::CommunicationError(source) | P::InvalidUpgrade(source) => Err(RegistrationError::Http {
            url: shown_url.to_owned(),
            source: source.without_url(),
        }),
        P::ResponseBodyError(_) => Err(unexpected(
            "the body could not be read in full (cut short, or over the size cap)",
        )),
        P::InvalidResponsePayload(..) => {
            Err(unexpected("the body is not the documented JSON object"))
        }
        P::InvalidRequest(problem) | P::Custom(problem) => Err(RegistrationError::Middleware {
            url: shown_url.to_owned(),
            source: problem.into(),
        }),
    }
}

async fn submit(
    api: &crate::api::Client,
    base: &str,
    ticket: &SecretString,
    signer: &dyn Signer,
    options: &RegisterOptions,
) -> Result<RegisterCredentialBindingResponse, RegistrationError> {
    let url = format!("{base}{REGISTRATIONS_PATH}");
    let jwk = serde_json::to_value(signer.public_jwk())
        .and_then(serde_json::from_value::<crate::api::types::PublicKeyJwk>)
        .map_err(|_| RegistrationError::UnsupportedSignerKey)?;
    let body = crate::api::types::builder::RegistrationRequest::default()
        .ticket(crate::redacted::RedactedString::new(ticket.expose_secret()))
        .public_key_jwk(jwk)
        .requested_scopes((!options.requested_scopes.is_empty()).then(|| {
            options
                .requested_scopes
                .iter()
                .map(ToString::to_string)
                .collect()
        }))
        .client_metadata(options.client_metadata.clone());
    match api.register_credential_binding().body(body).send().await {
        Ok(answer) => Ok(answer.into_inner()),
        Err(e) => {
            let (status, bytes) = registration_failure(e, &url).await?;
            if status.is_server_error() {
                return Err(RegistrationError::ServerError { status });
            }
            Err(refusal(status, &bytes))
        }
    }
}

/// The message of [`refusal`] (for the fuzz targets).
pub(crate) fn refusal_message(status: u16, body: &[u8]) -> String {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    refusal(status, body).to_string()
}

/// Maps an error answer of the registration endpoint to [`RegistrationError::Refused`].
fn refusal(status: StatusCode, body: &[u8]) -> RegistrationError {
    #[derive(Deserialize)]
    struct Detail {
        error: Option<String>,
        error_description: Option<String>,
        used_at: Option<serde_json::Value>,
        used_by_host: Option<String>,
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let detail = parsed.as_ref().and_then(|v| v.get("detail"));
    let (code, description, used_at, used_by_host) = match detail {
        Some(serde_json::Value::String(text)) => (None, Some(text.clone()), None, None),
        Some(obj @ serde_json::Value::Object(_)) => {
            match serde_json::from_value::<Detail>(obj.clone()) {
                Ok(d) => (
                    d.error,
                    d.error_description,
                    d.used_at.map(|v| match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    }),
                    d.used_by_host,
                ),
                Err(_) => (None, None, None, None),
            }
        }
        _ => {
            // OAuth-style bodies `{error, error_description}` at the top level.
            let get = |k: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v.get(k))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            (get("error"), get("error_description"), None, None)
        }
    };
    let code = RegistrationErrorCode::parse(code.as_deref().unwrap_or(""));
    let mut message =
        description
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| match code.as_str() {
                "" => format!("HTTP {}", status.as_u16()),
                known => known.to_owned(),
            });
    let mut context = Vec::new();
    if let Some(at) = used_at.as_deref().filter(|s| !s.is_empty()) {
        context.push(format!("used at {at}"));
    }
    if let Some(host) = used_by_host.as_deref().filter(|s| !s.is_empty()) {
        context.push(format!("by {host}"));
    }
    if !context.is_empty() {
        message = format!("{message} ({})", context.join(" "));
    }
    RegistrationError::Refused {
        status,
        code,
        message,
        used_at,
        used_by_host,
    }
}

async fn poll_approval(
    api: &crate::api::Client,
    poll_token: &SecretString,
    fingerprint: &str,
    options: &RegisterOptions,
    immediate: bool,
) -> Result<(String, Option<Vec<String>>), RegistrationError> {
    let start = Instant::now();
    let shown_url = format!(
        "{}{REGISTRATIONS_PATH}/<poll token>",
        progenitor_client::ClientInfo::baseurl(api)
    );
    // The last status the server answered that did not end the wait.
    let mut status: Option<String> = None;
    // A resumed registration asks at once: the owner may have decided meanwhile.
    let mut wait = !immediate;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= options.approval_timeout {
            return Err(RegistrationError::ApprovalTimedOut {
                fingerprint: fingerprint.to_owned(),
                waited: elapsed,
                pending: None,
            });
        }
        options.report(RegistrationProgress::AwaitingApproval {
            fingerprint: fingerprint.to_owned(),
            elapsed,
            remaining: options.approval_timeout.saturating_sub(elapsed),
            status: status.clone(),
        });
        if wait {
            tokio::time::sleep(
                options
                    .poll_interval
                    .min(options.approval_timeout.saturating_sub(elapsed)),
            )
            .await;
        }
        wait = true;
        let sent = api
            .get_registration_status()
            .poll_token(poll_token.expose_secret().to_owned())
            .send()
            .await;
        let poll = match sent {
            Ok(answer) => answer.into_inner(),
            Err(e) => match registration_failure(e, &shown_url).await {
                Ok((StatusCode::NOT_FOUND, _)) => {
                    return Err(RegistrationError::ApprovalExpired {
                        fingerprint: fingerprint.to_owned(),
                        reason: "is no longer known to the server",
                    });
                }
                // A server error or a rate limit while waiting is worth another poll.
                Ok((status, _))
                    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS =>
                {
                    continue;
                }
                Ok((status, bytes)) => return Err(refusal(status, &bytes)),
                // A dropped connection while waiting is worth another poll, not a failure.
                Err(RegistrationError::Http { source, .. }) => {
                    tracing::debug!(url = %shown_url, error = %source, "registration poll failed; polling again");
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        match poll.status.as_str() {
            "active" => match poll.client_id {
                Some(id) if !id.is_empty() => return Ok((id, None)),
                _ => {
                    return Err(RegistrationError::UnexpectedResponse {
                        status: StatusCode::OK,
                        reason: "status active without a client_id".to_owned(),
                    });
                }
            },
            "rejected" => {
                return Err(RegistrationError::ApprovalRejected {
                    fingerprint: fingerprint.to_owned(),
                });
            }
            "expired" => {
                return Err(RegistrationError::ApprovalExpired {
                    fingerprint: fingerprint.to_owned(),
                    reason: "expired",
                });
            }
            // `pending_approval`, and any status this SDK does not know: keep polling until
            // the deadline (only `rejected` and `expired` end a registration).
            other => {
                if other != "pending_approval" && other != "pending" {
                    tracing::info!(status = other, "unknown registration status; polling on");
                }
                status = Some(other.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(status: u16, body: serde_json::Value) -> String {
        let status = StatusCode::from_u16(status).unwrap();
        refusal(status, body.to_string().as_bytes()).to_string()
    }

    #[test]
    fn consumed_ticket_names_when_and_who_and_asks_for_revocation() {
        let text = message(
            409,
            serde_json::json!({"detail": {
                "error": "ticket_already_consumed",
                "error_description": "ticket already used",
                "used_at": "2026-01-02T03:04:05Z",
                "used_by_host": "build-7"
            }}),
        );
        assert!(
            text.contains("used at 2026-01-02T03:04:05Z by build-7"),
            "{text}"
        );
        assert!(text.contains("revoke the credential it created"), "{text}");
    }

    #[test]
    fn every_code_maps_to_advice() {
        for (code, needle) in [
            ("invalid_ticket", "whole ralio-reg-"),
            ("ticket_expired", "mint a new ticket"),
            ("public_key_already_in_use", "fresh key"),
            ("invalid_public_key", "fresh P-256 key"),
            ("invalid_scope", "agents:execute"),
            ("scope_exceeds_ticket_ceiling", "higher scope ceiling"),
        ] {
            let text = message(
                400,
                serde_json::json!({"detail": {"error": code, "error_description": "d"}}),
            );
            assert!(text.contains(needle), "{code}: {text}");
        }
        let plain = message(500, serde_json::json!({"detail": "boom"}));
        assert!(plain.contains("boom"), "{plain}");
    }
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;

    #[test]
    fn messages_tell_the_caller_what_to_do() {
        let refused = |code: &str, extra: serde_json::Value| {
            let mut detail = serde_json::json!({"error": code, "error_description": format!("{code} (server text)")});
            if let (Some(d), Some(e)) = (detail.as_object_mut(), extra.as_object()) {
                d.extend(e.clone());
            }
            refusal(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "detail": detail })
                    .to_string()
                    .as_bytes(),
            )
        };
        let errors = [
            RegistrationError::MissingTicket,
            RegistrationError::AlreadyRegistered {
                store: "file store at /home/me/.ralio".to_owned(),
                client_id: "cb_123".to_owned(),
            },
            refused("invalid_ticket", serde_json::json!({})),
            refused("ticket_expired", serde_json::json!({})),
            refused(
                "ticket_already_consumed",
                serde_json::json!({"used_at": "2026-11-02T10:00:00Z", "used_by_host": "build-7"}),
            ),
            refused("public_key_already_in_use", serde_json::json!({})),
            refused("invalid_public_key", serde_json::json!({})),
            refused("invalid_scope", serde_json::json!({})),
            refused("scope_exceeds_ticket_ceiling", serde_json::json!({})),
            refusal(
                StatusCode::CONFLICT,
                br#"{"detail": {"error": "ticket_already_consumed"}}"#,
            ),
            refusal(StatusCode::NOT_FOUND, b"<html>not found</html>"),
            RegistrationError::ServerError {
                status: StatusCode::SERVICE_UNAVAILABLE,
            },
            RegistrationError::FingerprintMismatch {
                client_id: "cb_123".to_owned(),
                local: "local-jkt".to_owned(),
                server: "server-jkt".to_owned(),
            },
            RegistrationError::ApprovalRejected {
                fingerprint: "jkt".to_owned(),
            },
            RegistrationError::ApprovalExpired {
                fingerprint: "jkt".to_owned(),
                reason: "expired",
            },
            RegistrationError::ApprovalTimedOut {
                fingerprint: "jkt".to_owned(),
                waited: Duration::from_secs(900),
                pending: None,
            },
            RegistrationError::ApprovalTimedOut {
                fingerprint: "jkt".to_owned(),
                waited: Duration::from_secs(900),
                pending: Some("the file store at /home/me/.ralio".to_owned()),
            },
            RegistrationError::PollFailed {
                fingerprint: "jkt".to_owned(),
                pending: Some("/home/me/.ralio/pending-registration.json".to_owned()),
                source: Box::new(RegistrationError::ServerError {
                    status: StatusCode::BAD_REQUEST,
                }),
            },
            RegistrationError::NothingToResume {
                store: "file store at /home/me/.ralio".to_owned(),
            },
            RegistrationError::AlreadyPending {
                store: "file store at /home/me/.ralio".to_owned(),
                fingerprint: "jkt".to_owned(),
            },
            RegistrationError::PendingElsewhere {
                pending_url: "http://127.0.0.1:8080".to_owned(),
                url: "https://api.ralio.co".to_owned(),
            },
        ];
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(text.join("\n"));
    }
}
