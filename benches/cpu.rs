//! Client CPU per authenticated call, side by side in one run (issue 16, part 2):
//!
//! - `sdk`: `client.transactions().list()` (token cached, fresh DPoP proof, the whole stack,
//!   decoding into the public types);
//! - `get`: a plain `reqwest` GET of the same URL (same query) with the `Authorization` and
//!   `DPoP` headers made before the clock starts (a proof per request, signed outside the
//!   measurement, so the sandbox answers the same 200 body and the GET pays no signature);
//! - `sign`: one raw ES256 signature of a proof-sized message (aws-lc-rs, key parsed once);
//! - `hand`: the same job as `sdk`, hand-rolled in one loop with no SDK code: the proof's claims
//!   by `format!` (fresh `jti` and `iat`; the header, its JWK and the token's `ath` made once,
//!   as any client would), one aws-lc-rs signature with the registered key, one `reqwest` GET
//!   with the `Authorization: DPoP …` and `DPoP` headers, and the JSON body parsed into the
//!   same `TransactionList`.
//!
//! `hand` is the floor: what the job costs done by hand, on this machine, in this process. The
//! bench prints `sdk / hand-rolled` (the goal: ≤ 1.2). It also prints the older split floor,
//! `sdk / (get + sign)`, which understates the job (a signature between network calls costs
//! more than one in a tight loop, and the split omits the proof's encoding and the body's
//! decoding), and `floor`: a raw signature then the presigned GET, per call.
//!
//! How it measures: the client runs on this thread in a current-thread tokio runtime, so all of
//! its work (hyper's connection task included) is this thread's CPU, read with
//! `getrusage(RUSAGE_THREAD)`. The server is the release-built `ralio-sandbox` binary in a
//! process of its own (found next to this bench's executable, or at `$RALIO_SANDBOX_BIN`;
//! `cargo build --release -p ralio-sandbox`), else the in-process sandbox on a thread and
//! runtime of its own (never counted). The three workloads alternate in rounds of
//! `RALIO_BENCH_CALLS` calls (default 200) for `RALIO_BENCH_ROUNDS` rounds (default 15); the
//! figure of each is its median per-call CPU over the rounds, which shrugs off the rounds a
//! noisy neighbour disturbed.
//!
//! Why CPU time and not instruction counts under valgrind (gungraun): instruction counts need
//! the `gungraun-runner` binary installed at the library's exact version and valgrind on every
//! machine that runs the bench, and valgrind serialises threads, which changes how a tokio
//! client and its connection task interleave. For the instruction profile, run this same
//! executable under callgrind with `RALIO_BENCH_ONLY=sdk|hand|get|floor|presign|sign` (one workload, no rounds;
//! see the README's "Performance" section): counting two runs with different
//! `RALIO_BENCH_CALLS` and dividing the difference gives exact instructions per call.

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
    #[cfg(not(target_os = "linux"))]
    eprintln!("the cpu bench reads getrusage(RUSAGE_THREAD), which only Linux has; skipped");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{BufRead as _, BufReader};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;
    use std::time::Duration;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use ralio::RalioClient;
    use ralio::keys::PrivateKey;
    use ralio::register::{RegisterOptions, register};
    use ralio::store::MemoryStore;
    use ralio::types::TransactionList;
    use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
    use sha2::Digest as _;

    /// The CPU this thread has used (user + system), in microseconds.
    fn thread_cpu_us() -> f64 {
        rusage_us(libc::RUSAGE_THREAD)
    }

    /// The CPU the whole process has used (every thread), in microseconds.
    fn process_cpu_us() -> f64 {
        rusage_us(libc::RUSAGE_SELF)
    }

    fn rusage_us(who: libc::c_int) -> f64 {
        // SAFETY: getrusage only writes the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::getrusage(who, &mut usage) };
        assert_eq!(rc, 0, "getrusage failed");
        let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
        us(usage.ru_utime) + us(usage.ru_stime)
    }

    fn env_usize(name: &str, default: usize) -> usize {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}")),
            _ => default,
        }
    }

    /// The server: a `ralio-sandbox` child process, or an in-process sandbox on its own thread.
    enum Server {
        Process(Child),
        InProcess(#[allow(dead_code)] std::sync::mpsc::Sender<()>),
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if let Server::Process(child) = self {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn sandbox_binary() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("RALIO_SANDBOX_BIN").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(path));
        }
        // target/release/deps/cpu-… → target/release/ralio-sandbox
        let exe = std::env::current_exe().ok()?;
        let candidate = exe.parent()?.parent()?.join("ralio-sandbox");
        candidate.is_file().then_some(candidate)
    }

    /// Starts the server; returns it, its base URL and a registration ticket.
    fn start_server() -> (Server, String, String, &'static str) {
        if let Some(bin) = sandbox_binary() {
            let mut child = Command::new(&bin)
                .args(["--addr", "127.0.0.1:0"])
                .env("RUST_LOG", "off")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("piped stdout"))
                .read_line(&mut line)
                .expect("the sandbox prints its base URL");
            let v: serde_json::Value =
                serde_json::from_str(&line).expect("the sandbox's JSON line");
            let base = v["base_url"].as_str().expect("base_url").to_owned();
            let ticket = v["ticket"].as_str().expect("ticket").to_owned();
            return (
                Server::Process(child),
                base,
                ticket,
                "ralio-sandbox process",
            );
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let sandbox = ralio_sandbox::Sandbox::builder()
                    .start()
                    .await
                    .expect("sandbox");
                let ticket = sandbox.mint_ticket(ralio_sandbox::TicketSpec::default());
                tx.send((sandbox.base_url().to_owned(), ticket))
                    .expect("send");
                let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
                drop(sandbox);
            });
        });
        let (base, ticket) = rx.recv().expect("the sandbox thread started");
        (
            Server::InProcess(stop_tx),
            base,
            ticket,
            "in-process sandbox on its own thread (build ralio-sandbox --release for a separate process)",
        )
    }

    struct Fixture {
        client: RalioClient,
        raw: reqwest::Client,
        url: String,
        parsed: url::Url,
        authz: HeaderValue,
        key: PrivateKey,
        hand: HandRolled,
    }

    /// What the hand-rolled client keeps between calls: its key, the proof's header (encoded
    /// once: it names the key), the token's `ath` and the target without its query.
    struct HandRolled {
        key: EcdsaKeyPair,
        rng: SystemRandom,
        header_b64: String,
        ath: String,
        htu: String,
        client: reqwest::Client,
    }

    async fn fixture(base: &str, ticket: String) -> Fixture {
        // The hand-rolled client signs with the registered key itself, so the key is made
        // here, outside the SDK, and registered through `RegisterOptions::signer`.
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("a P-256 key");
        let registered = PrivateKey::from_pkcs8_der(pkcs8.as_ref()).expect("the key, for the SDK");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("the key, for aws-lc");
        let store = Arc::new(MemoryStore::new());
        register(
            &*store,
            RegisterOptions::new()
                .ticket(ticket)
                .base_url(base)
                .signer(Arc::new(registered)),
        )
        .await
        .expect("register with the sandbox's ticket");
        let client = RalioClient::builder()
            .base_url(base)
            .store(store)
            .build()
            .await
            .expect("client");
        for who in ["Alice", "Bob", "Carol"] {
            client
                .chat()
                .send(format!("pay 5 GBP to {who}"))
                .await
                .expect("a payment to list");
        }
        let page = client.transactions().list().await.expect("list");
        assert_eq!(page.total, 3, "three transactions to list");
        // The exact URL the SDK sends (its default query).
        let url = format!("{base}/api/transactions?page=1&per_page=50");
        let tokens = client.token_manager().expect("credentials");
        let token = tokens.access_token().await.expect("token");
        let mut authz = HeaderValue::from_str(&format!("DPoP {}", token.expose_secret()))
            .expect("header value");
        authz.set_sensitive(true);
        let point = key.public_key().as_ref();
        let header = format!(
            r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}}}"#,
            B64.encode(&point[1..33]),
            B64.encode(&point[33..65]),
        );
        let hand = HandRolled {
            key,
            rng,
            header_b64: B64.encode(header),
            ath: B64.encode(sha2::Sha256::digest(token.expose_secret().as_bytes())),
            htu: format!("{base}/api/transactions"),
            client: reqwest::Client::new(),
        };
        Fixture {
            client,
            raw: reqwest::Client::new(),
            parsed: url::Url::parse(&url).expect("url"),
            url,
            authz,
            // The signature's cost does not depend on the key.
            key: PrivateKey::generate().expect("key"),
            hand,
        }
    }

    /// The floor: the SDK's job hand-rolled (see the module docs), per call.
    async fn hand_calls(f: &Fixture, n: usize) {
        let h = &f.hand;
        for _ in 0..n {
            let mut jti = [0u8; 16];
            aws_lc_rs::rand::fill(&mut jti).expect("random jti");
            let iat = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            let claims = format!(
                r#"{{"jti":"{}","htm":"GET","htu":"{}","iat":{iat},"ath":"{}"}}"#,
                B64.encode(jti),
                h.htu,
                h.ath
            );
            let mut proof = format!("{}.{}", h.header_b64, B64.encode(claims));
            let signature = h.key.sign(&h.rng, proof.as_bytes()).expect("sign");
            proof.push('.');
            B64.encode_string(signature.as_ref(), &mut proof);
            let resp = h
                .client
                .get(&f.url)
                .header(AUTHORIZATION, f.authz.clone())
                .header("dpop", HeaderValue::from_str(&proof).expect("header value"))
                .header(ACCEPT, HeaderValue::from_static("application/json"))
                .send()
                .await
                .expect("hand-rolled get");
            assert_eq!(resp.status(), 200, "the hand-rolled proof is accepted");
            let body = resp.bytes().await.expect("body");
            let page: TransactionList = serde_json::from_slice(&body).expect("a transaction page");
            std::hint::black_box(page);
        }
    }

    /// `n` proofs for the plain GET, signed before its clock starts.
    async fn presign(f: &Fixture, n: usize) -> Vec<HeaderMap> {
        let tokens = f.client.token_manager().expect("credentials");
        let token = tokens.access_token().await.expect("token");
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let proof = tokens
                .dpop_proof(&http::Method::GET, &f.parsed, Some(&token))
                .await
                .expect("proof");
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, f.authz.clone());
            headers.insert(
                "dpop",
                HeaderValue::from_str(proof.expose_secret()).expect("header value"),
            );
            headers.insert("accept", HeaderValue::from_static("application/json"));
            out.push(headers);
        }
        out
    }

    async fn sdk_calls(f: &Fixture, n: usize) {
        for _ in 0..n {
            let page = f.client.transactions().list().await.expect("sdk call");
            std::hint::black_box(page);
        }
    }

    async fn get_calls(f: &Fixture, headers: Vec<HeaderMap>) {
        for h in headers {
            let resp = f.raw.get(&f.url).headers(h).send().await.expect("get");
            assert_eq!(resp.status(), 200, "the presigned GET is accepted");
            std::hint::black_box(resp.bytes().await.expect("body"));
        }
    }

    /// The floor as one workload: a raw signature, then the plain GET, per call. Signing between
    /// requests runs with the caches the network code left behind, as the SDK's signing does;
    /// `sign_calls` signs in a tight loop with its tables hot.
    async fn floor_calls(f: &Fixture, headers: Vec<HeaderMap>) {
        let message = [b'e'; 420];
        for h in headers {
            std::hint::black_box(
                f.key
                    .sign_es256_now(std::hint::black_box(&message))
                    .expect("sign"),
            );
            let resp = f.raw.get(&f.url).headers(h).send().await.expect("get");
            assert_eq!(resp.status(), 200, "the presigned GET is accepted");
            std::hint::black_box(resp.bytes().await.expect("body"));
        }
    }

    fn sign_calls(f: &Fixture, n: usize) {
        // About the length of a proof's signing input (header with the JWK, claims with ath).
        let message = [b'e'; 420];
        for _ in 0..n {
            std::hint::black_box(
                f.key
                    .sign_es256_now(std::hint::black_box(&message))
                    .expect("sign"),
            );
        }
    }

    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        let m = v.len() / 2;
        if v.len().is_multiple_of(2) {
            (v[m - 1] + v[m]) / 2.0
        } else {
            v[m]
        }
    }

    pub(super) fn main() {
        // `cargo bench` passes `--bench`; `cargo test --benches` runs it as a smoke test with
        // few calls.
        let smoke = !std::env::args().any(|a| a == "--bench");
        let calls = env_usize("RALIO_BENCH_CALLS", if smoke { 5 } else { 200 });
        let rounds = env_usize("RALIO_BENCH_ROUNDS", if smoke { 1 } else { 15 }).max(1);
        let only = std::env::var("RALIO_BENCH_ONLY")
            .ok()
            .filter(|s| !s.is_empty());

        let (_server, base, ticket, server_kind) = start_server();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        let f = rt.block_on(fixture(&base, ticket));
        // Warm-up: connections open, token cached, allocator and caches warm.
        rt.block_on(async {
            sdk_calls(&f, 50).await;
            hand_calls(&f, 50).await;
            let h = presign(&f, 50).await;
            get_calls(&f, h).await;
        });
        sign_calls(&f, 50);

        if let Some(only) = only {
            // One workload, for callgrind: the measured calls and nothing else after warm-up.
            match only.as_str() {
                "sdk" => rt.block_on(sdk_calls(&f, calls)),
                "hand" => rt.block_on(hand_calls(&f, calls)),
                "get" => {
                    // The proofs are signed here too: subtract a `presign` run of the same
                    // size to count the GETs alone.
                    let h = rt.block_on(presign(&f, calls));
                    rt.block_on(get_calls(&f, h));
                }
                "floor" => {
                    let h = rt.block_on(presign(&f, calls));
                    rt.block_on(floor_calls(&f, h));
                }
                "presign" => {
                    std::hint::black_box(rt.block_on(presign(&f, calls)));
                }
                "sign" => sign_calls(&f, calls),
                other => panic!(
                    "RALIO_BENCH_ONLY must be sdk, hand, get, floor, presign or sign, not {other:?}"
                ),
            }
            return;
        }

        let (mut sdk, mut get, mut sign) = (Vec::new(), Vec::new(), Vec::new());
        let mut hand = Vec::new();
        let mut floor_interleaved = Vec::new();
        let mut sdk_process = Vec::new();
        for _ in 0..rounds {
            let p0 = process_cpu_us();
            let t0 = thread_cpu_us();
            rt.block_on(sdk_calls(&f, calls));
            let t1 = thread_cpu_us();
            let p1 = process_cpu_us();
            sdk.push((t1 - t0) / calls as f64);
            sdk_process.push((p1 - p0) / calls as f64);

            let t0 = thread_cpu_us();
            rt.block_on(hand_calls(&f, calls));
            let t1 = thread_cpu_us();
            hand.push((t1 - t0) / calls as f64);

            let headers = rt.block_on(presign(&f, calls));
            let t0 = thread_cpu_us();
            rt.block_on(get_calls(&f, headers));
            let t1 = thread_cpu_us();
            get.push((t1 - t0) / calls as f64);

            let t0 = thread_cpu_us();
            sign_calls(&f, calls);
            let t1 = thread_cpu_us();
            sign.push((t1 - t0) / calls as f64);
            let headers = rt.block_on(presign(&f, calls));
            let t0 = thread_cpu_us();
            rt.block_on(floor_calls(&f, headers));
            let t1 = thread_cpu_us();
            floor_interleaved.push((t1 - t0) / calls as f64);

            // Let the sandbox's replay cache and the kernel settle between rounds.
            std::thread::sleep(Duration::from_millis(20));
        }
        let (sdk, get, sign) = (median(&mut sdk), median(&mut get), median(&mut sign));
        let hand = median(&mut hand);
        let sdk_process = median(&mut sdk_process);
        let interleaved = median(&mut floor_interleaved);
        let floor = get + sign;
        println!(
            "cpu per call (client thread, median of {rounds} rounds × {calls} calls; server: {server_kind})"
        );
        println!("  sdk transactions().list()   {sdk:8.1} µs");
        println!(
            "  hand-rolled client          {hand:8.1} µs   (format! proof, aws-lc signature, GET, body parsed)"
        );
        println!(
            "  ratio sdk / hand-rolled     {:8.2}   (goal ≤ 1.20)",
            sdk / hand
        );
        println!("  plain reqwest GET           {get:8.1} µs");
        println!("  one raw ES256 signature     {sign:8.1} µs");
        println!("  floor (GET + signature)     {floor:8.1} µs");
        println!("  ratio sdk / floor           {:8.2}", sdk / floor);
        println!(
            "  floor, measured interleaved {interleaved:8.1} µs   (a signature then the GET, per call)"
        );
        println!("  ratio sdk / interleaved     {:8.2}", sdk / interleaved);
        if matches!(_server, Server::Process(_)) {
            println!(
                "  sdk, whole client process   {sdk_process:8.1} µs   (every thread of this process; the server is another)"
            );
        }
    }
}
