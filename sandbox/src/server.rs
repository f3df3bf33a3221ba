//! Router assembly, cross-cutting middleware (Date, counters, faults, nonces, logging) and the
//! response helpers every handler shares.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng;
use serde_json::{Value, json};

use crate::state::Shared;
use crate::{
    Config, NonceMode, Sandbox, SandboxError, admin, console, oauth, registration, resources,
};

const OPENAPI: &str = include_str!("../openapi/ralio.json");

pub(crate) type St = State<Arc<Shared>>;

pub(crate) async fn start(config: Config) -> Result<Sandbox, SandboxError> {
    if let Some(reason) = config.answers_env_error {
        return Err(SandboxError::InvalidConfig {
            setting: crate::ANSWERS_ENV,
            reason,
        });
    }
    if config.rate_limit == Some(0) {
        return Err(SandboxError::InvalidConfig {
            setting: "rate_limit",
            reason: "must be at least 1 request per second, or None",
        });
    }
    if config.access_token_lifetime.as_secs() == 0 {
        return Err(SandboxError::InvalidConfig {
            setting: "access_token_lifetime",
            reason: "must be at least one second",
        });
    }
    let public_url = match config.public_url.as_deref() {
        Some(url) => Some(public_origin(url)?),
        None if config.addr.ip().is_unspecified() => {
            return Err(SandboxError::InvalidConfig {
                setting: "public_url",
                reason: "is required when listening on an unspecified address (0.0.0.0 or ::): \
                         give the URL clients use, which DPoP htu and assertion aud must name",
            });
        }
        None => None,
    };
    let addr = config.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SandboxError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| SandboxError::Bind { addr, source })?;
    let base_url = public_url.unwrap_or_else(|| format!("http://{local}"));
    let admin_on = config.admin_api;
    let state = Arc::new(Shared::new(config, base_url.clone()));

    let api = Router::new()
        .route(
            "/api/credential-bindings/registrations",
            post(registration::register),
        )
        .route(
            "/api/credential-bindings/registrations/{poll_token}",
            get(registration::poll),
        )
        .route("/oauth/token", post(oauth::token))
        .route("/api/agents", get(resources::agents))
        .route("/api/chat", post(resources::chat))
        .route("/api/chat/stream", post(resources::chat_stream))
        .route("/api/transactions", get(resources::transactions))
        .route("/api/payment-intents", get(resources::payment_intents))
        .route_layer(middleware::from_fn_with_state(state.clone(), api_layer));
    let mut app = Router::new().merge(api).route(
        "/openapi.json",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
    );
    if admin_on {
        let hosts = Arc::new(own_hosts(local, state.base_url.as_str()));
        app = app.merge(
            admin::router(state.clone())
                .merge(console::router())
                .route_layer(middleware::from_fn_with_state(
                    Arc::<str>::from(state.base_url.as_str()),
                    no_cross_origin_writes,
                ))
                .route_layer(middleware::from_fn_with_state(hosts, own_host_only)),
        );
    }
    let app = app
        .fallback(|| async { detail(StatusCode::NOT_FOUND, "Not Found") })
        .layer(middleware::from_fn_with_state(state.clone(), date_layer))
        .with_state(state.clone());

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "ralio-sandbox stopped");
        }
    });
    Ok(Sandbox {
        base_url,
        local_addr: local,
        state,
        shutdown: Some(tx),
    })
}

/// The `Host` values that name this sandbox: its listening address (and `localhost` when that
/// is loopback) and its public URL's host, each with its port.
fn own_hosts(local: std::net::SocketAddr, base_url: &str) -> Vec<String> {
    let port = local.port();
    let mut hosts = vec![local.to_string()];
    if local.ip().is_loopback() {
        hosts.push(format!("localhost:{port}"));
    }
    if let Ok(u) = url::Url::parse(base_url)
        && let Some(host) = u.host_str()
    {
        match u.port() {
            Some(p) => hosts.push(format!("{host}:{p}")),
            // The default port may be named or left out.
            None => {
                hosts.push(host.to_owned());
                if let Some(p) = u.port_or_known_default() {
                    hosts.push(format!("{host}:{p}"));
                }
            }
        }
    }
    hosts.iter_mut().for_each(|h| h.make_ascii_lowercase());
    hosts
}

/// Admin routes answer only requests addressed to this sandbox by name. A web page can reach a
/// loopback port through DNS rebinding (its own host name resolved to 127.0.0.1), but its
/// requests then carry that host name in `Host`: they are refused, so a page cannot mint
/// tickets or approve registrations and payments.
async fn own_host_only(
    State(hosts): State<Arc<Vec<String>>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .map(|h| h.to_ascii_lowercase());
    match host {
        Some(h) if hosts.contains(&h) => next.run(req).await,
        _ => detail(
            StatusCode::FORBIDDEN,
            "The admin API answers only requests whose Host is this sandbox's own address or \
             public URL (a guard against DNS rebinding from a web page)",
        ),
    }
}

/// A web page in the owner's browser can send a request to the sandbox's port with no help
/// from DNS: a form post or a `no-cors` fetch to `http://127.0.0.1:PORT/sandbox/…` carries this
/// sandbox's own `Host`. Browsers say where such a request comes from, so admin writes (any
/// method but GET, HEAD and OPTIONS) are refused when `Sec-Fetch-Site` says another site or
/// origin, when `Origin` names another origin than the `Host` the request was sent to, or when the
/// body is one of the types a page may send cross-origin without asking (form data, plain text):
/// the admin API reads JSON only. A request with none of these headers (curl, a test, the SDK)
/// is no browser's, and passes. A cross-origin request with a JSON body needs a CORS preflight,
/// which the sandbox never grants. The same scheme as Go's `http.CrossOriginProtection`.
async fn no_cross_origin_writes(
    State(base_url): State<Arc<str>>,
    req: Request,
    next: Next,
) -> Response {
    use axum::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let refuse = |why: &str| {
        detail(
            StatusCode::FORBIDDEN,
            format!(
                "The admin API refuses writes from web pages of other origins ({why}): use the \
                 console at {} on this sandbox's own address, or send the request from a program",
                console::PATH
            ),
        )
    };
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return refuse("Sec-Fetch-Site is not same-origin");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !same_origin(origin.to_str().ok(), host, &base_url) {
            return refuse("Origin is not this sandbox");
        }
    }
    let simple_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start().to_ascii_lowercase())
        .is_some_and(|v| {
            [
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "text/plain",
            ]
            .iter()
            .any(|t| v.starts_with(t))
        });
    if simple_body {
        return detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The admin API reads JSON bodies only: send Content-Type: application/json (or no body)",
        );
    }
    next.run(req).await
}

/// Whether a browser's `Origin` is this sandbox: `http://` and the `Host` the request was sent
/// to (the console's own requests), or the public URL's origin (behind a proxy).
fn same_origin(origin: Option<&str>, host: Option<&str>, base_url: &str) -> bool {
    let Some(origin) = origin else {
        return false;
    };
    origin.eq_ignore_ascii_case(base_url)
        || host.is_some_and(|h| {
            origin
                .strip_prefix("http://")
                .is_some_and(|o| o.eq_ignore_ascii_case(h))
        })
}

/// Every response carries `Date` from the server's (possibly offset) clock: the SDK measures clock
/// skew with it.
async fn date_layer(State(st): St, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let now: SystemTime = st.now().into();
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
        res.headers_mut().insert(header::DATE, v);
    }
    res
}

/// Ralio API routes only: counters, the request log, latency and error faults, fresh nonces.
async fn api_layer(State(st): St, req: Request, next: Next) -> Response {
    let route = match req.extensions().get::<MatchedPath>() {
        Some(p) => format!("{} {}", req.method(), p.as_str()),
        None => format!("{} {}", req.method(), req.uri().path()),
    };
    let started = Instant::now();
    let (latency, injected) = {
        let mut inner = st.lock();
        *inner.counters.requests.entry(route.clone()).or_insert(0) += 1;
        if route.starts_with("POST /api/chat") {
            inner.counters.chat_posts += 1;
        }
        let status = match inner.faults.error_status {
            0 => StatusCode::INTERNAL_SERVER_ERROR,
            s => StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        };
        let mut injected = None;
        if let Some(n) = inner.faults.fail_next.get_mut(&route).filter(|n| **n > 0) {
            *n -= 1;
            injected = Some(status);
        }
        let rate = inner.faults.error_rate;
        if injected.is_none() && rate > 0.0 && inner.rng.random::<f64>() < rate {
            injected = Some(status);
        }
        (inner.faults.latency, injected)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
        let served = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        let mut inner = st.lock();
        inner.counters.injected_latency_ms =
            inner.counters.injected_latency_ms.saturating_add(served);
    }
    let mut res = match injected {
        Some(status) => detail(
            status,
            "Injected fault (ralio-sandbox): the server failed this request on purpose",
        ),
        None => next.run(req).await,
    };
    if st.config.nonce_mode != NonceMode::Off && !res.headers().contains_key("dpop-nonce") {
        let nonce = st.lock().current_nonce();
        if let Ok(v) = HeaderValue::from_str(&nonce) {
            res.headers_mut().insert("dpop-nonce", v);
        }
    }
    // Route pattern, not the raw path: a poll token in the path is a secret.
    // The DPoP error code helps whoever reads the log; it is not a secret.
    let challenge = res
        .extensions()
        .get::<crate::auth::ChallengeCode>()
        .map_or("", |c| c.0.as_str())
        .to_owned();
    tracing::info!(target: "ralio_sandbox", route = %route, status = res.status().as_u16(), challenge = %challenge, elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX), "request");
    res
}

/// A FastAPI-style `{"detail": "…"}` response.
pub(crate) fn detail(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "detail": msg.into() }))).into_response()
}

/// A FastAPI-style 422 with a list of validation errors.
pub(crate) fn validation_error(errors: Vec<Value>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({ "detail": errors })),
    )
        .into_response()
}

/// One FastAPI/pydantic validation error entry.
pub(crate) fn verr(kind: &str, loc: &[Value], msg: &str, input: Value) -> Value {
    json!({ "type": kind, "loc": loc, "msg": msg, "input": input })
}

/// Parses a JSON object body, or the 422 FastAPI gives for a malformed one.
pub(crate) fn json_body(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Map<String, Value>, Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(validation_error(vec![verr(
            "model_attributes_type",
            &["body".into()],
            "Input should be a valid dictionary or object to extract fields from (send Content-Type: application/json)",
            Value::String(String::from_utf8_lossy(body).chars().take(200).collect()),
        )]));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(validation_error(vec![verr(
            "model_attributes_type",
            &["body".into()],
            "Input should be a valid dictionary or object to extract fields from",
            other,
        )])),
        Err(e) => Err(validation_error(vec![json!({
            "type": "json_invalid",
            "loc": ["body", e.column()],
            "msg": "JSON decode error",
            "input": {},
            "ctx": { "error": e.to_string() },
        })])),
    }
}

/// A required string field of a JSON body, recording a validation error when absent or wrong.
pub(crate) fn req_str(
    m: &serde_json::Map<String, Value>,
    name: &str,
    errors: &mut Vec<Value>,
) -> Option<String> {
    match m.get(name) {
        None => {
            errors.push(verr(
                "missing",
                &["body".into(), name.into()],
                "Field required",
                Value::Object(m.clone()),
            ));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errors.push(verr(
                "string_type",
                &["body".into(), name.into()],
                "Input should be a valid string",
                other.clone(),
            ));
            None
        }
    }
}

/// An optional string field (absent or null is `None`).
pub(crate) fn opt_str(
    m: &serde_json::Map<String, Value>,
    name: &str,
    errors: &mut Vec<Value>,
) -> Option<String> {
    match m.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errors.push(verr(
                "string_type",
                &["body".into(), name.into()],
                "Input should be a valid string",
                other.clone(),
            ));
            None
        }
    }
}

/// The absolute URL a request for `path` must name in `htu` and `aud`: the sandbox's base URL,
/// never the request's `Host` header (a client must not choose what it is checked against).
pub(crate) fn expected_url(st: &Shared, path: &str) -> String {
    format!("{}{path}", st.base_url)
}

/// Checks a configured public URL and returns its origin without a trailing slash.
fn public_origin(url: &str) -> Result<String, SandboxError> {
    let bad = |reason| SandboxError::InvalidConfig {
        setting: "public_url",
        reason,
    };
    let u = url::Url::parse(url)
        .map_err(|_| bad("must be an absolute URL such as https://host:port"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(bad("must be an http:// or https:// URL with a host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("must not carry credentials (user:password@)"));
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(bad(
            "must be an origin (scheme, host, port) without path, query or fragment: the API's routes sit at its root",
        ));
    }
    Ok(u.origin().ascii_serialization())
}

/// An empty body with a status, for admin answers with nothing to say.
pub(crate) fn no_content() -> Response {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .unwrap_or_default()
}
