//! Private-key loading from PEM (`PrivateKey::from_pem`) and from DER (PKCS#8, SEC1).
//!
//! Checks: no panic; a loaded key round-trips through PKCS#8 PEM to the same thumbprint; its
//! `Debug` never shows the private scalar; an error message never echoes the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ralio::auth::PrivateKey;
use secrecy::ExposeSecret;

fn check(key: &PrivateKey) {
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

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match PrivateKey::from_pem(text) {
            Ok(key) => check(&key),
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
    ] {
        if let Ok(key) = key {
            check(&key);
        }
    }
});
