#!/usr/bin/env bash
# Every benchmark runs to the end at a tiny size (about 20 s in all) and prints its table: the
# figures are meaningless here, but a benchmark broken by a change is caught before someone
# needs its numbers (`bench store` once failed on a repeated job id and nothing noticed).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=.build/release/sandbox-server
out=$(mktemp)
trap 'rm -f "$out"' EXIT
failures=0

# check NAME EXPECTED-TEXT ARGS...: the bench exits 0 and prints EXPECTED-TEXT.
check() {
    local name=$1 expected=$2
    shift 2
    if ! "$bin" bench "$@" >"$out" 2>&1; then
        echo "FAIL bench $name exited non-zero:"; tail -20 "$out"; failures=$((failures + 1)); return
    fi
    if ! grep -qF -- "$expected" "$out"; then
        echo "FAIL bench $name printed no \"$expected\":"; tail -20 "$out"; failures=$((failures + 1)); return
    fi
    echo "ok   bench $name"
}

check store "claim + complete" store --rounds 1 --operations 200 --seconds 0.2
check sandbox "sandbox / plain" sandbox --runs 20 --warmup 2 --seconds 0.5
check e2e "e2e / sandbox" e2e --rounds 1 --seconds 0.5 --duration 1
check http "nginx" http --rounds 1 --duration 1

[ "$failures" -eq 0 ] || { echo "$failures benchmark(s) broken"; exit 1; }
echo "all 4 benchmarks ran"
