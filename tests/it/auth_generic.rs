//! The auth layer against small non-Ralio servers: configurable audience, refusals the sandbox
//! does not produce, and loops that must not happen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ralio::auth::{AuthError, TokenManager, TokenManagerConfig};
use ralio::keys::PrivateKey;
use ralio::store::{CredentialStore, Identity, RefreshTokenRecord, StoreError};
use secrecy::SecretString;
use serde_json::json;

use crate::auth_sandbox::{auth_error, claims, http};

#[derive(Default)]
struct Mock {
    token_requests: AtomicU32,
    resource_requests: AtomicU32,
    /// "ok", "bearer", "nonce_forever", "refresh_5xx", "rotate_bearer", "rotate_unparseable"
    token_mode: Mutex<&'static str>,
    /// "ok", "nonce_forever", "bearer_challenge"
    resource_mode: Mutex<&'static str>,
    assertions: Mutex<Vec<serde_json::Value>>,
    forms: Mutex<Vec<HashMap<String, String>>>,
}

async fn token(State(m): State<Arc<Mock>>, headers: HeaderMap, body: String) -> Response {
    let n = m.token_requests.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    if let Some(a) = form.get("client_assertion") {
        m.assertions.lock().unwrap().push(claims(a));
    }
    m.forms.lock().unwrap().push(form.clone());
    assert!(
        headers.contains_key("dpop"),
        "a proof at the token endpoint"
    );
    let mode = *m.token_mode.lock().unwrap();
    match mode {
        "nonce_forever" => (
            StatusCode::BAD_REQUEST,
            [("dpop-nonce", format!("nonce-{n}"))],
            axum::Json(json!({"error": "use_dpop_nonce", "error_description": "need a nonce"})),
        )
            .into_response(),
        "bearer" => {
            axum::Json(json!({"access_token": "at", "token_type": "Bearer", "expires_in": 60}))
                .into_response()
        }
        // A refresh rotated, but the rest of the answer is refused: not DPoP-bound, or not a
        // token response at all.
        "rotate_bearer" if form.get("grant_type").map(String::as_str) == Some("refresh_token") => {
            axum::Json(json!({
                "access_token": "at",
                "token_type": "Bearer",
                "expires_in": 60,
                "refresh_token": format!("rt-rotated-{n}"),
            }))
            .into_response()
        }
        "rotate_unparseable"
            if form.get("grant_type").map(String::as_str) == Some("refresh_token") =>
        {
            axum::Json(json!({
                "token_type": "DPoP",
                "expires_in": "soon",
                "refresh_token": format!("rt-rotated-{n}"),
            }))
            .into_response()
        }
        _ => axum::Json(json!({
            "access_token": format!("at-{n}"),
            "token_type": "DPoP",
            "expires_in": 300,
            "refresh_token": format!("rt-{n}"),
        }))
        .into_response(),
    }
}

async fn resource(State(m): State<Arc<Mock>>) -> Response {
    let n = m.resource_requests.fetch_add(1, Ordering::SeqCst);
    let mode = *m.resource_mode.lock().unwrap();
    match mode {
        "nonce_forever" => (
            StatusCode::UNAUTHORIZED,
            [
                (
                    "www-authenticate",
                    "DPoP error=\"use_dpop_nonce\", error_description=\"nonce\"".to_owned(),
                ),
                ("dpop-nonce", format!("r-{n}")),
            ],
        )
            .into_response(),
        "bearer_challenge" => (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer realm=\"x\"".to_owned())],
        )
            .into_response(),
        _ => "hello".into_response(),
    }
}

async fn start(mock: Arc<Mock>) -> String {
    let app = Router::new()
        .route("/realms/demo/token", post(token))
        .route("/resource", get(resource))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn manager(base: &str, store: Option<Arc<dyn CredentialStore>>) -> TokenManager {
    let config = TokenManagerConfig::new(&format!("{base}/realms/demo/token"), "demo-client")
        .unwrap()
        .audience("https://issuer.example/realms/demo")
        .scopes(["read", "write"]);
    let mut b = TokenManager::builder(config, Arc::new(PrivateKey::generate().unwrap()));
    if let Some(s) = store {
        b = b.refresh_token_store(s);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn generic_server_gets_the_configured_audience_scope_and_client_id() {
    let mock = Arc::new(Mock::default());
    let base = start(mock.clone()).await;
    let tm = manager(&base, None);
    let (client, _) = http(&tm);
    let resp = client.get(format!("{base}/resource")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "hello");
    let a = mock.assertions.lock().unwrap()[0].clone();
    assert_eq!(a["aud"], "https://issuer.example/realms/demo");
    assert_eq!(a["iss"], "demo-client");
    assert_eq!(a["sub"], "demo-client");
    let form = mock.forms.lock().unwrap()[0].clone();
    assert_eq!(form["scope"], "read write");
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(tm.token_info().unwrap().scopes, vec!["read", "write"]);
}

#[tokio::test]
async fn configured_urls_with_a_query_are_refused() {
    let err = TokenManagerConfig::new("https://auth.example/token?x=1", "c").unwrap_err();
    assert!(matches!(err, AuthError::InvalidUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("x=1"));
}

#[tokio::test]
async fn a_bearer_token_is_refused_as_not_dpop_bound() {
    let mock = Arc::new(Mock::default());
    *mock.token_mode.lock().unwrap() = "bearer";
    let base = start(mock.clone()).await;
    let err = manager(&base, None).access_token().await.unwrap_err();
    assert!(matches!(err, AuthError::NotDpopBound { .. }), "{err:?}");
    assert!(err.to_string().contains("Bearer"), "{err}");
}

#[tokio::test]
async fn token_endpoint_nonce_challenge_twice_in_a_row_is_an_error_not_a_loop() {
    let mock = Arc::new(Mock::default());
    *mock.token_mode.lock().unwrap() = "nonce_forever";
    let base = start(mock.clone()).await;
    let err = manager(&base, None).access_token().await.unwrap_err();
    assert!(
        matches!(err, AuthError::NonceChallengeRepeated { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("twice in a row"), "{err}");
    assert_eq!(mock.token_requests.load(Ordering::SeqCst), 2);
    // The retry carried the nonce and a fresh assertion.
    let a = mock.assertions.lock().unwrap().clone();
    assert_ne!(a[0]["jti"], a[1]["jti"]);
}

#[tokio::test]
async fn resource_nonce_challenge_twice_in_a_row_is_an_error_not_a_loop() {
    let mock = Arc::new(Mock::default());
    *mock.resource_mode.lock().unwrap() = "nonce_forever";
    let base = start(mock.clone()).await;
    let tm = manager(&base, None);
    let (client, rec) = http(&tm);
    let err = client
        .get(format!("{base}/resource"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        auth_error(&err),
        AuthError::NonceChallengeRepeated { .. }
    ));
    assert_eq!(mock.resource_requests.load(Ordering::SeqCst), 2);
    let proofs = rec.proofs();
    assert_eq!(
        proofs[1]["nonce"], "r-0",
        "the retry used the challenge's nonce"
    );
    assert_eq!(
        mock.token_requests.load(Ordering::SeqCst),
        1,
        "no token refresh"
    );
}

#[tokio::test]
async fn a_non_dpop_401_gets_one_renewal_and_one_retry_then_is_returned() {
    let mock = Arc::new(Mock::default());
    *mock.resource_mode.lock().unwrap() = "bearer_challenge";
    let base = start(mock.clone()).await;
    let tm = manager(&base, None);
    let (client, _) = http(&tm);
    let resp = client.get(format!("{base}/resource")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(mock.resource_requests.load(Ordering::SeqCst), 2);
    // The mint, then one refresh: never a loop.
    assert_eq!(mock.token_requests.load(Ordering::SeqCst), 2);
}

/// A store whose every save fails (a full disk).
#[derive(Debug)]
struct BrokenStore;

#[async_trait]
impl CredentialStore for BrokenStore {
    fn describe(&self) -> String {
        "broken store".to_owned()
    }
    async fn load_identity(&self) -> Result<Option<Identity>, StoreError> {
        Ok(None)
    }
    async fn save_identity(&self, _: &Identity) -> Result<String, StoreError> {
        Err(StoreError::backend(
            "broken store",
            "save the identity",
            "free some space",
            None,
        ))
    }
    async fn load_refresh_token(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        Ok(None)
    }
    async fn clear_refresh_token(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn save_refresh_token(
        &self,
        _: Option<&SecretString>,
        _: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        Err(StoreError::backend(
            "broken store",
            "save the refresh token",
            "free some space",
            Some(Box::new(std::io::Error::other("disk full"))),
        ))
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_that_cannot_be_saved_is_an_error_before_use() {
    let mock = Arc::new(Mock::default());
    let base = start(mock.clone()).await;
    let tm = manager(&base, Some(Arc::new(BrokenStore)));
    let err = tm.access_token().await.unwrap_err();
    // The store's own error, the one `StoreError` every store uses, with its advice.
    let AuthError::Store(store_error) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(store_error, StoreError::Backend { .. }),
        "{store_error:?}"
    );
    assert!(!store_error.is_conflict());
    assert!(
        store_error.to_string().contains("free some space"),
        "{store_error}"
    );
    assert!(
        tm.token_info().is_none(),
        "the access token was not put to use"
    );
    let chain = format!("{err} / {}", std::error::Error::source(&err).unwrap());
    assert!(!chain.contains("rt-0"), "{chain}");
}

#[tokio::test]
async fn a_rotated_refresh_token_is_saved_before_the_rest_of_the_answer_is_refused() {
    for mode in ["rotate_bearer", "rotate_unparseable"] {
        let mock = Arc::new(Mock::default());
        *mock.token_mode.lock().unwrap() = mode;
        let base = start(mock.clone()).await;
        let store = Arc::new(ralio::store::MemoryStore::new());
        store
            .save_refresh_token(
                None,
                &RefreshTokenRecord::new(
                    SecretString::from("rt-old"),
                    Some(format!("{base}/realms/demo/token")),
                ),
            )
            .await
            .unwrap();
        let err = manager(&base, Some(store.clone()))
            .access_token()
            .await
            .unwrap_err();
        match mode {
            "rotate_bearer" => {
                assert!(matches!(err, AuthError::NotDpopBound { .. }), "{err:?}");
            }
            _ => assert!(matches!(err, AuthError::TokenResponse { .. }), "{err:?}"),
        }
        assert_eq!(
            mock.forms.lock().unwrap()[0]["grant_type"],
            "refresh_token",
            "{mode}"
        );
        let stored = store.load_refresh_token().await.unwrap().unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&stored.refresh_token),
            "rt-rotated-0",
            "{mode}: the token the server rotated is the one kept"
        );
    }
}
