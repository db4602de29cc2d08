#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, installing and starting one if needed.
#
# Why: the lab and the molecule scenarios need a Docker engine, but the machines we run on
# (fresh Debian, CI runners, containers-in-VMs) often have no systemd as PID 1, so
# `systemctl start docker` is not an option.  This script installs Debian's docker.io when
# the engine is missing, starts `dockerd` in the background when nothing answers, and waits
# until `docker info` works.  It never starts a second daemon when one already answers.
#
# Environment:
#   SEALSTORE_DOCKERD_LOG   log file of a dockerd we start   (default /var/log/sealstore-dockerd.log)
#   SEALSTORE_DOCKERD_PID   pid file of a dockerd we start   (default /run/sealstore-dockerd.pid)
#   SEALSTORE_DOCKER_WAIT   seconds to wait for the engine   (default 60)
set -euo pipefail

log_file="${SEALSTORE_DOCKERD_LOG:-/var/log/sealstore-dockerd.log}"
pid_file="${SEALSTORE_DOCKERD_PID:-/run/sealstore-dockerd.pid}"
wait_s="${SEALSTORE_DOCKER_WAIT:-60}"

say() { printf 'docker-up: %s\n' "$*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

# Fast path first: an engine that answers is all we need (works for non-root docker-group users too).
if command -v docker >/dev/null 2>&1 && engine_answers; then
    say "engine already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    say "no Docker engine answers and installing/starting one needs root: re-run as root (sudo make lab)"
    exit 2
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    say "installing Debian docker.io (apt-get update once, then install)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

# A daemon we started earlier may still be coming up: do not start a second one.
if [[ -s "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    say "dockerd (pid $(cat "$pid_file")) is running but not answering yet; waiting"
elif pgrep -x dockerd >/dev/null 2>&1; then
    say "a dockerd is already running (not started by this script); waiting for it"
else
    say "starting dockerd in the background (log: $log_file, pid file: $pid_file)"
    install -d -m 0755 "$(dirname "$log_file")" "$(dirname "$pid_file")"
    # umask keeps the log readable by root only; the daemon logs no secrets, but it is not ours to share.
    (
        umask 077
        setsid nohup dockerd --pidfile "$pid_file.dockerd" >>"$log_file" 2>&1 </dev/null &
        echo $! >"$pid_file"
    )
fi

for ((i = 0; i < wait_s * 2; i++)); do
    if engine_answers; then
        say "engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
        exit 0
    fi
    if [[ -s "$pid_file" ]] && ! kill -0 "$(cat "$pid_file")" 2>/dev/null && ! pgrep -x dockerd >/dev/null; then
        say "dockerd exited during start-up; last log lines:"
        tail -n 20 "$log_file" >&2 || true
        exit 1
    fi
    sleep 0.5
done
say "Docker engine did not answer within ${wait_s}s; see $log_file"
exit 1
