#!/usr/bin/env bash
# Judge0 compatibility through real clients: installs the official Python SDK (`judge0`) and
# `judge0-client` in a virtualenv under .build/, starts the release `sandbox-server serve` on a
# free loopback port with its own data dir, work root and cgroup parent, and runs
# scripts/judge0/sdk_check.py against it. Prints "N passed, M failed"; non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${SANDBOX_SERVER_BIN:-.build/release/sandbox-server}
VENV=.build/judge0-sdk-venv
[ -x "$BIN" ] || { echo "missing $BIN (run: swift build -c release --product sandbox-server)" >&2; echo "0 passed, 1 failed"; exit 1; }

if ! "$VENV/bin/python" -c "import judge0, judge0_client" 2>/dev/null; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet "judge0==0.0.8" "judge0-client==0.4.0" || {
        echo "cannot install the Judge0 SDKs from PyPI" >&2; echo "0 passed, 1 failed"; exit 1; }
fi

name="ss-judge0-sdk-$$"
scratch=$(mktemp -d "/tmp/$name.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT

"$BIN" serve --host 127.0.0.1 --port "$port" --data-dir "$scratch/data" --workers 2 \
    --work-root "/run/$name" --cgroup-parent "$name" --first-uid $((72000 + ($$ % 50) * 16)) \
    >"$scratch/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/about" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if ! curl -fsS "http://127.0.0.1:$port/about" >/dev/null 2>&1; then
    echo "the server did not start:" >&2; cat "$scratch/server.log" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

"$VENV/bin/python" scripts/judge0/sdk_check.py "http://127.0.0.1:$port"
status=$?
[ $status -eq 0 ] || { echo "--- server log" >&2; tail -40 "$scratch/server.log" >&2; }
exit $status
