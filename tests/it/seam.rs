//! Every request runs through the one middleware stack: a caller's middleware reaches resource
//! calls and token requests alike, a middleware failure reaches the caller as its own typed
//! error, an error status keeps what the server said, and retries are counted. All through the
//! public API.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http::Extensions;
use ralio::keys::PrivateKey;
use ralio::{Error, RalioClient, RetryPolicy};
use reqwest_middleware::{Middleware, Next};

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

/// The middleware's own error type, as an auth layer of the caller's would have.
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

type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A server with a token endpoint, whose `/api/agents` answers one agent, `/api/transactions`
/// a 403 from "a proxy", and `/api/payment-intents` 503 twice then an empty page; it records
/// each request's path and `x-seam` header.
async fn server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let flaky = Arc::new(AtomicUsize::new(0));
    let app = Router::new().fallback(move |req: Request| {
        let (record, flaky) = (Arc::clone(&record), Arc::clone(&flaky));
        async move {
            let path = req.uri().path().to_owned();
            let header = req
                .headers()
                .get("x-seam")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            record.lock().unwrap().push((path.clone(), header));
            let json = |body: serde_json::Value| -> Response { axum::Json(body).into_response() };
            match path.as_str() {
                "/oauth/token" => json(serde_json::json!({
                    "access_token": "rat_seam_0123456789",
                    "token_type": "DPoP",
                    "expires_in": 1800,
                    "scope": "agents:execute transactions:read payment_intents:read",
                })),
                "/api/agents" => json(serde_json::json!([{ "id": "ag_1", "name": "seam" }])),
                "/api/transactions" => (
                    StatusCode::FORBIDDEN,
                    [
                        (header::CONTENT_TYPE, "text/plain"),
                        (
                            header::HeaderName::from_static("x-request-id"),
                            "req_seam_1",
                        ),
                    ],
                    "plain text from a proxy",
                )
                    .into_response(),
                "/api/payment-intents" => match flaky.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                    _ => json(serde_json::json!({
                        "payment_intents": [], "total": 0, "page": 1, "per_page": 50
                    })),
                },
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

async fn client(base: &str, middleware: impl Middleware) -> RalioClient {
    RalioClient::builder()
        .base_url(base)
        .credentials("cb_seam", PrivateKey::generate().unwrap())
        .middleware(Arc::new(middleware))
        .retry_policy(
            RetryPolicy::new().with_backoff(Duration::from_millis(1), Duration::from_millis(2)),
        )
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_callers_middleware_reaches_token_requests_and_resource_calls() {
    let (base, seen) = server().await;
    let agents = client(&base, AddHeader)
        .await
        .agents()
        .list()
        .await
        .unwrap();
    assert_eq!(agents[0].id, "ag_1");
    let seen = seen.lock().unwrap().clone();
    let added = Some("added-by-middleware".to_owned());
    assert_eq!(
        seen,
        vec![
            ("/oauth/token".to_owned(), added.clone()),
            ("/api/agents".to_owned(), added)
        ]
    );
}

#[tokio::test]
async fn a_middleware_error_reaches_the_caller_typed() {
    let (base, seen) = server().await;
    let err = client(&base, Refuse)
        .await
        .agents()
        .list()
        .await
        .expect_err("the middleware refuses every request");
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing may reach the server"
    );
    // The first request refused is the token request the call needs; the middleware's own
    // error is in the chain, as itself.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut found = None;
    while let Some(current) = cause {
        if let Some(own) = current.downcast_ref::<NoToken>() {
            found = Some(own);
        }
        cause = current.source();
    }
    assert_eq!(found, Some(&NoToken { attempt: 3 }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(err.status(), None, "no HTTP status was invented: {err:?}");
    // Nothing in the message looks like an answer from a server.
    assert!(!format!("{err:?}").contains("599"), "{err:?}");
}

#[tokio::test]
async fn a_connection_failure_is_a_transport_error() {
    // Bind then drop a listener so the port is (very likely) closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = RalioClient::builder()
        .base_url(&base)
        .credentials("cb_seam", PrivateKey::generate().unwrap())
        .retry_policy(RetryPolicy::disabled())
        .build()
        .await
        .unwrap();
    let err = client.agents().list().await.unwrap_err();
    let Error::Transport {
        source, failure, ..
    } = &err
    else {
        panic!("expected Error::Transport, got {err:?}");
    };
    assert!(source.is_connect(), "{source:?}");
    // Nothing listens there: most likely a wrong URL, which retrying does not fix.
    assert_eq!(*failure, ralio::error::TransportFailure::ConnectionRefused);
    assert!(!err.is_retryable());
    assert!(err.to_string().contains(&base), "{err}");
}

#[tokio::test]
async fn an_error_status_keeps_status_headers_and_body() {
    let (base, _) = server().await;
    let err = client(&base, AddHeader)
        .await
        .transactions()
        .list()
        .await
        .unwrap_err();
    let Error::Permission(api) = &err else {
        panic!("expected Error::Permission, got {err:?}");
    };
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    assert_eq!(api.request_id(), Some("req_seam_1"));
    assert_eq!(api.detail(), Some("plain text from a proxy"), "{api:?}");
    assert_eq!(api.attempts(), 1);
}

#[tokio::test]
async fn retries_are_counted_and_reported() {
    let (base, seen) = server().await;
    let page = client(&base, AddHeader)
        .await
        .payment_intents()
        .list()
        .await
        .unwrap();
    assert!(page.is_empty());
    let intents = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path == "/api/payment-intents")
        .count();
    assert_eq!(intents, 3, "two 503s retried, then the answer");
}
