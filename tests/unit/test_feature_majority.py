"""The feature majority rule (``model.feature_majority``, :mod:`pepmix.model.majority`):
a minority feature shifted in one condition is excluded, null proteins and two-feature proteins
are left alone, two against two is no majority, and the interaction test's statistic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pepmix.model.design import ModelSpec, RunDesign, build_run_design
from pepmix.model.fit import EXCLUDED_WEIGHT, Encoded, ModelFit, encode, fit_proteins
from pepmix.model.majority import (
    interaction_pvalue,
    majority_exclusions,
    protein_exclusions,
    reference_exclusions,
)
from pepmix.model.usage import UsageStart, usage_shard

CONTRAST = [("B - A", "B", "A")]


def _design(per_condition: int = 4) -> RunDesign:
    sheet = pd.DataFrame(
        [(f"{c}{s}", c, f"{c}{s}", "b1") for c in "AB" for s in range(1, per_condition + 1)],
        columns=["run", "condition", "bioreplicate", "batch"],
    )
    return build_run_design(sheet, ModelSpec(random=("feature", "sample")))


def _table(
    rng: np.random.Generator,
    design: RunDesign,
    n_feat: int,
    shifted: tuple[int, ...] = (0,),
    shift: float = 0.0,
    n_prot: int = 1,
) -> pd.DataFrame:
    """Unchanged proteins (the *outliers* scenario's model: feature effects N(0, 1), sample SD
    0.3, residual SD 0.25); the features ``shifted`` rise by ``shift`` in condition B."""
    is_b = design.condition_code == design.conditions.index("B")
    rows = []
    for p in range(n_prot):
        feat = rng.normal(0.0, 1.0, n_feat)
        sample = rng.normal(0.0, 0.3, len(design.runs))
        for r, run in enumerate(design.runs):
            for f in range(n_feat):
                y = 22.0 + feat[f] + sample[r] + rng.normal(0.0, 0.25)
                y += shift * (f in shifted and bool(is_b[r]))
                rows.append((f"P{p:03d}", f"F{f}", run, y))
    return pd.DataFrame(rows, columns=["protein", "feature", "run", "y"])


def _estimate(fit: ModelFit) -> tuple[float, float]:
    return float(fit.estimate[0, 0]), float(fit.se[0, 0])


def test_shifted_feature_of_three_is_excluded() -> None:
    design = _design()
    table = _table(np.random.default_rng(1), design, 3, shift=4.0)
    huber = fit_proteins(table, design, CONTRAST, robust="huber")
    fit = fit_proteins(table, design, CONTRAST, robust="huber", feature_majority=True)
    est, se = _estimate(fit)
    # the two unshifted features are unchanged: the estimate is a normal deviate of SD ~se
    assert abs(est) < 4.0 * se
    # Huber alone keeps about a third of the shift (benchmarks/README.md): the rule matters
    assert _estimate(huber)[0] > 0.8
    assert "excluded feature(s) F0 (interaction p" in fit.detail[0]
    assert fit.n_features[0] == 2
    assert fit.weights is not None and fit.encoded is not None
    is_f0 = fit.encoded.features[fit.encoded.feat] == "F0"
    assert np.all(fit.weights[is_f0] == EXCLUDED_WEIGHT)
    assert fit.weights.size == len(table)
    row = fit.blups.loc[(fit.blups["factor"] == "feature") & (fit.blups["level"] == "F0")]
    assert len(row) == 1
    assert np.isnan(row["blup"].iloc[0]) and row["weight_min"].iloc[0] == 0.0


def test_null_proteins_keep_their_features() -> None:
    # 60 unchanged proteins of 3-6 features: at the family level 0.01 per protein (measured
    # 0.3-2.2 % on null data, module docstring) a few exclusions at most; every protein
    # without one gets exactly the fit without the rule
    design = _design()
    rng = np.random.default_rng(2)
    table = pd.concat(
        [
            _table(rng, design, j, n_prot=15).assign(protein=lambda t, j=j: f"J{j}-" + t.protein)
            for j in (3, 4, 5, 6)
        ],
        ignore_index=True,
    )
    plain = fit_proteins(table, design, CONTRAST, robust="huber")
    fit = fit_proteins(table, design, CONTRAST, robust="huber", feature_majority=True)
    touched = np.array(["excluded feature" in d for d in fit.detail])
    assert touched.sum() <= 3
    np.testing.assert_array_equal(fit.estimate[~touched], plain.estimate[~touched])
    np.testing.assert_array_equal(fit.se[~touched], plain.se[~touched])


def test_two_features_are_never_excluded() -> None:
    # two features that disagree: which one is wrong is not identifiable
    design = _design()
    table = _table(np.random.default_rng(3), design, 2, shift=4.0, n_prot=5)
    enc = encode(table, design)
    assert majority_exclusions(enc, design).features.size == 0
    fit = fit_proteins(table, design, CONTRAST, robust="huber", feature_majority=True)
    plain = fit_proteins(table, design, CONTRAST, robust="huber")
    np.testing.assert_array_equal(fit.estimate, plain.estimate)


def test_two_against_two_is_no_majority_two_of_five_is() -> None:
    design = _design()
    rng = np.random.default_rng(4)
    four = _table(rng, design, 4, shifted=(0, 1), shift=4.0)
    assert majority_exclusions(encode(four, design), design).features.size == 0
    five = _table(rng, design, 5, shifted=(0, 1), shift=4.0)
    enc = encode(five, design)
    got = majority_exclusions(enc, design)
    assert sorted(str(enc.features[f]) for f in got.features) == ["F0", "F1"]
    fit = fit_proteins(five, design, CONTRAST, robust="huber", feature_majority=True)
    est, se = _estimate(fit)
    assert abs(est) < 4.0 * se


def test_only_robust_fits_use_the_rule() -> None:
    design = _design()
    table = _table(np.random.default_rng(5), design, 3, shift=4.0)
    plain = fit_proteins(table, design, CONTRAST)
    fit = fit_proteins(table, design, CONTRAST, feature_majority=True)
    np.testing.assert_array_equal(fit.estimate, plain.estimate)
    assert "excluded" not in fit.detail[0]


def test_interaction_statistic_complete_table() -> None:
    # complete balanced 3 x 2 table, n = 4 per cell: d_c = a_0c - mean(a_1c, a_2c), v_c = s2
    # (1/4 + 1/8), Q = (d_B - d_A)^2 / (2 v): F(1, df2) of Q
    levels = np.array([[1.0, 3.0], [0.5, 0.6], [-0.2, 0.1]])
    counts = np.full((3, 2), 4.0)
    s2, df2 = 0.04, 12.0
    d = levels[0] - levels[1:].mean(axis=0)
    v = s2 * (1 / 4 + 1 / 8)
    q = (d[1] - d[0]) ** 2 / (2 * v)
    got = interaction_pvalue(levels, counts, 0, [1, 2], s2, df2)
    assert got == pytest.approx(stats.f.sf(q, 1, df2), rel=1e-10)
    # the moderation's prior took over (d0 infinite): the variance is known, chi-square
    assert interaction_pvalue(levels, counts, 0, [1, 2], s2, np.inf) == pytest.approx(
        stats.chi2.sf(q, 1), rel=1e-10
    )
    # the step-down rule: F0 out (p * 3 < 0.01), then F1 and F2 agree
    out = protein_exclusions(levels, counts, s2, df2)
    assert [j for j, _ in out] == [0]
    # a feature seen in one condition only is not active: two active features, none excluded
    one_sided = levels.copy()
    one_sided[2, 1] = np.nan
    assert protein_exclusions(one_sided, np.where(np.isnan(one_sided), 0, counts), s2, df2) == []


def test_usage_refit_starts_from_the_weights(tmp_path: Path) -> None:
    # the usage model (feature:condition term) refits every feature, the excluded ones from
    # the positive EXCLUDED_WEIGHT, and the stored start reads back with matching weights
    design = _design()
    table = _table(np.random.default_rng(6), design, 3, shift=4.0, n_prot=2)
    fit = fit_proteins(table, design, CONTRAST, robust="huber", feature_majority=True)
    assert sum("excluded feature" in d for d in fit.detail) == 2
    sheet = pd.DataFrame(
        {"run": design.runs, "condition": [design.conditions[c] for c in design.condition_code]}
    ).assign(bioreplicate=lambda t: t.run, batch="b1")
    shard = usage_shard(fit, fit.variance_components(), table, sheet, "huber")
    # the shifted feature is the usage model's most deviating cell of both proteins
    assert all(str(c).startswith("F0:B") for c in shard.table["top_cells"])
    path = tmp_path / "start.parquet"
    UsageStart.from_fit(fit).write(path)
    back = UsageStart.read(path)
    assert back.weights is not None and back.weights.size == len(table)


def _ragged_table(seed: int) -> tuple[pd.DataFrame, RunDesign]:
    """80 proteins of 2-8 features in three conditions of 4 runs, some features shifted in
    one condition by 0.3-1.5 log2 (moderate p-values), 25 % of the values missing at random
    and some whole cells missing (pruned observations, disconnected cells, features seen in
    one condition)."""
    rng = np.random.default_rng(seed)
    sheet = pd.DataFrame(
        [(f"{c}{s}", c, f"{c}{s}", "b1") for c in "ABC" for s in range(1, 5)],
        columns=["run", "condition", "bioreplicate", "batch"],
    )
    design = build_run_design(sheet, ModelSpec(random=("feature", "sample")))
    rows = []
    for p in range(80):
        n_feat = int(rng.integers(2, 9))
        shifted = int(rng.integers(0, n_feat)) if rng.random() < 0.4 else -1
        shift = rng.uniform(0.3, 1.5)
        feat = rng.normal(0.0, 1.0, n_feat)
        for r, run in enumerate(design.runs):
            cond = int(design.condition_code[r])
            for f in range(n_feat):
                if rng.random() < 0.25 or (f == 1 and cond == p % 3 and p % 4 == 0):
                    continue
                y = 22.0 + feat[f] + rng.normal(0.0, 0.3) + shift * (f == shifted and cond == 1)
                rows.append((f"P{p:03d}", f"F{f}", run, y))
    return pd.DataFrame(rows, columns=["protein", "feature", "run", "y"]), design


@pytest.mark.parametrize("seed", [7, 11])
def test_compiled_rule_equals_the_reference(seed: int) -> None:
    # the compiled passes (_majority_kernel) make what the plain per-protein fits (lstsq) and
    # the loop over proteins make: the same exclusions and p-values. Both stop their IRLS when
    # no Huber weight moves by WEIGHT_TOL (1e-6) or more, so two settled fits of one protein
    # differ by about that much relative (their Anderson steps differ by rounding, and one may
    # stop a round before the other); p-values measured within 6e-6 relative (seeds 7-14)
    table, design = _ragged_table(seed)
    enc = encode(table, design)
    got = majority_exclusions(enc, design)
    ref = reference_exclusions(enc, design)
    assert ref.features.size >= 5  # the data exercise the rule
    np.testing.assert_array_equal(got.features, ref.features)
    np.testing.assert_array_equal(got.observations, ref.observations)
    np.testing.assert_allclose(got.pvalues, ref.pvalues, rtol=1e-4)
    assert got.notes(enc) == ref.notes(enc)


def _kernel_tables(
    enc: Encoded, design: RunDesign
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``saturated_tables`` of every protein: levels, counts, scale, nu, rounds."""
    from pepmix.model import _majority_kernel as kernel

    n_prot, n_cond = len(enc.proteins), len(design.conditions)
    n_feat = int(enc.feat.max()) + 1
    fprot = np.zeros(n_feat, dtype=np.intp)
    fprot[enc.feat] = enc.prot
    levels, counts = np.full(n_feat * n_cond, np.nan), np.zeros(n_feat * n_cond)
    scale, nu = np.full(n_prot, np.nan), np.full(n_prot, np.nan)
    rounds = np.zeros(n_prot, dtype=np.int64)
    kernel.saturated_tables(
        enc.y, enc.feat.astype(np.int64), enc.run.astype(np.int64),
        design.condition_code.astype(np.int64),
        np.searchsorted(enc.prot, np.arange(n_prot + 1)).astype(np.int64),
        np.searchsorted(fprot, np.arange(n_prot + 1)).astype(np.int64),
        np.arange(n_prot, dtype=np.int64), n_cond, len(enc.runs), levels, counts, scale, nu,
        rounds,
    )  # fmt: skip
    return levels, counts, scale, nu, rounds


def test_compiled_scale_and_df_equal_the_reference() -> None:
    from pepmix.model import _majority_kernel as kernel
    from pepmix.model import robust
    from pepmix.model.majority import cell_levels

    assert (kernel.MAD_SCALE, kernel.HUBER_K) == (robust.MAD_SCALE, robust.HUBER_K)
    assert kernel.POLISH_SWEEPS == robust.POLISH_SWEEPS
    table, design = _ragged_table(9)
    enc = encode(table, design)
    cells, levels_ref, _, scale_ref, nu_ref = cell_levels(enc, design)
    levels, _, scale, nu, rounds = _kernel_tables(enc, design)
    np.testing.assert_array_equal(nu, nu_ref)
    assert np.all(rounds > 0)  # every fit settled
    # settled fits: within about WEIGHT_TOL (1e-6) relative of each other (test above)
    np.testing.assert_allclose(scale, scale_ref, rtol=1e-5)
    # levels: compared within each condition's main component (the constraint fixes the
    # same constant, sum_r W_r b_r = 0; identical up to the fits' tolerance)
    np.testing.assert_array_equal(np.isnan(levels[cells]), np.isnan(levels_ref))
    np.testing.assert_allclose(levels[cells], levels_ref, atol=1e-5)


@pytest.mark.parametrize("seed", [9, 13])
def test_saturated_fit_is_the_exact_weighted_fit_at_settled_huber_weights(seed: int) -> None:
    # the guarantee of the module docstring: the reported fit solves the weighted normal
    # equations (cell and run sums of w * r are 0, to rounding) at weights within WEIGHT_TOL of
    # the Huber weights of its own residuals at their MAD scale times the df factor
    # (on the observations the rule fits: those the saturated model does not fit exactly)
    from pepmix.model import _majority_kernel as kernel
    from pepmix.model.robust import _prune_exact, huber_weights

    table, design = _ragged_table(seed)
    enc = encode(table.loc[table["protein"] < "P040"], design)
    n_cond = len(design.conditions)
    raw = enc.feat.astype(np.int64) * n_cond + design.condition_code[enc.run]
    kept = _prune_exact(raw, enc.prot.astype(np.int64) * len(enc.runs) + enc.run)
    fitted = 0
    for p in range(len(enc.proteins)):
        rows = np.flatnonzero(kept & (enc.prot == p))
        if rows.size < 4:
            continue
        cell = raw[rows] - raw[rows].min()
        run = enc.run[rows].astype(np.int64)
        y = enc.y[rows].copy()
        m, n_cells = y.size, int(cell.max()) + 1
        resid, a, w = np.empty(m), np.empty(n_cells), np.empty(m)
        rounds = kernel._saturated(y, cell, run, m, n_cells, len(enc.runs), 1.2, resid, a, w)
        assert 0 < rounds <= kernel.MAX_ROUNDS
        for code in (cell, run):
            sums = np.bincount(code, weights=w * resid)
            assert np.max(np.abs(sums)) < 1e-10 * max(1.0, float(np.max(np.abs(y))))
        scale = kernel.MAD_SCALE * np.median(np.abs(resid - np.median(resid))) * 1.2
        huber = huber_weights(resid, np.full(m, scale))
        assert np.max(np.abs(huber - w)) < kernel.WEIGHT_TOL
        b = y - a[cell] - resid  # the run levels: one per run
        spread = np.bincount(run, weights=b) / np.maximum(np.bincount(run), 1)
        assert np.max(np.abs(b - spread[run])) < 1e-10 * max(1.0, float(np.max(np.abs(y))))
        fitted += 1
    assert fitted >= 20


def test_excluded_feature_is_drawn_down_weighted() -> None:
    # the profile plot reads weight_min from the BLUP table: the excluded feature's 0 is below
    # LOW_WEIGHT, so its line is dashed and faded (the others keep their Huber weights)
    from pepmix.plots.profile_data import ProteinProfile, prepare
    from pepmix.plots.profiles import LOW_WEIGHT
    from pepmix.plots.style import Runs

    design = _design()
    table = _table(np.random.default_rng(1), design, 3, shift=4.0)
    fit = fit_proteins(table, design, CONTRAST, robust="huber", feature_majority=True)
    sheet = pd.DataFrame(
        {"run": design.runs, "condition": [design.conditions[c] for c in design.condition_code]}
    ).assign(bioreplicate=lambda t: t.run, batch="b1")
    profile = ProteinProfile(
        protein="P000",
        features=table,
        abundance=pd.DataFrame(columns=["run", "abundance", "se"]),
        fixed=pd.DataFrame(columns=["term", "estimate", "se"]),
        blups=fit.blups.loc[fit.blups["protein"] == "P000"],
    )
    p = prepare(profile, Runs.from_sheet(sheet))
    weight = dict(zip(p.names, p.weight, strict=True))
    assert weight["F0"] == 0.0 < LOW_WEIGHT
    assert min(weight["F1"], weight["F2"]) > 0.0


def test_prior_fitted_on_all_proteins_is_the_one_used() -> None:
    # a sharded fit is given the prior of all proteins' sample (pepmix.model.majority_shards):
    # given, it gives exactly what the fit of all proteins gives, and on a subset (a shard) the
    # subset's own prior would differ
    from pepmix.model.majority import fit_majority_prior

    table, design = _ragged_table(12)
    enc = encode(table, design)
    prior = fit_majority_prior(enc, design)
    assert np.isfinite(prior[1]) and prior[1] > 0
    own = majority_exclusions(enc, design)
    given = majority_exclusions(enc, design, prior=prior)
    np.testing.assert_array_equal(given.features, own.features)
    np.testing.assert_array_equal(given.pvalues, own.pvalues)
    half = table.loc[table["protein"] < "P040"]
    sub = encode(half, design)
    assert fit_majority_prior(sub, design) != prior


def test_prior_sample_depends_on_the_names_only() -> None:
    # the sample is the `size` smallest CRC-32 of the names: the same names whatever their
    # order and whatever else is in the table (shards), all of them when there are fewer
    import zlib

    from pepmix.model.majority import prior_sample

    names = [f"sp|Q{i:05d}|PROT_{i}" for i in range(500)]
    picked = {names[i] for i in prior_sample(names, 40)}
    assert len(picked) == 40
    crc = sorted(zlib.crc32(n.encode("utf-8")) for n in names)
    assert max(zlib.crc32(n.encode("utf-8")) for n in picked) == crc[39]
    rng = np.random.default_rng(3)
    shuffled = list(rng.permutation(names))
    assert {shuffled[i] for i in prior_sample(shuffled, 40)} == picked
    more = sorted(set(shuffled[:250]) | picked)  # a shard holding the sample and others
    assert {more[i] for i in prior_sample(more, 40)} == picked
    np.testing.assert_array_equal(prior_sample(names[:30], 40), np.arange(30))


def test_prior_on_the_sample_is_shard_invariant(monkeypatch: pytest.MonkeyPatch) -> None:
    # with a sample smaller than the candidates: the fit's own prior is fit_majority_prior's
    # (only the sample's saturated fits), differs from the prior of all candidates, and a
    # subset of the proteins holding the sample has the same prior
    from pepmix.model import majority
    from pepmix.model.majority import fit_majority_prior, prior_sample

    table, design = _ragged_table(12)
    enc = encode(table, design)
    full = fit_majority_prior(enc, design)
    monkeypatch.setattr(majority, "PRIOR_SAMPLE", 30)
    prior = fit_majority_prior(enc, design)
    assert np.isfinite(prior[1]) and prior != full
    own = majority_exclusions(enc, design)
    given = majority_exclusions(enc, design, prior=prior)
    np.testing.assert_array_equal(given.features, own.features)
    np.testing.assert_array_equal(given.pvalues, own.pvalues)
    ref = reference_exclusions(enc, design)
    np.testing.assert_array_equal(ref.features, own.features)
    _, cand = majority._candidates(enc, design, 3)  # the proteins the rule tests
    names = [enc.proteins[k] for k in cand]
    picked = {names[i] for i in prior_sample(names)}
    assert len(picked) == 30 < len(names)
    keep = picked | {f"P{p:03d}" for p in range(0, 80, 3)}
    sub = encode(table.loc[table["protein"].isin(keep)], design)
    assert set(keep) > picked and fit_majority_prior(sub, design) == prior
