#!/usr/bin/env bash
# CI test of cluster execution: the demo workflow through snakemake-executor-plugin-slurm on a
# real one-node SLURM cluster, with 4 protein shards, compared with a local run with 1 shard.
#
#   tests/slurm/test_demo_on_slurm.sh
#
# 1. starts the cluster (start_cluster.sh; installs SLURM from Debian if needed),
# 2. runs the demo locally with shards=1 (tables only),
# 3. runs the whole demo through SLURM with shards=4 (run_slurm_e2e.sh checks that every job
#    went through SLURM and completed, from slurmctld's job completion log),
# 4. compares the result tables byte for byte (shard invariance + executor invariance),
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

make -C "$REPO" slurm  # the executor plugin is not in the default environment
bash "$HERE/start_cluster.sh"

for dir in local slurm; do
    mkdir -p "$work/$dir"
    ln -s "$REPO/config" "$REPO/data" "$work/$dir/"
done

echo "== local run (1 shard)"
targets=()
for t in "${TABLES[@]}"; do targets+=("results/tables/$t"); done
"$SNAKEMAKE" "${targets[@]}" -s "$REPO/Snakefile" --directory "$work/local" \
    --configfile "$REPO/config/config.yaml" --config shards=1 --cores 2 --quiet

echo "== SLURM run (4 shards)"
# ingest, merge, normalize, shard, 4 x fit, 4 x protein_abundance, 2 gathers, test, ...
PEPMIX_SLURM_MIN_JOBS=14 bash "$HERE/run_slurm_e2e.sh" "$work/slurm" "$REPO/config/config.yaml" \
    --config shards=4

echo "== comparing tables"
for t in "${TABLES[@]}"; do
    if ! cmp -s "$work/local/results/tables/$t" "$work/slurm/results/tables/$t"; then
        echo "test_demo_on_slurm: FAIL: $t differs between the local 1-shard run and the SLURM 4-shard run" >&2
        diff <(head -5 "$work/local/results/tables/$t") <(head -5 "$work/slurm/results/tables/$t") >&2 || true
        exit 1
    fi
    echo "identical: $t"
done
n_fit=$(ls "$work/slurm/results/model/shards" | wc -l)
[[ $n_fit -eq 4 ]] || { echo "test_demo_on_slurm: FAIL: expected 4 shards, found $n_fit" >&2; exit 1; }
echo "test_demo_on_slurm: OK"
rm -rf "$work"
