//! What authentication costs a sandbox request, in one run (group `sandbox_auth`):
//!
//! - `unauthenticated`: `GET /api/agents` with no credentials (the sandbox answers 401 after the
//!   same routing and middleware, without touching a signature);
//! - `authenticated`: `GET /api/agents` with a token minted once and a fresh DPoP proof per
//!   request (signed here with aws-lc-rs, about 18 µs, as the SDK does), answered 200;
//! - `authenticated_presigned`: the same with the proofs signed before the clock starts, so only
//!   the request and the sandbox's work are timed;
//! - `unknown_token_same_headers` and `verified_then_refused`, which split that cost: the same
//!   `Authorization` and `DPoP` header sizes with a token the sandbox never issued (refused after
//!   a map lookup, before the proof is read), and a valid token with a proof signed for another
//!   method (refused with 401 after its signature verified, without the 200 answer). Their
//!   difference is what the signature check costs in place, caches and all.
//!
//! All go through one keep-alive reqwest client to a sandbox on its own thread and runtime, as
//! a test suite's sandbox would be. After criterion's report the bench prints the mean of each,
//! their ratio to `unauthenticated` (the goal: authenticated ≤ 2 ×), and the verification's cost
//! in place.
//!
//! Group `es256_proof` signs one DPoP proof the way the SDK does (key parsed once) and with
//! jsonwebtoken 12's `encode` (key parsed on every call): the figure behind the SDK keeping its
//! own encoder (`src/auth/jws.rs`). Group `es256_verify` times one verification alone, the
//! floor under the sandbox's cost per authenticated request.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::Criterion;
use ralio_sandbox::{Sandbox, TicketSpec};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn jti() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b64(&b)
}

struct Key {
    pkcs8: Vec<u8>,
    pair: EcdsaKeyPair,
    jwk: Value,
    jkt: String,
}

impl Key {
    fn new() -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap()
                .as_ref()
                .to_vec();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
        let jkt = b64(&Sha256::digest(
            format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#).as_bytes(),
        ));
        Self {
            pkcs8,
            pair,
            jwk: json!({ "crv": "P-256", "kty": "EC", "x": x, "y": y }),
            jkt,
        }
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }
}

/// Sums of (iterations, elapsed) over criterion's samples, per benchmark.
#[derive(Default)]
struct Totals {
    iters: u64,
    elapsed: Duration,
}

impl Totals {
    fn mean_us(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.iters.max(1) as f64
    }
}

/// Sends `iters` requests to `url` one after another, each with the `Authorization` and `DPoP`
/// values `headers(i)` gives (signed inside the clock or before it, as the row says), checks
/// each status, and adds the time to `totals`.
fn timed<'a>(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    url: &str,
    totals: &Mutex<Totals>,
    iters: u64,
    status: u16,
    mut headers: impl FnMut(u64) -> Option<(&'a str, String)>,
) -> Duration {
    let started = Instant::now();
    rt.block_on(async {
        for i in 0..iters {
            let mut req = http.get(url);
            if let Some((authz, proof)) = headers(i) {
                req = req.header("authorization", authz).header("dpop", proof);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), status);
            black_box(res.bytes().await.unwrap());
        }
    });
    let elapsed = started.elapsed();
    let mut t = totals.lock().unwrap();
    t.iters += iters;
    t.elapsed += elapsed;
    elapsed
}

fn main() {
    // The sandbox on a thread and runtime of its own, as a remote server would be.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let sandbox = Sandbox::builder().start().await.unwrap();
            let ticket = sandbox.mint_ticket(TicketSpec::default());
            tx.send((sandbox.base_url().to_owned(), ticket)).unwrap();
            let _ = stop_rx.await;
        });
    });
    let (base, ticket) = rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let key = Key::new();
    let token = rt.block_on(async {
        let reg: Value = http
            .post(format!("{base}/api/credential-bindings/registrations"))
            .json(&json!({ "ticket": ticket, "public_key_jwk": key.jwk }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let client_id = reg["client_id"].as_str().unwrap().to_owned();
        let iat = now();
        let assertion = key.sign(
            &json!({ "alg": "ES256", "kid": key.jkt, "typ": "JWT" }),
            &json!({ "iss": client_id, "sub": client_id, "aud": format!("{base}/oauth/token"),
                     "iat": iat, "exp": iat + 60, "jti": jti() }),
        );
        let minted: Value = http
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        minted["access_token"].as_str().unwrap().to_owned()
    });
    let url = format!("{base}/api/agents");
    let authz = format!("DPoP {token}");
    let authz = authz.as_str();
    let ath = b64(&Sha256::digest(token.as_bytes()));
    let proof_header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk });

    let fresh_proof = |htm: &str| {
        let claims = json!({ "htm": htm, "htu": url, "iat": now(), "jti": jti(), "ath": ath });
        key.sign(&proof_header, &claims)
    };
    // An access token the sandbox never issued, as long as the real one: refused after a map
    // lookup, before any proof is read.
    let unknown_authz = format!("DPoP {}", "x".repeat(token.len()));
    let spare_proof = fresh_proof("GET");

    let totals: [Mutex<Totals>; 5] = Default::default();
    let [unauth, auth, presigned, unknown, refused] = &totals;
    // A row whose proofs (for `htm`) are signed before the clock starts, each still fresh and
    // used once.
    let timed_presigned = |totals: &Mutex<Totals>, iters: u64, htm: &str, status: u16| {
        let mut proofs: Vec<String> = (0..iters).map(|_| fresh_proof(htm)).collect();
        timed(&rt, &http, &url, totals, iters, status, move |i| {
            Some((authz, std::mem::take(&mut proofs[i as usize])))
        })
    };
    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("sandbox_auth");
        group.bench_function("unauthenticated", |b| {
            b.iter_custom(|iters| timed(&rt, &http, &url, unauth, iters, 401, |_| None))
        });
        group.bench_function("authenticated", |b| {
            b.iter_custom(|iters| {
                timed(&rt, &http, &url, auth, iters, 200, |_| {
                    Some((authz, fresh_proof("GET")))
                })
            })
        });
        // The sandbox's own cost: the proofs are signed before the clock starts (each is still
        // fresh and used once), so only sending, verifying and answering are timed.
        group.bench_function("authenticated_presigned", |b| {
            b.iter_custom(|iters| timed_presigned(presigned, iters, "GET", 200))
        });
        // What carrying the credentials costs without checking them: the same header sizes with
        // an unknown token, answered 401 before the proof is read.
        group.bench_function("unknown_token_same_headers", |b| {
            b.iter_custom(|iters| {
                timed(&rt, &http, &url, unknown, iters, 401, |_| {
                    Some((&unknown_authz, spare_proof.clone()))
                })
            })
        });
        // What the signature check costs in place: a valid token and a proof signed for another
        // method, refused (401) after its signature verified, without the 200 answer.
        group.bench_function("verified_then_refused", |b| {
            b.iter_custom(|iters| timed_presigned(refused, iters, "PUT", 401))
        });
        group.finish();
    }
    // One fixed set of proof claims for the signing and verification groups.
    let claims = json!({ "htm": "GET", "htu": url, "iat": 1_700_000_000,
                         "jti": "0123456789abcdef0123456789abcdef", "ath": ath });
    // Why the SDK keeps its own JWS encoder: a whole proof signed with a key parsed once (what
    // the SDK does) against jsonwebtoken 12's `encode`, which parses the PKCS#8 key every call.
    {
        let mut group = c.benchmark_group("es256_proof");
        group.bench_function("parsed_key", |b| {
            b.iter(|| key.sign(black_box(&proof_header), black_box(&claims)))
        });
        let encoding_key = jsonwebtoken::EncodingKey::from_ec_der(&key.pkcs8);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(key.jwk.clone()).unwrap());
        group.bench_function("jsonwebtoken_encode", |b| {
            b.iter(|| {
                jsonwebtoken::encode(black_box(&header), black_box(&claims), &encoding_key).unwrap()
            })
        });
        group.finish();
    }
    // The floor under any faithful verifier: one ES256 verification, alone (aws-lc-rs with the
    // point parsed per call, as jsonwebtoken does) and as a whole jsonwebtoken `decode`.
    {
        let mut group = c.benchmark_group("es256_verify");
        let proof = key.sign(&proof_header, &claims);
        let (input, sig) = proof.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let point = key.pair.public_key().as_ref().to_vec();
        group.bench_function("aws_lc_rs", |b| {
            b.iter(|| {
                aws_lc_rs::signature::UnparsedPublicKey::new(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                    &point,
                )
                .verify(black_box(input.as_bytes()), black_box(&sig))
                .unwrap()
            })
        });
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
        let decoding_key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        group.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Value>(black_box(&proof), &decoding_key, &validation)
                    .unwrap()
            })
        });
        group.finish();
    }
    c.final_summary();
    let [u, a, p, k, r] =
        [unauth, auth, presigned, unknown, refused].map(|t| t.lock().unwrap().mean_us());
    if [u, a, p, k, r].iter().all(|m| *m > 0.0) {
        println!(
            "sandbox_auth: unauthenticated {u:.1} µs; authenticated {a:.1} µs (ratio {:.2}); \
             authenticated with proofs signed beforehand {p:.1} µs (ratio {:.2})",
            a / u,
            p / u
        );
        println!(
            "sandbox_auth breakdown: unknown token with the same headers {k:.1} µs (ratio {:.2}); \
             proof verified then refused {r:.1} µs (ratio {:.2}): the signature check in place \
             costs about {:.1} µs",
            k / u,
            r / u,
            r - k
        );
    }
    let _ = stop_tx.send(());
    let _ = server.join();
}
