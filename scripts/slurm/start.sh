#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (for tests and CI).
#
# Idempotent: installs slurm-wlm + munge with apt-get when slurmctld is missing,
# creates a munge key, writes a minimal slurm.conf, starts munged, slurmctld and
# slurmd when they are not running, waits until the node is idle and runs a
# trivial sbatch job as a smoke test. Needs root (apt-get, daemons as root).
#
# Environment:
#   MMSURV_SLURM_DIR   state/spool/log directory (default /tmp/mmsurv-slurm)
#   MMSURV_SLURM_WAIT  seconds to wait for the node / the smoke job (default 60)
#
# slurm.conf is written to $MMSURV_SLURM_DIR/slurm.conf and copied to
# /etc/slurm/slurm.conf (the path SLURM commands read by default). If /etc/slurm is
# not writable, export SLURM_CONF=$MMSURV_SLURM_DIR/slurm.conf in your shell.
set -euo pipefail

STATE_DIR="${MMSURV_SLURM_DIR:-/tmp/mmsurv-slurm}"
WAIT_S="${MMSURV_SLURM_WAIT:-60}"
ETC_CONF=/etc/slurm/slurm.conf

log() { echo "[slurm/start] $*" >&2; }

dump_logs() {
    for f in "$STATE_DIR/log/slurmctld.log" "$STATE_DIR/log/slurmd.log" "$STATE_DIR/log/munged.log"; do
        if [[ -f "$f" ]]; then
            echo "----- tail $f -----" >&2
            tail -n 30 "$f" >&2 || true
        fi
    done
}

die() {
    log "ERROR: $*"
    dump_logs
    exit 1
}

if [[ "$(id -u)" != 0 ]]; then
    die "must run as root (installs packages and starts slurmctld/slurmd/munged as root)"
fi

# ---------------------------------------------------------------- install
apt_get() {
    # Retry while another process holds the dpkg/apt lock.
    local i
    for i in $(seq 1 60); do
        if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=10 "$@"; then
            return 0
        fi
        log "apt-get $* failed (attempt $i), retrying in 5 s (dpkg lock?)"
        sleep 5
    done
    return 1
}

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    command -v apt-get >/dev/null || die "slurmctld missing and apt-get not available"
    log "installing slurm-wlm munge with apt-get"
    apt_get -qq update || die "apt-get update failed"
    apt_get -qq install -y --no-install-recommends slurm-wlm munge >/dev/null \
        || die "apt-get install slurm-wlm munge failed"
fi
for cmd in slurmctld slurmd munged sbatch sinfo squeue; do
    command -v "$cmd" >/dev/null || die "$cmd not found after installation"
done

# ---------------------------------------------------------------- munge
mkdir -p "$STATE_DIR"/{log,spool/ctld,spool/d,run}
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
# munged (started as root with --force) wants the key owned by the running user.
chown root:root /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
chown -R root:root /var/lib/munge /var/log/munge /run/munge /etc/munge
chmod 700 /etc/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    munged --force --log-file="$STATE_DIR/log/munged.log" || die "munged failed to start"
    for _ in $(seq 1 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.5
    done
    munge -n | unmunge >/dev/null 2>&1 || die "munge credential round trip failed"
fi

# ---------------------------------------------------------------- slurm.conf
HOST="$(hostname -s)"
# GNU nproc honours OMP_NUM_THREADS / OMP_THREAD_LIMIT (HPC shells often export 1): the node
# must get the CPUs this machine really offers (the affinity mask), whatever OpenMP says.
CPUS="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"
MEM_TOTAL_MB="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
# Leave ~5% (at least 512 MB) for the OS and the daemons.
REAL_MB=$((MEM_TOTAL_MB - (MEM_TOTAL_MB / 20 > 512 ? MEM_TOTAL_MB / 20 : 512)))

CONF="$STATE_DIR/slurm.conf"
NEW_CONF="$(mktemp)"
cat >"$NEW_CONF" <<CONF
# Written by scripts/slurm/start.sh (mmsurv). Single-node test cluster.
ClusterName=mmsurv
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# squeue is the status source (no accounting): keep finished jobs visible 10 min.
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR/spool/ctld
SlurmdSpoolDir=$STATE_DIR/spool/d
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$HOST CPUs=$CPUS RealMemory=$REAL_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
# Second, non-default partition: lets tests check that SLURM_PARTITION reaches sbatch -p.
PartitionName=batch Nodes=ALL Default=NO MaxTime=INFINITE State=UP
CONF

conf_changed=0
if [[ ! -f "$CONF" ]] || ! cmp -s "$NEW_CONF" "$CONF"; then
    mv "$NEW_CONF" "$CONF"
    conf_changed=1
else
    rm -f "$NEW_CONF"
fi
chmod 644 "$CONF"

if mkdir -p /etc/slurm 2>/dev/null && [[ -w /etc/slurm ]]; then
    if ! cmp -s "$CONF" "$ETC_CONF" 2>/dev/null; then
        cp "$CONF" "$ETC_CONF"
        conf_changed=1
    fi
    unset SLURM_CONF
else
    export SLURM_CONF="$CONF"
    log "NOTE: /etc/slurm not writable; run 'export SLURM_CONF=$CONF' in your shell"
fi

# ---------------------------------------------------------------- daemons
pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [[ "$conf_changed" == 1 ]]; then
    # A new configuration needs fresh daemons (a stale one may be from another dir).
    for d in slurmd slurmctld; do
        if pid_alive "$STATE_DIR/run/$d.pid"; then
            log "configuration changed, restarting $d"
            pid="$(cat "$STATE_DIR/run/$d.pid")"
            kill "$pid" || true
            for _ in $(seq 1 20); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.5
            done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
            rm -f "$STATE_DIR/run/$d.pid"
        fi
    done
fi

if ! pid_alive "$STATE_DIR/run/slurmctld.pid"; then
    log "starting slurmctld"
    slurmctld || die "slurmctld failed to start"
fi
if ! pid_alive "$STATE_DIR/run/slurmd.pid"; then
    log "starting slurmd"
    slurmd || die "slurmd failed to start"
fi

# ---------------------------------------------------------------- wait idle
log "waiting up to ${WAIT_S}s for node $HOST to be idle"
state=""
for _ in $(seq 1 "$WAIT_S"); do
    state="$(sinfo -h -n "$HOST" -o '%t' 2>/dev/null | head -n1 || true)"
    case "$state" in
    idle | mix | alloc) break ;;
    drain* | down*)
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
        ;;
    esac
    sleep 1
done
case "$state" in
idle | mix | alloc) ;;
*) die "node $HOST not ready after ${WAIT_S}s (sinfo state: '${state:-none}')" ;;
esac
log "node $HOST is $state ($CPUS CPUs, RealMemory=${REAL_MB} MB)"

# ---------------------------------------------------------------- smoke test
out="$STATE_DIR/log/smoke-%j.out"
jobid="$(sbatch --parsable -J mmsurv-smoke -n1 -c1 --mem=100 -t 1 -o "$out" \
    --wrap 'echo mmsurv-slurm-ok on $(hostname)')" || die "sbatch smoke job failed"
jobid="${jobid%%;*}"
log "smoke job $jobid submitted"
jstate=""
for _ in $(seq 1 "$WAIT_S"); do
    jstate="$(squeue -h -j "$jobid" -t all -o '%T' 2>/dev/null | head -n1 || true)"
    case "$jstate" in
    COMPLETED) break ;;
    FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        die "smoke job $jobid ended in state $jstate"
        ;;
    esac
    sleep 1
done
[[ "$jstate" == COMPLETED ]] || die "smoke job $jobid not completed after ${WAIT_S}s (state: '${jstate:-none}')"
smoke_out="$STATE_DIR/log/smoke-$jobid.out"
grep -q mmsurv-slurm-ok "$smoke_out" 2>/dev/null || die "smoke job output missing in $smoke_out"
log "smoke job $jobid COMPLETED: $(cat "$smoke_out")"
log "SLURM is up (conf: ${SLURM_CONF:-$ETC_CONF}, state: $STATE_DIR)"
