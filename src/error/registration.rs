//! [`RegistrationError`]: why registration failed, and the codes of the registration
//! endpoint's refusals ([`RegistrationErrorCode`]).

use std::time::Duration;

use http::StatusCode;

use super::ConfigError;
use super::api_error::ApiError;
use crate::auth::AuthError;
use crate::keys::KeyError;
use crate::store::StoreError;

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
                "a ticket registers one key only: if it was you, your credential already exists (`ralio whoami` shows it); if not, ask the owner to revoke the binding it created and mint a new ticket"
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
        used_at: Option<chrono::DateTime<chrono::Utc>>,
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
    /// the server; when the store kept it (`pending`), [`resume`](crate::register::resume) continues it.
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
    /// pending: its key and poll token are kept (`pending`) for [`resume`](crate::register::resume).
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
    /// [`resume`](crate::register::resume) found no pending registration in the store. Nothing was sent.
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
    /// [`resume`](crate::register::resume) was given another API URL than the one the pending registration was sent
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
        "{}",
        crate::transport::tls::Unreached::new("registration request", .url, .source, (
            "could not reach the registration server at ",
            "; check the network and RALIO_API_URL",
        ))
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
        source: crate::keys::BoxError,
    },
    /// A key could not be generated.
    #[error("could not generate a P-256 key")]
    Key(#[source] KeyError),
    /// The signer given with [`RegisterOptions::signer`](crate::register::RegisterOptions::signer) has a public key the registration
    /// endpoint cannot take. Nothing was sent.
    #[error(
        "the signer's public key cannot be registered (it is not a P-256 JWK); use a P-256 (ES256) key; nothing was sent"
    )]
    UnsupportedSignerKey,
    /// The API URL is unusable, for example `http://` to a host that is not loopback (the
    /// ticket would travel in clear text). Nothing was sent.
    #[error("the API URL cannot be used for registration; nothing was sent")]
    InvalidUrl(#[source] ConfigError),
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
        /// Why the mint failed (boxed: it is large, and this is the rare path).
        #[source]
        source: Box<AuthError>,
    },
}

impl RegistrationError {
    /// The registration endpoint's error answer, read by [`ApiError::from_parts`]: a server
    /// failure (5xx, nothing was registered) or a refusal with its code.
    pub(crate) fn from_answer(api: &ApiError) -> Self {
        let status = api.status();
        if status.is_server_error() {
            return RegistrationError::ServerError { status };
        }
        let code = RegistrationErrorCode::parse(api.code().unwrap_or(""));
        let used = api.ticket_use();
        // A body that was not JSON (an HTML page from a proxy, say) says nothing for people:
        // the status does.
        // The server's text for a consumed ticket gives advice of its own: the advice below
        // says it once, and the message keeps only the facts.
        let consumed = (code == RegistrationErrorCode::TicketAlreadyConsumed).then(|| {
            match used.and_then(super::api_error::TicketUse::describe) {
                Some(context) => format!("the ticket was already {context}"),
                None => "the ticket was already used".to_owned(),
            }
        });
        let message = consumed
            .or_else(|| {
                api.detail()
                    .filter(|_| api.body().is_some())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| match code.as_str() {
                "" => format!("HTTP {}", status.as_u16()),
                known => known.to_owned(),
            });
        RegistrationError::Refused {
            status,
            code,
            message,
            used_at: used.and_then(|u| u.at),
            used_by_host: used.and_then(|u| u.by_host.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: StatusCode, body: &[u8]) -> RegistrationError {
        RegistrationError::from_answer(&ApiError::from_parts(status, &http::HeaderMap::new(), body))
    }

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
                "error_description": "This ticket was already used. If that was not you, revoke that binding and mint a new ticket",
                "used_at": "2026-01-02T03:04:05Z",
                "used_by_host": "build-7"
            }}),
        );
        assert!(
            text.contains("used at 2026-01-02T03:04:05Z by build-7"),
            "{text}"
        );
        assert!(text.contains("if it was you"), "{text}");
        assert!(text.contains("ralio whoami"), "{text}");
        assert!(!text.contains("someone else"), "{text}");
        // The advice comes once, even when the server's text carries its own.
        assert_eq!(text.matches("revoke").count(), 1, "{text}");
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
        let plain = message(400, serde_json::json!({"detail": "boom"}));
        assert!(plain.contains("boom"), "{plain}");
    }

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
