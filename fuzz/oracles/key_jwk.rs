//! Private-key loading from a JWK (`PrivateKey::from_jwk`) and public JWK parsing
//! (`PublicJwk::from_json`).
//!
//! Checks: no panic; a loaded key round-trips through its private JWK to the same thumbprint;
//! an error never echoes the `d` member (the private scalar) in its message or `Debug`.
//!
//! Shared by the fuzz target `fuzz_targets/key_jwk.rs` and by the regression test
//! `tests/it/fuzz_seeds.rs`, which replays `fuzz/seeds/key_jwk/` in the normal test suite.

use ralio::keys::{PrivateKey, PublicJwk};
use secrecy::ExposeSecret;

/// Runs the target on `data`; panics when a check fails.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PrivateKey::from_jwk(text) {
        Ok(key) => {
            let jwk = key.to_private_jwk();
            let again = PrivateKey::from_jwk(jwk.expose_secret()).expect("our own JWK loads");
            assert_eq!(again.thumbprint(), key.thumbprint());
            assert_eq!(key.public_jwk().thumbprint(), key.thumbprint());
        }
        Err(e) => {
            let parsed = serde_json::from_str::<serde_json::Value>(text).ok();
            let d = parsed
                .as_ref()
                .and_then(|v| v.get("d").and_then(|d| d.as_str()).map(str::to_owned));
            // Public members (`crv`, `kty`, ...) may be echoed, raw or escaped; skip a `d` that
            // also occurs in one of them, or the check would blame the echo of a public member.
            // A real scalar is base64url, so only such values are checked.
            let elsewhere = |d: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v.as_object())
                    .is_some_and(|map| {
                        map.iter().filter(|(k, _)| k.as_str() != "d").any(|(_, v)| {
                            let raw = v
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string());
                            raw.contains(d)
                                || format!("{raw:?}").contains(d)
                                || v.to_string().contains(d)
                        })
                    })
            };
            let base64url = |d: &str| {
                d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            };
            if let Some(d) = d.filter(|d| d.len() >= 8 && base64url(d) && !elsewhere(d)) {
                let shown = format!("{e} {e:?}");
                assert!(!shown.contains(&d), "the error echoes `d`: {shown}");
            }
        }
    }
    if let Ok(public) = PublicJwk::from_json(text) {
        let again = PublicJwk::from_json(&public.to_json()).expect("our own JWK loads");
        assert_eq!(again, public);
    }
}
