#!/bin/sh
# Build the sealstore wheelhouse for one fingerprint into a temporary directory, pack it as one tarball
# (one file to push per host instead of dozens), then move it into place, so a failed or concurrent build
# never leaves a half-filled wheelhouse behind. Keeps the five newest wheelhouses.
# Usage: build_wheelhouse.sh PYTHON SOURCE_DIR CACHE_DIR FINGERPRINT CONSTRAINTS [EXTRA_REQ...]
set -eu
python=$1 source=$2 cache=$3 fingerprint=$4 constraints=$5
shift 5
final="$cache/$fingerprint"
tmp="$cache/.tmp.$fingerprint.$$"
rm -rf "$tmp"
mkdir -p "$tmp/wheels"
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$tmp/wheels" "$source"
"$python" -m pip wheel --quiet --wheel-dir "$tmp/wheels" -r "$source/requirements/runtime.txt"
if [ "$#" -gt 0 ]; then
    "$python" -m pip wheel --quiet --wheel-dir "$tmp/wheels" -c "$constraints" "$@"
fi
(cd "$tmp/wheels" && ls -1 ./*.whl | LC_ALL=C sort >../list)
tar -C "$tmp/wheels" --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$tmp/wheelhouse.tar" -T "$tmp/list"
rm -rf "$tmp/wheels" "$tmp/list"
if [ -e "$final/wheelhouse.tar" ]; then
    exit 0   # a concurrent run finished the same fingerprint first
fi
rm -rf "$final"
mv "$tmp" "$final"
trap - EXIT
# Prune old wheelhouses (never the one just built).
ls -1dt "$cache"/*/ 2>/dev/null | tail -n +6 | while read -r old; do
    [ "${old%/}" = "$final" ] || rm -rf "$old"
done
