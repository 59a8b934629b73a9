#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine (loopback only), for CI and local tests.
#
#   tests/slurm/start_cluster.sh          # idempotent: says so and exits 0 if already up
#
# - Installs the Debian packages slurmctld slurmd slurm-client munge if missing (as root, with a
#   policy-rc.d that keeps the maintainer scripts from starting any daemon).
# - Keeps ALL state in ${PEPMIX_SLURM_DIR:-/tmp/pepmix-slurm}: slurm.conf, munge key and socket,
#   daemon logs, pid files, slurmctld state, slurmd spool and the job completion log
#   (ctld/jobcomp.txt, one line per finished job, which run_slurm_e2e.sh reads).
# - Accounting is off (no slurmdbd): sacct does not work, use squeue or the job completion log.
# - Daemons run detached (own session, stdio on /dev/null, no inherited fds) so a CI step never hangs.
# - Clients need SLURM_CONF=$PEPMIX_SLURM_DIR/slurm.conf (also linked from /etc/slurm/slurm.conf
#   when that path is free), or `source $PEPMIX_SLURM_DIR/env.sh`.
#
# Environment: PEPMIX_SLURM_DIR (state dir), PEPMIX_SLURM_START_TIMEOUT (seconds, default 60).
set -euo pipefail

PROG=start_cluster.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${PEPMIX_SLURM_DIR:-/tmp/pepmix-slurm}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
TIMEOUT=${PEPMIX_SLURM_START_TIMEOUT:-60}
CONF=$STATE/slurm.conf
MARKER="pepmix single-node CI cluster"
ETC_CONF=/etc/slurm/slurm.conf
export SLURM_CONF=$CONF

MUNGE_DIR=$STATE/munge
CTLD_DIR=$STATE/ctld
SLURMD_DIR=$STATE/d
MUNGE_PID=$MUNGE_DIR/munged.pid
CTLD_PID=$CTLD_DIR/slurmctld.pid
SLURMD_PID=$SLURMD_DIR/slurmd.pid
MUNGE_SOCKET=$MUNGE_DIR/munge.socket

T0=$SECONDS
log() { echo "$PROG: $*"; }

tail_logs() {
    local f
    for f in "$MUNGE_DIR/munged.log" "$CTLD_DIR/slurmctld.log" "$SLURMD_DIR/slurmd.log"; do
        if [[ -s $f ]]; then
            echo "----- last lines of $f -----"
            tail -n 25 "$f"
        fi
    done
}

die() {  # one clear line, then the daemon logs; stops whatever this script had started
    echo "$PROG: ERROR: $*" >&2
    tail_logs >&2
    if [[ -e $MUNGE_PID || -e $CTLD_PID || -e $SLURMD_PID ]]; then
        PEPMIX_SLURM_DIR=$STATE bash "$HERE/stop_cluster.sh" >&2 || true
    fi
    exit 1
}

last_error() {  # last error/fatal line of a daemon log, for the one-line message
    grep -E 'fatal|error' "$1" 2>/dev/null | grep -v 'pmix\|MPI' | tail -n 1 || true
}

# pid_alive PIDFILE COMM: the pid file names a live process whose command is COMM
pid_alive() {
    local pid
    [[ -r $1 ]] || return 1
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]]
}

node_state() {  # e.g. idle, mixed, allocated, idle* (not responding), down*, or empty
    timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true
}

cluster_up() {
    pid_alive "$MUNGE_PID" munged && pid_alive "$CTLD_PID" slurmctld && pid_alive "$SLURMD_PID" slurmd || return 1
    case "$(node_state)" in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

# spawn CMD...: run a self-daemonizing program detached from this script: new session, stdin, stdout
# and stderr on /dev/null and every other inherited file descriptor closed (a daemon that keeps the
# CI step's output pipe open makes the step hang forever).
spawn() {
    (
        cd /
        for fdpath in /proc/"$BASHPID"/fd/*; do
            fd=${fdpath##*/}
            if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then
                eval "exec ${fd}>&-" 2>/dev/null || true
            fi
        done
        exec setsid "$@" </dev/null >/dev/null 2>&1
    )
}

# ---------------------------------------------------------------------------------------------
# 0. Already up?
if command -v sinfo >/dev/null 2>&1 && cluster_up; then
    log "cluster already up (state dir $STATE, node $(node_state)); nothing to do"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, starts slurmd as root)"

# ---------------------------------------------------------------------------------------------
# 1. Packages
PKGS=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt-get; daemons kept from starting by policy-rc.d)"
    POLICY=/usr/sbin/policy-rc.d
    SAVED=$(mktemp)
    had_policy=0
    if [[ -e $POLICY ]]; then
        cp -p "$POLICY" "$SAVED"
        had_policy=1
    fi
    restore_policy() {
        if ((had_policy)); then
            cp -p "$SAVED" "$POLICY"
        else
            rm -f "$POLICY"
        fi
        rm -f "$SAVED"
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\n# written by pepmix %s during apt-get install\nexit 101\n' "$PROG" >"$POLICY"
    chmod 755 "$POLICY"
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout=300 "${missing[@]}" >>"$STATE/apt.log" 2>&1
    }
    if ! apt_install; then
        log "apt-get install failed; running apt-get update and retrying"
        DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 >>"$STATE/apt.log" 2>&1 || true
        if ! apt_install; then
            restore_policy
            trap - EXIT
            echo "$PROG: ERROR: apt-get install ${missing[*]} failed; last lines of $STATE/apt.log:" >&2
            tail -n 20 "$STATE/apt.log" >&2
            exit 1
        fi
    fi
    restore_policy
    trap - EXIT
    log "packages installed in $((SECONDS - T0)) s"
fi
for c in munged mungekey slurmctld slurmd sinfo srun; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found after installing ${PKGS[*]}"
done
id slurm >/dev/null 2>&1 || die "system user 'slurm' missing (should come with the slurm packages)"

# ---------------------------------------------------------------------------------------------
# 2. Leftovers of a half-up cluster from this state dir: stop them (by pid file) first
if pid_alive "$MUNGE_PID" munged || pid_alive "$CTLD_PID" slurmctld || pid_alive "$SLURMD_PID" slurmd; then
    log "cluster in $STATE is only partly up; stopping its daemons first"
    PEPMIX_SLURM_DIR=$STATE bash "$HERE/stop_cluster.sh"
fi

# ---------------------------------------------------------------------------------------------
# 3. State dir and config
mkdir -p "$MUNGE_DIR" "$CTLD_DIR/state" "$SLURMD_DIR/spool"
chmod 755 "$STATE" "$MUNGE_DIR" "$SLURMD_DIR"
chown -R slurm:slurm "$CTLD_DIR"
chmod 755 "$CTLD_DIR"
rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"

if [[ ! -s $MUNGE_DIR/munge.key ]]; then
    mungekey --create --keyfile="$MUNGE_DIR/munge.key"
fi
chmod 400 "$MUNGE_DIR/munge.key"

HOST=$(hostname -s)
NODE_LINE=$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=') || die "'slurmd -C' printed no NodeName line"
DETECTED_MB=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")
[[ -n $DETECTED_MB ]] || die "no RealMemory in 'slurmd -C' output: $NODE_LINE"
REAL_MB=$((DETECTED_MB - 1024))
((REAL_MB >= 512)) || REAL_MB=$((DETECTED_MB / 2))
NODE_LINE=${NODE_LINE/RealMemory=$DETECTED_MB/RealMemory=$REAL_MB}
NODE_NAME=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$NODE_LINE")

cat >"$CONF" <<EOF
# $MARKER -- written by tests/slurm/$PROG; regenerated on every start, do not edit.
ClusterName=pepmix
SlurmctldHost=$HOST(127.0.0.1)
# listen on loopback only
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
SlurmUser=slurm
SlurmdUser=root
StateSaveLocation=$CTLD_DIR/state
SlurmdSpoolDir=$SLURMD_DIR/spool
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$CTLD_DIR/slurmctld.log
SlurmdLogFile=$SLURMD_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups on this machine
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: sacct does not work. Every finished job is still recorded, one line each, here:
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$CTLD_DIR/jobcomp.txt
# a job asking for more CPUs/memory than the node has is rejected by sbatch instead of pending forever
EnforcePartLimits=ALL
# finished jobs stay visible to 'squeue --states=all' for 5 min (snakemake's squeue status command needs it)
MinJobAge=300
ReturnToService=2
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
Waittime=0
$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
chmod 644 "$CONF"
printf 'export SLURM_CONF=%q\n' "$CONF" >"$STATE/env.sh"

# Convenience for plain 'sinfo'/'squeue' without SLURM_CONF: link /etc/slurm/slurm.conf, but only if
# that path is free, or is a link to a vanished or stopped pepmix cluster's config.
etc_conf_free() {
    local target
    [[ -e $ETC_CONF || -L $ETC_CONF ]] || return 0
    [[ -L $ETC_CONF ]] || return 1
    target=$(readlink "$ETC_CONF")
    [[ -e $target ]] || return 0
    grep -q "$MARKER" "$target" || return 1
    ! pid_alive "$(dirname "$target")/ctld/slurmctld.pid" slurmctld
}
if [[ -d /etc/slurm && -w /etc/slurm ]] && etc_conf_free; then
    ln -sfn "$CONF" "$ETC_CONF"
elif [[ "$(readlink "$ETC_CONF" 2>/dev/null)" != "$CONF" ]]; then
    log "note: $ETC_CONF is not this cluster's; clients need SLURM_CONF=$CONF"
fi

# ---------------------------------------------------------------------------------------------
# 4. Daemons
spawn munged --key-file="$MUNGE_DIR/munge.key" --socket="$MUNGE_SOCKET" --pid-file="$MUNGE_PID" \
    --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed" ||
    die "munged failed to start"
for _ in $(seq 50); do
    pid_alive "$MUNGE_PID" munged && [[ -S $MUNGE_SOCKET ]] && break
    sleep 0.1
done
munge -S "$MUNGE_SOCKET" -n </dev/null 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1 ||
    die "munged does not answer on $MUNGE_SOCKET"

spawn slurmctld -f "$CONF" || die "slurmctld failed to start"
spawn slurmd -f "$CONF" || die "slurmd failed to start"

# ---------------------------------------------------------------------------------------------
# 5. Wait until the node is idle
deadline=$((SECONDS + TIMEOUT))
state=""
while :; do
    state=$(node_state)
    [[ $state == idle ]] && pid_alive "$CTLD_PID" slurmctld && pid_alive "$SLURMD_PID" slurmd && break
    if ((SECONDS > 5 + T0)) && [[ -e $CTLD_PID || -e $SLURMD_PID ]]; then
        pid_alive "$CTLD_PID" slurmctld || [[ ! -e $CTLD_PID ]] ||
            die "slurmctld exited during start-up: $(last_error "$CTLD_DIR/slurmctld.log")"
        pid_alive "$SLURMD_PID" slurmd || [[ ! -e $SLURMD_PID ]] ||
            die "slurmd exited during start-up: $(last_error "$SLURMD_DIR/slurmd.log")"
    fi
    ((SECONDS < deadline)) || die "node did not become idle within ${TIMEOUT} s (sinfo state: '${state:-no answer}'; daemons: munged $(pid_alive "$MUNGE_PID" munged && echo up || echo down), slurmctld $(pid_alive "$CTLD_PID" slurmctld && echo up || echo down), slurmd $(pid_alive "$SLURMD_PID" slurmd && echo up || echo down))"
    sleep 0.5
done

# A real job step end to end (munge credentials, slurmd launch, I/O back to srun).
timeout 60 srun --job-name=pepmix-smoke -N1 -n1 --mem=100 -t 1 true </dev/null >/dev/null 2>"$STATE/smoke.err" ||
    die "node is idle but a test job ('srun true') failed: $(tr '\n' ' ' <"$STATE/smoke.err")"

CPUS=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")
log "cluster up in $((SECONDS - T0)) s: node $NODE_NAME ($CPUS CPUs, ${REAL_MB} MB), partition ci, state dir $STATE"
log "clients: export SLURM_CONF=$CONF   (or: source $STATE/env.sh)"
