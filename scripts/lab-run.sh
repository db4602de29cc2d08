#!/usr/bin/env bash
# `make lab`: from a fresh Debian machine to a verified, encrypted S3 lab in one command.
#
# Why a script: every stage prints one progress line and keeps its full output in
# .lab/logs/<stage>.log (0600), so a newcomer sees where it is and, on failure, the tail of the
# failing stage instead of thousands of lines.  Stages: prerequisites, venv, Docker engine, base
# image, hosts, site.yml, verify.yml, summary.
#
# Usage: scripts/lab-run.sh [vault|master_key] [single|cluster]
#        (make lab KMS_MODE=master_key; make lab KMS_TOPOLOGY=cluster: 3 raft nodes + transit unsealer)
set -euo pipefail

mode="${1:-${KMS_MODE:-vault}}"
topology="${2:-${KMS_TOPOLOGY:-single}}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
logs="$repo/.lab/logs"
inventory="$repo/inventories/lab"
case "$topology" in
    single) ;;
    cluster)
        inventory="$repo/inventories/lab-cluster"
        if [[ "$mode" != vault ]]; then
            echo "lab: KMS_TOPOLOGY=cluster is an OpenBao cluster: it needs KMS_MODE=vault" >&2
            exit 64
        fi
        ;;
    *)
        echo "lab: KMS_TOPOLOGY must be single or cluster, not '$topology'" >&2
        exit 64
        ;;
esac
export SEALSTORE_LAB_TOPOLOGY="$topology"
total=7
stage_no=0

case "$mode" in
    vault | master_key) ;;
    *)
        echo "lab: KMS_MODE must be vault or master_key, not '$mode'" >&2
        exit 64
        ;;
esac

if [[ "$(id -u)" -ne 0 ]] && ! docker info >/dev/null 2>&1; then
    echo "lab: needs root (to install/start Docker and build the base image) or a Docker engine you may use; re-run as root: sudo make lab" >&2
    exit 2
fi
if [[ "$(id -u)" -ne 0 ]] && ! command -v docker >/dev/null 2>&1; then
    echo "lab: Docker is not installed and installing it needs root: sudo make lab" >&2
    exit 2
fi

install -d -m 0700 "$repo/.lab" "$logs"
export PATH="$repo/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$repo/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0

# run_stage NAME DESCRIPTION COMMAND...: one progress line, output to the stage log.
run_stage() {
    local name="$1" desc="$2"
    shift 2
    stage_no=$((stage_no + 1))
    local log="$logs/$name.log" start=$SECONDS
    printf '[%d/%d] %-44s ' "$stage_no" "$total" "$desc"
    (umask 077 && : >"$log")
    if "$@" >>"$log" 2>&1; then
        printf 'ok (%ds)\n' $((SECONDS - start))
    else
        local rc=$?
        printf 'FAILED (%ds, rc=%d)\n' $((SECONDS - start)) "$rc"
        echo "---- last lines of $log ----" >&2
        tail -n 40 "$log" >&2
        echo "---- full log: $log ----" >&2
        exit "$rc"
    fi
}

run_stage venv "Python virtualenv (.venv, pinned)" make -C "$repo" --no-print-directory venv
run_stage docker "Docker engine" "$here/docker-up.sh"
run_stage image "lab base image (debootstrap bookworm)" "$here/lab-image.sh"
run_stage hosts "hosts ($topology topology)" "$here/lab.sh" up
run_stage site "site.yml (kms_mode=$mode)" \
    ansible-playbook -i "$inventory" "$repo/playbooks/site.yml" -e "kms_mode=$mode"
run_stage verify "verify.yml (SSE round trips, at-rest scan)" \
    ansible-playbook -i "$inventory" "$repo/playbooks/verify.yml" -e "kms_mode=$mode"
stage_no=$((stage_no + 1))
printf '[%d/%d] %s\n' "$stage_no" "$total" "summary"
python "$here/lab_summary.py" --mode "$mode" --inventory "$inventory"
