//! The security pass (SECURITY.md): redirects never carry credentials to another origin,
//! `http://` is refused off loopback, buffered bodies are size-capped, stores keep secrets out
//! of logs, errors and `Debug`, and files get private modes under any umask.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ralio::auth::{AuthError, HtuError, TokenManager, TokenManagerConfig};
use ralio::keys::PrivateKey;
use ralio::register::{RegisterOptions, RegistrationError, register};
use ralio::store::{
    CredentialStore, EnvStore, FileStore, Identity, MemoryStore, RefreshTokenRecord,
};
use ralio::{ConfigError, Error, RalioClient, RetryPolicy};
use ralio_sandbox::{Sandbox, TicketSpec};
use secrecy::{ExposeSecret as _, SecretString};

/// One request as a server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A server on its own port that records every request and answers `200 {}`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

async fn record(State(rec): State<Recorder>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    rec.0.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body,
    });
    (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response()
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn recorder() -> (Recorder, String) {
    let rec = Recorder::default();
    let url = serve(Router::new().fallback(record).with_state(rec.clone())).await;
    (rec, url)
}

const FAKE_ACCESS_TOKEN: &str = "rat_security_test_access_token_0123456789";

/// A server that answers `307` (same method and body) to `target` + the same path, except
/// the token endpoint when `serve_token` is set (then it issues a fake DPoP token, so the
/// redirected request is an authenticated one).
async fn redirector(target: String, serve_token: bool) -> String {
    let app = Router::new().fallback(move |req: Request| {
        let target = target.clone();
        async move {
            if serve_token && req.uri().path() == "/oauth/token" {
                return axum::Json(serde_json::json!({
                    "access_token": FAKE_ACCESS_TOKEN,
                    "token_type": "DPoP",
                    "expires_in": 300,
                    "scope": "agents:execute transactions:read",
                }))
                .into_response();
            }
            let location = format!("{target}{}", req.uri().path());
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response()
        }
    });
    serve(app).await
}

fn assert_nothing_reached(rec: &Recorder, what: &str) {
    let seen = rec.seen();
    assert!(
        seen.is_empty(),
        "{what}: the redirect was followed to another origin: {:?}",
        seen.iter()
            .map(|s| format!(
                "{} {} auth={:?} dpop={} body={}B",
                s.method,
                s.path,
                s.headers.get(header::AUTHORIZATION).is_some(),
                s.headers.get("dpop").is_some(),
                s.body.len()
            ))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn resource_redirects_to_another_origin_are_not_followed() {
    let (rec, target) = recorder().await;
    let origin = redirector(target, true).await;
    let client = RalioClient::builder()
        .base_url(&origin)
        .credentials("cb_security", PrivateKey::generate().unwrap())
        .retry_policy(RetryPolicy::disabled())
        .build()
        .await
        .unwrap();

    let list = client.transactions().list().await.unwrap_err();
    let chat = client
        .chat()
        .send("Pay £1 to Bob")
        .agent_id("agt_x")
        .await
        .unwrap_err();
    let stream = client
        .chat()
        .stream("Pay £1 to Bob")
        .agent_id("agt_x")
        .await
        .map(|_| ())
        .unwrap_err();
    for e in [&list, &chat, &stream] {
        // The caller sees the redirect as an API error, with its status; no secret in it.
        assert_eq!(
            e.status(),
            Some(http::StatusCode::TEMPORARY_REDIRECT),
            "{e:?}"
        );
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(FAKE_ACCESS_TOKEN), "{shown}");
    }
    assert_nothing_reached(&rec, "resource calls");
}

#[tokio::test]
async fn token_endpoint_redirects_are_not_followed() {
    let (rec, target) = recorder().await;
    let origin = redirector(target, false).await;
    let key = PrivateKey::generate().unwrap();
    let config = TokenManagerConfig::ralio(&origin, "cb_security").unwrap();
    // The manager's own HTTP client (no `http_client` given).
    let tokens = TokenManager::builder(config, Arc::new(key.clone()))
        .build()
        .unwrap();
    let e = tokens.access_token().await.unwrap_err();
    assert!(
        matches!(e, AuthError::TokenRefused { status, .. } if status == reqwest::StatusCode::TEMPORARY_REDIRECT),
        "{e:?}"
    );
    assert_nothing_reached(&rec, "the token endpoint");

    // Through the client: the refusal surfaces as a typed error, nothing reaches the target.
    let client = RalioClient::builder()
        .base_url(&origin)
        .credentials("cb_security", key)
        .retry_policy(RetryPolicy::disabled())
        .build()
        .await
        .unwrap();
    let e = client.agents().list().await.unwrap_err();
    assert!(matches!(e, Error::Auth(_) | Error::Api(_)), "{e:?}");
    assert_nothing_reached(&rec, "the token endpoint via the client");
}

#[tokio::test]
async fn registration_redirects_are_not_followed_and_the_ticket_stays_home() {
    let (rec, target) = recorder().await;
    let origin = redirector(target, false).await;
    let store = MemoryStore::new();
    let ticket = "ralio-reg-security-test-ticket-0123456789";
    let e = register(
        &store,
        RegisterOptions::new().ticket(ticket).base_url(&origin),
    )
    .await
    .unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(ticket), "{shown}");
    assert_nothing_reached(&rec, "registration");
    assert!(store.load_identity().await.unwrap().is_none());
}

const INSECURE: [&str; 6] = [
    "http://api.ralio.co",
    "http://10.0.0.1:8080",
    "http://192.168.1.10",
    "http://localhost.evil.example",
    "http://127.0.0.1.nip.io",
    "http://[2001:db8::1]",
];
const LOOPBACK: [&str; 4] = [
    "http://127.0.0.1:8080",
    "http://127.8.9.10",
    "http://localhost:1234",
    "http://[::1]:9",
];

#[tokio::test]
async fn http_is_refused_off_loopback_everywhere_a_secret_would_travel() {
    for url in INSECURE {
        assert!(
            matches!(
                RalioClient::builder().base_url(url).resolved_base_url(),
                Err(Error::Config(ConfigError::InsecureUrl { .. }))
            ),
            "{url}"
        );
        let e = RalioClient::builder()
            .base_url(url)
            .credentials("cb_security", PrivateKey::generate().unwrap())
            .build()
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::Config(ConfigError::InsecureUrl { .. })),
            "{url}: {e:?}"
        );
        assert!(e.to_string().contains("https://"), "{e}");

        let e = register(
            &MemoryStore::new(),
            RegisterOptions::new().ticket("ralio-reg-x").base_url(url),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                e,
                RegistrationError::InvalidUrl(ConfigError::InsecureUrl { .. })
            ),
            "{url}: {e:?}"
        );

        let e = TokenManagerConfig::ralio(url, "cb_security").unwrap_err();
        assert!(
            matches!(
                e,
                AuthError::InvalidUrl {
                    source: HtuError::Insecure,
                    ..
                }
            ),
            "{url}: {e:?}"
        );
    }
    for url in LOOPBACK {
        assert_eq!(
            RalioClient::builder()
                .base_url(url)
                .resolved_base_url()
                .ok()
                .as_deref(),
            Some(url),
            "{url}"
        );
        assert!(TokenManagerConfig::ralio(url, "cb").is_ok(), "{url}");
    }
    assert!(TokenManagerConfig::ralio("https://auth.example", "cb").is_ok());
}

/// A server whose every answer has the given status and an endless body; it counts the bytes
/// the client pulled.
async fn endless(status: StatusCode) -> (String, Arc<AtomicU64>) {
    let pulled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&pulled);
    let app = Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            let body = futures::stream::repeat_with(move || {
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Ok::<_, std::io::Error>(chunk.clone())
            });
            let mut res = Response::new(Body::from_stream(body));
            *res.status_mut() = status;
            res.headers_mut()
                .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            res
        }
    });
    (serve(app).await, pulled)
}

/// Far above every cap (64 KiB for Ralio answers) plus socket buffers, far below "unbounded".
const PULL_BOUND: u64 = 32 << 20;

async fn bounded<T: std::fmt::Debug>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    // A hang guard, not a speed check: an uncapped read of an endless body never ends.
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: an endless body was read without a cap"))
}

#[tokio::test]
async fn endless_bodies_are_cut_where_the_sdk_buffers_them() {
    // Token endpoint: a 200 and a 400 with endless bodies.
    for status in [StatusCode::OK, StatusCode::BAD_REQUEST] {
        let (url, pulled) = endless(status).await;
        let tokens = TokenManager::builder(
            TokenManagerConfig::ralio(&url, "cb_cap").unwrap(),
            Arc::new(PrivateKey::generate().unwrap()),
        )
        .build()
        .unwrap();
        let e = bounded("token endpoint", tokens.access_token())
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                AuthError::TokenResponse { .. } | AuthError::TokenRefused { .. }
            ),
            "{e:?}"
        );
        assert!(
            pulled.load(Ordering::Relaxed) < PULL_BOUND,
            "token {status}"
        );
    }

    // Registration: a 201 and a 409 with endless bodies.
    for status in [StatusCode::CREATED, StatusCode::CONFLICT] {
        let (url, pulled) = endless(status).await;
        let e = bounded(
            "registration",
            register(
                &MemoryStore::new(),
                RegisterOptions::new()
                    .ticket("ralio-reg-cap")
                    .base_url(&url),
            ),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                e,
                RegistrationError::UnexpectedResponse { .. } | RegistrationError::Refused { .. }
            ),
            "{e:?}"
        );
        assert!(
            pulled.load(Ordering::Relaxed) < PULL_BOUND,
            "registration {status}"
        );
    }

    // A resource error body (the token comes from a well-behaved endpoint first).
    let (err_url, pulled) = endless(StatusCode::INTERNAL_SERVER_ERROR).await;
    let front = redirector_free_token_proxy(err_url).await;
    let client = RalioClient::builder()
        .base_url(&front)
        .credentials("cb_cap", PrivateKey::generate().unwrap())
        .retry_policy(RetryPolicy::disabled())
        .build()
        .await
        .unwrap();
    let e = bounded("resource error", client.agents().list())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    assert!(pulled.load(Ordering::Relaxed) < PULL_BOUND);

    // A resource success body: the generated code buffers it whole, so it is capped too.
    let (ok_url, pulled) = endless(StatusCode::OK).await;
    let front = redirector_free_token_proxy(ok_url).await;
    let client = RalioClient::builder()
        .base_url(&front)
        .credentials("cb_cap", PrivateKey::generate().unwrap())
        .retry_policy(RetryPolicy::disabled())
        .build()
        .await
        .unwrap();
    let e = bounded("resource success", client.agents().list())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Transport { .. } | Error::Decode { .. }),
        "{e:?}"
    );
    assert!(pulled.load(Ordering::Relaxed) < PULL_BOUND);
}

/// Serves the token endpoint itself and proxies everything else to `backend` by streaming
/// the backend's answer through (so an endless backend body stays endless).
async fn redirector_free_token_proxy(backend: String) -> String {
    let http = reqwest::Client::new();
    let app = Router::new().fallback(move |req: Request| {
        let (backend, http) = (backend.clone(), http.clone());
        async move {
            if req.uri().path() == "/oauth/token" {
                return axum::Json(serde_json::json!({
                    "access_token": FAKE_ACCESS_TOKEN,
                    "token_type": "DPoP",
                    "expires_in": 300,
                }))
                .into_response();
            }
            let upstream = http
                .get(format!("{backend}{}", req.uri().path()))
                .send()
                .await
                .unwrap();
            let status = upstream.status();
            let mut res = Response::new(Body::from_stream(upstream.bytes_stream()));
            *res.status_mut() = status;
            res.headers_mut()
                .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            res
        }
    });
    serve(app).await
}

/// The secret-looking pieces of a key: the PEM body lines and the JWK's `d`.
fn key_secrets(key: &PrivateKey) -> Vec<String> {
    let mut out: Vec<String> = key
        .to_pkcs8_pem()
        .expose_secret()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    let jwk: serde_json::Value =
        serde_json::from_str(key.to_private_jwk().expose_secret()).unwrap();
    out.push(jwk["d"].as_str().unwrap().to_owned());
    out
}

fn assert_free_of(text: &str, secrets: &[String], what: &str) {
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "{what} shows a secret ({s}):\n{text}"
        );
    }
}

/// Runs the body below in a child process with a global subscriber (see `capture`).
#[tokio::test]
async fn stores_keep_secrets_out_of_traces_errors_and_debug() {
    crate::capture::run_child("security::stores_secrets_child", "STORES-SECRETS OK").await;
}

#[tokio::test]
#[ignore = "run by stores_keep_secrets_out_of_traces_errors_and_debug in a child process"]
async fn stores_secrets_child() {
    if !crate::capture::in_child() {
        return;
    }
    let capture = crate::capture::Capture::install_global();

    let key = PrivateKey::generate().unwrap();
    let refresh = "rrt_security_refresh_token_0123456789";
    let mut secrets = key_secrets(&key);
    secrets.push(refresh.to_owned());
    let mut shown = String::new();

    // File store: save, load, rotate, then damage the files and read the errors.
    let dir = tempfile::tempdir().unwrap();
    let file = FileStore::new(dir.path().join("cfg"))
        .with_refresh_token_slot("sec")
        .unwrap();
    file.save_identity(&Identity::new("cb_sec", key.clone()))
        .await
        .unwrap();
    file.save_refresh_token(
        None,
        &RefreshTokenRecord::new(SecretString::from(refresh.to_owned()), None),
    )
    .await
    .unwrap();
    let identity = file.load_identity().await.unwrap().unwrap();
    let loaded = file
        .load_refresh_token()
        .await
        .unwrap()
        .unwrap()
        .refresh_token;
    assert_eq!(loaded.expose_secret(), refresh);
    let stale = file
        .save_refresh_token(
            Some(&SecretString::from("rrt_not_the_current_one".to_owned())),
            &RefreshTokenRecord::new(SecretString::from("rrt_next".to_owned()), None),
        )
        .await;
    if let Err(e) = stale {
        shown.push_str(&format!("{e} {e:?}\n"));
    }
    shown.push_str(&format!("{file:?} {identity:?} {loaded:?}\n"));
    // Damaged credentials and key files: the errors name the file, never its content.
    let creds = file.credentials_path();
    let original = std::fs::read_to_string(&creds).unwrap();
    std::fs::write(&creds, format!("{original} trailing {refresh}")).unwrap();
    let e = file.load_identity().await.unwrap_err();
    shown.push_str(&format!("{e} {e:?}\n"));
    std::fs::write(&creds, original).unwrap();
    let key_path = file.key_path_for(key.thumbprint().as_str());
    let pem = key.to_pkcs8_pem();
    let damaged: String = pem.expose_secret().replacen("M", "#", 1);
    std::fs::write(&key_path, damaged).unwrap();
    let e = file.load_identity().await.unwrap_err();
    shown.push_str(&format!("{e} {e:?}\n"));

    // Env store: a valid JWK, then a JWK whose `d` does not match.
    let jwk = key.to_private_jwk();
    let env = EnvStore::from_vars([
        ("RALIO_CLIENT_ID", "cb_env"),
        ("RALIO_PRIVATE_JWK", jwk.expose_secret()),
    ]);
    let identity = env.load_identity().await.unwrap().unwrap();
    shown.push_str(&format!("{env:?} {identity:?}\n"));
    let other = PrivateKey::generate().unwrap();
    let mut bad: serde_json::Value = serde_json::from_str(jwk.expose_secret()).unwrap();
    let other_jwk: serde_json::Value =
        serde_json::from_str(other.to_private_jwk().expose_secret()).unwrap();
    bad["d"] = other_jwk["d"].clone();
    secrets.extend(key_secrets(&other));
    let env = EnvStore::from_vars([
        ("RALIO_CLIENT_ID", "cb_env".to_owned()),
        ("RALIO_PRIVATE_JWK", bad.to_string()),
    ]);
    let e = env.load_identity().await.unwrap_err();
    shown.push_str(&format!("{env:?} {e} {e:?}\n"));

    // Memory store.
    let memory = MemoryStore::with_identity(Identity::new("cb_mem", key.clone()));
    memory
        .save_refresh_token(
            None,
            &RefreshTokenRecord::new(SecretString::from(refresh.to_owned()), None),
        )
        .await
        .unwrap();
    shown.push_str(&format!("{memory:?}\n"));

    let trace = capture.text();
    // The file store logged what it did (so the scan below has something to scan).
    for event in [
        "saved the identity",
        "loaded the identity",
        "saved the refresh token",
    ] {
        assert!(trace.contains(event), "no {event:?} in the trace:\n{trace}");
    }
    assert_free_of(&shown, &secrets, "a store's Debug or error");
    assert_free_of(&trace, &secrets, "the TRACE log of the stores");
    println!("STORES-SECRETS OK");
}

const UMASK_CHILD_VAR: &str = "RALIO_TEST_UMASK_CHILD_DIR";

/// Writes every kind of file the SDK creates (a registration into a file store, a rotated
/// refresh token, a staged key). Does nothing unless started by
/// `files_get_private_modes_under_umask_000`.
#[tokio::test]
#[ignore = "run by files_get_private_modes_under_umask_000 in a child process"]
async fn umask_child_process() {
    let Ok(dir) = std::env::var(UMASK_CHILD_VAR) else {
        return;
    };
    let sandbox = Sandbox::builder().start().await.unwrap();
    let store = Arc::new(
        FileStore::new(Path::new(&dir).join("cfg"))
            .with_refresh_token_slot("worker-1")
            .unwrap(),
    );
    crate::support::register_with_ticket(&sandbox, &*store, TicketSpec::default()).await;
    let client = RalioClient::builder()
        .base_url(sandbox.base_url())
        .store(store.clone())
        .build()
        .await
        .unwrap();
    client.agents().list().await.unwrap();
    store
        .save_refresh_token(
            None,
            &RefreshTokenRecord::new(SecretString::from("rrt_umask".to_owned()), None),
        )
        .await
        .unwrap();
    // A second store in a fresh directory, written without registration.
    let plain = FileStore::new(Path::new(&dir).join("plain/nested"));
    plain
        .save_identity(&Identity::new("cb_umask", PrivateKey::generate().unwrap()))
        .await
        .unwrap();
}

fn modes_under(root: &Path, out: &mut BTreeMap<String, (bool, u32)>) {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let mode = meta.permissions().mode() & 0o777;
        out.insert(entry.path().display().to_string(), (meta.is_dir(), mode));
        if meta.is_dir() {
            modes_under(&entry.path(), out);
        }
    }
}

#[test]
fn files_get_private_modes_under_umask_000() {
    for umask in ["000", "022", "002"] {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(&exe)
            .args([
                "--exact",
                "security::umask_child_process",
                "--ignored",
                "--quiet",
            ])
            .env(UMASK_CHILD_VAR, dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "the umask {umask} child failed");
        let mut modes = BTreeMap::new();
        modes_under(dir.path(), &mut modes);
        let cfg = dir.path().join("cfg");
        for must in [
            cfg.join("credentials.json"),
            cfg.join("keys"),
            cfg.join("refresh-tokens/worker-1.json"),
        ] {
            assert!(
                modes.contains_key(&must.display().to_string()),
                "umask {umask}: {} was not written: {modes:?}",
                must.display()
            );
        }
        assert!(modes.len() >= 8, "umask {umask}: {modes:?}");
        for (path, (is_dir, mode)) in &modes {
            let want = if *is_dir { 0o700 } else { 0o600 };
            assert_eq!(
                *mode, want,
                "umask {umask}: {path} has mode {mode:o}, not {want:o}"
            );
        }
    }
}
