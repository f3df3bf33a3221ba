//! Client-side cost of one authenticated `transactions().list()`, against a raw reqwest GET of
//! the same URL with precomputed headers (group `client`).
//!
//! - `client/sandbox_list` and `client/sandbox_raw_get`: against the in-process sandbox. The
//!   sandbox refuses a replayed DPoP proof, so after the first request the raw GET is answered
//!   401 (after the same token and signature checks); it is a floor for the round trip, not
//!   the same server work.
//! - `client/static_list` and `client/static_raw_get`: against a trivial local server answering
//!   the body the sandbox sent, without checking anything. Server work is equal on both sides,
//!   so `static_list / static_raw_get` is the client-side cost ratio: proof signing, the
//!   middleware stack, the span, JSON decoding and the conversion to `Decimal`s and open enums.

use std::hint::black_box;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use criterion::{Criterion, criterion_group, criterion_main};
use ralio::RalioClient;
use ralio::keys::PrivateKey;
use ralio::register::{RegisterOptions, register};
use ralio::store::MemoryStore;
use ralio_sandbox::{Sandbox, TicketSpec};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

struct Fixture {
    _sandbox: Sandbox,
    sandbox_client: RalioClient,
    sandbox_url: String,
    static_client: RalioClient,
    static_url: String,
    raw: reqwest::Client,
    headers: HeaderMap,
}

async fn fixture() -> Fixture {
    let sandbox = Sandbox::builder().start().await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let ticket = sandbox.mint_ticket(TicketSpec::default());
    register(
        &*store,
        RegisterOptions::new()
            .ticket(ticket)
            .base_url(sandbox.base_url()),
    )
    .await
    .unwrap();
    let sandbox_client = RalioClient::builder()
        .base_url(sandbox.base_url())
        .store(store)
        .build()
        .await
        .unwrap();
    // Three transactions to list.
    for who in ["Alice", "Bob", "Carol"] {
        sandbox_client
            .chat()
            .send(format!("pay 5 GBP to {who}"))
            .await
            .unwrap();
    }
    let sandbox_url = format!("{}/api/transactions", sandbox.base_url());

    // Precomputed headers: a token and one proof from the client's own token manager.
    let tokens = sandbox_client.token_manager().unwrap();
    let token = tokens.access_token().await.unwrap();
    let url = url::Url::parse(&sandbox_url).unwrap();
    let proof = tokens
        .dpop_proof(&http::Method::GET, &url, Some(&token))
        .await
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("DPoP {}", token.expose_secret())).unwrap(),
    );
    headers.insert(
        "dpop",
        HeaderValue::from_str(proof.expose_secret()).unwrap(),
    );
    headers.insert("accept", HeaderValue::from_static("application/json"));

    // The body the sandbox answers, served by a server that checks nothing.
    let raw = reqwest::Client::new();
    let body = raw
        .get(&sandbox_url)
        .headers(headers.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("\"transactions\""), "{body}");
    let app = Router::new()
        .route(
            "/api/transactions",
            get(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        )
        .route(
            "/oauth/token",
            post(|| async {
                axum::Json(serde_json::json!({
                    "access_token": "rat_bench", "token_type": "DPoP", "expires_in": 3600
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let static_base = format!("http://{addr}");
    let static_client = RalioClient::builder()
        .base_url(&static_base)
        .credentials("cb_bench", PrivateKey::generate().unwrap())
        .build()
        .await
        .unwrap();
    Fixture {
        _sandbox: sandbox,
        sandbox_client,
        sandbox_url,
        static_client,
        static_url: format!("{static_base}/api/transactions"),
        raw,
        headers,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture());
    // Warm both paths (token minted, connections open).
    rt.block_on(async {
        assert_eq!(
            f.sandbox_client.transactions().list().await.unwrap().total,
            3
        );
        assert_eq!(
            f.static_client.transactions().list().await.unwrap().total,
            3
        );
    });

    let mut group = c.benchmark_group("client");
    group.bench_function("sandbox_list", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(f.sandbox_client.transactions().list().await.unwrap()) })
    });
    group.bench_function("sandbox_raw_get", |b| {
        b.to_async(&rt).iter(|| async {
            let resp = f
                .raw
                .get(&f.sandbox_url)
                .headers(f.headers.clone())
                .send()
                .await
                .unwrap();
            black_box(resp.bytes().await.unwrap())
        })
    });
    group.bench_function("static_list", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(f.static_client.transactions().list().await.unwrap()) })
    });
    group.bench_function("static_raw_get", |b| {
        b.to_async(&rt).iter(|| async {
            let resp = f
                .raw
                .get(&f.static_url)
                .headers(f.headers.clone())
                .send()
                .await
                .unwrap();
            black_box(resp.bytes().await.unwrap())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(40).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
