//! Before anything is sent: the slot in the store is free, the ticket is usable, and the key
//! is generated (or the caller's signer taken) and staged durably in the store.

use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};

use super::{RegisterOptions, RegistrationError};
use crate::keys::{PrivateKey, Signer};
use crate::store::CredentialStore;

/// The key being registered: generated here (and staged in the store), or a signer's.
pub(super) struct Staged {
    pub(super) local_key: Option<PrivateKey>,
    pub(super) signer: Arc<dyn Signer>,
    pub(super) fingerprint: String,
    /// Where the store staged the key (`None`: it did not, the key is in memory or remote).
    pub(super) location: Option<String>,
}

/// Step 1: refuses to replace an identity, or to start over a pending registration, unless
/// overwrite was asked for (then the pending one is abandoned: its staged key is removed).
pub(super) async fn ensure_slot_free(
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
pub(super) async fn stage(
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

/// The ticket without surrounding whitespace (a pasted ticket often carries some); an empty one
/// is refused before any request.
pub(super) fn trimmed_ticket(ticket: SecretString) -> Result<SecretString, RegistrationError> {
    let trimmed = ticket.expose_secret().trim();
    if trimmed.is_empty() {
        return Err(RegistrationError::EmptyTicket);
    }
    if trimmed.len() == ticket.expose_secret().len() {
        return Ok(ticket);
    }
    Ok(SecretString::from(trimmed.to_owned()))
}
