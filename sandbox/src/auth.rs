//! DPoP proof verification (RFC 9449) and resource-request authentication.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration as ChronoDuration;
use serde_json::json;

use crate::NonceMode;
use crate::jose;
use crate::server::expected_url;
use crate::state::{Inner, LEEWAY_SECS, PROOF_MAX_AGE_SECS, Shared};

/// Why a proof was refused.
pub(crate) enum ProofError {
    /// `invalid_dpop_proof` with a description.
    Invalid(String),
    /// `use_dpop_nonce`: the fresh nonce to send back, and a description.
    Nonce(String, &'static str),
}

/// What the proof must match.
pub(crate) struct ProofExpectation<'a> {
    pub(crate) htm: &'a str,
    pub(crate) htu: &'a str,
    /// `Some` at resources (the access token's hash); `None` at the token endpoint.
    pub(crate) ath: Option<String>,
    /// Thumbprint of the key the token or binding is bound to.
    pub(crate) jkt: &'a str,
}

/// A proof whose header, signature, `htm`, `htu` and `iat` passed; the checks that need the
/// server state (`jti` replay, nonce) are [`accept_proof`]'s.
pub(crate) struct CheckedProof {
    key: std::sync::Arc<jose::PublicJwk>,
    claims: jose::Claims,
}

/// Verifies a DPoP proof completely; records its `jti` only when it is accepted.
pub(crate) fn verify_proof(
    inner: &mut Inner,
    mode: NonceMode,
    proof: &str,
    want: &ProofExpectation<'_>,
) -> Result<(), ProofError> {
    let now = inner.now().timestamp();
    let checked = check_proof(proof, want, now)?;
    accept_proof(inner, mode, checked, want)
}

/// The stateless half of [`verify_proof`], run without the state lock (the signature check is
/// most of a request's cost): header, key, signature, `htm`, `htu`, `iat` against `now`.
pub(crate) fn check_proof(
    proof: &str,
    want: &ProofExpectation<'_>,
    now: i64,
) -> Result<CheckedProof, ProofError> {
    let bad = |s: &str| ProofError::Invalid(s.to_owned());
    let key = jose::proof_key(proof).map_err(ProofError::Invalid)?;
    let claims = jose::verify_compact(proof, &key.key, jose::es256_validation_ref()).map_err(
        |e| match key.on_curve() {
            Err(why) => ProofError::Invalid(format!("DPoP proof jwk is not acceptable: {why}")),
            Ok(()) => ProofError::Invalid(format!(
                "DPoP proof {} (checked with its jwk)",
                jose::describe(&e)
            )),
        },
    )?;
    if claims.str("htm") != Some(want.htm) {
        return Err(ProofError::Invalid(format!(
            "DPoP proof htm must be {:?}, the request's method",
            want.htm
        )));
    }
    let htu = claims
        .str("htu")
        .ok_or_else(|| bad("DPoP proof has no htu claim"))?;
    check_htu(htu, want.htu).map_err(ProofError::Invalid)?;
    let iat = claims
        .time("iat")
        .ok_or_else(|| bad("DPoP proof has no numeric iat claim"))?;
    if iat > now + LEEWAY_SECS {
        return Err(bad(
            "DPoP proof iat is in the future: correct the clock skew with the server's Date header",
        ));
    }
    if iat < now - PROOF_MAX_AGE_SECS {
        return Err(bad(
            "DPoP proof is too old (iat more than 300 s ago): sign a fresh proof for every request",
        ));
    }
    Ok(CheckedProof { key, claims })
}

/// The stateful half of [`verify_proof`], under the state lock: `jti` not seen before, `ath`,
/// the bound key, the nonce; records the `jti` only when everything passed.
pub(crate) fn accept_proof(
    inner: &mut Inner,
    mode: NonceMode,
    checked: CheckedProof,
    want: &ProofExpectation<'_>,
) -> Result<(), ProofError> {
    let bad = |s: &str| ProofError::Invalid(s.to_owned());
    let CheckedProof { key, claims } = checked;
    let jti = claims
        .str("jti")
        .filter(|j| !j.is_empty())
        .ok_or_else(|| bad("DPoP proof has no jti claim"))?;
    let jti_key = format!("dpop:{}:{jti}", key.jkt);
    if !inner.check_jti(&jti_key) {
        return Err(bad(
            "DPoP proof jti was already used: sign a fresh proof for every request, retries included",
        ));
    }
    match (&want.ath, claims.str("ath")) {
        (Some(_), None) => {
            return Err(bad(
                "DPoP proof has no ath claim (base64url SHA-256 of the access token)",
            ));
        }
        (Some(expected), Some(got)) if expected != got => {
            return Err(bad("DPoP proof ath does not match the access token"));
        }
        _ => {}
    }
    if key.jkt != want.jkt {
        return Err(bad(
            "DPoP proof key is not the key this token or binding is bound to",
        ));
    }
    if let Err(fresh) = inner.check_nonce(mode, claims.str("nonce")) {
        let why = if claims.str("nonce").is_some() {
            "DPoP nonce is stale: retry with the nonce in the DPoP-Nonce header"
        } else {
            "this server requires a DPoP nonce: retry with the nonce in the DPoP-Nonce header"
        };
        return Err(ProofError::Nonce(fresh, why));
    }
    let forget = inner.now() + ChronoDuration::seconds(PROOF_MAX_AGE_SECS + LEEWAY_SECS);
    inner.record_jti(jti_key, forget);
    Ok(())
}

/// `htu` must name the same scheme, host, port and path as the request, with no query or fragment.
pub(crate) fn check_htu(claimed: &str, expected: &str) -> Result<(), String> {
    // The common case, and `expected` has no query or fragment: skip parsing both URLs.
    if claimed == expected {
        return Ok(());
    }
    let c =
        url::Url::parse(claimed).map_err(|_| "DPoP proof htu is not an absolute URL".to_owned())?;
    if c.query().is_some() || c.fragment().is_some() {
        return Err("DPoP proof htu must not contain a query or fragment".to_owned());
    }
    let e = url::Url::parse(expected)
        .map_err(|_| "the request URL could not be reconstructed".to_owned())?;
    let same = c.scheme() == e.scheme()
        && c.host_str() == e.host_str()
        && c.port_or_known_default() == e.port_or_known_default()
        && c.path() == e.path();
    if same {
        Ok(())
    } else {
        Err(format!(
            "DPoP proof htu must be {expected} (scheme, host, port and path of this server's URL for the request)"
        ))
    }
}

/// The authenticated caller of a resource request.
pub(crate) struct Caller {
    pub(crate) agent_id: String,
}

/// The `error` of the challenge a response carries, for the request log (read from here rather
/// than parsed back out of the header).
#[derive(Debug, Clone)]
pub(crate) struct ChallengeCode(pub(crate) String);

fn challenge(
    status: StatusCode,
    code: Option<&str>,
    description: &str,
    extra: Option<(&'static str, String)>,
) -> Response {
    let mut www = String::from("DPoP");
    if let Some(code) = code {
        www.push_str(&format!(
            " error=\"{code}\", error_description=\"{}\",",
            description.replace('"', "'")
        ));
    }
    www.push_str(" algs=\"ES256\"");
    let mut res = (status, axum::Json(json!({ "detail": description }))).into_response();
    if let Ok(v) = HeaderValue::from_str(&www) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    if let Some(code) = code {
        res.extensions_mut().insert(ChallengeCode(code.to_owned()));
    }
    if let Some((name, value)) = extra
        && let Ok(v) = HeaderValue::from_str(&value)
    {
        res.headers_mut().insert(name, v);
    }
    res
}

fn invalid_token(desc: &str) -> Response {
    challenge(StatusCode::UNAUTHORIZED, Some("invalid_token"), desc, None)
}

/// Authenticates a resource request: DPoP token and proof, then scope, then the rate limit.
pub(crate) fn authenticate(
    st: &Shared,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    scope: Option<&str>,
) -> Result<Caller, Response> {
    let Some(authz) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(challenge(
            StatusCode::UNAUTHORIZED,
            None,
            "Not authenticated: send Authorization: DPoP <access token> with a DPoP proof",
            None,
        ));
    };
    let (scheme, token) = authz.split_once(' ').unwrap_or((authz, ""));
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid_token(
            "Ralio tokens are DPoP-bound: use the DPoP authorization scheme with a proof, not Bearer",
        ));
    }
    if !scheme.eq_ignore_ascii_case("dpop") || token.is_empty() {
        return Err(invalid_token(
            "Authorization must be \"DPoP <access token>\"",
        ));
    }
    let htu = expected_url(st, path);
    let inner = st.lock();
    let now = inner.now();
    let Some(at) = inner.access_tokens.get(token) else {
        return Err(invalid_token("The access token is unknown: mint a new one"));
    };
    if at.expires_at <= now {
        return Err(invalid_token(
            "The access token has expired: refresh it or mint a new one",
        ));
    }
    // The scope is checked after the proof (a bad proof is answered first), but read now,
    // without copying the token's scope list.
    let has_scope = scope.is_none_or(|scope| at.scopes.iter().any(|s| s == scope));
    let (client_id, jkt, ath, family) = (
        at.client_id.clone(),
        at.jkt.clone(),
        at.ath.clone(),
        at.family,
    );
    if !inner.family_alive(family) {
        return Err(invalid_token(
            "The access token was revoked: mint a new one with a client assertion",
        ));
    }
    let Some(binding) = inner.bindings.get(&client_id).filter(|b| !b.revoked) else {
        return Err(invalid_token(
            "The credential binding was revoked: register again with a new ticket",
        ));
    };
    let agent_id = binding.agent_id.clone();
    let mut proofs = headers.get_all("dpop").iter();
    let proof = match (proofs.next(), proofs.next()) {
        (Some(p), None) => p.to_str().unwrap_or(""),
        (None, _) => {
            return Err(challenge(
                StatusCode::UNAUTHORIZED,
                Some("invalid_dpop_proof"),
                "Missing DPoP proof header: sign one for every request",
                None,
            ));
        }
        (Some(_), Some(_)) => {
            return Err(challenge(
                StatusCode::UNAUTHORIZED,
                Some("invalid_dpop_proof"),
                "Send exactly one DPoP header",
                None,
            ));
        }
    };
    let want = ProofExpectation {
        htm: method.as_str(),
        htu: &htu,
        ath: Some(ath),
        jkt: &jkt,
    };
    // The signature check runs without the state lock, so concurrent requests do not queue
    // behind it; the replay and nonce checks take it again (and see a revocation made
    // meanwhile).
    let now_secs = now.timestamp();
    drop(inner);
    let checked = check_proof(proof, &want, now_secs);
    let mut inner = st.lock();
    if !inner.family_alive(family) {
        return Err(invalid_token(
            "The access token was revoked: mint a new one with a client assertion",
        ));
    }
    match checked.and_then(|checked| accept_proof(&mut inner, st.config.nonce_mode, checked, &want))
    {
        Ok(()) => {}
        Err(ProofError::Invalid(d)) => {
            return Err(challenge(
                StatusCode::UNAUTHORIZED,
                Some("invalid_dpop_proof"),
                &d,
                None,
            ));
        }
        Err(ProofError::Nonce(n, d)) => {
            return Err(challenge(
                StatusCode::UNAUTHORIZED,
                Some("use_dpop_nonce"),
                d,
                Some(("dpop-nonce", n)),
            ));
        }
    }
    if let Some(scope) = scope
        && !has_scope
    {
        let desc = format!(
            "This token lacks the {scope} scope: register a binding whose ticket allows it"
        );
        let mut res = challenge(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            &desc,
            None,
        );
        if let Ok(v) = HeaderValue::from_str(&format!(
            "DPoP error=\"insufficient_scope\", error_description=\"{desc}\", scope=\"{scope}\", algs=\"ES256\""
        )) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return Err(res);
    }
    if let Some(limit) = st.config.rate_limit
        && let Err(retry_after) = inner.rate_check(&client_id, limit)
    {
        let mut res = crate::server::detail(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Rate limit exceeded: {limit} requests per second per binding; retry after {retry_after} s"
            ),
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return Err(res);
    }
    Ok(Caller { agent_id })
}
