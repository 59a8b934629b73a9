"""The stratum prior (pepmix.inference.stratum) and what the model stage exports for it.

- On data simulated from the prior's own model (floors known, replicate variances from a skewed
  Gamma(0.3) distribution with a fifth of them below 1 % of the mean) the null p-values are
  exactly uniform when the fitted prior is right; with 2,000 proteins a correct method has KS
  p > 0.01 at each fixed seed with probability 0.99 (three seeds: the tested seeds are fixed, so
  the outcome is deterministic). The fitted prior is a grid NPMLE: its mean is a smooth
  functional, known to about 2 % (SD) against the simulated values' own mean (each M_g has a
  CV of sqrt(2/nu) ~ 0.6 around tau_g^2 + r_g: 0.6 x 1.15 / sqrt(2,000) relative), tested at
  8 % (measured 0.6-4.0 % at these seeds); its distribution function at the truth's quartiles
  to 0.12 (measured <= 0.067; the NPMLE of a mixing distribution converges slowly).
- A balanced design (every sample with every feature, no weights): ``var_between`` is exactly
  the within-condition mean square of the sample means times :math:`u`, ``var_floor`` the
  within-sample mean square over the observations per sample times :math:`u` (up to the
  :data:`pepmix.model.fit.THETA_FREE` penalty, relative 1e-6).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pepmix.inference import stratum
from pepmix.inference.differential import InferenceOptions, differential_table
from pepmix.model.fit import fit_proteins
from pepmix.model.stored import StoredFit

from .engine_data import make_design

N_PROTEINS = 2000


def _simulate(seed: int) -> tuple[stratum.StratumData, np.ndarray, np.ndarray, np.ndarray]:
    """Data from the model: tau^2 ~ Gamma(0.3, mean 0.35^2), floors U(0.01, 0.03), 4-6 df."""
    rng = np.random.default_rng(seed)
    tau2 = rng.gamma(0.3, 0.35**2 / 0.3, N_PROTEINS)
    floor = rng.uniform(0.01, 0.03, N_PROTEINS)
    nu = rng.choice([4.0, 5.0, 6.0], N_PROTEINS)
    u = np.full(N_PROTEINS, 0.5)
    m = (tau2 + floor) * rng.chisquare(nu) / nu
    data = stratum.StratumData.from_variances(u * m, u * floor, u, nu)
    estimate = rng.normal(0.0, np.sqrt(u * (tau2 + floor)))
    return data, tau2, estimate, u


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_null_pvalues_uniform_under_the_model(seed: int) -> None:
    data, tau2, estimate, u = _simulate(seed)
    assert 0.15 < np.mean(data.m < data.floor) < 0.35  # many would be REML boundary fits
    prior = stratum.fit_prior(data)
    p = stratum.pvalues(estimate, u, stratum.posterior(prior, data))
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert abs(prior.mean / tau2.mean() - 1.0) < 0.08
    cdf = np.cumsum(prior.weight)
    for q in np.quantile(tau2, [0.25, 0.5, 0.75]):
        fitted = cdf[np.searchsorted(prior.grid, q, side="right") - 1]
        assert abs(fitted - np.mean(tau2 <= q)) < 0.12


def test_posterior_never_below_the_floor() -> None:
    """The reported variance is at least the floor, at most the floor plus the grid's top."""
    data, _, _, _ = _simulate(4)
    post = stratum.posterior(stratum.fit_prior(data), data)
    assert np.all(post.var_post >= data.floor * (1 - 1e-12))
    assert np.all(post.var_post <= data.floor + post.grid[-1])


def _balanced(random: tuple[str, ...], seed: int) -> tuple[pd.DataFrame, object, pd.DataFrame]:
    sheet, design = make_design(2, 4, 1, random=random)
    rng = np.random.default_rng(seed)
    runs = list(design.runs)
    sample = dict(zip(sheet["run"], sheet["bioreplicate"], strict=True))
    cond = dict(zip(sheet["run"], sheet["condition"], strict=True))
    rows = []
    for p in range(6):
        feats = rng.normal(0, 1, 5) if "feature" in random else np.zeros(5)
        eff = {s: rng.normal(0, [0.0, 0.05, 0.4][p % 3]) for s in sheet["bioreplicate"]}
        for r in runs:
            for f in range(5):
                y = 20 + feats[f] + eff[sample[r]] + rng.normal(0, 0.3)
                rows.append({"protein": f"P{p}", "feature": f"f{f}", "run": r, "y": y})
    table = pd.DataFrame(rows)
    table["sample"] = table["run"].map(sample)
    table["condition"] = table["run"].map(cond)
    return table, design, sheet


@pytest.mark.parametrize("random", [("sample",), ("feature", "sample")])
def test_balanced_mean_squares_by_hand(random: tuple[str, ...], tmp_path: Path) -> None:
    table, design, _ = _balanced(random, 5)
    long = table.drop(columns=["sample", "condition"])
    fit = fit_proteins(long, design, [("B - A", "B", "A")], stratum=True)
    got = fit.contrast_table(["B"], ["A"]).set_index("protein")
    # the stored fit gives the same columns; without stratum=True they are NaN
    StoredFit.from_model_fit(fit).write(tmp_path / "fit.parquet")
    stored = StoredFit.read(tmp_path / "fit.parquet", design).contrast_table([("B - A", "B", "A")])
    for col in ("var_floor", "var_between"):
        np.testing.assert_allclose(stored[col].to_numpy(), got[col].to_numpy(), rtol=1e-12)
    plain_fit = fit_proteins(long, design, [("B - A", "B", "A")])
    plain = plain_fit.contrast_table(["B"], ["A"])
    assert plain[["var_floor", "var_between"]].isna().all().all()
    # the file has the columns exactly when the fit exported them (shards gather alike)
    assert "stratum_ratio" in StoredFit.from_model_fit(fit).to_arrow().column_names
    assert "stratum_ratio" not in StoredFit.from_model_fit(plain_fit).to_arrow().column_names
    assert (got["status"] == "boundary").any() and (got["status"] == "ok").any()
    u, m = 1 / 4 + 1 / 4, 5
    for protein, part in table.groupby("protein"):
        means = part.groupby("sample")["y"].mean()
        cond = part.groupby("sample")["condition"].first()
        centred = means - means.groupby(cond).transform("mean")
        between = float(np.sum(centred**2)) / (8 - 2)
        row = got.loc[protein]
        np.testing.assert_allclose(row["var_between"], u * between, rtol=1e-5)
        if random == ("sample",):  # no feature effects: the within-sample mean square
            resid = part["y"] - part["sample"].map(means)
            within = float(np.sum(resid**2)) / (40 - 8)
            np.testing.assert_allclose(row["var_floor"], u * within / m, rtol=1e-5)
        if row["status"] == "ok":  # interior: REML = ANOVA, the fit's variance is M u
            np.testing.assert_allclose(row["se"] ** 2, row["var_between"], rtol=1e-4)


def test_moderation_uses_the_prior_where_a_floor_is_known() -> None:
    """Rows with a floor get the stratum posterior's p-values; a row without one (a reduced
    model that lost the sample factor) keeps limma's."""
    data, _, estimate, u = _simulate(5)
    n = 400
    stats_ = pd.DataFrame(
        {
            "protein": [f"P{i:04d}" for i in range(n)],
            "contrast": "B - A",
            "estimate": estimate[:n],
            "se": np.sqrt(u[:n] * np.maximum(data.m[:n], data.floor[:n])),
            "df": data.nu[:n],
            "status": "ok",
            "detail": "",
            "n_features": 5,
            "n_observations": 40,
            "n_samples_num": 4,
            "n_samples_den": 4,
            "df_between": data.nu[:n],
            "var_floor": u[:n] * data.floor[:n],
            "var_between": u[:n] * data.m[:n],
        }
    )
    stats_.loc[0, "detail"] = "sample: dropped, its variance and the residual variance are not"
    stats_.loc[0, "status"] = "reduced_model"
    table = differential_table(stats_, ["B - A"], InferenceOptions(prior="stratum"))
    limma = differential_table(stats_, ["B - A"], InferenceOptions())
    by = table.set_index("protein")
    lim = limma.set_index("protein")
    rows = stats_.index[1:]
    sub = stratum.StratumData(data.m[rows], data.nu[rows], data.floor[rows])
    expected = stratum.pvalues(
        estimate[rows], u[rows], stratum.posterior(stratum.fit_prior(sub), sub)
    )
    np.testing.assert_allclose(by.loc[stats_["protein"][rows], "pvalue"], expected, rtol=1e-12)
    assert by.loc["P0000", "pvalue"] == lim.loc["P0000", "pvalue"]
    # t, df and p agree: the reported df give the mixture p-value
    t = by["t"].to_numpy()
    p_t = 2 * stats.t.sf(np.abs(t), by["df"].to_numpy())
    np.testing.assert_allclose(p_t, by["pvalue"].to_numpy(), rtol=1e-6)


def test_methods_text_names_the_stratum_prior() -> None:
    """The report's methods paragraph describes the stratum prior and cites the NPMLE."""
    from pepmix.report.methods import REFERENCES, _Citations, _moderation

    cite = _Citations()
    text = _moderation({"testing": {"variance_prior": "stratum"}}, cast(Any, None), cite)
    assert "residual floor" in text and "koenker2014" in cite.keys
    assert "Koenker R, Mizera I (2014)" in REFERENCES["koenker2014"]
