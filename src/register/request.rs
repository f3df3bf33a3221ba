//! The registration request and the checks of its answer.

use http::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};

use super::finish::finish;
use super::poll::poll;
use super::staging::Staged;
use super::{
    Binding, REGISTRATIONS_PATH, RegisterOptions, RegistrationError, RegistrationProgress,
};
use crate::api::types::RegisterCredentialBindingResponse;
use crate::keys::Signer;
use crate::store::{CredentialStore, PendingRegistration};

/// Step 3: the request, the checks of its answer, the poll of the legacy flow (the pending
/// registration is kept in the store first), and [`finish`]. No cleanup here: see [`settle`].
pub(super) async fn submit_and_finish(
    store: &dyn CredentialStore,
    base: &str,
    ticket: &SecretString,
    staged: &Staged,
    options: &RegisterOptions,
) -> Result<Binding, RegistrationError> {
    // Never a redirect, whatever the caller configured: it would carry the ticket in the
    // re-sent body to another origin.
    let api = registration_api(base, &options.http).map_err(|source| RegistrationError::Http {
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
        // Open enum: an answer of neither documented shape.
        _ => {
            return Err(RegistrationError::UnexpectedResponse {
                status: StatusCode::CREATED,
                reason: "the answer is neither a registration nor a pending one".to_owned(),
            });
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

/// Refuses a client id from the server that is not `cb_` and a bounded charset, before
/// anything is written (it names files and keyring entries, and is shown to the user).
pub(super) fn checked_client_id(client_id: String) -> Result<String, RegistrationError> {
    crate::store::validate_client_id(&client_id)
        .map(|()| client_id)
        .map_err(|why| RegistrationError::UnexpectedResponse {
            status: StatusCode::CREATED,
            reason: format!("the client_id it returned is not a valid client id ({why})"),
        })
}

/// The registration endpoint's generated client: the registration's one HTTP client (no
/// redirects) under the common layers (user agent, span, traceparent, retry policy), without
/// the auth layer.
pub(super) fn registration_api(
    base: &str,
    http: &crate::transport::HttpConfig,
) -> reqwest::Result<crate::api::Client> {
    let http = http.client()?;
    let settings = crate::transport::StackSettings::default();
    let stack = crate::transport::stack(
        http.clone(),
        &settings,
        crate::transport::Inner::SmallAnswers {
            innermost: None,
            target: None,
        },
    );
    Ok(crate::api::Client::new_with_client(base, http, stack))
}

pub(super) async fn submit(
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
    let body = crate::api::types::RegistrationRequest::builder(
        jwk,
        crate::redacted::RedactedString::new(ticket.expose_secret()),
    )
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
        Err(e) => Err(RegistrationError::from_answer(
            &crate::error::registration_call(e, &url).await?,
        )),
    }
}
