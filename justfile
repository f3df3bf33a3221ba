# Developer tasks. `just --list` shows them. Every recipe is plain shell, so without `just`
# the same commands can be pasted into a terminal.

set shell := ["bash", "-euo", "pipefail", "-c"]

# fmt check, clippy (warnings are errors), all tests, docs (warnings are errors)
check:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings
    cargo clippy -p ralio --lib --no-default-features -- -D warnings
    cargo test --workspace --all-features
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --exclude ralio-cli --all-features --no-deps

# the README's test command
test:
    cargo test --workspace --all-features

# compare the vendored OpenAPI document with SOURCE (URL or file) and change no file: exit 0 when both describe the same API; exit 1 on drift, printing each change classified `breaking` or `additive` (operation, schema, field), then the generated Rust surface's diff
spec-check source:
    #!/usr/bin/env bash
    set -euo pipefail
    tmp="$(mktemp)"
    trap 'rm -f "$tmp"' EXIT
    case "{{source}}" in
      http://*|https://*) curl -fsSL "{{source}}" -o "$tmp" ;;
      *) cp -- "{{source}}" "$tmp" ;;
    esac
    cargo run -q -p ralio-openapi-normalize --features diff,rust --bin spec-diff -- \
      --types openapi/rust_types.rs openapi/ralio.json "$tmp"

# replace the vendored OpenAPI document from a URL or a file: the classified changes, rebuild, the semver verdict for `ralio` (cargo-semver-checks against HEAD), then the API-surface snapshot diffs (document and Rust)
spec-update source:
    #!/usr/bin/env bash
    set -euo pipefail
    tmp="$(mktemp)"
    trap 'rm -f "$tmp"' EXIT
    case "{{source}}" in
      http://*|https://*) curl -fsSL "{{source}}" -o "$tmp" ;;
      *) cp -- "{{source}}" "$tmp" ;;
    esac
    # The changes, classified for the crate (breaking: major release; additive: minor).
    status=0
    cargo run -q -p ralio-openapi-normalize --features diff,rust --bin spec-diff -- \
      --types openapi/rust_types.rs openapi/ralio.json "$tmp" | tee "$tmp.changes" || status=$?
    classifier="$(sed -n 's/.*: a \([a-z]*\) release of the generated crate/\1/p' "$tmp.changes")"
    rm -f "$tmp.changes"
    case "$status" in
      0) echo "openapi/ralio.json already describes this API: nothing to update"; exit 0 ;;
      1) ;;
      *) exit "$status" ;;
    esac
    # Pretty-print (2-space indents, key order kept) so the vendored file diffs line by line.
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); open(sys.argv[2],"w").write(json.dumps(d, indent=2, ensure_ascii=False)+"\n")' "$tmp" openapi/ralio.json
    git --no-pager diff --stat -- openapi/ralio.json || true
    # Rebuilding runs the normaliser and progenitor: a document they cannot handle fails here
    # with the JSON path of the offending part; a breaking change to a part the SDK's own code
    # uses fails here too, at that code.
    cargo build -p ralio
    # The semver verdict: the crate as committed (HEAD) against the crate with the new document.
    semver="not checked"
    if command -v cargo-semver-checks >/dev/null 2>&1; then
      out="$(cargo semver-checks check-release -p ralio --baseline-rev HEAD 2>&1)" || true
      printf '%s\n' "$out" | grep -E '^\s*--- failure|Summary' || printf '%s\n' "$out" | tail -20
      case "$out" in
        *"requires new major version"*) semver="major" ;;
        *"requires new minor version"*) semver="minor" ;;
        *"no semver update required"*) semver="none" ;;
      esac
    else
      echo "cargo-semver-checks is not installed, so the Rust API was not compared: cargo install cargo-semver-checks --locked"
    fi
    verdict="minor"
    if [ "$classifier" = major ] || [ "$semver" = major ]; then verdict="major"; fi
    echo "verdict: a $verdict release of ralio (classifier: $classifier; cargo-semver-checks: $semver)"
    # Fails when a surface changed, printing both diffs: the document's (`ralio_api_surface`)
    # and the generated Rust code's (`ralio_rust_surface`: types, fields, readers, builder
    # methods). Review them, accept with `cargo insta review` (or `cargo insta accept`), fix
    # the code, commit all together.
    cargo test -p ralio --test it spec:: -- --test-threads=1 || {
      echo "surface changed: review the diffs above (cargo insta review)"; exit 1; }

# prove the rule of openapi/README.md: each fixture of openapi/semver-fixtures/ regenerated and judged by the classifier and cargo-semver-checks (additive: no major; breaking: major); a few minutes
semver-rule *fixtures:
    bash openapi/semver-rule.sh {{fixtures}}

# breaking changes in the `ralio` crate's public API against a baseline git revision (default:
# the last `v*` release tag, else `main`); needs cargo-semver-checks
# (`cargo install cargo-semver-checks --locked`), ~3-4 min a check
semver-check baseline="":
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v cargo-semver-checks >/dev/null; then
      echo "cargo-semver-checks is not installed: cargo install cargo-semver-checks --locked" >&2
      exit 1
    fi
    base="{{baseline}}"
    if [ -z "$base" ]; then
      base="$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null || echo main)"
    fi
    git rev-parse --verify --quiet "$base^{commit}" >/dev/null || {
      echo "no such revision: $base (give a tag, branch or commit)" >&2; exit 1; }
    echo "ralio: public API of the working tree against $base"
    cargo semver-checks check-release -p ralio --all-features --baseline-rev "$base"

# run the local Ralio sandbox API
sandbox:
    cargo run -p ralio-sandbox -- --addr 127.0.0.1:8080

# package every publishable crate and build each from its tarball (dependency order; nothing is
# published), build the CLI without its `sandbox` feature, check the MSRV against Cargo.lock
package:
    bash .ci/package

# criterion benchmarks
bench:
    cargo bench --workspace

# what CI runs: installs the test backends, fmt, clippy, tests
ci:
    bash .ci/run

# run every fuzz target for `secs` seconds each (cargo-fuzz on stable via RUSTC_BOOTSTRAP;
# `cargo install cargo-fuzz --locked` once). Crashes land in fuzz/artifacts/<target>/.
fuzz secs="180":
    #!/usr/bin/env bash
    set -euo pipefail
    cd fuzz
    for t in sse_chat_stream error_body key_pem key_jwk openapi_normalize token_answer registration_answer; do
      mkdir -p "corpus/$t"
      cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
      RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -a "$t" "corpus/$t" -- \
        -max_total_time={{secs}} -max_len=65536 -timeout=10 -rss_limit_mb=1024
    done

# the test matrix's second column: the client end-to-end tests, the CLI tests and the quickstart
# against the sandbox's varied answers (RALIO_SANDBOX_VARIANTS=1; see ralio_sandbox::Answers)
test-variants:
    RALIO_SANDBOX_VARIANTS=1 cargo test -p ralio --all-features --test it -- client_e2e:: auth_sandbox:: register:: rotation::
    RALIO_SANDBOX_VARIANTS=1 cargo test -p ralio-cli --all-features -- --skip stores::
    RALIO_SANDBOX_VARIANTS=1 cargo run --example quickstart

# client CPU per authenticated call: SDK `transactions().list()` vs the same job hand-rolled (proof
# by format!, one aws-lc signature, the GET, the body parsed), against the release-built sandbox
# in its own process; prints `sdk / hand-rolled` (goal ≤ 1.2)
bench-cpu:
    cargo build --release -p ralio-sandbox
    cargo bench -p ralio --bench cpu

# the same ratio as instruction counts under callgrind (exact, unlike CPU time on a shared
# machine); needs valgrind, takes a few minutes
bench-instructions:
    bash benches/instructions.sh

# whole-process CPU and wall of one-shot `ralio` commands (whoami, transactions --json,
# chat --no-stream) against the release sandbox, median of several runs, beside curl
bench-cli runs="9":
    cargo build --release -p ralio-sandbox -p ralio-cli
    python3 benches/cli.py --runs {{runs}} --target-dir "$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
