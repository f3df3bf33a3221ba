//! `WWW-Authenticate` challenge parsing. Three readers live here side by side: the error
//! taxonomy's (`error` and `error_description` of any scheme), the DPoP auth layer's (which
//! DPoP error a challenge names) and the retry policy's (does any challenge mention
//! `use_dpop_nonce`). They answer different questions with different strictness, so they are
//! kept apart for now.

use reqwest::Response;
use reqwest::header::WWW_AUTHENTICATE;

/// `DPoP error="invalid_token", error_description="…"` → `(error, error_description)`.
pub(crate) fn parse_www_authenticate(value: &str) -> (Option<String>, Option<String>) {
    let mut code = None;
    let mut desc = None;
    // Skip the scheme token, then read `name=value` or `name="quoted value"` pairs.
    let rest = value.trim_start();
    let rest = match rest.find(char::is_whitespace) {
        Some(i) if !rest[..i].contains('=') => &rest[i..],
        _ => rest,
    };
    let mut chars = rest.char_indices().peekable();
    let bytes = rest;
    while let Some(&(start, _)) = chars.peek() {
        // Name.
        let mut eq = None;
        for (i, c) in chars.by_ref() {
            if c == '=' {
                eq = Some(i);
                break;
            }
        }
        let Some(eq) = eq else { break };
        let name = bytes[start..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        // Value.
        let mut val = String::new();
        if chars.peek().map(|&(_, c)| c) == Some('"') {
            chars.next();
            let mut escaped = false;
            for (_, c) in chars.by_ref() {
                if escaped {
                    val.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    break;
                } else {
                    val.push(c);
                }
            }
            // Up to the next comma.
            for (_, c) in chars.by_ref() {
                if c == ',' {
                    break;
                }
            }
        } else {
            for (_, c) in chars.by_ref() {
                if c == ',' {
                    break;
                }
                val.push(c);
            }
        }
        match name.as_str() {
            "error" => code = Some(val.trim().to_owned()),
            "error_description" => desc = Some(val.trim().to_owned()),
            _ => {}
        }
    }
    (
        code.filter(|c| !c.is_empty()),
        desc.filter(|d| !d.is_empty()),
    )
}

/// The `error` of a `WWW-Authenticate: DPoP …` challenge.
pub(crate) fn dpop_challenge(resp: &Response) -> Option<&'static str> {
    resp.headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| {
            v.trim_start()
                .get(..4)
                .is_some_and(|s| s.eq_ignore_ascii_case("dpop"))
        })
        .find_map(|v| {
            let lower = v.to_ascii_lowercase();
            ["use_dpop_nonce", "invalid_token", "invalid_dpop_proof"]
                .into_iter()
                .find(|code| {
                    lower.contains(&format!("error=\"{code}\""))
                        || lower.contains(&format!("error={code}"))
                })
        })
}

/// Whether any `WWW-Authenticate` value mentions `use_dpop_nonce` (the retry policy's check:
/// any scheme, anywhere in the value).
pub(crate) fn mentions_nonce_challenge(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("use_dpop_nonce"))
}
