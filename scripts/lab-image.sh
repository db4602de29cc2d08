#!/usr/bin/env bash
# Build the lab base image `sealstore/lab-base:bookworm` (Debian bookworm, systemd as PID 1, python3).
#
# Why debootstrap + `docker import` instead of pulling an image: only the Debian mirror is
# reachable from the machines we target, not a container registry.  The image carries what
# Ansible, molecule and testinfra need on a host (python3, python3-apt, python3-venv, acl for
# become_user, iproute2 for `ss`, procps for `ps`), and nothing that reaches PyPI: Python
# artifacts are built on the controller and pushed by the roles.
#
# The image is labelled with a hash of this script; it is reused while the label matches and
# rebuilt when the recipe changes (or with --force).
#
# Usage: scripts/lab-image.sh [--force]
# Environment: SEALSTORE_LAB_IMAGE (default sealstore/lab-base:bookworm),
#              SEALSTORE_DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail

image="${SEALSTORE_LAB_IMAGE:-sealstore/lab-base:bookworm}"
mirror="${SEALSTORE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
recipe_hash="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
force=0
[[ "${1:-}" == "--force" ]] && force=1

say() { printf 'lab-image: %s\n' "$*" >&2; }

current="$(docker image inspect --format '{{ index .Config.Labels "org.sealstore.recipe" }}' "$image" 2>/dev/null || true)"
if [[ "$force" -eq 0 && "$current" == "$recipe_hash" ]]; then
    say "reusing $image (recipe $recipe_hash)"
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    say "building $image needs root (debootstrap): re-run as root"
    exit 2
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
fi

say "building $image (recipe $recipe_hash${current:+, replacing $current}) from $mirror"
work="$(mktemp -d /var/tmp/sealstore-lab-image.XXXXXX)"
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT
rootfs="$work/rootfs"
cache="$repo/.cache/debootstrap"
mkdir -p "$cache"

packages=(
    systemd systemd-sysv dbus         # systemd as PID 1 and a bus for systemctl
    python3 python3-apt python3-venv  # Ansible modules, apt module, the storage server's venv
    ca-certificates                   # TLS trust store (the play adds its own CA)
    iproute2 procps                   # ss (listening sockets) and ps for testinfra
    acl sudo libcap2-bin              # become_user temp files, become, setcap for the KMS binary
)
include="$(IFS=,; echo "${packages[*]// /}")"
include="$(echo "$include" | tr -s ',' | sed 's/^,//;s/,$//')"

debootstrap --variant=minbase --cache-dir="$cache" --include="$include" \
    bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    say "debootstrap failed; last lines:"
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
}

# Units that cannot work inside an unprivileged container (read-only /proc/sys, no udev, no
# consoles, no kernel modules) would only turn the system "degraded" or hang boot.  The apt
# timers are masked so that no background apt run holds the dpkg lock while a play runs.
masked=(
    systemd-remount-fs.service systemd-udevd.service systemd-udevd-control.socket
    systemd-udevd-kernel.socket systemd-udev-trigger.service systemd-udev-settle.service
    getty.target getty@.service serial-getty@.service console-getty.service
    systemd-modules-load.service systemd-sysctl.service systemd-firstboot.service
    systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount
    sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount
    systemd-journald-audit.socket systemd-pcrphase-sysinit.service systemd-pcrphase.service
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service
    fstrim.timer
)
for unit in "${masked[@]}"; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done

# A fresh machine-id per container: systemd writes one at boot when the file is empty.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
# Keep images small and free of stale state.
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log \
    "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
printf 'sealstore lab host\n' >"$rootfs/etc/motd"

# `docker import` accepts no STOPSIGNAL, so the imported root file system gets one tiny
# offline build step on top: systemd shuts down cleanly on SIGRTMIN+3, not on SIGTERM.
tar --numeric-owner --xattrs -C "$rootfs" -c . | docker import - "$image-rootfs" >/dev/null
printf '%s\n' "FROM $image-rootfs" \
    'CMD ["/lib/systemd/systemd"]' \
    'STOPSIGNAL SIGRTMIN+3' \
    'ENV container=docker LANG=C.UTF-8' \
    "LABEL org.sealstore.recipe=$recipe_hash" \
    | DOCKER_BUILDKIT=0 docker build -q -t "$image" - >"$work/build.log" 2>&1 \
    || { say "docker build failed:"; cat "$work/build.log" >&2; exit 1; }
docker image rm "$image-rootfs" >/dev/null
say "built $image ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
