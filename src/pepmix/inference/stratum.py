r"""A variance prior on the replicate stratum, each protein's residual floor known.

Model and notation
------------------
Per contrast, protein :math:`g` has the estimate :math:`\hat\delta_g`, its unmoderated variance
:math:`v_g = \mathrm{se}^2_g` and its *residual floor* :math:`f_g = L V_0 L'`, the contrast's
variance at the replicate stratum's variance zero (the biological sample; the run with
technical replication), every other variance at its estimate
(:attr:`pepmix.model.fit.ModelFit.cov_beta_floor`). On the scale of one replicate
(:math:`u_g = 1/n_{A,g} + 1/n_{B,g}`, as :mod:`pepmix.inference.moderation`) the model is

.. math::

    \sigma^2_g = \tau^2_g + r_g, \qquad r_g = f_g / u_g, \qquad
    \hat\delta_g \mid \tau^2_g \sim N(\delta_g, u_g \sigma^2_g), \qquad
    \tau^2_g \sim G,

with :math:`\tau^2_g \ge 0` the replicate stratum's contribution, :math:`G` a distribution
across proteins with mass allowed at and near 0, and :math:`r_g` known (it is estimated on the
residual df, many more than the between-replicate df). The data about :math:`\tau^2_g` are the
between-replicate mean square

.. math::

    M_g \mid \tau^2_g \sim (\tau^2_g + r_g)\,\chi^2_{\nu_g}/\nu_g,

:math:`\nu_g` the containment df (observed replicates minus estimable fixed effects,
``df_between``), independent of :math:`\hat\delta_g` given :math:`\tau^2_g`.

**What M is** (:func:`pepmix.model.fit.stratum_split`). With the other variance ratios at their
estimates, the model stage computes the within-replicate residual variance
:math:`\hat\sigma^2_w` (the replicates' effects unpenalised), the between-replicate mean square
over it, :math:`F_g` (unconstrained: below 1 where REML puts the replicate variance at zero), and
the floor covariance :math:`V_0` at replicate variance zero and residual variance
:math:`\hat\sigma^2_w`. Then :math:`f_g = L V_0 L'` (``var_floor``) and
:math:`M_g = F_g f_g / u_g` (``var_between`` over :math:`u_g`). For a balanced design without
weights these are the ANOVA's quantities: :math:`M_g` is the within-condition mean square of
the replicate means, :math:`r_g` the residual variance over the observations per replicate,
and REML's :math:`\hat\tau^2_g = \max(0, M_g - r_g)`. With missing cells, Huber weights and
random feature effects they are an approximation: the replicates' weights in the contrast are
taken as equal (:math:`k_g = 1` in :math:`u_g(k_g\tau^2 + r_g)`), the weighted, penalised sums
of squares as ANOVA's, :math:`\chi^2_{\nu_g}` for the between-replicate one, and
:math:`\hat\sigma^2_w` (on :math:`n - p - \nu_g` df) as known. The REML fit's own floor would
not do: at a boundary fit its :math:`\hat\sigma^2` pools the (small) between-replicate spread
into the residual variance, so it is smaller than :math:`\hat\sigma^2_w` exactly when the fit is
at the boundary (a selection effect: such fits got 7-11 % of null p-values below 0.05).

**Prior** (:func:`fit_prior`): a nonparametric maximum-likelihood estimate of :math:`G` on a
grid (a point mass at 0 and a geometric grid of ratio :math:`\sqrt 2` spanning the data), the
weights by EM accelerated by SQUAREM (Kiefer & Wolfowitz 1956; Koenker & Mizera 2014 for the
grid NPMLE in empirical Bayes; Varadhan & Roland 2008), fitted to the tested proteins with a
floor and :math:`\nu_g \ge 1`.

**p-values** (:func:`pvalues`): given the data, :math:`\tau^2_g` has the posterior weights
:math:`w_{gk} \propto \pi_k \ell_{gk}` on the grid, and under :math:`H_0: \delta_g = 0`

.. math::

    p_g = \sum_k w_{gk}\, 2\,\bar\Phi\Big(\frac{|\hat\delta_g|}
        {\sqrt{u_g(\tau^2_k + r_g)}}\Big),

the posterior predictive probability of a larger :math:`|\hat\delta|`: exactly uniform under
the model when :math:`G` is the truth (no t approximation). TREAT (``lfc`` :math:`\lambda > 0`):
the components' :math:`\bar\Phi((|\hat\delta| - \lambda)/s) + \bar\Phi((|\hat\delta| +
\lambda)/s)`. Reported per protein: the standard error :math:`\sqrt{u_g / \sum_k w_{gk} /
(\tau^2_k + r_g)}` (inverse posterior mean precision, as vash's) and the df at which its t
statistic gives :math:`p_g` (:func:`pepmix.inference.vash.implied_df`).

**Status**: an option (``testing.variance_prior: stratum``), not the default. On the calibration
scenarios every seed-11 null is uniform, but the demo gets 27 background proteins called (with
replicate variance ~0, precisely measured proteins with small consistent shifts between the
conditions are significant under the model) and ``skewed_variance`` has FDP 5.1 %: the Huber
weights shrink the between-replicate spread at boundary fits, which :math:`M_g` takes at face
value (benchmarks/README.md, "A prior on the replicate stratum").

References
----------
Kiefer J, Wolfowitz J (1956). Consistency of the maximum likelihood estimator in the presence
of infinitely many incidental parameters. Ann Math Stat 27, 887-906.

Koenker R, Mizera I (2014). Convex optimization, shape constraints, compound decisions, and
empirical Bayes rules. J Am Stat Assoc 109, 674-685.

Varadhan R, Roland C (2008). Simple and globally convergent methods for accelerating the
convergence of any EM algorithm. Scand J Stat 35, 335-353.

Smyth GK (2004). Linear models and empirical Bayes methods for assessing differential expression
in microarray experiments. Stat Appl Genet Mol Biol 3, Article 3.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

log = logging.getLogger(__name__)

__all__ = [
    "StratumData",
    "StratumPosterior",
    "StratumPrior",
    "default_grid",
    "fit_prior",
    "loglik",
    "posterior",
    "pvalues",
]

FloatArray = NDArray[np.float64]

#: ratio of neighbouring grid points of the prior's support (variance scale)
GRID_RATIO = np.sqrt(2.0)
#: EM stops when the log likelihood gains less than this per protein in a SQUAREM cycle (on
#: data simulated from the model, 2,000 proteins: 20-40 cycles, < 0.2 CPU s; the p-values'
#: KS statistics as with 1e-9 and 2,000 cycles)
EM_TOL = 1e-6
#: most SQUAREM cycles (three EM updates each)
EM_MAX_ITER = 2000


@dataclass(frozen=True)
class StratumData:
    """One contrast's data for the stratum prior (module docstring notation).

    Attributes
    ----------
    m : ndarray, shape (G,)
        :math:`M_g`.
    nu : ndarray, shape (G,)
        Between-replicate df :math:`\\nu_g`.
    floor : ndarray, shape (G,)
        :math:`r_g`.
    """

    m: FloatArray
    nu: FloatArray
    floor: FloatArray

    @classmethod
    def from_variances(
        cls, var_between: ArrayLike, var_floor: ArrayLike, unscaled: ArrayLike, nu: ArrayLike
    ) -> StratumData:
        """From a contrast's ``var_between`` :math:`u_g M_g`, ``var_floor`` :math:`f_g`,
        :math:`u_g` and :math:`\\nu_g`."""
        u = np.asarray(unscaled, dtype=np.float64)
        return cls(
            m=np.asarray(var_between, dtype=np.float64) / u,
            nu=np.asarray(nu, dtype=np.float64),
            floor=np.asarray(var_floor, dtype=np.float64) / u,
        )

    def take(self, rows: NDArray[np.bool_]) -> StratumData:
        """The rows ``rows``."""
        return StratumData(self.m[rows], self.nu[rows], self.floor[rows])


@dataclass(frozen=True)
class StratumPrior:
    """The fitted prior :math:`G = \\sum_k \\pi_k \\delta_{\\tau^2_k}`.

    Attributes
    ----------
    grid : ndarray, shape (K,)
        Support :math:`\\tau^2_k` (first point 0).
    weight : ndarray, shape (K,)
        :math:`\\pi_k`.
    loglik : float
        Log marginal likelihood at the fit (up to constants per protein).
    n_iter : int
        EM iterations.
    """

    grid: FloatArray
    weight: FloatArray
    loglik: float
    n_iter: int

    @property
    def mean(self) -> float:
        """Prior mean of :math:`\\tau^2`."""
        return float(np.sum(self.weight * self.grid))

    @property
    def mass_at_zero(self) -> float:
        """:math:`\\pi_0`, the prior probability of :math:`\\tau^2 = 0`."""
        return float(self.weight[0])


@dataclass(frozen=True)
class StratumPosterior:
    """Posterior weights of the grid points per protein.

    Attributes
    ----------
    grid : ndarray, shape (K,)
    weight : ndarray, shape (G, K)
    floor : ndarray, shape (G,)
    """

    grid: FloatArray
    weight: FloatArray
    floor: FloatArray

    @property
    def var_post(self) -> FloatArray:
        """Inverse posterior mean precision of :math:`\\sigma^2_g = \\tau^2 + r_g`."""
        with np.errstate(divide="ignore"):
            prec = 1.0 / (self.grid[None, :] + self.floor[:, None])
        out: FloatArray = 1.0 / np.sum(self.weight * prec, axis=1)
        return out


def default_grid(data: StratumData) -> FloatArray:
    """0 and a geometric grid (ratio :data:`GRID_RATIO`) from 1 % of the median floor to twice
    the largest excess :math:`M_g - r_g` (at least 4 times the median floor)."""
    floor = data.floor[np.isfinite(data.floor) & (data.floor > 0)]
    base = float(np.median(floor)) if floor.size else float(np.median(data.m[data.m > 0]))
    excess = data.m - data.floor
    top = max(2.0 * float(np.max(excess, initial=0.0)), 4.0 * base)
    lo = 0.01 * base
    n = int(np.ceil(np.log(top / lo) / np.log(GRID_RATIO))) + 1
    return np.concatenate([[0.0], lo * GRID_RATIO ** np.arange(n)])


def loglik(data: StratumData, grid: FloatArray) -> FloatArray:
    """Log likelihood of each protein's :math:`M_g` at each grid point, shape (G, K): the scaled
    chi-square density (the terms that depend on the grid point); 0 for :math:`\\nu_g = 0`."""
    s2 = grid[None, :] + data.floor[:, None]
    nu = data.nu[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -0.5 * nu * np.log(s2) - 0.5 * nu * data.m[:, None] / s2
    out = np.where(np.isnan(out), -np.inf, out)
    result: FloatArray = np.where(nu > 0, out, 0.0)  # no df: no information
    return result


def _weights(ll: FloatArray, prior_weight: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Posterior weights (G, K) and per-protein log marginal likelihoods (G,)."""
    with np.errstate(divide="ignore"):
        a = ll + np.log(prior_weight)[None, :]
    top = np.max(a, axis=1, keepdims=True)
    e = np.exp(a - top)
    total = np.sum(e, axis=1, keepdims=True)
    return e / total, (np.log(total) + top)[:, 0]


def fit_prior(data: StratumData, grid: FloatArray | None = None) -> StratumPrior:
    """NPMLE of :math:`G` on ``grid`` by EM (module docstring).

    Parameters
    ----------
    data : StratumData
        The proteins the prior is fitted to (finite floors, :math:`\\nu_g \\ge 1`).
    grid : ndarray, optional
        Support; default :func:`default_grid`.

    Returns
    -------
    StratumPrior
    """
    support = default_grid(data) if grid is None else np.asarray(grid, dtype=np.float64)
    ll = loglik(data, support)
    ll = ll[np.any(np.isfinite(ll), axis=1)]
    weight = np.full(support.size, 1.0 / support.size)
    n = max(ll.shape[0], 1)
    last = _marginal(ll, weight)
    cycles = 0
    while cycles < EM_MAX_ITER:
        cycles += 1
        weight, total = _squarem_step(ll, weight, last)
        gain, last = total - last, max(total, last)
        if gain < EM_TOL * n:
            break
    return StratumPrior(grid=support, weight=weight, loglik=last, n_iter=cycles)


def _em(ll: FloatArray, weight: FloatArray) -> FloatArray:
    """One EM update of the weights."""
    post, _ = _weights(ll, weight)
    out: FloatArray = np.mean(post, axis=0)
    return out


def _marginal(ll: FloatArray, weight: FloatArray) -> float:
    """Log marginal likelihood of the weights."""
    return float(np.sum(_weights(ll, weight)[1]))


def _squarem_step(ll: FloatArray, weight: FloatArray, current: float) -> tuple[FloatArray, float]:
    """One SQUAREM cycle (Varadhan & Roland 2008, scheme S3), clipped to the simplex, falling
    back to two plain EM steps when the extrapolation lowers the likelihood."""
    w1 = _em(ll, weight)
    w2 = _em(ll, w1)
    r = w1 - weight
    v = w2 - w1 - r
    nv = float(np.sqrt(np.sum(v * v)))
    if nv > 0:
        alpha = min(-float(np.sqrt(np.sum(r * r))) / nv, -1.0)
        w = np.clip(weight - 2.0 * alpha * r + alpha * alpha * v, 0.0, None)
        if w.sum() > 0:
            w = _em(ll, w / w.sum())
            total = _marginal(ll, w)
            if total >= current:
                return w, total
    return w2, _marginal(ll, w2)


def posterior(prior: StratumPrior, data: StratumData) -> StratumPosterior:
    """Posterior weights of every protein of ``data`` under ``prior``."""
    post, _ = _weights(loglik(data, prior.grid), prior.weight)
    return StratumPosterior(grid=prior.grid, weight=post, floor=data.floor)


def pvalues(
    estimate: ArrayLike, unscaled: ArrayLike, post: StratumPosterior, lfc: float = 0.0
) -> FloatArray:
    """Posterior-predictive p-values (module docstring), shape (G,).

    Parameters
    ----------
    estimate : array_like, shape (G,)
        :math:`\\hat\\delta_g`.
    unscaled : array_like, shape (G,)
        :math:`u_g`.
    post : StratumPosterior
    lfc : float, default 0.0
        TREAT threshold :math:`\\lambda` on :math:`|\\delta_g|`.
    """
    est = np.abs(np.asarray(estimate, dtype=np.float64))[:, None]
    u = np.asarray(unscaled, dtype=np.float64)[:, None]
    sd = np.sqrt(u * (post.grid[None, :] + post.floor[:, None]))
    with np.errstate(divide="ignore", invalid="ignore"):
        if lfc > 0:
            comp = special.ndtr(-(est - lfc) / sd) + special.ndtr(-(est + lfc) / sd)
        else:
            comp = 2.0 * special.ndtr(-est / sd)
    comp = np.where(sd > 0, comp, np.where(est > lfc, 0.0, 1.0))
    out: FloatArray = np.minimum(np.sum(post.weight * comp, axis=1), 1.0)
    return out
