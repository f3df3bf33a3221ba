//! The admin API under `/sandbox/…`: not part of the Ralio API; served only when enabled.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::server::{St, detail, no_content};
use crate::state::Shared;
use crate::{Faults, SandboxError, TicketSpec};

pub(crate) fn router(state: Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route("/sandbox/tickets", post(mint_ticket))
        .route("/sandbox/counters", get(counters))
        .route("/sandbox/faults", get(get_faults).put(put_faults))
        .route("/sandbox/registrations", get(pending_registrations))
        .route(
            "/sandbox/registrations/{key}/approve",
            post(approve_registration),
        )
        .route(
            "/sandbox/registrations/{key}/reject",
            post(reject_registration),
        )
        .route("/sandbox/payment-intents/pending", get(pending_intents))
        .route(
            "/sandbox/payment-intents/{id}/approve",
            post(approve_intent),
        )
        .route("/sandbox/payment-intents/{id}/reject", post(reject_intent))
        .route("/sandbox/bindings/{client_id}/revoke", post(revoke_binding))
        .route(
            "/sandbox/bindings/{client_id}/revoke-refresh-family",
            post(revoke_family),
        )
        .route("/sandbox/nonce/rotate", post(rotate_nonce))
        .with_state(state)
}

fn admin_error(e: SandboxError) -> Response {
    let status = match e {
        SandboxError::IntentNotPending { .. } => StatusCode::CONFLICT,
        SandboxError::InvalidConfig { .. } | SandboxError::Bind { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::NOT_FOUND,
    };
    detail(status, e.to_string())
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct TicketRequest {
    agent_id: Option<String>,
    scopes: Option<Vec<String>>,
    expires_in: Option<u64>,
}

/// Body (all optional): `{"agent_id": "…", "scopes": ["…"], "expires_in": seconds}`.
async fn mint_ticket(State(st): St, body: Option<axum::Json<TicketRequest>>) -> Response {
    let req = body.map(|b| b.0).unwrap_or_default();
    let mut spec = TicketSpec::default();
    if req.agent_id.is_some() {
        spec.agent_id = req.agent_id;
    }
    if let Some(scopes) = req.scopes {
        spec.scopes = scopes;
    }
    // The console cannot mint a ticket the real server would refuse to honour.
    if let Some(why) = crate::state::ticket_scopes_error(&spec.scopes) {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, why);
    }
    if let Some(secs) = req.expires_in {
        spec.expires_in = Duration::from_secs(secs);
    }
    let agent_id = spec
        .agent_id
        .clone()
        .unwrap_or_else(|| st.default_agent_id());
    let scopes = spec.scopes.clone();
    let ticket = st.mint_ticket(spec);
    (
        StatusCode::CREATED,
        axum::Json(json!({ "ticket": ticket, "agent_id": agent_id, "scopes": scopes })),
    )
        .into_response()
}

async fn counters(State(st): St) -> Response {
    axum::Json(st.counters()).into_response()
}

async fn get_faults(State(st): St) -> Response {
    axum::Json(st.faults()).into_response()
}

async fn put_faults(State(st): St, axum::Json(faults): axum::Json<Faults>) -> Response {
    st.set_faults(faults);
    axum::Json(st.faults()).into_response()
}

async fn pending_registrations(State(st): St) -> Response {
    axum::Json(json!({ "fingerprints": st.pending_registration_fingerprints() })).into_response()
}

async fn approve_registration(State(st): St, Path(key): Path<String>) -> Response {
    match st.decide_registration(&key, true) {
        Ok(client_id) => axum::Json(json!({ "client_id": client_id })).into_response(),
        Err(e) => admin_error(e),
    }
}

async fn reject_registration(State(st): St, Path(key): Path<String>) -> Response {
    match st.decide_registration(&key, false) {
        Ok(_) => no_content(),
        Err(e) => admin_error(e),
    }
}

async fn pending_intents(State(st): St) -> Response {
    axum::Json(json!({ "ids": st.pending_intent_ids() })).into_response()
}

async fn approve_intent(State(st): St, Path(id): Path<String>) -> Response {
    match st.decide_intent(&id, None) {
        Ok(()) => no_content(),
        Err(e) => admin_error(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RejectRequest {
    reason: Option<String>,
}

/// Body (optional): `{"reason": "…"}`.
async fn reject_intent(
    State(st): St,
    Path(id): Path<String>,
    body: Option<axum::Json<RejectRequest>>,
) -> Response {
    let reason = body
        .and_then(|b| b.0.reason)
        .unwrap_or_else(|| "Rejected by the account owner".to_owned());
    match st.decide_intent(&id, Some(&reason)) {
        Ok(()) => no_content(),
        Err(e) => admin_error(e),
    }
}

async fn revoke_binding(State(st): St, Path(client_id): Path<String>) -> Response {
    match st.revoke_binding(&client_id) {
        Ok(()) => no_content(),
        Err(e) => admin_error(e),
    }
}

async fn revoke_family(State(st): St, Path(client_id): Path<String>) -> Response {
    match st.revoke_families(&client_id) {
        Ok(()) => no_content(),
        Err(e) => admin_error(e),
    }
}

async fn rotate_nonce(State(st): St) -> Response {
    st.rotate_nonce();
    no_content()
}
