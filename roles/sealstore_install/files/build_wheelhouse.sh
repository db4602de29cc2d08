#!/bin/sh
# Build the sealstore wheelhouse from scratch into a temporary directory, then swap it in, so a failed
# build never leaves a half-filled wheelhouse behind.
# Usage: build_wheelhouse.sh PYTHON SOURCE_DIR WHEELHOUSE_DIR FINGERPRINT CONSTRAINTS [EXTRA_REQ...]
set -eu
python=$1 source=$2 wheelhouse=$3 fingerprint=$4 constraints=$5
shift 5
tmp="${wheelhouse}.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$tmp" "$source"
"$python" -m pip wheel --quiet --wheel-dir "$tmp" -r "$source/requirements/runtime.txt"
if [ "$#" -gt 0 ]; then
    "$python" -m pip wheel --quiet --wheel-dir "$tmp" -c "$constraints" "$@"
fi
printf '%s\n' "$fingerprint" >"$tmp/.fingerprint"
rm -rf "$wheelhouse"
mv "$tmp" "$wheelhouse"
trap - EXIT
