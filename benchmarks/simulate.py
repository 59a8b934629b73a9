"""Proteomics-like synthetic data for benchmarking pepmix (seeded, importable and a CLI).

Model (log2 scale), for feature ``f`` of protein ``p`` in run ``r`` of condition ``c(r)``::

    y = mu_p + u_f + delta_p * [c(r) == B] + v_pr + e_fr
    mu_p ~ N(22, 2)                      protein abundance
    u_f ~ N(0, sd_feature = 1)           feature (precursor) effect
    v_pr ~ N(0, sd_sample_p)             sample effect, sd_sample_p ~ U(0.2, 0.5) per protein
    e_fr ~ N(0, sd_resid_p)              residual, sd_resid_p ~ U(0.2, 0.3) per protein
    delta_p = +-U(0.5, 2) for a fraction of changing proteins (default 10%), else 0

Features per protein: ``1 + NegBin(r=1.5, mean=mean_features - 1)``, capped at ``max_features``
(with the defaults 91% have 1-12 features, mean 6, about 1% more than 20, up to 50); with
``n_features`` given the counts are adjusted to that total exactly. Runs alternate between the
conditions ``A`` and ``B`` (half each; the first run is ``A``, the reference); every run is its own
biological sample. A cell is missing with probability
``mcar + (1 - mcar) * logistic((c - y) / scale)`` (more missing at low intensity), where ``c`` is
solved so that the expected missing fraction is ``missing`` (default 0.3).

Library use::

    from simulate import simulate
    table, sheet = simulate(n_proteins=2000, n_runs=12, seed=1)   # protein, feature, run, y

CLI (the DIA-sized cohort of issue 7; about 8.4 M report rows, a minute or two)::

    python benchmarks/simulate.py cohort --out DIR [--proteins 10000 --precursors 60000
                                                   --runs 200 --seed 1]

writes into ``DIR``: ``report.parquet`` (DIA-NN 2.x style main report), ``long.parquet``
(generic long table: ``protein, peptide, charge, run, intensity`` on the linear scale),
``samples.tsv``, ``config.yaml`` (format ``diann``, contrast ``B - A``),
``config_generic_long.yaml`` (the same for ``long.parquet``) and ``truth.tsv`` (true log2 fold
change and variance parameters per protein).

    python benchmarks/simulate.py table --out DIR [--proteins 2000 --runs 12 --seed 1]

writes only the long log2 table (``table.parquet``), ``samples.tsv`` and ``truth.tsv``.

    python benchmarks/simulate.py scenario NAME --out DIR [--proteins 2000 --seed 1]

writes a hard scenario of ``scenarios.py`` (issue 10: ``no_change``, ``up20`` ... ``both60``,
``technical``, ``outliers``, ``skewed_variance``, ``mnar``): ``long.parquet`` (generic long
table, linear intensities), ``samples.tsv``, ``truth.tsv`` and ``config.yaml`` (the workflow's
defaults, contrast ``B - A``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FEATURE_DISPERSION = 1.5  # negative-binomial shape of the features-per-protein distribution

# monoisotopic residue masses (Da)
_RESIDUE_MASS = {
    "A": 71.03711,
    "R": 156.10111,
    "N": 114.04293,
    "D": 115.02694,
    "C": 103.00919,
    "E": 129.04259,
    "Q": 128.05858,
    "G": 57.02146,
    "H": 137.05891,
    "I": 113.08406,
    "L": 113.08406,
    "K": 128.09496,
    "M": 131.04049,
    "F": 147.06841,
    "P": 97.05276,
    "S": 87.03203,
    "T": 101.04768,
    "W": 186.07931,
    "Y": 163.06333,
    "V": 99.06841,
}
_CARBAMIDOMETHYL = 57.02146
_OXIDATION = 15.99491
_WATER = 18.010565
_PROTON = 1.007276
# approximate amino-acid frequencies of tryptic peptides (interior positions: no K/R)
_INTERIOR = "ANDCEQGHILMFPSTWYV"
_INTERIOR_FREQ = np.array(
    [8.3, 4.1, 5.5, 1.4, 6.8, 3.9, 7.1, 2.3, 5.9, 9.7, 2.4, 3.9, 4.7, 6.6, 5.4, 1.1, 2.9, 6.9]
)


@dataclass
class Simulation:
    """A simulated data set.

    Attributes
    ----------
    table : pandas.DataFrame
        Observed cells only: ``protein, feature, run, y`` (log2, string columns).
    sheet : pandas.DataFrame
        ``run, condition, bioreplicate, batch`` (one biological sample per run, one batch).
    truth : pandas.DataFrame
        Per protein: ``protein, n_features, mean, log2fc, changing, sd_sample, sd_resid,
        n_observed``.
    feature_protein : ndarray of int
        Protein index of each feature (features are numbered protein by protein).
    y_full : ndarray, shape (n_features, n_runs)
        Complete log2 values (before removing the missing cells).
    observed : ndarray of bool, shape (n_features, n_runs)
    """

    table: pd.DataFrame
    sheet: pd.DataFrame
    truth: pd.DataFrame
    feature_protein: np.ndarray
    y_full: np.ndarray
    observed: np.ndarray


def protein_names(n: int) -> np.ndarray:
    """``SIMP00000``, ``SIMP00001``, ..."""
    return np.array([f"SIMP{i:05d}" for i in range(n)], dtype=object)


def run_names(n: int, prefix: str = "R") -> np.ndarray:
    """``R000``, ``R001``, ... (zero-padded to at least three digits)."""
    width = max(3, len(str(n - 1)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def sample_sheet(runs: np.ndarray) -> pd.DataFrame:
    """Sheet with runs alternating between conditions ``A`` and ``B`` (first run ``A``)."""
    return pd.DataFrame(
        {
            "run": [str(r) for r in runs],
            "condition": np.where(np.arange(len(runs)) % 2 == 0, "A", "B"),
            "bioreplicate": [str(r) for r in runs],
            "batch": "b1",
        }
    )


def feature_counts(
    rng: np.random.Generator,
    n_proteins: int,
    mean_features: float = 6.0,
    max_features: int = 50,
    total: int | None = None,
) -> np.ndarray:
    """Features per protein: ``1 + NegBin(1.5, mean - 1)``, capped, optionally summing to total."""
    mu = max(mean_features - 1.0, 1e-9)
    p = FEATURE_DISPERSION / (FEATURE_DISPERSION + mu)
    counts = np.minimum(1 + rng.negative_binomial(FEATURE_DISPERSION, p, n_proteins), max_features)
    if total is None:
        return counts.astype(np.int64)
    if not n_proteins <= total <= n_proteins * max_features:
        raise ValueError(f"{total} features cannot be spread over {n_proteins} proteins")
    while (diff := total - int(counts.sum())) != 0:
        # add to / remove from random proteins in proportion to their size (keeps the shape)
        step = 1 if diff > 0 else -1
        room = counts < max_features if step > 0 else counts > 1
        weights = counts * room
        size = min(abs(diff), int(room.sum()))
        pick = rng.choice(n_proteins, size=size, p=weights / weights.sum())
        np.add.at(counts, pick, step)
        counts = np.clip(counts, 1, max_features)
    return counts.astype(np.int64)


def _missing_offset(y: np.ndarray, target: float, mcar: float, scale: float) -> float:
    """Solve ``c`` so that the mean of ``mcar + (1 - mcar) logistic((c - y) / scale)`` is target."""
    if target <= mcar:
        raise ValueError(f"missing fraction {target} must exceed the MCAR part {mcar}")
    sub = y.ravel()
    if sub.size > 400_000:
        sub = sub[:: sub.size // 400_000 + 1]
    lo, hi = float(sub.min()) - 20 * scale, float(sub.max()) + 20 * scale
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        frac = mcar + (1 - mcar) * np.mean(1.0 / (1.0 + np.exp((sub - mid) / scale)))
        lo, hi = (mid, hi) if frac < target else (lo, mid)
    return 0.5 * (lo + hi)


def simulate_full(
    n_proteins: int = 2000,
    n_runs: int = 12,
    seed: int = 1,
    mean_features: float = 6.0,
    max_features: int = 50,
    n_features: int | None = None,
    missing: float = 0.3,
    mcar: float = 0.05,
    missing_scale: float = 1.0,
    sd_feature: float = 1.0,
    sd_sample: tuple[float, float] = (0.2, 0.5),
    sd_resid: tuple[float, float] = (0.2, 0.3),
    frac_changing: float = 0.1,
    fold_change: tuple[float, float] = (0.5, 2.0),
    runs: np.ndarray | None = None,
    feature_names: np.ndarray | None = None,
    counts: np.ndarray | None = None,
) -> Simulation:
    """Simulate a data set (see the module docstring for the model).

    Parameters
    ----------
    n_proteins, n_runs, seed
        Size and seed (``numpy.random.default_rng(seed)``).
    mean_features, max_features
        Features-per-protein distribution.
    n_features : int, optional
        Exact total number of features (the counts are adjusted to it).
    missing, mcar, missing_scale
        Expected missing fraction, its intensity-independent part and the width (log2 units)
        of the logistic intensity dependence.
    sd_feature, sd_sample, sd_resid
        Feature SD; uniform ranges of the per-protein sample and residual SDs.
    frac_changing, fold_change
        Fraction of proteins with a B - A change and the range of its magnitude (random sign).
    runs : array of str, optional
        Run names (default ``R000``...).
    feature_names : array of str, optional
        One name per feature, protein by protein (default ``<protein>_F<k>``).
    counts : array of int, optional
        Features per protein (overrides the drawn counts).
    """
    if n_runs < 2:
        raise ValueError("need at least 2 runs")
    rng = np.random.default_rng(seed)
    drawn = feature_counts(rng, n_proteins, mean_features, max_features, n_features)
    counts = drawn if counts is None else np.asarray(counts, dtype=np.int64)
    if counts.shape != (n_proteins,) or counts.min() < 1:
        raise ValueError("counts must give at least one feature for each protein")
    n_feat = int(counts.sum())
    fprot = np.repeat(np.arange(n_proteins), counts)
    runs = run_names(n_runs) if runs is None else np.asarray(runs, dtype=object)
    sheet = sample_sheet(runs)
    is_b = (sheet["condition"] == "B").to_numpy()

    mu = rng.normal(22.0, 2.0, n_proteins)
    s_sample = rng.uniform(*sd_sample, n_proteins)
    s_resid = rng.uniform(*sd_resid, n_proteins)
    changing = rng.random(n_proteins) < frac_changing
    delta = np.where(
        changing,
        rng.choice([-1.0, 1.0], n_proteins) * rng.uniform(*fold_change, n_proteins),
        0.0,
    )
    u = rng.normal(0.0, sd_feature, n_feat)
    v = rng.normal(0.0, 1.0, (n_proteins, n_runs)) * s_sample[:, None] + delta[:, None] * is_b
    y = v[fprot]
    y += (mu[fprot] + u)[:, None]
    y += rng.normal(0.0, 1.0, (n_feat, n_runs)) * s_resid[fprot, None]

    c = _missing_offset(y, missing, mcar, missing_scale)
    p_miss = mcar + (1.0 - mcar) / (1.0 + np.exp((y - c) / missing_scale))
    observed = rng.random((n_feat, n_runs)) >= p_miss
    del p_miss

    fi, ri = np.nonzero(observed)
    prot_names = protein_names(n_proteins)
    if feature_names is None:
        local = np.arange(n_feat) - np.repeat(np.cumsum(counts) - counts, counts)
        feature_names = np.array(
            [f"{prot_names[p]}_F{k:02d}" for p, k in zip(fprot, local, strict=True)], dtype=object
        )
    elif len(feature_names) != n_feat:
        raise ValueError(f"{len(feature_names)} feature names for {n_feat} features")
    table = pa.table(
        {
            "protein": _strings(fprot[fi], prot_names),
            "feature": _strings(fi, feature_names),
            "run": _strings(ri, runs),
            "y": pa.array(y[fi, ri]),
        }
    ).to_pandas()
    truth = pd.DataFrame(
        {
            "protein": prot_names,
            "n_features": counts,
            "mean": mu,
            "log2fc": delta,
            "changing": changing,
            "sd_sample": s_sample,
            "sd_resid": s_resid,
            "n_observed": np.bincount(fprot[fi], minlength=n_proteins),
        }
    )
    return Simulation(table, sheet, truth, fprot, y, observed)


def simulate(
    n_proteins: int = 2000, n_runs: int = 12, seed: int = 1, **options: object
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long table ``protein, feature, run, y`` (observed cells) and the sample sheet.

    Keyword options are those of :func:`simulate_full`.
    """
    sim = simulate_full(n_proteins, n_runs, seed, **options)  # type: ignore[arg-type]
    return sim.table, sim.sheet


def _strings(codes: np.ndarray, names: np.ndarray) -> pa.Array:
    """Plain Arrow string array ``names[codes]`` without building Python strings per row."""
    dictionary = pa.array([str(n) for n in names], type=pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), dictionary).cast(
        pa.string()
    )


# ----------------------------------------------------------------------------------------------
# DIA-NN-like cohort


@dataclass
class Precursors:
    """Precursor annotation: one entry per feature, in feature order."""

    stripped: np.ndarray
    modified: np.ndarray
    charge: np.ndarray
    precursor_id: np.ndarray
    mz: np.ndarray


def _peptide(rng: np.random.Generator) -> str:
    length = int(np.clip(rng.gamma(6.0, 2.0) + 5, 7, 30))
    body = rng.choice(list(_INTERIOR), size=length - 1, p=_INTERIOR_FREQ / _INTERIOR_FREQ.sum())
    return "".join(body) + ("K" if rng.random() < 0.55 else "R")


def make_precursors(rng: np.random.Generator, counts: np.ndarray) -> Precursors:
    """Tryptic-looking unique peptides, ~20% of them seen at two charge states."""
    stripped: list[str] = []
    modified: list[str] = []
    charges: list[int] = []
    seen: set[str] = set()
    for k in counts:
        k = int(k)
        while k > 0:
            seq = _peptide(rng)
            if seq in seen:
                continue
            seen.add(seq)
            mod = seq.replace("C", "C(UniMod:4)")
            if "M" in seq and rng.random() < 0.15:
                i = seq.index("M")
                mod = (
                    seq[:i].replace("C", "C(UniMod:4)")
                    + "M(UniMod:35)"
                    + seq[i + 1 :].replace("C", "C(UniMod:4)")
                )
            z = int(rng.choice([2, 3, 4, 1], p=[0.62, 0.32, 0.05, 0.01]))
            zs = [z]
            if k >= 2 and rng.random() < 0.2:
                zs.append(3 if z == 2 else 2)
            for zz in zs:
                stripped.append(seq)
                modified.append(mod)
                charges.append(zz)
            k -= len(zs)
    charge = np.array(charges, dtype=np.int64)
    mass = np.array(
        [
            sum(_RESIDUE_MASS[a] for a in s)
            + _WATER
            + _CARBAMIDOMETHYL * s.count("C")
            + _OXIDATION * m.count("UniMod:35")
            for s, m in zip(stripped, modified, strict=True)
        ]
    )
    return Precursors(
        stripped=np.array(stripped, dtype=object),
        modified=np.array(modified, dtype=object),
        charge=charge,
        precursor_id=np.array([f"{m}{z}" for m, z in zip(modified, charges, strict=True)], object),
        mz=(mass + charge * _PROTON) / charge,
    )


def _f32(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.float32), type=pa.float32())


def _i64(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64), type=pa.int64())


def write_cohort(
    out: str | Path,
    n_proteins: int = 10_000,
    n_precursors: int = 60_000,
    n_runs: int = 200,
    seed: int = 1,
    missing: float = 0.3,
    q_fail_fraction: float = 0.05,
    run_shift_sd: float = 0.15,
    runs_per_row_group: int = 10,
) -> dict[str, Path]:
    """Write the DIA-NN-style cohort (see the module docstring). Returns the written paths.

    Report rows: every observed cell, with ``Q.Value`` and ``PG.Q.Value`` at most 0.01, plus
    ``q_fail_fraction`` of the missing cells as rows with ``Q.Value`` in (0.01, 0.1] (DIA-NN 2.x
    reports such rows; pepmix's default filter removes them, leaving the ~30% missing truth).
    ``Precursor.Normalised = 2^y``; ``Precursor.Quantity = 2^(y + s_r)`` with a run shift
    ``s_r ~ N(0, run_shift_sd)`` and ``Normalisation.Factor = 2^-s_r``. ``long.parquet`` holds
    ``Precursor.Quantity`` of the passing rows as ``intensity``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, 7])
    counts = feature_counts(rng, n_proteins, total=n_precursors)
    prec = make_precursors(rng, counts)
    runs = np.array([f"SIM_DIA_{i + 1:03d}" for i in range(n_runs)], dtype=object)
    sim = simulate_full(
        n_proteins,
        n_runs,
        seed,
        missing=missing,
        runs=runs,
        feature_names=prec.precursor_id,
        counts=counts,
    )
    print(
        f"simulated {n_proteins} proteins, {n_precursors} precursors, {n_runs} runs: "
        f"{sim.observed.mean():.1%} observed ({time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )
    fprot = sim.feature_protein
    n_feat = fprot.size
    prot = protein_names(n_proteins)
    shift = rng.normal(0.0, run_shift_sd, n_runs)
    lib_index = rng.permutation(n_feat * 2)[:n_feat]
    base_rt = rng.uniform(1.0, 29.0, n_feat)
    global_q = 10 ** rng.uniform(-5, -2.3, n_feat)
    prot_global_pg_q = 10 ** rng.uniform(-5, -2.5, n_proteins)
    run_rt_shift = rng.normal(0.0, 0.08, n_runs)
    miss_extra = ~sim.observed & (rng.random(sim.observed.shape) < q_fail_fraction)

    paths = {
        "report": out / "report.parquet",
        "long": out / "long.parquet",
        "samples": out / "samples.tsv",
        "config": out / "config.yaml",
        "config_long": out / "config_generic_long.yaml",
        "truth": out / "truth.tsv",
    }
    dict_arrays = {
        "prot": pa.array(list(prot), type=pa.string()),
        "prec_id": pa.array(list(prec.precursor_id), type=pa.string()),
        "mod": pa.array(list(prec.modified), type=pa.string()),
        "stripped": pa.array(list(prec.stripped), type=pa.string()),
        "names": pa.array([f"{p}_HUMAN" for p in prot], type=pa.string()),
        "genes": pa.array([f"GENE{i:05d}" for i in range(n_proteins)], type=pa.string()),
        "runs": pa.array(list(runs), type=pa.string()),
    }

    def take(name: str, codes: np.ndarray) -> pa.Array:
        return pa.DictionaryArray.from_arrays(
            pa.array(codes, type=pa.int32()), dict_arrays[name]
        ).cast(pa.string())

    report_writer: pq.ParquetWriter | None = None
    long_writer: pq.ParquetWriter | None = None
    n_rows = n_pass = 0
    for start in range(0, n_runs, runs_per_row_group):
        rsel = np.arange(start, min(start + runs_per_row_group, n_runs))
        obs = sim.observed[:, rsel].T  # run-major rows, like DIA-NN
        extra = miss_extra[:, rsel].T
        keep = obs | extra
        rr, ff = np.nonzero(keep)
        passing = obs[rr, ff]
        r_abs = rsel[rr]
        n = rr.size
        y = sim.y_full[ff, r_abs]
        # failing rows: real but poorly identified signals, a little lower than the truth
        y = np.where(passing, y, y - rng.uniform(0.0, 1.5, n))
        normalised = np.exp2(y)
        quantity = np.exp2(y + shift[r_abs])
        norm_factor = np.exp2(-shift[r_abs])
        q = np.where(passing, 10 ** rng.uniform(-5, -2, n), rng.uniform(0.0101, 0.1, n))
        pep = np.minimum(q * rng.uniform(1.0, 5.0, n), 1.0)
        pg_q = 10 ** rng.uniform(-5, -2.2, n)
        rt = base_rt[ff] + run_rt_shift[r_abs] + rng.normal(0.0, 0.03, n)
        pcodes = fprot[ff]
        report = pa.table(
            {
                "Run.Index": _i64(r_abs),
                "Run": take("runs", r_abs),
                "Channel": pa.array([""] * n, type=pa.string()),
                "Precursor.Id": take("prec_id", ff),
                "Modified.Sequence": take("mod", ff),
                "Stripped.Sequence": take("stripped", ff),
                "Precursor.Charge": _i64(prec.charge[ff]),
                "Precursor.Lib.Index": _i64(lib_index[ff]),
                "Decoy": _i64(np.zeros(n)),
                "Proteotypic": _i64(np.ones(n)),
                "Precursor.Mz": _f32(prec.mz[ff]),
                "Protein.Ids": take("prot", pcodes),
                "Protein.Group": take("prot", pcodes),
                "Protein.Names": take("names", pcodes),
                "Genes": take("genes", pcodes),
                "RT": _f32(rt),
                "iRT": _f32((base_rt[ff] - 15.0) * 5.0),
                "Predicted.RT": _f32(rt + rng.normal(0.0, 0.05, n)),
                "Predicted.iRT": _f32((base_rt[ff] - 15.0) * 5.0 + rng.normal(0.0, 0.3, n)),
                "Precursor.Quantity": _f32(quantity),
                "Precursor.Normalised": _f32(normalised),
                "Ms1.Area": _f32(quantity * np.exp2(rng.normal(1.0, 0.5, n))),
                "Normalisation.Factor": _f32(norm_factor),
                "Quantity.Quality": _f32(rng.uniform(0.5, 1.0, n)),
                "Q.Value": _f32(q),
                "PEP": _f32(pep),
                "Global.Q.Value": _f32(global_q[ff]),
                "Lib.Q.Value": _f32(np.minimum(q, global_q[ff])),
                "PG.Q.Value": _f32(pg_q),
                "PG.PEP": _f32(np.minimum(pg_q * 2.0, 1.0)),
                "Global.PG.Q.Value": _f32(prot_global_pg_q[pcodes]),
                "Lib.PG.Q.Value": _f32(prot_global_pg_q[pcodes]),
            }
        )
        if report_writer is None:
            report_writer = pq.ParquetWriter(paths["report"], report.schema, compression="zstd")
        report_writer.write_table(report)
        pi = np.flatnonzero(passing)
        long = pa.table(
            {
                "protein": report["Protein.Group"].take(pi),
                "peptide": report["Modified.Sequence"].take(pi),
                "charge": report["Precursor.Charge"].take(pi),
                "run": report["Run"].take(pi),
                "intensity": pa.array(quantity[pi].astype(np.float32).astype(np.float64)),
            }
        )
        if long_writer is None:
            long_writer = pq.ParquetWriter(paths["long"], long.schema, compression="zstd")
        long_writer.write_table(long)
        n_rows += n
        n_pass += pi.size
    assert report_writer is not None and long_writer is not None
    report_writer.close()
    long_writer.close()

    sheet = sim.sheet[["run", "condition", "bioreplicate"]]
    sheet.to_csv(paths["samples"], sep="\t", index=False)
    sim.truth.to_csv(paths["truth"], sep="\t", index=False, float_format="%.6g")
    for key, fmt, data in (("config", "diann", "report"), ("config_long", "generic_long", "long")):
        paths[key].write_text(_config_text(paths["samples"], paths[data], fmt))
    print(
        f"wrote {n_rows:,} report rows ({n_pass:,} pass q <= 0.01; "
        f"{1 - n_pass / (n_feat * n_runs):.1%} of precursor x run cells missing after the filter) "
        f"to {out} in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    return paths


def _config_text(samples: Path, data: Path, fmt: str) -> str:
    return (
        "# Simulated DIA cohort (benchmarks/simulate.py); every key is documented in "
        "config/README.md.\n"
        f"samples: {samples.resolve()}\n\n"
        "inputs:\n"
        "  - name: cohort\n"
        f"    format: {fmt}\n"
        f"    path: {data.resolve()}\n\n"
        "feature_level: precursor\n\n"
        "normalization:\n"
        "  method: median\n\n"
        "contrasts:\n"
        '  - "B - A"\n\n'
        "fdr: 0.05\n"
    )


def _write_scenario(name: str, out: Path, n_proteins: int, seed: int) -> int:
    """CLI ``scenario``: long table, sheet, truth and a workflow config of a hard scenario."""
    import yaml
    from scenarios import SCENARIOS, simulate_scenario, write_inputs
    from stage_runner import scenario_config

    if name not in SCENARIOS:
        print(f"unknown scenario {name!r}; one of: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    sim = simulate_scenario(name, n_proteins, seed)
    data, samples = write_inputs(sim, out)
    sim.truth.to_csv(out / "truth.tsv", sep="\t", index=False, float_format="%.6g")
    config = scenario_config(data.resolve(), samples.resolve())
    header = f"# {name} (benchmarks/scenarios.py, seed {seed}): the workflow's defaults\n"
    (out / "config.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False))
    print(f"{name}: {sim.scenario.description}; {len(sim.table):,} rows -> {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cohort = sub.add_parser("cohort", help="write the DIA-NN-style cohort files")
    cohort.add_argument("--out", required=True, type=Path, help="output directory")
    cohort.add_argument("--proteins", type=int, default=10_000)
    cohort.add_argument("--precursors", type=int, default=60_000)
    cohort.add_argument("--runs", type=int, default=200)
    cohort.add_argument("--missing", type=float, default=0.3)
    cohort.add_argument("--seed", type=int, default=1)
    table = sub.add_parser("table", help="write the long log2 table and sample sheet only")
    table.add_argument("--out", required=True, type=Path, help="output directory")
    table.add_argument("--proteins", type=int, default=2000)
    table.add_argument("--runs", type=int, default=12)
    table.add_argument("--missing", type=float, default=0.3)
    table.add_argument("--seed", type=int, default=1)
    scenario = sub.add_parser("scenario", help="write a hard scenario of scenarios.py")
    scenario.add_argument("name", help="scenario name (scenarios.SCENARIOS)")
    scenario.add_argument("--out", required=True, type=Path, help="output directory")
    scenario.add_argument("--proteins", type=int, default=2000)
    scenario.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "scenario":
        return _write_scenario(args.name, args.out, args.proteins, args.seed)
    if args.command == "cohort":
        paths = write_cohort(
            args.out, args.proteins, args.precursors, args.runs, args.seed, args.missing
        )
        for key, path in paths.items():
            print(f"{key}\t{path}")
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        sim = simulate_full(args.proteins, args.runs, args.seed, missing=args.missing)
        sim.table.to_parquet(args.out / "table.parquet", index=False)
        sim.sheet.to_csv(args.out / "samples.tsv", sep="\t", index=False)
        sim.truth.to_csv(args.out / "truth.tsv", sep="\t", index=False, float_format="%.6g")
        print(f"{len(sim.table):,} rows, {1 - sim.observed.mean():.1%} missing -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
