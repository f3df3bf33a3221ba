//! The one `WWW-Authenticate` parser (RFC 9110 §11.6.1, formerly RFC 7235).
//!
//! ```text
//! WWW-Authenticate = 1#challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! ```
//!
//! A header may hold several challenges (`Bearer realm="x", DPoP algs="ES256"`) and a response
//! may carry several headers. Every reader of challenges goes through [`parse`] and
//! [`auth_error`]: the error taxonomy (`error` / `error_description` in [`crate::ApiError`]), the
//! DPoP auth layer (which DPoP error a 401 names) and the retry policy (a `use_dpop_nonce`
//! challenge). The parser never panics and never fails: what it cannot read it skips up to the
//! next comma, so a garbled challenge costs only itself.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::WWW_AUTHENTICATE;

/// One challenge: its scheme and its parameters (names lower-cased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge<'a> {
    scheme: &'a str,
    token68: Option<&'a str>,
    params: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Challenge<'a> {
    /// The auth scheme as sent (`DPoP`, `Bearer`, …).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn scheme(&self) -> &'a str {
        self.scheme
    }

    /// Whether the scheme is `scheme` (schemes are case-insensitive).
    pub(crate) fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// A parameter's value (names are case-insensitive; the first occurrence wins).
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// The `token68` form (`Negotiate abc==`), when the challenge used it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn token68(&self) -> Option<&'a str> {
        self.token68
    }

    /// The OAuth `error` parameter, when present and not empty.
    pub(crate) fn error(&self) -> Option<&str> {
        self.param("error").map(str::trim).filter(|e| !e.is_empty())
    }
}

/// An error a challenge names: `error` and `error_description` (RFC 6750 §3, RFC 9449 §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChallengeError {
    /// The `error` code (`invalid_token`, `use_dpop_nonce`, …).
    pub(crate) code: String,
    /// The `error_description`, when present and not empty.
    pub(crate) description: Option<String>,
}

/// The error of the challenges in `headers` (every `WWW-Authenticate` value): the first `DPoP`
/// challenge naming one, else the first challenge of any scheme naming one.
pub(crate) fn auth_error(headers: &HeaderMap) -> Option<ChallengeError> {
    let values: Vec<Cow<'_, str>> = header_values(headers).collect();
    let all: Vec<Challenge<'_>> = values.iter().flat_map(|v| parse(v)).collect();
    let named = |c: &&Challenge<'_>| c.error().is_some();
    let chosen = all
        .iter()
        .filter(named)
        .find(|c| c.is("DPoP"))
        .or_else(|| all.iter().find(named))?;
    Some(ChallengeError {
        code: chosen.error()?.to_owned(),
        description: chosen
            .param("error_description")
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
    })
}

/// Whether the challenges in `headers` ask for a DPoP nonce (`error="use_dpop_nonce"`).
pub(crate) fn asks_for_nonce(headers: &HeaderMap) -> bool {
    dpop_error(headers) == Some("use_dpop_nonce")
}

/// The error of the challenges in `headers` (see [`auth_error`]) when it is one of the DPoP
/// errors the auth layer acts on: `use_dpop_nonce`, `invalid_token`, `invalid_dpop_proof`.
pub(crate) fn dpop_error(headers: &HeaderMap) -> Option<&'static str> {
    let error = auth_error(headers)?;
    ["use_dpop_nonce", "invalid_token", "invalid_dpop_proof"]
        .into_iter()
        .find(|known| error.code.eq_ignore_ascii_case(known))
}

/// Every `WWW-Authenticate` value of `headers`, as text (bytes that are not UTF-8 replaced).
fn header_values(headers: &HeaderMap) -> impl Iterator<Item = Cow<'_, str>> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
}

/// The challenges of one `WWW-Authenticate` value.
pub(crate) fn parse(value: &str) -> Vec<Challenge<'_>> {
    let mut p = Parser {
        s: value,
        b: value.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge<'_>> = Vec::new();
    loop {
        p.skip_list_separators();
        if p.at_end() {
            return out;
        }
        let Some(scheme) = p.token() else {
            p.skip_past_comma();
            continue;
        };
        let mut challenge = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        // `scheme token68`: a token68 directly after the scheme, ending at a comma or the end.
        let after_scheme = p.i;
        p.skip_ws();
        if p.i > after_scheme
            && let Some(t) = p.token68_here()
        {
            challenge.token68 = Some(t);
        } else {
            p.i = after_scheme;
            // `#auth-param`, until a bare token (the next challenge's scheme) or the end.
            loop {
                p.skip_list_separators();
                let before = p.i;
                let Some(name) = p.token() else {
                    if p.at_end() {
                        break;
                    }
                    // Garbage: drop it, up to the next comma.
                    p.skip_past_comma();
                    continue;
                };
                p.skip_ws();
                if p.peek() != Some(b'=') {
                    // A bare token: the next challenge begins here.
                    p.i = before;
                    break;
                }
                p.i += 1;
                p.skip_ws();
                let value = match p.peek() {
                    Some(b'"') => Some(p.quoted()),
                    _ => p.token().map(Cow::Borrowed),
                };
                match value {
                    Some(value) => {
                        challenge
                            .params
                            .push((Cow::Owned(name.to_ascii_lowercase()), value));
                        // Anything but a comma after a value is garbage, up to the next comma.
                        p.skip_ws();
                        if !p.at_end() && p.peek() != Some(b',') {
                            p.skip_past_comma();
                        }
                    }
                    None => p.skip_past_comma(),
                }
            }
        }
        out.push(challenge);
    }
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_list_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// Skips to just past the next comma outside a quoted string (or to the end).
    fn skip_past_comma(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b',' => {
                    self.i += 1;
                    return;
                }
                b'"' => {
                    let _ = self.quoted();
                }
                _ => self.i += 1,
            }
        }
    }

    /// A `token` (RFC 9110 tchar+). Boundaries are ASCII bytes or the string's ends, so the
    /// slice is always on a char boundary.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    /// A `token68` at the current position, when what follows it is a comma or the end (else
    /// nothing is consumed).
    fn token68_here(&mut self) -> Option<&'a str> {
        let start = self.i;
        let mut i = start;
        while self.b.get(i).is_some_and(|&c| is_token68_char(c)) {
            i += 1;
        }
        if i == start {
            return None;
        }
        while self.b.get(i) == Some(&b'=') {
            i += 1;
        }
        let mut end = i;
        while matches!(self.b.get(end), Some(b' ' | b'\t')) {
            end += 1;
        }
        if matches!(self.b.get(end), None | Some(b',')) {
            self.i = end;
            Some(&self.s[start..i])
        } else {
            None
        }
    }

    /// A `quoted-string` starting at the current `"`: its value with `\` escapes resolved. An
    /// unterminated string runs to the end.
    fn quoted(&mut self) -> Cow<'a, str> {
        self.i += 1;
        let start = self.i;
        let mut escaped: Option<Vec<u8>> = None;
        while let Some(c) = self.peek() {
            match c {
                b'"' => {
                    let raw = &self.s[start..self.i];
                    self.i += 1;
                    return finish(raw, escaped);
                }
                b'\\' => {
                    let buf = escaped.get_or_insert_with(|| self.b[start..self.i].to_vec());
                    self.i += 1;
                    if let Some(next) = self.peek() {
                        buf.push(next);
                        self.i += 1;
                    }
                }
                _ => {
                    if let Some(buf) = escaped.as_mut() {
                        buf.push(c);
                    }
                    self.i += 1;
                }
            }
        }
        finish(&self.s[start..], escaped)
    }
}

/// The value of a quoted string: borrowed when it had no escape.
fn finish(raw: &str, escaped: Option<Vec<u8>>) -> Cow<'_, str> {
    match escaped {
        None => Cow::Borrowed(raw),
        // Only ASCII backslashes were removed, so the bytes are still UTF-8; lossy is a guard.
        Some(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_token68_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~+/".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(WWW_AUTHENTICATE, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn challenges(h: &HeaderMap) -> Vec<Challenge<'_>> {
        h.get_all(WWW_AUTHENTICATE)
            .iter()
            .flat_map(|v| parse(v.to_str().unwrap()))
            .collect()
    }

    fn summary(value: &str) -> Vec<(String, Vec<(String, String)>)> {
        parse(value)
            .into_iter()
            .map(|c| {
                (
                    c.scheme().to_owned(),
                    c.params
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_dpop_challenge_with_error_description_and_algs() {
        let v = r#"DPoP error="invalid_dpop_proof", error_description="htu does not match", algs="ES256 EdDSA""#;
        assert_eq!(
            summary(v),
            vec![(
                "DPoP".to_owned(),
                pairs(&[
                    ("error", "invalid_dpop_proof"),
                    ("error_description", "htu does not match"),
                    ("algs", "ES256 EdDSA"),
                ])
            )]
        );
    }

    #[test]
    fn two_challenges_in_one_header() {
        let v = r#"Bearer realm="ralio", error="invalid_token", DPoP algs="ES256", error="use_dpop_nonce""#;
        let got = summary(v);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "Bearer");
        assert_eq!(
            got[0].1,
            pairs(&[("realm", "ralio"), ("error", "invalid_token")])
        );
        assert_eq!(got[1].0, "DPoP");
        assert_eq!(
            got[1].1,
            pairs(&[("algs", "ES256"), ("error", "use_dpop_nonce")])
        );
        // The DPoP challenge's error wins over an earlier Bearer one.
        assert_eq!(auth_error(&headers(&[v])).unwrap().code, "use_dpop_nonce");
        assert!(asks_for_nonce(&headers(&[v])));
    }

    #[test]
    fn two_headers_are_read_in_order() {
        let h = headers(&[
            r#"Bearer realm="ralio""#,
            r#"DPoP error="invalid_token", error_description="token expired""#,
        ]);
        let all = challenges(&h);
        assert_eq!(
            all.iter().map(|c| c.scheme()).collect::<Vec<_>>(),
            ["Bearer", "DPoP"]
        );
        let e = auth_error(&h).unwrap();
        assert_eq!(e.code, "invalid_token");
        assert_eq!(e.description.as_deref(), Some("token expired"));
        assert!(!asks_for_nonce(&h));
    }

    #[test]
    fn commas_and_escaped_quotes_inside_quoted_strings() {
        let v = r#"DPoP error_description="a, b, and \"c\" \\ d", error="invalid_token""#;
        let got = summary(v);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            got[0].1,
            pairs(&[
                ("error_description", r#"a, b, and "c" \ d"#),
                ("error", "invalid_token"),
            ])
        );
    }

    #[test]
    fn a_nonce_mentioned_only_in_a_description_is_not_a_nonce_challenge() {
        let h = headers(&[r#"DPoP error="invalid_token", error_description="not use_dpop_nonce""#]);
        assert!(!asks_for_nonce(&h));
        assert_eq!(auth_error(&h).unwrap().code, "invalid_token");
    }

    #[test]
    fn schemes_and_names_are_case_insensitive_and_tokens_unquoted() {
        let h = headers(&["dpop ERROR=use_dpop_nonce"]);
        let all = challenges(&h);
        assert!(all[0].is("DPoP"));
        assert_eq!(all[0].param("error"), Some("use_dpop_nonce"));
        assert!(asks_for_nonce(&h));
    }

    #[test]
    fn unknown_schemes_token68_and_bare_schemes() {
        let v = "Negotiate YIIB3gYGKwYBBQUCoIIB0jCCAc6gGjAYBgorBgEEAYI3AgIeBgorBgEEAYI3AgIKoo==, Basic, NewScheme foo=bar";
        let got = parse(v);
        assert_eq!(
            got.iter().map(Challenge::scheme).collect::<Vec<_>>(),
            ["Negotiate", "Basic", "NewScheme"]
        );
        assert_eq!(
            got[0].token68(),
            Some("YIIB3gYGKwYBBQUCoIIB0jCCAc6gGjAYBgorBgEEAYI3AgIeBgorBgEEAYI3AgIKoo==")
        );
        assert!(got[1].params.is_empty());
        assert_eq!(got[2].param("foo"), Some("bar"));
        // No challenge names an error.
        assert_eq!(auth_error(&headers(&[v])), None);
    }

    #[test]
    fn an_error_from_a_scheme_other_than_dpop_is_still_read() {
        let h = headers(&[r#"Bearer error="insufficient_scope", error_description="needs x""#]);
        let e = auth_error(&h).unwrap();
        assert_eq!(e.code, "insufficient_scope");
        assert_eq!(e.description.as_deref(), Some("needs x"));
    }

    #[test]
    fn garbage_never_panics_and_costs_only_itself() {
        for v in [
            "",
            ",,, ,",
            "=",
            "\"",
            "DPoP \"",
            "DPoP error=\"unterminated",
            "DPoP error=",
            "DPoP =x, error=y",
            "DPoP error=\"a\"junk, error_description=\"d\"",
            "é=ü, DPoP error=\"x\"",
            "DPoP error=\"\\",
            "\\\\\\\"\"\"===,,,",
            "DPoP error = \"spaced\"",
        ] {
            let _ = parse(v);
            let mut map = HeaderMap::new();
            if let Ok(h) = HeaderValue::from_str(v) {
                map.insert(WWW_AUTHENTICATE, h);
                let _ = auth_error(&map);
            }
        }
        // The garbled part is skipped, the rest read.
        let got = parse("DPoP error=\"a\"junk, error_description=\"d\"");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].param("error_description"), Some("d"));
        let got = parse("é=ü, DPoP error=\"x\"");
        assert_eq!(got.last().unwrap().param("error"), Some("x"));
        assert_eq!(
            parse("DPoP error = \"spaced\"")[0].param("error"),
            Some("spaced")
        );
        assert_eq!(
            parse("DPoP error=\"unterminated")[0].param("error"),
            Some("unterminated")
        );
        // Bytes that are not UTF-8 in a header value.
        let mut map = HeaderMap::new();
        map.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_bytes(b"DPoP error=\"bad\xff\", error_description=\"d\"").unwrap(),
        );
        assert_eq!(auth_error(&map).unwrap().code, "bad\u{fffd}");
    }

    #[test]
    fn empty_error_values_are_no_error() {
        assert_eq!(auth_error(&headers(&[r#"DPoP error="""#])), None);
        assert_eq!(
            auth_error(&headers(&[r#"DPoP error=" ", error_description="x""#])),
            None
        );
    }
}
