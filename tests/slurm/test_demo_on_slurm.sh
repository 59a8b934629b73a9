#!/usr/bin/env bash
# CI test of cluster execution: the demo workflow through snakemake-executor-plugin-slurm on a
# real one-node SLURM cluster, run with README.md's cluster command as written, compared with a
# local run with 1 shard.
#
#   tests/slurm/test_demo_on_slurm.sh
#
# 1. runs `make slurm` (README: adds the executor plugin to .venv) and starts the cluster
#    (start_cluster.sh; installs SLURM from Debian if needed),
# 2. runs the demo locally with shards=1 (tables only),
# 3. reads the command of README.md's "Running on a cluster" section (readme_command.py: only the
#    documented placeholder /path/to/pepmix is replaced, by this repository) and runs it as
#    written from a directory holding `myproject/` (the demo's config.yaml and data), with the
#    arguments this accounting-less CI cluster needs appended (run_slurm_e2e.sh --command checks
#    that every job went through SLURM and completed, from slurmctld's job completion log),
# 4. compares the result tables byte for byte (shard invariance + executor invariance) and checks
#    the number of shards the command asks for (`--config shards=N`),
# 5. stops the cluster (also on failure).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SNAKEMAKE=$REPO/.venv/bin/snakemake
TABLES=(differential_abundance.tsv variance_components.tsv protein_abundance.tsv one_condition_missing.tsv)

work=$(mktemp -d /tmp/pepmix-slurm-e2e.XXXXXX)
cleanup() {
    bash "$HERE/stop_cluster.sh" >/dev/null 2>&1 || true
}
trap cleanup EXIT

(cd "$REPO" && make slurm) # as in the README: the executor plugin is not in the default environment
bash "$HERE/start_cluster.sh"

fail() {
    echo "test_demo_on_slurm: FAIL: $*" >&2
    exit 1
}
mapfile -t readme < <("$REPO/.venv/bin/python" "$HERE/readme_command.py" "## Running on a cluster" "$REPO")
((${#readme[@]} == 1)) || fail "expected one command in README.md's 'Running on a cluster', found ${#readme[@]}"
command=${readme[0]}
shards=auto
if [[ $command =~ shards=([0-9]+) ]]; then shards=${BASH_REMATCH[1]}; fi

mkdir -p "$work/local" "$work/slurm/myproject"
ln -s "$REPO/config" "$REPO/data" "$work/local/"
# the README's layout: myproject/config.yaml (the demo's; its relative paths resolve in myproject/)
ln -s "$REPO/config" "$REPO/data" "$work/slurm/myproject/"
cp "$REPO/config/config.yaml" "$work/slurm/myproject/config.yaml"

echo "== local run (1 shard)"
targets=()
for t in "${TABLES[@]}"; do targets+=("results/tables/$t"); done
"$SNAKEMAKE" "${targets[@]}" -s "$REPO/Snakefile" --directory "$work/local" \
    --configfile "$REPO/config/config.yaml" --config shards=1 --cores 2 --quiet

echo "== SLURM run: README.md's cluster command ($shards shards)"
# prepare (ingest, merge, normalize, shard: one batch), N x fit, 2 gathers, test, variance
# components, plots, ...
PEPMIX_SLURM_MIN_JOBS=14 bash "$HERE/run_slurm_e2e.sh" --command "$work/slurm" "$command"

echo "== comparing tables"
for t in "${TABLES[@]}"; do
    if ! cmp -s "$work/local/results/tables/$t" "$work/slurm/myproject/results/tables/$t"; then
        diff <(head -5 "$work/local/results/tables/$t") <(head -5 "$work/slurm/myproject/results/tables/$t") >&2 || true
        fail "$t differs between the local 1-shard run and the SLURM $shards-shard run"
    fi
    echo "identical: $t"
done
n_fit=$(find "$work/slurm/myproject/results/model/shards" -mindepth 1 -maxdepth 1 -type d | wc -l)
if [[ $shards != auto ]]; then
    [[ $n_fit -eq $shards ]] || fail "expected $shards shards, found $n_fit"
fi
echo "test_demo_on_slurm: OK"
rm -rf "$work"
