r"""Is there any variance at all? Boundary likelihood-ratio tests of the random terms.

Model and notation
------------------
The per-protein model of :mod:`pepmix.model.reml`,
:math:`y = X\beta + \sum_k Z_k b_k + e`, :math:`b_k \sim N(0, \sigma^2\theta_k^2 I)`,
:math:`e_i \sim N(0, \sigma^2/w_i)`. For each random term :math:`t` (feature, sample or run,
batch: whatever the protein's model has) the hypothesis :math:`H_0: \sigma_t^2 = 0` is tested by
the REML likelihood ratio

.. math:: \mathrm{LRT}_t = d_0 - d_1 \ge 0,

where :math:`d_1` is the REML criterion (lme4's ``REMLcrit``, :math:`-2` log restricted
likelihood) at the optimum of the full model and :math:`d_0` at the optimum of the model without
term :math:`t` (the same engine with :math:`\theta_t` fixed at 0). Both models have the same
fixed effects, so their REML likelihoods are comparable (Verbeke & Molenberghs 2000, sec. 6.3.2).

Null distribution
-----------------
Under :math:`H_0` the variance lies on the boundary of its parameter space, and the usual
:math:`\chi^2_1` reference is wrong. For one variance tested while the other variances are
interior (their true values positive), the asymptotic distribution is the chi-bar-square mixture
:math:`\tfrac12\chi^2_0 + \tfrac12\chi^2_1` (Self & Liang 1987, case 5; Stram & Lee 1994), so

.. math:: p = \tfrac12 P(\chi^2_1 \ge \mathrm{LRT})\ \ (\mathrm{LRT} > 0),\qquad p = 1\ \
          (\mathrm{LRT} = 0).

This is the only case supported: one variance at a time, random intercepts only (no
covariances). When another variance of the protein is also zero in truth, the null
distribution is a mixture over more boundary faces with weights that depend on the design
(Self & Liang 1987, cases 6-9); the 50:50 mixture is then an approximation (conservative in the
cases studied by Stram & Lee 1994). Asymptotics also need many independent levels of the tested
term; with few samples (e.g. 2 conditions x 3 samples) the mixture is conservative (Crainiceanu &
Ruppert 2004 show that the point mass at zero of the exact finite-sample distribution is well
above one half). :func:`bootstrap_lrt` gives the finite-sample answer by parametric bootstrap.

Robust (Huber) fits
-------------------
With ``model.robust: huber`` the reported variances are those of weighted REML at the final
Huber weights (:mod:`pepmix.model.robust`). The test compares the two models at those weights
held fixed (precision weights, as ``lme4::lmer(weights = w)``): the same criterion the reported
variances optimise, so the test and the estimate agree about which observations count (an
outlier down-weighted in the estimate does not create a "variance" in the test). The constant
:math:`-\sum_i \log w_i` is the same in both models and cancels. The weights were estimated under
the full model; the bootstrap keeps them fixed too, so it calibrates exactly this statistic.
With a variance-ratio prior (``model.shrinkage``) the test uses the plain REML criterion (a
penalised criterion is not a likelihood).

Parametric bootstrap
--------------------
:func:`bootstrap_lrt` simulates :math:`B` data sets from the fitted null model at the protein's
own observation pattern (same cells, same weights), refits both models to each with the batched
engine and reports :math:`p = (1 + \#\{\mathrm{LRT}^* \ge \mathrm{LRT}\}) / (B + 1)` (Davison &
Hinkley 1997, eq. 4.11). The REML likelihood ratio is invariant to :math:`y \mapsto a y + X c`
(:math:`a > 0`): the null distribution depends on the null model's variance *ratios* only, so the
simulation uses :math:`\beta = 0, \sigma = 1` and the null fit's :math:`\theta`, exactly. Each
protein's random numbers come from a generator seeded by the configured seed, the term and a hash
of the protein's name: results do not depend on sharding or on which other proteins are
bootstrapped.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import chdtrc

from pepmix.errors import ConfigError
from pepmix.model.design import (
    OBSERVATION_FACTORS,
    SLOPE_TERM,
    USAGE_FACTOR,
    RunDesign,
    usage_code,
)
from pepmix.model.fit import FITTED, SNAP_TOL, ModelFit
from pepmix.model.optimize import DIVERGENT_THETA, minimize, partial_start, start_values
from pepmix.model.reml import Bucket
from pepmix.model.suffstats import Problem, build_problem

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

#: a reduced-model criterion below the full one by more than this means the full fit was not at
#: its global optimum (REML can be multimodal); the LRT is then set to 0 and counted
OPTIMUM_TOL = 1e-6
#: bootstrap LRTs within this of the observed LRT count as "at least as large" (the optimiser's
#: criterion tolerance, :mod:`pepmix.model.optimize`, is ~1e-11 relative; the boundary snap 1e-7)
BOOT_TIE = 1e-6
#: :func:`fit_tests` starts the full fits at the reported fit's weighted REML optimum
#: (:attr:`pepmix.model.fit.ModelFit.theta_scale` undoes the robust variance factor) and the
#: reduced fits at the better of that point (tested term at 0) and the grid (:func:`_better_start`);
#: False: the full fits start at the reported ``theta``, the reduced ones at the grid
WARM_STARTS = True
#: ``variance_tests.bootstrap_proteins: top N``
TOP_PATTERN = re.compile(r"top\s+[1-9][0-9]*")
#: simulated observations per bootstrap chunk (memory of the batched refits)
_CHUNK_OBS = 2_000_000


@dataclass
class TermTests:
    """Likelihood-ratio tests of each random term, per protein.

    Attributes
    ----------
    factors : tuple of str
        The model's random terms (``F`` of them).
    lrt : ndarray, shape (P, F)
        :math:`d_0 - d_1` (NaN where the term is not in the protein's model or a fit failed).
    theta_null : ndarray, shape (P, F, F)
        ``theta_null[p, t]``: the null model's relative SDs for the test of term ``t``.
    theta_full : ndarray, shape (P, F)
        The full model's relative SDs.
    dev_full : ndarray, shape (P,)
        REML criterion of the full model (weighted scale, without :math:`-\\sum\\log w`).
    n_nonglobal : int
        Tests where the reduced fit beat the full fit (LRT set to 0).
    """

    factors: tuple[str, ...]
    lrt: FloatArray
    theta_null: FloatArray
    theta_full: FloatArray
    dev_full: FloatArray
    n_nonglobal: int = 0


def mixture_pvalue(lrt: FloatArray) -> FloatArray:
    r"""p-value of :math:`\tfrac12\chi^2_0 + \tfrac12\chi^2_1` (1 at 0, NaN stays NaN).

    The :math:`\chi^2_1` tail is ``scipy.special.chdtrc(1, x)``, what ``scipy.stats.chi2.sf``
    computes (the same bits), without importing ``scipy.stats`` (~0.7 CPU s) in the fit and
    variance-component jobs.
    """
    lrt = np.asarray(lrt, dtype=np.float64)
    out = np.where(lrt > 0, 0.5 * chdtrc(1, np.maximum(lrt, 0.0)), 1.0)
    return np.asarray(np.where(np.isnan(lrt), np.nan, out))


def _snap(diff: FloatArray) -> FloatArray:
    """LRT from a criterion difference: 0 below :data:`pepmix.model.fit.SNAP_TOL`, the
    tolerance below which the fit puts a variance on the boundary (so a variance reported as 0
    always has LRT 0 and p-value 1)."""
    return np.asarray(np.where(diff < SNAP_TOL, 0.0, diff))


def _without(bucket: Bucket, f: int) -> Bucket:
    """``bucket`` with factor ``f`` fixed at zero for every protein (plain REML)."""
    free = bucket.free.copy()
    free[:, f] = False
    return replace(bucket, free=free, prior_df=None, prior_ratio=None)


def _finite(theta: FloatArray, dev: FloatArray, converged: BoolArray) -> BoolArray:
    """Optima that exist: converged, finite criterion, no ratio running off."""
    top = np.max(theta, axis=1, initial=0.0)
    return np.asarray(converged & np.isfinite(dev) & (top <= DIVERGENT_THETA))


def _better_start(reduced: Bucket, warm: FloatArray, f: int) -> FloatArray:
    """Start of reduced fits: per protein the better (lower criterion) of ``warm`` (term ``f``
    set to 0; NaN entries: :func:`pepmix.model.optimize.partial_start`) and the optimiser's
    grid start (:func:`pepmix.model.optimize.start_values`), so the start is never worse than
    the grid's."""
    warm = warm.copy()
    warm[:, f] = 0.0
    theta, dev = partial_start(reduced, warm)
    grid, grid_dev = start_values(reduced)
    return np.asarray(np.where((grid_dev < dev)[:, None], grid, theta), dtype=np.float64)


def bucket_lrts(
    bucket: Bucket,
    theta_start: FloatArray | None = None,
    only: Sequence[int] | None = None,
    null_start: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, int]:
    """LRT of every free term of every protein of one bucket.

    Parameters
    ----------
    bucket : Bucket
        Plain (unpenalised) sufficient statistics.
    theta_start : ndarray, shape (B, F), optional
        Warm start of the full fit (the reported fit's ``theta``); default: the optimiser's grid.
    only : sequence of int, optional
        Test only these factors (the others' LRT stays NaN); default None: all.
    null_start : ndarray, shape (B, F), optional
        Warm start of the reduced fits (the tested term's entry is set to 0; NaN entries are
        chosen by the grid, :func:`pepmix.model.optimize.partial_start`), used where its
        criterion is below that of the grid's best point (:func:`_better_start`); default
        None: the optimiser's grid.

    Returns
    -------
    lrt : ndarray, shape (B, F)
    theta_null : ndarray, shape (B, F, F)
    theta_full : ndarray, shape (B, F)
    dev_full : ndarray, shape (B,)
    n_nonglobal : int
    """
    plain = replace(bucket, prior_df=None, prior_ratio=None)
    nb, nf = plain.free.shape
    full = minimize(plain, theta_start)
    ok = _finite(full.theta, full.dev, full.converged)
    lrt = np.full((nb, nf), np.nan)
    theta_null = np.repeat(full.theta[:, None, :], nf, axis=1)
    n_nonglobal = 0
    for f in range(nf) if only is None else only:
        tested = ok & plain.free[:, f]
        # a variance already at zero: the full optimum is the reduced one, LRT exactly 0
        zero = tested & (full.theta[:, f] <= 0.0)
        lrt[zero, f] = 0.0
        rows = np.flatnonzero(tested & ~zero)
        if rows.size == 0:
            continue
        reduced = _without(plain.take_shared(rows), f)
        start = None if null_start is None else _better_start(reduced, null_start[rows], f)
        red = minimize(reduced, start)
        good = _finite(red.theta, red.dev, red.converged)
        diff = red.dev - full.dev[rows]
        n_nonglobal += int(np.sum(good & (diff < -OPTIMUM_TOL)))
        lrt[rows, f] = np.where(good, _snap(diff), np.nan)
        theta_null[rows, f] = red.theta
    return lrt, theta_null, full.theta, full.dev, n_nonglobal


def term_lrts(
    problem: Problem,
    theta_start: FloatArray | None = None,
    terms: Sequence[str] | None = None,
    null_start: FloatArray | None = None,
) -> TermTests:
    """LRTs of every random term of every fittable protein of ``problem`` (batched by bucket).

    Parameters
    ----------
    problem : Problem
        Sufficient statistics (with the fit's observation weights for a robust fit).
    theta_start : ndarray, shape (P, F), optional
        The reported fit's ``theta`` (NaN allowed), used as the full model's warm start.
    terms : sequence of str, optional
        Test only these random terms (the others' LRT stays NaN); default None: all.
    null_start : ndarray, shape (P, F), optional
        Warm start of the reduced fits (:func:`bucket_lrts`); default None: the grid.
    """
    only = None if terms is None else [problem.factors.index(t) for t in terms]
    n_p, n_f = problem.n_proteins, len(problem.factors)
    out = TermTests(
        factors=problem.factors,
        lrt=np.full((n_p, n_f), np.nan),
        theta_null=np.full((n_p, n_f, n_f), np.nan),
        theta_full=np.full((n_p, n_f), np.nan),
        dev_full=np.full(n_p, np.nan),
    )
    for idx, bucket in problem.buckets:
        start = None if theta_start is None else np.nan_to_num(theta_start[idx])
        null = None if null_start is None else null_start[idx]
        lrt, theta_null, theta_full, dev, bad = bucket_lrts(bucket, start, only, null)
        out.lrt[idx] = lrt
        out.theta_null[idx] = theta_null
        out.theta_full[idx] = theta_full
        out.dev_full[idx] = dev
        out.n_nonglobal += bad
    if out.n_nonglobal:
        log.info(
            "variance tests: %d reduced fits beat their full fit (full fit not at its global "
            "optimum); LRT set to 0",
            out.n_nonglobal,
        )
    return out


def protein_seed(seed: int, protein: str, term: str) -> list[int]:
    """Entropy for one protein's bootstrap generator: seed, term and protein name hashed."""
    return [int(seed), zlib.crc32(term.encode()), zlib.crc32(protein.encode())]


@dataclass
class Observations:
    """The observed cells of some proteins (rows of an encoded table, sorted by protein).

    Attributes
    ----------
    prot, feat, run : ndarray of int
        Protein code (0..P-1 in order), feature code (contiguous within a protein), run code.
    weights : ndarray
        Observation weights (ones for an unweighted fit).
    """

    prot: IntArray
    feat: IntArray
    run: IntArray
    weights: FloatArray


def _replicate(obs: Observations, rows: IntArray, n_boot: int) -> tuple[Observations, IntArray]:
    """``n_boot`` copies of protein ``rows``' cells; copy ``b`` of protein ``i`` is protein
    ``i * n_boot + b``. Returns the copies and the source row of every copied observation."""
    starts = np.searchsorted(obs.prot, rows)
    stops = np.searchsorted(obs.prot, rows, side="right")
    sizes = stops - starts
    src = np.concatenate(
        [np.tile(np.arange(a, b), n_boot) for a, b in zip(starts, stops, strict=True)]
    )
    new_prot = np.repeat(np.arange(rows.size * n_boot), np.repeat(sizes, n_boot))
    first_feat = obs.feat[starts]
    local = obs.feat[src] - np.repeat(first_feat, sizes * n_boot)
    n_feat = np.zeros(rows.size, dtype=np.intp)
    for i, (a, b) in enumerate(zip(starts, stops, strict=True)):
        n_feat[i] = obs.feat[b - 1] - obs.feat[a] + 1 if b > a else 0
    base = np.concatenate([[0], np.cumsum(np.repeat(n_feat, n_boot))])[:-1]
    copies = Observations(
        prot=new_prot.astype(np.intp),
        feat=(base[new_prot] + local).astype(np.intp),
        run=obs.run[src],
        weights=obs.weights[src],
    )
    return copies, src


def _simulate(
    copies: Observations,
    design: RunDesign,
    factors: tuple[str, ...],
    theta: FloatArray,
    rngs: Sequence[np.random.Generator],
    n_boot: int,
) -> FloatArray:
    """Null-model responses (:math:`\\beta = 0, \\sigma = 1`) for the copies; protein ``i``'s
    ``n_boot`` copies draw from ``rngs[i]`` only (shard-invariant)."""
    y = np.zeros(copies.prot.size)
    src_prot = copies.prot // n_boot
    bounds = np.searchsorted(src_prot, np.arange(len(rngs) + 1))
    n_levels = {
        f: int(design.factor_codes[f].max()) + 1 for f in factors if f not in OBSERVATION_FACTORS
    }
    for i, rng in enumerate(rngs):
        if bounds[i + 1] == bounds[i]:
            continue
        sl = slice(int(bounds[i]), int(bounds[i + 1]))
        copy = copies.prot[sl] - copies.prot[sl][0]  # replicate index b of each observation
        part = rng.standard_normal(copy.size) / np.sqrt(copies.weights[sl])
        for k, name in enumerate(factors):
            if theta[i, k] <= 0:
                continue
            if name in OBSERVATION_FACTORS:
                code = copies.feat[sl] - copies.feat[sl][0]
                if name == USAGE_FACTOR:
                    code = usage_code(code, copies.run[sl], design)
                u = rng.standard_normal(int(code.max()) + 1)
                part += theta[i, k] * u[code]
            else:
                lev = design.factor_codes[name][copies.run[sl]]
                u = rng.standard_normal((n_boot, n_levels[name]))
                part += theta[i, k] * u[copy, lev]
        y[sl] = part
    return y


def _boot_chunk(
    obs: Observations,
    rows: IntArray,
    design: RunDesign,
    term: int,
    theta: FloatArray,
    rngs: Sequence[np.random.Generator],
    n_boot: int,
) -> FloatArray:
    """Bootstrap LRTs of term ``term`` for proteins ``rows``: shape ``(len(rows), n_boot)``.

    Both refits start from the optimiser's grid, as the observed fits do (warm starts at the
    observed estimates, as ``lme4::refit``, took as many Newton iterations here and missed
    the better of two optima in about 0.1% of replicates). The reduced model is refitted only
    where the full optimum has the tested variance above zero: elsewhere the full optimum is
    the reduced one and the LRT is 0 (a reduced refit could only find a criterion at least as
    low, which the snap to the boundary also turns into 0), so this saves about half the
    reduced refits under the null without changing any LRT.
    """
    copies, _ = _replicate(obs, rows, n_boot)
    factors = tuple(design.spec.random)
    y = _simulate(copies, design, factors, theta, rngs, n_boot)
    weighted = bool(np.any(copies.weights != 1.0))
    problem = build_problem(
        copies.prot,
        copies.feat,
        copies.run,
        y,
        design,
        n_proteins=rows.size * n_boot,
        weights=copies.weights if weighted else None,
    )
    out = np.full(rows.size * n_boot, np.nan)
    for idx, bucket in problem.buckets:
        plain = replace(bucket, prior_df=None, prior_ratio=None)
        test = plain.free[:, term]
        if not test.any():
            continue
        sub = plain.take(np.flatnonzero(test))
        full = minimize(sub)
        good = _finite(full.theta, full.dev, full.converged)
        lrt = np.where(good, 0.0, np.nan)
        # the full optimum on the boundary of the tested term is the reduced optimum: LRT 0
        # exactly, as for the observed tests (bucket_lrts); only the others are refitted
        inner = np.flatnonzero(good & (full.theta[:, term] > 0.0))
        if inner.size:
            red = minimize(_without(sub.take(inner), term))
            ok = _finite(red.theta, red.dev, red.converged)
            lrt[inner] = np.where(ok, _snap(red.dev - full.dev[inner]), np.nan)
        out[idx[test]] = lrt
    return out.reshape(rows.size, n_boot)


def bootstrap_lrt(
    obs: Observations,
    design: RunDesign,
    proteins: Sequence[str],
    tests: TermTests,
    select: BoolArray,
    n_boot: int,
    seed: int,
) -> tuple[FloatArray, NDArray[np.intp]]:
    """Parametric-bootstrap p-values of the LRTs in ``tests`` (module docstring).

    Parameters
    ----------
    obs : Observations
        The observed cells of all proteins (codes as in ``tests``).
    design : RunDesign
    proteins : sequence of str
        Protein names (seed the generators).
    tests : TermTests
        Observed LRTs and null fits (:func:`term_lrts`).
    select : ndarray of bool, shape (P,)
        Proteins to bootstrap.
    n_boot : int
        Replicates ``B`` per protein and term.
    seed : int
        Base seed.

    Returns
    -------
    pvalue : ndarray, shape (P, F)
        NaN where not bootstrapped or not tested; 1 where the observed LRT is 0.
    n_valid : ndarray of int, shape (P, F)
        Replicates whose two refits had finite optima (the p-value's denominator minus one).
    """
    n_p, n_f = tests.lrt.shape
    pvalue = np.full((n_p, n_f), np.nan)
    n_valid = np.zeros((n_p, n_f), dtype=np.intp)
    sizes = np.bincount(obs.prot, minlength=n_p)
    for f, name in enumerate(tests.factors):
        lrt = tests.lrt[:, f]
        chosen = select & np.isfinite(lrt)
        zero = chosen & (lrt <= 0)
        pvalue[zero, f] = 1.0
        todo = np.flatnonzero(chosen & ~zero)
        n_valid[zero, f] = n_boot
        for rows in _chunks(todo, sizes, n_boot):
            rngs = [np.random.default_rng(protein_seed(seed, proteins[i], name)) for i in rows]
            star = _boot_chunk(
                obs,
                rows,
                design,
                f,
                tests.theta_null[rows, f],
                rngs,
                n_boot,
            )
            valid = np.isfinite(star)
            hits = np.sum(valid & (star >= lrt[rows, None] - BOOT_TIE), axis=1)
            n_valid[rows, f] = valid.sum(axis=1)
            pvalue[rows, f] = (1.0 + hits) / (1.0 + valid.sum(axis=1))
        log.info("bootstrap (B=%d): term %s, %d proteins refitted", n_boot, name, todo.size)
    return pvalue, n_valid


def _chunks(rows: IntArray, sizes: NDArray[np.intp], n_boot: int) -> list[IntArray]:
    """Split ``rows`` so that each chunk simulates at most :data:`_CHUNK_OBS` observations."""
    out: list[IntArray] = []
    start = 0
    total = 0
    for j, i in enumerate(rows):
        total += int(sizes[i]) * n_boot
        if total > _CHUNK_OBS and j > start:
            out.append(rows[start:j])
            start, total = j, int(sizes[i]) * n_boot
    if start < rows.size:
        out.append(rows[start:])
    return out


@dataclass(frozen=True)
class VarianceTestOptions:
    """``variance_tests:`` config section.

    Attributes
    ----------
    lrt : bool, default True
        Compute the likelihood-ratio tests.
    bootstrap : int, default 0
        Parametric-bootstrap replicates ``B`` per protein and term (0: off).
    proteins : tuple of str or None, default None
        Proteins to bootstrap (None: all, or the top ``top``).
    seed : int, default 1
        Base seed of the bootstrap.
    top : int or None, default None
        ``bootstrap_proteins: top N``: bootstrap only the ``N`` proteins with the smallest
        adjusted p-value of any contrast; needs all shards, so the per-shard fit does not
        bootstrap and the workflow's rule ``bootstrap`` does (:mod:`pepmix.bootstrap`).
    contrasts : bool, default False
        ``bootstrap_contrasts``: also bootstrap the contrasts' t tests
        (:mod:`pepmix.model.bootstrap_contrasts`; rule ``bootstrap``).
    """

    lrt: bool = True
    bootstrap: int = 0
    proteins: tuple[str, ...] | None = None
    seed: int = 1
    top: int | None = None
    contrasts: bool = False

    @property
    def in_fit(self) -> bool:
        """Whether the fit jobs bootstrap the term LRTs (``all`` or a list, not ``top N``)."""
        return self.lrt and self.bootstrap > 0 and self.top is None

    @property
    def after_gather(self) -> bool:
        """Whether the workflow runs rule ``bootstrap`` (contrasts, or terms of the top N)."""
        return self.bootstrap > 0 and (self.contrasts or (self.lrt and self.top is not None))

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> VarianceTestOptions:
        """Options from the ``variance_tests:`` mapping (missing keys: defaults).

        Raises
        ------
        ConfigError
            For a negative ``bootstrap`` or a ``bootstrap_proteins`` that is neither ``all``
            nor a list of protein names.
        """
        sec = dict(section or {})
        n_boot = int(sec.get("bootstrap", 0))
        if n_boot < 0:
            raise ConfigError("config: variance_tests.bootstrap must be >= 0")
        which = sec.get("bootstrap_proteins", "all")
        proteins: tuple[str, ...] | None = None
        top: int | None = None
        if isinstance(which, list | tuple):
            proteins = tuple(str(p) for p in which)
        elif isinstance(which, str) and TOP_PATTERN.fullmatch(which.strip()):
            top = int(which.split()[1])
        elif which != "all":
            raise ConfigError(
                "config: variance_tests.bootstrap_proteins must be 'all', 'top N' (N >= 1) "
                "or a list of proteins"
            )
        contrasts = bool(sec.get("bootstrap_contrasts", False))
        if contrasts and n_boot == 0:
            raise ConfigError(
                "config: variance_tests.bootstrap_contrasts needs variance_tests.bootstrap > 0 "
                "(the number of replicates)"
            )
        return cls(
            lrt=bool(sec.get("lrt", True)),
            bootstrap=n_boot,
            proteins=proteins,
            seed=int(sec.get("seed", 1)),
            top=top,
            contrasts=contrasts,
        )


def refit_problem(fit: ModelFit) -> tuple[Problem, FloatArray | None]:
    """The fitted proteins' problem at the fit's final weights, and the start for refits.

    The start is the fit's theta, except under a variance-ratio prior (``model.shrinkage``),
    whose penalised optimum is not a REML optimum (the refits start from the grid). ``fit``
    must hold its encoded observations (``fit.encoded``). A robust fit's problem comes from
    the builder of its iteration (:attr:`pepmix.model.fit.ModelFit.builder`), when it was
    built on these observations and design.
    """
    enc = fit.encoded
    if enc is None:
        raise ValueError("refit_problem: the fit holds no encoded observations")
    n_prot = len(enc.proteins)
    builder = fit.builder
    # the robust iteration's builder of these very observations and design (the same problem,
    # bit for bit, from its cached structure)
    same = builder is not None and builder.prot is enc.prot and builder.y is enc.y
    if same and builder is not None and fit.weights is not None and builder.design is fit.design:
        problem = builder.build(np.arange(n_prot), fit.weights)
    else:
        problem = build_problem(
            enc.prot, enc.feat, enc.run, enc.y, fit.design, n_proteins=n_prot,
            weights=fit.weights,
        )  # fmt: skip
    return problem, (fit.theta if fit.prior is None else None)


def fit_tests(fit: ModelFit, options: VarianceTestOptions) -> pd.DataFrame:
    """Per-protein test columns for the model stage's protein table.

    ``protein`` plus, per random term ``<t>`` of the model, ``lrt_<t>`` (NaN where the term is
    not in the protein's model, the protein was not fitted, or a fit had no finite optimum) and,
    with ``options.bootstrap > 0``, ``p_boot_<t>`` and ``n_boot_<t>`` (replicates with finite
    refits). Uses the fit's encoded table and its final observation weights (module
    docstring). Empty columns when ``options.lrt`` is off or the model has the random slope
    ``condition|batch`` (:mod:`pepmix.model.slopes`; not refitted by this engine).
    """
    out = pd.DataFrame({"protein": fit.proteins})
    if not options.lrt or fit.encoded is None or SLOPE_TERM in fit.design.spec.random:
        return out
    enc = fit.encoded
    problem, start = refit_problem(fit)
    if start is not None and WARM_STARTS:
        # the weighted REML optimum (before the robust variance factor): the full fits start
        # at their optimum, the reduced ones at it with the tested term at 0 (or the grid)
        if fit.theta_scale is not None:
            start = start * fit.theta_scale[:, None]
        tests = term_lrts(problem, start, null_start=start)
    else:
        tests = term_lrts(problem, start)
    fitted = np.isin(np.asarray(fit.status, dtype=object), FITTED)
    tests.lrt[~fitted] = np.nan
    for f, name in enumerate(tests.factors):
        out[f"lrt_{name}"] = tests.lrt[:, f]
    if options.in_fit:
        select = fitted.copy()
        if options.proteins is not None:
            select &= np.isin(np.asarray(fit.proteins, dtype=object), list(options.proteins))
        weights = fit.weights if fit.weights is not None else np.ones(enc.y.size)
        obs = Observations(prot=enc.prot, feat=enc.feat, run=enc.run, weights=weights)
        pvalue, n_valid = bootstrap_lrt(
            obs, fit.design, fit.proteins, tests, select, options.bootstrap, options.seed
        )
        for f, name in enumerate(tests.factors):
            out[f"p_boot_{name}"] = pvalue[:, f]
            out[f"n_boot_{name}"] = np.where(select, n_valid[:, f], 0)
    return out


def variance_test_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``p_<t>``, ``adj_p_<t>`` and ``icc_<t>`` (and ``adj_p_boot_<t>``) to a table with
    ``lrt_<t>`` and ``var_<t>`` columns (the model stage's protein table).

    ``p_<t>``: the chi-bar-square mixture p-value; ``adj_p_<t>``: Benjamini-Hochberg over the
    proteins with a p-value; ``icc_<t>``: ``var_<t>`` over the sum of all variances (with the
    residual); ``adj_p_boot_<t>``: BH over the bootstrapped proteins.
    """
    from pepmix.inference.fdr import bh_adjust

    out = frame.copy()
    var_cols = [c for c in out.columns if c.startswith("var_")]
    total = out[var_cols].sum(axis=1, min_count=len(var_cols)).to_numpy(dtype=np.float64)
    terms = [c[len("lrt_") :] for c in out.columns if c.startswith("lrt_")]
    for t in terms:
        p = mixture_pvalue(out[f"lrt_{t}"].to_numpy(dtype=np.float64))
        out[f"p_{t}"] = p
        out[f"adj_p_{t}"] = bh_adjust(p)
        if f"p_boot_{t}" in out:
            out[f"adj_p_boot_{t}"] = bh_adjust(out[f"p_boot_{t}"].to_numpy(dtype=np.float64))
        if f"var_{t}" in out:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"icc_{t}"] = out[f"var_{t}"].to_numpy(dtype=np.float64) / total
    return out
