#!/usr/bin/env bash
# Instructions per authenticated call under callgrind, and the ratios: `sdk / hand-rolled` (the
# same job hand-rolled in one loop, see benches/cpu.rs; goal ≤ 1.2) and the split floor
# `sdk / (plain GET + one signature)`. Exact and repeatable where CPU time is not:
# each workload runs twice under valgrind (RALIO_BENCH_CALLS=100 and 600, one workload per
# process, see benches/cpu.rs); per call = (count at 600 − count at 100) / 500, so start-up,
# registration and the first token cancel out, and what varies from process to process (aws-lc
# gathering entropy, allocator state: about ±1k per call over a 200-call gap) is spread thin.
# The plain GET's proofs are signed by the same process, so `get` minus `presign` is the GET
# alone.
#
# Needs valgrind (`apt-get install valgrind`). Takes a few minutes. Usage: bash benches/instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -p ralio-sandbox
bench=$(cargo bench -p ralio --bench cpu --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cpu" and m.get("executable"):
        print(m["executable"])')
[ -x "$bench" ] || { echo "could not find the cpu bench executable" >&2; exit 1; }
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export RALIO_SANDBOX_BIN="$target_dir/release/ralio-sandbox"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

count() { # workload calls -> instructions of the whole process
  RALIO_BENCH_ONLY=$1 RALIO_BENCH_CALLS=$2 valgrind --tool=callgrind \
    --callgrind-out-file="$tmp/cg.$1.$2" "$bench" >"$tmp/log.$1.$2" 2>&1 \
    || { echo "the $1 workload failed under valgrind:" >&2; tail -20 "$tmp/log.$1.$2" >&2; exit 1; }
  sed -n 's/.*I *refs: *//p' "$tmp/log.$1.$2" | tr -d ','
}
per_call() {
  local a b
  a=$(count "$1" 100)
  b=$(count "$1" 600)
  echo $(((b - a) / 500))
}
for w in sdk hand get presign sign; do
  printf 'measuring %-8s' "$w" >&2
  declare "n_$w=$(per_call "$w")"
  printf ' done\n' >&2
done
get=$((n_get - n_presign))
floor=$((get + n_sign))
printf '\ninstructions per call (callgrind)\n'
printf '  sdk transactions().list()   %8d\n' "$n_sdk"
printf '  hand-rolled client          %8d\n' "$n_hand"
python3 -c "r=$n_sdk/$n_hand; print(f'  ratio sdk / hand-rolled     {r:8.3f}   (goal ≤ 1.2)')"
printf '  plain reqwest GET           %8d   (get %d − presign %d)\n' "$get" "$n_get" "$n_presign"
printf '  one raw ES256 signature     %8d\n' "$n_sign"
printf '  floor (GET + signature)     %8d\n' "$floor"
python3 -c "r=$n_sdk/$floor; print(f'  ratio sdk / floor           {r:8.3f}')"
