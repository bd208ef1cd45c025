#!/usr/bin/env bash
# The Jobe-compatible API (/jobe/index.php/restapi/) against a live `sandbox-server serve`:
# starts the release binary on a free loopback port with a temporary data dir and its own
# --work-root/--cgroup-parent/--first-uid, runs scripts/jobe/jobe_cases.py (standard-library
# Python), then stops the server and removes what it made. Needs root (real sandboxes).
# Ends with the driver's "N passed, M failed" line; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.build/release/sandbox-server}
if [ "$(id -u)" -ne 0 ]; then echo "SKIP 80-jobe: needs root for sandboxes"; exit 0; fi
if [ ! -x "$BIN" ]; then
    export PATH=/opt/swift/usr/bin:$PATH
    swift build -c release --product sandbox-server || exit 1
fi
PYTHON=/usr/bin/python3
name="ss-jobe-$$"
data=$(mktemp -d "/tmp/$name.XXXXXX")
port=$($PYTHON -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
first_uid=$((66000 + ($$ % 500) * 4))
"$BIN" serve --host 127.0.0.1 --port "$port" --data-dir "$data/data" --workers 2 \
    --work-root "/run/$name" --cgroup-parent "$name" --first-uid "$first_uid" >"$data/server.log" 2>&1 &
server=$!
cleanup() {
    kill -TERM "$server" 2>/dev/null
    wait "$server" 2>/dev/null
    rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 1 120); do
    if $PYTHON -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$port/jobe/index.php/restapi/languages', timeout=2)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        echo "sandbox-server did not start:"; cat "$data/server.log"; echo "0 passed, 1 failed"; exit 1
    fi
    sleep 0.5
done
$PYTHON scripts/jobe/jobe_cases.py --port "$port" "$@"
status=$?
if [ $status -ne 0 ]; then echo "--- server log (tail)"; tail -20 "$data/server.log"; fi
exit $status
