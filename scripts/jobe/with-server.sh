#!/usr/bin/env bash
# Runs COMMAND... against a live `sandbox-server serve` on a free loopback port, with a
# temporary data dir and its own --work-root/--cgroup-parent/--first-uid, and stops the server
# and removes what it made afterwards. COMMAND sees the port as $JOBE_PORT. Exits with
# COMMAND's status. Needs root (real sandboxes). Set BIN to use another binary, WORKERS for
# the number of sandbox slots (default 2).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.build/release/sandbox-server}
if [ ! -x "$BIN" ]; then
    export PATH=/opt/swift/usr/bin:$PATH
    swift build -c release --product sandbox-server || exit 1
fi
name="ss-jobe-$$"
data=$(mktemp -d "/tmp/$name.XXXXXX")
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
first_uid=$((66000 + ($$ % 500) * 8))
"$BIN" serve --host 127.0.0.1 --port "$port" --data-dir "$data/data" --workers "${WORKERS:-2}" \
    --work-root "/run/$name" --cgroup-parent "$name" --first-uid "$first_uid" >"$data/server.log" 2>&1 &
server=$!
cleanup() {
    kill -TERM "$server" 2>/dev/null
    wait "$server" 2>/dev/null
    rm -rf "$data"
}
trap cleanup EXIT
ready=0
for _ in $(seq 1 120); do
    if /usr/bin/python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/jobe/index.php/restapi/languages', timeout=2)" 2>/dev/null; then
        ready=1; break
    fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.5
done
if [ $ready -ne 1 ]; then
    echo "sandbox-server did not start:"; cat "$data/server.log"
    exit 1
fi
JOBE_PORT=$port "$@"
status=$?
if [ $status -ne 0 ]; then echo "--- server log (tail)"; tail -20 "$data/server.log"; fi
exit $status
