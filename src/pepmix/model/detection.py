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
:math:`j` (observed in at least :data:`MIN_OBSERVED` runs) has complete-data intensities
:math:`y_{jr} \sim N(\mu_j, s_j^2)`, independent across runs (condition effects are absorbed
into :math:`s_j`), so that the selection-model log-likelihood is

.. math:: \ell = \sum_j \Big[\sum_{r\,\text{obs}} \big(\log\varphi_{\mu_j,s_j}(y_{jr})
          + \log\Phi(b_{0g} + b_{1g}y_{jr})\big) + \sum_{r\,\text{miss}}
          \log\Big(1 - \Phi\Big(\frac{b_{0g} + b_{1g}\mu_j}{\sqrt{1 + b_{1g}^2 s_j^2}}\Big)\Big)
          \Big] + \sum_j \log p(s_j^2)

with a weak scaled-inverse-:math:`\chi^2` prior :math:`p(s_j^2)` (:data:`PRIOR_DF` df, scale the
median observed variance) that keeps the variance of features seen in two or three runs away
from zero (limpa likewise moderates the per-precursor variances, by an empirical-Bayes trend).
It is maximised by alternating two batched Newton maximisations (finite-difference derivatives):
the feature parameters :math:`(\mu_j, \log s_j)` given the curve, and the curve
:math:`(b_{0g}, b_{1g} \ge 0)` of every group given the features, until the log-likelihood
changes by less than ``1e-6`` per feature. Differences from limpa: probit instead of logistic
(closed forms); the observed-data likelihood of the selection model is maximised jointly
instead of limpa's moment equations; at most :data:`MAX_FEATURES` features (a fixed-seed
random subset) enter, which bounds the cost and is ample for two parameters per group.

Per run or pooled
-----------------
:func:`fit_detection_curve` fits each candidate grouping (pooled; per batch when batches are
given; per run) and keeps the one with the smallest AIC, :math:`-2\ell + 2 \times 2G`
(the feature parameters are the same in all candidates). The table of candidates, with BIC
and the likelihood-ratio test of each against the pooled curve, is kept in
:attr:`DetectionCurve.candidates`. Measured (``benchmarks/detection_sim.py``): on data simulated
with one pooled curve but protein-level sample effects and condition effects, which the
per-feature model ignores, AIC chose per-run curves in every data set; the per-run curves were
close to each other. With features that follow the per-feature model it keeps the pooled curve
(tests).
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
        Maximised log-likelihood of the chosen grouping.
    candidates : pandas.DataFrame
        One row per grouping tried: ``grouping, n_curves, loglik, aic, bic, lr_stat, lr_df,
        lr_p`` (likelihood-ratio test against the pooled curve; BIC with the number of cells,
        for information: the choice is by AIC).
    n_features : int
        Features used in the fit.
    feature_sd : float
        Median fitted complete-data SD of a feature across runs (for the QC figure's
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
    run_index = pd.Index(list(runs)).get_indexer(pd.Index(table["run"]))
    if np.any(run_index < 0):
        raise DesignError("detection curve: the table has runs that are not in the design")
    key = pd.MultiIndex.from_arrays([table["protein"], table["feature"]])
    codes, _ = pd.factorize(key)
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

    def take(self, rows: NDArray[np.intp]) -> _CurveData:
        """The features ``rows`` only."""
        if rows.size == self.y.shape[0]:
            return self
        return _CurveData(self.y[rows], self.observed[rows], self.s0sq)


def _feature_loglik(
    data: _CurveData, mu: FloatArray, log_s: FloatArray, b0r: FloatArray, b1r: FloatArray
) -> FloatArray:
    """Per-feature log-likelihood (without the curve's observed-cell term) plus prior."""
    s = np.exp(log_s)
    z = (data.y - mu[:, None]) / s[:, None]
    obs = np.where(data.observed, -0.5 * z**2 - log_s[:, None] - 0.5 * LOG_2PI, 0.0)
    miss = np.where(data.observed, 0.0, _missing_logp(b0r, b1r, mu[:, None], s[:, None]))
    prior = -(PRIOR_DF / 2 + 1) * 2 * log_s - PRIOR_DF * data.s0sq / (2 * s**2)
    out: FloatArray = obs.sum(axis=1) + miss.sum(axis=1) + prior
    return out


def _run_loglik(
    data: _CurveData, mu: FloatArray, log_s: FloatArray, b0r: FloatArray, b1r: FloatArray
) -> FloatArray:
    """Per-run curve log-likelihood: observed-cell probit terms plus missing-cell terms."""
    s = np.exp(log_s)[:, None]
    detect = np.where(data.observed, special.log_ndtr(b0r + b1r * data.y), 0.0)
    miss = np.where(data.observed, 0.0, _missing_logp(b0r, b1r, mu[:, None], s))
    out: FloatArray = (detect + miss).sum(axis=0)
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
    n_feat = mu.size
    for _ in range(MAX_ROUNDS):
        b0r, b1r = b[group_of_run, 0], b[group_of_run, 1]

        def feat_obj(
            x: FloatArray, rows: NDArray[np.intp], b0r: FloatArray = b0r, b1r: FloatArray = b1r
        ) -> FloatArray:
            return -_feature_loglik(data.take(rows), x[:, 0], x[:, 1], b0r, b1r)

        xf, _ = _minimise(feat_obj, np.column_stack([mu, log_s]), np.array([-np.inf, -10.0]))
        mu, log_s = xf[:, 0], xf[:, 1]

        def curve_obj(
            x: FloatArray, rows: NDArray[np.intp], mu: FloatArray = mu, log_s: FloatArray = log_s
        ) -> FloatArray:
            full = np.zeros((n_groups, 2))
            full[rows] = x
            per_run = _run_loglik(data, mu, log_s, full[group_of_run, 0], full[group_of_run, 1])
            sums = np.asarray(
                np.bincount(group_of_run, weights=per_run, minlength=n_groups), dtype=np.float64
            )
            return -sums[rows]

        b = _minimise_groups(curve_obj, b)
        b0r, b1r = b[group_of_run, 0], b[group_of_run, 1]
        new_total = float(
            _feature_loglik(data, mu, log_s, b0r, b1r).sum()
            + np.sum(np.where(data.observed, special.log_ndtr(b0r + b1r * data.y), 0.0))
        )
        if abs(new_total - total) < 1e-6 * n_feat:
            total = new_total
            break
        total = new_total
    return b[:, 0], b[:, 1], total, mu, log_s


def _minimise_groups(curve_obj: Objective, b: FloatArray) -> FloatArray:
    """Curve step: groups are independent given the features, so one batched minimisation."""
    return _minimise(curve_obj, b, np.array([-np.inf, 0.0]), step=1e-5)[0]


def _curve_data(matrix: FloatArray, seed: int) -> _CurveData:
    n_obs = np.sum(np.isfinite(matrix), axis=1)
    rows = np.flatnonzero(n_obs >= MIN_OBSERVED)
    if rows.size < 10:
        raise DesignError(
            f"detection curve: only {rows.size} features observed in >= {MIN_OBSERVED} runs"
        )
    if rows.size > MAX_FEATURES:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_FEATURES, replace=False))
    sub = matrix[rows]
    observed = np.isfinite(sub)
    variances = np.nanvar(sub, axis=1, ddof=1)
    return _CurveData(
        y=np.where(observed, sub, 0.0), observed=observed, s0sq=float(np.median(variances))
    )


def fit_detection_curve(
    matrix: FloatArray,
    runs: Sequence[str],
    batches: Sequence[str] | None = None,
    groupings: Sequence[str] = ("pooled", "batch", "run"),
    seed: int = 1,
) -> DetectionCurve:
    """Fit the probit detection curve (see the module docstring) and choose its grouping by AIC.

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
        Seed of the random feature subset beyond :data:`MAX_FEATURES` features.

    Returns
    -------
    DetectionCurve
        The grouping with the smallest AIC.
    """
    data = _curve_data(np.asarray(matrix, dtype=np.float64), seed)
    n_runs = data.y.shape[1]
    rate = float(data.observed.mean())
    counts = data.observed.sum(axis=1)
    mu0 = (data.y * data.observed).sum(axis=1) / counts
    b1_0 = 0.5
    b0_0 = float(stats.norm.ppf(min(max(rate, 0.01), 0.99))) - b1_0 * float(np.mean(mu0))
    start = (mu0, np.full(mu0.size, 0.5 * np.log(data.s0sq)), np.array([b0_0]), np.array([b1_0]))
    options: dict[str, NDArray[np.intp]] = {}
    for name in groupings:
        if name == "pooled":
            options[name] = np.zeros(n_runs, dtype=np.intp)
        elif name == "run":
            options[name] = np.arange(n_runs, dtype=np.intp)
        elif name == "batch" and batches is not None and len(set(batches)) > 1:
            options[name] = pd.factorize(pd.Index(list(batches)))[0].astype(np.intp)
        elif name not in ("pooled", "run", "batch"):
            raise ValueError(f"unknown detection curve grouping {name!r}")
    fits = {}
    sds = {}
    for name, groups in options.items():
        b0, b1, ll, mu, log_s = _fit_grouping(data, groups, start)
        fits[name] = (b0, b1, ll, groups)
        sds[name] = float(np.exp(np.median(log_s)))
        if name == "pooled":  # warm start for finer groupings
            start = (mu, log_s, b0, b1)
    curve = _choose(fits, runs, data.y.shape[0], data.y.size)
    curve.feature_sd = sds[curve.grouping]
    return curve


def _choose(
    fits: dict[str, tuple[FloatArray, FloatArray, float, NDArray[np.intp]]],
    runs: Sequence[str],
    n_features: int,
    n_cells: int,
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
    best = str(table["grouping"].to_numpy()[int(np.argmin(table["aic"].to_numpy()))])
    b0, b1, ll, groups = fits[best]
    log.info(
        "detection curve: %s (%d curves, slope median %.3g) chosen by AIC from %s; %d features",
        best,
        b0.size,
        float(np.median(b1)),
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
