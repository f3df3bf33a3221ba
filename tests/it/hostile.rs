//! Servers that misbehave, or behave like the real API where the sandbox is politer: plain
//! 401s, bursts of 401s, refused refreshes, slow token endpoints, far-off `Date` headers,
//! refresh tokens of another issuer, plain-http URLs.
//!
//! Other areas may add their own hostile cases here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt as _;
use ralio::auth::{AuthError, TokenManager, TokenManagerConfig};
use ralio::keys::PrivateKey;
use ralio::store::MemoryStore;
use ralio::{ChatEvent, Error, RalioClient};
use ralio_sandbox::{Faults, Sandbox, TicketSpec};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use crate::auth_sandbox::{auth_error, claims, http};
use crate::support::{held, held_token, holding};

// ---- a small OAuth + resource server whose answers the test chooses ----

#[derive(Default)]
struct Mock {
    token_requests: AtomicU32,
    resource_requests: AtomicU32,
    forms: Mutex<Vec<HashMap<String, String>>>,
    /// How refresh grants are answered: `None` = rotate; `Some((status, body))` = refuse.
    refresh_answer: Mutex<Option<(u16, serde_json::Value)>>,
    /// When set, refresh grants wait for a permit here (after `refresh_arrived` is notified).
    refresh_gate: Option<tokio::sync::Semaphore>,
    refresh_arrived: tokio::sync::Notify,
    /// Resource requests carrying this access token are answered `401 {"detail": …}` (no
    /// challenge) once `burst` of them have arrived.
    refuse_token: Mutex<Option<String>>,
    burst: Option<tokio::sync::Barrier>,
    /// A `Date` header the resource server sends.
    resource_date: Option<&'static str>,
}

impl Mock {
    fn forms(&self) -> Vec<HashMap<String, String>> {
        self.forms.lock().unwrap().clone()
    }
}

async fn token(State(m): State<Arc<Mock>>, body: String) -> Response {
    let n = m.token_requests.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    m.forms.lock().unwrap().push(form.clone());
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        if let Some(gate) = &m.refresh_gate {
            m.refresh_arrived.notify_one();
            gate.acquire().await.unwrap().forget();
        }
        let refusal = m.refresh_answer.lock().unwrap().clone();
        if let Some((status, body)) = refusal {
            return (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        }
    }
    axum::Json(json!({
        "access_token": format!("at-{n}"),
        "token_type": "DPoP",
        "expires_in": 300,
        "refresh_token": format!("rt-{n}"),
    }))
    .into_response()
}

async fn resource(State(m): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    m.resource_requests.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("DPoP "))
        .unwrap_or("")
        .to_owned();
    let refused = m.refuse_token.lock().unwrap().clone();
    let mut resp = if refused.as_deref() == Some(token.as_str()) {
        if let Some(burst) = &m.burst {
            burst.wait().await;
        }
        // What FastAPI sends for an expired token: no WWW-Authenticate at all.
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"detail": "Token expired"})),
        )
            .into_response()
    } else {
        "hello".into_response()
    };
    if let Some(date) = m.resource_date {
        resp.headers_mut()
            .insert("date", axum::http::HeaderValue::from_static(date));
    }
    resp
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Token endpoint and resource on one origin.
async fn start(mock: Arc<Mock>) -> String {
    let app = Router::new()
        .route("/token", post(token))
        .route("/resource", get(resource))
        .with_state(mock);
    format!("http://{}", serve(app).await)
}

fn manager(base: &str, store: Arc<MemoryStore>) -> TokenManager {
    let config = TokenManagerConfig::new(&format!("{base}/token"), "c").unwrap();
    TokenManager::builder(config, Arc::new(PrivateKey::generate().unwrap()))
        .refresh_token_store(store)
        .build()
        .unwrap()
}

fn grants(mock: &Mock) -> Vec<String> {
    mock.forms()
        .iter()
        .map(|f| match f["grant_type"].as_str() {
            "refresh_token" => format!("refresh {}", f["refresh_token"]),
            other => other.to_owned(),
        })
        .collect()
}

// ---- issue 13.1: 401 parity ----

fn fail_next(sb: &Sandbox, route: &str, times: u32) {
    sb.set_faults(Faults {
        fail_next: [(route.to_owned(), times)].into(),
        error_status: 401,
        ..Faults::default()
    });
}

/// (mints, refreshes) since `before`.
fn renewals_since(sb: &Sandbox, before: &ralio_sandbox::Counters) -> (u64, u64) {
    let now = sb.counters();
    (
        now.token_mints - before.token_mints,
        now.refreshes - before.refreshes,
    )
}

fn requests(sb: &Sandbox, route: &str) -> u64 {
    sb.counters().requests.get(route).copied().unwrap_or(0)
}

#[tokio::test]
async fn a_plain_401_without_a_challenge_is_recovered_with_one_renewal() {
    let sb = Sandbox::builder().start().await.unwrap();
    let client = crate::support::registered_client(&sb).await;
    client.agents().list().await.unwrap();
    let before = sb.counters();
    // The sandbox's injected 401 is a bare FastAPI `{"detail": …}` with no WWW-Authenticate.
    fail_next(&sb, "GET /api/agents", 1);
    let agents = client.agents().list().await.unwrap();
    assert_eq!(agents.len(), 1);
    let c = renewals_since(&sb, &before);
    assert_eq!(c, (0, 1), "one renewal (a refresh)");
    assert_eq!(requests(&sb, "GET /api/agents"), 3);
}

#[tokio::test]
async fn a_second_401_is_an_auth_error_with_the_servers_detail_after_one_renewal() {
    let sb = Sandbox::builder().start().await.unwrap();
    let client = crate::support::registered_client(&sb).await;
    client.agents().list().await.unwrap();
    let before = sb.counters();
    fail_next(&sb, "GET /api/agents", 5);
    let err = client.agents().list().await.unwrap_err();
    let Error::Auth(api) = &err else {
        panic!("expected Error::Auth, got {err:?}")
    };
    assert_eq!(api.status(), 401);
    assert!(err.to_string().contains("Injected fault"), "{err}");
    let c = renewals_since(&sb, &before);
    assert_eq!(c, (0, 1), "exactly one renewal");
    assert_eq!(requests(&sb, "GET /api/agents"), 3, "one retry, no loop");
}

#[tokio::test]
async fn a_chat_post_and_a_chat_stream_answered_401_are_retried_once() {
    let sb = Sandbox::builder().start().await.unwrap();
    let client = crate::support::registered_client(&sb).await;
    client.agents().list().await.unwrap();
    let before = sb.counters();
    fail_next(&sb, "POST /api/chat", 1);
    client
        .chat()
        .send("What is my current balance?")
        .await
        .unwrap();
    fail_next(&sb, "POST /api/chat/stream", 1);
    let mut events = client
        .chat()
        .stream("What is my current balance?")
        .await
        .unwrap();
    let mut replied = false;
    while let Some(event) = events.next().await {
        replied |= matches!(event.unwrap(), ChatEvent::Reply(_));
    }
    assert!(replied);
    assert_eq!(requests(&sb, "POST /api/chat"), 2);
    assert_eq!(requests(&sb, "POST /api/chat/stream"), 2);
    assert_eq!(renewals_since(&sb, &before), (0, 2), "one renewal each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_401s_for_one_token_causes_exactly_one_renewal() {
    const N: usize = 16;
    let mock = Arc::new(Mock {
        burst: Some(tokio::sync::Barrier::new(N)),
        ..Mock::default()
    });
    let base = start(mock.clone()).await;
    let tm = manager(&base, Arc::new(MemoryStore::new()));
    let first = tm.access_token().await.unwrap();
    *mock.refuse_token.lock().unwrap() = Some(first.expose_secret().to_owned());
    let (client, _) = http(&tm);
    // Every call is refused for the first token; the server answers none of them until all N
    // have arrived, so all N see the 401 before any renewal exists.
    let calls: Vec<_> = (0..N)
        .map(|_| {
            let client = client.clone();
            let url = format!("{base}/resource");
            tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    assert_eq!(grants(&mock), ["client_credentials", "refresh rt-0"]);
    assert_eq!(
        mock.resource_requests.load(Ordering::SeqCst) as usize,
        2 * N
    );
}

// ---- issue 13.2: refresh fallback ----

async fn refused_refresh_falls_back_to_one_mint(status: u16, body: serde_json::Value) {
    let mock = Arc::new(Mock::default());
    *mock.refresh_answer.lock().unwrap() = Some((status, body));
    let base = start(mock.clone()).await;
    let store = Arc::new(MemoryStore::new());
    let tm = manager(&base, store.clone());
    let first = tm.access_token().await.unwrap();
    let renewed = tm.force_refresh(&first).await.unwrap();
    assert_eq!(renewed.expose_secret(), "at-2");
    assert_eq!(
        grants(&mock),
        ["client_credentials", "refresh rt-0", "client_credentials"]
    );
    assert_eq!(
        held_token(&store).await,
        "rt-2",
        "the new family's token replaced the refused one"
    );
}

#[tokio::test]
async fn a_refresh_refused_with_invalid_client_falls_back_to_one_mint() {
    refused_refresh_falls_back_to_one_mint(
        401,
        json!({"error": "invalid_client", "error_description": "assertion required"}),
    )
    .await;
}

#[tokio::test]
async fn a_refresh_refused_with_an_unknown_400_code_falls_back_to_one_mint() {
    refused_refresh_falls_back_to_one_mint(400, json!({"error": "something_new"})).await;
}

#[tokio::test]
async fn a_5xx_on_refresh_keeps_the_refresh_token_and_reports_the_error() {
    let mock = Arc::new(Mock::default());
    *mock.refresh_answer.lock().unwrap() = Some((503, json!({"detail": "maintenance"})));
    let base = start(mock.clone()).await;
    let store = Arc::new(MemoryStore::new());
    let tm = manager(&base, store.clone());
    let first = tm.access_token().await.unwrap();
    let err = tm.force_refresh(&first).await.unwrap_err();
    assert!(
        matches!(err, AuthError::TokenRefused { status, .. } if status == reqwest::StatusCode::SERVICE_UNAVAILABLE),
        "{err:?}"
    );
    assert_eq!(
        grants(&mock),
        ["client_credentials", "refresh rt-0"],
        "no mint"
    );
    assert_eq!(held_token(&store).await, "rt-0");
}

// ---- issue 14.9: a renewal outlives its caller ----

#[tokio::test]
async fn a_dropped_caller_does_not_lose_the_rotated_refresh_token() {
    let mock = Arc::new(Mock {
        refresh_gate: Some(tokio::sync::Semaphore::new(0)),
        ..Mock::default()
    });
    let base = start(mock.clone()).await;
    let store = Arc::new(MemoryStore::new());
    let tm = manager(&base, store.clone());
    let first = tm.access_token().await.unwrap();
    let caller = tokio::spawn({
        let tm = tm.clone();
        let first = first.clone();
        async move { tm.force_refresh(&first).await }
    });
    // The server has the refresh request (and rotates rt-0 into rt-1) ...
    mock.refresh_arrived.notified().await;
    // ... when the caller gives up (a timeout, a dropped future).
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    mock.refresh_gate.as_ref().unwrap().add_permits(1);
    // A caller refused with the first token gets the renewal that was in flight.
    let second = tm.force_refresh(&first).await.unwrap();
    assert_eq!(second.expose_secret(), "at-1");
    assert_eq!(held_token(&store).await, "rt-1", "saved");
    // The next renewal presents the rotated token, not a replay of rt-0.
    mock.refresh_gate.as_ref().unwrap().add_permits(1);
    tm.force_refresh(&second).await.unwrap();
    assert_eq!(
        grants(&mock),
        ["client_credentials", "refresh rt-0", "refresh rt-1"]
    );
}

// ---- issue 14.7: refresh tokens are tied to their issuer ----

#[tokio::test]
async fn a_refresh_token_of_another_issuer_is_never_sent_and_is_kept() {
    let mock = Arc::new(Mock::default());
    let base = start(mock.clone()).await;
    let production = "https://api.ralio.co/oauth/token";
    let store = holding(SecretString::from("rt-production"), Some(production)).await;
    let tm = manager(&base, store.clone());
    let first = tm.access_token().await.unwrap();
    tm.force_refresh(&first).await.unwrap();
    // Minted instead of presenting the foreign token; this session's family lives in memory.
    assert_eq!(grants(&mock), ["client_credentials", "refresh rt-0"]);
    assert!(
        mock.forms()
            .iter()
            .all(|f| f.values().all(|v| !v.contains("production")))
    );
    assert_eq!(held_token(&store).await, "rt-production");
    assert_eq!(
        held(&store).await.and_then(|r| r.issuer).as_deref(),
        Some(production)
    );
}

#[tokio::test]
async fn a_refresh_token_of_this_issuer_or_of_no_recorded_issuer_is_used() {
    for issuer in [true, false] {
        let mock = Arc::new(Mock::default());
        let base = start(mock.clone()).await;
        let token_url = format!("{base}/token");
        let store = if issuer {
            holding(SecretString::from("rt-saved"), Some(&token_url)).await
        } else {
            holding(SecretString::from("rt-saved"), None).await
        };
        let tm = manager(&base, store.clone());
        tm.access_token().await.unwrap();
        assert_eq!(grants(&mock), ["refresh rt-saved"]);
        assert_eq!(held_token(&store).await, "rt-0");
        assert_eq!(
            held(&store).await.and_then(|r| r.issuer).as_deref(),
            Some(token_url.as_str()),
            "saved with its issuer"
        );
    }
}

/// Production credentials used with another API URL (`ralio --api-url http://127.0.0.1:8080
/// whoami`): the other server (a second sandbox) never receives the stored refresh token, and
/// the token and its issuer are left as they were, so production still takes it. For a file
/// slot and for a memory store, through the client.
#[tokio::test]
async fn a_stored_refresh_token_never_reaches_another_api_url_and_is_kept() {
    use ralio::register::{RegisterOptions, register};
    use ralio::store::{CredentialStore, FileStore};
    let production = Sandbox::builder().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores: [(&str, Arc<dyn CredentialStore>); 2] = [
        (
            "file",
            Arc::new(
                FileStore::new(dir.path())
                    .with_refresh_token_slot("cli")
                    .unwrap(),
            ),
        ),
        ("memory", Arc::new(MemoryStore::new())),
    ];
    for (name, store) in stores {
        register(
            &*store,
            RegisterOptions::new()
                .base_url(production.base_url())
                .ticket(production.mint_ticket(TicketSpec::default())),
        )
        .await
        .unwrap();
        let client = |base: &str| {
            RalioClient::builder()
                .base_url(base)
                .store(Arc::clone(&store))
                .retry_policy(ralio::RetryPolicy::disabled())
                .build()
        };
        // One call at home: the refresh there rotates the token, saved with its issuer.
        let refreshes_at_home = || async {
            let refreshes = production.counters().refreshes;
            client(production.base_url())
                .await
                .unwrap()
                .agents()
                .list()
                .await
                .unwrap();
            assert!(production.counters().refreshes > refreshes, "{name}");
        };
        refreshes_at_home().await;
        let before = store.load_refresh_token().await.unwrap().unwrap();
        assert_eq!(
            before.issuer.as_deref(),
            Some(production.token_url().as_str()),
            "{name}"
        );

        let other = Sandbox::builder().start().await.unwrap();
        let elsewhere = client(other.base_url()).await.unwrap();
        // The other server does not know the binding: its mint is refused.
        elsewhere.agents().list().await.unwrap_err();
        let counters = other.counters();
        assert_eq!(
            counters.requests.get("POST /oauth/token"),
            Some(&1),
            "{name}: one client-assertion mint and no refresh grant: {counters:?}"
        );
        assert_eq!(counters.refreshes, 0);
        let after = store.load_refresh_token().await.unwrap().unwrap();
        assert_eq!(
            after.refresh_token.expose_secret(),
            before.refresh_token.expose_secret(),
            "{name}: the stored token is intact"
        );
        assert_eq!(after.issuer, before.issuer, "{name}");

        // Production still takes it.
        refreshes_at_home().await;
    }
}

// ---- issue 14.8: clock offsets per origin, bounded ----

#[tokio::test]
async fn a_resource_servers_far_off_date_moves_neither_the_assertions_nor_other_origins() {
    let mock = Arc::new(Mock {
        resource_date: Some("Fri, 31 Dec 9999 23:59:59 GMT"),
        ..Mock::default()
    });
    let tokens = start(mock.clone()).await;
    let resources = format!(
        "http://{}",
        serve(
            Router::new()
                .route("/resource", get(resource))
                .with_state(mock.clone())
        )
        .await
    );
    let tm = manager(&tokens, Arc::new(MemoryStore::new()));
    let (client, rec) = http(&tm);
    let url = format!("{resources}/resource");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    assert!(tm.clock_skew_secs().abs() <= 2, "{}", tm.clock_skew_secs());
    let parsed = url::Url::parse(&url).unwrap();
    assert_eq!(tm.clock_skew_secs_for(&parsed), 3600, "clamped to one hour");
    // The next assertion (a mint: the refresh is refused) uses the token endpoint's clock; the
    // resource's proofs use their own.
    *mock.refresh_answer.lock().unwrap() = Some((400, json!({"error": "invalid_grant"})));
    tm.clear_cached_token();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let proof_iat = rec.proofs()[1]["iat"].as_i64().unwrap();
    assert!((proof_iat - now - 3600).abs() <= 5, "{proof_iat} vs {now}");
    let forms = mock.forms();
    let assertion = claims(&forms.last().unwrap()["client_assertion"]);
    let iat = assertion["iat"].as_i64().unwrap();
    assert!((iat - now).abs() <= 5, "assertion iat {iat} vs now {now}");
}

// ---- issue 14.11: no plain http off loopback ----

#[tokio::test]
async fn dpop_auth_refuses_plain_http_resources_off_loopback_unless_opted_out() {
    let mock = Arc::new(Mock::default());
    let base = start(mock.clone()).await;
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    // `api.test` resolves to the mock, but it is not a loopback name.
    let reqwest = || {
        reqwest::Client::builder()
            .resolve("api.test", addr)
            .build()
            .unwrap()
    };
    let url = format!("http://api.test:{}/resource", addr.port());

    let tm = manager(&base, Arc::new(MemoryStore::new()));
    let client = reqwest_middleware::ClientBuilder::new(reqwest())
        .with(ralio::auth::DpopAuth::new(tm))
        .build();
    let err = client.get(&url).send().await.unwrap_err();
    assert!(
        matches!(auth_error(&err), AuthError::InvalidUrl { .. }),
        "{err:?}"
    );
    assert_eq!(
        mock.token_requests.load(Ordering::SeqCst),
        0,
        "no token fetched"
    );
    assert_eq!(mock.resource_requests.load(Ordering::SeqCst), 0);

    let err = TokenManagerConfig::new("http://auth.example/token", "c").unwrap_err();
    assert!(matches!(err, AuthError::InvalidUrl { .. }), "{err:?}");

    let config =
        TokenManagerConfig::new_allowing_insecure_http(&format!("{base}/token"), "c").unwrap();
    assert!(config.allows_insecure_http());
    let tm = TokenManager::builder(config, Arc::new(PrivateKey::generate().unwrap()))
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(reqwest())
        .with(ralio::auth::DpopAuth::new(tm))
        .build();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    assert!(
        TokenManagerConfig::new_allowing_insecure_http("http://auth.example/token", "c").is_ok()
    );
}

// ---- issue 23.2: a chat turn is bounded by default, in time and in what it keeps ----

/// A chat server: tokens for anyone, and a stream of `tool_started` events (1 KiB names) that
/// never replies, one every `every`; after `reply_after` events (when set) the final reply.
async fn tool_event_server(every: std::time::Duration, reply_after: Option<u64>) -> String {
    use axum::body::{Body, Bytes};
    let stream = move || async move {
        let head = futures::stream::once(async {
            Ok::<_, std::convert::Infallible>(Bytes::from_static(
                b"event: conversation\ndata: {\"conversation_id\":\"conv_1\"}\n\n",
            ))
        });
        let tools = futures::stream::unfold(0u64, move |n| async move {
            if !every.is_zero() {
                tokio::time::sleep(every).await;
            }
            let event = match reply_after {
                Some(last) if n == last => "event: reply\ndata: {\"text\":\"done\"}\n\n".to_owned(),
                Some(last) if n > last => return None,
                _ => format!(
                    "event: tool_started\ndata: {{\"tool_name\":\"t{n:04}{}\"}}\n\n",
                    "x".repeat(1019)
                ),
            };
            Some((Ok(Bytes::from(event)), n + 1))
        });
        (
            [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
            Body::from_stream(head.chain(tools)),
        )
    };
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/api/chat/stream", post(stream))
        .with_state(Arc::new(Mock::default()));
    format!("http://{}", serve(app).await)
}

async fn chat_client(base: &str) -> RalioClient {
    RalioClient::builder()
        .base_url(base)
        .credentials("cb_hostile", PrivateKey::generate().unwrap())
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn tool_events_forever_end_at_the_default_event_cap() {
    let client = chat_client(&tool_event_server(std::time::Duration::ZERO, None).await).await;
    let mut events = client.chat().stream("hi").agent_id("agt_1").await.unwrap();
    let mut delivered = 0;
    let err = loop {
        match events.next().await {
            Some(Ok(_)) => delivered += 1,
            Some(Err(e)) => break e,
            None => panic!("the stream ended without an error"),
        }
    };
    assert!(
        matches!(
            err,
            Error::Stream(ralio::StreamError::TooManyEvents { limit: 10_000, .. })
        ),
        "{err:?}"
    );
    assert_eq!(delivered, ralio::stream::DEFAULT_MAX_EVENTS);
    assert!(events.next().await.is_none(), "nothing after the error");
}

#[tokio::test]
async fn tool_events_forever_end_at_the_turn_deadline_when_the_cap_is_lifted() {
    let client =
        chat_client(&tool_event_server(std::time::Duration::from_millis(5), None).await).await;
    let started = std::time::Instant::now();
    let events = client
        .chat()
        .stream("hi")
        .agent_id("agt_1")
        .max_events(usize::MAX)
        .timeout(std::time::Duration::from_secs(1))
        .await
        .unwrap();
    let err = events.final_reply().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Stream(ralio::StreamError::DeadlineExceeded { .. })
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // "No deadline" is a deadline at the end of time, never an overflow panic.
    let client = chat_client(&tool_event_server(std::time::Duration::ZERO, Some(3)).await).await;
    let reply = client
        .chat()
        .stream("hi")
        .agent_id("agt_1")
        .timeout(std::time::Duration::MAX)
        .await
        .unwrap()
        .final_reply()
        .await
        .unwrap();
    assert_eq!(reply.text, "done");
}

#[tokio::test]
async fn the_tool_names_a_turn_keeps_are_capped_and_every_event_still_arrives() {
    // 500 tools of 1 KiB: every `tool_started` is delivered, the reply keeps 64 KiB of names.
    let client = chat_client(&tool_event_server(std::time::Duration::ZERO, Some(500)).await).await;
    let mut events = client.chat().stream("hi").agent_id("agt_1").await.unwrap();
    let mut started = 0;
    let reply = loop {
        match events.next().await.unwrap().unwrap() {
            ChatEvent::ToolStarted(_) => started += 1,
            ChatEvent::Reply(reply) => break reply,
            _ => {}
        }
    };
    assert_eq!(started, 500);
    let kept: usize = reply.tools.iter().map(String::len).sum();
    assert_eq!(reply.tools.len(), 64, "the first names that fit");
    assert!(kept <= ralio::stream::MAX_KEPT_TOOL_NAME_BYTES, "{kept}");
    assert!(reply.tools[0].starts_with("t0000"));
}

// ---- issue 23.2: the SDK's lookups, walks and waits are bounded by count and by time ----

/// Claims a billion intents and serves 50 new ones on every page, each page after `delay`
/// (page 1 holds `pi_target`, awaiting approval, when `with_target`); counts the pages served.
async fn a_billion_intents(
    delay: std::time::Duration,
    with_target: bool,
    pages: Arc<AtomicU32>,
) -> String {
    use axum::extract::Query;
    let list = move |Query(q): Query<HashMap<String, String>>| {
        let pages = Arc::clone(&pages);
        async move {
            pages.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            let n = |k: &str, d: u64| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
            let (page, per_page) = (n("page", 1), n("per_page", 50));
            let items: Vec<serde_json::Value> = (0..per_page.clamp(1, 200))
                .map(|i| {
                    let id = if with_target && page == 1 && i == 0 {
                        "pi_target".to_owned()
                    } else {
                        format!("pi_{page}_{i}")
                    };
                    json!({
                        "id": id, "agent_id": "agt_1", "approval_status": "pending_approval",
                        "execution_status": "not_started", "total_amount": "1.00",
                        "currency": "GBP", "instruction_count": 1,
                    })
                })
                .collect();
            axum::Json(json!({
                "payment_intents": items, "total": 1_000_000_000u64,
                "page": page, "per_page": per_page,
            }))
        }
    };
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/api/payment-intents", get(list))
        .with_state(Arc::new(Mock::default()));
    format!("http://{}", serve(app).await)
}

/// Fails the test when `work` has not returned after `guard` (never a timing assertion beyond
/// "it returned").
async fn returns<T>(
    guard: std::time::Duration,
    work: impl std::future::IntoFuture<Output = T>,
) -> T {
    tokio::time::timeout(guard, work)
        .await
        .expect("the call did not return (it walked or waited without bound)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_created_in_turn_walk_at_most_the_newest_5000_of_a_billion_intents() {
    let pages = Arc::new(AtomicU32::new(0));
    let base = a_billion_intents(std::time::Duration::ZERO, false, Arc::clone(&pages)).await;
    let client = chat_client(&base).await;
    let guard = std::time::Duration::from_secs(60);

    let err = returns(guard, client.payment_intents().get("pi_missing"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownId { .. }), "{err:?}");
    assert_eq!(
        pages.swap(0, Ordering::SeqCst),
        100,
        "5,000 intents, 50 a page"
    );

    let turn = ralio::TurnIntents::default();
    let created = returns(
        guard,
        client.payment_intents().created_in_turn(&turn, "conv_1"),
    )
    .await
    .unwrap();
    assert_eq!(created.len(), 5_000);
    assert_eq!(pages.swap(0, Ordering::SeqCst), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_outcome_counts_its_lookups_against_a_slow_billion_intents() {
    let pages = Arc::new(AtomicU32::new(0));
    let slow = std::time::Duration::from_millis(300);
    let base = a_billion_intents(slow, false, Arc::clone(&pages)).await;
    let client = chat_client(&base).await;
    let guard = std::time::Duration::from_secs(20);

    // Never found: the lookup is cut at the deadline, and nothing was ever read.
    let err = returns(
        guard,
        client
            .payment_intents()
            .wait_for_outcome("pi_missing")
            .timeout(std::time::Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { what: ralio::error::Awaited::Decision { intent_id, .. }, .. } if intent_id == "pi_missing"),
        "{err:?}"
    );
    assert!(
        pages.load(Ordering::SeqCst) < 100,
        "cut by time, not by count"
    );

    // Found on the first page but never decided: the intent as last read, not final.
    let base = a_billion_intents(slow, true, Arc::new(AtomicU32::new(0))).await;
    let client = chat_client(&base).await;
    let outcome = returns(
        guard,
        client
            .payment_intents()
            .wait_for_outcome("pi_target")
            .timeout(std::time::Duration::from_secs(2)),
    )
    .await
    .unwrap();
    assert_eq!(outcome.intent.id, "pi_target");
    assert_eq!(outcome.stage, ralio::IntentStage::AwaitingApproval);
    assert!(!outcome.is_final());

    // A zero timeout reads once, within the grace a lookup in flight gets.
    let outcome = returns(
        guard,
        client
            .payment_intents()
            .wait_for_outcome("pi_target")
            .timeout(std::time::Duration::ZERO),
    )
    .await
    .unwrap();
    assert_eq!(outcome.intent.id, "pi_target");
}
