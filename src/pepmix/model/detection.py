r"""Detection probability curve: how the chance of observing a feature depends on its intensity.

Model and notation
------------------
In label-free data the lowest intensities go missing most often. The detection probability
curve (DPC; Li & Smyth, limpa/protDP: Li, Cobbold & Smyth 2025) models the chance that a
feature's log2 intensity :math:`y` in run :math:`r` is observed as

.. math:: P(\text{detected} \mid y) = \Phi(b_{0g} + b_{1g}\,y)

with :math:`\Phi` the standard normal cdf (probit link) and :math:`g = g(r)` the run's curve
group (all runs pooled, one curve per batch, or one per run). The probit link gives closed
forms: if :math:`y \sim N(\mu, s^2)`,

.. math:: P(\text{detected}) = \int \Phi(b_0 + b_1 y)\,\varphi_{\mu,s}(y)\,dy
          = \Phi\Big(\frac{b_0 + b_1\mu}{\sqrt{1 + b_1^2 s^2}}\Big)

and the density of an observed value is skew-normal,
:math:`\varphi_{\mu,s}(y)\,\Phi(b_0 + b_1 y)`. (limpa uses a logistic link; the two links are
practically indistinguishable after rescaling, :math:`\text{logit} \approx 1.7\,\text{probit}`,
so a probit slope of 0.5-1 is a logistic slope of about 0.85-1.7.) The curve is fitted on the
normalised intensities: a per-run curve absorbs any run shift the normalisation removed.

Estimation (:func:`fit_detection_curve`)
----------------------------------------
As in limpa's ``dpc``, the evidence is the distribution of the observed intensities of each
feature together with its detection proportion: a feature observed in few runs at a low mean
intensity is, under the curve, a feature whose complete-data mean is lower still. Each feature
:math:`j` (observed in at least :data:`MIN_OBSERVED` = 2 runs) has complete-data intensities
:math:`y_{jr} \sim N(\mu_{j,c(r)}, s_j^2)`, independent across runs, with one mean per
*condition* :math:`c(r)` of the run (when conditions are given; otherwise one mean). The
selection-model log-likelihood, conditional on the feature having entered the fit, is

.. math:: \ell = \sum_j \Big[\sum_{r\,\text{obs}} \big(\log\varphi_{\mu_{jc},s_j}(y_{jr})
          + \log\Phi(b_{0g} + b_{1g}y_{jr})\big) + \sum_{r\,\text{miss}} \log(1 - p_{jr})
          - \log P(N_j \ge 2)\Big] + \text{priors} + \text{adjustment},
          \qquad p_{jr} = \Phi\Big(\frac{b_{0g} + b_{1g}\mu_{jc}}{\sqrt{1 + b_{1g}^2 s_j^2}}\Big)

The three ingredients beyond the plain per-feature normal, each measured in
``benchmarks/README.md`` (``detection_curve_sim.py``):

- **Condition means.** A feature of a protein that changes between conditions is not one
  normal across runs: a bimodal complete-data distribution fitted by one wide normal makes
  its low-condition misses look like misses at high intensity, i.e. a flatter curve (with
  one mean per feature the slope was 17-37 % too low at true slopes 0.5-1.5, 9-17 % with the
  other two terms below) and one that differs between runs (per-run curves were chosen
  although the truth was pooled). The means :math:`\mu_{jc}` get a weak normal prior around
  their average, :math:`\mu_{jc} - \bar\mu_j \sim N(0, \tau^2)`, so that a feature never
  observed in a condition has a finite mean there; :math:`\tau^2` is a moment estimate over
  the features observed at least twice in every condition (:func:`_condition_prior`).
  Protein-level sample effects need no term: marginally they add to :math:`s_j^2`; they
  correlate the features of a protein, which the (composite) likelihood ignores.
- **Truncation.** Only features observed at least twice enter, so each feature's likelihood is
  conditioned on that event: :math:`P(N_j \ge 2) = 1 - P_0(1 + \sum_r p_{jr}/(1 - p_{jr}))`,
  :math:`P_0 = \prod_r (1 - p_{jr})` (the detection count is Poisson-binomial). limpa's
  ``dpc`` conditions likewise, with a zero-truncated binomial for the detection counts.
- **Nuisance-parameter adjustment.** The feature means and variances are many nuisance
  parameters estimated from a few runs each (the incidental-parameter problem: maximum
  likelihood under-estimates :math:`s_j^2` by the factor :math:`(n_j - C)/n_j`). The profile
  likelihood gets the Cox-Reid adjustment (Cox & Reid 1987)
  :math:`-\tfrac12\log\det(\operatorname{diag}(n_{jc}/s_j^2 + \kappa_{jc}) + P/\tau^2)`,
  :math:`P = I - \mathbf{1}\mathbf{1}^T/C`: the information of the means in the normal
  part, :math:`\kappa_{jc}` the curvature of the missing cells' :math:`\log(1 - p_{jr})` in
  condition :math:`c`, and the prior's (the REML
  correction when the curve is flat; a Laplace approximation to integrating the means out).
  The curvature of the truncation term is left out.

With all three the slope is within -1 % to +4 % of the truth at slopes 0.5-1.5 on the
benchmark's generator and the 50 % point within 0.11 log2 units; on data that follow the
one-mean model exactly (10 runs) the slope is about 6 % low (unit tests).

The variance :math:`s_j^2` has a weak scaled-inverse-:math:`\chi^2` prior (:data:`PRIOR_DF`
df, scale the median within-condition variance) that keeps the variance of features seen in
two or three runs away from zero (limpa likewise moderates the per-precursor variances, by an
empirical-Bayes trend). The criterion is maximised by alternating two batched Newton
maximisations (finite-difference derivatives): the feature parameters
:math:`(\mu_{j\cdot}, \log s_j)` given the curve, and the curve :math:`(b_{0g}, b_{1g} \ge 0)`
of every group given the features (the truncation term couples the groups: each group's step
holds the others at their current values), until the criterion changes by less than ``1e-6``
per feature. Differences from limpa: probit instead of logistic (closed forms); the
observed-data likelihood of the selection model is maximised jointly instead of limpa's moment
equations; condition means; at most :data:`MAX_FEATURES` features and, with many runs, at
most :data:`MAX_CELLS` cells (features x runs; but at least :data:`MIN_FEATURES_AT_LIMIT`
features) enter, a fixed-seed random subset: this bounds the cost (a fixed cost, whatever the
number of proteins) and is ample for two parameters per group (the accuracy above was
measured with about 4,000 features x 8 runs; 2,000 features x 200 runs give each run's curve
2,000 cells).

Per run or pooled
-----------------
:func:`fit_detection_curve` fits each candidate grouping (pooled; per batch when batches are
given; per run) and keeps the one with the smallest BIC, :math:`-2\ell + 2G\log n`, with
:math:`n` the number of cells (features x runs) in the fit; AIC (:math:`-2\ell + 4G`) on
request. The feature parameters are the same in all candidates. BIC rather than AIC because the
complete-data model is an approximation (normal per feature and condition, runs independent,
features of a protein independent): with thousands of features, small misfits make the
likelihood-ratio statistic of per-run curves against a pooled one exceed its chi-square
reference (whose 95 % point AIC roughly uses), so AIC over-splits; BIC's penalty
(:math:`\log n \approx 10`-:math:`15` per parameter) demands a misfit that grows with the data
before splitting, while a real batch or run difference in the curve (a shift of the 50 % point
by a few tenths of a log2 unit) gives a statistic in the hundreds and is still detected
(measured in ``benchmarks/README.md``; a parametric bootstrap of the statistic would calibrate
it under the fitted model only, i.e. not against the misspecification that matters, at ten or
more times the cost). The table of candidates, with AIC, BIC and the likelihood-ratio test of
each against the pooled curve, is kept in :attr:`DetectionCurve.candidates`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special, stats

from pepmix.errors import DesignError

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

#: fewest observed runs for a feature to enter the curve estimate
MIN_OBSERVED = 2
#: most features used for the curve (fixed-seed random subset beyond)
MAX_FEATURES = 20_000
#: most cells (features x runs) used for the curve: fewer features with many runs
MAX_CELLS = 100_000
#: fewest features the cell limit leaves
MIN_FEATURES_AT_LIMIT = 2_000
#: prior df of the per-feature complete-data variance
PRIOR_DF = 4.0
#: alternations of the feature and curve steps
MAX_ROUNDS = 100
LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass
class DetectionCurve:
    """A fitted probit detection probability curve.

    Attributes
    ----------
    b0, b1 : ndarray, shape (G,)
        Intercept and slope of each curve group.
    group_of_run : ndarray of int, shape (R,)
        Curve group of each run (index into ``b0``, ``b1``).
    runs : list of str
        Run names, in the order of ``group_of_run``.
    grouping : str
        ``pooled``, ``batch`` or ``run``.
    loglik : float
        Maximised criterion of the chosen grouping (truncated, prior- and Cox-Reid-adjusted
        log-likelihood; module docstring).
    candidates : pandas.DataFrame
        One row per grouping tried: ``grouping, n_curves, loglik, aic, bic, lr_stat, lr_df,
        lr_p`` (likelihood-ratio test against the pooled curve; BIC with the number of cells;
        the choice is by BIC unless AIC was requested).
    n_features : int
        Features used in the fit.
    feature_sd : float
        Median fitted complete-data SD of a feature within a condition (for the QC figure's
        model curve).
    """

    b0: FloatArray
    b1: FloatArray
    group_of_run: NDArray[np.intp]
    runs: list[str]
    grouping: str = "pooled"
    loglik: float = float("nan")
    candidates: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_features: int = 0
    feature_sd: float = float("nan")

    def expected(self, mu: FloatArray, group: int = 0) -> tuple[FloatArray, FloatArray]:
        r"""Detection proportion and mean observed intensity of a feature with mean ``mu``.

        For :math:`y \sim N(\mu, s^2)`, :math:`s` = :attr:`feature_sd`, under group ``group``'s
        curve: :math:`P = \Phi(a)`, :math:`E[y \mid \text{detected}] = \mu +
        \frac{b_1 s^2}{\sqrt{1 + b_1^2 s^2}}\,\varphi(a)/\Phi(a)`,
        :math:`a = (b_0 + b_1\mu)/\sqrt{1 + b_1^2 s^2}` (skew-normal mean).
        """
        b0, b1, s = self.b0[group], self.b1[group], self.feature_sd
        root = np.sqrt(1.0 + b1**2 * s**2)
        a = (b0 + b1 * mu) / root
        mills = np.exp(-0.5 * a**2 - 0.5 * LOG_2PI - special.log_ndtr(a))
        prop: FloatArray = special.ndtr(a)
        mean: FloatArray = mu + b1 * s**2 / root * mills
        return prop, mean

    def per_run(self) -> tuple[FloatArray, FloatArray]:
        """Intercept and slope of every run, shape (R,) each."""
        return self.b0[self.group_of_run], self.b1[self.group_of_run]

    def probability(self, y: FloatArray, run: NDArray[np.intp]) -> FloatArray:
        """``P(detected | y)`` for intensities ``y`` in runs ``run`` (codes)."""
        b0, b1 = self.per_run()
        out: FloatArray = special.ndtr(b0[run] + b1[run] * y)
        return out

    @classmethod
    def constant(cls, runs: Sequence[str], b0: float, b1: float) -> DetectionCurve:
        """A pooled curve with given coefficients (``b1 = 0``: missing at random)."""
        return cls(
            b0=np.array([b0], dtype=np.float64),
            b1=np.array([b1], dtype=np.float64),
            group_of_run=np.zeros(len(runs), dtype=np.intp),
            runs=list(runs),
        )


def feature_matrix(table: pd.DataFrame, runs: Sequence[str]) -> FloatArray:
    """Features x runs matrix of ``y`` (NaN where not observed) from a long table.

    ``table`` has columns ``protein, feature, run, y`` (one row per observed cell); features are
    keyed by ``(protein, feature)``.
    """
    run, protein, feature = table["run"], table["protein"], table["feature"]
    if all(isinstance(c.dtype, pd.CategoricalDtype) for c in (run, protein, feature)):
        # categorical identifiers: integer codes (same rows, same order of first appearance)
        run_codes = run.cat.codes.to_numpy()
        by_category = pd.Index(list(runs)).get_indexer(run.cat.categories.astype(str))
        run_index = np.where(run_codes >= 0, by_category[run_codes], -1)
        prot_codes = protein.cat.codes.to_numpy().astype(np.int64)
        feat_codes = feature.cat.codes.to_numpy().astype(np.int64)
        codes, _ = pd.factorize(prot_codes * (len(feature.cat.categories) + 1) + feat_codes)
    else:
        run_index = pd.Index(list(runs)).get_indexer(pd.Index(run))
        codes, _ = pd.factorize(pd.MultiIndex.from_arrays([protein, feature]))
    if np.any(run_index < 0):
        raise DesignError("detection curve: the table has runs that are not in the design")
    out = np.full((int(codes.max()) + 1 if codes.size else 0, len(runs)), np.nan)
    out[codes, run_index] = table["y"].to_numpy(dtype=np.float64)
    return out


Objective = Callable[[FloatArray, NDArray[np.intp]], FloatArray]


def _minimise(
    fun: Objective,
    x: FloatArray,
    lower: FloatArray,
    step: float = 1e-4,
    max_iter: int = 50,
    upper: FloatArray | None = None,
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Batched projected Newton minimisation of ``fun`` (rows independent) with FD derivatives.

    ``fun(points, rows)`` maps ``(N, k)`` points of the rows ``rows`` (indices into ``x``) to
    ``(N,)`` values; ``lower`` (shape ``(k,)``) bounds each coordinate below (``-inf`` for none),
    ``upper`` (default None: no bound) above.
    One-sided differences are used within ``step`` of a bound; the Hessian is made positive
    definite by taking absolute eigenvalues (floored). A row stops where ``fun`` or its
    derivatives are not finite (it stays at its last point), when the Newton step predicts
    a decrease below ``1e-9 (1 + |f|)`` or no backtracking step decreases ``fun`` by more than
    ``1e-12 (1 + |f|)``.
    """
    high = np.full(x.shape[1], np.inf) if upper is None else upper
    x = np.clip(x.copy(), lower, high)
    active = np.arange(x.shape[0])
    k = x.shape[1]
    diag = np.arange(k)
    for _ in range(max_iter):
        xa = x[active]
        with np.errstate(invalid="ignore", over="ignore"):
            f0, grad, hess = _fd_derivatives(fun, xa, active, lower, step)
        usable = np.isfinite(f0) & np.all(np.isfinite(grad), axis=1)
        usable &= np.all(np.isfinite(hess), axis=(1, 2))
        grad = np.where(usable[:, None], grad, 0.0)
        hess = np.where(usable[:, None, None], hess, np.eye(k))
        at_bound = ((xa <= lower + 1e-12) & (grad > 0)) | ((xa >= high - 1e-12) & (grad < 0))
        grad = np.where(at_bound, 0.0, grad)
        hess = np.where(at_bound[:, :, None] | at_bound[:, None, :], 0.0, hess)
        hess[:, diag, diag] = np.where(at_bound, 1.0, hess[:, diag, diag])
        vals, vecs = np.linalg.eigh(hess)
        floor = np.maximum(1e-8 * np.abs(vals).max(axis=1, keepdims=True), 1e-10)
        vals = np.maximum(np.abs(vals), floor)
        direction = -np.einsum("nij,nj,nkj,nk->ni", vecs, 1.0 / vals, vecs, grad)
        predicted = -np.einsum("ni,ni->n", grad, direction)
        going = usable & (predicted > 1e-9 * (1.0 + np.abs(np.where(usable, f0, 0.0))))
        new, improved = _backtrack(
            fun, xa[going], active[going], f0[going], direction[going], grad[going], (lower, high)
        )
        x[active[going]] = new
        active = active[going][improved]
        log.debug("minimise: %d rows active", active.size)
        if active.size == 0:
            break
    stopped = np.ones(x.shape[0], dtype=bool)
    stopped[active] = False
    return x, stopped


def _fd_derivatives(
    fun: Objective, x: FloatArray, rows: NDArray[np.intp], lower: FloatArray, h: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Value, gradient and Hessian by finite differences (forward near a bound)."""
    n, k = x.shape
    f0 = fun(x, rows)
    grad = np.zeros((n, k))
    hess = np.zeros((n, k, k))
    plus = []
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        fp = fun(x + e, rows)
        plus.append(fp)
        near = x[:, i] - h < lower[i]
        fm = fun(np.where(near[:, None], x + 2 * e, x - e), rows)
        grad[:, i] = np.where(near, (-3 * f0 + 4 * fp - fm) / (2 * h), (fp - fm) / (2 * h))
        hess[:, i, i] = np.where(near, f0 - 2 * fp + fm, fp - 2 * f0 + fm) / h**2
    for i in range(k):
        for j in range(i + 1, k):
            e = np.zeros(k)
            e[i] = e[j] = h
            fij = fun(x + e, rows)
            hess[:, i, j] = hess[:, j, i] = (fij - plus[i] - plus[j] + f0) / h**2
    return f0, grad, hess


def _backtrack(
    fun: Objective,
    x: FloatArray,
    rows: NDArray[np.intp],
    f0: FloatArray,
    direction: FloatArray,
    grad: FloatArray,
    bounds: tuple[FloatArray, FloatArray],
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Armijo backtracking along projected steps; rows that do not improve stay put."""
    t = np.ones(x.shape[0])
    new = x.copy()
    improved = np.zeros(x.shape[0], dtype=bool)
    pending = np.arange(x.shape[0])
    slope = np.einsum("ni,ni->n", grad, direction)
    for _ in range(20):
        trial = np.clip(x[pending] + t[pending, None] * direction[pending], *bounds)
        ft = fun(trial, rows[pending])
        base = f0[pending]
        ok = np.isfinite(ft) & (ft <= base + 1e-4 * t[pending] * np.minimum(slope[pending], 0.0))
        ok &= (base - ft) > 1e-12 * (1.0 + np.abs(base))
        new[pending[ok]] = trial[ok]
        improved[pending[ok]] = True
        pending = pending[~ok]
        if pending.size == 0:
            break
        t[pending] /= 2
    return new, improved


def _missing_logp(b0: FloatArray, b1: FloatArray, mu: FloatArray, s: FloatArray) -> FloatArray:
    """``log P(not detected)`` of ``y ~ N(mu, s^2)`` under the probit curve (closed form)."""
    out: FloatArray = special.log_ndtr(-(b0 + b1 * mu) / np.sqrt(1.0 + b1**2 * s**2))
    return out


@dataclass
class _CurveData:
    y: FloatArray  # (J, R), 0 where missing
    observed: NDArray[np.bool_]
    s0sq: float
    cond: NDArray[np.intp]  # (R,) condition code of each run
    tau2: float  # prior variance of a feature's condition deviations (inf: one condition)

    def take(self, rows: NDArray[np.intp]) -> _CurveData:
        """The features ``rows`` only."""
        if rows.size == self.y.shape[0]:
            return self
        return _CurveData(self.y[rows], self.observed[rows], self.s0sq, self.cond, self.tau2)

    @property
    def n_cond(self) -> int:
        """Number of conditions (columns of the feature means)."""
        return int(self.cond.max()) + 1

    def counts(self) -> FloatArray:
        """Observed cells per feature and condition, shape (J, C)."""
        onehot = np.eye(self.n_cond)[self.cond]
        out: FloatArray = self.observed.astype(np.float64) @ onehot
        return out


def _feature_terms(
    data: _CurveData, mu: FloatArray, log_s: FloatArray, b0r: FloatArray, b1r: FloatArray
) -> FloatArray:
    """Per-feature log-likelihood without the observed cells' curve term (module docstring).

    ``mu`` has shape (J, C) (condition means), ``log_s`` (J,). Sums the normal densities of the
    observed cells, the missing cells' log P(not detected), the truncation to features observed
    in at least two runs, the variance prior, the condition prior and the Cox-Reid adjustment.
    """
    s = np.exp(log_s)
    mean = mu[:, data.cond]
    z = (data.y - mean) / s[:, None]
    obs = np.where(data.observed, -0.5 * z**2 - log_s[:, None] - 0.5 * LOG_2PI, 0.0)
    root = np.sqrt(1.0 + b1r**2 * s[:, None] ** 2)
    a = (b0r + b1r * mean) / root
    log_q = special.log_ndtr(-a)
    miss = np.where(data.observed, 0.0, log_q)
    trunc = _log_at_least_two(log_q.sum(axis=1), _odds(log_q).sum(axis=1))
    prior = -(PRIOR_DF / 2 + 1) * 2 * log_s - PRIOR_DF * data.s0sq / (2 * s**2)
    curv = _on_missing(data.observed, a, log_q, b1r / root)
    info = data.counts() / s[:, None] ** 2 + curv @ np.eye(data.n_cond)[data.cond]
    out: FloatArray = obs.sum(axis=1) + miss.sum(axis=1) + prior - trunc
    return out + _condition_prior_term(data, mu) - 0.5 * _log_det_info(info, data.tau2)


def _missing_curvature(a: FloatArray, log_q: FloatArray, k: FloatArray) -> FloatArray:
    r"""``-d^2/d mu^2`` of a missing cell's :math:`\log\Phi(-a)`, :math:`a = (b_0 + b_1\mu)/r`.

    Equals :math:`k^2 \lambda(\lambda - a)` with :math:`k = b_1/r` and the inverse Mills ratio
    :math:`\lambda = \varphi(a)/\Phi(-a)`; ``log_q`` is :math:`\log\Phi(-a)`.
    """
    lam = np.exp(-0.5 * a**2 - 0.5 * LOG_2PI - log_q)
    out: FloatArray = k**2 * lam * (lam - a)
    return out


def _on_missing(
    observed: NDArray[np.bool_], a: FloatArray, log_q: FloatArray, k: FloatArray
) -> FloatArray:
    """:func:`_missing_curvature` on the missing cells, 0 on the observed ones (shape of ``a``)."""
    miss = ~observed
    out = np.zeros(a.shape)
    out[miss] = _missing_curvature(a[miss], log_q[miss], np.broadcast_to(k, a.shape)[miss])
    return out


def _log_at_least_two(log_p0: FloatArray, sum_odds: FloatArray) -> FloatArray:
    r"""``log P(N >= 2)`` of a feature's detection count N (Poisson-binomial over runs).

    :math:`P(N \ge 2) = 1 - P_0 (1 + \sum_r p_r / (1 - p_r))` with :math:`P_0 = \prod_r (1 - p_r)`
    (``log_p0``) and the sum of the odds (``sum_odds``, same shape, each odds capped by
    :func:`_odds`).
    """
    x = np.minimum(log_p0 + np.log1p(sum_odds), -1e-15)
    out: FloatArray = np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))
    return out


def _odds(log_q: FloatArray) -> FloatArray:
    """Detection odds ``p / (1 - p) = 1/q - 1`` from ``log q = log(1 - p)``, capped at ``exp(50)``:
    a run detected with probability ``1 - exp(-50)`` makes ``P_0`` negligible anyway."""
    out: FloatArray = np.expm1(np.minimum(-log_q, 50.0))
    return out


def _condition_prior_term(data: _CurveData, mu: FloatArray) -> FloatArray:
    r"""Condition prior :math:`-\sum_c (\mu_{jc} - \bar\mu_j)^2 / (2\tau^2)`, shape (J,)."""
    if data.n_cond == 1:
        return np.zeros(mu.shape[0])
    dev = mu - mu.mean(axis=1, keepdims=True)
    out: FloatArray = -0.5 * np.sum(dev**2, axis=1) / data.tau2
    return out


def _log_det_info(diag: FloatArray, tau2: float) -> FloatArray:
    r"""Log-determinant of :math:`\operatorname{diag}(d) + P/\tau^2`.

    :math:`P = I - \mathbf{1}\mathbf{1}^T/C`.

    ``diag`` has shape (..., C): the information of a feature's condition means from its
    cells; the prior adds :math:`P/\tau^2` (nothing with one condition).
    """
    c = diag.shape[-1]
    if c == 1:
        out: FloatArray = np.log(diag[..., 0])
        return out
    info = (np.eye(c) - 1.0 / c) / tau2 + diag[..., :, None] * np.eye(c)
    out = np.linalg.slogdet(info)[1]
    return out


def _total_loglik(data: _CurveData, mu: FloatArray, log_s: FloatArray, b: FloatArray,
                  group_of_run: NDArray[np.intp]) -> float:  # fmt: skip
    """The criterion maximised (module docstring) at given features and curves."""
    b0r, b1r = b[group_of_run, 0], b[group_of_run, 1]
    detect = np.where(data.observed, special.log_ndtr(b0r + b1r * data.y), 0.0)
    return float(_feature_terms(data, mu, log_s, b0r, b1r).sum() + detect.sum())


class _CurveStep:
    """Curve step's objective: each group's curve given the features and the other groups.

    The truncation term couples the groups (it depends on all runs of a feature); a row's
    value uses its own trial curve for its runs and the current curves elsewhere (block
    coordinate ascent, converged by the outer alternation).
    """

    def __init__(
        self,
        data: _CurveData,
        features: tuple[FloatArray, FloatArray],
        group_of_run: NDArray[np.intp],
        current: FloatArray,
    ) -> None:
        self.data = data
        self.mean = features[0][:, data.cond]
        self.s = np.exp(features[1])[:, None]
        self.group_of_run = group_of_run
        self.current = current
        n_groups = current.shape[0]
        self.onehot = np.eye(n_groups)[group_of_run]
        self.onehot_cg = np.eye(data.n_cond * n_groups)[data.cond * n_groups + group_of_run]
        self.n_info = data.counts() / self.s**2
        self.y_obs = data.y[data.observed]
        _, self.lq0, self.odds0, self.curv0 = self._sums(current)
        self.lq0_total = self.lq0.sum(axis=1, keepdims=True)
        self.odds0_total = self.odds0.sum(axis=1, keepdims=True)
        self.curv0_total = self.curv0.sum(axis=2, keepdims=True)

    def _sums(self, b: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Per feature and group: curve terms of the cells, log P(missed), detection odds;
        per feature, condition and group: missing-cell curvature, shape (J, C, G)."""
        b0r, b1r = b[self.group_of_run, 0], b[self.group_of_run, 1]
        root = np.sqrt(1.0 + b1r**2 * self.s**2)
        a = (b0r + b1r * self.mean) / root
        log_q = special.log_ndtr(-a)
        obs = self.data.observed
        cell = log_q.copy()
        cell[obs] = special.log_ndtr(
            np.broadcast_to(b0r, obs.shape)[obs] + np.broadcast_to(b1r, obs.shape)[obs] * self.y_obs
        )
        odds = _odds(log_q)
        curv = _on_missing(obs, a, log_q, b1r / root)
        by_cg = (curv @ self.onehot_cg).reshape(curv.shape[0], self.data.n_cond, -1)
        return cell @ self.onehot, log_q @ self.onehot, odds @ self.onehot, by_cg

    def __call__(self, x: FloatArray, rows: NDArray[np.intp]) -> FloatArray:
        full = self.current.copy()
        full[rows] = x
        cell, lq, odds, curv = self._sums(full)
        log_p0 = self.lq0_total - self.lq0[:, rows] + lq[:, rows]
        sum_odds = np.maximum(self.odds0_total - self.odds0[:, rows] + odds[:, rows], 0.0)
        extra = np.maximum(self.curv0_total - self.curv0[:, :, rows] + curv[:, :, rows], 0.0)
        info = self.n_info[:, None, :] + np.swapaxes(extra, 1, 2)  # (J, N, C)
        adjust = -0.5 * _log_det_info(info, self.data.tau2)
        total = cell[:, rows] - _log_at_least_two(log_p0, sum_odds) + adjust
        out: FloatArray = -total.sum(axis=0)
        return out


def _fit_grouping(
    data: _CurveData, group_of_run: NDArray[np.intp], start: tuple[FloatArray, ...]
) -> tuple[FloatArray, FloatArray, float, FloatArray, FloatArray]:
    """Alternate feature and curve steps for one grouping; return ``b0, b1, loglik, mu, log_s``."""
    n_groups = int(group_of_run.max()) + 1
    mu, log_s, b0_all, b1_all = start
    b = np.column_stack(
        [np.full(n_groups, float(np.mean(b0_all))), np.full(n_groups, float(np.mean(b1_all)))]
    )
    total = -np.inf
    n_feat, n_cond = mu.shape
    lower = np.r_[np.full(n_cond, -np.inf), -10.0]
    for _ in range(MAX_ROUNDS):
        b0r, b1r = b[group_of_run, 0], b[group_of_run, 1]

        def feat_obj(
            x: FloatArray, rows: NDArray[np.intp], b0r: FloatArray = b0r, b1r: FloatArray = b1r
        ) -> FloatArray:
            return -_feature_terms(data.take(rows), x[:, :-1], x[:, -1], b0r, b1r)

        xf, _ = _minimise(feat_obj, np.column_stack([mu, log_s]), lower)
        mu, log_s = xf[:, :-1], xf[:, -1]
        step = _CurveStep(data, (mu, log_s), group_of_run, b)
        b = _minimise(step, b, np.array([-np.inf, 0.0]), step=1e-5)[0]
        new_total = _total_loglik(data, mu, log_s, b, group_of_run)
        if abs(new_total - total) < 1e-6 * n_feat:
            total = new_total
            break
        total = new_total
    return b[:, 0], b[:, 1], total, mu, log_s


def _curve_data(matrix: FloatArray, cond: NDArray[np.intp], seed: int) -> _CurveData:
    n_obs = np.sum(np.isfinite(matrix), axis=1)
    rows = np.flatnonzero(n_obs >= MIN_OBSERVED)
    if rows.size < 10:
        raise DesignError(
            f"detection curve: only {rows.size} features observed in >= {MIN_OBSERVED} runs"
        )
    limit = min(MAX_FEATURES, max(MIN_FEATURES_AT_LIMIT, MAX_CELLS // matrix.shape[1]))
    if rows.size > limit:
        rows = np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))
    sub = matrix[rows]
    observed = np.isfinite(sub)
    y = np.where(observed, sub, 0.0)
    n_cond = int(cond.max()) + 1
    onehot = np.eye(n_cond)[cond]
    n = observed.astype(np.float64) @ onehot
    means = (y @ onehot) / np.maximum(n, 1.0)
    within = np.where(observed, (y - means[:, cond]) ** 2, 0.0).sum(axis=1)
    df = observed.sum(axis=1) - np.sum(n > 0, axis=1)
    s0sq = float(np.median(within[df > 0] / df[df > 0])) if np.any(df > 0) else 1.0
    return _CurveData(y, observed, s0sq, cond, _condition_prior(means, n, within, df))


def _condition_prior(means: FloatArray, n: FloatArray, within: FloatArray, df: FloatArray) -> float:
    r"""Moment estimate of :math:`\tau^2`, the variance of a feature's condition deviations.

    Over features with two or more observations in every condition:
    :math:`E[\operatorname{var}_c \bar y_{jc}] = \tau^2 + s_j^2\,\overline{1/n_{jc}}`, so
    :math:`\hat\tau^2` is the mean of the differences (floored at 1e-2); infinite with one
    condition; the variance of the features' mean intensities when no feature qualifies. A
    mean rather than a median: the prior must allow the large changes of the
    few changing features, so it errs on the wide side.
    """
    if means.shape[1] == 1:
        return float("inf")
    full = np.all(n >= 2, axis=1) & (df > 0)
    if not np.any(full):  # no evidence on condition changes: as wide as the abundance spread
        overall = np.sum(means * n, axis=1) / np.sum(n, axis=1)
        return float(max(np.var(overall), 1e-2))
    between = np.var(means[full], axis=1, ddof=1)
    noise = within[full] / df[full] * np.mean(1.0 / n[full], axis=1)
    return float(max(np.mean(between - noise), 1e-2))


def _groupings(
    names: Sequence[str], n_runs: int, batches: Sequence[str] | None
) -> dict[str, NDArray[np.intp]]:
    options: dict[str, NDArray[np.intp]] = {}
    for name in names:
        if name == "pooled":
            options[name] = np.zeros(n_runs, dtype=np.intp)
        elif name == "run":
            options[name] = np.arange(n_runs, dtype=np.intp)
        elif name == "batch" and batches is not None and len(set(batches)) > 1:
            options[name] = pd.factorize(pd.Index(list(batches)))[0].astype(np.intp)
        elif name not in ("pooled", "run", "batch"):
            raise ValueError(f"unknown detection curve grouping {name!r}")
    return options


def _condition_codes(conditions: Sequence[str] | None, n_runs: int) -> NDArray[np.intp]:
    if conditions is None:
        return np.zeros(n_runs, dtype=np.intp)
    if len(conditions) != n_runs:
        raise DesignError(f"detection curve: {len(conditions)} conditions given for {n_runs} runs")
    return pd.factorize(pd.Index(list(conditions)))[0].astype(np.intp)


def fit_detection_curve(
    matrix: FloatArray,
    runs: Sequence[str],
    batches: Sequence[str] | None = None,
    groupings: Sequence[str] = ("pooled", "batch", "run"),
    seed: int = 1,
    conditions: Sequence[str] | None = None,
    criterion: str = "bic",
) -> DetectionCurve:
    """Fit the probit detection curve (see the module docstring) and choose its grouping.

    Parameters
    ----------
    matrix : ndarray, shape (J, R)
        Normalised log2 intensities, features x runs, NaN where not observed
        (:func:`feature_matrix`).
    runs : sequence of str
        Run names (columns of ``matrix``).
    batches : sequence of str, optional
        Batch of each run; default None: no per-batch candidate.
    groupings : sequence of str, default ("pooled", "batch", "run")
        Candidate groupings; ``batch`` is skipped without ``batches`` or with one batch.
    seed : int, default 1
        Seed of the random feature subset beyond :data:`MAX_FEATURES` features or
        :data:`MAX_CELLS` cells.
    conditions : sequence of str, optional
        Condition of each run; each feature then has one complete-data mean per condition
        (module docstring). Default None: one mean per feature (condition effects, if any,
        flatten the fitted curve).
    criterion : {"bic", "aic"}, default "bic"
        Criterion choosing the grouping (module docstring, "Per run or pooled").

    Returns
    -------
    DetectionCurve
        The grouping with the smallest criterion.
    """
    if criterion not in ("bic", "aic"):
        raise ValueError(f"unknown detection curve criterion {criterion!r}")
    n_runs = len(runs)
    data = _curve_data(
        np.asarray(matrix, dtype=np.float64), _condition_codes(conditions, n_runs), seed
    )
    rate = float(data.observed.mean())
    onehot = np.eye(data.n_cond)[data.cond]
    n = data.counts()
    overall = data.y.sum(axis=1) / data.observed.sum(axis=1)
    mu0 = np.where(n > 0, (data.y @ onehot) / np.maximum(n, 1.0), overall[:, None] - 1.0)
    b1_0 = 0.5
    b0_0 = float(stats.norm.ppf(min(max(rate, 0.01), 0.99))) - b1_0 * float(np.mean(overall))
    start = (
        mu0,
        np.full(overall.size, 0.5 * np.log(data.s0sq)),
        np.array([b0_0]),
        np.array([b1_0]),
    )
    fits = {}
    sds = {}
    for name, groups in _groupings(groupings, n_runs, batches).items():
        b0, b1, ll, mu, log_s = _fit_grouping(data, groups, start)
        fits[name] = (b0, b1, ll, groups)
        sds[name] = float(np.exp(np.median(log_s)))
        if name == "pooled":  # warm start for finer groupings
            start = (mu, log_s, b0, b1)
    curve = _choose(fits, runs, data.y.shape[0], data.y.size, criterion)
    curve.feature_sd = sds[curve.grouping]
    return curve


def _choose(
    fits: dict[str, tuple[FloatArray, FloatArray, float, NDArray[np.intp]]],
    runs: Sequence[str],
    n_features: int,
    n_cells: int,
    criterion: str,
) -> DetectionCurve:
    rows = []
    pooled_ll = fits["pooled"][2] if "pooled" in fits else float("nan")
    for name, (b0, _, ll, _) in fits.items():
        n_par = 2 * b0.size
        lr = 2.0 * (ll - pooled_ll)
        lr_df = n_par - 2
        rows.append(
            {
                "grouping": name,
                "n_curves": b0.size,
                "loglik": ll,
                "aic": -2.0 * ll + 2.0 * n_par,
                "bic": -2.0 * ll + np.log(n_cells) * n_par,
                "lr_stat": lr if lr_df > 0 else np.nan,
                "lr_df": lr_df,
                "lr_p": float(stats.chi2.sf(max(lr, 0.0), lr_df)) if lr_df > 0 else np.nan,
            }
        )
    table = pd.DataFrame(rows)
    best = str(table["grouping"].to_numpy()[int(np.argmin(table[criterion].to_numpy()))])
    b0, b1, ll, groups = fits[best]
    log.info(
        "detection curve: %s (%d curves, slope median %.3g) chosen by %s from %s; %d features",
        best,
        b0.size,
        float(np.median(b1)),
        criterion.upper(),
        ", ".join(table["grouping"]),
        n_features,
    )
    return DetectionCurve(
        b0=b0,
        b1=b1,
        group_of_run=groups,
        runs=list(runs),
        grouping=best,
        loglik=ll,
        candidates=table,
        n_features=n_features,
    )
