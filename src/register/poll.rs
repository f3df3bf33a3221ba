//! The legacy flow: polling a registration that waits for the owner's approval.

use std::time::Instant;

use http::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};

use super::request::checked_client_id;
use super::staging::Staged;
use super::{REGISTRATIONS_PATH, RegisterOptions, RegistrationError, RegistrationProgress};

/// The legacy poll, with its failures told apart: rejected and expired end the registration;
/// a timeout or any other failure leaves it pending (kept in the store at `kept`, if it is).
pub(super) async fn poll(
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

pub(super) async fn poll_approval(
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
            Err(e) => match crate::error::registration_call(e, &shown_url).await {
                Ok(answer) if answer.status() == StatusCode::NOT_FOUND => {
                    return Err(RegistrationError::ApprovalExpired {
                        fingerprint: fingerprint.to_owned(),
                        reason: "is no longer known to the server",
                    });
                }
                // A server error or a rate limit while waiting is worth another poll.
                Ok(answer)
                    if answer.status().is_server_error()
                        || answer.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    continue;
                }
                Ok(answer) => return Err(RegistrationError::from_answer(&answer)),
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
