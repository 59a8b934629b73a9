#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by start_cluster.sh.
#
#   tests/slurm/stop_cluster.sh [--purge]
#
# Cancels the cluster's remaining jobs, then stops slurmd, slurmctld and munged by the PIDs in their
# pid files under ${PEPMIX_SLURM_DIR:-/tmp/pepmix-slurm} (never by process name), waiting for each to
# exit (SIGKILL after 20 s). Keeps the state dir (logs, job completion log) unless --purge is given.
# Exits 0 if nothing was running.
set -euo pipefail

PROG=stop_cluster.sh
STATE=${PEPMIX_SLURM_DIR:-/tmp/pepmix-slurm}
PURGE=0
for a in "$@"; do
    case $a in
        --purge) PURGE=1 ;;
        -h | --help)
            sed -n '2,9p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "$PROG: unknown argument '$a'" >&2
            exit 2
            ;;
    esac
done
log() { echo "$PROG: $*"; }

if [[ ! -d $STATE ]]; then
    log "no state dir $STATE; nothing to stop"
    exit 0
fi
STATE=$(cd "$STATE" && pwd)
export SLURM_CONF=$STATE/slurm.conf

pid_of() {  # pid_of PIDFILE COMM -> pid if the file names a live COMM process
    local pid
    [[ -r $1 ]] || return 1
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]] || return 1
    echo "$pid"
}

# 1. Cancel this cluster's jobs so that no job step outlives slurmd.
if pid_of "$STATE/ctld/slurmctld.pid" slurmctld >/dev/null && [[ -r $SLURM_CONF ]]; then
    mapfile -t jobs < <(timeout 10 squeue -h -o '%A' 2>/dev/null || true)
    if ((${#jobs[@]})); then
        log "cancelling ${#jobs[@]} job(s): ${jobs[*]}"
        timeout 30 scancel "${jobs[@]}" 2>/dev/null || true
        for _ in $(seq 20); do
            [[ -z "$(timeout 10 squeue -h -o '%A' 2>/dev/null || true)" ]] && break
            sleep 0.5
        done
    fi
fi

# 2. Daemons, by pid file.
stopped=()
for entry in "slurmd:$STATE/d/slurmd.pid" "slurmctld:$STATE/ctld/slurmctld.pid" "munged:$STATE/munge/munged.pid"; do
    name=${entry%%:*}
    pidfile=${entry#*:}
    if pid=$(pid_of "$pidfile" "$name"); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) still running after 20 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
        stopped+=("$name($pid)")
    fi
    rm -f "$pidfile"
done

# 3. The /etc/slurm/slurm.conf convenience link, if it points at this cluster.
if [[ -L /etc/slurm/slurm.conf && "$(readlink /etc/slurm/slurm.conf)" == "$STATE/slurm.conf" ]]; then
    rm -f /etc/slurm/slurm.conf
fi

if ((${#stopped[@]})); then
    log "stopped ${stopped[*]}"
else
    log "no daemon of $STATE was running"
fi
if ((PURGE)); then
    rm -rf "$STATE"
    log "removed $STATE"
fi
