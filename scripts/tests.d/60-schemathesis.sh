#!/usr/bin/env bash
# Property-based API test: schemathesis (PyPI) generates requests from openapi.yaml against a live
# server for a bounded time and fails on any 5xx, any response that does not match its schema,
# an undocumented status code or content type. Then /metrics, after that traffic, is checked with
# prometheus_client's parser (scripts/check-metrics.py). Needs root (the server runs sandboxes) and the
# release binary (scripts/test-all.sh builds it first).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_BUDGET="${SCHEMATHESIS_SECONDS:-100}"
BIN=.build/release/sandbox-server
VENV=.build/schemathesis-venv
VERSION=4.32.5

if [ "$(id -u)" != 0 ]; then echo "schemathesis: skipped (needs root to run sandboxes)"; exit 0; fi
[ -x "$BIN" ] || { echo "schemathesis: $BIN missing; build with: swift build -c release --product sandbox-server" >&2; exit 1; }
PROMETHEUS_CLIENT=0.26.0
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$VERSION"
fi
if ! "$VENV/bin/pip" show prometheus_client 2>/dev/null | grep -q "^Version: $PROMETHEUS_CLIENT$"; then
    "$VENV/bin/pip" install --quiet "prometheus_client==$PROMETHEUS_CLIENT"
fi

NAME="ss-schemathesis-$$"
DATA="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$BIN" serve --host 127.0.0.1 --port "$PORT" --data-dir "$DATA" --workers 2 --work-root "/run/$NAME" \
    --cgroup-parent "$NAME" --first-uid 64000 --max-queue 100000 >"$DATA/server.log" 2>&1 &
SERVER=$!
cleanup() { kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/v1/health" >/dev/null 2>&1 && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$DATA/server.log" >&2; exit 1; }
    sleep 0.1
done

"$VENV/bin/st" --config-file scripts/schemathesis.toml run openapi.yaml --url "http://127.0.0.1:$PORT" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-time "$SECONDS_BUDGET" --max-examples 25 --workers 1 --request-timeout 90 --no-color

# After the generated traffic, /metrics must parse with the reference parser and stay bounded.
curl -fs "http://127.0.0.1:$PORT/metrics" | "$VENV/bin/python" scripts/check-metrics.py
