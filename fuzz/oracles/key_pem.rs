//! Private-key loading from PEM (`PrivateKey::from_pem`) and from DER (PKCS#8, SEC1).
//!
//! Checks: no panic; a loaded key round-trips through PKCS#8 PEM to the same thumbprint; its
//! `Debug` never shows the private scalar; an error message never echoes the input.
//!
//! Shared by the fuzz target `fuzz_targets/key_pem.rs` and by the regression test
//! `tests/it/fuzz_seeds.rs`, which replays `fuzz/seeds/key_pem/` in the normal test suite.

use ralio::keys::PrivateKey;
use secrecy::ExposeSecret;

fn check_key(key: &PrivateKey) {
    let pem = key.to_pkcs8_pem();
    let again = PrivateKey::from_pem(pem.expose_secret()).expect("our own PEM loads");
    assert_eq!(again.thumbprint(), key.thumbprint());
    let jwk = key.to_private_jwk();
    let v: serde_json::Value = serde_json::from_str(jwk.expose_secret()).expect("our own JWK");
    let d = v["d"].as_str().expect("d");
    assert!(
        !format!("{key:?}").contains(d),
        "Debug shows the private scalar"
    );
}

/// Runs the target on `data`; panics when a check fails.
pub fn check(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        match PrivateKey::from_pem(text) {
            Ok(key) => check_key(&key),
            Err(e) => {
                let shown = format!("{e} {e:?}");
                // No base64 body line of the input (key material) comes back in the message.
                // (Lines with other characters can match the fixed message texts themselves.)
                let base64_line = |l: &&str| {
                    l.len() >= 24
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
                };
                if let Some(line) = text.lines().find(base64_line) {
                    assert!(
                        !shown.contains(line),
                        "the error echoes the key text: {shown}"
                    );
                }
            }
        }
    }
    for key in [
        PrivateKey::from_pkcs8_der(data),
        PrivateKey::from_sec1_der(data),
    ]
    .into_iter()
    .flatten()
    {
        check_key(&key);
    }
}
