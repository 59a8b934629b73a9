"""Hard scenarios for the ground-truth benchmark and calibration tests (issue 10).

Model (log2 scale), for feature ``f`` of protein ``p`` in run ``r`` of biological sample
``s(r)`` in condition ``c(r)``::

    y = mu_p + u_f + delta_p [c(r) = B] + v_ps + w_pr + o_f [c(r) = c_f] + t_r + e_fr
    mu_p ~ N(22, 2)              protein abundance
    u_f ~ N(0, 1)                feature (precursor) effect
    v_ps ~ N(0, sd_sample_p)     biological sample effect; sd_sample_p ~ U(0.2, 0.5), or for
                                 ``variance="skewed"``: sd_sample_p^2 ~ Gamma(0.3, mean 0.35^2)
                                 (a fifth of the proteins below 1% of the mean variance)
    w_pr ~ N(0, sd_run_p)        run effect (technical designs only), sd_run_p ~ U(0.1, 0.3)
    o_f                          outlier feature shift, +-U(2, 5) in all runs of one condition
                                 c_f, for a fraction ``outlier_fraction`` of the features
    t_r ~ N(0, 0.2)              run loading shift (what normalisation must remove)
    e_fr ~ N(0, sd_resid_p g_f)  residual, sd_resid_p ~ U(0.2, 0.3); g_f = 1, or for
                                 ``feature_sdlog > 0`` (heteroscedastic features) g_f ~
                                 lognormal(0, feature_sdlog) (``hetero_features``: 0.6, so
                                 about 1 feature in 8 is 2x noisier than the median, 1 in 30 3x)
    delta_p                      exactly round(frac_changing * n) proteins change by U(0.5, 2),
                                 upwards in B (``direction="up"``) or with random sign

Features per protein as :func:`simulate.feature_counts` (``1 + NegBin``, mean 6, at most 50).
A cell is missing with probability ``mcar + (1 - mcar) logistic((c - y) / missing_scale)``
(intensity-dependent), ``c`` solved for the expected fraction ``missing``. Technical designs
(``runs_per_sample > 1``) have no biological sample variance: the two samples differ only by
the true changes, so a test that uses runs as replicates is judged against what it can claim
(a difference between these two samples).

Library use::

    from scenarios import SCENARIOS, simulate_scenario, write_inputs
    sim = simulate_scenario("up60", n_proteins=2000, seed=1)   # .table (log2), .sheet, .truth
    data, samples = write_inputs(sim, "out/up60")  # generic_long parquet (linear) + samples.tsv
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from simulate import _missing_offset, _strings, feature_counts, protein_names

RUN_SHIFT_SD = 0.2
SKEWED_SHAPE = 0.3  # gamma shape of the skewed sample variances
SKEWED_MEAN_SD = 0.35  # sqrt of their mean


@dataclass(frozen=True)
class Scenario:
    """Parameters of one scenario (see the module docstring for the model).

    Attributes
    ----------
    name, description : str
    frac_changing : float, default 0.2
        Fraction of proteins that change between ``A`` and ``B``.
    direction : {"both", "up"}, default "both"
    n_samples : int, default 4
        Biological samples per condition.
    runs_per_sample : int, default 1
        MS runs per biological sample (> 1: technical-replicate design).
    variance : {"uniform", "skewed"}, default "uniform"
        Distribution of the per-protein sample variance.
    outlier_fraction : float, default 0.0
    feature_sdlog : float, default 0.0
        SD of the log of the per-feature residual SD factor ``g_f`` (0: homoscedastic
        features). Drawn after every other random number, so scenarios with 0 keep the streams
        of the scenarios that existed before it.
    missing, mcar, missing_scale : float, default 0.3, 0.05, 1.0
    """

    name: str
    description: str
    frac_changing: float = 0.2
    direction: str = "both"
    n_samples: int = 4
    runs_per_sample: int = 1
    variance: str = "uniform"
    outlier_fraction: float = 0.0
    feature_sdlog: float = 0.0
    missing: float = 0.3
    mcar: float = 0.05
    missing_scale: float = 1.0


def _scenarios() -> dict[str, Scenario]:
    items = [Scenario("no_change", "no protein changes (4 vs 4 samples)", frac_changing=0.0)]
    for pct in (20, 40, 60):
        items.append(Scenario(f"up{pct}", f"{pct}% change, all up in B", pct / 100, "up"))
        items.append(Scenario(f"both{pct}", f"{pct}% change, either direction", pct / 100))
    items += [
        Scenario(
            "technical",
            "1 sample x 4 runs per condition, 20% change",
            n_samples=1,
            runs_per_sample=4,
        ),
        Scenario(
            "outliers",
            "3% of features shifted 2-5 log2 in all runs of one condition, 20% change",
            outlier_fraction=0.03,
        ),
        Scenario(
            "hetero_features",
            "per-feature residual SD = protein SD x lognormal(0, 0.6); 20% change",
            feature_sdlog=0.6,
        ),
        Scenario(
            "skewed_variance",
            "sample variances Gamma(0.3): many near zero, long tail; 20% change",
            variance="skewed",
        ),
        Scenario(
            "mnar",
            "50% missing, steeply intensity-dependent; 20% change",
            missing=0.5,
            mcar=0.02,
            missing_scale=0.5,
        ),
    ]
    return {s.name: s for s in items}


SCENARIOS: dict[str, Scenario] = _scenarios()


@dataclass
class ScenarioData:
    """A simulated scenario.

    Attributes
    ----------
    scenario : Scenario
    table : pandas.DataFrame
        Observed cells: ``protein, feature, run, y`` (log2, run shifts included).
    sheet : pandas.DataFrame
        ``run, condition, bioreplicate`` (condition ``A`` first: the reference).
    truth : pandas.DataFrame
        Per protein: ``protein, log2fc`` (true ``B - A``), ``changing, n_features, sd_sample,
        sd_resid, outlier_features`` (and ``max_feature_noise`` with heteroscedastic features).
    feature_noise : pandas.Series, optional
        Heteroscedastic features only: the residual SD factor ``g_f`` per feature name.
    """

    scenario: Scenario
    table: pd.DataFrame
    sheet: pd.DataFrame
    truth: pd.DataFrame
    feature_noise: pd.Series | None = None


def design_sheet(n_samples: int, runs_per_sample: int) -> pd.DataFrame:
    """Sample sheet: conditions ``A`` then ``B``, samples ``A1..``, runs ``A1_1..``."""
    rows = [
        (f"{c}{s}_{r}", c, f"{c}{s}")
        for c in ("A", "B")
        for s in range(1, n_samples + 1)
        for r in range(1, runs_per_sample + 1)
    ]
    return pd.DataFrame(rows, columns=["run", "condition", "bioreplicate"])


def _protein_parameters(rng: np.random.Generator, sc: Scenario, n: int) -> dict[str, np.ndarray]:
    """Per-protein abundance, SDs and true change."""
    mu = rng.normal(22.0, 2.0, n)
    if sc.runs_per_sample > 1:
        sd_sample = np.zeros(n)
    elif sc.variance == "skewed":
        scale = SKEWED_MEAN_SD**2 / SKEWED_SHAPE
        sd_sample = np.sqrt(rng.gamma(SKEWED_SHAPE, scale, n))
    elif sc.variance == "uniform":
        sd_sample = rng.uniform(0.2, 0.5, n)
    else:
        raise ValueError(f"unknown variance distribution {sc.variance!r}")
    sd_run = rng.uniform(0.1, 0.3, n) if sc.runs_per_sample > 1 else np.zeros(n)
    sd_resid = rng.uniform(0.2, 0.3, n)
    changing = np.zeros(n, dtype=bool)
    changing[rng.choice(n, round(sc.frac_changing * n), replace=False)] = True
    if sc.direction not in ("up", "both"):
        raise ValueError(f"unknown direction {sc.direction!r}")
    sign = np.ones(n) if sc.direction == "up" else rng.choice([-1.0, 1.0], n)
    delta = np.where(changing, sign * rng.uniform(0.5, 2.0, n), 0.0)
    return {
        "mu": mu,
        "sd_sample": sd_sample,
        "sd_run": sd_run,
        "sd_resid": sd_resid,
        "changing": changing,
        "delta": delta,
    }


def simulate_scenario(
    scenario: str | Scenario, n_proteins: int = 2000, seed: int = 1, **overrides: object
) -> ScenarioData:
    """Simulate a scenario (a name of :data:`SCENARIOS` or a :class:`Scenario`).

    Parameters
    ----------
    scenario : str or Scenario
    n_proteins : int, default 2000
    seed : int, default 1
        ``numpy.random.default_rng(seed)``.
    **overrides
        Fields of :class:`Scenario` to replace, e.g. ``frac_changing=0.0``.
    """
    sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    sc = replace(sc, **overrides)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    counts = feature_counts(rng, n_proteins)
    fprot = np.repeat(np.arange(n_proteins), counts)
    sheet = design_sheet(sc.n_samples, sc.runs_per_sample)
    is_b = (sheet["condition"] == "B").to_numpy()
    _, sample_code = np.unique(sheet["bioreplicate"].to_numpy(), return_inverse=True)
    par = _protein_parameters(rng, sc, n_proteins)
    n_runs, n_feat = len(sheet), int(counts.sum())
    v = rng.normal(0.0, 1.0, (n_proteins, sample_code.max() + 1)) * par["sd_sample"][:, None]
    w = rng.normal(0.0, 1.0, (n_proteins, n_runs)) * par["sd_run"][:, None]
    protein_run = v[:, sample_code] + w + par["delta"][:, None] * is_b
    y = protein_run[fprot] + (par["mu"][fprot] + rng.normal(0.0, 1.0, n_feat))[:, None]
    resid = rng.normal(0.0, 1.0, (n_feat, n_runs)) * par["sd_resid"][fprot, None]
    y += resid
    outlier = rng.random(n_feat) < sc.outlier_fraction
    shift = rng.choice([-1.0, 1.0], n_feat) * rng.uniform(2.0, 5.0, n_feat)
    in_cond = np.where((rng.random(n_feat) < 0.5)[:, None], is_b[None, :], ~is_b[None, :])
    y += np.where(outlier[:, None] & in_cond, shift[:, None], 0.0)
    y += rng.normal(0.0, RUN_SHIFT_SD, n_runs)[None, :]
    noise_factor = np.ones(n_feat)
    if sc.feature_sdlog > 0:  # drawn last: other scenarios keep their random streams
        noise_factor = np.exp(rng.normal(0.0, sc.feature_sdlog, n_feat))
        y += resid * (noise_factor - 1.0)[:, None]
    c = _missing_offset(y, sc.missing, sc.mcar, sc.missing_scale)
    p_miss = sc.mcar + (1.0 - sc.mcar) / (1.0 + np.exp((y - c) / sc.missing_scale))
    fi, ri = np.nonzero(rng.random(y.shape) >= p_miss)
    names = protein_names(n_proteins)
    local = np.arange(n_feat) - np.repeat(np.cumsum(counts) - counts, counts)
    features = np.array([f"{names[p]}_F{k:02d}" for p, k in zip(fprot, local, strict=True)])
    table = pa.table(
        {
            "protein": _strings(fprot[fi], names),
            "feature": _strings(fi, features),
            "run": _strings(ri, sheet["run"].to_numpy()),
            "y": pa.array(y[fi, ri]),
        }
    ).to_pandas()
    truth = pd.DataFrame(
        {
            "protein": names.astype(str),
            "log2fc": par["delta"],
            "changing": par["changing"],
            "n_features": counts,
            "sd_sample": par["sd_sample"],
            "sd_resid": par["sd_resid"],
            "outlier_features": np.bincount(fprot[outlier], minlength=n_proteins),
        }
    )
    feature_noise = None
    if sc.feature_sdlog > 0:  # per-feature truth only where it varies
        truth["max_feature_noise"] = np.maximum.reduceat(noise_factor, np.cumsum(counts) - counts)
        feature_noise = pd.Series(noise_factor, index=features.astype(str))
    return ScenarioData(sc, table, sheet, truth, feature_noise)


def write_inputs(sim: ScenarioData, out: str | Path) -> tuple[Path, Path]:
    """Write ``long.parquet`` (generic_long, linear intensities) and ``samples.tsv``.

    Returns the two paths. The long table has ``protein, peptide, run, intensity`` with
    ``peptide`` = the simulated feature (no charge column: one feature per peptide).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data, samples = out / "long.parquet", out / "samples.tsv"
    long = pa.table(
        {
            "protein": pa.array(sim.table["protein"].astype(str), pa.string()),
            "peptide": pa.array(sim.table["feature"].astype(str), pa.string()),
            "run": pa.array(sim.table["run"].astype(str), pa.string()),
            "intensity": pa.array(np.exp2(sim.table["y"].to_numpy(dtype=np.float64))),
        }
    )
    pq.write_table(long, data)
    sim.sheet.to_csv(samples, sep="\t", index=False)
    return data, samples
