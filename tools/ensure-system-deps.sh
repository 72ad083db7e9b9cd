#!/usr/bin/env bash
# Installs the distribution packages Firelane's set-up and tests need, when they are missing.
# Debian and Raspberry Pi OS split `venv` out of python3, and the broker tests need mosquitto.
set -euo pipefail

missing=()
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto)

((${#missing[@]})) || exit 0

if [[ $(id -u) -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "firelane set-up: missing system packages: ${missing[*]}" >&2
    echo "  install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "firelane set-up: installing ${missing[*]} from the distribution's packages" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts a system broker on port 1883; tests start their own on free ports.
if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null 2>&1; then
    "${sudo[@]}" systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
