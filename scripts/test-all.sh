#!/usr/bin/env bash
# Every test of the project: the Swift test suites (unit + real-sandbox + live-server tests),
# then each integration suite in scripts/tests.d/ in name order. Fails if any fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
failed=()

echo "== swift build (release binary for integration suites)"
swift build -c release --product sandbox-server || exit 1

echo "== swift test"
if ! swift test --parallel --num-workers 2 2>&1 | tee .build/swift-test.log; then
    failed+=("swift test")
fi

for suite in scripts/tests.d/*.sh; do
    [ -e "$suite" ] || continue
    echo "== $suite"
    if ! bash "$suite"; then
        failed+=("$suite")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "All test suites passed."
