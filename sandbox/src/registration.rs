//! `POST /api/credential-bindings/registrations` and the legacy poll endpoint.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Duration as ChronoDuration;
use serde_json::{Value, json};

use crate::server::{St, detail, json_body, opt_str, req_str, validation_error, verr};
use crate::state::{Binding, PendingRegistration, PendingStatus, ticket_scopes_error};
use crate::{SCOPE_AGENTS_CONFIG, SCOPE_AGENTS_EXECUTE, SCOPE_TRANSACTIONS_READ, jose};

fn reg_error(
    status: StatusCode,
    code: &str,
    description: impl Into<String>,
    extra: Option<(String, String)>,
) -> Response {
    let mut d = json!({ "error": code, "error_description": description.into() });
    if let Some((used_at, host)) = extra {
        d["used_at"] = Value::String(used_at);
        d["used_by_host"] = Value::String(host);
    }
    (status, axum::Json(json!({ "detail": d }))).into_response()
}

pub(crate) async fn register(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let m = match json_body(&headers, &body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut errors = Vec::new();
    let ticket = req_str(&m, "ticket", &mut errors);
    let jwk = match m.get("public_key_jwk") {
        None => {
            errors.push(verr(
                "missing",
                &["body".into(), "public_key_jwk".into()],
                "Field required",
                Value::Object(m.clone()),
            ));
            None
        }
        Some(v) => Some(v.clone()),
    };
    let requested: Option<Vec<String>> = match m.get("requested_scopes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, it) in items.iter().enumerate() {
                match it.as_str() {
                    Some(s) => out.push(s.to_owned()),
                    None => errors.push(verr(
                        "string_type",
                        &["body".into(), "requested_scopes".into(), i.into()],
                        "Input should be a valid string",
                        it.clone(),
                    )),
                }
            }
            Some(out)
        }
        Some(other) => {
            errors.push(verr(
                "list_type",
                &["body".into(), "requested_scopes".into()],
                "Input should be a valid list",
                other.clone(),
            ));
            None
        }
    };
    let metadata_host = match m.get("client_metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(md)) => ["hostname", "host", "host_name"]
            .iter()
            .find_map(|k| md.get(*k).and_then(Value::as_str))
            .map(str::to_owned),
        Some(other) => {
            errors.push(verr(
                "dict_type",
                &["body".into(), "client_metadata".into()],
                "Input should be a valid dictionary",
                other.clone(),
            ));
            None
        }
    };
    let _ = opt_str(&m, "client_name", &mut errors);
    let (Some(ticket), Some(jwk), true) = (ticket, jwk, errors.is_empty()) else {
        return validation_error(errors);
    };

    let mut inner = st.lock();
    let now = inner.now();
    let Some(t) = inner.tickets.get(&ticket) else {
        return reg_error(
            StatusCode::BAD_REQUEST,
            "invalid_ticket",
            "This registration ticket is not valid: check it was copied whole, or mint a new one in the console",
            None,
        );
    };
    if let Some((used_at, host)) = &t.used {
        return reg_error(
            StatusCode::CONFLICT,
            "ticket_already_consumed",
            "This ticket was already used to register a key. If that was not you, revoke that binding in the console and mint a new ticket",
            Some((used_at.to_rfc3339(), host.clone())),
        );
    }
    if t.expires_at <= now {
        return reg_error(
            StatusCode::GONE,
            "ticket_expired",
            "This registration ticket has expired: mint a new one in the console",
            None,
        );
    }
    // Only a ticket minted through the Rust API can carry such a ceiling: grant nothing from it.
    if let Some(why) = ticket_scopes_error(&t.scopes) {
        return reg_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_scope",
            format!("This ticket cannot register a binding: {why}"),
            None,
        );
    }
    let key = match jose::parse_public_jwk(&jwk).and_then(|k| k.on_curve().map(|()| k)) {
        Ok(k) => k,
        Err(why) => {
            return reg_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_public_key",
                format!("The public key is not a valid P-256 public JWK: {why}"),
                None,
            );
        }
    };
    let scopes = match requested {
        None => t.scopes.clone(),
        Some(req) => {
            if req.is_empty() {
                return reg_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_scope",
                    "requested_scopes is empty: omit it to get the ticket's scopes, or name at least one",
                    None,
                );
            }
            for s in &req {
                if s == SCOPE_AGENTS_CONFIG {
                    return reg_error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_scope",
                        "agents:config is reserved for people: a credential binding cannot hold it",
                        None,
                    );
                }
                if s != SCOPE_AGENTS_EXECUTE && s != SCOPE_TRANSACTIONS_READ {
                    return reg_error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_scope",
                        format!("unknown scope {s:?}: use agents:execute or transactions:read"),
                        None,
                    );
                }
                if !t.scopes.contains(s) {
                    return reg_error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "scope_exceeds_ticket_ceiling",
                        format!(
                            "scope {s} is not allowed by this ticket (ceiling: {}): ask for less, or mint a ticket that allows it",
                            t.scopes.join(" ")
                        ),
                        None,
                    );
                }
            }
            let mut req = req;
            req.sort();
            req.dedup();
            req
        }
    };
    let key_in_use = inner
        .bindings
        .values()
        .any(|b| b.jkt == key.jkt && !b.revoked)
        || inner
            .pending
            .iter()
            .any(|p| p.jkt == key.jkt && p.waiting(now));
    if key_in_use {
        return reg_error(
            StatusCode::CONFLICT,
            "public_key_already_in_use",
            "This public key is already bound: generate a new key for each registration",
            None,
        );
    }
    let agent_id = t.agent_id.clone();
    let host = metadata_host.unwrap_or_else(|| peer.ip().to_string());
    if let Some(t) = inner.tickets.get_mut(&ticket) {
        t.used = Some((now, host));
    }
    inner.counters.registrations += 1;
    if st.config.legacy_registration {
        let poll_token = jose::random_token("rpt_");
        inner.pending.push(PendingRegistration {
            poll_token: poll_token.clone(),
            key: key.key,
            jkt: key.jkt.clone(),
            agent_id,
            scopes,
            expires_at: now + ChronoDuration::seconds(crate::state::LEGACY_PENDING_SECS),
            status: PendingStatus::Pending,
        });
        drop(inner);
        st.changed();
        return (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "fingerprint": key.jkt, "poll_token": poll_token })),
        )
            .into_response();
    }
    let client_id = inner.new_id("cb");
    inner.bindings.insert(
        client_id.clone(),
        Binding {
            key: key.key,
            jkt: key.jkt.clone(),
            agent_id,
            scopes: scopes.clone(),
            revoked: false,
        },
    );
    (
        StatusCode::CREATED,
        axum::Json(json!({ "client_id": client_id, "fingerprint": key.jkt, "scopes": scopes })),
    )
        .into_response()
}

pub(crate) async fn poll(State(st): St, Path(poll_token): Path<String>) -> Response {
    let inner = st.lock();
    let now = inner.now();
    let Some(p) = inner.pending.iter().find(|p| p.poll_token == poll_token) else {
        return detail(
            StatusCode::NOT_FOUND,
            "Unknown registration: register again with a new ticket",
        );
    };
    let body = match &p.status {
        PendingStatus::Active(client_id) => {
            json!({ "status": "active", "client_id": client_id, "fingerprint": p.jkt, "scopes": p.scopes })
        }
        PendingStatus::Rejected => json!({ "status": "rejected", "fingerprint": p.jkt }),
        PendingStatus::Pending if p.expires_at <= now => {
            json!({ "status": "expired", "fingerprint": p.jkt })
        }
        PendingStatus::Pending => json!({ "status": "pending_approval", "fingerprint": p.jkt }),
    };
    axum::Json(body).into_response()
}
