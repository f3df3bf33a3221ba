//! Paging, validation, rate limiting, faults, the admin API, legacy registration, the binary.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use ralio_sandbox::{Faults, Sandbox, TicketSpec};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::agent::read_stream;
use crate::common::*;

#[tokio::test]
async fn lists_are_paged_newest_first_and_validated() {
    let sb = Sandbox::builder().start().await.unwrap();
    let s = Session::start(&sb).await;
    let agent = sb.default_agent_id();
    for i in 1..=7 {
        s.chat(&agent, &format!("pay {i} to Payee{i}")).await;
    }
    let p1 = s.get_json("/api/transactions?page=1&per_page=3").await;
    assert_eq!(
        (
            p1["total"].as_u64(),
            p1["page"].as_u64(),
            p1["per_page"].as_u64()
        ),
        (Some(7), Some(1), Some(3))
    );
    let creditors: Vec<&str> = p1["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["creditor"].as_str().unwrap())
        .collect();
    assert_eq!(creditors, ["Payee7", "Payee6", "Payee5"]);
    let p3 = s.get_json("/api/transactions?page=3&per_page=3").await;
    assert_eq!(p3["transactions"].as_array().unwrap().len(), 1);
    assert_eq!(p3["transactions"][0]["creditor"], "Payee1");
    let p4 = s.get_json("/api/transactions?page=4&per_page=3").await;
    assert_eq!(p4["transactions"], json!([]));
    assert_eq!(p4["total"], 7);
    let defaults = s.get_json("/api/payment-intents").await;
    assert_eq!(
        (
            defaults["page"].as_u64(),
            defaults["per_page"].as_u64(),
            defaults["total"].as_u64()
        ),
        (Some(1), Some(50), Some(7))
    );
    let mine = s
        .get_json(&format!("/api/transactions?agent_id={agent}"))
        .await;
    assert_eq!(mine["total"], 7);

    for (query, kind, field) in [
        ("page=0", "greater_than_equal", "page"),
        ("page=-1", "greater_than_equal", "page"),
        ("page=abc", "int_parsing", "page"),
        ("per_page=0", "greater_than_equal", "per_page"),
        ("per_page=201", "less_than_equal", "per_page"),
    ] {
        let res = s
            .call(Method::GET, &format!("/api/transactions?{query}"), None)
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["detail"][0]["type"], kind, "{query}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", field]), "{query}");
    }
    let res = s
        .call(
            Method::GET,
            "/api/payment-intents?agent_id=agt_someone_else",
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let sb = Sandbox::builder()
        .rate_limit(Some(2))
        .start()
        .await
        .unwrap();
    let s = Session::start(&sb).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let res = s.call(Method::GET, "/api/agents", None).await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
        }
        statuses.push(res.status());
    }
    // Six requests cannot all fit in one-second windows of two.
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::OK));
    assert_eq!(retry_after.as_deref(), Some("1"));
    // Another binding has its own budget.
    let other = Session::start(&sb).await;
    assert_eq!(
        other.call(Method::GET, "/api/agents", None).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn faults_fail_next_requests_and_fractions() {
    let sb = Sandbox::builder().start().await.unwrap();
    let s = Session::start(&sb).await;
    let mut fail_next = std::collections::BTreeMap::new();
    fail_next.insert("GET /api/agents".to_owned(), 2);
    sb.set_faults(Faults {
        fail_next,
        error_status: 503,
        ..Faults::default()
    });
    assert_eq!(
        s.call(Method::GET, "/api/agents", None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        s.call(Method::GET, "/api/transactions", None)
            .await
            .status(),
        StatusCode::OK,
        "other routes unaffected"
    );
    assert_eq!(
        s.call(Method::GET, "/api/agents", None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        s.call(Method::GET, "/api/agents", None).await.status(),
        StatusCode::OK
    );
    assert_eq!(sb.counters().requests["GET /api/agents"], 3);

    sb.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let res = s
        .call(
            Method::POST,
            "/api/chat",
            Some(json!({ "agent_id": sb.default_agent_id(), "message": "pay 5 to A" })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    sb.set_faults(Faults::default());
    assert_eq!(
        s.get_json("/api/transactions").await["total"],
        0,
        "a failed request did nothing"
    );
    assert_eq!(sb.counters().chat_posts, 1);
}

#[tokio::test]
async fn stream_faults_cut_or_error_mid_way() {
    let sb = Sandbox::builder()
        .faults(Faults {
            stream_cut_after: Some(2),
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    let s = Session::start(&sb).await;
    let url = s.url("/api/chat/stream");
    let send = || {
        let proof = s.key.proof("POST", &url, Some(&s.access), None);
        http()
            .post(&url)
            .header("Authorization", format!("DPoP {}", s.access))
            .header("DPoP", proof)
            .json(&json!({ "agent_id": sb.default_agent_id(), "message": "balance?" }))
            .send()
    };
    let (_, events, failure) = read_stream(send().await.unwrap()).await;
    assert!(failure.is_some(), "the connection is cut mid-body");
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|(n, _)| n != "reply"));

    sb.set_faults(Faults {
        stream_error_after: Some(1),
        ..Faults::default()
    });
    let (_, events, failure) = read_stream(send().await.unwrap()).await;
    assert!(failure.is_none());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["conversation", "error"]);
    assert!(events[1].1["message"].is_string());
}

#[tokio::test]
async fn admin_api_only_when_enabled() {
    let sb = Sandbox::builder().start().await.unwrap();
    let res = http()
        .post(format!("{}/sandbox/tickets", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let sb = Sandbox::builder().admin_api(true).start().await.unwrap();
    let admin = |p: &str| format!("{}/sandbox/{p}", sb.base_url());
    let res = http()
        .post(admin("tickets"))
        .json(&json!({ "scopes": ["transactions:read"], "expires_in": 60 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let ticket = res.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ticket.starts_with("ralio-reg-"));
    let key = Key::new();
    let res = http()
        .post(format!(
            "{}/api/credential-bindings/registrations",
            sb.base_url()
        ))
        .json(&json!({ "ticket": ticket, "public_key_jwk": key.jwk() }))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scopes"], json!(["transactions:read"]));
    let client_id = body["client_id"].as_str().unwrap().to_owned();
    assert_eq!(
        mint_with(&sb, &key, &client_id, None).await.status(),
        StatusCode::OK
    );

    let counters: Value = http()
        .get(admin("counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["token_mints"], 1);
    assert_eq!(counters["requests"]["POST /oauth/token"], 1);

    let res = http()
        .put(admin("faults"))
        .json(&json!({ "latency_ms": 5, "clock_offset_secs": -30 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(sb.faults().latency, Duration::from_millis(5));
    assert_eq!(sb.faults().clock_offset_secs, -30);

    let res = http()
        .post(admin(&format!("bindings/{client_id}/revoke")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        mint_with(&sb, &key, &client_id, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = http()
        .post(admin("payment-intents/pi_nope/approve"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        res.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("pi_nope")
    );
}

#[tokio::test]
async fn legacy_registration_polls_until_decided() {
    let sb = Sandbox::builder()
        .legacy_registration(true)
        .admin_api(true)
        .start()
        .await
        .unwrap();
    let register = |key: &Key| {
        let body =
            json!({ "ticket": sb.mint_ticket(TicketSpec::default()), "public_key_jwk": key.jwk() });
        http()
            .post(format!(
                "{}/api/credential-bindings/registrations",
                sb.base_url()
            ))
            .json(&body)
            .send()
    };
    let poll = |token: &str| {
        http()
            .get(format!(
                "{}/api/credential-bindings/registrations/{token}",
                sb.base_url()
            ))
            .send()
    };

    let key = Key::new();
    let res = register(&key).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("client_id").is_none());
    assert_eq!(body["fingerprint"], key.jkt());
    let token = body["poll_token"].as_str().unwrap().to_owned();
    assert_eq!(
        poll(&token).await.unwrap().json::<Value>().await.unwrap()["status"],
        "pending_approval"
    );
    assert_eq!(sb.pending_binding_fingerprints(), vec![key.jkt()]);
    // The same key cannot be registered twice while pending.
    let res = register(&key).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);

    // Approve through the admin API, by fingerprint.
    let res = http()
        .post(format!(
            "{}/sandbox/registrations/{}/approve",
            sb.base_url(),
            key.jkt()
        ))
        .send()
        .await
        .unwrap();
    let client_id = res.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body: Value = poll(&token).await.unwrap().json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["client_id"].as_str()),
        (Some("active"), Some(client_id.as_str()))
    );
    assert_eq!(
        mint_with(&sb, &key, &client_id, None).await.status(),
        StatusCode::OK
    );

    // Rejected.
    let key2 = Key::new();
    let token2 = register(&key2)
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["poll_token"]
        .as_str()
        .unwrap()
        .to_owned();
    sb.reject_binding(&token2).unwrap();
    assert_eq!(
        poll(&token2).await.unwrap().json::<Value>().await.unwrap()["status"],
        "rejected"
    );
    assert!(
        sb.approve_binding(&token2).is_err(),
        "a decided registration cannot be decided again"
    );

    // Expired: the server's clock moves past the 15-minute window.
    let key3 = Key::new();
    let token3 = register(&key3)
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["poll_token"]
        .as_str()
        .unwrap()
        .to_owned();
    sb.set_faults(Faults {
        clock_offset_secs: 16 * 60,
        ..Faults::default()
    });
    assert_eq!(
        poll(&token3).await.unwrap().json::<Value>().await.unwrap()["status"],
        "expired"
    );

    assert_eq!(
        poll("rpt_unknown").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn openapi_document_and_date_header_are_served() {
    let sb = Sandbox::builder().start().await.unwrap();
    let res = http()
        .get(format!("{}/openapi.json", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("date"));
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    // Every Ralio route the sandbox serves is in the document it serves.
    for (method, path) in [
        ("post", "/api/credential-bindings/registrations"),
        ("get", "/api/credential-bindings/registrations/{poll_token}"),
        ("post", "/oauth/token"),
        ("get", "/api/agents"),
        ("post", "/api/chat"),
        ("post", "/api/chat/stream"),
        ("get", "/api/transactions"),
        ("get", "/api/payment-intents"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from openapi.json"
        );
    }
    let per_page = &doc["paths"]["/api/transactions"]["get"]["parameters"][1]["schema"];
    assert_eq!(
        per_page["maximum"], 200,
        "paging limits agree with the document"
    );
    let res = http()
        .get(format!("{}/nowhere", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.headers().contains_key("date"));
}

#[tokio::test]
async fn sandbox_stops_when_dropped() {
    let sb = Sandbox::builder().start().await.unwrap();
    let url = format!("{}/openapi.json", sb.base_url());
    assert!(http().get(&url).send().await.is_ok());
    drop(sb);
    let mut refused = false;
    for _ in 0..50 {
        if reqwest::Client::new().get(&url).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the port stops answering after drop");
}

#[tokio::test]
async fn binary_prints_one_json_line_and_serves() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ralio-sandbox"))
        .args(["--addr", "127.0.0.1:0", "--seed", "9"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    let base = info["base_url"].as_str().unwrap().to_owned();
    let ticket = info["ticket"].as_str().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"));
    assert!(ticket.starts_with("ralio-reg-"));
    // The owner's console, beside the API (the admin API is on for a loopback address).
    assert_eq!(info["console_url"], format!("{base}/sandbox/console"));
    assert_eq!(info.as_object().unwrap().len(), 3);

    let key = Key::new();
    let res = http()
        .post(format!("{base}/api/credential-bindings/registrations"))
        .json(&json!({ "ticket": ticket, "public_key_jwk": key.jwk() }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    // The admin API is on for a loopback address.
    let res = http()
        .get(format!("{base}/sandbox/counters"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["registrations"], 1);
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("POST /api/credential-bindings/registrations"),
        "{log}"
    );
    assert!(!log.contains(&ticket), "the ticket never reaches the log");
}

#[tokio::test]
async fn builder_refuses_bad_settings_and_busy_ports() {
    let err = Sandbox::builder()
        .rate_limit(Some(0))
        .start()
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ralio_sandbox::SandboxError::InvalidConfig {
            setting: "rate_limit",
            ..
        }
    ));
    let busy = Sandbox::builder().start().await.unwrap();
    let addr: std::net::SocketAddr = busy
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let err = Sandbox::builder().addr(addr).start().await.unwrap_err();
    assert!(matches!(err, ralio_sandbox::SandboxError::Bind { .. }));
    assert!(
        std::error::Error::source(&err).is_some(),
        "the io error is chained"
    );
}

#[tokio::test]
async fn latency_fault_still_answers() {
    let sb = Sandbox::builder()
        .faults(Faults {
            latency: Duration::from_millis(30),
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    let s = Session::start(&sb).await;
    let before = sb.counters().injected_latency_ms;
    assert_eq!(
        s.call(Method::GET, "/api/agents", None).await.status(),
        StatusCode::OK
    );
    // The sandbox's own record, not a wall clock: this one request was held back 30 ms before
    // it was answered.
    assert_eq!(sb.counters().injected_latency_ms - before, 30);
    assert!(before > 0, "the session's own requests were delayed too");
}

#[tokio::test]
async fn refresh_can_narrow_but_not_widen() {
    let sb = Sandbox::builder().start().await.unwrap();
    let s = Session::start(&sb).await;
    let res = token_request(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &s.refresh),
            ("client_id", &s.client_id),
            ("scope", "transactions:read"),
        ],
        None,
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], "transactions:read");
    let rt = body["refresh_token"].as_str().unwrap();
    let res = token_request(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &s.client_id),
            ("scope", "agents:execute"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_scope");
    // Not a form body: FastAPI's 422 for the missing form field; unknown grant: OAuth error.
    let res = http()
        .post(sb.token_url())
        .json(&json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        res.json::<Value>().await.unwrap()["detail"][0]["loc"],
        json!(["body", "grant_type"])
    );
    let res = token_request(&sb, &[("grant_type", "password")], None).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
}

#[tokio::test]
async fn absurd_fault_values_do_not_crash_the_server() {
    let sb = Sandbox::builder().admin_api(true).start().await.unwrap();
    let res = http()
        .put(format!("{}/sandbox/faults", sb.base_url()))
        .json(&json!({ "clock_offset_secs": i64::MAX, "error_rate": -3.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http()
        .get(format!("{}/openapi.json", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ticket = sb.mint_ticket(TicketSpec {
        expires_in: Duration::MAX,
        ..TicketSpec::default()
    });
    assert!(ticket.starts_with("ralio-reg-"));
}

#[test]
fn public_types_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Sandbox>();
    assert_send_sync::<ralio_sandbox::SandboxBuilder>();
    assert_send_sync::<ralio_sandbox::SandboxError>();
}

#[tokio::test]
async fn admin_api_refuses_a_host_that_is_not_the_sandbox_dns_rebinding() {
    // A web page that rebinds its own name to 127.0.0.1 reaches the port, but its requests say
    // `Host: attacker.example:PORT`: the admin API must not mint a ticket for it.
    let sb = Sandbox::builder().admin_api(true).start().await.unwrap();
    let port = sb.local_addr().port();
    let mint = |host: String| {
        http()
            .post(format!("{}/sandbox/tickets", sb.base_url()))
            .header(reqwest::header::HOST, host)
            .json(&json!({ "scopes": ["transactions:read"] }))
            .send()
    };
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_owned(),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        format!("127.0.0.1.attacker.example:{port}"),
    ] {
        let res = mint(host.clone()).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{host}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains("DNS rebinding"),
            "{body}"
        );
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
    ] {
        let res = mint(host.clone()).await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{host}");
    }
    // The API itself is not behind the check (its requests are signed; a proxy may rewrite Host).
    let res = http()
        .get(format!("{}/openapi.json", sb.base_url()))
        .header(reqwest::header::HOST, "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Behind a public URL, its host names the sandbox too.
    let sb = Sandbox::builder()
        .admin_api(true)
        .public_url(Some("https://sandbox.test.example"))
        .start()
        .await
        .unwrap();
    let local = format!("http://{}/sandbox/counters", sb.local_addr());
    for (host, status) in [
        ("sandbox.test.example", StatusCode::OK),
        ("sandbox.test.example:443", StatusCode::OK),
        ("attacker.example", StatusCode::FORBIDDEN),
    ] {
        let res = http()
            .get(&local)
            .header(reqwest::header::HOST, host)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{host}");
    }
}
