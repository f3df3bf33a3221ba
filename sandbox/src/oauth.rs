//! `POST /oauth/token`: client-assertion mints (RFC 7523) and refresh with rotation.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration as ChronoDuration;
use serde_json::{Value, json};

use crate::NonceMode;
use crate::auth::{ProofError, ProofExpectation, verify_proof};
use jsonwebtoken::errors::ErrorKind;

use crate::jose::{self, Jws};
use crate::server::{St, expected_url, validation_error, verr};
use crate::state::{
    ASSERTION_MAX_LIFETIME_SECS, AccessToken, Inner, LEEWAY_SECS, RefreshToken, Shared, after,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn oauth_error(status: StatusCode, code: &str, description: impl Into<String>) -> Response {
    let mut res = (
        status,
        axum::Json(json!({ "error": code, "error_description": description.into() })),
    )
        .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn invalid_client(d: impl Into<String>) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", d)
}

fn invalid_grant(d: impl Into<String>) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d)
}

pub(crate) async fn token(State(st): St, headers: HeaderMap, body: Bytes) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    // FastAPI reads the form model from the body: without a form body, grant_type is missing.
    let missing_grant = || {
        validation_error(vec![verr(
            "missing",
            &["body".into(), "grant_type".into()],
            "Field required",
            Value::Null,
        )])
    };
    if !is_form {
        return missing_grant();
    }
    let mut form: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        if form.insert(k.to_string(), v.to_string()).is_some() {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("Parameter {k} appears more than once"),
            );
        }
    }
    let token_url = expected_url(&st, "/oauth/token");
    let proof = {
        let mut proofs = headers.get_all("dpop").iter();
        match (proofs.next(), proofs.next()) {
            (None, _) => None,
            (Some(p), None) => Some(p.to_str().unwrap_or("").to_owned()),
            (Some(_), Some(_)) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_dpop_proof",
                    "Send at most one DPoP header",
                );
            }
        }
    };
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => client_credentials(&st, &form, &token_url, proof.as_deref()),
        Some("refresh_token") => refresh(&st, &form, &token_url, proof.as_deref()),
        Some(other) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!(
                "grant_type {other:?} is not supported: use client_credentials or refresh_token"
            ),
        ),
        None => missing_grant(),
    }
}

/// Checks the optional token-endpoint proof (required, with a nonce, when nonces are required).
fn check_token_proof(
    st: &Shared,
    inner: &mut Inner,
    proof: Option<&str>,
    token_url: &str,
    jkt: &str,
) -> Result<(), Response> {
    let mode = st.config.nonce_mode;
    let Some(proof) = proof else {
        if mode == NonceMode::Require {
            return Err(use_nonce(
                inner.current_nonce(),
                "this server requires a DPoP proof carrying the nonce in the DPoP-Nonce header",
            ));
        }
        return Ok(());
    };
    let want = ProofExpectation {
        htm: "POST",
        htu: token_url,
        ath: None,
        jkt,
    };
    match verify_proof(inner, mode, proof, &want) {
        Ok(()) => Ok(()),
        Err(ProofError::Invalid(d)) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            d,
        )),
        Err(ProofError::Nonce(n, d)) => Err(use_nonce(n, d)),
    }
}

fn use_nonce(nonce: String, d: &str) -> Response {
    let mut res = oauth_error(StatusCode::BAD_REQUEST, "use_dpop_nonce", d);
    if let Ok(v) = HeaderValue::from_str(&nonce) {
        res.headers_mut().insert("dpop-nonce", v);
    }
    res
}

/// `scope` must be a subset of `ceiling`; absent or empty means the whole ceiling.
fn narrow_scope(
    form: &HashMap<String, String>,
    ceiling: &[String],
) -> Result<Vec<String>, Response> {
    let Some(asked) = form.get("scope").filter(|s| !s.trim().is_empty()) else {
        return Ok(ceiling.to_vec());
    };
    let mut out: Vec<String> = Vec::new();
    for s in asked.split(' ').filter(|s| !s.is_empty()) {
        if !ceiling.iter().any(|c| c == s) {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                format!(
                    "scope {s:?} is not granted to this binding (it holds: {}): ask for less",
                    ceiling.join(" ")
                ),
            ));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

fn issue(
    st: &Shared,
    inner: &mut Inner,
    client_id: &str,
    jkt: &str,
    scopes: Vec<String>,
    family: u64,
) -> Response {
    let now = inner.now();
    let lifetime = st.config.access_token_lifetime;
    let access = jose::random_token("rat_");
    let refresh = jose::random_token("rrt_");
    inner.access_tokens.insert(
        access.clone(),
        AccessToken {
            client_id: client_id.to_owned(),
            jkt: jkt.to_owned(),
            ath: jose::ath(&access),
            scopes: scopes.clone(),
            family,
            expires_at: after(now, lifetime),
        },
    );
    inner.refresh_tokens.insert(
        refresh.clone(),
        RefreshToken {
            client_id: client_id.to_owned(),
            scopes: scopes.clone(),
            family,
            expires_at: after(now, st.config.refresh_token_lifetime),
            rotated: false,
        },
    );
    let mut res = axum::Json(json!({
        "access_token": access,
        "token_type": "DPoP",
        "expires_in": lifetime.as_secs(),
        "refresh_token": refresh,
        "scope": scopes.join(" "),
    }))
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

fn client_credentials(
    st: &Shared,
    form: &HashMap<String, String>,
    token_url: &str,
    proof: Option<&str>,
) -> Response {
    if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
        return invalid_client(format!("client_assertion_type must be {JWT_BEARER}"));
    }
    let Some(assertion) = form.get("client_assertion") else {
        return invalid_client(
            "client_assertion is required (a JWT signed with the binding's key)",
        );
    };
    let jws = match Jws::parse(assertion) {
        Ok(j) => j,
        Err(e) => return invalid_client(format!("client assertion is malformed: {e}")),
    };
    if jws.header_str("alg") != Some("ES256") {
        return invalid_client("client assertion alg must be ES256");
    }
    if !matches!(
        jws.header.get("typ").map(|t| t.as_str()),
        None | Some(Some("JWT"))
    ) {
        return invalid_client("client assertion typ must be JWT");
    }
    // `iss` only picks the binding whose key must verify the assertion; jsonwebtoken then
    // checks it (and `sub`) again on the verified claims.
    let Some(client_id) = jws
        .unverified_claims()
        .and_then(|c| c.str("iss").map(str::to_owned))
    else {
        return invalid_client("client assertion has no iss claim (the client_id)");
    };
    if let Some(cid) = form.get("client_id")
        && *cid != client_id
    {
        return invalid_client("client_id does not match the assertion's iss");
    }
    let mut inner = st.lock();
    let Some(binding) = inner.bindings.get(&client_id) else {
        return invalid_client("unknown client_id: register this host again with a new ticket");
    };
    if binding.revoked {
        return invalid_client(
            "this credential binding was revoked: register again with a new ticket",
        );
    }
    let (jkt, ceiling) = (binding.jkt.clone(), binding.scopes.clone());
    if jws.header_str("kid") != Some(jkt.as_str()) {
        return invalid_client("client assertion kid must be the binding key's thumbprint");
    }
    let mut validation = jose::es256_validation();
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[&client_id]);
    validation.sub = Some(client_id.clone());
    validation.validate_aud = true;
    validation.set_audience(&[token_url]);
    let claims = match jws.verify(&binding.key, &validation) {
        Ok(c) => c,
        Err(e) => {
            return invalid_client(match e.kind() {
                ErrorKind::InvalidSignature => {
                    "client assertion signature does not verify with the binding's key".to_owned()
                }
                ErrorKind::InvalidAudience => {
                    format!("client assertion aud must be the token URL {token_url}")
                }
                ErrorKind::MissingRequiredClaim(c) if c == "aud" => {
                    format!("client assertion aud must be the token URL {token_url}")
                }
                _ => format!("client assertion {}", jose::describe(&e)),
            });
        }
    };
    let (Some(iat), Some(exp)) = (claims.time("iat"), claims.time("exp")) else {
        return invalid_client("client assertion needs numeric iat and exp claims");
    };
    let now = inner.now().timestamp();
    if exp <= iat || exp.saturating_sub(iat) > ASSERTION_MAX_LIFETIME_SECS {
        return invalid_client(
            "client assertion lifetime (exp - iat) must be between 1 and 300 seconds",
        );
    }
    if exp.saturating_add(LEEWAY_SECS) <= now {
        return invalid_client(
            "client assertion has expired: sign a fresh one (check the clock against the server's Date header)",
        );
    }
    if iat > now + LEEWAY_SECS {
        return invalid_client(
            "client assertion iat is in the future: correct the clock skew with the server's Date header",
        );
    }
    let Some(jti) = claims.str("jti").filter(|j| !j.is_empty()) else {
        return invalid_client("client assertion has no jti claim");
    };
    let jti_key = format!("assertion:{client_id}:{jti}");
    if !inner.check_jti(&jti_key) {
        return invalid_client(
            "client assertion jti was already used: sign a fresh assertion for every token request",
        );
    }
    if let Err(r) = check_token_proof(st, &mut inner, proof, token_url, &jkt) {
        return r;
    }
    let scopes = match narrow_scope(form, &ceiling) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let forget =
        inner.now() + ChronoDuration::seconds(ASSERTION_MAX_LIFETIME_SECS + 2 * LEEWAY_SECS);
    inner.record_jti(jti_key, forget);
    let family = inner.new_family(&client_id);
    inner.counters.token_mints += 1;
    issue(st, &mut inner, &client_id, &jkt, scopes, family)
}

fn refresh(
    st: &Shared,
    form: &HashMap<String, String>,
    token_url: &str,
    proof: Option<&str>,
) -> Response {
    let Some(rt) = form.get("refresh_token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token is required",
        );
    };
    let Some(client_id) = form.get("client_id") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id is required with a refresh_token grant",
        );
    };
    let mut inner = st.lock();
    let now = inner.now();
    let Some(record) = inner.refresh_tokens.get(rt) else {
        return invalid_grant("unknown refresh token: mint a new token with a client assertion");
    };
    if record.client_id != *client_id {
        return invalid_grant("this refresh token was not issued to this client_id");
    }
    let (family, scopes_held, rotated, expired) = (
        record.family,
        record.scopes.clone(),
        record.rotated,
        record.expires_at <= now,
    );
    if rotated {
        // A rotated token presented again: someone holds a copy. Kill the whole family.
        if let Some(f) = inner.families.get_mut(&family) {
            f.revoked = true;
        }
        return invalid_grant(
            "refresh token was already used (replay): its token family is revoked; mint a new token with a client assertion",
        );
    }
    if !inner.family_alive(family) {
        return invalid_grant(
            "refresh token was revoked: mint a new token with a client assertion",
        );
    }
    if expired {
        return invalid_grant(
            "refresh token has expired: mint a new token with a client assertion",
        );
    }
    let Some(binding) = inner.bindings.get(client_id) else {
        return invalid_client("unknown client_id: register again");
    };
    if binding.revoked {
        return invalid_client(
            "this credential binding was revoked: register again with a new ticket",
        );
    }
    let jkt = binding.jkt.clone();
    if let Err(r) = check_token_proof(st, &mut inner, proof, token_url, &jkt) {
        return r;
    }
    let scopes = match narrow_scope(form, &scopes_held) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = inner.refresh_tokens.get_mut(rt) {
        r.rotated = true;
    }
    inner.counters.refreshes += 1;
    issue(st, &mut inner, client_id, &jkt, scopes, family)
}
