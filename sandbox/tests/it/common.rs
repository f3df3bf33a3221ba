//! Test helpers: keys, JWTs, proofs and a logged-in session, all built by hand.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use ralio_sandbox::{Sandbox, TicketSpec};
use rand::RngCore;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b64(&b)
}

pub fn ath(token: &str) -> String {
    b64(&Sha256::digest(token.as_bytes()))
}

pub struct Key {
    sk: SigningKey,
}

impl Key {
    pub fn new() -> Self {
        loop {
            let mut b = [0u8; 32];
            rand::rng().fill_bytes(&mut b);
            if let Ok(sk) = SigningKey::from_slice(&b) {
                return Self { sk };
            }
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.sk.verifying_key().to_encoded_point(false);
        json!({
            "crv": "P-256",
            "kty": "EC",
            "x": b64(point.x().unwrap()),
            "y": b64(point.y().unwrap()),
        })
    }

    pub fn jkt(&self) -> String {
        let j = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            j["x"].as_str().unwrap(),
            j["y"].as_str().unwrap()
        );
        b64(&Sha256::digest(canonical.as_bytes()))
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig: Signature = self.sk.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }

    /// Proof header and claims, for tests to tamper with before signing.
    pub fn proof_parts(&self, htm: &str, htu: &str, access_token: Option<&str>) -> (Value, Value) {
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk() });
        let mut claims = json!({ "htm": htm, "htu": htu, "iat": now(), "jti": random_id() });
        if let Some(t) = access_token {
            claims["ath"] = Value::String(ath(t));
        }
        (header, claims)
    }

    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        let (h, mut c) = self.proof_parts(htm, htu, access_token);
        if let Some(n) = nonce {
            c["nonce"] = Value::String(n.to_owned());
        }
        self.sign(&h, &c)
    }

    pub fn assertion_parts(&self, client_id: &str, aud: &str) -> (Value, Value) {
        let iat = now();
        (
            json!({ "alg": "ES256", "kid": self.jkt(), "typ": "JWT" }),
            json!({ "iss": client_id, "sub": client_id, "aud": aud, "iat": iat, "exp": iat + 60, "jti": random_id() }),
        )
    }

    pub fn assertion(&self, client_id: &str, aud: &str) -> String {
        let (h, c) = self.assertion_parts(client_id, aud);
        self.sign(&h, &c)
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Registers a fresh key; panics unless the server answers 201.
pub async fn register(sb: &Sandbox, spec: TicketSpec) -> (Key, String) {
    let key = Key::new();
    let ticket = sb.mint_ticket(spec);
    let res = http()
        .post(format!(
            "{}/api/credential-bindings/registrations",
            sb.base_url()
        ))
        .json(&json!({ "ticket": ticket, "public_key_jwk": key.jwk() }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["fingerprint"], key.jkt());
    (key, body["client_id"].as_str().unwrap().to_owned())
}

/// POSTs a form to the token endpoint, with an optional DPoP proof.
pub async fn token_request(
    sb: &Sandbox,
    form: &[(&str, &str)],
    proof: Option<String>,
) -> reqwest::Response {
    let mut req = http().post(sb.token_url()).form(form);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    req.send().await.unwrap()
}

pub async fn mint_with(
    sb: &Sandbox,
    key: &Key,
    client_id: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let assertion = key.assertion(client_id, &sb.token_url());
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    token_request(sb, &form, None).await
}

/// A registered binding with a live token.
pub struct Session {
    pub key: Key,
    pub client_id: String,
    pub access: String,
    pub refresh: String,
    pub base: String,
}

impl Session {
    pub async fn start(sb: &Sandbox) -> Self {
        Self::with_ticket(sb, TicketSpec::default()).await
    }

    pub async fn with_ticket(sb: &Sandbox, spec: TicketSpec) -> Self {
        let (key, client_id) = register(sb, spec).await;
        let res = mint_with(sb, &key, &client_id, None).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        Self {
            key,
            client_id,
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
            base: sb.base_url().to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends with explicit Authorization and DPoP header values (either may be absent).
    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        authz: Option<String>,
        proof: Option<String>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = http().request(method, self.url(path_and_query));
        if let Some(a) = authz {
            req = req.header("Authorization", a);
        }
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// A correct request: fresh proof for this method and path (htu without the query).
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let path = path_and_query.split('?').next().unwrap();
        let proof = self
            .key
            .proof(method.as_str(), &self.url(path), Some(&self.access), None);
        self.raw(
            method,
            path_and_query,
            Some(format!("DPoP {}", self.access)),
            Some(proof),
            body,
        )
        .await
    }

    pub async fn get_json(&self, path_and_query: &str) -> Value {
        let res = self.call(Method::GET, path_and_query, None).await;
        assert_eq!(res.status(), StatusCode::OK, "GET {path_and_query}");
        res.json().await.unwrap()
    }

    pub async fn chat(&self, agent_id: &str, message: &str) -> Value {
        let res = self
            .call(
                Method::POST,
                "/api/chat",
                Some(json!({ "agent_id": agent_id, "message": message })),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "chat {message:?}");
        res.json().await.unwrap()
    }
}

/// The `error="…"` code of a `WWW-Authenticate: DPoP …` header.
pub fn www_error(res: &reqwest::Response) -> Option<String> {
    let h = res.headers().get("www-authenticate")?.to_str().ok()?;
    let start = h.find("error=\"")? + 7;
    let end = h[start..].find('"')? + start;
    Some(h[start..end].to_owned())
}
