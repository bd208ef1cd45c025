#!/usr/bin/env bash
# The Jobe-compatible API (/jobe/index.php/restapi/) against a live `sandbox-server serve`
# (scripts/jobe/with-server.sh: free loopback port, temporary data dir, own work root, cgroup
# parent and uids, cleaned up after), checked by scripts/jobe/jobe_cases.py (standard-library
# Python). Ends with the driver's "N passed, M failed" line; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then echo "SKIP 80-jobe: needs root for sandboxes"; exit 0; fi
exec bash scripts/jobe/with-server.sh bash -c '/usr/bin/python3 scripts/jobe/jobe_cases.py --port "$JOBE_PORT" "$@"' jobe-cases "$@"
