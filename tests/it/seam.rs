//! The generated client runs every request through the middleware stack, and a middleware
//! failure reaches the caller as its own typed error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, StatusCode};
use axum::{Json, Router, routing::get};
use http::Extensions;
use ralio::api;
use ralio::transport::hooks::{MIDDLEWARE_FAILURE_STATUS, take_middleware_error};
use reqwest_middleware::{ClientBuilder, Middleware, Next};

/// Adds a header to every request.
struct AddHeader;

#[async_trait::async_trait]
impl Middleware for AddHeader {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        req.headers_mut().insert(
            "x-seam",
            http::HeaderValue::from_static("added-by-middleware"),
        );
        next.run(req, extensions).await
    }
}

/// The middleware's own error type, as the auth layer would have.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("no token available (attempt {attempt})")]
struct NoToken {
    attempt: u32,
}

/// Fails every request before it is sent.
struct Refuse;

#[async_trait::async_trait]
impl Middleware for Refuse {
    async fn handle(
        &self,
        _req: reqwest::Request,
        _extensions: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Err(reqwest_middleware::Error::middleware(NoToken {
            attempt: 3,
        }))
    }
}

/// A server whose `/api/agents` reports the `x-seam` header it received as the agent name, and
/// counts requests.
async fn server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new()
        .route(
            "/api/agents",
            get(move |headers: HeaderMap| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let seen = headers
                        .get("x-seam")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("<absent>")
                        .to_owned();
                    Json(serde_json::json!([{ "id": "ag_1", "name": seen }]))
                }
            }),
        )
        .route(
            "/api/transactions",
            get(|| async {
                (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", "DPoP error=\"invalid_token\"")],
                    "plain text from a proxy",
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

fn client(base: &str, middleware: impl Middleware) -> api::Client {
    let http = reqwest::Client::new();
    let stack = ClientBuilder::new(http.clone()).with(middleware).build();
    api::Client::new_with_client(base, http, stack)
}

#[tokio::test]
async fn a_header_added_by_middleware_reaches_the_server() {
    let (base, hits) = server().await;
    let agents = client(&base, AddHeader).list_agents().send().await.unwrap();
    assert_eq!(agents.status(), 200);
    assert_eq!(agents.into_inner()[0].name, "added-by-middleware");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_middleware_error_reaches_the_caller_typed() {
    let (base, hits) = server().await;
    let mut err = client(&base, Refuse)
        .list_agents()
        .send()
        .await
        .expect_err("the middleware refuses every request");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing may reach the server"
    );

    let taken =
        take_middleware_error(&mut err).expect("the middleware error is parked on the error");
    let reqwest_middleware::Error::Middleware(inner) = taken else {
        panic!("expected the Middleware variant, got {taken:?}");
    };
    assert_eq!(
        inner.downcast_ref::<NoToken>(),
        Some(&NoToken { attempt: 3 })
    );
    // Taken once: a second look finds nothing, and the carrier is recognisable.
    assert!(take_middleware_error(&mut err).is_none());
    assert_eq!(
        err.status().map(|s| s.as_u16()),
        Some(MIDDLEWARE_FAILURE_STATUS)
    );
}

#[tokio::test]
async fn a_connection_failure_stays_a_communication_error() {
    // Bind then drop a listener so the port is (very likely) closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut err = client(&base, AddHeader)
        .list_agents()
        .send()
        .await
        .unwrap_err();
    assert!(take_middleware_error(&mut err).is_none());
    assert!(
        matches!(err, api::Error::CommunicationError(ref e) if e.is_connect()),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_documented_error_status_keeps_status_headers_and_raw_body() {
    let (base, _) = server().await;
    let mut err = client(&base, AddHeader)
        .list_transactions()
        .send()
        .await
        .unwrap_err();
    assert!(take_middleware_error(&mut err).is_none());
    let api::Error::ErrorResponse(response) = err else {
        panic!("expected ErrorResponse, got {err:?}");
    };
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "DPoP error=\"invalid_token\""
    );
    use futures::TryStreamExt;
    let body: Vec<bytes::Bytes> = response
        .into_inner()
        .into_inner()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(body.concat(), b"plain text from a proxy");
}

#[tokio::test]
async fn secrets_in_wire_types_reach_the_server_but_never_a_debug() {
    use ralio::api::types::BodyCreateTokenOauthTokenPost;
    use std::collections::HashMap;

    let received = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let sink = received.clone();
    let app = Router::new().route(
        "/oauth/token",
        axum::routing::post(
            move |axum::Form(form): axum::Form<HashMap<String, String>>| {
                let sink = sink.clone();
                async move {
                    *sink.lock().unwrap() = form;
                    Json(serde_json::json!({
                        "access_token": "at-SECRET-1",
                        "token_type": "DPoP",
                        "expires_in": 1800,
                        "refresh_token": "rt-SECRET-2",
                        "scope": "agents:execute"
                    }))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let body = BodyCreateTokenOauthTokenPost {
        grant_type: "client_credentials".into(),
        client_assertion_type: Some(
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        ),
        client_assertion: Some("assertion-SECRET-3".into()),
        client_id: None,
        refresh_token: None,
        scope: None,
    };
    assert!(!format!("{body:?}").contains("SECRET"), "{body:?}");

    let token = client(&base, AddHeader)
        .create_token()
        .body(body)
        .send()
        .await
        .unwrap()
        .into_inner();
    let form = received.lock().unwrap().clone();
    assert_eq!(form["client_assertion"], "assertion-SECRET-3");
    assert_eq!(form["grant_type"], "client_credentials");

    let shown = format!("{token:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    assert_eq!(token.access_token.expose_secret(), "at-SECRET-1");
    assert_eq!(
        token.refresh_token.as_ref().map(|t| t.expose_secret()),
        Some("rt-SECRET-2")
    );
    assert_eq!(token.scope.as_deref(), Some("agents:execute"));
    // Equality compares the secrets themselves (in constant time).
    use ralio::types::RedactedString;
    assert_eq!(token.access_token, RedactedString::from("at-SECRET-1"));
    assert_ne!(token.access_token, RedactedString::from("at-SECRET-X"));
    assert_ne!(
        token.access_token,
        RedactedString::from("at-SECRET-1-longer")
    );
}

/// The retry layer reports how many attempts a request took in the response's extensions (no
/// task-local, so it holds whatever task or runtime reads it).
#[tokio::test]
async fn the_retry_layer_puts_the_attempt_count_in_the_response_extensions() {
    use ralio::transport::RetryPolicy;
    use ralio::transport::retry::{Attempts, RetryMiddleware};
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/flaky",
        get(move || {
            let counter = counter.clone();
            async move {
                match counter.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::OK,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let policy = RetryPolicy::new().with_backoff(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(2),
    );
    let get_flaky = |policy: RetryPolicy| async move {
        ClientBuilder::new(reqwest::Client::new())
            .with(RetryMiddleware::new(policy))
            .build()
            .get(format!("http://{addr}/flaky"))
            .send()
            .await
            .unwrap()
    };
    let resp = get_flaky(policy.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(3)));
    // Out of retries: the last error answer carries the count too.
    hits.store(0, Ordering::SeqCst);
    let resp = get_flaky(policy.with_max_retries(1)).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(2)));
}
