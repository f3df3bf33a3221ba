//! Key loading, export and the errors a user sees for keys that cannot be used.

use std::path::Path;

use ralio::keys::{KeyError, PrivateKey, PublicJwk};
use secrecy::ExposeSecret as _;

const EXPECTED_JKT: &str = "V-Gead8kttNZksE19QJWJjeL8PT99q46enPF_ZCJiWI";
const EXPECTED_JWK: &str = r#"{"crv":"P-256","kty":"EC","x":"DIYlEV46HFKSEuzJlkt1sGJFQCwJ0yIqLoAYeyH1vbY","y":"-_HK-v-iJjC4GHR6pzg8QQlLtf3aALw2w2hYO7pH6aQ"}"#;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/keys")
            .join(name),
    )
    .unwrap()
}

fn err_of(r: Result<PrivateKey, KeyError>) -> KeyError {
    match r {
        Ok(k) => panic!("expected an error, got {k:?}"),
        Err(e) => e,
    }
}

#[test]
fn openssl_pkcs8_key_has_the_independently_computed_jwk_and_thumbprint() {
    let key = PrivateKey::from_pem(&fixture("p256_pkcs8.pem")).unwrap();
    assert_eq!(key.public_jwk().to_json(), EXPECTED_JWK);
    assert_eq!(key.thumbprint().as_str(), EXPECTED_JKT);
    assert_eq!(key.public_jwk().thumbprint(), key.thumbprint());
    assert_eq!(key.thumbprint().to_string(), EXPECTED_JKT);
}

#[test]
fn sec1_forms_load_to_the_same_key() {
    let sec1 = fixture("p256_sec1.pem");
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"));
    assert_eq!(
        PrivateKey::from_pem(&sec1).unwrap().thumbprint().as_str(),
        EXPECTED_JKT
    );
    assert_eq!(
        PrivateKey::from_sec1_pem(&sec1)
            .unwrap()
            .thumbprint()
            .as_str(),
        EXPECTED_JKT
    );
    // `openssl ecparam -genkey` writes an EC PARAMETERS block first.
    PrivateKey::from_pem(&fixture("p256_sec1_with_params.pem")).unwrap();
}

#[test]
fn format_specific_loaders_refuse_the_other_format() {
    let e = err_of(PrivateKey::from_pkcs8_pem(&fixture("p256_sec1.pem")));
    assert!(matches!(e, KeyError::UnexpectedPemLabel { .. }), "{e:?}");
    assert!(e.to_string().contains("EC PRIVATE KEY"), "{e}");
    let e = err_of(PrivateKey::from_sec1_pem(&fixture("p256_pkcs8.pem")));
    assert!(matches!(e, KeyError::UnexpectedPemLabel { .. }), "{e:?}");
}

#[test]
fn pem_file_loads_and_a_missing_file_names_the_path() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
    let key = PrivateKey::from_pem_file(&dir.join("p256_pkcs8.pem")).unwrap();
    assert_eq!(key.thumbprint().as_str(), EXPECTED_JKT);
    let e = err_of(PrivateKey::from_pem_file(&dir.join("nope.pem")));
    assert!(matches!(e, KeyError::Io { .. }));
    assert!(e.to_string().contains("nope.pem"), "{e}");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn exported_pem_and_jwk_reload_and_are_parseable_by_openssl() {
    let key = PrivateKey::from_pem(&fixture("p256_pkcs8.pem")).unwrap();
    let jwk: serde_json::Value =
        serde_json::from_str(key.to_private_jwk().expose_secret()).unwrap();
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["d"].as_str().unwrap().len(), 43);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    std::fs::write(&path, key.to_pkcs8_pem().expose_secret()).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-in"])
        .arg(&path)
        .args(["-pubout"])
        .output();
    if let Ok(out) = out {
        assert!(out.status.success(), "openssl could not read our PKCS#8");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            fixture("p256_public.pem")
        );
    }
    let reloaded = PrivateKey::from_pem_file(&path).unwrap();
    assert_eq!(reloaded.thumbprint().as_str(), EXPECTED_JKT);
}

#[test]
fn wrong_curves_are_named() {
    for (file, curve) in [
        ("p384_pkcs8.pem", "P-384"),
        ("p384_sec1.pem", "P-384"),
        ("secp256k1_pkcs8.pem", "secp256k1"),
    ] {
        let e = err_of(PrivateKey::from_pem(&fixture(file)));
        assert!(matches!(e, KeyError::WrongCurve { .. }), "{file}: {e:?}");
        assert!(e.to_string().contains(curve), "{file}: {e}");
        assert!(e.to_string().contains("P-256"), "{file}: {e}");
    }
}

#[test]
fn other_key_types_are_named() {
    for (file, kind) in [
        ("rsa_pkcs8.pem", "RSA"),
        ("rsa_pkcs1.pem", "RSA"),
        ("ed25519_pkcs8.pem", "Ed25519"),
    ] {
        let e = err_of(PrivateKey::from_pem(&fixture(file)));
        assert!(matches!(e, KeyError::WrongKeyType { .. }), "{file}: {e:?}");
        assert!(e.to_string().contains(kind), "{file}: {e}");
    }
}

#[test]
fn encrypted_pems_say_so() {
    for file in ["p256_encrypted_pkcs8.pem", "p256_encrypted_sec1.pem"] {
        let e = err_of(PrivateKey::from_pem(&fixture(file)));
        assert!(matches!(e, KeyError::EncryptedPem), "{file}: {e:?}");
        assert!(e.to_string().contains("encrypted"), "{e}");
    }
}

#[test]
fn public_keys_are_refused_as_public_only() {
    let e = err_of(PrivateKey::from_pem(&fixture("p256_public.pem")));
    assert!(matches!(e, KeyError::PublicOnly), "{e:?}");
    let e = err_of(PrivateKey::from_jwk(EXPECTED_JWK));
    assert!(matches!(e, KeyError::PublicOnly), "{e:?}");
    assert!(e.to_string().contains("public key only"), "{e}");
}

#[test]
fn public_key_pem_gives_the_public_jwk() {
    let jwk = PublicJwk::from_public_key_pem(&fixture("p256_public.pem")).unwrap();
    assert_eq!(jwk.to_json(), EXPECTED_JWK);
}

#[test]
fn garbage_is_malformed_without_echoing_input() {
    for input in [
        "",
        "hello",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\n!!!notbase64!!!\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\nMIGH\n",
    ] {
        let e = err_of(PrivateKey::from_pem(input));
        assert!(matches!(e, KeyError::Malformed { .. }), "{input:?}: {e:?}");
    }
    // Damaged DER inside a valid PEM frame.
    let pem = fixture("p256_pkcs8.pem");
    let damaged = pem.replacen("MIGHAgEAMBMG", "MIGHAgEAMBNG", 1);
    assert_ne!(pem, damaged);
    let e = err_of(PrivateKey::from_pem(&damaged));
    assert!(matches!(e, KeyError::Malformed { .. }), "{e:?}");
}

#[test]
fn jwk_errors_name_the_member() {
    let key = PrivateKey::from_pem(&fixture("p256_pkcs8.pem")).unwrap();
    let full: serde_json::Value =
        serde_json::from_str(key.to_private_jwk().expose_secret()).unwrap();
    let d = full["d"].as_str().unwrap().to_owned();
    for member in ["kty", "crv", "x", "y"] {
        let mut v = full.clone();
        v.as_object_mut().unwrap().remove(member);
        let e = err_of(PrivateKey::from_jwk(&v.to_string()));
        assert!(
            matches!(e, KeyError::MissingJwkMember(m) if m == member),
            "{member}: {e:?}"
        );
        assert!(e.to_string().contains(&format!("`{member}`")), "{e}");
        assert!(!e.to_string().contains(&d));
    }
    let mut v = full.clone();
    v["crv"] = "P-384".into();
    assert!(matches!(
        err_of(PrivateKey::from_jwk(&v.to_string())),
        KeyError::WrongCurve { .. }
    ));
    let rsa = r#"{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}"#;
    let e = err_of(PrivateKey::from_jwk(rsa));
    assert!(e.to_string().contains("RSA"), "{e}");
    let ed = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#;
    let e = err_of(PrivateKey::from_jwk(ed));
    assert!(e.to_string().contains("Ed25519"), "{e}");
    // x/y that belong to another key: tampered.
    let other = PrivateKey::generate().unwrap();
    let mut v = full.clone();
    v["x"] = other.public_jwk().x().into();
    v["y"] = other.public_jwk().y().into();
    let e = err_of(PrivateKey::from_jwk(&v.to_string()));
    assert!(matches!(e, KeyError::Malformed { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains(&d));
    // Wrong types and non-JSON.
    let mut v = full.clone();
    v["d"] = 12345.into();
    let e = err_of(PrivateKey::from_jwk(&v.to_string()));
    assert!(!format!("{e} {e:?}").contains("12345"), "{e}");
    assert!(matches!(
        err_of(PrivateKey::from_jwk("not json")),
        KeyError::Malformed { .. }
    ));
    let mut v = full.clone();
    v["d"] = "AAAA".into();
    assert!(matches!(
        err_of(PrivateKey::from_jwk(&v.to_string())),
        KeyError::Malformed { .. }
    ));
}

#[test]
fn jwk_from_environment_style_json_loads() {
    let key = PrivateKey::generate().unwrap();
    let jwk = key.to_private_jwk();
    // Extra members (kid, use, alg) are ignored.
    let mut v: serde_json::Value = serde_json::from_str(jwk.expose_secret()).unwrap();
    v["kid"] = key.thumbprint().as_str().into();
    v["use"] = "sig".into();
    let loaded = PrivateKey::from_jwk(&v.to_string()).unwrap();
    assert_eq!(loaded.thumbprint(), key.thumbprint());
}

#[test]
fn public_jwk_deserialisation_validates() {
    let jwk: PublicJwk = serde_json::from_str(EXPECTED_JWK).unwrap();
    assert_eq!(jwk.thumbprint().as_str(), EXPECTED_JKT);
    let off_curve = EXPECTED_JWK.replace("DIYlEV46", "DIYlEV47");
    assert!(serde_json::from_str::<PublicJwk>(&off_curve).is_err());
    assert!(serde_json::from_str::<PublicJwk>(r#"{"kty":"EC","crv":"P-256","x":"AA"}"#).is_err());
}

#[tokio::test]
async fn the_in_memory_key_is_a_signer() {
    let key = PrivateKey::generate().unwrap();
    let signer: std::sync::Arc<dyn ralio::keys::Signer> = std::sync::Arc::new(key.clone());
    let sig = signer.sign_es256(b"abc.def").await.unwrap();
    assert_eq!(sig.len(), 64);
    assert!(signer.public_jwk().verify_es256(b"abc.def", &sig));
    assert_eq!(signer.thumbprint(), key.thumbprint());
}
