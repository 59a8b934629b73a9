"""Run normalisation: every method against hand-computed values, plus the protein_median method
on many changing proteins and the ``normalization_doubtful`` alert."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from pepmix.alerts import ALERT_ATTR
from pepmix.errors import ConfigError
from pepmix.normalization import (
    DEFAULT_LOCATION,
    DEFAULT_METHOD,
    LOCATIONS,
    METHODS,
    condition_pairs,
    normalization_options,
    normalize,
)
from pepmix.protein_ratios import (
    GroupMedian,
    ProteinRatios,
    kde_grid,
    kde_mode,
    kde_peaks,
    silverman_bandwidth,
)

RUNS3 = ["R1", "R2", "R3"]

# log2 values per (protein, feature) and run; NaN = missing. Feature ratios to their means:
# P1 (3 features): [-1, 1, 0] each; P2: d [0, 0, 0], e [0, .5, -.5] -> protein [0, .25, -.25];
# P3: f [0, -.5, .5], g [0, 0, 0] -> protein [0, -.25, .25].
TINY = {
    ("P1", "a"): [10.0, 12.0, 11.0],
    ("P1", "b"): [20.0, 22.0, 21.0],
    ("P1", "c"): [15.0, 17.0, 16.0],
    ("P2", "d"): [12.0, 12.0, 12.0],
    ("P2", "e"): [8.0, 8.5, 7.5],
    ("P3", "f"): [14.0, 13.5, 14.5],
    ("P3", "g"): [9.0, 9.0, 9.0],
}


def long_table(
    values: dict[tuple[str, str], list[float]],
    runs: list[str],
    batches: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Canonical long table (intensity = 2^value) from per-feature value lists."""
    rows = []
    for (protein, feature), per_run in values.items():
        for run, value in zip(runs, per_run, strict=True):
            if not np.isnan(value):
                batch = (batches or {}).get(run, "")
                rows.append((protein, feature, feature, run, 2.0**value, batch))
    table = pd.DataFrame(
        rows, columns=["protein", "feature", "peptide", "run", "intensity", "batch"]
    )
    for col in ("protein", "feature", "peptide", "run"):
        table[col] = table[col].astype("category")
    return table


def shifts(runs: pd.DataFrame) -> dict[str, float]:
    return dict(zip(runs["run"].astype(str), runs["shift"], strict=True))


def check_y(features: pd.DataFrame, runs: pd.DataFrame) -> None:
    """y = log2_raw - shift of the row's run."""
    expected = features["log2_raw"] - features["run"].astype(str).map(shifts(runs))
    np.testing.assert_allclose(features["y"], expected, atol=1e-12)


def test_default_is_protein_median_mode_everywhere(repo) -> None:  # type: ignore[no-untyped-def]
    import yaml

    schema = yaml.safe_load((repo / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["normalization"]["properties"]
    assert DEFAULT_METHOD == "protein_median"
    assert props["method"]["default"] == DEFAULT_METHOD
    assert normalization_options({})["method"] == DEFAULT_METHOD
    assert props["location"]["default"] == DEFAULT_LOCATION == "mode"
    assert normalization_options({})["location"] == DEFAULT_LOCATION


def test_schema_and_config_readme_follow_the_normalization_constants(repo) -> None:  # type: ignore[no-untyped-def]
    # the library reads pepmix.normalize's constants; the schema's choices and the defaults
    # documented in config/README.md must be the same values
    import yaml

    schema = yaml.safe_load((repo / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["normalization"]["properties"]
    assert tuple(props["method"]["enum"]) == METHODS
    assert tuple(props["location"]["enum"]) == LOCATIONS
    section = (repo / "config/README.md").read_text().split("## `normalization`")[1]
    section = section.split("\n## ")[0]
    assert f"| `method` | `{DEFAULT_METHOD}` |" in section
    assert f"| `location` | `{DEFAULT_LOCATION}` |" in section


def test_none_is_log2_only() -> None:
    features, runs = normalize(long_table(TINY, RUNS3), method="none")
    np.testing.assert_allclose(features["y"], features["log2_raw"])
    np.testing.assert_allclose(features["log2_raw"], np.log2(long_table(TINY, RUNS3)["intensity"]))
    assert (runs["shift"] == 0).all()


def test_median() -> None:
    # run medians of the 7 values: R1 12, R2 12 (8.5 9 12 12 13.5 17 22), R3 12, R4 = R3 + 2: 14
    values = {k: [*v, v[2] + 2.0] for k, v in TINY.items()}
    features, runs = normalize(long_table(values, [*RUNS3, "R4"]), method="median")
    # target = median(12, 12, 12, 14) = 12
    assert shifts(runs) == pytest.approx({"R1": 0, "R2": 0, "R3": 0, "R4": 2}, abs=1e-12)
    check_y(features, runs)
    assert runs["median_after"].tolist() == pytest.approx([12.0] * 4)


def test_reference() -> None:
    # reference P2: run medians of d, e = 10, 10.25, 9.75; target 10
    features, runs = normalize(
        long_table(TINY, RUNS3), method="reference", reference_proteins=["regex:^P2$"]
    )
    assert shifts(runs) == pytest.approx({"R1": 0.0, "R2": 0.25, "R3": -0.25}, abs=1e-12)
    check_y(features, runs)
    with pytest.raises(ConfigError, match="none of the reference proteins"):
        normalize(long_table(TINY, RUNS3), method="reference", reference_proteins=["P9"])


def test_median_ratio() -> None:
    # feature ratios per run: R1 [-1,-1,-1,0,0,0,0] -> 0; R2 [1,1,1,0,.5,-.5,0] -> .5;
    # R3 [0,0,0,0,-.5,.5,0] -> 0; complete data: shift = m - mean(m)
    features, runs = normalize(long_table(TINY, RUNS3), method="median_ratio")
    expected = {"R1": -1 / 6, "R2": 1 / 3, "R3": -1 / 6}
    assert shifts(runs) == pytest.approx(expected, abs=1e-12)
    check_y(features, runs)


@pytest.mark.parametrize("location", ["median", "mode"])
def test_protein_median(location: str, caplog: pytest.LogCaptureFixture) -> None:
    # protein ratios: R1 [-1, 0, 0] -> 0; R2 [1, .25, -.25] -> .25; R3 [0, -.25, .25] -> 0:
    # P1 counts once although it has 3 of the 7 features (median_ratio gives R2 .5).
    # With 3 proteins the mode falls back to the median (fewer than 100 proteins).
    with caplog.at_level(logging.INFO, logger="pepmix.normalization"):
        features, runs = normalize(long_table(TINY, RUNS3), location=location)
    expected = {"R1": -1 / 12, "R2": 1 / 6, "R3": -1 / 12}
    assert shifts(runs) == pytest.approx(expected, abs=1e-12)
    check_y(features, runs)
    assert ("no clear mode" in caplog.text) == (location == "mode")
    # diagnostics: protein ratios of the normalised values are the raw ones minus the shift,
    # medians (1/12 in every run) minus their mean over runs
    assert runs["n_proteins"].tolist() == [3, 3, 3]
    assert runs["ratio_median"].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert runs["ratio_mode"].isna().all()  # too few proteins for a mode
    assert not runs["doubtful"].any()


def test_protein_median_missing_values_iterates() -> None:
    # with a missing value the feature reference depends on the shifts: the three iterations
    # bring every run's step to the same value (here exactly, as the median picks a feature
    # whose reference has converged)
    values = dict(TINY)
    values[("P1", "a")] = [10.0, 12.0, np.nan]
    features, runs = normalize(long_table(values, RUNS3))
    assert runs["shift"].sum() == pytest.approx(0.0, abs=1e-12)
    check_y(features, runs)
    after = runs["ratio_median"].to_numpy()
    assert np.ptp(after) < 1e-9


def test_protein_median_reference_proteins() -> None:
    # location over P2 only: [0, .25, -.25], already centred
    features, runs = normalize(long_table(TINY, RUNS3), reference_proteins=["P2"])
    assert shifts(runs) == pytest.approx({"R1": 0.0, "R2": 0.25, "R3": -0.25}, abs=1e-12)
    check_y(features, runs)
    with pytest.raises(ConfigError, match="none of the reference proteins"):
        normalize(long_table(TINY, RUNS3), reference_proteins=["P9"])


def test_within_batch() -> None:
    # runs R1..R3 as in TINY plus R4 = R3 + 2 (batch b2 = R3, R4). Ratios to the 4-run means:
    # P1 [-1.5, .5, -.5, 1.5]; P2 = mean(d [-.5, -.5, -.5, 1.5], e [-.375, .125, -.875, 1.125])
    # = [-.4375, -.1875, -.6875, 1.3125]; P3 = mean(f [-.625, -1.125, -.125, 1.875],
    # g [-.5, -.5, -.5, 1.5]) = [-.5625, -.8125, -.3125, 1.6875]. Run medians over proteins
    # m = (-.5625, -.1875, -.5, 1.5), centred within each batch: b1 (R1, R2) -> -+.1875,
    # b2 (R3, R4) -> -+1 (complete data: the next iterations change nothing)
    values = {k: [*v, v[2] + 2.0] for k, v in TINY.items()}
    runs4 = [*RUNS3, "R4"]
    batches = {"R1": "b1", "R2": "b1", "R3": "b2", "R4": "b2"}
    table = long_table(values, runs4, batches)
    features, runs = normalize(table, within_batch=True)
    expected = {"R1": -0.1875, "R2": 0.1875, "R3": -1.0, "R4": 1.0}
    assert shifts(runs) == pytest.approx(expected, abs=1e-12)
    check_y(features, runs)
    assert runs["batch"].tolist() == ["b1", "b1", "b2", "b2"]
    # median: run medians 12, 12, 12, 14; targets per batch 12 and 13
    _, runs = normalize(table, method="median", within_batch=True)
    assert shifts(runs) == pytest.approx({"R1": 0, "R2": 0, "R3": -1, "R4": 1}, abs=1e-12)
    # median_ratio: medians of the 7 feature ratios above: R1 -.625, R2 .125, R3 -.5, R4 1.5,
    # centred per batch
    _, runs = normalize(table, method="median_ratio", within_batch=True)
    expected = {"R1": -0.375, "R2": 0.375, "R3": -1, "R4": 1}
    assert shifts(runs) == pytest.approx(expected, abs=1e-12)


def test_quantile() -> None:
    # R1 [1, 2, 3], R2 [2, 6] (one missing): mean quantile function on the 3-point grid
    # (0, .5, 1) is mean([1, 2, 3], [2, 4, 6]) = [1.5, 3, 4.5]; R2's two values get 1.5 and 4.5
    values = {("P1", "a"): [1.0, 2.0], ("P1", "b"): [2.0, np.nan], ("P2", "c"): [3.0, 6.0]}
    features, runs = normalize(long_table(values, ["R1", "R2"]), method="quantile")
    keys = zip(features["run"].astype(str), features["feature"].astype(str), strict=True)
    got = dict(zip(keys, features["y"], strict=True))
    expected = {
        ("R1", "a"): 1.5,
        ("R1", "b"): 3.0,
        ("R1", "c"): 4.5,
        ("R2", "a"): 1.5,
        ("R2", "c"): 4.5,
    }
    assert got == pytest.approx(expected, abs=1e-12)
    assert runs["shift"].isna().all()


def test_unknown_options() -> None:
    with pytest.raises(ConfigError, match=r"normalization\.location"):
        normalize(long_table(TINY, RUNS3), location="mean")
    with pytest.raises(ConfigError, match=r"normalization\.method"):
        normalize(long_table(TINY, RUNS3), method="mean")


# --- group medians and the KDE mode -------------------------------------------------------


def test_group_median_matches_pandas() -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 500, 4000)
    values = rng.normal(size=4000)
    got = GroupMedian(codes, 502)(values)
    expected = pd.Series(values).groupby(codes).median()
    np.testing.assert_array_equal(got[expected.index], expected.to_numpy())
    assert np.isnan(got[500:]).all()


def test_kde_mode_matches_exact_kde() -> None:
    # dense cluster at 0 (60 %) and a broad group above: the exact Gaussian KDE evaluated on a
    # fine grid and the binned estimate agree within one grid step of the binned grid (h / 10)
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 0.1, 600), rng.uniform(0.3, 2.0, 400)])
    h = silverman_bandwidth(x)
    fine = np.linspace(-0.5, 2.5, 30001)
    exact = np.exp(-0.5 * ((fine[:, None] - x[None, :]) / h) ** 2).sum(axis=1)
    summary = kde_mode(x)
    assert not summary.fallback
    assert abs(summary.mode - fine[np.argmax(exact)]) <= h / 10
    grid, density = kde_grid(x, h)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-3)


def test_kde_mode_symmetric_and_fallbacks() -> None:
    # a symmetric sample has its KDE mode at the centre of symmetry (up to the grid step)
    rng = np.random.default_rng(6)
    half = rng.normal(0, 1, 500)
    x = np.concatenate([3 + half, 3 - half])
    assert kde_mode(x).mode == pytest.approx(3.0, abs=silverman_bandwidth(x) / 10)
    assert not kde_mode(x).bimodal
    # two equal, well-separated clusters: no clear mode -> median, flagged bimodal
    two = np.concatenate([rng.normal(0, 0.1, 300), rng.normal(2, 0.1, 300)])
    summary = kde_mode(two)
    assert summary.fallback and summary.bimodal
    assert summary.mode == pytest.approx(np.median(two))
    # a second cluster of 30 %: bimodal, mode in the larger cluster
    skew = np.concatenate([rng.normal(0, 0.1, 700), rng.normal(2, 0.1, 300)])
    summary = kde_mode(skew)
    assert summary.bimodal and not summary.fallback and abs(summary.mode) < 0.05
    # fewer than 100 values
    assert kde_mode(rng.normal(size=50)).fallback


# --- many changing proteins -------------------------------------------------------------

N_PROTEINS, N_RUNS = 1000, 8
TRUE_SHIFT_SD, RATIO_SD, RESID_SD = 0.3, 0.1, 0.2


def simulate(changing: float, seed: int, effect: tuple[float, float] = (0.5, 2.0)) -> tuple:
    """Technical-replicate-like data: a share of proteins up in B (runs alternate A, B).

    y = 22 + u_p + u_f + s_r + delta_p [B] + v_pr + e_fr, u_p ~ N(0, 2), u_f ~ N(0, 1),
    s_r ~ N(0, 0.3), v_pr ~ N(0, 0.1), e_fr ~ N(0, 0.2), delta_p ~ U(effect) for changing
    proteins, which have twice as many features (1 + Poisson(8) vs 1 + Poisson(4)), 20 % of
    cells missing at random.
    """
    rng = np.random.default_rng(seed)
    changed = rng.random(N_PROTEINS) < changing
    n_feat = 1 + rng.poisson(np.where(changed, 8.0, 4.0))
    delta = np.where(changed, rng.uniform(*effect, N_PROTEINS), 0.0)
    true_shift = rng.normal(0, TRUE_SHIFT_SD, N_RUNS)
    in_b = np.arange(N_RUNS) % 2 == 1
    prot = np.repeat(np.arange(N_PROTEINS), n_feat)
    level = 22 + rng.normal(0, 2, N_PROTEINS)[prot] + rng.normal(0, 1, prot.size)
    y = (
        level[:, None]
        + true_shift
        + delta[prot][:, None] * in_b
        + rng.normal(0, RATIO_SD, (N_PROTEINS, N_RUNS))[prot]
        + rng.normal(0, RESID_SD, (prot.size, N_RUNS))
    )
    rows, cols = np.nonzero(rng.random(y.shape) >= 0.2)
    table = pd.DataFrame(
        {
            "protein": pd.Categorical(prot[rows]).rename_categories(lambda p: f"P{p:04d}"),
            "feature": pd.Categorical(rows).rename_categories(lambda f: f"F{f:05d}"),
            "run": pd.Categorical(cols).rename_categories(lambda r: f"R{r}"),
            "intensity": 2.0 ** y[rows, cols],
            "batch": "",
        }
    )
    table["peptide"] = table["feature"]
    return table, changed, true_shift - true_shift.mean()


def unchanged_bias(features: pd.DataFrame, changed: np.ndarray) -> float:
    """Median over unchanged proteins of their log2 FC B - A (median over features)."""
    run = features["run"].astype(str).str[1:].astype(int)
    cond = np.where(run % 2 == 1, "B", "A")
    means = features.assign(cond=cond).groupby(["protein", "feature", "cond"], observed=True)
    wide = means["y"].mean().unstack("cond").dropna()
    fc = (wide["B"] - wide["A"]).groupby(level="protein", observed=True).median()
    return float(fc[~changed[fc.index.str[1:].astype(int)]].median())


# Noise of the bias estimate: a protein's log2 FC has SD about
# sqrt(2 * (RATIO_SD^2 + RESID_SD^2 / 5) / 4) ~ 0.1 (4 runs per condition, ~5 features), so the
# median over ~400-800 unchanged proteins has SE ~1.25 * 0.1 / 20 ~ 0.006; run-shift noise
# adds ~0.01. BIAS_SE = 0.015 covers both.
BIAS_SE = 0.015


def test_protein_median_recovers_shifts_with_60_percent_changing() -> None:
    table, changed, true_shift = simulate(0.6, seed=11)
    feats_mr, runs_mr = normalize(table, method="median_ratio")
    feats_mode, runs_mode = normalize(table, location="mode")
    bias_mr = unchanged_bias(feats_mr, changed)
    bias_mode = unchanged_bias(feats_mode, changed)
    # median_ratio is pulled towards the changing majority: in B runs it subtracts part of
    # their increase, so unchanged proteins look down-regulated
    assert bias_mr < -0.3
    # the mode finds the unchanged cluster; left: the pull of the changing proteins' flank on
    # the KDE peak, below one bandwidth (~0.1 here), plus noise
    assert abs(bias_mode) < 0.1
    assert abs(bias_mr) - abs(bias_mode) > 0.2 + 3 * BIAS_SE
    # the run shifts themselves: true (centred) loading shifts within one bandwidth
    err = runs_mode["shift"].to_numpy() - true_shift[runs_mode["run"].str[1:].astype(int)]
    assert np.abs(err).max() < 0.1
    err_mr = runs_mr["shift"].to_numpy() - true_shift[runs_mr["run"].str[1:].astype(int)]
    assert np.abs(err_mr).max() > 0.3


def test_protein_median_beats_median_ratio_when_changing_proteins_have_more_peptides() -> None:
    # 20 % of the proteins but ~1/3 of the features change: counting proteins once halves the
    # bias (medians of mixtures of ~20 % vs ~33 % shifted values)
    table, changed, _ = simulate(0.2, seed=12)
    bias_mr = unchanged_bias(normalize(table, method="median_ratio")[0], changed)
    bias_pm = unchanged_bias(normalize(table)[0], changed)
    assert bias_mr < bias_pm - 3 * BIAS_SE < 0
    # without changing proteins both are unbiased
    table, changed, _ = simulate(0.0, seed=13)
    for method in ("median_ratio", "protein_median"):
        assert abs(unchanged_bias(normalize(table, method=method)[0], changed)) < 3 * BIAS_SE


def alert_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, ALERT_ATTR, None) is not None]


def test_alert_on_bimodal_not_on_clean(caplog: pytest.LogCaptureFixture) -> None:
    # clean: no changing protein -> no alert, no doubtful run
    table, _, _ = simulate(0.0, seed=21)
    with caplog.at_level(logging.INFO, logger="pepmix.normalization"):
        _, runs = normalize(table)
    assert alert_records(caplog) == []
    assert not runs["doubtful"].any() and not runs["bimodal"].any()
    assert set(runs.columns) >= {
        "run",
        "batch",
        "shift",
        "median_before",
        "median_after",
        "n_proteins",
        "ratio_median",
        "ratio_mode",
        "ratio_mode_se",
        "ratio_spread",
        "bimodal",
        "doubtful",
    }
    # 45 % of proteins up by 3 log2 together: two clusters of protein ratios in every run
    caplog.clear()
    table, _, _ = simulate(0.45, seed=22, effect=(3.0, 3.0))
    with caplog.at_level(logging.INFO, logger="pepmix.normalization"):
        _, runs = normalize(table)
    records = alert_records(caplog)
    assert len(records) == 1
    assert getattr(records[0], ALERT_ATTR) == "normalization_doubtful"
    message = records[0].getMessage()
    assert "normalization.method: reference" in message and "method: none" in message
    assert runs["bimodal"].all() and runs["doubtful"].all()
    # no alert for an explicit choice of no normalisation
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pepmix.normalization"):
        _, runs = normalize(table, method="none")
    assert alert_records(caplog) == [] and runs["bimodal"].all()


def test_alert_on_a_run_with_a_large_shift(caplog: pytest.LogCaptureFixture) -> None:
    # one run loaded 8 times more: its shift (about 3 * 7/8 after centring) exceeds
    # max(3 spreads, 1 log2); the other runs move by about -3/8 and stay below
    table, _, _ = simulate(0.0, seed=23)
    table.loc[table["run"] == "R3", "intensity"] *= 8.0
    with caplog.at_level(logging.INFO, logger="pepmix.normalization"):
        _, runs = normalize(table)
    assert runs.loc[runs["doubtful"], "run"].tolist() == ["R3"]
    assert not runs["bimodal"].any()
    (record,) = alert_records(caplog)
    assert "in 1 of 8 runs (R3)" in record.getMessage()


# --- one-sided fold changes between conditions -------------------------------------------


def simulate_conditions(
    changing: float, direction: str, seed: int, conditions: tuple[str, ...] = ("A", "B")
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Biological replicates, 4 runs per condition, 800 proteins (``benchmarks/scenarios.py``
    in small): y = 22 + u_p + u_f + t_r + delta_p [last condition] + v_ps + e_fr with
    u_p ~ N(0, 2), u_f ~ N(0, 1), t_r ~ N(0, 0.2), v_ps ~ N(0, U(0.2, 0.5)) per protein,
    e_fr ~ N(0, U(0.2, 0.3)), 4 features per protein, 20 % missing at random; a share
    ``changing`` of the proteins changes by U(0.5, 2) log2 in the last condition, upwards
    (``direction="up"``) or with a random sign (``"both"``).
    """
    rng = np.random.default_rng(seed)
    n_prot, n_feat = 800, 4
    runs = [f"{c}{i}" for c in conditions for i in range(1, 5)]
    in_last = np.array([r.startswith(conditions[-1]) for r in runs])
    sign = np.ones(n_prot) if direction == "up" else rng.choice([-1.0, 1.0], n_prot)
    changed = rng.random(n_prot) < changing
    delta = np.where(changed, sign * rng.uniform(0.5, 2.0, n_prot), 0.0)
    sample = rng.normal(0, 1, (n_prot, len(runs))) * rng.uniform(0.2, 0.5, n_prot)[:, None]
    protein_run = 22 + rng.normal(0, 2, n_prot)[:, None] + sample + delta[:, None] * in_last
    prot = np.repeat(np.arange(n_prot), n_feat)
    y = protein_run[prot] + rng.normal(0, 1, prot.size)[:, None] + rng.normal(0, 0.2, len(runs))
    y += rng.normal(0, 1, y.shape) * rng.uniform(0.2, 0.3, n_prot)[prot, None]
    rows, cols = np.nonzero(rng.random(y.shape) >= 0.2)
    table = pd.DataFrame(
        {
            "protein": [f"P{p:04d}" for p in prot[rows]],
            "feature": [f"F{f:05d}" for f in rows],
            "run": np.array(runs)[cols],
            "intensity": np.exp2(y[rows, cols]),
            "batch": "",
        }
    )
    table["peptide"] = table["feature"]
    return table, {r: r[0] for r in runs}


def test_one_sided_alert_when_60_percent_go_up(caplog: pytest.LogCaptureFixture) -> None:
    # 60 % up by U(0.5, 2): the fold changes B - A are a peak of unchanged proteins with 60 %
    # of the proteins 0.5-2 log2 to its right, median about 0.5 log2 right of the peak
    # (threshold max(0.1, 3 SE), SE about 0.1 at 800 proteins); fired at 19 of seeds 1-20
    table, conditions = simulate_conditions(0.6, "up", seed=31)
    with caplog.at_level(logging.INFO, logger="pepmix.normalization"):
        _, runs = normalize(table, location="mode", run_condition=conditions)
    (record,) = alert_records(caplog)
    assert getattr(record, ALERT_ATTR) == "normalization_doubtful"
    message = record.getMessage()
    assert "B vs A (all runs of both conditions" in message
    assert "normalization.method: reference" in message
    assert runs["one_sided"].all()
    # without conditions the check is off (and the per-run rules do not see it)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pepmix.normalization"):
        _, runs = normalize(table, location="mode")
    assert not runs["one_sided"].any() and alert_records(caplog) == []


def test_no_one_sided_alert_when_40_percent_change_both_ways(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # symmetric changes: the median of the fold changes stays at their peak (within its noise);
    # no alert at any of seeds 1-20
    table, conditions = simulate_conditions(0.4, "both", seed=32)
    for location in ("median", "mode"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pepmix.normalization"):
            _, runs = normalize(table, location=location, run_condition=conditions)
        assert alert_records(caplog) == []
        assert not runs["one_sided"].any() and not runs["doubtful"].any()


def test_condition_pairs_name_the_changed_condition() -> None:
    # three conditions, 50 % of proteins up in C only: the pairs with C are one-sided, B vs A
    # is not; the fold changes point upwards (most proteins above the peak)
    table, conditions = simulate_conditions(0.5, "up", seed=33, conditions=("A", "B", "C"))
    features, runs = normalize(table, location="mode", run_condition=conditions)
    names = pd.Index(runs["run"].astype(str))
    layout = ProteinRatios(features, names)
    rho = layout.ratios(features["y"].to_numpy(dtype=np.float64), np.zeros(layout.n_runs))
    pairs = condition_pairs(layout, rho, names, conditions).set_index(
        ["condition_1", "condition_2"]
    )
    assert pairs["one_sided"].to_dict() == {("A", "B"): False, ("A", "C"): True, ("B", "C"): True}
    assert (pairs.loc[pairs["one_sided"], "share_above"] > 0.6).all()
    assert runs.groupby(runs["run"].str[0])["one_sided"].all().to_dict() == {
        "A": True,
        "B": True,
        "C": True,
    }
    assert condition_pairs(layout, rho, names, None).empty


def test_kde_peaks() -> None:
    rng = np.random.default_rng(34)
    # one normal cluster: one candidate, at its centre within a few SEs
    ((mode, se),) = kde_peaks(rng.normal(0, 1, 2000))
    assert abs(mode) < 4 * se
    # two equal, well-separated clusters: both are candidates (kde_mode falls back there)
    two = np.concatenate([rng.normal(0, 0.1, 400), rng.normal(2, 0.1, 400)])
    assert sorted(round(m) for m, _ in kde_peaks(two)) == [0, 2]
    assert kde_peaks(rng.normal(size=50)) == []
