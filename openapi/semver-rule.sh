#!/usr/bin/env bash
# The rule of openapi/README.md ("which document changes are minor and which are major"),
# proven on the crate: each fixture in openapi/semver-fixtures/ is a JSON Patch applied to the
# baseline (the vendored document plus `_probe.json`); the crate is regenerated from it and
# judged twice: by the change classifier (`spec-diff`) and by cargo-semver-checks comparing
# the crate's rustdoc JSON with the baseline's. Fails unless every `additive` fixture gets no
# `major` and every `breaking` one a `major` verdict.
#
# Usage: openapi/semver-rule.sh [FIXTURE…]   (names without `.json`; default: all)
# Needs cargo-semver-checks (`cargo install cargo-semver-checks --locked`) and python3.
# Changes no file of the checkout: the crate is copied to $TMPDIR/ralio-semver-rule/ (stable
# paths, so CARGO_TARGET_DIR keeps their builds between runs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
fixtures="$root/openapi/semver-fixtures"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TERM_COLOR=never
command -v cargo-semver-checks >/dev/null 2>&1 || {
  echo "cargo-semver-checks is not installed: cargo install cargo-semver-checks --locked" >&2
  exit 2
}
work="${TMPDIR:-/tmp}/ralio-semver-rule"
started=$(date +%s)

# A copy of the checkout as it is (tracked and untracked files, nothing ignored).
copy_crate() {
  rm -rf "$1"
  mkdir -p "$1"
  (cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | python3 -c 'import os,sys; [print(p, end="\0") for p in sys.stdin.read().split("\0") if p and os.path.isfile(p)]' \
    | tar --null -T - -cf -) | tar -xf - -C "$1"
}

# apply_patch DOCUMENT FIXTURE OUT: RFC 6902 add / remove / replace.
apply_patch() {
  python3 - "$@" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
fixture = json.load(open(sys.argv[2]))
def walk(path):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    return parent, parts[-1]
for op in fixture["patch"]:
    parent, key = walk(op["path"])
    if isinstance(parent, list):
        index = len(parent) if key == "-" else int(key)
        if op["op"] == "add": parent.insert(index, op["value"])
        elif op["op"] == "remove": del parent[index]
        else: parent[index] = op["value"]
    else:
        if op["op"] == "remove": del parent[key]
        elif op["op"] == "add" and key in parent: sys.exit(f"{sys.argv[2]}: add over an existing {op['path']}")
        elif op["op"] == "replace" and key not in parent: sys.exit(f"{sys.argv[2]}: replace of a missing {op['path']}")
        else: parent[key] = op["value"]
json.dump(doc, open(sys.argv[3], "w"), indent=2)
PY
}

# rustdoc_json CRATE_DIR OUT: the crate's rustdoc JSON (default features).
rustdoc_json() {
  (cd "$1" && RUSTC_BOOTSTRAP=1 cargo rustdoc -q -p ralio --lib -- -Z unstable-options --output-format json)
  cp "$CARGO_TARGET_DIR/doc/ralio.json" "$2"
}

echo "== the classifier (spec-diff)"
(cd "$root" && cargo build -q -p ralio-openapi-normalize --features diff,rust --bin spec-diff)
spec_diff="$CARGO_TARGET_DIR/debug/spec-diff"

echo "== baseline: the vendored document + _probe.json"
copy_crate "$work/base"
apply_patch "$root/openapi/ralio.json" "$fixtures/_probe.json" "$work/base/openapi/ralio.json"
rustdoc_json "$work/base" "$work/base.json"
copy_crate "$work/fixture"

names=("$@")
if ((${#names[@]} == 0)); then
  for f in "$fixtures"/*.json; do
    n="$(basename "$f" .json)"
    [[ "$n" == _* ]] || names+=("$n")
  done
fi

failures=0
summary=()
for name in "${names[@]}"; do
  fixture="$fixtures/$name.json"
  expect="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["expect"])' "$fixture")"
  blind="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("semver_checks", ""))' "$fixture")"
  t0=$(date +%s)
  echo
  echo "== $name (expected: $expect)"
  apply_patch "$work/base/openapi/ralio.json" "$fixture" "$work/fixture/openapi/ralio.json"
  set +e
  classes="$("$spec_diff" "$work/base/openapi/ralio.json" "$work/fixture/openapi/ralio.json")"
  set -e
  echo "$classes" | sed -n '2,/^$/p' | sed '/^$/d; s/^/   /'
  classifier="$(echo "$classes" | sed -n 's/.*: a \([a-z]*\) release of the generated crate/\1/p')"
  semver="error"
  if rustdoc_json "$work/fixture" "$work/fixture.json"; then
    set +e
    out="$(cd "$work/fixture" && cargo semver-checks check-release -p ralio \
      --baseline-rustdoc "$work/base.json" --current-rustdoc "$work/fixture.json" 2>&1)"
    set -e
    echo "$out" | grep -E '^\s*--- failure|Summary' | sed 's/^ */   /'
    case "$out" in
      *"requires new major version"*) semver="major" ;;
      *"requires new minor version"*) semver="minor" ;;
      *"no semver update required"*) semver="none" ;;
      *) echo "$out" | tail -20 ;;
    esac
  else
    echo "   the crate does not build from this document"
  fi
  verdict="$semver"
  [[ "$classifier" == "major" ]] && verdict="major"
  ok=no
  case "$expect" in
    additive) [[ "$semver" != "major" && "$semver" != "error" && "$classifier" == "minor" ]] && ok=yes ;;
    breaking) [[ "$verdict" == "major" && "$classifier" == "major" && ( "$semver" == "major" || "$blind" == "$semver" ) ]] && ok=yes ;;
  esac
  [[ "$ok" == yes ]] || failures=$((failures + 1))
  summary+=("$(printf '%-28s %-9s classifier %-6s cargo-semver-checks %-6s verdict %-6s %s (%ss)' \
    "$name" "$expect" "$classifier" "$semver" "$verdict" "$([[ $ok == yes ]] && echo ok || echo FAILED)" "$(( $(date +%s) - t0 ))")")
done

echo
echo "== the rule, proven ($(( $(date +%s) - started ))s)"
printf '%s\n' "${summary[@]}"
if ((failures)); then
  echo "$failures fixture(s) did not get the expected verdict" >&2
  exit 1
fi
