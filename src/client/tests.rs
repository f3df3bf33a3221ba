use super::*;
use crate::origin::validate_base_url;
use crate::stream::ChatStream;
use crate::types::{PaymentStatus, Transaction};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::Mutex;

/// A mock API without auth: statuses to answer first per route, then success.
#[derive(Default)]
struct Mock {
    script: Mutex<HashMap<&'static str, Vec<(u16, &'static str)>>>,
    hits: Mutex<HashMap<&'static str, u32>>,
    agents: Mutex<Vec<serde_json::Value>>,
    transactions: u64,
    hang: bool,
    headers: Mutex<Vec<axum::http::HeaderMap>>,
    /// The chat stream sends its `conversation` event, then only `: keep-alive` comments.
    endless_stream: bool,
    /// Notified when the server drops an endless stream's body (the connection closed).
    stream_closed: Arc<tokio::sync::Notify>,
}

/// Notifies when dropped: the server stopped producing the stream.
struct NotifyOnDrop(Arc<tokio::sync::Notify>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

impl Mock {
    fn scripted(&self, route: &'static str) -> Option<Response> {
        *self.hits.lock().unwrap().entry(route).or_default() += 1;
        let mut script = self.script.lock().unwrap();
        let queue = script.get_mut(route)?;
        if queue.is_empty() {
            return None;
        }
        let (status, body) = queue.remove(0);
        let mut resp = (StatusCode::from_u16(status).unwrap(), body.to_owned()).into_response();
        resp.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("req-mock"));
        if status == 429 {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("0"));
        }
        Some(resp)
    }
    /// Answers the next requests to `route` with these statuses and bodies, in order.
    fn answer(&self, route: &'static str, answers: Vec<(u16, &'static str)>) {
        self.script.lock().unwrap().insert(route, answers);
    }
    fn hits(&self, route: &'static str) -> u32 {
        self.hits.lock().unwrap().get(route).copied().unwrap_or(0)
    }
}

async fn agents(State(m): State<Arc<Mock>>, headers: axum::http::HeaderMap) -> Response {
    m.headers.lock().unwrap().push(headers);
    if let Some(r) = m.scripted("agents") {
        return r;
    }
    axum::Json(m.agents.lock().unwrap().clone()).into_response()
}

async fn transactions(
    State(m): State<Arc<Mock>>,
    Query(q): Query<HashMap<String, u64>>,
) -> Response {
    if m.hang {
        // Counted on entry: the handler never gets further.
        *m.hits.lock().unwrap().entry("transactions").or_default() += 1;
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some(r) = m.scripted("transactions") {
        return r;
    }
    let page = q.get("page").copied().unwrap_or(1);
    let per_page = q.get("per_page").copied().unwrap_or(50);
    let items: Vec<_> = ((page - 1) * per_page..(page * per_page).min(m.transactions))
        .map(|i| {
            serde_json::json!({"id": format!("tx_{i}"), "amount": "12.50", "currency": "GBP",
                "status": if i % 2 == 0 { "completed" } else { "settling" }})
        })
        .collect();
    axum::Json(serde_json::json!({"transactions": items, "total": m.transactions, "page": page, "per_page": per_page}))
        .into_response()
}

async fn chat(
    State(m): State<Arc<Mock>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    if let Some(r) = m.scripted("chat") {
        return r;
    }
    axum::Json(serde_json::json!({"reply": format!("to {}", body["agent_id"].as_str().unwrap_or("?")),
        "conversation_id": "conv_1", "new_messages": [{"id": "m1", "role": "user", "content": "hi"}]}))
        .into_response()
}

async fn chat_stream(State(m): State<Arc<Mock>>) -> Response {
    if let Some(r) = m.scripted("chat_stream") {
        return r;
    }
    if m.endless_stream {
        let guard = NotifyOnDrop(Arc::clone(&m.stream_closed));
        let first = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
            b"event: conversation\ndata: {\"conversation_id\":\"c1\"}\n\n",
        ))]);
        let keep_alives = futures::stream::unfold(guard, |guard| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some((Ok(bytes::Bytes::from_static(b": keep-alive\n\n")), guard))
        });
        return (
            [(http::header::CONTENT_TYPE, "text/event-stream")],
            axum::body::Body::from_stream(futures::StreamExt::chain(first, keep_alives)),
        )
            .into_response();
    }
    let body = "event: conversation\ndata: {\"conversation_id\":\"c1\"}\n\n\
event: text_delta\ndata: {\"text\":\"Hello\"}\n\n\
event: reply\ndata: {\"text\":\"Hello\"}\n\n";
    ([(http::header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

async fn start(mock: Mock) -> (RalioClient, Arc<Mock>) {
    let mock = Arc::new(mock);
    let app = Router::new()
        .route("/api/agents", get(agents))
        .route("/api/transactions", get(transactions))
        .route("/api/chat", post(chat))
        .route("/api/chat/stream", post(chat_stream))
        .with_state(Arc::clone(&mock));
    let addr = serve(app).await;
    let client = RalioClient::builder()
        .base_url(format!("http://{addr}"))
        .retry_policy(
            RetryPolicy::new().with_backoff(Duration::from_millis(1), Duration::from_millis(5)),
        )
        .read_timeout(Duration::from_millis(300))
        .build_unauthenticated()
        .unwrap();
    (client, mock)
}

/// A chat stream from `app`, served here and read with `idle` as the read-idle timeout, past
/// its first event (checked to be a text delta).
async fn stream_after_first_delta(app: Router, idle: Option<Duration>) -> crate::ChatStream {
    let addr = serve(app).await;
    let client = RalioClient::builder()
        .base_url(format!("http://{addr}"))
        .read_idle_timeout(idle)
        .build_unauthenticated()
        .unwrap();
    let mut stream = client.chat().stream("hi").agent_id("ag_1").await.unwrap();
    assert!(matches!(
        stream.next().await,
        Some(Ok(crate::ChatEvent::TextDelta { .. }))
    ));
    stream
}

fn one_agent() -> Mock {
    one_agent_with(|_| ())
}

/// [`one_agent`], with `set` applied.
fn one_agent_with(set: impl FnOnce(&mut Mock)) -> Mock {
    let mut m = Mock::default();
    m.agents
        .lock()
        .unwrap()
        .push(serde_json::json!({"id": "ag_1", "name": "Payments"}));
    set(&mut m);
    m
}

#[tokio::test]
async fn a_get_survives_503s_and_reports_attempts_on_failure() {
    let m = one_agent_with(|m| m.transactions = 3);
    m.answer("transactions", vec![(503, "busy"), (502, ""), (504, "")]);
    let (client, mock) = start(m).await;
    let page = client.transactions().list().await.unwrap();
    assert_eq!(page.len(), 3);
    assert_eq!(mock.hits("transactions"), 4);
    // Four 503s in a row exhaust the 3 retries: the error says how many attempts.
    mock.answer("transactions", vec![(503, r#"{"detail":"down"}"#); 4]);
    let err = client.transactions().list().await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(err.api_error().unwrap().attempts(), 4);
    assert!(err.to_string().contains("after 4 attempts"), "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_chat_post_is_never_retried_after_a_5xx() {
    let (client, mock) = start(one_agent()).await;
    mock.answer("chat", vec![(500, "boom"), (200, "")]);
    // The one agent is looked up first: only the POST counts below.
    let err = client.chat().send("Pay £25 to Bob").await.unwrap_err();
    assert!(matches!(err, Error::Api(_)), "{err:?}");
    assert_eq!(mock.hits("chat"), 1, "the server saw exactly one POST");
    mock.answer("chat", vec![(503, "")]);
    assert!(client.chat().send("x").agent_id("ag_1").await.is_err());
    assert_eq!(mock.hits("chat"), 2);
}

#[tokio::test]
async fn a_chat_post_is_retried_after_a_429() {
    let (client, mock) = start(one_agent()).await;
    mock.answer("chat", vec![(429, r#"{"detail":"slow down"}"#)]);
    let reply = client.chat().send("hi").agent_id("ag_1").await.unwrap();
    assert_eq!(reply.reply, "to ag_1");
    assert_eq!(mock.hits("chat"), 2);
}

#[tokio::test]
async fn retries_can_be_switched_off() {
    let m = one_agent_with(|m| m.transactions = 1);
    m.answer("transactions", vec![(503, "")]);
    let mock = Arc::new(m);
    let (client, mock2) = start(Arc::into_inner(mock).unwrap()).await;
    let client = RalioClient::builder()
        .base_url(client.base_url())
        .retry_policy(RetryPolicy::disabled())
        .build_unauthenticated()
        .unwrap();
    assert!(client.transactions().list().await.is_err());
    assert_eq!(mock2.hits("transactions"), 1);
}

#[tokio::test]
async fn the_single_agent_is_resolved_once_and_cached() {
    let (client, mock) = start(one_agent()).await;
    let a = client.chat().send("one").await.unwrap();
    let b = client.clone().chat().send("two").await.unwrap();
    assert_eq!(a.reply, "to ag_1");
    assert_eq!(b.reply, "to ag_1");
    assert_eq!(a.new_messages[0].role, Some(crate::MessageRole::User));
    assert_eq!(mock.hits("agents"), 1);
}

#[tokio::test]
async fn zero_or_several_agents_is_a_clear_error() {
    let (client, mock) = start(Mock::default()).await;
    let err = client.chat().send("hi").await.unwrap_err();
    assert!(matches!(err, Error::Config(ConfigError::NoAgent)), "{err}");
    mock.agents.lock().unwrap().extend([
        serde_json::json!({"id": "ag_1", "name": "A"}),
        serde_json::json!({"id": "ag_2", "name": "B"}),
    ]);
    let err = client.chat().send("hi").await.unwrap_err();
    assert!(err.to_string().contains("2 agents (ag_1, ag_2)"), "{err}");
    assert_eq!(mock.hits("chat"), 0, "nothing was sent to chat");
}

#[tokio::test]
async fn error_statuses_map_to_typed_errors_with_details() {
    let (client, mock) = start(one_agent()).await;
    mock.answer(
        "transactions",
        vec![
            (403, r#"{"detail":"Missing scope: transactions:read"}"#),
            (404, r#"{"detail":"Not Found"}"#),
            (
                422,
                r#"{"detail":[{"loc":["query","page"],"msg":"must be >= 1"}]}"#,
            ),
            (400, "plain text"),
        ],
    );
    let e = client.transactions().list().await.unwrap_err();
    assert!(matches!(e, Error::Permission(_)));
    assert_eq!(e.detail(), Some("Missing scope: transactions:read"));
    assert_eq!(e.request_id(), Some("req-mock"));
    assert!(matches!(
        client.transactions().list().await.unwrap_err(),
        Error::NotFound(_)
    ));
    let e = client.transactions().list().await.unwrap_err();
    assert!(matches!(e, Error::Validation(_)));
    assert_eq!(e.detail(), Some("query.page: must be >= 1"));
    let e = client.transactions().list().await.unwrap_err();
    assert!(matches!(e, Error::Api(_)));
    assert_eq!(e.detail(), Some("plain text"));
    // A 429 that outlives the retries is a RateLimit error.
    mock.answer("agents", vec![(429, ""); 4]);
    let e = client.agents().list().await.unwrap_err();
    assert!(matches!(e, Error::RateLimit(_)), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::ZERO));
}

#[tokio::test]
async fn pages_and_the_lazy_stream_over_all_pages() {
    let (client, mock) = start(one_agent_with(|m| m.transactions = 7)).await;
    let page = client
        .transactions()
        .list()
        .page(2)
        .per_page(3)
        .await
        .unwrap();
    assert_eq!(
        (page.page, page.per_page, page.total, page.len()),
        (2, 3, 7, 3)
    );
    assert_eq!(page.items[0].id, "tx_3");
    assert_eq!(page.items[0].amount, "12.50".parse().unwrap());
    assert_eq!(
        page.items[0].status,
        PaymentStatus::Other("settling".into())
    );
    assert_eq!(page.items[1].status, PaymentStatus::Completed);
    let all: Vec<Transaction> = client
        .transactions()
        .list()
        .per_page(3)
        .all()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(mock.hits("transactions"), 1 + 3);
}

#[tokio::test]
async fn streaming_chat_yields_typed_events() {
    let (client, _mock) = start(one_agent()).await;
    let stream = client.chat().stream("hi").await.unwrap();
    let events: Vec<_> = stream.collect().await;
    assert_eq!(events.len(), 3);
    assert!(matches!(&events[2], Ok(crate::ChatEvent::Reply(r)) if r.text == "Hello"));
    let (client, mock) = start(one_agent()).await;
    mock.answer(
        "chat_stream",
        vec![(403, r#"{"detail":"Missing scope: agents:execute"}"#)],
    );
    let err = client.chat().stream("hi").await.unwrap_err();
    assert!(matches!(err, Error::Permission(_)));
}

#[tokio::test]
async fn a_stream_of_keep_alives_only_ends_at_the_turn_deadline() {
    let (client, mock) = start(one_agent_with(|m| m.endless_stream = true)).await;
    // Keep-alives every 20 ms keep the 300 ms read-idle timer from ever firing.
    let mut stream = client
        .chat()
        .stream("hi")
        .agent_id("ag_1")
        .timeout(Duration::from_secs(1))
        .await
        .unwrap();
    let mut last = None;
    while let Some(item) = futures::StreamExt::next(&mut stream).await {
        last = Some(item);
    }
    let err = last.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Stream(crate::StreamError::DeadlineExceeded { deadline }) if deadline == Duration::from_secs(1)
        ),
        "{err:?}"
    );
    drop(stream);
    // The connection is closed, not left open (a bound, not a measurement).
    tokio::time::timeout(Duration::from_secs(30), mock.stream_closed.notified())
        .await
        .expect("the server never saw the stream closed");
}

#[tokio::test]
async fn a_hung_server_is_a_timeout_error_after_the_retries() {
    let (client, mock) = start(one_agent_with(|m| m.hang = true)).await;
    let err = client.transactions().list().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    // A timed-out GET is retried: the first attempt and the policy's 3 retries reached it.
    assert_eq!(
        mock.hits("transactions"),
        1 + RetryPolicy::new().max_retries(),
        "every attempt reached the server, and no more"
    );
}

#[test]
fn plain_http_only_for_loopback() {
    assert_eq!(
        validate_base_url("https://api.ralio.co/").unwrap(),
        "https://api.ralio.co"
    );
    assert!(validate_base_url("http://127.0.0.1:8080").is_ok());
    assert!(validate_base_url("http://127.1.2.3:8080").is_ok());
    assert!(validate_base_url("http://localhost:8080/").is_ok());
    assert!(validate_base_url("http://[::1]:8080").is_ok());
    for bad in [
        "http://api.ralio.co",
        "http://10.0.0.5",
        "http://localhost.evil.com",
        "http://[::2]",
    ] {
        let e = validate_base_url(bad).unwrap_err();
        assert!(matches!(e, ConfigError::InsecureUrl { .. }), "{bad}: {e}");
    }
    assert!(matches!(
        validate_base_url("ftp://x"),
        Err(ConfigError::UnsupportedScheme { .. })
    ));
    assert!(matches!(
        validate_base_url("not a url"),
        Err(ConfigError::InvalidUrl { .. })
    ));
    assert!(matches!(
        validate_base_url("https://x/?a=1"),
        Err(ConfigError::UrlNotAnOrigin { .. })
    ));
}

#[tokio::test]
async fn the_user_agent_names_the_sdk_and_the_suffix() {
    let (client, mock) = start(one_agent()).await;
    let client = RalioClient::builder()
        .base_url(client.base_url())
        .user_agent_suffix("payroll-bot/2.1")
        .build_unauthenticated()
        .unwrap();
    client.agents().list().await.unwrap();
    let headers = mock.headers.lock().unwrap();
    let ua = headers[0].get("user-agent").unwrap().to_str().unwrap();
    assert_eq!(
        ua,
        format!("ralio-rust/{} payroll-bot/2.1", env!("CARGO_PKG_VERSION"))
    );
    let bad = RalioClient::builder()
        .user_agent_suffix("bad\nvalue")
        .build_unauthenticated();
    assert!(matches!(
        bad,
        Err(Error::Config(ConfigError::InvalidHeader { .. }))
    ));
}

#[tokio::test]
async fn a_silent_stream_hits_the_read_idle_timeout_over_http() {
    // A real HTTP stream that sends one event, then nothing.
    async fn silent(State(_m): State<Arc<Mock>>) -> Response {
        let first = futures::stream::once(async {
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                b"event: text_delta\ndata: {\"text\":\"a\"}\n\n",
            ))
        });
        let body = axum::body::Body::from_stream(first.chain(futures::stream::pending()));
        ([(http::header::CONTENT_TYPE, "text/event-stream")], body).into_response()
    }
    let mock = Arc::new(one_agent());
    let app = Router::new()
        .route("/api/chat/stream", post(silent))
        .with_state(Arc::clone(&mock));
    let mut stream = stream_after_first_delta(app, Some(Duration::from_millis(200))).await;
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::Stream(crate::StreamError::IdleTimeout { .. })),
        "{err:?}"
    );
    assert!(stream.next().await.is_none());
}

/// Serves `app` on a loopback port; its address.
async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Runs the ignored test `test` of this binary alone in a child process with `env` set, and
/// checks it passed and printed `marker` (so a child that skipped its body fails the parent).
async fn run_child(test: &str, env: &str, marker: &str) {
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(env, "1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(marker), "{stdout}");
}

/// Runs in a child process with a global subscriber: thread-local subscribers can miss
/// events while other tests of this binary register theirs in parallel.
#[tokio::test]
async fn each_call_gets_a_span_with_operation_status_attempt_and_latency() {
    run_child("client::tests::span_child", "RALIO_SPAN_CHILD", "SPAN OK").await;
}

#[tokio::test]
#[ignore = "run by each_call_gets_a_span_with_operation_status_attempt_and_latency"]
async fn span_child() {
    if std::env::var("RALIO_SPAN_CHILD").is_err() {
        return;
    }
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let m = one_agent_with(|m| m.transactions = 2);
    m.answer("transactions", vec![(503, "")]);
    let (client, _mock) = start(m).await;
    client.transactions().list().await.unwrap();
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = out
        .lines()
        .find(|l| l.contains("ralio.request") && l.contains("close"))
        .unwrap_or_default();
    assert!(line.contains("operation=\"list_transactions\""), "{out}");
    assert!(line.contains("method=\"GET\""), "{out}");
    assert!(line.contains("path=\"/api/transactions\""), "{out}");
    assert!(line.contains("status=200"), "{out}");
    assert!(line.contains("attempt=2"), "{out}");
    assert!(line.contains("latency_ms="), "{out}");
    println!("SPAN OK");
}

/// Runs in a child process with a global subscriber (see the span test above).
#[cfg(feature = "opentelemetry")]
#[tokio::test]
async fn traceparent_comes_from_the_current_span() {
    run_child(
        "client::tests::traceparent_child",
        "RALIO_OTEL_CHILD",
        "TRACEPARENT OK",
    )
    .await;
}

#[cfg(feature = "opentelemetry")]
#[tokio::test]
#[ignore = "run by traceparent_comes_from_the_current_span in a child process"]
async fn traceparent_child() {
    if std::env::var("RALIO_OTEL_CHILD").is_err() {
        return;
    }
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing::Instrument as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer());
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let (client, mock) = start(one_agent()).await;
    let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let parent = SpanContext::new(
        trace_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let span = tracing::info_span!("caller");
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    client.agents().list().instrument(span).await.unwrap();
    // Outside any trace: no header.
    client.agents().list().await.unwrap();
    let headers = mock.headers.lock().unwrap();
    let tp = headers[0]
        .get("traceparent")
        .expect("traceparent sent")
        .to_str()
        .unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(tp.ends_with("-01"), "{tp}");
    assert_eq!(tp.len(), 55);
    assert!(headers[1].get("traceparent").is_none());
    println!("TRACEPARENT OK");
}

#[tokio::test]
async fn an_unreadable_answer_is_a_decode_error() {
    let (client, mock) = start(one_agent()).await;
    mock.answer("transactions", vec![(200, "{\"transactions\": 12}")]);
    let err = client.transactions().list().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode {
                operation: "transactions.list",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    // A float amount is refused rather than rounded.
    mock.answer(
        "transactions",
        vec![(
            200,
            r#"{"transactions":[{"id":"t","amount":"12,50","currency":"GBP","status":"completed"}],"total":1,"page":1,"per_page":50}"#,
        )],
    );
    let err = client.transactions().list().await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(
        std::error::Error::source(&err)
            .unwrap()
            .to_string()
            .contains("12,50")
    );
}

#[test]
fn public_types_are_thread_safe() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<Error>();
    send_sync::<RalioClient>();
    send::<ChatStream>();
    send_sync::<crate::Page<Transaction>>();
}

#[tokio::test]
async fn dropping_a_chat_stream_closes_the_connection() {
    use std::sync::atomic::{AtomicBool, Ordering};
    struct OnDrop(Arc<AtomicBool>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let closed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&closed);
    // The server's body stream sends one event and then waits forever; it is dropped
    // (and sets the flag) only when the client goes away.
    let app = Router::new().route(
        "/api/chat/stream",
        post(move || {
            let guard = OnDrop(Arc::clone(&flag));
            async move {
                let first = futures::stream::once(async {
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                        b"event: text_delta\ndata: {\"text\":\"a\"}\n\n",
                    ))
                });
                let rest = futures::stream::pending().map(
                    move |x: Result<bytes::Bytes, std::io::Error>| {
                        let _keep = &guard;
                        x
                    },
                );
                let body = axum::body::Body::from_stream(first.chain(rest));
                ([(http::header::CONTENT_TYPE, "text/event-stream")], body).into_response()
            }
        }),
    );
    let stream = stream_after_first_delta(app, None).await;
    assert!(
        !closed.load(Ordering::SeqCst),
        "the server is still streaming"
    );
    drop(stream);
    // Bounded wait for the server to notice the closed connection.
    for _ in 0..500 {
        if closed.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        closed.load(Ordering::SeqCst),
        "dropping the stream closed the connection"
    );
}

#[tokio::test]
async fn the_builder_debug_shows_its_settings_and_no_secret() {
    use crate::store::{CredentialStore as _, MemoryStore, RefreshTokenRecord};
    use secrecy::ExposeSecret as _;
    let key = crate::keys::PrivateKey::generate().unwrap();
    let builder = RalioClient::builder()
        .credentials("cb_debug", key.clone())
        .user_agent_suffix("payroll-bot/2.1")
        .middleware(Arc::new(crate::RetryMiddleware::default()));
    let shown = format!("{builder:?}");
    for part in [
        "payroll-bot/2.1",
        "1 middleware",
        "cb_debug",
        key.thumbprint().as_str(),
    ] {
        assert!(shown.contains(part), "{part} missing from {shown}");
    }
    let pem = key.to_pkcs8_pem();
    let pem_body = pem.expose_secret().lines().nth(1).unwrap();
    let jwk: serde_json::Value =
        serde_json::from_str(key.to_private_jwk().expose_secret()).unwrap();
    assert!(!shown.contains(pem_body), "{shown}");
    assert!(!shown.contains(jwk["d"].as_str().unwrap()), "{shown}");

    let store = MemoryStore::new();
    let token = secrecy::SecretString::from("rt-builder-secret");
    store
        .save_refresh_token(None, &RefreshTokenRecord::new(token, None))
        .await
        .unwrap();
    let shown = format!("{:?}", RalioClient::builder().store(Arc::new(store)));
    assert!(shown.contains("MemoryStore"), "{shown}");
    assert!(!shown.contains("rt-builder-secret"), "{shown}");
}
