"""End-to-end: the Snakemake workflow on a slice of the demo, in a temporary directory.

The slice holds every fourth UPS1 protein (12 proteins known to change: log2 fold changes 1, 2
and 1) and 300 background proteins (unchanged), keeping the demo's small share of spike-in
peptides (about 4 %). The workflow runs from the temporary directory with the repo's
Snakefile, as the README documents. Of the 312 input proteins, 109 have a single feature and are
removed by ``filter.min_features`` (listed with status ``filtered``); 203 are fitted.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.e2e.figures import assert_drawn

pytestmark = pytest.mark.slow

N_PROTEINS = 203  # 12 UPS + 300 background proteins, 109 of them single-feature (filtered)
N_INPUT_PROTEINS = 312
N_FILTERED = 109
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _write_slice(repo: Path, target: Path) -> None:
    with gzip.open(repo / "data/demo/berg2019_ups_progenesis_peptides.csv.gz", "rt") as handle:
        demo = pd.read_csv(handle)
    protein = demo["identifier"].str.rsplit("--", n=1).str[0]
    ups = sorted(set(protein[protein.str.contains("UPS")]))[::4]
    background = sorted(set(protein[~protein.str.contains("UPS")]))[:300]
    demo.loc[protein.isin(ups + background)].to_csv(target / "slice.csv.gz", index=False)


def _config(target: Path, samples: str = "samples.tsv") -> None:
    (target / "config.yaml").write_text(
        f"""samples: {samples}
inputs:
  - name: demo
    format: generic_wide
    path: slice.csv.gz
    id_column: identifier
    id_separator: "--"
feature_level: peptide
contrasts: all_pairwise
"""
    )


def _run(repo: Path, workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        SNAKEMAKE,
        "-s",
        str(repo / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "2",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def demo_run(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("demo")
    _write_slice(repo, work)
    (work / "samples.tsv").write_text((repo / "config/samples.tsv").read_text())
    _config(work)
    result = _run(repo, work, "--config", "shards=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((work / "results/model/shards").iterdir())) == 2
    (work / "snakemake.stderr").write_text(result.stderr)
    return work


def test_differential_table(demo_run: Path) -> None:
    table = pd.read_csv(demo_run / "results/tables/differential_abundance.tsv", sep="\t")
    contract = [
        "protein", "contrast", "log2fc", "se", "df", "t", "pvalue", "adj_pvalue",
        "n_features", "n_observations", "status",
    ]  # fmt: skip
    assert list(table.columns[: len(contract)]) == contract
    assert (table.loc[table["status"] != "filtered", "replication"] == "biological").all()
    contrasts = ["fmol50 - fmol25", "fmol100 - fmol25", "fmol100 - fmol50"]
    assert list(dict.fromkeys(table["contrast"])) == contrasts
    # every input protein exactly once per contrast; the filtered ones after the others
    assert table["protein"].nunique() == N_INPUT_PROTEINS
    assert len(table) == 3 * N_INPUT_PROTEINS
    assert not table.duplicated(["protein", "contrast"]).any()
    filtered = table["status"] == "filtered"
    assert filtered.sum() == 3 * N_FILTERED
    assert (table.loc[filtered, "detail"] == "1 feature < min_features 2").all()
    assert (table.loc[filtered, "n_features"] == 1).all()
    assert (
        table.loc[filtered, ["log2fc", "se", "df", "t", "pvalue", "adj_pvalue"]].isna().all().all()
    )
    for _, part in table.groupby("contrast", sort=False):
        flags = (part["status"] == "filtered").to_numpy()
        assert not (flags[:-1] & ~flags[1:]).any()  # no filtered row before an unfiltered one
    tested = table["pvalue"].notna()
    assert (table.loc[~tested, "adj_pvalue"].isna()).all()
    assert tested[~filtered].mean() > 0.95
    # BH over the tested proteins only: the filtered rows do not change it
    for _, part in table.loc[tested].groupby("contrast"):
        p = part["pvalue"].to_numpy()
        order = np.argsort(p)
        ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
        expected = np.empty_like(p)
        expected[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
        # both columns are printed with 6 significant digits
        np.testing.assert_allclose(part["adj_pvalue"].to_numpy(), expected, rtol=2e-5)
    for contrast, true_lfc in zip(contrasts, [1.0, 2.0, 1.0], strict=True):
        part = table.loc[table["contrast"] == contrast].sort_values("pvalue")
        top = part.head(10)
        assert top["protein"].str.contains("UPS").mean() >= 0.8, contrast
        ups = part.loc[part["protein"].str.contains("UPS"), "log2fc"].median()
        assert abs(ups - true_lfc) < 0.35, (contrast, ups)
        background = part.loc[~part["protein"].str.contains("UPS"), "log2fc"].median()
        assert abs(background) < 0.2, (contrast, background)


def test_python_api_equals_workflow(demo_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python API on the same data and config: the same differential table, byte
    for byte (the workflow ran with two shards; the API fits all proteins at once)."""
    import pepmix
    from pepmix.io import tsv_bytes

    monkeypatch.chdir(demo_run)
    entry = {
        "name": "demo",
        "format": "generic_wide",
        "path": "slice.csv.gz",
        "id_column": "identifier",
        "id_separator": "--",
    }
    data = pepmix.normalize(pepmix.read(entry, samples="samples.tsv", feature_level="peptide"))
    table = pepmix.test(pepmix.fit(data), contrasts="all_pairwise")
    workflow = (demo_run / "results/tables/differential_abundance.tsv").read_bytes()
    assert tsv_bytes(table) == workflow
    assert (table["status"] == "filtered").sum() == 3 * N_FILTERED


def test_majority_prior_in_the_fit_jobs(demo_run: Path) -> None:
    """Two shards with the feature majority rule (the default): each fit job fits the rule's
    prior on all proteins itself, from both shards' tables (the prepare job writes none); no
    variance_prior job (no shrinkage)."""
    import re

    assert not (demo_run / "results/model/majority_prior.json").exists()
    pattern = r"prior: (\d+) sampled proteins of (\d+) candidates in 2 shards \((\d+) in this"
    found = [re.search(pattern, (demo_run / f"logs/fit/{k}-of-2.log").read_text()) for k in (1, 2)]
    assert all(m is not None for m in found)
    counts = [tuple(int(x) for x in m.groups()) for m in found if m is not None]
    assert counts[0][:2] == counts[1][:2] and counts[0][0] > 0
    assert counts[0][2] + counts[1][2] == counts[0][0]  # each sampled protein in one shard
    assert not (demo_run / "results/model/variance_prior.json").exists()
    assert not (demo_run / "logs/variance_prior.log").exists()


def test_variance_components(demo_run: Path) -> None:
    table = pd.read_csv(demo_run / "results/tables/variance_components.tsv", sep="\t")
    for col in ["protein", "var_feature", "var_sample", "var_residual", "n_features",
                "n_observations", "status"]:  # fmt: skip
        assert col in table.columns
    assert table["protein"].is_unique
    assert len(table) == N_INPUT_PROTEINS
    assert set(table["status"]) <= {
        "ok", "boundary", "reduced_model", "too_few_observations", "not_estimable", "filtered",
    }  # fmt: skip
    filtered = table["status"] == "filtered"
    assert filtered.sum() == N_FILTERED
    fitted = ~table["status"].isin(["too_few_observations", "filtered"])
    assert (table.loc[fitted, "var_residual"] > 0).all()
    assert (table.loc[~filtered, "n_features"] >= 2).all()  # filter.min_features default
    assert table.loc[filtered, "var_residual"].isna().all()
    # variance tests (pepmix.model.variance_tests), on by default
    terms = [c[len("lrt_") :] for c in table.columns if c.startswith("lrt_")]
    assert "feature" in terms and len(terms) >= 2
    for t in terms:
        p = table[f"p_{t}"].dropna()
        assert len(p) > 0 and p.between(0, 1).all()
        assert (table[f"adj_p_{t}"].dropna() >= p.loc[table[f"adj_p_{t}"].notna()]).all()
        assert table.loc[filtered, f"lrt_{t}"].isna().all()


def test_plots_and_logs(demo_run: Path) -> None:
    plots = demo_run / "results/plots"
    for name in [
        "contrasts/fmol50_vs_fmol25/volcano.png",
        "contrasts/fmol100_vs_fmol25/ma.png",
        "contrasts/fmol100_vs_fmol50/pvalue_hist.png",
        "contrasts/fmol100_vs_fmol25/profiles.png",
        "qc/intensity_distributions.png",
        "qc/pca.png",
        "model/variance_components.png",
        "status.png",
    ]:
        assert_drawn(plots / name)
    # plots.formats defaults to [png]: no PDF copies, no profile PDFs (test_peptide_usage_outputs
    # asks for them)
    assert not list(plots.rglob("*.pdf"))
    # every protein is fitted once, in one shard, by each of the two models of the fit job (the
    # peptide-usage refit logs "fitted <n> proteins with the usage term")
    logs = [log.read_text() for log in (demo_run / "logs/fit").glob("*.log")]
    for what in ("proteins", "protein abundance models"):
        pattern = re.compile(rf"fitted (\d+) {what} \(")
        assert sum(int(n) for text in logs for n in pattern.findall(text)) == N_PROTEINS, what


def test_second_run_does_nothing(repo: Path, demo_run: Path) -> None:
    result = _run(repo, demo_run, "--dry-run", "--config", "shards=2")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


#: rules that follow the contrasts (tables, plots, alerts); nothing upstream of rule test (not
# rule usage_refit); plot_usage draws the usage-flagged proteins' profiles, which show the
# contrast's estimates
CONTRAST_RULES = {
    "test", "plot_differential", "plot_model", "plot_usage", "alerts", "report_pages", "all"
}  # fmt: skip
NEW_CONTRASTS = 'contrasts: ["fmol100 - fmol25", "fmol25 - fmol50"]'


def _planned_rules(output: str) -> set[str]:
    """Rules of a dry run's job stats table (``rule count`` lines up to ``total``)."""
    stats = output.split("Job stats:", 1)[1].splitlines()
    rules = set()
    for line in stats[3:]:
        fields = line.split()
        if not fields or fields[0] == "total":
            break
        rules.add(fields[0])
    return rules


def test_contrast_edit_reruns_only_test_and_later(
    repo: Path, demo_run: Path, tmp_path: Path
) -> None:
    """Editing only ``contrasts:`` re-runs rule test and what follows it (default rerun
    triggers), not the fit; the tables equal those of a fresh run with the new contrasts."""
    edited = tmp_path / "edited"
    shutil.copytree(demo_run, edited, symlinks=True)
    config = (edited / "config.yaml").read_text()
    assert "contrasts: all_pairwise" in config
    (edited / "config.yaml").write_text(config.replace("contrasts: all_pairwise", NEW_CONTRASTS))
    dry = _run(repo, edited, "--dry-run", "--config", "shards=2")
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = _planned_rules(dry.stdout + dry.stderr)
    assert "test" in planned
    assert planned <= CONTRAST_RULES, planned
    target = "results/tables/differential_abundance.parquet"
    rerun = _run(repo, edited, "--config", "shards=2", "--", target)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _write_slice(repo, fresh)
    (fresh / "samples.tsv").write_text((repo / "config/samples.tsv").read_text())
    (fresh / "config.yaml").write_text((edited / "config.yaml").read_text())
    result = _run(repo, fresh, "--config", "shards=2", "--", target)
    assert result.returncode == 0, result.stderr[-3000:]
    got, want = pd.read_parquet(edited / target), pd.read_parquet(fresh / target)
    assert list(dict.fromkeys(got["contrast"])) == ["fmol100 - fmol25", "fmol25 - fmol50"]
    # the same shards fitted by the same code: equal to the last bit
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    # the report shows the current contrasts only, although the removed one's plots stay on disk
    assert _run(repo, edited, "--config", "shards=2").returncode == 0
    report = _run(repo, edited, "--report", str(edited / "report.html"), "--config", "shards=2")
    assert report.returncode == 0, report.stderr[-2000:]
    html = (edited / "report.html").read_text(errors="replace")
    assert (edited / "results/plots/contrasts/fmol50_vs_fmol25/volcano.png").exists()
    assert "fmol25_vs_fmol50" in html and "fmol100_vs_fmol25" in html
    assert "fmol50_vs_fmol25" not in html


def test_fewer_jobs_with_one_batch_and_one_shard(repo: Path, demo_run: Path) -> None:
    """One batch: ingest, merge, normalize and shard are one job (rule prepare); one shard: the
    fit job writes the gathered files (no gather jobs, peptide-usage table included). Same files,
    fewer jobs' start-up."""
    dry = _run(repo, demo_run, "-n", "--forceall", "--config", "shards=2")
    two = _planned_rules(dry.stdout + dry.stderr)
    assert {"prepare", "fit", "gather_model"} <= two
    assert not {"ingest", "merge", "normalize", "shard", "abundance"} & two
    # several shards: rule gather_model also gathers the abundances and writes the variance and
    # usage tables (rules/fit.smk: ABUNDANCE_IN_GATHER, VARIANCE_IN_GATHER, USAGE_IN_GATHER)
    assert not {"gather_abundance", "variance_components", "peptide_usage"} & two
    # peptide_usage (default): several shards test usage in the fit jobs (gathered; the figure
    # in plot_model); one shard in a job of its own beside the test and plot jobs
    assert not {"usage_refit", "plot_usage"} & two
    dry = _run(repo, demo_run, "-n", "--forceall", "--config", "shards=1")
    one = _planned_rules(dry.stdout + dry.stderr)
    # one shard: the abundance model in a job of its own, beside the fit (rules/fit.smk); the
    # usage refit writes the usage table itself; the fit job the variance table, rule plot_qc
    # the abundance QC figures too (rules/plot.smk)
    assert {"prepare", "fit", "abundance", "test", "usage_refit", "plot_usage"} <= one
    assert not {"gather_model", "gather_abundance", "peptide_usage"} & one
    assert "plot_qc_abundance" in two
    assert not {"variance_components", "plot_qc_abundance"} & one
    # any number of shards: rule report_pages gathers the alerts (no rule alerts)
    assert "report_pages" in one and "report_pages" in two and not {"alerts"} & (one | two)


def test_usage_job_shard_invariance(repo: Path, demo_run: Path, tmp_path: Path) -> None:
    """peptide_usage (default): the usage refit in a job of its own (one shard: rule
    usage_refit, from the fit job's usage_start.parquet) gives the usage table the fit jobs of
    two shards compute in memory and gather, byte for byte; the fit job of one shard does not
    refit."""
    one = tmp_path / "one"
    one.mkdir()
    for name in ("slice.csv.gz", "samples.tsv", "config.yaml"):
        shutil.copy(demo_run / name, one / name)
    target = "results/tables/peptide_usage.tsv"
    result = _run(repo, one, "--config", "shards=1", "--", target)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (one / target).read_bytes() == (demo_run / target).read_bytes()
    assert (one / "results/model/usage_start.parquet").is_file()
    assert (one / "logs/usage_refit/1-of-1.log").is_file()
    assert "with the usage term" not in (one / "logs/fit/1-of-1.log").read_text()


def test_report(repo: Path, demo_run: Path) -> None:
    result = _run(repo, demo_run, "--report", str(demo_run / "report.html"), "--config", "shards=2")
    assert result.returncode == 0, result.stderr[-2000:]
    html = (demo_run / "report.html").read_text(errors="replace")
    assert "volcano.png" in html and "pca.png" in html
    # small enough to mail (issue 12: <= 4 MB): indexed-colour figures at zlib level 9, no full
    # tables embedded, 200 rows per top-protein table (Snakemake's own scripts, styles and
    # licences are ~3.1 MB of it; the full demo's `make demo` report is measured in
    # benchmarks/README.md, "Report size")
    size = (demo_run / "report.html").stat().st_size
    assert size <= 4_000_000, f"report.html is {size:,} bytes"
    # the first page (workflow description) lists the run's warnings
    start = html.index("var workflow_desc")
    landing = html[start : html.index("\n", start)]
    assert "<strong>Warnings</strong> (1;" in landing
    assert "heavy_filtering" in landing and "removed 109 of 312 proteins" in landing
    # ... and the summary (rule report_pages), its numbers those of the tables, and the methods
    table = pd.read_csv(demo_run / "results/tables/differential_abundance.tsv", sep="\t")
    assert f"{N_INPUT_PROTEINS} proteins read" in landing
    removed = f"{N_FILTERED} proteins removed before the model: min_features 2: {N_FILTERED}"
    assert removed in landing
    for contrast, part in table.groupby("contrast", sort=False):
        tested = int(part["pvalue"].notna().sum())
        up = int(((part["adj_pvalue"] < 0.05) & (part["log2fc"] > 0)).sum())
        down = int(((part["adj_pvalue"] < 0.05) & (part["log2fc"] < 0)).sum())
        cells = f"{contrast}</a></td>\\n<td>{tested:,}</td>\\n<td>{up:,}</td>\\n<td>{down:,}</td>"
        assert cells in landing, contrast
    assert "Methods" in landing and "Satterthwaite" in landing and "lme4" in landing
    # the variance tests (one line; counts of variance_components.tsv) and their figure
    variance = pd.read_csv(demo_run / "results/tables/variance_components.tsv", sep="\t")
    for term in ("feature", "sample"):
        adj = variance[f"adj_p_{term}"]
        assert f"{term} {int((adj < 0.05).sum()):,} of {int(adj.notna().sum()):,}" in landing
    assert "tested against zero" in landing and "variance_partition.png" in html
    assert "system-message" not in landing  # docutils' mark of an error in the page's RST
    # one top-protein table per contrast, embedded in the report
    assert html.count("top_proteins_fmol") >= 3


def test_warnings_reach_the_user(demo_run: Path) -> None:
    alerts = pd.read_csv(demo_run / "results/alerts.tsv", sep="\t")
    assert alerts[["stage", "code"]].values.tolist() == [["merge", "heavy_filtering"]]
    assert "removed 109 of 312 proteins (35%)" in alerts["message"].iloc[0]
    # printed once more after the last job, where the user looks
    tail = (demo_run / "snakemake.stderr").read_text().split("steps (100%) done")[-1]
    assert "pepmix: 1 warning(s) for this analysis" in tail
    assert "WARNING [merge] the protein filters" in tail


def test_unknown_run_is_a_clear_error(repo: Path, tmp_path: Path) -> None:
    _write_slice(repo, tmp_path)
    sheet = (repo / "config/samples.tsv").read_text().replace("fmol25_1\t", "fmol25_x\t", 1)
    (tmp_path / "samples.tsv").write_text(sheet)
    _config(tmp_path)
    result = _run(repo, tmp_path)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("pepmix: error:")]
    assert len(errors) == 1
    assert "fmol25_1" in errors[0] and "fmol25_x" in errors[0]
    assert result.stderr.count("fmol25_x") == 1  # printed once (not also as "pepmix: ERROR:")
    assert not (tmp_path / "results/ingest/features.parquet").exists()
    assert not (tmp_path / "results/tables").exists()


def test_bad_config_is_one_line(repo: Path, tmp_path: Path) -> None:
    _write_slice(repo, tmp_path)
    (tmp_path / "samples.tsv").write_text((repo / "config/samples.tsv").read_text())
    _config(tmp_path)
    text = (tmp_path / "config.yaml").read_text() + "normalization: {method: mean}\n"
    (tmp_path / "config.yaml").write_text(text)
    result = _run(repo, tmp_path)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("pepmix: error:")]
    assert len(errors) == 1
    assert "normalization.method" in errors[0]
    assert result.stderr.count("normalization.method") == 1  # once, without Snakefile lines
    assert not (tmp_path / "results").exists()


def _prior_rule_shard_tables(
    repo: Path, tmp_path: Path, model_yaml: str, check: Callable[[Path], None]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Differential tables of the demo slice with ``model_yaml`` appended to the config, fitted
    with 1 and with 3 shards; ``check`` runs on each work directory after its run."""
    tables = []
    for shards in (1, 3):
        work = tmp_path / f"shards{shards}"
        work.mkdir()
        _write_slice(repo, work)
        (work / "samples.tsv").write_text((repo / "config/samples.tsv").read_text())
        _config(work)
        with (work / "config.yaml").open("a") as handle:
            handle.write(model_yaml)
        target = "results/tables/differential_abundance.tsv"
        result = _run(repo, work, "--config", f"shards={shards}", "--", target)
        assert result.returncode == 0, result.stderr[-3000:]
        check(work)
        tables.append(pd.read_csv(work / target, sep="\t").sort_values(["contrast", "protein"]))
    one, three = (t.reset_index(drop=True) for t in tables)
    assert list(one["protein"]) == list(three["protein"])
    assert list(one["status"]) == list(three["status"])
    return one, three


def test_shrinkage_prior_rule_and_shard_invariance(repo: Path, tmp_path: Path) -> None:
    """model.shrinkage: the prior is estimated once (rule variance_prior) before sharding, so
    the differential table does not depend on the number of shards."""

    def check(work: Path) -> None:
        prior = (work / "results/model/variance_prior.json").read_text()
        assert '"sample"' in prior
        proteins = pd.read_parquet(work / "results/model/proteins.parquet")
        assert "shrinkage_prior_df_sample" in proteins.columns
        assert not proteins["detail"].str.contains("variance at zero: sample").any()

    one, three = _prior_rule_shard_tables(repo, tmp_path, "model:\n  shrinkage: true\n", check)
    # each protein's fit uses only its own data and the prior: equal up to the optimiser's
    # stopping rule (projected-gradient norm 1e-6)
    pd.testing.assert_series_equal(one["pvalue"], three["pvalue"], rtol=1e-5, atol=1e-9)


def test_feature_weights_prior_rule_and_shard_invariance(repo: Path, tmp_path: Path) -> None:
    """model.feature_weights: the feature-variance prior is estimated once (rule
    variance_prior) before sharding, so the differential table does not depend on the number of
    shards."""

    def check(work: Path) -> None:
        prior = (work / "results/model/variance_prior.json").read_text()
        assert '"_feature_variances"' in prior and '"sample"' not in prior

    one, three = _prior_rule_shard_tables(
        repo, tmp_path, "model:\n  feature_weights: empirical_bayes\n", check
    )
    # each protein's fit uses only its own data and the global prior: equal up to the
    # optimiser's stopping rule (projected-gradient norm 1e-6)
    pd.testing.assert_series_equal(one["pvalue"], three["pvalue"], rtol=1e-5, atol=1e-9)


def test_peptide_usage_outputs(repo: Path, tmp_path: Path) -> None:
    """peptide_usage: true writes the usage table (one row per input protein, gathered over two
    shards) and the profile figure of the flagged proteins, which is in the report; with
    peptide_usage_contrasts: pretest the proteins with a usage p < 0.25 take their contrasts
    from the usage model, and the differential table is the same for one and two shards."""
    work = tmp_path / "usage"
    work.mkdir()
    _write_slice(repo, work)
    (work / "samples.tsv").write_text((repo / "config/samples.tsv").read_text())
    _config(work)
    with (work / "config.yaml").open("a") as handle:
        # the PDFs on request: vector copies and the profile PDFs
        handle.write(
            "peptide_usage: true\npeptide_usage_contrasts: pretest\nplots:\n  formats: [png, pdf]\n"
        )
    extra = ("--config", "shards=2")
    result = _run(repo, work, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    usage = pd.read_csv(work / "results/tables/peptide_usage.tsv", sep="\t")
    assert len(usage) == N_INPUT_PROTEINS and usage["protein"].is_unique
    assert int((usage["status"] == "filtered").sum()) == N_FILTERED
    tested = usage["pvalue"].notna()
    assert tested.sum() > 150  # fitted proteins with an identifiable usage term
    assert usage.loc[tested, "pvalue"].between(0, 1).all()
    assert (usage.loc[usage["var_usage"] > 0, "top_cells"].str.len() > 0).all()
    assert_drawn(work / "results/plots/model/peptide_usage.png")
    pdf = (work / "results/plots/model/peptide_usage.pdf").read_bytes()
    flagged = int((usage["adj_pvalue"] < 0.05).sum())
    assert re.search(rb"/Count (\d+)", pdf).group(1) == str(max(min(flagged, 20), 1)).encode()
    for name in ("qc/pca", "status", "contrasts/fmol100_vs_fmol25/volcano"):
        assert (work / f"results/plots/{name}.pdf").read_bytes().startswith(b"%PDF"), name
    profiles = (work / "results/plots/contrasts/fmol100_vs_fmol25/profiles.pdf").read_bytes()
    assert re.search(rb"/Count (\d+)", profiles).group(1) == b"20"
    report = _run(repo, work, "--report", str(work / "report.html"), *extra)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "peptide_usage.png" in (work / "report.html").read_text(errors="replace")
    # one shard: the fit job writes the usage table itself (no gather job); the contrasts of
    # peptide_usage_contrasts need the usage test in the fit job (no rule usage_refit)
    dry = _run(repo, work, "-n", "--forceall", "--config", "shards=1")
    planned = _planned_rules(dry.stdout + dry.stderr)
    # the usage figure is drawn by rule plot_model (one job's start-up and reads fewer)
    assert {"fit", "plot_model"} <= planned
    assert not {"peptide_usage", "usage_refit", "plot_usage"} & planned
    one = tmp_path / "one"
    shutil.copytree(work, one, ignore=shutil.ignore_patterns("results", ".snakemake", "logs"))
    differential = "results/tables/differential_abundance.tsv"
    targets = ("results/tables/peptide_usage.tsv", differential)
    assert _run(repo, one, "--config", "shards=1", "--", *targets).returncode == 0
    # the same tables as gathered over two shards
    for target in targets:
        assert (one / target).read_bytes() == (work / target).read_bytes(), target
    table = pd.read_csv(work / differential, sep="\t")
    switched = table["detail"].fillna("").str.contains("contrast from the usage model")
    flagged = set(usage.loc[usage["pvalue"] < 0.25, "protein"])
    assert set(table.loc[switched, "protein"]) == flagged & set(table["protein"])
    assert switched.sum() > 0


def test_bootstrap_rule_top_n(repo: Path, tmp_path: Path) -> None:
    """variance_tests with bootstrap_proteins: top N and bootstrap_contrasts: rule bootstrap runs
    after the gather (two shards), writes both tables for the N best proteins, and fills
    p_boot_<t> of variance_components.tsv for those proteins only."""
    work = tmp_path / "boot"
    work.mkdir()
    _write_slice(repo, work)
    (work / "samples.tsv").write_text((repo / "config/samples.tsv").read_text())
    _config(work)
    with (work / "config.yaml").open("a") as handle:
        handle.write(
            "variance_tests:\n  bootstrap: 19\n  bootstrap_proteins: top 4\n"
            "  bootstrap_contrasts: true\n"
        )
    result = _run(repo, work, "--config", "shards=2")
    assert result.returncode == 0, result.stderr[-3000:]
    diff = pd.read_csv(work / "results/tables/differential_abundance.tsv", sep="\t")
    best = diff.groupby("protein")["adj_pvalue"].min().nsmallest(4)
    boot = pd.read_csv(work / "results/tables/bootstrap_contrasts.tsv", sep="\t")
    assert set(boot["protein"]) == set(best.index)
    assert len(boot) == 4 * diff["contrast"].nunique()
    tested = boot["t"].notna()
    assert boot.loc[tested, "p_boot"].between(1 / 20, 1).all() and (boot["B"] == 19).all()
    terms = pd.read_csv(work / "results/tables/bootstrap_terms.tsv", sep="\t")
    assert list(terms["rank"]) == [1, 2, 3, 4]
    vc = pd.read_csv(work / "results/tables/variance_components.tsv", sep="\t")
    assert set(vc.loc[vc["p_boot_feature"].notna(), "protein"]) <= set(best.index)
    assert vc["p_boot_feature"].notna().sum() >= 3
