"""Generate the synthetic data sets for the lme4 reference chain.

Run from the repository root::

    python tests/reference/lmm/generate.py
    Rscript tests/reference/lmm/fit_lme4.R

The first command writes ``datasets.csv.gz`` (long table, observed cells only) and
``models.csv`` (one model per data set) next to this file; the second fits every
model with lme4/lmerTest and writes ``lme4_reference.json``.  Everything is
deterministic: the design of every data set is drawn from ``default_rng(SEED)``
and its data from ``default_rng([SEED, index])``.

Each data set mimics one protein: ``n_feat`` features (peptides) measured in
``n_runs`` MS runs.  Runs belong to biological samples (one run per sample, or
several technical-replicate runs per sample in the nested designs), samples to
conditions (``A`` is the reference) and to batches.  The log2 intensity is

    y = mu + feature + condition + sample + run + batch + noise

and cells are then removed completely at random, or preferentially at low
intensity (drop probability a logistic function of the complete value), or both.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240611
HERE = Path(__file__).resolve().parent
LOG = logging.getLogger("generate")

# Decimal places written for y.  The written decimal string *is* the data: both
# R and Python read it back, so keep it short enough for a small file.
Y_DECIMALS = 6


@dataclass(frozen=True)
class Spec:
    """Design and true parameters of one synthetic data set.

    Attributes
    ----------
    dataset : str
        Identifier, ``D001`` ...
    category : str
        One of ``regular``, ``singular``, ``nested``, ``batch``, ``small``, ``large``.
    random : str
        Random-effect grouping factors joined by ``+`` (``feature+sample``, ...).
    fixed : str
        Fixed-effect terms joined by ``+`` (``condition`` or ``condition+batch``).
    n_cond : int
        Number of conditions (2 or 3).
    samples_per_cond : int
        Biological samples per condition.
    runs_per_sample : int
        MS runs per sample (1, or >1 for technical replicates).
    n_feat : int
        Number of features.
    n_batch : int
        Number of batches (1 means no batch structure, every run in ``b1``).
    sd_feature, sd_sample, sd_run, sd_batch, sd_resid : float
        True standard deviations of the random effects and of the residual.
    effects : tuple of float
        True condition effects relative to ``A`` (length ``n_cond - 1``).
    batch_shift : float
        Fixed shift added per batch level index (batch ``b2`` = +shift, ...),
        used when the batch is a fixed effect.
    missing : float
        Target fraction of missing cells.
    mechanism : str
        ``none``, ``mcar``, ``mnar`` (logistic in the complete value) or
        ``mixed`` (half MCAR, half MNAR, in expectation).
    mnar_scale : float
        Scale (log2 units) of the logistic drop probability.
    note : str
        Extra words for the description.
    """

    dataset: str
    category: str
    random: str
    fixed: str
    n_cond: int
    samples_per_cond: int
    runs_per_sample: int
    n_feat: int
    n_batch: int
    sd_feature: float
    sd_sample: float
    sd_run: float
    sd_batch: float
    sd_resid: float
    effects: tuple[float, ...]
    batch_shift: float
    missing: float
    mechanism: str
    mnar_scale: float
    note: str = ""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _drop_probability(y: np.ndarray, target: float, mechanism: str, scale: float) -> np.ndarray:
    """Per-cell drop probabilities whose mean equals ``target``.

    Parameters
    ----------
    y : numpy.ndarray
        Complete log2 intensities.
    target : float
        Wanted mean drop probability.
    mechanism : str
        ``none``, ``mcar``, ``mnar`` or ``mixed``.
    scale : float
        Scale of the logistic in log2 units (MNAR part).

    Returns
    -------
    numpy.ndarray
        Drop probabilities, same shape as ``y``.
    """
    if mechanism == "none" or target <= 0:
        return np.zeros_like(y)
    if mechanism == "mcar":
        return np.full_like(y, target)
    mcar = 0.5 * target if mechanism == "mixed" else 0.0

    def mean_p(c: float) -> float:
        p = 1.0 - (1.0 - mcar) * (1.0 - _sigmoid((c - y) / scale))
        return float(p.mean())

    lo, hi = float(y.min()) - 20 * scale, float(y.max()) + 20 * scale
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if mean_p(mid) < target:
            lo = mid
        else:
            hi = mid
    c = 0.5 * (lo + hi)
    return 1.0 - (1.0 - mcar) * (1.0 - _sigmoid((c - y) / scale))


def simulate(spec: Spec, index: int) -> pd.DataFrame:
    """Simulate the long table of one data set.

    Parameters
    ----------
    spec : Spec
        Design and true parameters.
    index : int
        Position of the data set; seeds ``default_rng([SEED, index])``.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, feature, run, sample, condition, batch, y``; observed
        cells only.
    """
    rng = np.random.default_rng([SEED, index])
    conds = "ABC"[: spec.n_cond]
    n_samples = spec.n_cond * spec.samples_per_cond
    n_runs = n_samples * spec.runs_per_sample

    # Samples: S01.. grouped by condition; batches cross conditions (round robin
    # within each condition, so every condition sees every batch when possible).
    sample_cond = np.repeat(np.arange(spec.n_cond), spec.samples_per_cond)
    sample_batch = np.tile(np.arange(spec.samples_per_cond), spec.n_cond) % spec.n_batch
    run_sample = np.repeat(np.arange(n_samples), spec.runs_per_sample)

    mu = rng.uniform(20.0, 26.0)
    feat = rng.normal(0.0, spec.sd_feature, spec.n_feat)
    samp = rng.normal(0.0, spec.sd_sample, n_samples)
    run = rng.normal(0.0, spec.sd_run, n_runs)
    if spec.sd_batch > 0:
        batch = rng.normal(0.0, spec.sd_batch, spec.n_batch)
    else:
        batch = spec.batch_shift * np.arange(spec.n_batch)
    cond_eff = np.concatenate([[0.0], np.asarray(spec.effects, dtype=float)])

    r_cond = sample_cond[run_sample]
    r_batch = sample_batch[run_sample]
    run_mean = cond_eff[r_cond] + samp[run_sample] + run + batch[r_batch]
    y = mu + feat[:, None] + run_mean[None, :]
    y = y + rng.normal(0.0, spec.sd_resid, y.shape)

    p = _drop_probability(y, spec.missing, spec.mechanism, spec.mnar_scale)
    observed = rng.uniform(size=y.shape) >= p
    # Every run and every feature keeps at least one value (otherwise a level
    # silently disappears); restore the most intense missing cell if needed.
    for j in range(n_runs):
        if not observed[:, j].any():
            observed[int(np.argmax(y[:, j])), j] = True
    for i in range(spec.n_feat):
        if not observed[i].any():
            observed[i, int(np.argmax(y[i]))] = True

    fi, rj = np.nonzero(observed)
    wf = len(str(spec.n_feat)) if spec.n_feat >= 100 else 2
    return pd.DataFrame(
        {
            "dataset": spec.dataset,
            "feature": [f"F{i + 1:0{wf}d}" for i in fi],
            "run": [f"R{j + 1:02d}" for j in rj],
            "sample": [f"S{run_sample[j] + 1:02d}" for j in rj],
            "condition": [conds[r_cond[j]] for j in rj],
            "batch": [f"b{r_batch[j] + 1}" for j in rj],
            "y": np.round(y[fi, rj], Y_DECIMALS),
        }
    )


def _specs() -> list[Spec]:
    """Draw the list of data-set designs (about 150), deterministically.

    Returns
    -------
    list of Spec
        Designs in output order.
    """
    rng = np.random.default_rng(SEED)
    specs: list[Spec] = []

    def effects(n_cond: int) -> tuple[float, ...]:
        # Some null proteins, otherwise effects of either sign up to 2 (log2).
        if rng.uniform() < 0.2:
            return tuple(0.0 for _ in range(n_cond - 1))
        return tuple(
            float(np.round(rng.choice([-1, 1]) * rng.uniform(0.0, 2.0), 3))
            for _ in range(n_cond - 1)
        )

    def missingness(lo: float = 0.05, hi: float = 0.45, p_none: float = 0.25) -> tuple[float, str]:
        if rng.uniform() < p_none:
            return 0.0, "none"
        mech = str(rng.choice(["mnar", "mnar", "mixed", "mcar"]))
        return float(np.round(rng.uniform(lo, hi), 3)), mech

    def add(category: str, random: str = "feature+sample", fixed: str = "condition", **kw):
        n_cond = kw.pop("n_cond", int(rng.choice([2, 3])))
        miss, mech = kw.pop("miss", None) or missingness()
        params = {
            "n_cond": n_cond,
            "samples_per_cond": 3,
            "runs_per_sample": 1,
            "n_feat": 10,
            "n_batch": 1,
            "sd_feature": float(np.round(rng.uniform(0.5, 1.5), 3)),
            "sd_sample": float(np.round(rng.uniform(0.1, 0.5), 3)),
            "sd_run": 0.0,
            "sd_batch": 0.0,
            "sd_resid": float(np.round(rng.uniform(0.1, 0.4), 3)),
            "effects": effects(n_cond),
            "batch_shift": 0.0,
            "missing": miss,
            "mechanism": mech,
            "mnar_scale": float(np.round(rng.uniform(0.5, 1.5), 3)),
        }
        params.update(kw)
        specs.append(
            Spec(
                dataset=f"D{len(specs) + 1:03d}",
                category=category,
                random=random,
                fixed=fixed,
                **params,
            )
        )

    def ri(lo: int, hi: int) -> int:
        return int(rng.integers(lo, hi + 1))

    # regular: one run per sample, feature + sample random effects.
    for _ in range(50):
        n_cond = int(rng.choice([2, 3]))
        add("regular", n_cond=n_cond, n_feat=ri(3, 30), samples_per_cond=ri(3, 8))
    # single random term models
    for _ in range(6):
        add("regular", random="feature", n_feat=ri(3, 20), samples_per_cond=ri(3, 6))
    for _ in range(3):
        add("regular", random="sample", n_feat=ri(2, 6), samples_per_cond=ri(3, 6))

    # singular: true variance zero or too little information.
    for _ in range(8):
        add("singular", n_feat=ri(3, 10), samples_per_cond=ri(3, 5), sd_sample=0.0,
            miss=missingness(0.05, 0.2, p_none=0.5), note="true sample sd 0")  # fmt: skip
    for _ in range(5):
        add("singular", n_feat=2, samples_per_cond=ri(3, 5), sd_feature=0.0,
            note="2 feat, true feature sd 0")  # fmt: skip
    for _ in range(3):
        add("singular", n_feat=ri(2, 4), samples_per_cond=3, sd_feature=0.02, sd_sample=0.0,
            note="true feature sd ~0, sample sd 0")  # fmt: skip
    for _ in range(4):
        add("singular", random="feature+sample+run", n_feat=ri(3, 10), samples_per_cond=ri(2, 4),
            runs_per_sample=ri(2, 3), sd_run=0.0, note="tech reps, true run sd 0")  # fmt: skip

    # nested: technical replicate runs within samples.
    for _ in range(20):
        add("nested", random="feature+sample+run", n_feat=ri(3, 25), samples_per_cond=ri(2, 4),
            runs_per_sample=ri(2, 3), sd_run=float(np.round(rng.uniform(0.05, 0.3), 3)),
            note="tech reps")  # fmt: skip

    # batch: fixed batch crossing conditions, then random batch.
    for _ in range(14):
        add("batch", fixed="condition+batch", n_feat=ri(3, 25), samples_per_cond=ri(4, 8),
            n_batch=2, batch_shift=float(np.round(rng.uniform(-1.0, 1.0), 3)),
            note="2 batches fixed")  # fmt: skip
    for _ in range(7):
        nb = ri(3, 5)
        add("batch", random="feature+sample+batch", n_feat=ri(3, 25), samples_per_cond=ri(nb, 8),
            n_batch=nb, sd_batch=float(np.round(rng.uniform(0.2, 0.6), 3)),
            note=f"{nb} batches random")  # fmt: skip
    for _ in range(3):
        nb = ri(3, 4)
        add("batch", random="feature+run+batch", n_feat=ri(3, 20), samples_per_cond=ri(nb, 6),
            n_batch=nb, sd_batch=float(np.round(rng.uniform(0.2, 0.6), 3)),
            note=f"{nb} batches random, run term")  # fmt: skip

    # small: 2-3 features, 6-8 runs.
    for _ in range(14):
        n_cond = int(rng.choice([2, 2, 3]))
        spc = ri(3, 4) if n_cond == 2 else 2
        miss = missingness(0.05, 0.45, p_none=0.3)
        add("small", n_cond=n_cond, n_feat=ri(2, 3), samples_per_cond=spc, miss=miss)

    # large: up to 50 features x 60 runs.
    add("large", n_cond=3, n_feat=50, samples_per_cond=20, miss=(0.3, "mnar"))
    add("large", n_cond=2, n_feat=50, samples_per_cond=15, miss=(0.0, "none"))
    for _ in range(11):
        n_cond = int(rng.choice([2, 3]))
        spc = ri(15, 30) if n_cond == 2 else ri(10, 20)
        add("large", n_cond=n_cond, n_feat=ri(30, 50), samples_per_cond=spc,
            miss=missingness(0.1, 0.4, p_none=0.1))  # fmt: skip
    return specs


def describe(spec: Spec, df: pd.DataFrame) -> str:
    """Short human description of a realised data set.

    Parameters
    ----------
    spec : Spec
        Design.
    df : pandas.DataFrame
        Observed cells of the data set.

    Returns
    -------
    str
        E.g. ``"3 cond, 20 feat, 12 runs, 30% mnar missing"``.
    """
    n_feat, n_runs = spec.n_feat, spec.n_cond * spec.samples_per_cond * spec.runs_per_sample
    frac = 1.0 - len(df) / (n_feat * n_runs)
    miss = "no missing" if frac == 0 else f"{round(100 * frac)}% {spec.mechanism} missing"
    words = [f"{spec.n_cond} cond", f"{n_feat} feat", f"{n_runs} runs", miss]
    if spec.runs_per_sample > 1:
        words.insert(3, f"{spec.runs_per_sample} runs/sample")
    if spec.note:
        words.append(spec.note)
    return ", ".join(words)


def main(argv: list[str] | None = None) -> None:
    """Write ``datasets.csv.gz`` and ``models.csv``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (``--out DIR``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    frames, rows = [], []
    for index, spec in enumerate(_specs()):
        df = simulate(spec, index)
        frames.append(df)
        n_runs = spec.n_cond * spec.samples_per_cond * spec.runs_per_sample
        truth = asdict(spec)
        truth["effects"] = ";".join(f"{e:g}" for e in spec.effects)
        for key in ("dataset", "category", "random", "fixed", "note"):
            truth.pop(key)
        rows.append(
            {
                "dataset": spec.dataset,
                "random": spec.random,
                "fixed": spec.fixed,
                "description": describe(spec, df),
                "category": spec.category,
                "n_obs": len(df),
                "n_runs": n_runs,
                "n_samples": spec.n_cond * spec.samples_per_cond,
                "missing_frac": round(1.0 - len(df) / (spec.n_feat * n_runs), 4),
                "seed": f"{SEED},{index}",
                **{f"true_{k}": v for k, v in truth.items()},
            }
        )

    data = pd.concat(frames, ignore_index=True)
    models = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the gzip bytes reproducible.
    data.to_csv(
        args.out / "datasets.csv.gz",
        index=False,
        float_format=f"%.{Y_DECIMALS}f",
        compression={"method": "gzip", "mtime": 0},
    )
    models.to_csv(args.out / "models.csv", index=False)
    LOG.info(
        "%d datasets, %d rows; per category: %s",
        len(models),
        len(data),
        models["category"].value_counts().to_dict(),
    )


if __name__ == "__main__":
    main()
