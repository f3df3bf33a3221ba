//! The binding is active: save it, mint its first token, and clean up after any outcome.

use std::sync::Arc;

use super::staging::Staged;
use super::{Binding, RegisterOptions, RegistrationError, RegistrationProgress};
use crate::auth::{TokenManager, TokenManagerConfig};
use crate::scope::Scope;
use crate::store::{CredentialStore, Identity, MemoryStore};

/// Step 4: the binding is active: save the identity, mint the first token, save its refresh
/// token (with the token URL that issued it).
pub(super) async fn finish(
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
    // A failed write names the staged key when it may be the only copy left.
    let save_failed = |staged_key: Option<String>| {
        let client_id = client_id.clone();
        move |source| RegistrationError::SaveFailed {
            client_id,
            staged_key,
            source: Box::new(source),
        }
    };
    let key_location = store
        .save_identity(&identity)
        .await
        .map_err(save_failed(staged.location.clone()))?;

    // Tokens of an earlier identity in this slot belong to another binding.
    store
        .clear_refresh_token()
        .await
        .map_err(save_failed(None))?;
    let first_token = |source| RegistrationError::FirstToken {
        client_id: client_id.clone(),
        source: Box::new(source),
    };
    let refresh = Arc::new(MemoryStore::new());
    let tokens = TokenManager::builder(
        TokenManagerConfig::ralio(base, client_id.clone()).map_err(first_token)?,
        Arc::clone(&staged.signer),
    )
    .refresh_token_store(refresh.clone())
    .http_config(options.http.clone())
    .build()
    .map_err(first_token)?;
    tokens.access_token().await.map_err(first_token)?;
    if let Some(record) = refresh.load_refresh_token().await.ok().flatten() {
        store
            .save_refresh_token(None, &record)
            .await
            .map_err(save_failed(staged.location.clone()))?;
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
pub(super) async fn settle(
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
