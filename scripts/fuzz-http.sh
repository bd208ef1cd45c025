#!/usr/bin/env bash
# Fuzz HTTPCore's request parser with libFuzzer.
#   scripts/fuzz-http.sh [SECONDS]          build, then fuzz for SECONDS (default 600)
#   scripts/fuzz-http.sh --replay FILE...   build the ordinary (replay) binary and run FILEs through it
# Builds in .build-fuzz (separate from .build) with -sanitize=fuzzer,address; -DHTTP_FUZZING drops the
# replay @main so libFuzzer's main is used. Seeds: Tests/HTTPCoreTests/FuzzCorpus (read-only); new
# inputs go to .build-fuzz/corpus; crashes to fuzz-artifacts/. Exits non-zero if a crash was found.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH

if [ "${1:-}" = "--replay" ]; then
    shift
    swift build -c release --product HTTPParserFuzzer >/dev/null
    exec .build/release/HTTPParserFuzzer "$@"
fi

seconds="${1:-600}"
swift build -c release --scratch-path .build-fuzz --product HTTPParserFuzzer \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DHTTP_FUZZING \
    -Xcc -fsanitize=fuzzer-no-link,address
binary=.build-fuzz/release/HTTPParserFuzzer
mkdir -p .build-fuzz/corpus fuzz-artifacts
log=.build-fuzz/fuzz.log
set +e
"$binary" .build-fuzz/corpus Tests/HTTPCoreTests/FuzzCorpus \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=fuzz-artifacts/ -print_final_stats=1 2>&1 | tee "$log" | grep -E "^#[0-9]+.*(pulse|DONE)|ERROR|SUMMARY|stat::|Done"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    echo "fuzzer failed (exit $status); see $log and fuzz-artifacts/" >&2
    exit 1
fi
echo "fuzz run passed: $(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}') executions, 0 crashes"
