//! Soak under faults: many concurrent clients against one in-process sandbox (loopback only)
//! with random 503s, latency, cut and failed chat streams, DPoP nonces that rotate, a rate
//! limit, a server clock 4 minutes ahead, short-lived access tokens and revoked refresh-token
//! families, all at once. Bounded in count (32 tasks × 25 calls) and time (every call under a
//! timeout, the whole run under a deadline).
//!
//! What it proves:
//! - nothing panics or hangs: every call ends within its timeout, in success or a typed
//!   `ralio::Error` (the error classes seen are printed);
//! - no chat message is processed twice: each chat call pays a unique reference, and after the
//!   run each reference appears in at most one payment intent; every chat call that succeeded
//!   has its intent;
//! - no retry storm at the token endpoint: requests to `POST /oauth/token` stay within the
//!   budget stated in `token_budget`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::register_with_ticket;
use futures::{StreamExt, TryStreamExt};
use ralio::store::MemoryStore;
use ralio::{Error, RalioClient, RetryPolicy};
use ralio_sandbox::{Faults, NonceMode, Sandbox, TicketSpec};

const BINDINGS: usize = 8;
const TASKS_PER_BINDING: usize = 4;
const CALLS_PER_TASK: usize = 25;
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
const RUN_DEADLINE: Duration = Duration::from_secs(90);
const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3);
const CLOCK_OFFSET_SECS: i64 = 240;

fn load_faults(cut_streams: bool) -> Faults {
    Faults {
        error_rate: 0.08,
        error_status: 503,
        latency: Duration::from_millis(3),
        stream_cut_after: cut_streams.then_some(2),
        clock_offset_secs: CLOCK_OFFSET_SECS,
        ..Faults::default()
    }
}

/// The outcome class of one call, for the summary and the assertions.
fn class(e: &Error) -> &'static str {
    match e {
        Error::Auth(_) => "auth",
        Error::Permission(_) => "permission",
        Error::NotFound(_) => "not_found",
        Error::Validation(_) => "validation",
        Error::RateLimit(_) => "rate_limit",
        Error::Api(_) => "api",
        Error::Registration(_) => "registration",
        Error::Credential { .. } => "credential",
        Error::Config(_) => "config",
        Error::Transport { .. } => "transport",
        Error::Decode { .. } => "decode",
        Error::Stream(_) => "stream",
        Error::Timeout { .. } => "timeout",
        Error::Middleware { .. } => "middleware",
        _ => "other",
    }
}

fn error_chain(e: &Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    errors: BTreeMap<&'static str, usize>,
    /// One message per error class, for the summary.
    examples: BTreeMap<&'static str, String>,
    chat_calls: usize,
    /// References of chat calls that succeeded (their payment must exist exactly once).
    paid_ok: Vec<String>,
}

async fn one_call(client: &RalioClient, kind: usize, reference: &str) -> Result<bool, Error> {
    match kind {
        0 => client.agents().list().await.map(|_| false),
        1 => client
            .transactions()
            .list()
            .per_page(5)
            .await
            .map(|_| false),
        2 => client
            .payment_intents()
            .list()
            .per_page(5)
            .await
            .map(|_| false),
        3 => client
            .chat()
            .send(format!("Pay £1 to Bob for {reference}"))
            .await
            .map(|_| true),
        _ => {
            let stream = client
                .chat()
                .stream(format!("Pay £1 to Bob for {reference}"))
                .await?;
            let events: Vec<_> = stream.try_collect().await?;
            assert!(!events.is_empty(), "a successful stream delivered no event");
            Ok(true)
        }
    }
}

/// Token-endpoint budget: per binding, the initial mint, one grant per access-token lifetime
/// elapsed, one re-mint per revoked family; each grant may take 3 requests (a nonce challenge,
/// an injected 503 that fails the call, the retry on the next call). Anything above is a storm.
fn token_budget(elapsed: Duration, revocations: usize) -> u64 {
    let lifetimes = elapsed.as_secs().div_ceil(ACCESS_TOKEN_LIFETIME.as_secs()) + 1;
    let grants = BINDINGS as u64 * (1 + lifetimes) + revocations as u64;
    3 * grants
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_under_faults_no_panic_no_hang_no_duplicate_chat_no_token_storm() {
    let sb = Arc::new(
        Sandbox::builder()
            .seed(8)
            .nonce_mode(NonceMode::Require)
            .rate_limit(Some(25))
            .access_token_lifetime(ACCESS_TOKEN_LIFETIME)
            .start()
            .await
            .unwrap(),
    );

    // Register the bindings before the faults start (all act for the default agent).
    let mut clients = Vec::new();
    let mut client_ids = Vec::new();
    for _ in 0..BINDINGS {
        let store = Arc::new(MemoryStore::new());
        let binding = register_with_ticket(&sb, &*store, TicketSpec::default()).await;
        let client = RalioClient::builder()
            .base_url(sb.base_url())
            .store(store)
            .retry_policy(
                RetryPolicy::new()
                    .with_backoff(Duration::from_millis(2), Duration::from_millis(40))
                    .with_max_retry_after(Duration::from_secs(1)),
            )
            .read_idle_timeout(Some(Duration::from_secs(5)))
            .build()
            .await
            .unwrap();
        clients.push(client);
        client_ids.push(binding.client_id);
    }
    let before = sb.counters();
    sb.set_faults(load_faults(false));

    // Chaos: rotate nonces, flip stream cuts, revoke one refresh family after another.
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (sb, stop, ids) = (Arc::clone(&sb), Arc::clone(&stop), client_ids.clone());
        tokio::spawn(async move {
            let mut tick = 0usize;
            let mut revocations = 0usize;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(150)).await;
                tick += 1;
                sb.rotate_nonce();
                let mut faults = load_faults(tick % 4 == 1);
                if tick % 4 == 3 {
                    faults.stream_error_after = Some(1);
                }
                sb.set_faults(faults);
                if tick.is_multiple_of(5) {
                    sb.revoke_refresh_family(&ids[(tick / 5) % ids.len()])
                        .unwrap();
                    revocations += 1;
                }
            }
            revocations
        })
    };

    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..BINDINGS * TASKS_PER_BINDING {
        // Four tasks share each client: its token manager is hit concurrently.
        let client = clients[task % BINDINGS].clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            for call in 0..CALLS_PER_TASK {
                let kind = (task + call) % 5;
                let reference = format!("soak-{task}-{call}");
                let outcome =
                    tokio::time::timeout(CALL_TIMEOUT, one_call(&client, kind, &reference)).await;
                let outcome = match outcome {
                    Ok(o) => o,
                    Err(_) => panic!("call {kind} of task {task} hung for {CALL_TIMEOUT:?}"),
                };
                if kind >= 3 {
                    tally.chat_calls += 1;
                }
                match outcome {
                    Ok(paid) => {
                        tally.ok += 1;
                        if paid {
                            tally.paid_ok.push(reference);
                        }
                    }
                    Err(e) => {
                        *tally.errors.entry(class(&e)).or_default() += 1;
                        tally
                            .examples
                            .entry(class(&e))
                            .or_insert_with(|| error_chain(&e));
                    }
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    let joined = tokio::time::timeout(RUN_DEADLINE, futures::future::join_all(tasks))
        .await
        .expect("the soak run passed its deadline");
    for t in joined {
        let t = t.expect("a soak task panicked");
        total.ok += t.ok;
        total.chat_calls += t.chat_calls;
        total.paid_ok.extend(t.paid_ok);
        total.examples.extend(t.examples);
        for (k, v) in t.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let revocations = chaos.await.unwrap();
    sb.set_faults(Faults::default());
    let after = sb.counters();

    let calls = BINDINGS * TASKS_PER_BINDING * CALLS_PER_TASK;
    let failed: usize = total.errors.values().sum();
    eprintln!(
        "soak: {calls} calls in {elapsed:?}: {} ok, {failed} typed errors {:?}; {} chat calls; \
         {revocations} families revoked",
        total.ok, total.errors, total.chat_calls
    );
    for (class, example) in &total.examples {
        eprintln!("soak: e.g. {class}: {example}");
    }
    assert_eq!(
        total.ok + failed,
        calls,
        "every call ended in Ok or a typed error"
    );
    // The faults are real but not overwhelming: most calls must get through.
    assert!(
        total.ok * 2 > calls,
        "fewer than half the calls succeeded: {total:?}"
    );
    // Errors that would mean the SDK itself is broken, not that the server faulted.
    for bad in ["decode", "config", "middleware", "registration", "other"] {
        assert!(!total.errors.contains_key(bad), "{bad} errors: {total:?}");
    }

    // No chat message processed twice: one payment intent per reference at most.
    let checker = &clients[0];
    let intents: Vec<_> = checker.payment_intents().all().try_collect().await.unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for intent in &intents {
        for leg in &intent.instructions {
            if let Some(r) = leg.reference.as_deref().filter(|r| r.starts_with("soak-")) {
                *seen.entry(r.to_owned()).or_default() += 1;
            }
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "chat messages processed twice: {twice:?}");
    for r in &total.paid_ok {
        assert_eq!(
            seen.get(r),
            Some(&1),
            "chat call {r} succeeded without its payment"
        );
    }
    assert!(seen.len() <= total.chat_calls);
    let chat_requests = |c: &ralio_sandbox::Counters| {
        c.requests.get("POST /api/chat").copied().unwrap_or(0)
            + c.requests
                .get("POST /api/chat/stream")
                .copied()
                .unwrap_or(0)
    };
    eprintln!(
        "soak: {} chat requests reached the server for {} chat calls ({} processed)",
        chat_requests(&after) - chat_requests(&before),
        total.chat_calls,
        seen.len()
    );

    // No retry storm at the token endpoint.
    let token_requests =
        |c: &ralio_sandbox::Counters| c.requests.get("POST /oauth/token").copied().unwrap_or(0);
    let token = token_requests(&after) - token_requests(&before);
    let grants = (after.token_mints - before.token_mints) + (after.refreshes - before.refreshes);
    let budget = token_budget(elapsed, revocations);
    eprintln!(
        "soak: token endpoint: {token} requests, {} mints, {} refreshes, budget {budget}",
        after.token_mints - before.token_mints,
        after.refreshes - before.refreshes
    );
    assert!(
        token <= budget,
        "token endpoint storm: {token} requests > {budget}"
    );
    assert!(grants <= token);

    // The clients still work once the faults stop.
    for client in &clients {
        assert_eq!(client.agents().list().await.unwrap().len(), 1);
    }
    let _ = checker
        .chat()
        .stream("balance")
        .await
        .unwrap()
        .count()
        .await;
}

/// Found by the soak: registration's first token request did not answer a `use_dpop_nonce`
/// challenge, so registering against a server that requires nonces failed after the binding
/// was created.
#[tokio::test]
async fn registration_mints_its_first_token_from_a_server_that_requires_nonces() {
    let sb = Sandbox::builder()
        .nonce_mode(NonceMode::Require)
        .start()
        .await
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let binding = register_with_ticket(&sb, &*store, TicketSpec::default()).await;
    assert!(binding.client_id.starts_with("cb_"));
    let counters = sb.counters();
    assert_eq!(counters.token_mints, 1);
    // One challenged try and one that carried the nonce: no loop.
    assert_eq!(counters.requests.get("POST /oauth/token"), Some(&2));
}
