#!/usr/bin/env bash
# Validates deploy/: the systemd unit with systemd-analyze verify (the built binary substituted
# for /usr/local/bin/sandbox-server), and the syntax of every YAML and JSON file.
set -uo pipefail
cd "$(dirname "$0")/../.."
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1: $2"; }

bin="$(pwd)/.build/release/sandbox-server"
if [ ! -x "$bin" ]; then
    not_ok "release binary" "missing $bin (run swift build -c release first)"
else
    unit_dir=$(mktemp -d)
    sed "s|/usr/local/bin/sandbox-server|$bin|g" deploy/sandbox-server.service > "$unit_dir/sandbox-server.service"
    if out=$(systemd-analyze verify --man=no "$unit_dir/sandbox-server.service" 2>&1); then
        ok "systemd-analyze verify sandbox-server.service"
    else
        not_ok "systemd-analyze verify sandbox-server.service" "$out"
    fi
    rm -rf "$unit_dir"
fi

for file in deploy/compose.yaml deploy/kubernetes/*.yaml openapi.yaml; do
    if out=$(python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$file" 2>&1); then
        ok "YAML $file"
    else
        not_ok "YAML $file" "$out"
    fi
done
for file in deploy/*.json languages/languages.json; do
    if out=$(python3 -m json.tool "$file" 2>&1 >/dev/null); then ok "JSON $file"; else not_ok "JSON $file" "$out"; fi
done
if [ -x "$bin" ] && "$bin" serve --help >/dev/null 2>&1; then
    # The sample configuration only uses settings the server knows.
    unknown=$(python3 - "$bin" <<'PY'
import json, subprocess, sys
help_text = subprocess.run([sys.argv[1], "serve", "--help"], capture_output=True, text=True).stdout
keys = json.load(open("deploy/sandbox-server.json"))
print(" ".join(k for k in keys if "--" + k not in help_text))
PY
)
    [ -z "$unknown" ] && ok "sample config keys are serve settings" || not_ok "sample config keys" "unknown: $unknown"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
