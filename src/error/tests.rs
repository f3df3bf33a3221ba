//! The taxonomy's unit tests: statuses to variants, messages, retryability.

use super::*;
use crate::transport::body::ERROR_BODY_CAP;
use crate::transport::retry::{RETRY_AFTER_MAX, parse_retry_after};
use http::{HeaderMap, HeaderValue};
use std::time::SystemTime;

fn api(status: u16, headers: &[(&str, &str)], body: &str) -> Error {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let e = ApiError::from_parts(StatusCode::from_u16(status).unwrap(), &map, body.as_bytes())
        .with_operation("transactions.list");
    Error::from_api_error(e)
}

#[test]
fn statuses_map_to_the_variants_of_the_official_sdks() {
    assert!(matches!(api(401, &[], ""), Error::Auth(_)));
    assert!(matches!(api(403, &[], ""), Error::Permission(_)));
    assert!(matches!(api(404, &[], ""), Error::NotFound(_)));
    assert!(matches!(api(422, &[], ""), Error::Validation(_)));
    assert!(matches!(api(429, &[], ""), Error::RateLimit(_)));
    assert!(matches!(api(400, &[], ""), Error::Api(_)));
    assert!(matches!(api(500, &[], ""), Error::Api(_)));
    assert!(matches!(api(503, &[], ""), Error::Api(_)));
}

#[test]
fn fastapi_string_detail() {
    let e = api(
        404,
        &[("x-request-id", "req-7")],
        r#"{"detail":"Payment intent not found"}"#,
    );
    assert_eq!(e.detail(), Some("Payment intent not found"));
    assert_eq!(e.request_id(), Some("req-7"));
    assert_eq!(e.status(), Some(StatusCode::NOT_FOUND));
    assert!(!e.is_retryable());
}

#[test]
fn fastapi_validation_list_names_the_fields() {
    let body = r#"{"detail":[{"loc":["query","page"],"msg":"Input should be greater than or equal to 1","type":"greater_than_equal"},{"loc":["query","per_page",0],"msg":"bad"}]}"#;
    let e = api(422, &[], body);
    assert_eq!(
        e.detail(),
        Some("query.page: Input should be greater than or equal to 1; query.per_page.0: bad")
    );
    assert!(e.api_error().unwrap().body().unwrap()["detail"].is_array());
    let issues = e.api_error().unwrap().validation_errors();
    // The second item lacks the documented `type`: it is described, not read as a field
    // error.
    assert_eq!(issues.len(), 1);
    let loc: Vec<String> = issues[0].loc.iter().map(ToString::to_string).collect();
    assert_eq!(loc, ["query", "page"]);
    assert_eq!(issues[0].msg, "Input should be greater than or equal to 1");
    assert_eq!(issues[0].type_, "greater_than_equal");
    let documented = api(
        422,
        &[],
        r#"{"detail":[{"loc":["body","amount"],"msg":"too big","type":"less_than"},{"loc":["query","per_page",0],"msg":"bad","type":"int"}]}"#,
    );
    assert_eq!(
        documented.detail(),
        Some("body.amount: too big; query.per_page.0: bad")
    );
    assert_eq!(documented.api_error().unwrap().validation_errors().len(), 2);
    // Any other body has no field errors.
    let other = api(400, &[], r#"{"detail":"bad request"}"#);
    assert!(other.api_error().unwrap().validation_errors().is_empty());
}

#[test]
fn registration_detail_object_with_used_at_and_host() {
    let body = r#"{"detail":{"error":"ticket_already_consumed","error_description":"This ticket was already used","used_at":"2026-04-01T10:00:00Z","used_by_host":"build-7"}}"#;
    let e = api(409, &[], body);
    assert_eq!(e.code(), Some("ticket_already_consumed"));
    assert_eq!(
        e.detail(),
        Some("This ticket was already used (used at 2026-04-01T10:00:00Z by build-7)")
    );
}

#[test]
fn oauth_body() {
    let e = api(
        400,
        &[],
        r#"{"error":"invalid_grant","error_description":"refresh token replayed"}"#,
    );
    assert_eq!(e.code(), Some("invalid_grant"));
    assert_eq!(e.detail(), Some("refresh token replayed"));
}

#[test]
fn raw_text_and_empty_bodies() {
    let e = api(502, &[], "  <html>Bad gateway</html>\n");
    assert_eq!(e.detail(), Some("<html>Bad gateway</html>"));
    assert!(e.is_retryable());
    let e = api(500, &[], "");
    assert_eq!(e.detail(), None);
    let e = api(500, &[], "null");
    assert_eq!(e.detail(), None);
    let e = api(500, &[], r#"{"unexpected":true}"#);
    assert_eq!(e.detail(), Some(r#"{"unexpected":true}"#));
}

#[test]
fn huge_bodies_are_capped_in_messages() {
    let body = "x".repeat(10 * ERROR_BODY_CAP);
    let e = api(500, &[], &body);
    assert_eq!(e.detail().unwrap().len(), ERROR_BODY_CAP);
    let shown = e.to_string();
    assert!(shown.len() < 1000, "message is {} bytes", shown.len());
    assert!(shown.contains('…'));
}

#[test]
fn www_authenticate_fills_in_a_missing_detail() {
    let e = api(
        401,
        &[(
            "www-authenticate",
            r#"DPoP error="invalid_dpop_proof", error_description="htu does not match \"x\"", algs="ES256""#,
        )],
        "",
    );
    assert_eq!(e.code(), Some("invalid_dpop_proof"));
    assert_eq!(e.detail(), Some(r#"htu does not match "x""#));
    assert!(e.www_authenticate().unwrap().starts_with("DPoP "));
    // With a body detail, the header still gives the code.
    let e = api(
        401,
        &[("www-authenticate", "DPoP error=invalid_token")],
        r#"{"detail":"token expired"}"#,
    );
    assert_eq!(e.code(), Some("invalid_token"));
    assert_eq!(e.detail(), Some("token expired"));
}

#[test]
fn retry_after_seconds_and_date() {
    let e = api(429, &[("retry-after", "3")], r#"{"detail":"slow down"}"#);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert!(e.is_retryable());
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let later = httpdate::fmt_http_date(now + Duration::from_secs(10));
    assert_eq!(
        parse_retry_after(&later, now),
        Some(Duration::from_secs(10))
    );
    let earlier = httpdate::fmt_http_date(now - Duration::from_secs(10));
    assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-1", now), None);
    for huge in ["18446744073709551615", "1e300", "99999999999999999999999"] {
        let wait = parse_retry_after(huge, now);
        assert!(
            wait.is_none_or(|w| w <= RETRY_AFTER_MAX),
            "{huge}: {wait:?}"
        );
        assert!(wait.is_none_or(|w| std::time::Instant::now().checked_add(w).is_some()));
    }
    assert_eq!(
        parse_retry_after("18446744073709551615", now),
        Some(RETRY_AFTER_MAX)
    );
}

#[test]
fn messages_tell_the_caller_what_to_do() {
    let cases = vec![
        api(
            401,
            &[(
                "www-authenticate",
                r#"DPoP error="invalid_token", error_description="token revoked""#,
            )],
            "",
        ),
        api(
            403,
            &[("x-request-id", "req-1")],
            r#"{"detail":"Missing scope: transactions:read"}"#,
        ),
        api(404, &[], r#"{"detail":"Not Found"}"#),
        api(
            422,
            &[],
            r#"{"detail":[{"loc":["query","page"],"msg":"Input should be greater than or equal to 1"}]}"#,
        ),
        api(
            429,
            &[("retry-after", "2")],
            r#"{"detail":"Rate limit exceeded"}"#,
        ),
        api(503, &[], "upstream unavailable"),
        api(500, &[], ""),
        Error::from_api_error(
            ApiError::from_parts(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"")
                .with_operation("chat.send"),
        ),
        Error::Config(ConfigError::NoCredentials {
            searched: vec!["/home/me/.ralio/credentials.json".into()],
        }),
        Error::Config(ConfigError::NoCredentials {
            searched: vec![
                "/home/me/.ralio/credentials.json (RALIO_CONFIG_DIR or ~/.ralio)".into(),
                "the environment (RALIO_CLIENT_ID is unset)".into(),
            ],
        }),
        Error::Config(ConfigError::InsecureUrl {
            host: "api.example.com".into(),
        }),
        Error::Config(ConfigError::AmbiguousAgent {
            count: 2,
            ids: vec!["ag_1".into(), "ag_2".into()],
        }),
        Error::Config(ConfigError::ScopeNotGranted {
            scope: crate::Scope::AgentsConfig,
            granted: vec![crate::Scope::AgentsExecute, crate::Scope::TransactionsRead],
        }),
        Error::Timeout {
            what: Awaited::Decision {
                intent_id: "pi_1".into(),
            },
            waited: Duration::from_secs(30),
        },
    ];
    let shown: Vec<String> = cases.iter().map(ToString::to_string).collect();
    insta::assert_yaml_snapshot!(shown);
}

#[test]
fn api_errors_have_no_source_so_nothing_prints_twice() {
    use std::error::Error as _;
    let e = api(500, &[], "boom");
    assert!(e.source().is_none());
    assert_eq!(e.to_string().matches("boom").count(), 1);
}

/// `Error::is_retryable` and the retry layer answer from the same classifier: for every
/// error status, "retryable" means the layer retries a GET; a POST only on 429.
#[test]
fn is_retryable_and_the_policy_agree_on_every_status() {
    use crate::transport::retry::{Outcome, retryable};
    use http::Method;
    let expected_get = [408, 429, 502, 503, 504];
    for code in 400..=599u16 {
        let status = StatusCode::from_u16(code).unwrap();
        let err = Error::from_api_error(ApiError::from_parts(status, &http::HeaderMap::new(), b""));
        let get = retryable(&Method::GET, Outcome::of_status(status));
        assert_eq!(err.is_retryable(), get, "{code}");
        assert_eq!(get, expected_get.contains(&code), "GET {code}");
        assert_eq!(
            retryable(&Method::POST, Outcome::of_status(status)),
            code == 429,
            "POST {code}"
        );
    }
    // The two statuses the two definitions used to disagree on.
    for code in [408, 500] {
        let status = StatusCode::from_u16(code).unwrap();
        let err = Error::from_api_error(ApiError::from_parts(status, &http::HeaderMap::new(), b""));
        assert_eq!(
            err.is_retryable(),
            retryable(&Method::GET, Outcome::of_status(status))
        );
    }
    assert!(
        !Error::from_api_error(ApiError::from_parts(
            StatusCode::INTERNAL_SERVER_ERROR,
            &http::HeaderMap::new(),
            b""
        ))
        .is_retryable()
    );
}
