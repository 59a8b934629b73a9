#!/usr/bin/env bash
# Run the pepmix workflow on the local SLURM cluster (see start_cluster.sh) through the SLURM profile,
# then check from SLURM's own records that the jobs really ran as SLURM jobs and completed.
#
#   tests/slurm/run_slurm_e2e.sh <workdir> <configfile> [extra snakemake args...]
#   tests/slurm/run_slurm_e2e.sh --command <rundir> <command> [extra snakemake args...]
#
# Runs (with a time limit)
#   <repo>/.venv/bin/snakemake -s <Snakefile> --directory <workdir> --configfile <configfile> \
#       --profile <repo>/workflow/profiles/slurm --slurm-status-command squeue \
#       --slurm-init-seconds-before-status-checks 2 --max-threads <node CPUs> [extra args]
# or, with --command, the given snakemake command line as written (e.g. README.md's cluster command,
# which names the profile itself), from <rundir>, with the same three cluster arguments appended
# (this cluster has no accounting, so squeue is the status command, as the README says):
#   cd <rundir> && <command> --slurm-status-command squeue \
#       --slurm-init-seconds-before-status-checks 2 --max-threads <node CPUs> [extra args]
# Extra args come last, so they override the ones above.
#
# Passes only if
#   - snakemake exits 0 within the time limit,
#   - at least PEPMIX_SLURM_MIN_JOBS jobs were submitted to SLURM,
#   - slurmctld's job completion log (jobcomp/filetxt) has a record for every submitted SLURM job,
#   - the last SLURM job of every snakemake job is COMPLETED (earlier attempts that snakemake
#     retried, e.g. after OUT_OF_MEMORY, are listed but allowed unless PEPMIX_SLURM_STRICT=1),
#   - `squeue --states=all` does not contradict the completion log for the jobs it still lists.
# Prints one line per SLURM job and a summary.
#
# Environment:
#   PEPMIX_SLURM_DIR        cluster state dir (default /tmp/pepmix-slurm)
#   PEPMIX_SNAKEFILE        Snakefile (default <repo>/Snakefile, else <repo>/workflow/Snakefile)
#   PEPMIX_SLURM_TIMEOUT    seconds before snakemake is stopped (default 900; SIGKILL 30 s later)
#   PEPMIX_SLURM_MIN_JOBS   minimum number of SLURM jobs (default 1)
#   PEPMIX_SLURM_STRICT     1: any non-COMPLETED SLURM job fails the test, retried ones too
# The snakemake output is also saved in <state dir>/e2e-<date>.log.
set -euo pipefail

PROG=run_slurm_e2e.sh
if (($# < 2)) || { [[ $1 == --command ]] && (($# < 3)); }; then
    echo "usage: $PROG <workdir> <configfile> [extra snakemake args...]" >&2
    echo "       $PROG --command <rundir> <command> [extra snakemake args...]" >&2
    exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
COMMAND=""
if [[ $1 == --command ]]; then
    RUNDIR=$(realpath -m "$2")
    COMMAND=$3
    shift 3
else
    WORKDIR=$(realpath -m "$1")
    CONFIGFILE=$(realpath -m "$2")
    shift 2
fi

STATE=${PEPMIX_SLURM_DIR:-/tmp/pepmix-slurm}
TIMEOUT=${PEPMIX_SLURM_TIMEOUT:-900}
MIN_JOBS=${PEPMIX_SLURM_MIN_JOBS:-1}
STRICT=${PEPMIX_SLURM_STRICT:-0}
SNAKEMAKE=$REPO/.venv/bin/snakemake
PYTHON=$REPO/.venv/bin/python
PROFILE=$REPO/workflow/profiles/slurm
if [[ -n ${PEPMIX_SNAKEFILE:-} ]]; then
    SNAKEFILE=$(realpath -m "$PEPMIX_SNAKEFILE")
elif [[ -e $REPO/Snakefile ]]; then
    SNAKEFILE=$REPO/Snakefile
else
    SNAKEFILE=$REPO/workflow/Snakefile
fi

fail() {
    echo "$PROG: FAIL: $*" >&2
    exit 1
}

[[ -x $SNAKEMAKE ]] || fail "$SNAKEMAKE not found (create the repo's .venv first)"
if [[ -n $COMMAND ]]; then
    [[ -d $RUNDIR ]] || fail "run directory $RUNDIR not found"
else
    [[ -e $SNAKEFILE ]] || fail "Snakefile $SNAKEFILE not found"
    [[ -e $CONFIGFILE ]] || fail "config file $CONFIGFILE not found"
fi
[[ -d $STATE ]] || fail "no cluster state dir $STATE: run tests/slurm/start_cluster.sh first"
STATE=$(cd "$STATE" && pwd)
export SLURM_CONF=$STATE/slurm.conf
JOBCOMP=$STATE/ctld/jobcomp.txt

# The plugin and SLURM tools look up the user name; CI may not set these.
USER=${USER:-$(id -un)}
LOGNAME=${LOGNAME:-$USER}
HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
export USER LOGNAME HOME

timeout 10 scontrol ping >/dev/null 2>&1 || fail "slurmctld does not answer (SLURM_CONF=$SLURM_CONF): run tests/slurm/start_cluster.sh"
NODE_CPUS=$(timeout 10 sinfo -h -o '%c' | head -n 1)
[[ $NODE_CPUS =~ ^[0-9]+$ ]] || fail "could not read the node's CPU count from sinfo"

LOG=$STATE/e2e-$(date +%Y%m%d-%H%M%S).log
cluster_args=(
    --slurm-status-command squeue
    --slurm-init-seconds-before-status-checks 2
    --max-threads "$NODE_CPUS"
)
if [[ -n $COMMAND ]]; then
    # the command line as written (word splitting and quoting by bash), then the arguments
    cmd=(bash -c "$COMMAND \"\$@\"" "$PROG" "${cluster_args[@]}" "$@")
    echo "$PROG: running (time limit ${TIMEOUT} s) in $RUNDIR: $COMMAND ${cluster_args[*]} $*"
else
    RUNDIR=$PWD
    mkdir -p "$WORKDIR"
    cmd=(
        "$SNAKEMAKE" -s "$SNAKEFILE" --directory "$WORKDIR" --configfile "$CONFIGFILE"
        --profile "$PROFILE" "${cluster_args[@]}" "$@"
    )
    echo "$PROG: running (time limit ${TIMEOUT} s): ${cmd[*]}"
fi
t0=$SECONDS
set +e
# timeout signals snakemake's whole process group; SIGKILL 30 s later (a hung snakemake can ignore SIGTERM).
(cd "$RUNDIR" && timeout --kill-after=30 "$TIMEOUT" "${cmd[@]}") </dev/null 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
wall=$((SECONDS - t0))

RUNID=$(sed -n 's/.*SLURM run ID: \([A-Za-z0-9_-]*\).*/\1/p' "$LOG" | tail -n 1)
if [[ -n $RUNID ]]; then
    # Never leave jobs of this run behind (timeout, or snakemake stopped on an error).
    timeout 30 scancel --name="$RUNID" >/dev/null 2>&1 || true
fi
if ((rc == 124 || rc == 137)); then
    echo "$PROG: snakemake did not finish within ${TIMEOUT} s and was killed" >&2
fi

SQUEUE_OUT=$STATE/e2e-squeue.txt
: >"$SQUEUE_OUT"
if [[ -n $RUNID ]]; then
    # jobcomp records are written when a job ends; give slurmctld a moment for the last ones
    for _ in $(seq 20); do
        mapfile -t submitted < <(sed -n 's/.*has been submitted with SLURM jobid \([0-9]*\).*/\1/p' "$LOG")
        missing=0
        for id in "${submitted[@]}"; do
            grep -q "^JobId=$id .*Name=$RUNID " "$JOBCOMP" 2>/dev/null || missing=1
        done
        ((missing == 0)) && break
        sleep 0.5
    done
    timeout 10 squeue --states=all --noheader --name="$RUNID" --format='%i|%T|%k' >"$SQUEUE_OUT" 2>/dev/null || true
fi

set +e
"$PYTHON" - "$LOG" "$JOBCOMP" "$SQUEUE_OUT" "$RUNID" "$MIN_JOBS" "$STRICT" "$rc" "$wall" <<'PYEOF'
import re
import sys

log_path, jobcomp_path, squeue_path, runid, min_jobs, strict, rc, wall = sys.argv[1:]
min_jobs, strict, rc, wall = int(min_jobs), strict == "1", int(rc), int(wall)
log = open(log_path, errors="replace").read()
problems = []

if not runid:
    problems.append("no 'SLURM run ID' in snakemake's output: did it use the slurm executor?")

# snakemake job id -> SLURM job ids, in submission order (a retried job is submitted again)
attempts = {}
for smk_id, slurm_id in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log):
    attempts.setdefault(smk_id, []).append(slurm_id)
rejected = len(re.findall(r"SLURM sbatch failed", log))

records = {}
try:
    with open(jobcomp_path) as fh:
        for line in fh:
            fields = dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))
            if fields.get("Name") == runid and runid:
                records[fields["JobId"]] = fields
except FileNotFoundError:
    problems.append(f"no job completion log {jobcomp_path}")

squeue = {}
for line in open(squeue_path):
    parts = line.strip().split("|")
    if len(parts) >= 3:
        squeue[parts[0]] = (parts[1], parts[2])

def secs(rec):
    from datetime import datetime
    try:
        fmt = "%Y-%m-%dT%H:%M:%S"
        return int((datetime.strptime(rec["EndTime"], fmt) - datetime.strptime(rec["StartTime"], fmt)).total_seconds())
    except (KeyError, ValueError):
        return -1

print(f"\n{'SLURM job':>10}  {'snakemake job':>13}  {'state (jobcomp)':<16} {'state (squeue)':<15} {'secs':>5}  rule")
completed = retried = 0
for smk_id in sorted(attempts, key=int):
    ids = attempts[smk_id]
    for n, sid in enumerate(ids):
        rec = records.get(sid)
        state = rec["JobState"] if rec else "NOT RECORDED"
        sq_state, comment = squeue.get(sid, ("(purged)", ""))
        rule = comment if comment not in ("", "(null)") else ""
        last = n == len(ids) - 1
        note = "" if last else "  <- retried"
        print(f"{sid:>10}  {smk_id:>13}  {state:<16} {sq_state:<15} {secs(rec) if rec else -1:>5}  {rule}{note}")
        if rec is None:
            problems.append(f"SLURM job {sid} (snakemake job {smk_id}) is not in the job completion log")
            continue
        if sid in squeue and sq_state != state:
            problems.append(f"SLURM job {sid}: squeue says {sq_state}, completion log says {state}")
        if state == "COMPLETED":
            completed += 1
        elif last:
            problems.append(f"SLURM job {sid} (snakemake job {smk_id}, final attempt) ended {state}")
        else:
            retried += 1
            if strict:
                problems.append(f"SLURM job {sid} (snakemake job {smk_id}) ended {state} and was retried (PEPMIX_SLURM_STRICT=1)")

# records of this run that snakemake got no job id for: submissions that slurmctld rejected
# (e.g. more memory than the node has, with EnforcePartLimits=ALL)
known = {sid for ids in attempts.values() for sid in ids}
for sid in sorted(set(records) - known, key=int):
    print(f"{sid:>10}  {'-':>13}  {records[sid]['JobState']:<16} {squeue.get(sid, ('(purged)', ''))[0]:<15} {'':>5}  (rejected at submission)")

n_jobs = sum(len(v) for v in attempts.values())
if rc != 0:
    problems.append(f"snakemake exited with {rc}" + (" (time limit)" if rc in (124, 137) else ""))
if rejected:
    problems.append(f"{rejected} sbatch submission(s) rejected by SLURM")
if len(attempts) < min_jobs:
    problems.append(f"only {len(attempts)} snakemake job(s) ran through SLURM, expected at least {min_jobs}")

print()
summary = (f"run {runid or '?'}: {len(attempts)} snakemake job(s) as {n_jobs} SLURM job(s), "
           f"{completed} COMPLETED, {retried} retried attempt(s); snakemake exit {rc}, wall {wall} s")
if problems:
    print("run_slurm_e2e.sh: FAIL: " + summary)
    for p in problems:
        print("  - " + p)
    sys.exit(1)
print("run_slurm_e2e.sh: OK: " + summary)
PYEOF
check=$?
set -e
echo "$PROG: snakemake log saved as $LOG"
exit "$check"
