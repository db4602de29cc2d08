#!/usr/bin/env bash
# Create or refresh the project virtualenv with the pinned requirements and sealstore (editable).
#
# Why a script: `make venv` calls it only when the requirements hash changed, and a fresh Debian
# machine may lack the venv module (python3-venv), which we install when running as root.
# Usage: scripts/venv.sh PYTHON VENV_DIR
set -euo pipefail
python="${1:-python3}"
venv="${2:-.venv}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

say() { printf 'venv: %s\n' "$*" >&2; }

if [[ ! -x "$venv/bin/python" ]]; then
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
            say "installing python3-venv"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
                || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
        else
            say "$python has no venv module: install python3-venv (as root) and re-run"
            exit 2
        fi
    fi
    say "creating $venv with $("$python" --version)"
    "$python" -m venv "$venv"
fi
say "installing pinned requirements (requirements/dev.txt) and sealstore (editable)"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$repo/requirements/dev.txt"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$repo"
say "ready: $("$venv/bin/python" --version), $("$venv/bin/pip" --version | cut -d' ' -f1-2)"
