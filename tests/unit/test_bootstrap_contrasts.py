"""Parametric bootstrap of the contrasts' t tests (:mod:`pepmix.model.bootstrap_contrasts`) and
the workflow's after-gather bootstrap (:mod:`pepmix.bootstrap`, :mod:`pepmix.stages.bootstrap`).

R reference (no R needed here): ``tests/reference/bootstrap`` (``pbmodcomp.R``): per seeded
small protein, pbkrtest's ``PBmodcomp`` and the same bootstrap of the REML Wald t done with lme4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix.bootstrap import run_bootstrap, selected_proteins, split_by_size, top_proteins
from pepmix.errors import ConfigError
from pepmix.model.bootstrap_contrasts import bootstrap_contrasts, null_design
from pepmix.model.design import ModelSpec, RunDesign, build_run_design
from pepmix.model.fit import fit_proteins
from pepmix.model.variance_tests import VarianceTestOptions
from pepmix.shards import boot_in_fit

REF = Path(__file__).resolve().parents[1] / "reference" / "bootstrap"
AB = [("B - A", "B", "A")]


def _sheet(n_per: int, conditions: tuple[str, ...] = ("A", "B")) -> pd.DataFrame:
    runs = [f"S{i:02d}" for i in range(len(conditions) * n_per)]
    return pd.DataFrame(
        {
            "run": runs,
            "condition": np.repeat(list(conditions), n_per),
            "bioreplicate": runs,
            "batch": "b1",
        }
    )


def _design(n_per: int, conditions: tuple[str, ...] = ("A", "B")) -> RunDesign:
    return build_run_design(_sheet(n_per, conditions), ModelSpec(random=("feature", "sample")))


def _simulate(
    n_prot: int, n_per: int, n_feat: int, sd_sample: float, seed: int, n_cond: int = 2
) -> pd.DataFrame:
    """Null proteins: feature SD 0.5, sample SD ``sd_sample``, residual SD 0.25, 15% missing."""
    rng = np.random.default_rng(seed)
    n_s = n_cond * n_per
    f_idx, s_idx = np.meshgrid(np.arange(n_feat), np.arange(n_s), indexing="ij")
    frames = []
    for p in range(n_prot):
        y = (
            rng.normal(0, 0.5, n_feat)[f_idx.ravel()]
            + rng.normal(0, sd_sample, n_s)[s_idx.ravel()]
            + rng.normal(0, 0.25, f_idx.size)
        )
        keep = rng.random(y.size) > 0.15
        frames.append(
            pd.DataFrame(
                {
                    "protein": f"P{p:04d}",
                    "feature": [f"P{p}_F{i}" for i in f_idx.ravel()[keep]],
                    "run": [f"S{i:02d}" for i in s_idx.ravel()[keep]],
                    "y": y[keep],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_observed_t_is_the_fits_t() -> None:
    """Plain REML: the bootstrap's observed statistic is the fit's estimate / SE (lmerTest's t);
    both come from the same optimum, so they agree to rounding (1e-9)."""
    table = _simulate(20, 3, 4, sd_sample=0.2, seed=1)
    fit = fit_proteins(table, _design(3), contrasts=AB, robust="none")
    ref = fit.contrast_table(["B"], ["A"]).set_index("protein")
    out = bootstrap_contrasts(fit, AB, 9, seed=1).set_index("protein")
    np.testing.assert_allclose(out["log2fc"], ref.loc[out.index, "estimate"], atol=1e-9)
    t_ref = ref.loc[out.index, "estimate"] / ref.loc[out.index, "se"]
    np.testing.assert_allclose(out["t"], t_ref, rtol=1e-7, atol=1e-9)
    assert (out["B"] == 9).all() and (out["n_boot"] <= 9).all()
    assert out["p_boot"].between(0.1, 1.0).all()  # (1 + hits) / (1 + 9) >= 0.1


def test_null_design_merges_the_two_columns() -> None:
    design = _design(2, ("A", "B", "C"))
    d0 = null_design(design, "C", "A")
    assert d0.n_fixed == design.n_fixed - 1
    # the denominator's column (A, first) is added to the numerator's (C) and removed
    np.testing.assert_array_equal(d0.x[:, 0], design.x[:, 1])
    np.testing.assert_array_equal(d0.x[:, 1], design.x[:, 2] + design.x[:, 0])
    assert d0.x_names[1] == f"{design.x_names[2]}+{design.x_names[0]}"
    assert d0.conditions == design.conditions  # random terms and cells unchanged


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, pd.DataFrame]:
    """pepmix's bootstrap (B = 999, plain REML) next to R's values, per reference protein."""
    data = pd.read_csv(REF / "datasets.csv")
    ref = pd.read_csv(REF / "reference.csv").set_index("dataset")
    rows = []
    for k, part in data.groupby("dataset"):
        table = pd.DataFrame(
            {"protein": f"D{k}", "feature": part["feature"], "run": part["sample"], "y": part["y"]}
        )
        runs = part.drop_duplicates("sample").sort_values("sample")
        sheet = pd.DataFrame(
            {
                "run": runs["sample"],
                "condition": runs["condition"],
                "bioreplicate": runs["sample"],
                "batch": "b1",
            }
        )
        design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
        fit = fit_proteins(table, design, robust="none")
        out = bootstrap_contrasts(fit, AB, 999, seed=11)
        rows.append(out.assign(dataset=k))
    return pd.concat(rows).set_index("dataset").sort_index(), ref


def test_matches_lme4_bootstrap_of_t(reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Same statistic, same null model, simulated independently (R: 1,000 replicates, lme4
    refits): p-values agree within Monte Carlo error (4 binomial SEs of the difference)."""
    ours, ref = reference
    assert len(ours) == len(ref) >= 8
    np.testing.assert_allclose(ours["t"], ref["t"], rtol=1e-4)
    p_r = ref["p_boot_t"].to_numpy()
    p = ours["p_boot"].to_numpy()
    se = np.sqrt(p_r * (1 - p_r) * (1 / 999 + 1 / ref["n_boot_t"].to_numpy()))
    assert np.all(np.abs(p - p_r) <= 4 * se + 2 / 1000), np.c_[p, p_r]


def test_agrees_with_pbmodcomp(reference: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """pbkrtest's PBmodcomp bootstraps the ML likelihood ratio (400 replicates), another
    statistic of the same hypothesis: p-values agree within Monte Carlo error plus 0.05 (the
    two statistics differ in small samples; differences measured: README of the reference)."""
    ours, ref = reference
    p_pb = ref["p_pbmodcomp"].to_numpy()
    p = ours["p_boot"].to_numpy()
    se = np.sqrt(p_pb * (1 - p_pb) * (1 / 999 + 1 / ref["npos_pbmodcomp"].to_numpy()))
    assert np.all(np.abs(p - p_pb) <= 4 * se + 0.05), np.c_[p, p_pb]


def test_null_calibration_small_design() -> None:
    """2 x 3 samples, no true difference: bootstrap p-values (B = 39, so P(p <= 0.05) = 2/40 =
    0.05 if the null fit's ratios were the true ones) reject at 5 % within 3 binomial SEs plus
    0.02, the parametric bootstrap's own error from estimating the ratios on 6 samples
    (measured on 1,000 proteins per setting: 3.2-6.6 % for sample SD 0.1-0.4, README)."""
    n = 200
    table = _simulate(n, 3, 4, sd_sample=0.2, seed=21)
    fit = fit_proteins(table, _design(3), robust="none")
    out = bootstrap_contrasts(fit, AB, 39, seed=3)
    p = out["p_boot"].to_numpy()
    ok = np.isfinite(p)
    assert ok.mean() > 0.95
    se = np.sqrt(0.05 * 0.95 / ok.sum())
    assert 0.05 - 3 * se - 0.02 <= np.mean(p[ok] <= 0.05) <= 0.05 + 3 * se + 0.02


def test_reproducible_subset_and_split_invariant() -> None:
    """Per-protein seeds: the same p-values for a protein alone, with others, or in another
    process of the after-gather rule; another seed changes them."""
    table = _simulate(8, 3, 3, sd_sample=0.2, seed=22, n_cond=3)
    design = _design(3, ("A", "B", "C"))
    contrasts = [("B - A", "B", "A"), ("C - A", "C", "A")]
    fit = fit_proteins(table, design, robust="huber")
    everyone = bootstrap_contrasts(fit, contrasts, 30, seed=4)
    some = bootstrap_contrasts(fit, contrasts, 30, seed=4, proteins=["P0002", "P0005"])
    other = bootstrap_contrasts(fit, contrasts, 30, seed=5, proteins=["P0002", "P0005"])
    key = ["contrast", "protein"]
    merged = some.merge(everyone, on=key, suffixes=("", "_all"))
    assert len(merged) == 4
    np.testing.assert_array_equal(merged["p_boot"], merged["p_boot_all"])
    assert not np.array_equal(some["p_boot"], other["p_boot"])
    opts = VarianceTestOptions(bootstrap=30, seed=4, contrasts=True)
    names = sorted(table["protein"].unique())
    one, _ = run_bootstrap(table, design, opts, contrasts, names, robust="huber", threads=1)
    two, _ = run_bootstrap(table, design, opts, contrasts, names, robust="huber", threads=2)
    pd.testing.assert_frame_equal(one, two)
    np.testing.assert_array_equal(
        one.set_index(key).loc[merged.set_index(key).index, "p_boot"], merged["p_boot"]
    )


def test_top_proteins_and_options() -> None:
    diff = pd.DataFrame(
        {
            "protein": ["a", "b", "c", "a", "b", "c", "d"],
            "contrast": ["x", "x", "x", "y", "y", "y", "x"],
            "pvalue": [0.5, 0.01, 0.02, 0.001, 0.3, 0.02, np.nan],
            "adj_pvalue": [0.6, 0.04, 0.04, 0.01, 0.5, 0.04, np.nan],
        }
    )
    assert top_proteins(diff, 2) == ["a", "b"]  # a: 0.01 (contrast y); b ties c on p
    assert top_proteins(diff, 10) == ["a", "b", "c"]  # d was not tested
    opts = VarianceTestOptions.from_config(
        {"bootstrap": 5, "bootstrap_proteins": "top 2", "bootstrap_contrasts": True}
    )
    assert opts.top == 2 and opts.contrasts and not opts.in_fit and opts.after_gather
    table = pd.DataFrame({"protein": ["c", "a", "b", "d"]})
    assert selected_proteins(opts, table, diff) == ["a", "b"]
    listed = VarianceTestOptions.from_config({"bootstrap": 5, "bootstrap_proteins": ["d", "b"]})
    assert listed.in_fit and not listed.after_gather
    assert selected_proteins(listed, table, None) == ["b", "d"]
    with pytest.raises(ConfigError):
        VarianceTestOptions.from_config({"bootstrap_contrasts": True})
    with pytest.raises(ConfigError):
        VarianceTestOptions.from_config({"bootstrap": 5, "bootstrap_proteins": "top 0"})
    assert boot_in_fit({"bootstrap": 5}) and boot_in_fit(
        {"bootstrap": 5, "bootstrap_proteins": ["a"]}
    )
    assert not boot_in_fit({"bootstrap": 5, "bootstrap_proteins": "top 3"})
    assert not boot_in_fit({"bootstrap": 0}) and not boot_in_fit(None)
    assert not boot_in_fit({"bootstrap": 5, "lrt": False})
    groups = split_by_size(pd.Series({"p": 10, "q": 9, "r": 2, "s": 1}), 2)
    assert sorted(p for g in groups for p in g) == ["p", "q", "r", "s"] and len(groups) == 2
    assert groups[0] == ["p", "s"]  # largest first, each to the lightest group


def test_bootstrap_stage_top_n(tmp_path: Path) -> None:
    """The after-gather stage: top N by adjusted p, contrast table and term table, and
    ``variance_components.tsv`` filled from the term table."""
    from pepmix.model.variance_tests import fit_tests
    from pepmix.stages import bootstrap, variance_components

    table = _simulate(6, 3, 4, sd_sample=0.3, seed=23)
    sheet = _sheet(3)
    features = tmp_path / "features.parquet"
    table.to_parquet(features)
    samples = tmp_path / "samples.tsv"
    sheet.to_csv(samples, sep="\t", index=False)
    ranks = {"P0004": 0.001, "P0001": 0.01, "P0000": 0.2}
    diff = pd.DataFrame(
        {
            "protein": sorted(table["protein"].unique()),
            "contrast": "B - A",
        }
    )
    diff["pvalue"] = diff["protein"].map(ranks).fillna(0.9)
    diff["adj_pvalue"] = diff["pvalue"]
    diff_path = tmp_path / "diff.parquet"
    diff.to_parquet(diff_path)
    config = {
        "contrasts": ["B - A"],
        "model": {"random": ["feature", "sample"], "robust": "none"},
        "testing": {},
        "variance_tests": {
            "bootstrap": 20,
            "bootstrap_proteins": "top 2",
            "bootstrap_contrasts": True,
            "seed": 3,
        },
    }
    out_c, out_t = tmp_path / "c.tsv", tmp_path / "t.tsv"
    result = bootstrap.run(
        features=features, samples=samples, config=config, differential=diff_path, threads=1
    )
    result.write(contrasts=out_c, terms=out_t)
    boot = pd.read_csv(out_c, sep="\t")
    assert list(boot["protein"]) == ["P0004", "P0001"]
    assert boot["p_boot"].notna().all() and (boot["B"] == 20).all()
    np.testing.assert_allclose(boot["pvalue"], [0.001, 0.01])
    terms = pd.read_csv(out_t, sep="\t")
    assert list(terms["protein"]) == ["P0004", "P0001"] and list(terms["rank"]) == [1, 2]
    # the fit stage's protein table (no bootstrap in the fit with top N), then the merge
    fit = fit_proteins(table, _design(3), robust="none")
    proteins = fit.variance_components()
    tests = fit_tests(fit, VarianceTestOptions.from_config(config["variance_tests"]))
    assert not any(c.startswith("p_boot_") for c in tests.columns)
    for c in tests.columns[1:]:
        proteins[c] = tests[c].to_numpy()
    prot_path, out_v = tmp_path / "proteins.parquet", tmp_path / "vc.tsv"
    proteins.to_parquet(prot_path)
    variance_components.run(proteins=prot_path, boot_terms=out_t).write(out_v)
    vc = pd.read_csv(out_v, sep="\t").set_index("protein")
    assert vc["p_boot_sample"].notna().sum() == 2
    assert (
        vc.loc["P0004", "p_boot_sample"] == terms.set_index("protein").loc["P0004", "p_boot_sample"]
    )
    assert vc.loc["P0002", "n_boot_sample"] == 0
