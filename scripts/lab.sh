#!/usr/bin/env bash
# The local lab: three systemd hosts (vault1, storage1, client1) on a private Docker network.
#
# Why a script and not molecule: the lab outlives a test run; a newcomer keeps it up, looks at
# it, re-runs plays against it (inventories/lab) and removes it with one command.  Molecule
# scenarios use the same image and container settings under other names.
#
# Containers run systemd as PID 1 without --privileged (this kernel refuses it):
# SYS_ADMIN, seccomp unconfined, the host cgroup namespace with /sys/fs/cgroup mounted rw,
# and tmpfs on /run and /run/lock.
#
# Usage: scripts/lab.sh up | down [--image] | status
# Environment: SEALSTORE_LAB_IMAGE (default sealstore/lab-base:bookworm),
#              SEALSTORE_LAB_NETWORK (default sealstore-lab),
#              SEALSTORE_LAB_TOPOLOGY (single: vault1 storage1 client1, the default; cluster: a 3-node
#              OpenBao raft cluster vault1-3 auto-unsealed by unseal1, inventory inventories/lab-cluster)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
image="${SEALSTORE_LAB_IMAGE:-sealstore/lab-base:bookworm}"
network="${SEALSTORE_LAB_NETWORK:-sealstore-lab}"
topology="${SEALSTORE_LAB_TOPOLOGY:-single}"
case "$topology" in
    single) hosts=(vault1 storage1 client1) ;;
    cluster) hosts=(vault1 vault2 vault3 unseal1 storage1 client1) ;;
    *)
        echo "lab: SEALSTORE_LAB_TOPOLOGY must be single or cluster, not '$topology'" >&2
        exit 64
        ;;
esac
# `down` removes whatever the lab made, whichever topology made it.
all_hosts=(vault1 vault2 vault3 unseal1 storage1 client1)
label="org.sealstore.lab=1"
state_dir="$repo/.lab"
# Controller custody the roles write for the lab inventory (unseal keys, root token, master key,
# S3 credentials, PKI): runtime state of this lab, gitignored, removed with it.
secrets_dirs=("$repo/inventories/lab/.secrets" "$repo/inventories/lab-cluster/.secrets")

say() { printf 'lab: %s\n' "$*" >&2; }

# State of a container: true, false or absent (docker inspect prints an empty line for a missing one).
container_state() {
    docker inspect --format '{{.State.Running}}' "$1" 2>/dev/null | grep -E '^(true|false)$' || echo absent
}

is_ours() { [[ "$(docker inspect --format '{{ index .Config.Labels "org.sealstore.lab" }}' "$1" 2>/dev/null)" == "1" ]]; }

wait_systemd() {
    local name="$1" state=""
    for ((i = 0; i < 120; i++)); do
        state="$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)"
        case "$state" in
            running | degraded) return 0 ;;
        esac
        sleep 0.5
    done
    say "$name: systemd did not finish booting (state: ${state:-unknown}); failed units:"
    docker exec "$name" systemctl --failed --no-pager >&2 || true
    return 1
}

up() {
    "$here/lab-image.sh"
    if ! docker network inspect "$network" >/dev/null 2>&1; then
        docker network create --label "$label" "$network" >/dev/null
        say "network $network created"
    fi
    install -d -m 0700 "$state_dir"
    local name running
    for name in "${hosts[@]}"; do
        running="$(container_state "$name")"
        if [[ "$running" != absent ]] && ! is_ours "$name"; then
            say "a container named $name exists that the lab did not make; remove or rename it first"
            exit 1
        fi
        case "$running" in
            true) say "$name already running" ;;
            false) docker start "$name" >/dev/null && say "$name started again" ;;
            absent)
                docker run -d --name "$name" --hostname "$name" --label "$label" \
                    --network "$network" --network-alias "$name" \
                    --cap-add SYS_ADMIN --security-opt seccomp=unconfined \
                    --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
                    --tmpfs /run --tmpfs /run/lock \
                    "$image" >/dev/null
                say "$name created"
                ;;
        esac
    done
    for name in "${hosts[@]}"; do
        wait_systemd "$name"
    done
    say "hosts up: ${hosts[*]} on network $network"
}

down() {
    local name
    for name in "${all_hosts[@]}"; do
        if docker inspect "$name" >/dev/null 2>&1; then
            if is_ours "$name"; then
                docker rm -f -v "$name" >/dev/null && say "$name removed"
            else
                say "leaving $name alone: the lab did not make it"
            fi
        fi
    done
    if docker network inspect "$network" >/dev/null 2>&1; then
        docker network rm "$network" >/dev/null && say "network $network removed"
    fi
    local dir
    for dir in "$state_dir" "${secrets_dirs[@]}"; do
        if [[ -d "$dir" ]]; then
            rm -rf --one-file-system "$dir" && say "controller state ${dir#"$repo"/} removed"
        fi
    done
    if [[ "${1:-}" == "--image" ]] && docker image inspect "$image" >/dev/null 2>&1; then
        docker image rm "$image" >/dev/null && say "image $image removed"
    fi
}

status() {
    local name running state ip
    for name in "${hosts[@]}"; do
        running="$(container_state "$name")"
        state="-"
        ip="-"
        if [[ "$running" == true ]]; then
            state="$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)"
            ip="$(docker inspect --format "{{ (index .NetworkSettings.Networks \"$network\").IPAddress }}" "$name" 2>/dev/null || echo -)"
        fi
        printf '%-9s container=%-7s systemd=%-9s ip=%s\n' "$name" "$running" "${state:--}" "$ip"
    done
}

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    say "no Docker engine answers: run scripts/docker-up.sh (as root) first"
    exit 2
fi

case "${1:-}" in
    up) up ;;
    down) down "${2:-}" ;;
    status) status ;;
    *)
        echo "usage: $0 up | down [--image] | status" >&2
        exit 64
        ;;
esac
