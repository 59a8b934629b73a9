"""Feature precision weights (``model.feature_weights``, :mod:`pepmix.model.feature_weights`).

- the ratios, df and weights of a complete 3 x 5 table against the two-way ANOVA by hand,
- the option off (or on with an infinite prior df) leaves the fit bit-identical,
- homoscedastic features: prior df large, weights near 1; one feature 4x noisier: the lowest
  weight, in the fit's observation weights too,
- shard invariance: a subset of proteins fitted with the global prior gets the numbers of the
  fit of all proteins; the prior survives the JSON of the ``variance_prior`` rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix.model import feature_weights as fw
from pepmix.model.design import RunDesign
from pepmix.model.fit import encode, fit_proteins
from pepmix.model.shrinkage import VariancePrior

from .engine_data import make_design

CONTRASTS = [("B - A", "B", "A")]


def _table(
    n_proteins: int, n_features: int, seed: int, noisy: float = 1.0, missing: float = 0.0
) -> tuple[pd.DataFrame, RunDesign]:
    """Proteins of ``n_features`` features on a 2 x 4 design; feature 0 of every protein has
    residual SD ``noisy`` x 0.3 (the others 0.3); cells missing at random with ``missing``."""
    _, design = make_design(n_cond=2, samples_per_cond=4)
    rng = np.random.default_rng(seed)
    runs = list(design.runs)
    rows = []
    for p in range(n_proteins):
        sample = rng.normal(0, 0.3, len(runs))
        change = rng.choice([0.0, 1.0]) * np.where(design.condition_code == 1, 1.0, 0.0)
        for f in range(n_features):
            sd = 0.3 * (noisy if f == 0 else 1.0)
            y = 20 + rng.normal(0, 1) + sample + change + rng.normal(0, sd, len(runs))
            keep = rng.random(len(runs)) >= missing
            for r in np.flatnonzero(keep):
                rows.append((f"P{p:04d}", f"P{p:04d}_F{f}", runs[r], y[r]))
    return pd.DataFrame(rows, columns=["protein", "feature", "run", "y"]), design


def test_ratios_and_weights_of_a_complete_table_by_hand() -> None:
    """3 features x 5 runs, complete: residuals of y ~ feature + run are the two-way ANOVA's
    (y - row mean - column mean + grand mean), d_f = (R - 1)(F - 1)/F = 8/3, z_f = the
    feature's mean square over the pooled one; weights = 1 / posterior, mean 1."""
    rng = np.random.default_rng(3)
    y = rng.normal(0, 1, (3, 5)) + np.arange(5)[None, :] + np.array([0.0, 2.0, 5.0])[:, None]
    _, design = make_design(n_cond=1, samples_per_cond=5)
    runs = list(design.runs)
    table = pd.DataFrame(
        [("P", f"F{f}", runs[j], y[f, j]) for f in range(3) for j in range(5)],
        columns=["protein", "feature", "run", "y"],
    )
    enc = encode(table, design)
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    got = fw.additive_residuals(enc, enc.y).reshape(3, 5)
    np.testing.assert_allclose(got, resid, atol=1e-9)  # alternating means to 1e-10
    ratios = fw.feature_ratios(enc)
    np.testing.assert_allclose(ratios.df, np.full(3, 8 / 3), rtol=1e-12)
    ms = (resid**2).sum(1) / (8 / 3)
    np.testing.assert_allclose(ratios.ratio, ms / ((resid**2).sum() / 8), rtol=1e-8)
    prior = fw.FeaturePrior(df=4.0, scale=0.9, df_factor=1.5, n_features=3)
    post = (4.0 * 0.9 + 1.5 * (8 / 3) * ratios.ratio) / (4.0 + 1.5 * (8 / 3))
    want = (1 / post) / np.mean(1 / post)
    np.testing.assert_allclose(fw.precision_weights(ratios, prior), want, rtol=1e-12)


def test_two_features_get_no_ratio() -> None:
    """With two features only the sum of their variances is identifiable: weight 1."""
    table, design = _table(5, 2, seed=1, noisy=4.0)
    ratios = fw.feature_ratios(encode(table, design))
    assert np.all(ratios.df == 0) and np.all(np.isnan(ratios.ratio))


@pytest.mark.parametrize("robust", ["none", "huber"])
def test_off_or_infinite_prior_df_leaves_the_fit_unchanged(robust: str) -> None:
    table, design = _table(40, 4, seed=2, missing=0.2)
    base = fit_proteins(table, design, CONTRASTS, robust=robust)
    off = fit_proteins(table, design, CONTRASTS, robust=robust, feature_weights="none")
    flat = fw.FeaturePrior(np.inf, 1.0, 1.4, 0)
    on = fit_proteins(
        table, design, CONTRASTS, robust=robust, feature_weights="empirical_bayes",
        feature_prior=flat,
    )  # fmt: skip
    for other in (off, on):
        for name in ("estimate", "se", "df", "theta", "sigma"):
            np.testing.assert_array_equal(getattr(other, name), getattr(base, name))


def test_homoscedastic_features_keep_weights_near_one() -> None:
    """No heteroscedasticity: var(log z) matches the null simulation, so d0 is large (its
    sampling error at ~1,300 features: excess +-0.02, i.e. d0 > ~60 typically; asserted > 20)."""
    table, design = _table(300, 5, seed=4, missing=0.1)
    prior = fw.fit_feature_prior(encode(table, design))
    assert prior.df > 20
    assert 1.0 < prior.df_factor < 2.0  # theory for a complete table: F / (F - 1) = 1.25


def test_noisy_feature_gets_the_lowest_weight() -> None:
    """Feature 0 of every protein has 4x the residual SD: a finite prior df, feature 0 below
    the others (weight < 1 < the others' on average), and in the fit's observation weights."""
    table, design = _table(300, 5, seed=5, noisy=4.0, missing=0.1)
    enc = encode(table, design)
    prior = fw.fit_feature_prior(enc)
    assert np.isfinite(prior.df) and prior.df < 20
    ratios = fw.feature_ratios(enc)
    w = fw.precision_weights(ratios, prior)
    first = np.array([str(name).endswith("_F0") for name in enc.features])
    has = ratios.df > 0
    assert np.median(w[first & has]) < 0.5 < 1.0 < np.median(w[~first & has])
    fit = fit_proteins(table, design, CONTRASTS, robust="huber", feature_weights="empirical_bayes")
    assert fit.feature_prior is not None and fit.weights is not None
    obs_first = first[fit.encoded.feat] if fit.encoded is not None else first
    assert np.median(fit.weights[obs_first]) < 0.5 < np.median(fit.weights[~obs_first])


def test_shard_invariance_and_prior_json(tmp_path: Path) -> None:
    """A subset fitted with the prior of all proteins gets the numbers of the full fit
    (per-protein fits: to the optimiser's tolerance, here bit-identical buckets aside)."""
    table, design = _table(60, 4, seed=6, noisy=3.0, missing=0.1)
    full = fit_proteins(table, design, CONTRASTS, robust="huber", feature_weights="empirical_bayes")
    assert full.feature_prior is not None
    path = tmp_path / "variance_prior.json"
    VariancePrior(features=full.feature_prior.to_dict()).to_json(path)
    back = VariancePrior.from_json(path)
    assert back.factors == {} and back.features is not None
    prior = fw.FeaturePrior.from_dict(back.features)
    assert prior == full.feature_prior
    keep = sorted(table["protein"].unique())[::2]
    part = fit_proteins(
        table.loc[table["protein"].isin(keep)], design, CONTRASTS, robust="huber",
        feature_weights="empirical_bayes", feature_prior=prior,
    )  # fmt: skip
    rows = [full.proteins.index(p) for p in part.proteins]
    # the REML optimiser's tolerance on theta; estimates follow smoothly
    np.testing.assert_allclose(part.estimate, full.estimate[rows], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(part.se, full.se[rows], rtol=1e-5)


def test_rule_variance_prior_writes_the_feature_prior(tmp_path: Path) -> None:
    """``model.feature_weights`` alone (no shrinkage): the rule's prior has no variance-ratio
    factors, the feature prior of all proteins, and the fit stage fits with it."""
    from pepmix.stages import fit as fit_stage
    from pepmix.stages import variance_prior

    table, _ = _table(40, 4, seed=7, noisy=3.0, missing=0.1)
    sheet, _ = make_design(n_cond=2, samples_per_cond=4)
    features, samples = tmp_path / "features.parquet", tmp_path / "samples.tsv"
    table.astype({c: "category" for c in ("protein", "feature", "run")}).to_parquet(features)
    sheet.to_csv(samples, sep="\t", index=False)
    model = {"feature_weights": "empirical_bayes", "robust": "huber"}
    prior = variance_prior.run(features=features, samples=samples, model=model)
    assert prior.factors == {} and prior.features is not None
    path = tmp_path / "variance_prior.json"
    prior.to_json(path)
    result = fit_stage.run(
        features=features, samples=samples, model=model, prior=path, abundance=False
    )
    assert result.fit.model is not None
    assert result.fit.model.feature_prior == fw.FeaturePrior.from_dict(prior.features)
    off = variance_prior.run(features=features, samples=samples, model={"robust": "huber"})
    assert off.factors == {} and off.features is None
