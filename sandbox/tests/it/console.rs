//! The owner's console over plain HTTP: where it is served, what it sends, how it escapes, its
//! event stream, and the guard that keeps other origins' pages from writing to the admin API.
//! (The CLI's `console` tests drive it in a real browser.)

use std::time::Duration;

use ralio_sandbox::Sandbox;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, ORIGIN};
use serde_json::Value;

use crate::common::{Session, http};

async fn get(url: &str) -> reqwest::Response {
    http().get(url).send().await.unwrap()
}

#[tokio::test]
async fn served_with_the_admin_api_only_and_only_to_its_own_host() {
    let sb = Sandbox::builder().start().await.unwrap();
    assert_eq!(sb.console_url(), None);
    let res = get(&format!("{}/sandbox/console", sb.base_url())).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let sb = Sandbox::builder().admin_api(true).start().await.unwrap();
    let console = sb.console_url().unwrap();
    assert_eq!(console, format!("{}/sandbox/console", sb.base_url()));
    let port = sb.local_addr().port();
    for path in ["", "/fragment", "/console.js", "/console.css", "/events"] {
        let res = http()
            .get(format!("{console}{path}"))
            .header(HOST, format!("rebind.example:{port}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
}

#[tokio::test]
async fn the_page_loads_nothing_from_elsewhere_and_cannot_be_framed() {
    let sb = Sandbox::builder().admin_api(true).start().await.unwrap();
    let console = sb.console_url().unwrap();
    for (path, content_type) in [
        ("", "text/html; charset=utf-8"),
        ("/fragment", "text/html; charset=utf-8"),
        ("/console.js", "text/javascript; charset=utf-8"),
        ("/console.css", "text/css; charset=utf-8"),
    ] {
        let res = get(&format!("{console}{path}")).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let h = res.headers();
        assert_eq!(h[CONTENT_TYPE], content_type, "{path}");
        let csp = h[CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(!csp.contains("http"), "no other origin is allowed: {csp}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cross-origin-resource-policy"], "same-origin");
        assert_eq!(h["cache-control"], "no-store");
        let body = res.text().await.unwrap();
        // Nothing names another origin: every reference is a path on this one.
        let without_own = body.replace(sb.base_url(), "");
        assert!(
            !without_own.contains("http://") && !without_own.contains("https://"),
            "{path} names another origin"
        );
        assert!(!body.contains("<script>"), "{path}: no inline script");
        assert!(!body.contains("style=\""), "{path}: no inline style");
    }
}

#[tokio::test]
async fn everything_from_the_state_is_escaped() {
    let sb = Sandbox::builder().admin_api(true).start().await.unwrap();
    let s = Session::start(&sb).await;
    let reply = s
        .chat(
            &sb.default_agent_id(),
            "Pay £250 to <script>alert(1)</script> for \"><img src=x onerror=alert(2)>",
        )
        .await;
    assert!(
        reply["reply"]
            .as_str()
            .unwrap()
            .contains("pending approval")
    );
    let page = get(&sb.console_url().unwrap()).await.text().await.unwrap();
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        page.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img"), "{page}");
}

#[tokio::test]
async fn the_event_stream_says_when_something_changed_and_ends_with_the_sandbox() {
    let sb = Sandbox::builder().admin_api(true).start().await.unwrap();
    let s = Session::start(&sb).await;
    let mut res = get(&format!("{}/events", sb.console_url().unwrap())).await;
    assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
    let opening = res.chunk().await.unwrap().unwrap();
    assert!(opening.starts_with(b"retry:"), "{opening:?}");

    // A chat that proposes a payment, and the owner's decision through the Rust API: each is
    // news to an open page.
    s.chat(&sb.default_agent_id(), "Pay £250 to Erin").await;
    let next = res.chunk().await.unwrap().unwrap();
    assert_eq!(&next[..], b"event: changed\ndata: {}\n\n");
    let id = sb.pending_intent_ids()[0].clone();
    sb.approve_intent(&id).unwrap();
    let next = res.chunk().await.unwrap().unwrap();
    assert_eq!(&next[..], b"event: changed\ndata: {}\n\n");

    // Stopping the sandbox ends the stream (an open page does not keep it running).
    drop(sb);
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match res.chunk().await {
                Ok(Some(c)) if c.starts_with(b":") => continue,
                other => return other.map(|c| c.is_none()).unwrap_or(true),
            }
        }
    })
    .await;
    assert_eq!(end, Ok(true), "the stream did not end");
}

#[tokio::test]
async fn other_origins_cannot_write_to_the_admin_api() {
    let sb = Sandbox::builder().admin_api(true).start().await.unwrap();
    let mint = format!("{}/sandbox/tickets", sb.base_url());
    let own = sb.base_url().to_owned();
    let port = sb.local_addr().port();
    let send = |headers: Vec<(&'static str, String)>,
                body: Option<(&'static str, &'static str)>| {
        let mut req = http().post(&mint);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        if let Some((content_type, body)) = body {
            req = req.header(CONTENT_TYPE, content_type).body(body);
        }
        req.send()
    };
    let refused = |res: reqwest::Response, status: StatusCode| async move {
        assert_eq!(res.status(), status);
        let body: Value = res.json().await.unwrap();
        body["detail"].as_str().unwrap().to_owned()
    };

    // What a page of another origin sends with a form post or a fetch.
    for (name, value) in [
        (ORIGIN.as_str(), "http://attacker.example".to_owned()),
        (ORIGIN.as_str(), "null".to_owned()),
        (
            ORIGIN.as_str(),
            format!("http://localhost:{}", port.wrapping_add(1)),
        ),
        (ORIGIN.as_str(), format!("https://127.0.0.1:{port}")),
        ("sec-fetch-site", "cross-site".to_owned()),
        ("sec-fetch-site", "same-site".to_owned()),
    ] {
        let res = send(vec![(name, value.clone())], None).await.unwrap();
        let detail = refused(res, StatusCode::FORBIDDEN).await;
        assert!(
            detail.contains("other origins"),
            "{name}: {value}: {detail}"
        );
    }
    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain;charset=UTF-8",
    ] {
        let res = send(vec![], Some((content_type, "{}"))).await.unwrap();
        let detail = refused(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        assert!(detail.contains("JSON"), "{content_type}: {detail}");
    }
    // A preflight for a JSON write is not granted.
    let res = http()
        .request(reqwest::Method::OPTIONS, &mint)
        .header(ORIGIN, "http://attacker.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // The console's own requests, and programs (no Origin), are served.
    for headers in [
        vec![
            (ORIGIN.as_str(), own.clone()),
            ("sec-fetch-site", "same-origin".to_owned()),
        ],
        vec![],
    ] {
        let res = send(headers.clone(), Some(("application/json", "{}")))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{headers:?}");
    }
    let res = http().post(&mint).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "no body, no headers");
    // Reading stays open to any page's navigation (nothing changes).
    let res = http()
        .get(sb.console_url().unwrap())
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
