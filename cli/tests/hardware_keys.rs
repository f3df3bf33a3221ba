//! `ralio register --key …` with keys that stay in their hardware, then the commands that use
//! them: a PKCS#11 key in SoftHSM (see `tests/it/pkcs11.rs` in the SDK for the set-up; `.ci/run`
//! does it), and an AWS KMS key in moto (see `tests/it/aws_kms.rs`). Without the backend a
//! test skips with how to start it, except under `CI=true`, where it fails.
#![cfg(any(feature = "pkcs11", feature = "aws-kms"))]

mod common;

use common::Env;

fn unavailable(what: &str) {
    let message = format!(
        "{what} unavailable; see tests/it/pkcs11.rs and tests/it/aws_kms.rs in the SDK for the set-up"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
}

/// `register --key <reference>`, then chat, whoami and doctor with that key; returns the
/// doctor's JSON.
async fn register_and_use(
    env: &Env,
    reference: &str,
    vars: &[(&str, Option<&str>)],
) -> serde_json::Value {
    let ticket = env
        .sandbox
        .mint_ticket(ralio_sandbox::TicketSpec::default());
    let run = env
        .run_env(
            &["register", "--key", reference],
            &[
                vars,
                &[("RALIO_REGISTRATION_TICKET", Some(ticket.as_str()))],
            ]
            .concat(),
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("registered cb_"), "{}", run.stdout);
    // The store holds the reference and no key file.
    let credentials: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.config_dir().join("credentials.json")).unwrap(),
    )
    .unwrap();
    assert!(credentials["key_ref"].is_string(), "{credentials}");
    assert!(!env.config_dir().join("keys").exists());

    let chat = env
        .run_env(&["chat", "--no-stream", "What is my balance?"], vars)
        .await;
    assert_eq!(chat.code, 0, "{}", chat.transcript());
    assert!(!chat.stdout.trim().is_empty());
    let who = env.run_env(&["whoami"], vars).await;
    assert_eq!(who.code, 0, "{}", who.transcript());
    let doctor = env.run_env(&["--json", "doctor"], vars).await;
    assert_eq!(doctor.code, 0, "{}", doctor.transcript());
    serde_json::from_str(&doctor.stdout).unwrap()
}

fn check<'a>(doctor: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {doctor}"))
}

#[cfg(feature = "pkcs11")]
#[tokio::test(flavor = "multi_thread")]
async fn register_with_a_pkcs11_key_then_chat_and_doctor_show_a_non_extractable_key() {
    let (Ok(label), Ok(pin)) = (
        std::env::var("RALIO_TEST_PKCS11_TOKEN"),
        std::env::var("RALIO_TEST_PKCS11_PIN"),
    ) else {
        return unavailable("PKCS#11 token (RALIO_TEST_PKCS11_TOKEN, RALIO_TEST_PKCS11_PIN)");
    };
    let module = std::env::var("RALIO_TEST_PKCS11_MODULE")
        .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".to_owned());
    let env = Env::new().await;
    let object = format!(
        "cli-{}-{}",
        std::process::id(),
        env.sandbox.base_url().len()
    );
    let reference = format!("pkcs11:token={label};object={object}?module-path={module}");
    // The PIN from the environment: never on the command line, never stored.
    let vars = [("RALIO_PKCS11_PIN", Some(pin.as_str()))];
    let doctor = register_and_use(&env, &reference, &vars).await;
    let location = check(&doctor, "key location");
    assert_eq!(location["status"], "ok", "{doctor}");
    let detail = location["detail"].as_str().unwrap();
    assert!(
        detail.contains(&label) && detail.contains("not extractable"),
        "{detail}"
    );
    let text = env.run_env(&["doctor"], &vars).await;
    for output in [&text.stdout, &text.stderr, &doctor.to_string()] {
        assert!(!output.contains(&pin), "the PIN was shown: {output}");
    }
    let stored = std::fs::read_to_string(env.config_dir().join("credentials.json")).unwrap();
    assert!(!stored.contains(&pin));
    // Without the PIN the command says where to give it, and changes nothing.
    let run = env
        .run_env(&["whoami"], &[("RALIO_PKCS11_PIN", None)])
        .await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(run.stderr.contains("RALIO_PKCS11_PIN"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(env.config_dir().join("credentials.json")).unwrap(),
        stored
    );
}

#[cfg(feature = "aws-kms")]
#[tokio::test(flavor = "multi_thread")]
async fn register_with_an_aws_kms_alias_then_chat_and_doctor_name_the_key() {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_KMS") else {
        return unavailable("AWS KMS emulator (AWS_ENDPOINT_URL_KMS and the AWS_* settings)");
    };
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "AWS_ENDPOINT_URL_KMS must be a loopback emulator, not {endpoint}"
    );
    let env = Env::new().await;
    let alias = format!(
        "alias/ralio-cli-{}-{}",
        std::process::id(),
        env.sandbox.base_url().len()
    );
    let doctor = register_and_use(&env, &alias, &[]).await;
    let location = check(&doctor, "key location");
    assert_eq!(location["status"], "ok", "{doctor}");
    let detail = location["detail"].as_str().unwrap();
    assert!(detail.contains("AWS KMS key arn:aws:kms:"), "{detail}");
    // The store pins the key's ARN, not the alias.
    let stored = std::fs::read_to_string(env.config_dir().join("credentials.json")).unwrap();
    assert!(
        stored.contains("arn:aws:kms:") && !stored.contains(&alias),
        "{stored}"
    );
}
