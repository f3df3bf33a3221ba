//! What the build's features put in the `ralio` binary: `--version` in every build, and the
//! `sandbox` subcommand only with the `sandbox` feature (on by default). CI runs this file both
//! ways (`just package`: `cargo test -p ralio-cli --no-default-features --test features`).

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ralio");

fn ralio(args: &[&str]) -> Output {
    let config = std::env::temp_dir().join("ralio-cli-features-test-no-such-dir");
    Command::new(BIN)
        .args(args)
        .env("RALIO_API_URL", "http://127.0.0.1:1")
        .env("RALIO_CONFIG_DIR", &config)
        .env_remove("RALIO_STORE")
        .env("NO_COLOR", "1")
        .output()
        .expect("the ralio binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_names_the_package_version() {
    let out = ralio(&["--version"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("ralio {}", env!("CARGO_PKG_VERSION"))
    );
}

#[cfg(feature = "sandbox")]
#[test]
fn sandbox_is_listed_with_the_feature() {
    let out = ralio(&["--help"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout)
            .lines()
            .any(|l| l.trim_start().starts_with("sandbox ")),
        "{}",
        text(&out.stdout)
    );
}

#[cfg(not(feature = "sandbox"))]
#[test]
fn sandbox_is_absent_from_help_without_the_feature() {
    let out = ralio(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("register"), "{help}");
    assert!(!help.contains("sandbox"), "{help}");
}

#[cfg(not(feature = "sandbox"))]
#[test]
fn sandbox_without_the_feature_says_how_to_get_it() {
    for args in [
        &["sandbox"][..],
        &["sandbox", "--addr", "127.0.0.1:0", "--json"],
        &["sandbox", "--help"],
    ] {
        let out = ralio(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
        assert!(
            stderr.contains("built without the sandbox"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("cargo install ralio-cli"),
            "{args:?}: {stderr}"
        );
    }
}

/// The workspace builds aws-lc without its CPU jitter entropy source (`.cargo/config.toml`;
/// SECURITY.md, "Entropy"): gathering it was two thirds of a one-shot command's CPU.
#[test]
fn the_binary_is_built_without_aws_lc_cpu_jitter_entropy() {
    let bytes = std::fs::read(BIN).expect("the ralio binary is readable");
    let contains = |needle: &[u8]| {
        let mut rest = &bytes[..];
        while let Some(at) = rest.iter().position(|&b| b == needle[0]) {
            if rest[at..].starts_with(needle) {
                return true;
            }
            rest = &rest[at + 1..];
        }
        false
    };
    assert!(
        contains(b"get_entropy_source"),
        "aws-lc's entropy symbols are not in {BIN}: a stripped binary would pass the check below \
         without meaning anything"
    );
    assert!(
        !contains(b"jent_entropy_collector_alloc"),
        "aws-lc's CPU jitter entropy collector is linked into {BIN}: the build did not see \
         AWS_LC_SYS_NO_JITTER_ENTROPY=1 (.cargo/config.toml [env])"
    );
}
