//! Cost of DPoP: one raw ES256 signature, one complete proof, and the time the `DpopAuth`
//! middleware adds to a request against a trivial local server.

use std::hint::black_box;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use criterion::{Criterion, criterion_group, criterion_main};
use ralio::auth::{DpopAuth, Htu, JwsSigner, ProofRequest, TokenManager, TokenManagerConfig};
use ralio::keys::PrivateKey;

fn bench(c: &mut Criterion) {
    let key = PrivateKey::generate().unwrap();
    let mut group = c.benchmark_group("dpop");

    group.bench_function("raw_sign", |b| {
        let message = [7u8; 300];
        b.iter(|| key.sign_es256_now(black_box(&message)).unwrap())
    });

    let signer = JwsSigner::new(Arc::new(key.clone()));
    let htu = Htu::parse("https://api.ralio.co/api/transactions").unwrap();
    let token = "rat_0123456789abcdef0123456789abcdef0123456789";
    group.bench_function("proof", |b| {
        b.iter(|| {
            let req = ProofRequest {
                htm: &http::Method::GET,
                htu: &htu,
                access_token: Some(black_box(token)),
                nonce: Some("nonce-value"),
                iat: 1_700_000_000,
            };
            futures::executor::block_on(signer.dpop_proof(&req)).unwrap()
        })
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // The server runs on a thread and runtime of its own, as a remote server would: it never
    // shares a core's caches or scheduler with the client's signing.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let server_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        server_rt.block_on(async move {
            let app = Router::new()
                .route("/resource", get(|| async { "ok" }))
                .route(
                    "/token",
                    post(|| async {
                        axum::Json(serde_json::json!({
                            "access_token": "rat_bench", "token_type": "DPoP", "expires_in": 3600
                        }))
                    }),
                );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let base = format!("http://{}", rx.recv().unwrap());
    let config = TokenManagerConfig::new(&format!("{base}/token"), "bench").unwrap();
    let tokens = TokenManager::builder(config, Arc::new(key.clone()))
        .build()
        .unwrap();
    rt.block_on(tokens.access_token()).unwrap();
    let plain = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build();
    let tokens_for_offline = tokens.clone();
    let authed = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(DpopAuth::new(tokens))
        .build();
    let url = format!("{base}/resource");
    for (name, client) in [
        ("request_overhead/without_middleware", plain.clone()),
        ("request_overhead/with_middleware", authed),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let resp = client.get(&url).send().await.unwrap();
                resp.bytes().await.unwrap()
            })
        });
    }
    // The same bytes on the wire without the auth layer: a proof and a token made once and sent
    // as fixed headers, so the difference to `with_middleware` is the layer's own cost.
    let (fixed_proof, fixed_authz) = rt.block_on(async {
        let token = tokens_for_offline.access_token().await.unwrap();
        let proof = tokens_for_offline
            .dpop_proof(
                &http::Method::GET,
                &url::Url::parse(&url).unwrap(),
                Some(&token),
            )
            .await
            .unwrap();
        (
            proof.expose_secret().to_owned(),
            format!("DPoP {}", token.expose_secret()),
        )
    });
    // The floor for any DPoP client: the fixed headers plus one raw signature per request (the
    // proof a real client must sign), without the layer's bookkeeping.
    group.bench_function("request_overhead/fixed_headers_and_one_signature", |b| {
        let message = [7u8; 300];
        b.to_async(&rt).iter(|| async {
            black_box(key.sign_es256_now(black_box(&message)).unwrap());
            let resp = plain
                .get(&url)
                .header("authorization", &fixed_authz)
                .header("dpop", &fixed_proof)
                .send()
                .await
                .unwrap();
            resp.bytes().await.unwrap()
        })
    });
    group.bench_function("request_overhead/fixed_headers", |b| {
        b.to_async(&rt).iter(|| async {
            let resp = plain
                .get(&url)
                .header("authorization", &fixed_authz)
                .header("dpop", &fixed_proof)
                .send()
                .await
                .unwrap();
            resp.bytes().await.unwrap()
        })
    });

    // The same comparison without the network: the chain ends in a middleware that answers
    // at once, so the difference is the CPU the auth layer adds, free of socket noise.
    let canned = || reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(Canned);
    let offline_plain = canned().build();
    let offline_authed = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(DpopAuth::new(tokens_for_offline))
        .with(Canned)
        .build();
    for (name, client) in [
        ("middleware_cpu/without_middleware", offline_plain),
        ("middleware_cpu/with_middleware", offline_authed),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { client.get(&url).send().await.unwrap().status() })
        });
    }
    group.finish();
}

/// Ends a middleware chain with an empty 200 and a `Date`, without touching the network.
struct Canned;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Canned {
    async fn handle(
        &self,
        _req: reqwest::Request,
        _ext: &mut http::Extensions,
        _next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let resp = http::Response::builder()
            .status(200)
            .header(
                "date",
                httpdate::fmt_http_date(std::time::SystemTime::now()),
            )
            .body(Vec::<u8>::new())
            .unwrap();
        Ok(reqwest::Response::from(resp))
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
