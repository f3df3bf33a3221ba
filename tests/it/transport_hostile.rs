//! Hostile in-process servers: answers that used to crash the process, switch a cap off,
//! loop forever or steer a secret elsewhere, and the headers every request carries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use ralio::auth::{PrivateKey, TokenManager, TokenManagerConfig};
use ralio::register::{RegisterOptions, register};
use ralio::store::{CredentialStore, MemoryStore};
use ralio::{Error, RalioClient, RetryPolicy};

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A hang guard, not a speed check.
async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not end"))
}

fn token_json(expires_in: &str) -> Response {
    let body = format!(
        r#"{{"access_token":"rat_hostile_0123456789","token_type":"DPoP","expires_in":{expires_in},"scope":"agents:execute transactions:read"}}"#
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[tokio::test]
async fn absurd_expires_in_values_are_clamped_or_refused_never_a_crash() {
    // (expires_in, usable): values that fit the documented integer are clamped to 1 s..24 h;
    // the rest is a typed "unusable token response" error.
    for (expires_in, usable) in [
        ("9223372036854775807", true),
        ("-5", true),
        ("0", true),
        ("1e19", false),
        ("18446744073709551615", false),
        ("1e300", false),
    ] {
        let app = Router::new().fallback(move || async move { token_json(expires_in) });
        let url = serve(app).await;
        let tokens = TokenManager::builder(
            TokenManagerConfig::ralio(&url, "cb_hostile").unwrap(),
            Arc::new(PrivateKey::generate().unwrap()),
        )
        .build()
        .unwrap();
        // Before the clamp, i64::MAX (and, with the old hand-written wire struct, 1e19)
        // panicked with "overflow when adding duration to instant".
        let task = tokio::spawn(async move {
            tokens.access_token().await.map(|_| ())?;
            Ok::<_, ralio::auth::AuthError>(tokens.token_info().unwrap())
        });
        let outcome = bounded(expires_in, task)
            .await
            .unwrap_or_else(|panic| panic!("expires_in {expires_in}: the task panicked: {panic}"));
        match (outcome, usable) {
            (Ok(info), true) => assert!(
                info.expires_in <= Duration::from_secs(24 * 60 * 60),
                "expires_in {expires_in}: {:?}",
                info.expires_in
            ),
            (Err(ralio::auth::AuthError::TokenResponse { .. }), false) => {}
            (other, _) => panic!("expires_in {expires_in}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_huge_retry_after_is_reported_bounded() {
    let app = Router::new().fallback(|req: Request| async move {
        if req.uri().path() == "/oauth/token" {
            return token_json("300");
        }
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "18446744073709551615")],
            "slow down",
        )
            .into_response()
    });
    let url = serve(app).await;
    let client = RalioClient::builder()
        .base_url(&url)
        .credentials("cb_hostile", PrivateKey::generate().unwrap())
        .build()
        .await
        .unwrap();
    let e = bounded("429", client.agents().list()).await.unwrap_err();
    assert!(matches!(e, Error::RateLimit(_)), "{e:?}");
    let wait = e.retry_after().unwrap();
    assert!(wait <= Duration::from_secs(24 * 60 * 60), "{wait:?}");
    // What a caller does with it must not overflow.
    assert!(std::time::Instant::now().checked_add(wait).is_some());
}

/// A server whose every answer but the token endpoint's is `200`, labelled
/// `text/event-stream`, with an endless body; it counts the bytes the client pulled.
async fn endless_event_stream() -> (String, Arc<AtomicU64>) {
    let pulled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&pulled);
    let app = Router::new().fallback(move |req: Request| {
        let counter = Arc::clone(&counter);
        async move {
            if req.uri().path() == "/oauth/token" {
                return token_json("300");
            }
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            let body = futures::stream::repeat_with(move || {
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Ok::<_, std::io::Error>(chunk.clone())
            });
            let mut res = Response::new(Body::from_stream(body));
            res.headers_mut()
                .insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
            res
        }
    });
    (serve(app).await, pulled)
}

#[tokio::test]
async fn an_event_stream_label_does_not_switch_the_body_cap_off() {
    let (url, pulled) = endless_event_stream().await;
    let client = RalioClient::builder()
        .base_url(&url)
        .credentials("cb_hostile", PrivateKey::generate().unwrap())
        .retry_policy(RetryPolicy::disabled())
        .build()
        .await
        .unwrap();
    let e = bounded("GET /api/agents", client.agents().list())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Transport { .. } | Error::Decode { .. }),
        "{e:?}"
    );
    // 8 MiB cap plus socket buffers; without the cap this grows until the process aborts.
    assert!(pulled.load(Ordering::Relaxed) < 32 << 20);
}

/// Every request a server saw: path and headers.
type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// A well-behaved server for one agent, recording every request.
async fn recording_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let app = Router::new().fallback(move |req: Request| {
        let log = Arc::clone(&log);
        async move {
            let path = req.uri().path().to_owned();
            log.lock()
                .unwrap()
                .push((path.clone(), req.headers().clone()));
            match path.as_str() {
                "/oauth/token" => token_json("300"),
                "/api/agents" => {
                    axum::Json(serde_json::json!([{"id": "ag_1", "name": "A"}])).into_response()
                }
                "/api/chat/stream" => (
                    [(header::CONTENT_TYPE, "text/event-stream")],
                    "event: reply\ndata: {\"text\":\"hi\"}\n\n",
                )
                    .into_response(),
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    (serve(app).await, seen)
}

/// A caller's middleware that records the path of every request it sees.
#[derive(Default)]
struct Spy(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Spy {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.0.lock().unwrap().push(req.url().path().to_owned());
        next.run(req, extensions).await
    }
}

#[tokio::test]
async fn headers_are_those_of_the_official_clients() {
    let (url, seen) = recording_server().await;
    let spy = Arc::new(Spy::default());
    let client = RalioClient::builder()
        .middleware(spy.clone())
        .base_url(&url)
        .credentials("cb_hostile", PrivateKey::generate().unwrap())
        .build()
        .await
        .unwrap();
    client.agents().list().await.unwrap();
    let mut events = client.chat().stream("hello").await.unwrap();
    while let Some(event) = events.next().await {
        event.unwrap();
    }
    // The token request goes through the caller's middleware like every resource call (the
    // second agents list is the stream resolving its agent).
    assert_eq!(
        *spy.0.lock().unwrap(),
        [
            "/api/agents",
            "/oauth/token",
            "/api/agents",
            "/api/chat/stream"
        ]
    );
    let seen = seen.lock().unwrap().clone();
    let stream = seen
        .iter()
        .find(|(path, _)| path == "/api/chat/stream")
        .expect("the stream was requested");
    assert_eq!(
        stream.1.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    for (path, headers) in &seen {
        assert!(
            headers.get("api-version").is_none(),
            "{path} carries api-version"
        );
        assert!(
            path == "/oauth/token"
                || headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|ua| ua.starts_with("ralio-rust/")),
            "{path}: {:?}",
            headers.get(header::USER_AGENT)
        );
    }
}

/// A server that redirects everything (307, same method and body) to `target`.
async fn redirect_to(target: String) -> String {
    serve(Router::new().fallback(move |req: Request| {
        let location = format!("{target}{}", req.uri().path());
        async move {
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response()
        }
    }))
    .await
}

#[tokio::test]
#[allow(deprecated)]
async fn a_caller_client_that_follows_redirects_is_not_used_for_secrets() {
    let (target, seen) = recording_server().await;
    let origin = redirect_to(target).await;
    // reqwest's default client follows up to 10 redirects.
    let following = reqwest::Client::new();

    let client = RalioClient::builder()
        .base_url(&origin)
        .http_client(following)
        .credentials("cb_hostile", PrivateKey::generate().unwrap())
        .retry_policy(RetryPolicy::disabled())
        .build()
        .await
        .unwrap();
    let e = bounded("token", client.agents().list()).await.unwrap_err();
    assert!(matches!(e, Error::Auth(_) | Error::Api(_)), "{e:?}");

    let store = MemoryStore::new();
    let e = bounded(
        "registration",
        register(
            &store,
            RegisterOptions::new()
                .ticket("ralio-reg-hostile-0123456789")
                .base_url(&origin),
        ),
    )
    .await
    .unwrap_err();
    assert!(!format!("{e} {e:?}").contains("ralio-reg-hostile"), "{e}");
    assert!(store.load_identity().await.unwrap().is_none());

    let reached: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        !reached
            .iter()
            .any(|p| p == "/oauth/token" || p.starts_with("/api/credential-bindings")),
        "a secret-carrying request followed the redirect: {reached:?}"
    );
}

#[tokio::test]
async fn an_unknown_poll_status_is_polled_through_to_active() {
    let key = PrivateKey::generate().unwrap();
    let fingerprint = key.thumbprint().as_str().to_owned();
    let polls = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&polls);
    let app = Router::new().fallback(move |req: Request| {
        let (fingerprint, counter) = (fingerprint.clone(), Arc::clone(&counter));
        async move {
            let path = req.uri().path().to_owned();
            if path == "/oauth/token" {
                return token_json("300");
            }
            if req.method() == http::Method::POST {
                let body = serde_json::json!({"fingerprint": fingerprint, "poll_token": "pt_1"});
                return (StatusCode::ACCEPTED, axum::Json(body)).into_response();
            }
            // Two answers with a status this SDK does not know, then active.
            let body = match counter.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => serde_json::json!({"status": "awaiting_second_approver"}),
                _ => serde_json::json!({"status": "active", "client_id": "cb_polled"}),
            };
            axum::Json(body).into_response()
        }
    });
    let url = serve(app).await;
    let store = MemoryStore::new();
    let binding = bounded(
        "registration",
        register(
            &store,
            RegisterOptions::new()
                .ticket("ralio-reg-hostile-poll")
                .base_url(&url)
                .signer(Arc::new(key))
                .poll_interval(Duration::from_millis(1)),
        ),
    )
    .await
    .unwrap();
    assert_eq!(binding.client_id, "cb_polled");
    assert_eq!(polls.load(Ordering::SeqCst), 3);
}
