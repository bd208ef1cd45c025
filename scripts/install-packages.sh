#!/usr/bin/env bash
# Installs, with apt-get, those of the given Debian packages that are not installed yet.
# Runs `apt-get update` once per machine (or when the lists are older than a day).
set -euo pipefail
missing=()
for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing packages ${missing[*]}; run as root or install them with apt-get" >&2
    exit 1
fi
echo "Installing: ${missing[*]}"
stamp=/var/lib/apt/periodic/update-success-stamp
if [ ! -d /var/lib/apt/lists/partial ] || [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -1440 2>/dev/null | head -1)" ]; then
    apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
