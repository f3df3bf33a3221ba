//! The AWS KMS signer against moto's KMS emulator (`.ci/run` starts it on loopback and points
//! the standard AWS settings at it; never a real account). Locally:
//!
//! ```text
//! pip install 'moto[server]==5.2.6'
//! moto_server -H 127.0.0.1 -p 5123 &
//! AWS_ENDPOINT_URL_KMS=http://127.0.0.1:5123 AWS_REGION=us-east-1 \
//!   AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
//!   cargo test -p ralio --all-features --test it -- aws_kms::
//! ```
//!
//! Without the emulator a test skips with that hint, except under `CI=true`, where it fails.
//! moto's `Sign` with `MessageType=DIGEST` hashes twice (an open moto bug): the signer signs
//! RAW, which moto does right.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kms::config::Credentials;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use ralio::RalioClient;
use ralio::keys::{AwsKmsSigner, KeyCreation, KeyReference, KmsKeyId};
use ralio::store::{CredentialStore, FileStore, Identity, open_key};
use ralio_sandbox::Sandbox;

use crate::hardware::{
    Verified, call_refresh_and_rotate, chain, hundred_concurrent_calls, sign_in_sequence,
    unavailable,
};
use crate::support::register_signer;

const HOW_TO_START: &str = "start moto (`pip install 'moto[server]==5.2.6'; moto_server -H 127.0.0.1 -p 5123`) and set AWS_ENDPOINT_URL_KMS=http://127.0.0.1:5123, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (see tests/it/aws_kms.rs)";

/// The emulator's URL, when the standard settings point at one on loopback.
async fn emulator() -> Option<String> {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_KMS") else {
        return unavailable("AWS KMS emulator", HOW_TO_START);
    };
    // Never a real account: these tests create keys and sign.
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "AWS_ENDPOINT_URL_KMS must be a loopback emulator, not {endpoint}"
    );
    match reqwest::get(format!("{endpoint}/moto-api/")).await {
        Ok(r) if r.status().is_success() => Some(endpoint),
        Ok(r) => unavailable(
            &format!("moto at {endpoint} ({})", r.status()),
            HOW_TO_START,
        ),
        Err(e) => unavailable(&format!("moto at {endpoint} ({e})"), HOW_TO_START),
    }
}

/// A KMS client on `endpoint` with the emulator's fake credentials.
async fn client(endpoint: &str) -> aws_sdk_kms::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await;
    aws_sdk_kms::Client::new(&config)
}

fn unique_alias(what: &str) -> String {
    format!("alias/ralio-{what}-{:016x}", rand::random::<u64>())
}

#[tokio::test]
async fn aws_kms_key_created_at_registration_mints_calls_refreshes_and_rotates() {
    let Some(_) = emulator().await else { return };
    let sb = Sandbox::builder().start().await.unwrap();
    // The standard chain (AWS_* settings), as an application would; the alias names no key
    // yet, so one is created.
    let alias = unique_alias("agent");
    let reference = KeyReference::parse(&alias).unwrap();
    let signer = open_key(&reference, KeyCreation::IfMissing).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path())
        .with_refresh_token_slot("worker")
        .unwrap();
    register_signer(&sb, &store, Arc::clone(&signer)).await;
    // The store pins the key by its ARN, not the alias.
    let credentials: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("credentials.json")).unwrap())
            .unwrap();
    let key_ref = credentials["key_ref"].as_str().unwrap();
    assert!(key_ref.starts_with("arn:aws:kms:us-east-1:"), "{key_ref}");
    assert!(!dir.path().join("keys").exists());

    call_refresh_and_rotate(&sb, dir.path(), &store).await;

    // The loaded key signs, and each signature verifies independently; the latency of one
    // `Sign` call against the emulator is measured here (the README quotes it).
    let loaded = store.load_identity().await.unwrap().unwrap();
    assert_eq!(loaded.thumbprint(), signer.thumbprint());
    sign_in_sequence(&*loaded.signer(), 20, "AWS KMS (moto)").await;
    let report = store.report().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let location = report.key.unwrap().location.unwrap();
    assert_eq!(location.extractable, Some(false));
}

#[tokio::test]
async fn aws_kms_one_client_signs_100_concurrent_calls() {
    let Some(endpoint) = emulator().await else {
        return;
    };
    let sb = Sandbox::builder().start().await.unwrap();
    let signer = AwsKmsSigner::create_with_client(client(&endpoint).await, None)
        .await
        .unwrap();
    let verified = Verified::new(Arc::new(signer));
    let store = ralio::store::MemoryStore::new();
    let binding = register_signer(&sb, &store, verified.clone()).await;
    let signatures =
        hundred_concurrent_calls(&sb, binding.client_id, &verified, "AWS KMS (moto)").await;
    assert!(signatures >= 100);
}

/// A KMS endpoint in front of moto that can refuse `Sign` as AWS does when a policy denies
/// it, or fail as during an outage.
#[derive(Clone)]
struct Gate {
    moto: String,
    /// 0: pass through, 1: deny Sign, 2: outage (every call answers 500 KMSInternalException).
    mode: Arc<AtomicU8>,
}

async fn gate(moto: &str) -> (String, Gate) {
    let gate = Gate {
        moto: moto.to_owned(),
        mode: Arc::new(AtomicU8::new(0)),
    };
    let state = gate.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let gate = state.clone();
        async move { gate.answer(headers, body).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, gate)
}

impl Gate {
    async fn answer(&self, headers: HeaderMap, body: Bytes) -> axum::response::Response {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let json = |status: StatusCode, kind: &str, message: &str| {
            (
                status,
                [("content-type", "application/x-amz-json-1.1")],
                serde_json::json!({"__type": kind, "message": message}).to_string(),
            )
                .into_response()
        };
        match self.mode.load(Ordering::SeqCst) {
            1 if target.ends_with(".Sign") => {
                return json(
                    StatusCode::BAD_REQUEST,
                    "AccessDeniedException",
                    "User: arn:aws:iam::123456789012:user/agent is not authorized to perform: kms:Sign on this resource because no identity-based policy allows the kms:Sign action",
                );
            }
            2 => {
                return json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "KMSInternalException",
                    "We encountered an internal error. Please try again.",
                );
            }
            _ => {}
        }
        let mut request = reqwest::Client::new().post(&self.moto).body(body);
        for (name, value) in &headers {
            if name != "host" && name != "content-length" {
                request = request.header(name, value);
            }
        }
        let answer = request.send().await.unwrap();
        let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
        let body = answer.bytes().await.unwrap();
        (
            status,
            [("content-type", "application/x-amz-json-1.1")],
            body,
        )
            .into_response()
    }
}

#[tokio::test]
async fn aws_kms_access_denied_outage_and_missing_key_say_what_to_fix_and_lose_nothing() {
    let Some(endpoint) = emulator().await else {
        return;
    };
    let sb = Sandbox::builder().start().await.unwrap();
    let (gate_url, gate) = gate(&endpoint).await;
    let kms = client(&gate_url).await;
    let signer = Arc::new(
        AwsKmsSigner::create_with_client(kms.clone(), None)
            .await
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path())
        .with_refresh_token_slot("worker")
        .unwrap();
    let binding = register_signer(&sb, &store, signer.clone()).await;
    let snapshot = || {
        let mut files = Vec::new();
        for entry in walk(dir.path()) {
            files.push((entry.clone(), std::fs::read(&entry).unwrap()));
        }
        files
    };
    let before = snapshot();
    let client = RalioClient::builder()
        .base_url(sb.base_url())
        .identity(Identity::with_signer(
            binding.client_id.clone(),
            signer.clone(),
        ))
        .build()
        .await
        .unwrap();

    // Access denied: the error names the permission to grant.
    gate.mode.store(1, Ordering::SeqCst);
    let err = client.transactions().list().await.unwrap_err();
    let text = chain(&err);
    eprintln!("access denied:\n{text}");
    assert!(
        text.contains("kms:Sign") && text.contains("polic"),
        "{text}"
    );
    assert_eq!(snapshot(), before, "a refused signature changed the store");

    // Outage: the error says to check the connection and retry.
    gate.mode.store(2, Ordering::SeqCst);
    let started = Instant::now();
    let err = client.transactions().list().await.unwrap_err();
    let text = chain(&err);
    eprintln!("outage:\n{text}");
    assert!(
        text.contains("KMS is unavailable") && text.contains("retry"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(snapshot(), before, "an outage changed the store");

    // Back up: the same client carries on; nothing was lost.
    gate.mode.store(0, Ordering::SeqCst);
    client.transactions().list().await.unwrap();

    // A missing key: opening it says so and how to create one.
    let missing = KmsKeyId::new(unique_alias("missing"));
    let err = AwsKmsSigner::from_client(kms, &missing).await.unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains("does not exist") && text.contains("alias"),
        "{text}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_none_or(|e| e != "lock") {
            files.push(path);
        }
    }
    files.sort();
    files
}
