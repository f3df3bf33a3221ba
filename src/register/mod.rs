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

use std::sync::Arc;

use secrecy::SecretString;

use crate::scope::Scope;
use crate::store::{CredentialStore, StoreError};

mod finish;
mod options;
mod poll;
mod request;
mod staging;

pub use crate::error::{RegistrationError, RegistrationErrorCode};
pub use options::{RegisterOptions, RegistrationProgress};

use finish::{finish, settle};
use poll::poll;
use request::{registration_api, submit_and_finish};
use staging::{Staged, ensure_slot_free, stage, trimmed_ticket};

/// Variable holding the default registration ticket.
const TICKET_VAR: &str = "RALIO_REGISTRATION_TICKET";

const REGISTRATIONS_PATH: &str = "/api/credential-bindings/registrations";

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
    let explicit = options.base_url.as_deref().filter(|s| !s.is_empty());
    let base = crate::origin::resolve_base_url(explicit).map_err(RegistrationError::InvalidUrl)?;
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
    let base = crate::origin::validate_base_url(pending.base_url())
        .map_err(RegistrationError::InvalidUrl)?;
    if let Some(given) = options.base_url.as_deref().filter(|s| !s.is_empty()) {
        let given = crate::origin::validate_base_url(given.trim_end_matches('/'))
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
                store: crate::store::StoreName::other(store.describe()),
                what: format!("the key of the pending registration (key {fingerprint})"),
                hint: "its key lives in a remote signer: pass that signer again (RegisterOptions::signer)".to_owned(),
            }));
        }
    };
    let options = options.requested_scopes(pending.requested_scopes().to_vec());
    let result = async {
        let api = registration_api(&base, &options.http).map_err(|source| {
            RegistrationError::PollFailed {
                fingerprint: staged.fingerprint.clone(),
                pending: kept.clone(),
                source: Box::new(RegistrationError::Http {
                    url: base.clone(),
                    source,
                }),
            }
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

/// The message a user would see for the registration endpoint's error answer (for the fuzz
/// targets).
#[cfg(any(fuzzing, test))]
pub(crate) fn refusal_message(status: http::StatusCode, body: &[u8]) -> String {
    let answer = crate::error::ApiError::from_parts(status, &http::HeaderMap::new(), body);
    RegistrationError::from_answer(&answer).to_string()
}
