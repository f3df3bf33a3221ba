//! The auth layer against the sandbox: minting, caching, refresh rotation, nonces, clock skew,
//! challenges and refusals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ralio::auth::{AuthError, DpopAuth, OffsetClock, TokenManager, TokenManagerConfig};
use ralio::keys::PrivateKey;
use ralio::store::{CredentialStore, MemoryStore, RefreshTokenRecord, StoreError};
use ralio_sandbox::{NonceMode, Sandbox, TicketSpec};

use crate::support::{held, holding};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

pub(crate) struct Env {
    pub sandbox: Sandbox,
    pub key: PrivateKey,
    pub client_id: String,
    pub store: Arc<MemoryStore>,
}

pub(crate) async fn register(sandbox: &Sandbox, key: &PrivateKey) -> String {
    let ticket = sandbox.mint_ticket(TicketSpec::default());
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/api/credential-bindings/registrations",
            sandbox.base_url()
        ))
        .json(&json!({"ticket": ticket, "public_key_jwk": key.public_jwk()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["client_id"].as_str().unwrap().to_owned()
}

pub(crate) async fn env_with(sandbox: Sandbox) -> Env {
    let key = PrivateKey::generate().unwrap();
    let client_id = register(&sandbox, &key).await;
    Env {
        sandbox,
        key,
        client_id,
        store: Arc::new(MemoryStore::new()),
    }
}

pub(crate) async fn env() -> Env {
    env_with(Sandbox::builder().start().await.unwrap()).await
}

impl Env {
    pub fn manager(&self) -> TokenManager {
        self.manager_with(|b| b)
    }

    pub fn manager_with(
        &self,
        f: impl FnOnce(ralio::auth::TokenManagerBuilder) -> ralio::auth::TokenManagerBuilder,
    ) -> TokenManager {
        let config =
            TokenManagerConfig::ralio(self.sandbox.base_url(), self.client_id.clone()).unwrap();
        f(TokenManager::builder(config, Arc::new(self.key.clone()))
            .refresh_token_store(self.store.clone()))
        .build()
        .unwrap()
    }

    /// The status of an authenticated GET of `path` through `client`.
    pub async fn get_status(&self, client: &ClientWithMiddleware, path: &str) -> u16 {
        client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Sets the sandbox clock this many seconds ahead of the real one.
    pub fn set_clock_offset(&self, secs: i64) {
        let mut faults = self.sandbox.faults();
        faults.clock_offset_secs = secs;
        self.sandbox.set_faults(faults);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    pub fn mints(&self) -> u64 {
        self.sandbox.counters().token_mints
    }

    /// Plain 401s the sandbox's varied mode answered (each costs one renewal and one retry).
    pub fn plain_401s(&self) -> u64 {
        self.sandbox.counters().plain_401s
    }

    pub fn requests(&self, route: &str) -> u64 {
        self.sandbox
            .counters()
            .requests
            .get(route)
            .copied()
            .unwrap_or(0)
    }
}

/// Records the `DPoP` and `Authorization` headers of every attempt (sits inside `DpopAuth`).
#[derive(Clone, Default)]
pub(crate) struct Recorder(pub Arc<Mutex<Vec<(String, String)>>>);

#[async_trait::async_trait]
impl Middleware for Recorder {
    async fn handle(
        &self,
        req: reqwest::Request,
        ext: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let h = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        self.0.lock().unwrap().push((h("dpop"), h("authorization")));
        next.run(req, ext).await
    }
}

impl Recorder {
    pub fn proofs(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| claims(p))
            .collect()
    }
}

pub(crate) fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub(crate) fn http(tm: &TokenManager) -> (ClientWithMiddleware, Recorder) {
    let rec = Recorder::default();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(DpopAuth::new(tm.clone()))
        .with(rec.clone())
        .build();
    (client, rec)
}

pub(crate) fn auth_error(e: &reqwest_middleware::Error) -> &AuthError {
    match e {
        reqwest_middleware::Error::Middleware(m) => m.downcast_ref::<AuthError>().unwrap(),
        other => panic!("expected an AuthError, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_client_with_1000_concurrent_tasks_mints_exactly_once() {
    // Uniform answers: a plain 401 of the varied mode may land twice on one of 1000 concurrent
    // calls (once per token), which the single-renewal rule then rightly returns.
    let env = env_with(
        Sandbox::builder()
            .answers(ralio_sandbox::Answers::Uniform)
            .start()
            .await
            .unwrap(),
    )
    .await;
    let tm = env.manager();
    let (client, _) = http(&tm);
    let url = env.url("/api/agents");
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    assert_eq!(env.mints(), 1);
    assert_eq!(env.requests("POST /oauth/token"), 1);
    assert_eq!(env.requests("GET /api/agents"), 1000);
}

#[tokio::test]
async fn cached_token_is_reused_and_token_info_hides_the_token() {
    let env = env().await;
    let tm = env.manager();
    assert!(tm.token_info().is_none());
    let a = tm.access_token().await.unwrap();
    let b = tm.access_token().await.unwrap();
    assert_eq!(a.expose_secret(), b.expose_secret());
    assert_eq!(env.mints(), 1);
    let info = tm.token_info().unwrap();
    assert_eq!(info.scopes, vec!["agents:execute", "transactions:read"]);
    assert_eq!(&info.key_thumbprint, env.key.thumbprint());
    assert!(info.has_refresh_token);
    assert!(info.expires_in <= Duration::from_secs(1800));
    assert!(info.expires_in > Duration::from_secs(1700));
    let shown = format!("{info:?} {a:?} {tm:?}");
    assert!(!shown.contains(a.expose_secret()), "{shown}");
    assert!(shown.contains("redacted"));
}

#[tokio::test]
async fn narrower_scope_is_requested_and_reported() {
    let env = env().await;
    let config = TokenManagerConfig::ralio(env.sandbox.base_url(), env.client_id.clone())
        .unwrap()
        .scopes(["transactions:read"]);
    let tm = TokenManager::builder(config, Arc::new(env.key.clone()))
        .build()
        .unwrap();
    tm.access_token().await.unwrap();
    assert_eq!(tm.token_info().unwrap().scopes, vec!["transactions:read"]);
    let (client, _) = http(&tm);
    let chat = client
        .post(env.url("/api/chat"))
        .json(&json!({"agent_id": env.sandbox.default_agent_id(), "message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 403);
}

#[tokio::test]
async fn expiry_refreshes_with_rotation_and_persists_before_use() {
    let env = env_with(
        Sandbox::builder()
            .access_token_lifetime(Duration::from_secs(2))
            .start()
            .await
            .unwrap(),
    )
    .await;
    let tm = env.manager_with(|b| b);
    let (client, _) = http(&tm);
    assert_eq!(env.get_status(&client, "/api/agents").await, 200);
    let rt1 = held(&env.store)
        .await
        .map(|r| r.refresh_token)
        .unwrap()
        .expose_secret()
        .to_owned();
    let t1 = tm.access_token().await.unwrap();
    // Leeway is capped at half the lifetime: after 1 s the token is due for renewal.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(env.get_status(&client, "/api/agents").await, 200);
    let rt2 = held(&env.store)
        .await
        .map(|r| r.refresh_token)
        .unwrap()
        .expose_secret()
        .to_owned();
    let t2 = tm.access_token().await.unwrap();
    assert_ne!(rt1, rt2, "the rotated refresh token is saved");
    assert_ne!(t1.expose_secret(), t2.expose_secret());
    let c = env.sandbox.counters();
    assert_eq!((c.token_mints, c.refreshes), (1, 1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    tm.access_token().await.unwrap();
    assert_eq!(env.sandbox.counters().refreshes, 2);
    assert_ne!(
        held(&env.store)
            .await
            .map(|r| r.refresh_token)
            .unwrap()
            .expose_secret(),
        rt2
    );
}

#[tokio::test]
async fn replayed_refresh_token_revokes_the_family_and_both_clients_recover_by_minting() {
    let env = env_with(
        Sandbox::builder()
            .access_token_lifetime(Duration::from_secs(2))
            .start()
            .await
            .unwrap(),
    )
    .await;
    let a = env.manager();
    let (client_a, _) = http(&a);
    assert_eq!(env.get_status(&client_a, "/api/agents").await, 200);
    let stolen = held(&env.store).await.map(|r| r.refresh_token).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.access_token().await.unwrap(); // refresh: `stolen` is now rotated
    assert_eq!(env.sandbox.counters().refreshes, 1);

    // A second instance presents the rotated token: replay. The server revokes the family.
    let b_store = holding(stolen, None).await;
    let b = env.manager_with(|builder| builder.refresh_token_store(b_store.clone()));
    let (client_b, _) = http(&b);
    assert_eq!(env.get_status(&client_b, "/api/agents").await, 200);
    assert_eq!(env.mints(), 2, "B minted after invalid_grant");
    assert!(
        held(&b_store).await.map(|r| r.refresh_token).is_some(),
        "B holds its new family's token"
    );

    // A's access token died with the family: invalid_token → refresh (invalid_grant) → mint.
    let resp = client_a.get(env.url("/api/agents")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(env.mints(), 3);
}

#[tokio::test]
async fn unknown_refresh_token_in_the_store_falls_back_to_minting() {
    let env = env().await;
    env.store
        .save_refresh_token(
            None,
            &RefreshTokenRecord::new(SecretString::from("rrt_not_a_real_token"), None),
        )
        .await
        .unwrap();
    let tm = env.manager();
    tm.access_token().await.unwrap();
    assert_eq!(env.mints(), 1);
    let saved = held(&env.store).await.map(|r| r.refresh_token).unwrap();
    assert_ne!(saved.expose_secret(), "rrt_not_a_real_token");
}

#[tokio::test]
async fn network_failure_during_refresh_keeps_the_refresh_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nothing listens: connection refused
    let key = PrivateKey::generate().unwrap();
    let store = holding(SecretString::from("rrt_keep_me"), None).await;
    let config = TokenManagerConfig::ralio(&format!("http://127.0.0.1:{port}"), "cb_x").unwrap();
    let tm = TokenManager::builder(config, Arc::new(key))
        .refresh_token_store(store.clone())
        .build()
        .unwrap();
    let err = tm.access_token().await.unwrap_err();
    assert!(matches!(err, AuthError::TokenTransport { .. }), "{err:?}");
    assert!(
        err.to_string().contains("refresh token, if any, is kept"),
        "{err}"
    );
    assert_eq!(
        held(&store)
            .await
            .map(|r| r.refresh_token)
            .unwrap()
            .expose_secret(),
        "rrt_keep_me"
    );
}

async fn works_in_nonce_mode(mode: NonceMode) -> Env {
    let env = env_with(Sandbox::builder().nonce_mode(mode).start().await.unwrap()).await;
    let tm = env.manager();
    let (client, rec) = http(&tm);
    for _ in 0..3 {
        assert_eq!(env.get_status(&client, "/api/agents").await, 200);
    }
    let proofs = rec.proofs();
    match mode {
        NonceMode::Off => assert!(proofs.iter().all(|p| p.get("nonce").is_none())),
        _ => assert!(proofs.iter().all(|p| p["nonce"].is_string()), "{proofs:?}"),
    }
    env
}

#[tokio::test]
async fn nonce_mode_off() {
    let env = works_in_nonce_mode(NonceMode::Off).await;
    // In the varied answer mode each plain 401 adds one renewal and one retry.
    assert_eq!(env.requests("POST /oauth/token"), 1 + env.plain_401s());
    assert_eq!(env.requests("GET /api/agents"), 3 + env.plain_401s());
}

#[tokio::test]
async fn nonce_mode_offer() {
    let env = works_in_nonce_mode(NonceMode::Offer).await;
    // In the varied answer mode each plain 401 adds one renewal and one retry.
    assert_eq!(env.requests("POST /oauth/token"), 1 + env.plain_401s());
    assert_eq!(env.requests("GET /api/agents"), 3 + env.plain_401s());
}

#[tokio::test]
async fn nonce_mode_require_retries_once_at_the_token_endpoint_and_at_resources() {
    let env = works_in_nonce_mode(NonceMode::Require).await;
    // The first token request has no nonce yet: one challenge, one retry with a fresh assertion.
    assert_eq!(env.requests("POST /oauth/token"), 2 + env.plain_401s());
    assert_eq!(env.mints(), 1);
    // The token endpoint's nonce serves the resources of the same origin.
    assert_eq!(env.requests("GET /api/agents"), 3 + env.plain_401s());

    // A rotated nonce: the resource challenges once, the retry carries the new nonce and the
    // same token (no refresh).
    let tm = env.manager();
    let (client, rec) = http(&tm);
    client.get(env.url("/api/agents")).send().await.unwrap();
    // The sandbox accepts the previous nonce too: rotate twice to make the client's stale.
    env.sandbox.rotate_nonce();
    env.sandbox.rotate_nonce();
    let before = env.requests("GET /api/agents");
    let counters_before = env.sandbox.counters();
    let resp = client.get(env.url("/api/agents")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(env.requests("GET /api/agents") - before, 2);
    let seen = rec.0.lock().unwrap().clone();
    let (p1, a1) = &seen[seen.len() - 2];
    let (p2, a2) = &seen[seen.len() - 1];
    assert_eq!(a1, a2, "same access token on the nonce retry");
    assert_ne!(claims(p1)["nonce"], claims(p2)["nonce"]);
    assert_ne!(claims(p1)["jti"], claims(p2)["jti"]);
    let after = env.sandbox.counters();
    assert_eq!(
        after.refreshes, counters_before.refreshes,
        "no token refresh"
    );
    assert_eq!(after.token_mints, counters_before.token_mints);
}

#[tokio::test]
async fn a_streaming_body_cannot_be_retried_after_a_challenge() {
    let env = env_with(
        Sandbox::builder()
            .nonce_mode(NonceMode::Require)
            .start()
            .await
            .unwrap(),
    )
    .await;
    let tm = env.manager();
    let (client, _) = http(&tm);
    client.get(env.url("/api/agents")).send().await.unwrap();
    // The sandbox accepts the previous nonce too: rotate twice to make the client's stale.
    env.sandbox.rotate_nonce();
    env.sandbox.rotate_nonce();
    let body = format!(
        r#"{{"agent_id":"{}","message":"hi"}}"#,
        env.sandbox.default_agent_id()
    );
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let err = client
        .post(env.url("/api/chat"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap_err();
    let auth = auth_error(&err);
    assert!(
        matches!(
            auth,
            AuthError::ChallengeNotRetryable {
                challenge: "use_dpop_nonce",
                ..
            }
        ),
        "{auth:?}"
    );
    assert!(auth.to_string().contains("cannot be re-sent"), "{auth}");
    assert_eq!(env.sandbox.counters().chat_posts, 1);
}

async fn works_with_server_offset(offset: i64) {
    let env = env_with(
        Sandbox::builder()
            .clock_offset(offset)
            .start()
            .await
            .unwrap(),
    )
    .await;
    let tm = env.manager();
    let (client, _) = http(&tm);
    assert_eq!(env.get_status(&client, "/api/agents").await, 200);
    assert!(
        (tm.clock_skew_secs() - offset).abs() <= 2,
        "{}",
        tm.clock_skew_secs()
    );
    assert_eq!(env.mints(), 1);
    // The first assertion (local time) was refused, the corrected one accepted.
    assert_eq!(env.requests("POST /oauth/token"), 2);
    assert_eq!(env.get_status(&client, "/api/agents").await, 200);
    assert_eq!(env.requests("GET /api/agents"), 2);
}

#[tokio::test]
async fn server_clock_ten_minutes_ahead() {
    works_with_server_offset(600).await;
}

#[tokio::test]
async fn server_clock_ten_minutes_behind() {
    works_with_server_offset(-600).await;
}

#[tokio::test]
async fn host_clock_ten_minutes_off() {
    for offset in [600, -600] {
        let env = env().await;
        let tm = env.manager_with(|b| b.clock(Arc::new(OffsetClock::new(offset))));
        let (client, _) = http(&tm);
        assert_eq!(env.get_status(&client, "/api/agents").await, 200);
        assert!((tm.clock_skew_secs() + offset).abs() <= 2);
        assert_eq!(env.mints(), 1);
    }
}

#[tokio::test]
async fn resource_invalid_token_refreshes_once_and_retries_once_with_a_new_jti() {
    let env = env().await;
    let tm = env.manager();
    let (client, rec) = http(&tm);
    assert_eq!(env.get_status(&client, "/api/agents").await, 200);
    // Move the server's clock past the token's expiry; the client still believes it is valid.
    env.set_clock_offset(3600);
    rec.0.lock().unwrap().clear();
    let resp = client.get(env.url("/api/agents")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let c = env.sandbox.counters();
    assert_eq!((c.token_mints, c.refreshes), (1, 1));
    assert_eq!(env.requests("GET /api/agents"), 3);
    let seen = rec.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0].1, seen[1].1, "the retry carries the new token");
    assert_ne!(claims(&seen[0].0)["jti"], claims(&seen[1].0)["jti"]);
}

#[tokio::test]
async fn a_revoked_binding_is_one_clear_error_without_a_retry_storm() {
    let env = env().await;
    let tm = env.manager();
    let (client, _) = http(&tm);
    assert_eq!(env.get_status(&client, "/api/agents").await, 200);
    env.sandbox.revoke_binding(&env.client_id).unwrap();
    let resp = client.get(env.url("/api/agents")).send();
    let err = resp.await.unwrap_err();
    let auth = auth_error(&err);
    assert_eq!(auth.oauth_error(), Some("invalid_client"), "{auth:?}");
    assert!(auth.to_string().contains("register again"), "{auth}");
    // The first mint, then for the 401: the refused refresh and its one fallback mint; no loop.
    assert_eq!(env.requests("GET /api/agents"), 2);
    assert_eq!(env.requests("POST /oauth/token"), 3);
}

#[tokio::test]
async fn a_wrong_key_is_one_clear_error_without_a_retry_storm() {
    let env = env().await;
    let other = PrivateKey::generate().unwrap();
    let config = TokenManagerConfig::ralio(env.sandbox.base_url(), env.client_id.clone()).unwrap();
    let tm = TokenManager::builder(config, Arc::new(other))
        .build()
        .unwrap();
    let (client, _) = http(&tm);
    for _ in 0..3 {
        let err = client.get(env.url("/api/agents")).send().await.unwrap_err();
        let auth = auth_error(&err);
        assert!(
            matches!(auth, AuthError::TokenRefused { status, .. } if *status == reqwest::StatusCode::UNAUTHORIZED),
            "{auth:?}"
        );
        assert!(auth.to_string().contains("invalid_client"), "{auth}");
        assert!(
            auth.to_string().contains("this key is the registered one"),
            "{auth}"
        );
    }
    assert_eq!(
        env.requests("POST /oauth/token"),
        3,
        "one token request per call"
    );
    assert_eq!(env.requests("GET /api/agents"), 0);
}

#[tokio::test]
async fn a_tampered_key_file_is_refused_before_any_request() {
    let env = env().await;
    let pem = env.key.to_pkcs8_pem();
    // Swap in another key's public point: the file no longer matches its private scalar.
    let other = PrivateKey::generate().unwrap();
    let der_of = |pem: &str| {
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    };
    let mut der = der_of(pem.expose_secret());
    let other_der = der_of(other.to_pkcs8_pem().expose_secret());
    let n = der.len();
    der[n - 64..].copy_from_slice(&other_der[n - 64..]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let tampered = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let err = PrivateKey::from_pem(&tampered).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    assert_eq!(env.requests("POST /oauth/token"), 0);
}

#[tokio::test]
async fn a_proof_refused_for_its_time_is_retried_once_with_corrected_time() {
    let env = env().await;
    let tm = env.manager();
    let (client, rec) = http(&tm);
    assert_eq!(env.get_status(&client, "/api/agents").await, 200);
    // The server's clock jumps 400 s ahead: the token is still valid, but a proof with the
    // old time is "too old" (over 300 s).
    env.set_clock_offset(400);
    rec.0.lock().unwrap().clear();
    assert_eq!(env.get_status(&client, "/api/agents").await, 200);
    let proofs = rec.proofs();
    assert_eq!(proofs.len(), 2);
    let shift = proofs[1]["iat"].as_i64().unwrap() - proofs[0]["iat"].as_i64().unwrap();
    assert!((398..=402).contains(&shift), "iat corrected by {shift} s");
    // Any 401 renews once (as the official clients do): one refresh, no mint.
    let c = env.sandbox.counters();
    assert_eq!((c.token_mints, c.refreshes), (1, 1));
}

/// A refresh-token store whose reads can be held at a gate (to catch a renewal in flight) or
/// made to fail; it counts the reads.
#[derive(Debug, Default)]
struct GatedStore {
    inner: MemoryStore,
    hold: std::sync::atomic::AtomicBool,
    fail: std::sync::atomic::AtomicBool,
    reads: std::sync::atomic::AtomicU32,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl CredentialStore for GatedStore {
    fn describe(&self) -> String {
        "gated store".to_owned()
    }
    async fn load_identity(&self) -> Result<Option<ralio::store::Identity>, StoreError> {
        Ok(None)
    }
    async fn save_identity(&self, identity: &ralio::store::Identity) -> Result<String, StoreError> {
        self.inner.save_identity(identity).await
    }
    async fn load_refresh_token(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.reads.fetch_add(1, SeqCst);
        if self.hold.load(SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        if self.fail.load(SeqCst) {
            return Err(StoreError::backend(
                "gated store",
                "read the refresh token",
                "it is unavailable",
                None,
            ));
        }
        self.inner.load_refresh_token().await
    }
    async fn save_refresh_token(
        &self,
        previous: Option<&SecretString>,
        record: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        self.inner.save_refresh_token(previous, record).await
    }
    async fn clear_refresh_token(&self) -> Result<(), StoreError> {
        self.inner.clear_refresh_token().await
    }
}

/// Inside the leeway before expiry, one task renews while the others keep the current token,
/// which is still valid: nobody waits for the token endpoint. A failed early renewal leaves the
/// current token in use and is not retried on every call.
#[tokio::test]
async fn inside_the_leeway_one_task_renews_and_the_others_keep_the_valid_token() {
    use std::sync::atomic::Ordering::SeqCst;
    // 10 s tokens; the leeway is capped at half: renewal is due after 5 s, and the token is
    // sent until 7.5 s.
    let env = env_with(
        Sandbox::builder()
            .access_token_lifetime(Duration::from_secs(10))
            .start()
            .await
            .unwrap(),
    )
    .await;
    let manager = |store: Arc<GatedStore>| {
        let config = TokenManagerConfig::ralio(env.sandbox.base_url(), env.client_id.clone())
            .unwrap()
            .leeway(Duration::from_secs(60));
        TokenManager::builder(config, Arc::new(env.key.clone()))
            .refresh_token_store(store)
            .build()
            .unwrap()
    };
    let renewing_store = Arc::new(GatedStore::default());
    let renewing = manager(Arc::clone(&renewing_store));
    let failing_store = Arc::new(GatedStore::default());
    let failing = manager(Arc::clone(&failing_store));
    let first = renewing.access_token().await.unwrap();
    let first_of_failing = failing.access_token().await.unwrap();
    assert_eq!(env.mints(), 2);
    tokio::time::sleep(Duration::from_millis(5200)).await;

    // One task starts the renewal and is held inside it...
    renewing_store.hold.store(true, SeqCst);
    let entered = renewing_store.entered.notified();
    let renewal = tokio::spawn({
        let renewing = renewing.clone();
        async move { renewing.access_token().await }
    });
    entered.await;
    // ...while another gets the current token at once (the guard turns a wait into a failure).
    let meanwhile = tokio::time::timeout(Duration::from_secs(2), renewing.access_token())
        .await
        .expect("a task waited for the renewal although the current token is still valid")
        .unwrap();
    assert_eq!(meanwhile.expose_secret(), first.expose_secret());
    renewing_store.hold.store(false, SeqCst);
    renewing_store.release.notify_one();
    let renewed = renewal.await.unwrap().unwrap();
    assert_ne!(renewed.expose_secret(), first.expose_secret());
    assert_eq!(
        renewing.access_token().await.unwrap().expose_secret(),
        renewed.expose_secret()
    );
    assert_eq!(env.sandbox.counters().refreshes, 1);

    // The early renewal fails: the current token is still handed out, and the failure is not
    // retried on each call.
    failing_store.fail.store(true, SeqCst);
    let reads_before = failing_store.reads.load(SeqCst);
    for _ in 0..3 {
        let token = failing.access_token().await.unwrap();
        assert_eq!(token.expose_secret(), first_of_failing.expose_secret());
    }
    assert_eq!(failing_store.reads.load(SeqCst), reads_before + 1);
    assert_eq!(env.mints(), 2);
}
