#!/usr/bin/env bash
# Stop the single-node SLURM started by scripts/slurm/start.sh (slurmd, slurmctld,
# munged). Keeps the state directory (set MMSURV_SLURM_PURGE=1 to delete it).
set -euo pipefail

STATE_DIR="${MMSURV_SLURM_DIR:-/tmp/mmsurv-slurm}"
log() { echo "[slurm/stop] $*" >&2; }

stop_pidfile() {
    local name="$1" pidfile="$2" pid
    if [[ -f "$pidfile" ]] && pid="$(cat "$pidfile")" && kill -0 "$pid" 2>/dev/null; then
        log "stopping $name (pid $pid)"
        kill "$pid" || true
        for _ in $(seq 1 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name still running, sending SIGKILL"
            kill -9 "$pid" || true
        fi
    else
        log "$name not running"
    fi
    rm -f "$pidfile"
}

stop_pidfile slurmd "$STATE_DIR/run/slurmd.pid"
stop_pidfile slurmctld "$STATE_DIR/run/slurmctld.pid"
# munged keeps its pid file in /run/munge (Debian default path).
stop_pidfile munged /run/munge/munged.pid

if [[ "${MMSURV_SLURM_PURGE:-0}" == 1 ]]; then
    log "removing $STATE_DIR"
    rm -rf "$STATE_DIR"
fi
