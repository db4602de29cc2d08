#!/bin/sh
# Test-only ansible-vault password for this scenario (ANSIBLE_VAULT_PASSWORD_FILE points here): a random password
# generated on first use into the scenario's ephemeral directory (removed by destroy), never committed.
set -eu
dir="${MOLECULE_EPHEMERAL_DIRECTORY:-${TMPDIR:-/tmp}/sealstore-molecule-namespace}"
umask 077
mkdir -p "$dir"
if [ ! -s "$dir/vault-pass" ]; then
  od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$dir/vault-pass.tmp"
  mv "$dir/vault-pass.tmp" "$dir/vault-pass"
fi
cat "$dir/vault-pass"
