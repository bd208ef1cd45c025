#!/usr/bin/env bash
# `sandbox-server run`: exit statuses, pass-through, --json shape, limits and flags, through the
# release binary as an operator would use it. Prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${SANDBOX_SERVER_BIN:-.build/release/sandbox-server}
WORK=/run/sandbox-server-cli-test
RUN=("$BIN" run --work-root "$WORK" --cgroup-parent sandbox-server-cli-test --first-uid 63000)
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1${2:+: $2}"; }
expect_status() {  # name expected-status command...
    local name=$1 want=$2; shift 2
    "$@" >/tmp/cli-out.$$ 2>/tmp/cli-err.$$; local got=$?
    if [ "$got" = "$want" ]; then ok "$name"; else not_ok "$name" "exit $got, wanted $want; $(head -c 300 /tmp/cli-err.$$)"; fi
}
json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d[sys.argv[2]]))' /tmp/cli-out.$$ "$1"; }

[ "$(id -u)" = 0 ] || { echo "20-cli-run.sh needs root"; exit 1; }

expect_status "exit status passes through" 3 "${RUN[@]}" -- /bin/sh -c 'exit 3'
expect_status "stdout passes through" 0 "${RUN[@]}" -- /bin/echo hello
[ "$(cat /tmp/cli-out.$$)" = "hello" ] && ok "stdout content" || not_ok "stdout content" "$(cat /tmp/cli-out.$$)"
expect_status "killed by a signal is 128+N" 143 "${RUN[@]}" -- /bin/sh -c 'kill -TERM $$'
expect_status "wall time limit is 124" 124 "${RUN[@]}" --wall-time 0.3 -- /bin/sleep 5
expect_status "cpu time limit is 124" 124 "${RUN[@]}" --cpu-time 0.3 -- /bin/sh -c 'while :; do :; done'
expect_status "memory limit is 125" 125 "${RUN[@]}" --memory 32M -- /usr/bin/python3 -c 'b = bytearray(1 << 30); b[::4096] = b"x" * (len(b) // 4096)'
expect_status "output limit with kill is 123" 123 "${RUN[@]}" --output 1K --kill-on-output-limit -- /usr/bin/yes
expect_status "missing program is a sandbox error (120)" 120 "${RUN[@]}" -- /no/such/program
expect_status "relative program is refused" 64 "${RUN[@]}" -- python3 -c pass

expect_status "--json exits 0 for a failing program" 0 "${RUN[@]}" --json -- /bin/sh -c 'echo out; echo err >&2; exit 7'
keys=$(python3 -c 'import json,sys; print(",".join(sorted(json.load(open(sys.argv[1])))))' /tmp/cli-out.$$)
want="cgroup_version,cpu_time_ms,exit_code,memory_bytes,message,signal,status,stderr,stderr_truncated,stdout,stdout_truncated,time_limit_kind,wall_time_ms"
[ "$keys" = "$want" ] && ok "--json has exactly the documented keys" || not_ok "--json keys" "$keys"
[ "$(json_field status)" = '"runtime_error"' ] && [ "$(json_field exit_code)" = 7 ] && [ "$(json_field stdout)" = '"out\n"' ] && [ "$(json_field stderr)" = '"err\n"' ] \
    && ok "--json status, exit code and streams" || not_ok "--json values" "$(cat /tmp/cli-out.$$)"

expect_status "--json time limit kind" 0 "${RUN[@]}" --json --wall-time 0.2 -- /bin/sleep 3
[ "$(json_field status)" = '"time_limit"' ] && [ "$(json_field time_limit_kind)" = '"wall"' ] && ok "wall limit reported" || not_ok "wall limit reported" "$(cat /tmp/cli-out.$$)"

expect_status "--json truncation" 0 "${RUN[@]}" --json --output 100 -- /usr/bin/head -c 5000 /dev/zero
[ "$(json_field stdout_truncated)" = true ] && ok "stdout_truncated set" || not_ok "stdout_truncated" "$(cat /tmp/cli-out.$$)"

# A gigabyte to stdout is capped, and the supervisor never holds it: its peak RSS (the largest
# waited-for descendant's, from wait4) stays close to that of a run that prints nothing.
peak_rss_kb() { python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"; }
quiet_kb=$(peak_rss_kb "${RUN[@]}" -- /bin/true)
loud_kb=$(peak_rss_kb "${RUN[@]}" --output 1M --wall-time 60 -- /usr/bin/head -c 1G /dev/zero)
[ $((loud_kb - quiet_kb)) -lt $((32 * 1024)) ] && ok "1 GB of output: supervisor peak RSS ${loud_kb} kB vs ${quiet_kb} kB" \
    || not_ok "supervisor memory under 1 GB of output" "peak ${loud_kb} kB, quiet run ${quiet_kb} kB"

echo "from stdin" > /tmp/cli-stdin.$$
expect_status "--stdin FILE" 0 "${RUN[@]}" --stdin /tmp/cli-stdin.$$ -- /bin/cat
[ "$(cat /tmp/cli-out.$$)" = "from stdin" ] && ok "stdin content" || not_ok "stdin content"

box=$(mktemp -d); chmod 0777 "$box"; echo data > "$box/in.txt"
expect_status "--box DIR binds a host directory" 0 "${RUN[@]}" --box "$box" -- /bin/sh -c 'cat in.txt; echo made > out.txt'
[ "$(cat /tmp/cli-out.$$)" = "data" ] && [ "$(cat "$box/out.txt")" = "made" ] && ok "box contents both ways" || not_ok "box contents"
rm -rf "$box"

expect_status "--env sets variables" 0 "${RUN[@]}" --env GREETING=hi -- /bin/sh -c 'echo $GREETING'
[ "$(cat /tmp/cli-out.$$)" = "hi" ] && ok "env value" || not_ok "env value"
expect_status "network is off by default" 0 "${RUN[@]}" -- /usr/bin/python3 -c 'import socket; print([n for _, n in socket.if_nameindex()])'
[ "$(cat /tmp/cli-out.$$)" = "['lo']" ] && ok "only loopback" || not_ok "only loopback" "$(cat /tmp/cli-out.$$)"
expect_status "--processes limits forks" 0 "${RUN[@]}" --processes 5 -- /usr/bin/python3 -c '
import os, time
n = 0
for i in range(8):
    try:
        if os.fork() == 0:
            time.sleep(1); os._exit(0)
        n += 1
    except OSError:
        pass
print(n)'
# python + 4 children = 5 (the sandbox's init is not counted)
[ "$(cat /tmp/cli-out.$$)" = "4" ] && ok "fork count under --processes 5" || not_ok "fork count" "$(cat /tmp/cli-out.$$)"
expect_status "bad size is a usage error" 64 "${RUN[@]}" --memory 12Q -- /bin/true

# A supervisor killed outright takes its sandbox with it (init's parent-death signal), and the
# next start clears the cgroups, mounts and directories it could not.
marker="7$$"
"${RUN[@]}" --wall-time 60 -- /bin/sleep "$marker" >/dev/null 2>&1 &
supervisor=$!
for _ in $(seq 50); do pgrep -f "^/bin/sleep $marker\$" >/dev/null && break; sleep 0.1; done
if pgrep -f "^/bin/sleep $marker\$" >/dev/null; then
    kill -9 "$supervisor"; wait "$supervisor" 2>/dev/null
    for _ in $(seq 50); do pgrep -f "^/bin/sleep $marker\$" >/dev/null || break; sleep 0.1; done
    pgrep -f "^/bin/sleep $marker\$" >/dev/null && not_ok "a killed supervisor's program dies with it" "$(pgrep -af "sleep $marker")" \
        || ok "a killed supervisor's program dies with it"
else
    not_ok "a killed supervisor's program dies with it" "the program never started"
fi
expect_status "the next start clears what a killed supervisor left" 0 "${RUN[@]}" -- /bin/true

# Nothing of ours is left behind.
left=$(ls -d /sys/fs/cgroup/*/sandbox-server-cli-test /sys/fs/cgroup/sandbox-server-cli-test "$WORK" 2>/dev/null)
[ -z "$left" ] && ok "no cgroup or work directory left" || not_ok "leftovers" "$left"
grep -q "$WORK" /proc/self/mountinfo && not_ok "no mount left" || ok "no mount left"

rm -f /tmp/cli-out.$$ /tmp/cli-err.$$ /tmp/cli-stdin.$$
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
