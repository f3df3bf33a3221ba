//! The sandbox is never more lenient than the real server: JOSE header tricks (`alg: none`,
//! key-type confusion, `crit`, `b64: false`), `htu`/`aud` taken from the configured base URL
//! and never from the request's `Host`, and no ticket that could grant `agents:config`.

use ralio_sandbox::{Sandbox, SandboxError, TicketSpec};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::*;

/// HMAC-SHA-256 (RFC 2104), written out so the tests need no MAC crate: only to forge the
/// HS256 tokens an `alg` confusion attack would send.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// An unsigned JWS (`alg: none`, empty signature).
fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.", signing_input(header, claims))
}

/// A JWS MACed with HS256 under `secret`.
fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let mac = hmac_sha256(secret, input.as_bytes());
    format!("{input}.{}", b64(&mac))
}

#[test]
fn hmac_matches_rfc_4231_case_2() {
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test]
async fn proofs_with_header_tricks_are_refused() {
    let sb = Sandbox::builder().start().await.unwrap();
    let s = Session::start(&sb).await;
    let url = s.url("/api/agents");
    let secret = b"a secret the attacker chose";
    let oct = json!({ "kty": "oct", "k": b64(secret) });
    type Forge<'a> = Box<dyn Fn(Value, Value) -> String + 'a>;
    let cases: Vec<(&str, Forge<'_>)> = vec![
        (
            "alg none, no signature",
            Box::new(|mut h, c| {
                h["alg"] = json!("none");
                unsigned(&h, &c)
            }),
        ),
        (
            "alg HS256 with a symmetric jwk the attacker chose",
            Box::new(|mut h, c| {
                h["alg"] = json!("HS256");
                h["jwk"] = oct.clone();
                hs256(&h, &c, secret)
            }),
        ),
        (
            "alg HS256 keyed with the token's public jwk",
            Box::new(|mut h, c| {
                h["alg"] = json!("HS256");
                let jwk = h["jwk"].to_string();
                hs256(&h, &c, jwk.as_bytes())
            }),
        ),
        (
            "alg ES256 with a symmetric jwk",
            Box::new(|mut h, c| {
                h["jwk"] = oct.clone();
                s.key.sign(&h, &c)
            }),
        ),
        (
            "jwk carrying the private member d",
            Box::new(|mut h, c| {
                h["jwk"]["d"] = json!(b64(&[7u8; 32]));
                s.key.sign(&h, &c)
            }),
        ),
        (
            "crit names a header parameter the server does not understand",
            Box::new(|mut h, c| {
                h["crit"] = json!(["exp-policy"]);
                h["exp-policy"] = json!("lenient");
                s.key.sign(&h, &c)
            }),
        ),
        (
            "empty crit",
            Box::new(|mut h, c| {
                h["crit"] = json!([]);
                s.key.sign(&h, &c)
            }),
        ),
        (
            "b64 false (unencoded payload)",
            Box::new(|mut h, c| {
                h["b64"] = json!(false);
                h["crit"] = json!(["b64"]);
                s.key.sign(&h, &c)
            }),
        ),
        (
            "signature with padding",
            Box::new(|h, c| format!("{}=", s.key.sign(&h, &c))),
        ),
        (
            "payload that is not an object",
            Box::new(|h, _| s.key.sign(&h, &json!(["htm", "GET"]))),
        ),
    ];
    for (name, forge) in cases {
        let (h, c) = s.key.proof_parts("GET", &url, Some(&s.access));
        let res = s
            .raw(
                Method::GET,
                "/api/agents",
                Some(format!("DPoP {}", s.access)),
                Some(forge(h, c)),
                None,
            )
            .await;
        assert_eq!(
            (res.status(), www_error(&res).as_deref()),
            (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof")),
            "{name}"
        );
    }
    // The positive control: an honest proof for the same request.
    assert_eq!(
        s.call(Method::GET, "/api/agents", None).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn assertions_with_header_tricks_are_refused() {
    let sb = Sandbox::builder().start().await.unwrap();
    let (key, client_id) = register(&sb, TicketSpec::default()).await;
    let token_url = sb.token_url();
    type Forge<'a> = Box<dyn Fn(Value, Value) -> String + 'a>;
    let cases: Vec<(&str, Forge<'_>)> = vec![
        (
            "alg none, no signature",
            Box::new(|mut h, c| {
                h["alg"] = json!("none");
                unsigned(&h, &c)
            }),
        ),
        (
            "alg HS256 keyed with the binding's public jwk",
            Box::new(|mut h, c| {
                h["alg"] = json!("HS256");
                hs256(&h, &c, key.jwk().to_string().as_bytes())
            }),
        ),
        (
            "crit names a header parameter the server does not understand",
            Box::new(|mut h, c| {
                h["crit"] = json!(["exp-policy"]);
                h["exp-policy"] = json!("lenient");
                key.sign(&h, &c)
            }),
        ),
        (
            "no aud",
            Box::new(|h, mut c| {
                c.as_object_mut().unwrap().remove("aud");
                key.sign(&h, &c)
            }),
        ),
        (
            "aud list without the token URL",
            Box::new(|h, mut c| {
                c["aud"] = json!(["https://api.ralio.co/oauth/token"]);
                key.sign(&h, &c)
            }),
        ),
        (
            "no sub",
            Box::new(|h, mut c| {
                c.as_object_mut().unwrap().remove("sub");
                key.sign(&h, &c)
            }),
        ),
        (
            "no exp",
            Box::new(|h, mut c| {
                c.as_object_mut().unwrap().remove("exp");
                key.sign(&h, &c)
            }),
        ),
        (
            "exp is a string",
            Box::new(|h, mut c| {
                c["exp"] = json!(c["exp"].to_string());
                key.sign(&h, &c)
            }),
        ),
    ];
    for (name, forge) in cases {
        let (h, c) = key.assertion_parts(&client_id, &token_url);
        let jwt = forge(h, c);
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
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "invalid_client",
            "{name}"
        );
    }
    // An aud list that names the token URL is fine (RFC 7523 §3).
    let (h, mut c) = key.assertion_parts(&client_id, &token_url);
    c["aud"] = json!([token_url, "https://other.example"]);
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
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(sb.counters().token_mints, 1);
}

const SPOOFED_HOST: &str = "api.ralio.co";

#[tokio::test]
async fn a_spoofed_host_header_does_not_change_the_expected_htu() {
    let sb = Sandbox::builder().start().await.unwrap();
    let s = Session::start(&sb).await;
    let send = |proof: String| {
        http()
            .get(s.url("/api/agents"))
            .header("host", SPOOFED_HOST)
            .header("authorization", format!("DPoP {}", s.access))
            .header("dpop", proof)
            .send()
    };
    // A proof for the host the request claims to be for: refused.
    let spoofed = format!("http://{SPOOFED_HOST}/api/agents");
    let res = send(s.key.proof("GET", &spoofed, Some(&s.access), None))
        .await
        .unwrap();
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof"))
    );
    let www = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(www.contains(&s.url("/api/agents")), "{www}");
    // A proof for the sandbox's own URL: the Host header does not matter.
    let res = send(
        s.key
            .proof("GET", &s.url("/api/agents"), Some(&s.access), None),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_spoofed_host_header_does_not_change_the_expected_aud_or_token_htu() {
    let sb = Sandbox::builder().start().await.unwrap();
    let (key, client_id) = register(&sb, TicketSpec::default()).await;
    let spoofed = format!("http://{SPOOFED_HOST}/oauth/token");
    let mint = |assertion: String, proof: Option<String>| {
        let mut req = http()
            .post(sb.token_url())
            .header("host", SPOOFED_HOST)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion.as_str()),
            ]);
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        req.send()
    };
    // The assertion names the spoofed host's token URL: refused.
    let res = mint(key.assertion(&client_id, &spoofed), None)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains(&sb.token_url()),
        "{body}"
    );
    // A correct assertion with a proof whose htu names the spoofed host: refused.
    let res = mint(
        key.assertion(&client_id, &sb.token_url()),
        Some(key.proof("POST", &spoofed, None, None)),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_dpop_proof"
    );
    // Both naming the sandbox's own token URL: accepted, whatever Host says.
    let res = mint(
        key.assertion(&client_id, &sb.token_url()),
        Some(key.proof("POST", &sb.token_url(), None, None)),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(sb.counters().token_mints, 1);
}

#[tokio::test]
async fn public_url_is_what_htu_and_aud_must_name() {
    let public = "https://sandbox.example.test:8443";
    let sb = Sandbox::builder()
        .public_url(Some(&format!("{public}/")))
        .start()
        .await
        .unwrap();
    assert_eq!(sb.base_url(), public);
    assert_eq!(sb.token_url(), format!("{public}/oauth/token"));
    let local = format!("http://{}", sb.local_addr());
    // Register and mint through the listening socket, as a proxy would forward them.
    let key = Key::new();
    let res = http()
        .post(format!("{local}/api/credential-bindings/registrations"))
        .json(&json!({ "ticket": sb.mint_ticket(TicketSpec::default()), "public_key_jwk": key.jwk() }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let client_id = res.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mint = |aud: String| {
        let assertion = key.assertion(&client_id, &aud);
        let local = local.clone();
        async move {
            http()
                .post(format!("{local}/oauth/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    // The socket's own address is not the public URL.
    let res = mint(format!("{local}/oauth/token")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = mint(sb.token_url()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = |htu: String| {
        let proof = key.proof("GET", &htu, Some(&access), None);
        let local = local.clone();
        let access = access.clone();
        async move {
            http()
                .get(format!("{local}/api/agents"))
                .header("authorization", format!("DPoP {access}"))
                .header("dpop", proof)
                .send()
                .await
                .unwrap()
        }
    };
    let res = get(format!("{local}/api/agents")).await;
    assert_eq!(
        (res.status(), www_error(&res).as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof"))
    );
    assert_eq!(
        get(format!("{public}/api/agents")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_public_url_that_cannot_be_an_origin_is_refused() {
    for bad in [
        "sandbox.example.test",
        "ftp://sandbox.example.test",
        "https://sandbox.example.test/prefix",
        "https://sandbox.example.test/?q=1",
        "https://sandbox.example.test/#top",
        "https://user:pw@sandbox.example.test",
    ] {
        let err = Sandbox::builder()
            .public_url(Some(bad))
            .start()
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                SandboxError::InvalidConfig {
                    setting: "public_url",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
    // Listening on every interface: clients cannot address 0.0.0.0, so the URL they use must be
    // configured.
    let err = Sandbox::builder()
        .addr(([0, 0, 0, 0], 0).into())
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("public_url"), "{err}");
}

#[tokio::test]
async fn admin_tickets_cannot_carry_a_scope_a_binding_cannot_hold() {
    let sb = Sandbox::builder().admin_api(true).start().await.unwrap();
    let mint = |body: Value| {
        http()
            .post(format!("{}/sandbox/tickets", sb.base_url()))
            .json(&body)
            .send()
    };
    for (scopes, needle) in [
        (json!(["agents:execute", "agents:config"]), "agents:config"),
        (json!(["agents:admin"]), "agents:admin"),
        (json!([]), "at least one"),
    ] {
        let res = mint(json!({ "scopes": scopes })).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{scopes}");
        let detail = res.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(detail.contains(needle), "{scopes}: {detail}");
    }
    let res = mint(json!({ "scopes": ["transactions:read"] }))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_ticket_with_agents_config_registers_no_binding() {
    // The Rust API cannot refuse at minting (it returns the ticket), so registration does.
    let sb = Sandbox::builder().start().await.unwrap();
    let ticket = sb.mint_ticket(TicketSpec {
        scopes: vec!["agents:execute".into(), "agents:config".into()],
        ..TicketSpec::default()
    });
    let res = http()
        .post(format!(
            "{}/api/credential-bindings/registrations",
            sb.base_url()
        ))
        .json(&json!({ "ticket": ticket, "public_key_jwk": Key::new().jwk() }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["detail"]["error"], "invalid_scope", "{body}");
    assert!(
        body["detail"]["error_description"]
            .as_str()
            .unwrap()
            .contains("agents:config")
    );
    assert_eq!(sb.counters().registrations, 0);
}
