#!/usr/bin/env bash
# Short CI run of the HTTP request-parser fuzzer (45 s after the build); fails on any crash,
# sanitizer report or parser invariant violation. The long run is `scripts/fuzz-http.sh 600`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/fuzz-http.sh "${HTTP_FUZZ_SECONDS:-45}"
