//! Registration, token endpoint, DPoP resource checks and nonces, positive and negative.

use std::time::Duration;

use ralio_sandbox::{NonceMode, Sandbox, TicketSpec};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

async fn sandbox() -> Sandbox {
    Sandbox::builder().seed(1).start().await.unwrap()
}

async fn post_registration(sb: &Sandbox, body: Value) -> (StatusCode, Value) {
    let res = http()
        .post(format!(
            "{}/api/credential-bindings/registrations",
            sb.base_url()
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

#[tokio::test]
async fn registration_success_echoes_fingerprint_and_scopes() {
    let sb = sandbox().await;
    let key = Key::new();
    let ticket = sb.mint_ticket(TicketSpec::default());
    let (status, body) = post_registration(
        &sb,
        json!({ "ticket": ticket, "public_key_jwk": key.jwk(),
        "requested_scopes": ["transactions:read"], "client_metadata": { "hostname": "build-7" } }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["client_id"].as_str().unwrap().starts_with("cb_"));
    assert_eq!(body["fingerprint"], key.jkt());
    assert_eq!(body["scopes"], json!(["transactions:read"]));
    assert_eq!(sb.counters().registrations, 1);

    // The same ticket again: consumed, with when and by whom.
    let (status, body) = post_registration(
        &sb,
        json!({ "ticket": ticket, "public_key_jwk": Key::new().jwk() }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["detail"]["error"], "ticket_already_consumed");
    assert_eq!(body["detail"]["used_by_host"], "build-7");
    assert!(
        chrono::DateTime::parse_from_rfc3339(body["detail"]["used_at"].as_str().unwrap()).is_ok()
    );
}

#[tokio::test]
async fn registration_errors_have_protocol_codes_and_statuses() {
    let sb = sandbox().await;
    let good = Key::new();
    let narrow = sb.mint_ticket(TicketSpec {
        scopes: vec!["transactions:read".into()],
        ..TicketSpec::default()
    });
    let expired = sb.mint_ticket(TicketSpec {
        expires_in: Duration::ZERO,
        ..TicketSpec::default()
    });
    let mut with_d = good.jwk();
    with_d["d"] = json!("AAAA");
    let mut off_curve = good.jwk();
    off_curve["y"] = off_curve["x"].clone();
    let mut short = good.jwk();
    short["x"] = json!("AAAA");
    let mut rsa = good.jwk();
    rsa["kty"] = json!("RSA");
    let mut p384 = good.jwk();
    p384["crv"] = json!("P-384");
    let fresh = || sb.mint_ticket(TicketSpec::default());

    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "unknown ticket",
            json!({ "ticket": "ralio-reg-nope", "public_key_jwk": good.jwk() }),
            StatusCode::BAD_REQUEST,
            "invalid_ticket",
        ),
        (
            "expired ticket",
            json!({ "ticket": expired, "public_key_jwk": good.jwk() }),
            StatusCode::GONE,
            "ticket_expired",
        ),
        (
            "private member d",
            json!({ "ticket": fresh(), "public_key_jwk": with_d }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_public_key",
        ),
        (
            "point off the curve",
            json!({ "ticket": fresh(), "public_key_jwk": off_curve }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_public_key",
        ),
        (
            "short coordinate",
            json!({ "ticket": fresh(), "public_key_jwk": short }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_public_key",
        ),
        (
            "wrong kty",
            json!({ "ticket": fresh(), "public_key_jwk": rsa }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_public_key",
        ),
        (
            "wrong curve",
            json!({ "ticket": fresh(), "public_key_jwk": p384 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_public_key",
        ),
        (
            "unknown scope",
            json!({ "ticket": fresh(), "public_key_jwk": good.jwk(), "requested_scopes": ["payments:write"] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_scope",
        ),
        (
            "human-only scope",
            json!({ "ticket": fresh(), "public_key_jwk": good.jwk(), "requested_scopes": ["agents:config"] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_scope",
        ),
        (
            "above the ceiling",
            json!({ "ticket": narrow, "public_key_jwk": good.jwk(), "requested_scopes": ["agents:execute"] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scope_exceeds_ticket_ceiling",
        ),
    ];
    for (name, body, status, code) in cases {
        let (got, body) = post_registration(&sb, body).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["detail"]["error"], code, "{name}");
        assert!(
            body["detail"]["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
    // None of those consumed a ticket or created a binding.
    assert_eq!(sb.counters().registrations, 0);
    let (status, _) = post_registration(
        &sb,
        json!({ "ticket": narrow, "public_key_jwk": good.jwk() }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // One binding per key.
    let (status, body) = post_registration(
        &sb,
        json!({ "ticket": fresh(), "public_key_jwk": good.jwk() }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["detail"]["error"], "public_key_already_in_use");

    // A missing field is a FastAPI validation list.
    let (status, body) = post_registration(&sb, json!({ "public_key_jwk": good.jwk() })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["type"], "missing");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "ticket"]));
}

#[tokio::test]
async fn mint_grants_full_ceiling_and_narrows_on_request() {
    let sb = sandbox().await;
    let (key, client_id) = register(&sb, TicketSpec::default()).await;
    let res = mint_with(&sb, &key, &client_id, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["scope"], "agents:execute transactions:read");
    assert!(body["refresh_token"].is_string());

    let res = mint_with(&sb, &key, &client_id, Some("transactions:read")).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], "transactions:read");

    let res = mint_with(
        &sb,
        &key,
        &client_id,
        Some("transactions:read agents:config"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
    assert_eq!(sb.counters().token_mints, 2);
}

#[tokio::test]
async fn token_lifetime_is_configurable() {
    let sb = Sandbox::builder()
        .access_token_lifetime(Duration::from_secs(42))
        .start()
        .await
        .unwrap();
    let s = Session::start(&sb).await;
    let body: Value = mint_with(&sb, &s.key, &s.client_id, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["expires_in"], 42);
}

#[tokio::test]
async fn assertion_negative_matrix() {
    let sb = sandbox().await;
    let (key, client_id) = register(&sb, TicketSpec::default()).await;
    let (other_key, _) = register(&sb, TicketSpec::default()).await;
    let token_url = sb.token_url();
    type Tamper<'a> = Box<dyn Fn(&mut Value, &mut Value) + 'a>;
    let cases: Vec<(&str, Tamper<'_>)> = vec![
        ("alg HS256", Box::new(|h, _| h["alg"] = json!("HS256"))),
        (
            "kid of another key",
            Box::new(|h, _| h["kid"] = json!("not-the-thumbprint")),
        ),
        (
            "sub differs from iss",
            Box::new(|_, c| c["sub"] = json!("cb_someone_else")),
        ),
        (
            "unknown client",
            Box::new(|_, c| {
                c["iss"] = json!("cb_unknown");
                c["sub"] = json!("cb_unknown");
            }),
        ),
        (
            "aud is the base URL",
            Box::new(|_, c| c["aud"] = json!("http://127.0.0.1/")),
        ),
        (
            "lifetime over 300 s",
            Box::new(|_, c| c["exp"] = json!(c["iat"].as_i64().unwrap() + 301)),
        ),
        (
            "expired",
            Box::new(|_, c| {
                c["iat"] = json!(now() - 200);
                c["exp"] = json!(now() - 140);
            }),
        ),
        (
            "issued in the future",
            Box::new(|_, c| {
                c["iat"] = json!(now() + 120);
                c["exp"] = json!(now() + 180);
            }),
        ),
        (
            "exp at the end of time",
            Box::new(|_, c| c["exp"] = json!(i64::MAX)),
        ),
        (
            "iat far in the past",
            Box::new(|_, c| c["iat"] = json!(-1e300)),
        ),
        (
            "no jti",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
    ];
    for (name, tamper) in cases {
        let (mut h, mut c) = key.assertion_parts(&client_id, &token_url);
        tamper(&mut h, &mut c);
        let jwt = key.sign(&h, &c);
        let res = token_request(
            &sb,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &jwt),
            ],
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{name}");
    }
    // Signed with another binding's key.
    let (h, c) = key.assertion_parts(&client_id, &token_url);
    let jwt = other_key.sign(&h, &c);
    let res = token_request(
        &sb,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &jwt),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Replayed jti: first use succeeds, second is refused.
    let jwt = key.assertion(&client_id, &token_url);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", jwt.as_str()),
    ];
    assert_eq!(
        token_request(&sb, &form, None).await.status(),
        StatusCode::OK
    );
    let res = token_request(&sb, &form, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    assert_eq!(sb.counters().token_mints, 1);
}

#[tokio::test]
async fn token_endpoint_proof_is_optional_but_checked_when_present() {
    let sb = sandbox().await;
    let (key, client_id) = register(&sb, TicketSpec::default()).await;
    let url = sb.token_url();
    let mint = |proof: Option<String>| {
        let jwt = key.assertion(&client_id, &url);
        let sb = &sb;
        async move {
            token_request(
                sb,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &jwt),
                ],
                proof,
            )
            .await
        }
    };
    assert_eq!(
        mint(Some(key.proof("POST", &url, None, None)))
            .await
            .status(),
        StatusCode::OK
    );
    for (name, proof) in [
        ("wrong key", Key::new().proof("POST", &url, None, None)),
        ("wrong htm", key.proof("GET", &url, None, None)),
        (
            "wrong htu",
            key.proof("POST", &format!("{}/api/agents", sb.base_url()), None, None),
        ),
    ] {
        let res = mint(Some(proof)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "invalid_dpop_proof",
            "{name}"
        );
    }
}

#[tokio::test]
async fn refresh_rotates_and_replay_kills_the_family() {
    let sb = sandbox().await;
    let s = Session::start(&sb).await;
    let refresh = |rt: String| {
        let sb = &sb;
        let cid = s.client_id.clone();
        async move {
            token_request(
                sb,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("client_id", &cid),
                ],
                None,
            )
            .await
        }
    };
    let res = refresh(s.refresh.clone()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let rt2 = body["refresh_token"].as_str().unwrap().to_owned();
    let at2 = body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(rt2, s.refresh);
    assert_eq!(sb.counters().refreshes, 1);

    // The new access token works.
    let s2 = Session {
        access: at2.clone(),
        refresh: rt2.clone(),
        key: s.key,
        client_id: s.client_id.clone(),
        base: s.base.clone(),
    };
    assert_eq!(
        s2.call(Method::GET, "/api/agents", None).await.status(),
        StatusCode::OK
    );

    // Replaying the rotated token is refused and revokes the family...
    let res = refresh(s.refresh.clone()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // ...so the current refresh token and the family's access tokens are dead too.
    let res = refresh(rt2).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let res = s2.call(Method::GET, "/api/agents", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www_error(&res).as_deref(), Some("invalid_token"));
    // A fresh mint starts a new, working family.
    let res = mint_with(&sb, &s2.key, &s2.client_id, None).await;
    assert_eq!(res.status(), StatusCode::OK);

    // Unknown refresh token and a token presented for another client.
    let res = refresh("rrt_unknown".into()).await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let other = Session::start(&sb).await;
    let res = token_request(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &other.refresh),
            ("client_id", &s2.client_id),
        ],
        None,
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn resource_negative_matrix() {
    let sb = sandbox().await;
    let s = Session::start(&sb).await;
    let other = Session::start(&sb).await;
    let read_only = Session::with_ticket(
        &sb,
        TicketSpec {
            scopes: vec!["transactions:read".into()],
            ..TicketSpec::default()
        },
    )
    .await;
    let url = s.url("/api/transactions");
    let authz = || Some(format!("DPoP {}", s.access));
    type Tamper<'a> = Box<dyn Fn(&mut Value, &mut Value) + 'a>;
    let tampered: Vec<(&str, Tamper<'_>, &str)> = vec![
        (
            "wrong htu (other path)",
            Box::new(|_, c| c["htu"] = json!(s.url("/api/agents"))),
            "invalid_dpop_proof",
        ),
        (
            "htu with a query",
            Box::new(|_, c| c["htu"] = json!(format!("{url}?page=1"))),
            "invalid_dpop_proof",
        ),
        (
            "wrong htu port",
            Box::new(|_, c| c["htu"] = json!("http://127.0.0.1:1/api/transactions")),
            "invalid_dpop_proof",
        ),
        (
            "wrong htm",
            Box::new(|_, c| c["htm"] = json!("POST")),
            "invalid_dpop_proof",
        ),
        (
            "wrong ath",
            Box::new(|_, c| c["ath"] = json!(ath("another token"))),
            "invalid_dpop_proof",
        ),
        (
            "missing ath",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("ath");
            }),
            "invalid_dpop_proof",
        ),
        (
            "wrong typ",
            Box::new(|h, _| h["typ"] = json!("JWT")),
            "invalid_dpop_proof",
        ),
        (
            "wrong alg",
            Box::new(|h, _| h["alg"] = json!("ES384")),
            "invalid_dpop_proof",
        ),
        (
            "no jwk",
            Box::new(|h, _| {
                h.as_object_mut().unwrap().remove("jwk");
            }),
            "invalid_dpop_proof",
        ),
        (
            "expired iat",
            Box::new(|_, c| c["iat"] = json!(now() - 600)),
            "invalid_dpop_proof",
        ),
        (
            "future iat",
            Box::new(|_, c| c["iat"] = json!(now() + 120)),
            "invalid_dpop_proof",
        ),
    ];
    for (name, tamper, code) in tampered {
        let (mut h, mut c) = s.key.proof_parts("GET", &url, Some(&s.access));
        tamper(&mut h, &mut c);
        let res = s
            .raw(
                Method::GET,
                "/api/transactions",
                authz(),
                Some(s.key.sign(&h, &c)),
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(www_error(&res).as_deref(), Some(code), "{name}");
    }

    // Signed by a key that is not the token's (its own jwk, valid signature).
    let res = s
        .raw(
            Method::GET,
            "/api/transactions",
            authz(),
            Some(Key::new().proof("GET", &url, Some(&s.access), None)),
            None,
        )
        .await;
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof")),
        "wrong key"
    );

    // Jwk of the right key, signature by another. The header is byte-identical to the one of
    // every valid proof of this key, which the sandbox remembers (`jose::proof_key`): a valid
    // call first makes sure it is remembered, so this proves a remembered header still has its
    // signature verified.
    let warm = s.call(Method::GET, "/api/transactions", None).await;
    assert_eq!(warm.status(), StatusCode::OK, "warm-up call");
    let (h, c) = s.key.proof_parts("GET", &url, Some(&s.access));
    let res = s
        .raw(
            Method::GET,
            "/api/transactions",
            authz(),
            Some(Key::new().sign(&h, &c)),
            None,
        )
        .await;
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof")),
        "bad signature"
    );

    // Replayed jti.
    let proof = s.key.proof("GET", &url, Some(&s.access), None);
    let res = s
        .raw(
            Method::GET,
            "/api/transactions",
            authz(),
            Some(proof.clone()),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = s
        .raw(Method::GET, "/api/transactions", authz(), Some(proof), None)
        .await;
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof")),
        "replayed jti"
    );

    // Missing DPoP header.
    let res = s
        .raw(Method::GET, "/api/transactions", authz(), None, None)
        .await;
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof")),
        "missing proof"
    );

    // Missing Authorization: a challenge without an error code (RFC 6750 §3.1).
    let res = s
        .raw(
            Method::GET,
            "/api/transactions",
            None,
            Some(s.key.proof("GET", &url, Some(&s.access), None)),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www_error(&res), None);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("DPoP")
    );

    // Bearer scheme, even with a valid proof.
    let res = s
        .raw(
            Method::GET,
            "/api/transactions",
            Some(format!("Bearer {}", s.access)),
            Some(s.key.proof("GET", &url, Some(&s.access), None)),
            None,
        )
        .await;
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token")),
        "Bearer"
    );

    // Another binding's token with our proof (ath matches their token).
    let res = s
        .raw(
            Method::GET,
            "/api/transactions",
            Some(format!("DPoP {}", other.access)),
            Some(s.key.proof("GET", &url, Some(&other.access), None)),
            None,
        )
        .await;
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof")),
        "token of another binding"
    );

    // Unknown token.
    let res = s
        .raw(
            Method::GET,
            "/api/transactions",
            Some("DPoP rat_nope".into()),
            Some(s.key.proof("GET", &url, Some("rat_nope"), None)),
            None,
        )
        .await;
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token")),
        "unknown token"
    );

    // Missing scope: 403 insufficient_scope.
    let res = read_only
        .call(
            Method::POST,
            "/api/chat",
            Some(json!({ "agent_id": sb.default_agent_id(), "message": "balance?" })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(www_error(&res).as_deref(), Some("insufficient_scope"));
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"agents:execute\"")
    );

    // And the positive control: the same request done right.
    assert_eq!(
        s.call(Method::GET, "/api/transactions", None)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_refused() {
    let sb = Sandbox::builder()
        .access_token_lifetime(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let s = Session::start(&sb).await;
    // Move the server's clock past the token's lifetime instead of sleeping.
    sb.set_faults(ralio_sandbox::Faults {
        clock_offset_secs: 5,
        ..Default::default()
    });
    let url = s.url("/api/agents");
    let (h, mut c) = s.key.proof_parts("GET", &url, Some(&s.access));
    c["iat"] = json!(now() + 5);
    let res = s
        .raw(
            Method::GET,
            "/api/agents",
            Some(format!("DPoP {}", s.access)),
            Some(s.key.sign(&h, &c)),
            None,
        )
        .await;
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );

    let sb = sandbox().await;
    let s = Session::start(&sb).await;
    sb.revoke_binding(&s.client_id).unwrap();
    let res = s.call(Method::GET, "/api/agents", None).await;
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    let res = mint_with(&sb, &s.key, &s.client_id, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    assert!(matches!(
        sb.revoke_binding("cb_nope"),
        Err(ralio_sandbox::SandboxError::UnknownBinding { .. })
    ));

    let s = Session::start(&sb).await;
    sb.revoke_refresh_family(&s.client_id).unwrap();
    let res = s.call(Method::GET, "/api/agents", None).await;
    assert_eq!(www_error(&res).as_deref(), Some("invalid_token"));
    let res = token_request(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &s.refresh),
            ("client_id", &s.client_id),
        ],
        None,
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn nonce_required_at_resources_and_token_endpoint() {
    let sb = Sandbox::builder()
        .nonce_mode(NonceMode::Require)
        .start()
        .await
        .unwrap();
    let (key, client_id) = register(&sb, TicketSpec::default()).await;
    let url = sb.token_url();
    let form = |jwt: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_assertion_type", JWT_BEARER.to_owned()),
            ("client_assertion", jwt.to_owned()),
        ]
    };
    // Without a nonce: 400 use_dpop_nonce with a DPoP-Nonce header.
    let jwt = key.assertion(&client_id, &url);
    let res = http()
        .post(&url)
        .form(&form(&jwt))
        .header("DPoP", key.proof("POST", &url, None, None))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "use_dpop_nonce"
    );
    // Retried with the nonce (same assertion: the challenge did not burn its jti).
    let res = http()
        .post(&url)
        .form(&form(&jwt))
        .header("DPoP", key.proof("POST", &url, None, Some(&nonce)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers().contains_key("dpop-nonce"),
        "fresh nonces ride on success responses"
    );
    let access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let agents = format!("{}/api/agents", sb.base_url());
    let call = |nonce: Option<String>| {
        let proof = key.proof("GET", &agents, Some(&access), nonce.as_deref());
        http()
            .get(&agents)
            .header("Authorization", format!("DPoP {access}"))
            .header("DPoP", proof)
            .send()
    };
    let res = call(None).await.unwrap();
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("use_dpop_nonce"))
    );
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let res = call(Some("stale-or-made-up".into())).await.unwrap();
    assert_eq!(www_error(&res).as_deref(), Some("use_dpop_nonce"));
    assert_eq!(
        call(Some(nonce.clone())).await.unwrap().status(),
        StatusCode::OK
    );

    // Nonces rotate: after two rotations the old one is refused and a new one is offered.
    sb.rotate_nonce();
    assert_eq!(
        call(Some(nonce.clone())).await.unwrap().status(),
        StatusCode::OK,
        "the previous nonce stays valid for one rotation"
    );
    sb.rotate_nonce();
    let res = call(Some(nonce.clone())).await.unwrap();
    assert_eq!(www_error(&res).as_deref(), Some("use_dpop_nonce"));
    assert_ne!(res.headers()["dpop-nonce"].to_str().unwrap(), nonce);
}

#[tokio::test]
async fn nonce_offer_accepts_proofs_without_one() {
    let sb = Sandbox::builder()
        .nonce_mode(NonceMode::Offer)
        .start()
        .await
        .unwrap();
    let s = Session::start(&sb).await;
    let res = s.call(Method::GET, "/api/agents", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("dpop-nonce"));
    let url = s.url("/api/agents");
    let res = s
        .raw(
            Method::GET,
            "/api/agents",
            Some(format!("DPoP {}", s.access)),
            Some(s.key.proof("GET", &url, Some(&s.access), Some("bogus"))),
            None,
        )
        .await;
    assert_eq!(www_error(&res).as_deref(), Some("use_dpop_nonce"));
}

#[tokio::test]
async fn nonces_are_off_by_default() {
    let sb = sandbox().await;
    let s = Session::start(&sb).await;
    let res = s.call(Method::GET, "/api/agents", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key("dpop-nonce"));
}

#[tokio::test]
async fn clock_offset_shows_in_date_and_iat_checks() {
    let sb = Sandbox::builder().clock_offset(3600).start().await.unwrap();
    let (key, client_id) = register(&sb, TicketSpec::default()).await;
    let res = mint_with(&sb, &key, &client_id, None).await;
    let date = httpdate::parse_http_date(res.headers()["date"].to_str().unwrap()).unwrap();
    let ahead = date.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(ahead > Duration::from_secs(3500), "Date is an hour ahead");
    // An assertion by the real clock is an hour old for this server.
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // One signed with the server's clock passes.
    let (h, mut c) = key.assertion_parts(&client_id, &sb.token_url());
    c["iat"] = json!(now() + 3600);
    c["exp"] = json!(now() + 3660);
    let res = token_request(
        &sb,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &key.sign(&h, &c)),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}
