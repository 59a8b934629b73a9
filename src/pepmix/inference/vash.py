r"""Variance adaptive shrinkage: a mixture prior for the contrast-variance moderation.

Model and notation
------------------
Protein :math:`g = 1, \dots, G` has a variance estimate :math:`s^2_g` on :math:`\nu_g` df (in
pepmix the contrast's variance on the scale of one biological sample with its capped
Satterthwaite df, :mod:`pepmix.inference.moderation`), with

.. math::

    s^2_g \mid \sigma^2_g \sim \sigma^2_g\,\chi^2_{\nu_g}/\nu_g, \qquad
    \sigma^2_g \sim \sum_{k=1}^K \pi_k\, \mathrm{Inv}\text{-}\chi^2(d_k, c_k),

i.e. the precision :math:`1/\sigma^2_g` of component :math:`k` is
:math:`\mathrm{Gamma}(d_k/2, \text{rate } d_k c_k/2)` (an inverse-gamma
:math:`\mathrm{IG}(\alpha_k, \beta_k)` on the variance, :math:`\alpha_k = d_k/2`,
:math:`\beta_k = d_k c_k/2`). limma's prior (Smyth 2004) is the case :math:`K = 1`.

The prior of vash (Lu & Stephens 2016, :func:`fit_prior`) is *unimodal*: the components share
one mode :math:`m`, either of the variance (:math:`\beta_k = m(\alpha_k + 1)`) or of the
precision (:math:`\beta_k = m(\alpha_k - 1)`, :math:`\alpha_k > 1`), with shapes
:math:`\alpha_k` on a grid around limma's moment estimate :math:`d_0/2` (:func:`alpha_grid`, ten
shapes from narrow, nearly a point mass at :math:`m`, to long-tailed). So the prior can be
skewed with a long tail (a mixture of narrow and wide components around one mode) but cannot
put a spike at the smallest observed variances, which a prior free on a grid of scales does (it
gave proteins with :math:`s^2_g \approx 0` a posterior variance up to 300 times smaller than the
true prior's in a simulation from one scaled-inverse-chi-square prior: false positives of the
kind issue 10 is about). The weights :math:`\pi`
are the maximum of the marginal likelihood for given :math:`m` (EM, accelerated by SQUAREM as in
vashr; convex in :math:`\pi`), :math:`m` the maximum of that profile likelihood, and of the two
kinds of unimodality the one with the larger likelihood is kept (vashr's ``unimodal = "auto"``).
As in vashr's default, the Dirichlet prior on the weights is uniform (no penalty). Marginally
:math:`s^2_g / c_k \sim F(\nu_g, d_k)` in component :math:`k`; the part of its log density
that depends on :math:`k` is

.. math::

    \ell_{gk} = \log\Gamma\!\Big(\frac{\nu_g + d_k}{2}\Big) - \log\Gamma\!\Big(\frac{d_k}{2}\Big)
      + \frac{d_k}{2}\log(d_k c_k) - \frac{\nu_g + d_k}{2}\log(d_k c_k + \nu_g s^2_g),

finite for :math:`s^2_g = 0` and zero for :math:`\nu_g = 0`.

Posterior (:func:`posterior`): component :math:`k` with probability
:math:`w_{gk} \propto \pi_k e^{\ell_{gk}}`, within it
:math:`\sigma^2_g \sim \mathrm{Inv}\text{-}\chi^2(\nu_g + d_k, \tilde s^2_{gk})` with
:math:`\tilde s^2_{gk} = (d_k c_k + \nu_g s^2_g)/(d_k + \nu_g)` (limma's posterior variance for
that component). Given :math:`s^2_g` and component :math:`k`, an estimate
:math:`\hat\delta_g \sim N(0, \sigma^2_g u_g)` independent of :math:`s^2_g` gives
:math:`\hat\delta_g / (\tilde s_{gk}\sqrt{u_g}) \sim t_{\nu_g + d_k}`, so the exact conditional
null p-value is the posterior mixture (:func:`mixture_pvalues`)

.. math::

    p_g = \sum_k w_{gk}\, 2\,
      P\big(t_{\nu_g + d_k} > |\hat\delta_g| / (\tilde s_{gk}\sqrt{u_g})\big)

(TREAT: the mixture of the components' TREAT p-values). The df :math:`\nu_g + d_k` are capped
at :math:`\sum_g \nu_g` as limma caps its total df. Reported per protein (summaries of the
mixture): the variance :math:`\tilde s^2_g = 1/\sum_k w_{gk}/\tilde s^2_{gk}`, the inverse of
the posterior mean precision (vashr's ``PosteriorMean``; with one component limma's
:math:`\tilde s^2_g`), and the df at which :math:`t = \hat\delta_g / (\tilde s_g\sqrt{u_g})`
gives :math:`p_g` exactly (:func:`implied_df`), so that t, df and p agree and the
:math:`t_{df}` interval (the reported confidence interval) excludes 0 exactly when
:math:`p_g < \alpha` (a mixture p-value below the normal p-value of that t, possible in
principle, gets infinite df: the interval is then the normal one).

**Boundary fits as censored observations** (``censored`` of :func:`fit_prior`; pepmix's, not
vashr's). When a protein's REML estimate of the replicate stratum's variance (the biological
sample, or the run with technical replication) is at zero, its :math:`s^2_g` is not a draw from
:math:`\sigma^2_g\chi^2_{\nu_g}/\nu_g`: the between-sample spread was smaller than the
residual noise alone explains, the estimate stopped at that floor, and all that is known is that
the unconstrained estimate lies below it. In the prior's likelihood such a protein contributes the
probability of that event, a censored observation (as in Tobit regression),

.. math::

    P(s^2 \le s^2_g \mid k) = F_{\nu_g, d_k}(s^2_g / c_k)
      = I_{z}\big(\nu_g/2,\, d_k/2\big), \qquad z = \frac{\nu_g s^2_g}{\nu_g s^2_g + d_k c_k},

(:func:`censored_loglik`; :math:`I` the regularised incomplete beta function) instead of the
density at :math:`s^2_g`. Treated as exact draws, the proteins at the floor (a quarter of them
in data with many near-zero sample variances) pull the mixture towards a long-tailed component
at small variances, which widens the posterior of every protein in the bulk. Only the prior's fit
changes; each protein's posterior (and p-value) is computed from its :math:`s^2_g` as above.
What the censored likelihood leaves out: the contrast's variance is at least its residual part
(the floor itself, estimated on many df), so the prior may put mass below every floor; where
most fits are at the boundary (the demo: 86 %) it does (benchmarks/README.md, "Skewed variances,
seventh session"). Hence an option (``testing.variance_prior: vash_censored``), not the default.

Rows with infinite :math:`\nu_g` know their variance: :math:`\tilde s^2_{gk} = s^2_g`, df
infinite, whatever the weights.

Differences from vashr: the df :math:`\nu_g` differ between proteins (vashr takes one df for
all); the estimates' df cap and the mixture p-values' summaries (reported variance and df) are
pepmix's; SQUAREM's extrapolation is clipped to the simplex.

References
----------
Lu M, Stephens M (2016). Variance adaptive shrinkage (vash): flexible empirical Bayes estimation
of variances. Bioinformatics 32, 3428-3434.

Smyth GK (2004). Linear models and empirical Bayes methods for assessing differential expression
in microarray experiments. Stat Appl Genet Mol Biol 3, Article 3.

Varadhan R, Roland C (2008). Simple and globally convergent methods for accelerating the
convergence of any EM algorithm. Scand J Stat 35, 335-353.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

from pepmix.inference.limma import fit_f_dist, treat_pvalues

log = logging.getLogger(__name__)

__all__ = [
    "MAX_SHAPE",
    "MixturePosterior",
    "VashPrior",
    "alpha_grid",
    "censored_loglik",
    "fit_prior",
    "implied_df",
    "mixture_pvalues",
    "posterior",
    "unimodal_components",
]

FloatArray = NDArray[np.float64]

#: largest shape of the grid's centre (limma's prior df / 2; infinite prior df is capped)
MAX_SHAPE = 1e4
#: EM stops when the log likelihood gains less than this per protein in an iteration
EM_TOL = 1e-8
#: and after at most this many iterations
EM_MAX_ITER = 2000
#: components with a weight below this share of the largest are dropped after the fit
WEIGHT_FLOOR = 1e-10
#: floor of the censored log likelihoods (a probability of 0 would make a component impossible)
LOG_TINY = -700.0


@dataclass(frozen=True)
class VashPrior:
    """A fitted mixture prior (components with non-negligible weight only).

    Attributes
    ----------
    scale : ndarray, shape (K,)
        Scales :math:`c_k` (prior variance of each component, limma's ``s2.prior``).
    df : ndarray, shape (K,)
        Prior df :math:`d_k`.
    weight : ndarray, shape (K,)
        Mixture weights :math:`\\pi_k`, summing to one.
    n_iter : int
        EM iterations.
    converged : bool
        Whether EM met :data:`EM_TOL` within :data:`EM_MAX_ITER` iterations.
    mode : float, default NaN
        The shared mode :math:`m` (of the variance, or the inverse of the precision's mode).
    unimodal : str, default ""
        ``variance`` or ``precision``: which is unimodal.
    """

    scale: FloatArray
    df: FloatArray
    weight: FloatArray
    n_iter: int
    converged: bool
    mode: float = float("nan")
    unimodal: str = ""

    @property
    def var_harmonic(self) -> float:
        """Inverse of the prior mean precision, :math:`1/\\sum_k \\pi_k / c_k`."""
        return float(1.0 / np.sum(self.weight / self.scale))


@dataclass(frozen=True)
class MixturePosterior:
    """Posterior of the variances: one limma-type posterior per component and its weight.

    Attributes
    ----------
    weight : ndarray, shape (G, K)
        Posterior component probabilities :math:`w_{gk}`.
    var : ndarray, shape (G, K)
        :math:`\\tilde s^2_{gk}`.
    df : ndarray, shape (G, K)
        :math:`\\min(\\nu_g + d_k, \\sum_g \\nu_g)` (infinite for infinite :math:`\\nu_g`).
    """

    weight: FloatArray
    var: FloatArray
    df: FloatArray

    @property
    def var_post(self) -> FloatArray:
        """:math:`\\tilde s^2_g`, the inverse posterior mean precision, shape (G,)."""
        out: FloatArray = 1.0 / np.sum(self.weight / self.var, axis=1)
        return out

    @property
    def df_mean(self) -> FloatArray:
        """Posterior mean of the components' total df, :math:`\\sum_k w_{gk}\\,
        \\mathrm{df}_{gk}`, shape (G,)."""
        out: FloatArray = np.sum(self.weight * self.df, axis=1)
        return out


def alpha_grid(shape: float) -> FloatArray:
    """Shapes :math:`\\alpha_k` of the unimodal prior's components (vashr's grid).

    Parameters
    ----------
    shape : float
        Shape :math:`a = d_0/2` of the single scaled-inverse-chi-square fit (limma's moment
        estimate), at least 1e-5 and at most :data:`MAX_SHAPE`.

    Returns
    -------
    ndarray
        For :math:`a > 1`: :math:`1 + r^j (a - 1)`, :math:`r = (64/a)^{1/6}`, :math:`j = -3,
        \\dots, 6` (ten shapes around :math:`a`, up to :math:`64`-ish); otherwise
        :math:`a \\cdot 2^j`, :math:`j = 0, \\dots, 13`.
    """
    a = float(np.clip(shape, 1e-5, MAX_SHAPE))
    if a > 1.0:
        out: FloatArray = 1.0 + ((64.0 / a) ** (1.0 / 6.0)) ** np.arange(-3.0, 7.0) * (a - 1.0)
    else:
        out = a * 2.0 ** np.arange(0.0, 14.0)
    return out


def unimodal_components(
    mode: float, alpha: FloatArray, unimodal: str
) -> tuple[FloatArray, FloatArray]:
    """Scales and df of components sharing one mode (of the variance or of the precision).

    Component :math:`k` is :math:`\\mathrm{IG}(\\alpha_k, \\beta_k)` on the variance with
    :math:`\\beta_k = m(\\alpha_k + 1)` (variance mode :math:`m`) or :math:`\\beta_k =
    m(\\alpha_k - 1)` (precision mode :math:`1/m`, shapes > 1 only): df :math:`d_k =
    2\\alpha_k`, scale :math:`c_k = \\beta_k/\\alpha_k`.
    """
    if unimodal == "variance":
        return mode * (alpha + 1.0) / alpha, 2.0 * alpha
    a = np.unique(np.maximum(alpha, 1.0 + 1e-5))
    return mode * (a - 1.0) / a, 2.0 * a


def component_loglik(
    s2: FloatArray, nu: FloatArray, scale: FloatArray, df: FloatArray
) -> FloatArray:
    """:math:`\\ell_{gk}` of the module docstring, shape (G, K) (finite ``nu`` only)."""
    n = nu[:, None]
    d = df[None, :]
    dc = d * scale[None, :]
    out: FloatArray = (
        special.gammaln((n + d) / 2.0)
        - special.gammaln(d / 2.0)
        + d / 2.0 * np.log(dc)
        - (n + d) / 2.0 * np.log(dc + n * s2[:, None])
    )
    return out


def censored_loglik(
    s2: FloatArray, nu: FloatArray, scale: FloatArray, df: FloatArray
) -> FloatArray:
    """:math:`\\log P(s^2 \\le s^2_g \\mid k)` of the module docstring, shape (G, K) (``nu`` > 0).

    As :func:`component_loglik` leaves out terms that do not depend on the component, the two
    can share one EM fit (the left-out terms are constants per protein).
    """
    n = nu[:, None]
    d = df[None, :]
    ns2 = n * s2[:, None]
    z = ns2 / (ns2 + d * scale[None, :])
    with np.errstate(divide="ignore"):
        out: FloatArray = np.log(special.betainc(n / 2.0, d / 2.0, z))
    return np.maximum(out, LOG_TINY)


def fit_prior(
    s2: ArrayLike,
    df: ArrayLike,
    *,
    censored: ArrayLike | None = None,
    max_iter: int = EM_MAX_ITER,
    tol: float = EM_TOL,
) -> VashPrior:
    """The unimodal mixture prior of largest marginal likelihood (vashr's ``unimodal="auto"``).

    For each kind of unimodality (``variance``, ``precision``) the mode :math:`m` is the
    maximiser of the profile likelihood (Brent's method on :math:`\\log m` between the smallest
    and the largest positive variance), the weights at each :math:`m` by EM (:func:`_squarem`);
    the kind with the larger likelihood is kept. The shape grid (:func:`alpha_grid`) is centred
    on limma's moment estimate of the prior df (:func:`~pepmix.inference.limma.fit_f_dist`) of
    all the variances, censored ones included (centred on the uncensored ones only, the grid
    missed the prior in a simulation where the censoring model holds: those are selected for
    being large, so their spread is too small and the centre's df too large).

    Parameters
    ----------
    s2 : array_like, shape (G,)
        Variances, finite and >= 0, at least one positive.
    df : array_like, shape (G,)
        Their df, finite and >= 0.
    censored : array_like of bool, shape (G,), optional
        Variances known only to be at least as large as the unconstrained estimate (boundary
        fits, module docstring): they enter the likelihood by :func:`censored_loglik`; their df
        must be > 0. Default None: none.
    max_iter : int, default EM_MAX_ITER
        Most SQUAREM cycles per EM fit.
    tol : float, default EM_TOL
        EM stops when the mean log likelihood per protein rises by less than this in a cycle.

    Returns
    -------
    VashPrior
        Components with weight above :data:`WEIGHT_FLOOR` times the largest, renormalised.

    Raises
    ------
    ValueError
        On invalid inputs (shapes, negative or non-finite values, no positive variance).
    """
    x = np.asarray(s2, dtype=np.float64)
    nu = np.asarray(df, dtype=np.float64)
    if x.ndim != 1 or nu.shape != x.shape:
        raise ValueError("s2 and df must be one-dimensional and of the same length")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(nu))) or np.any(x < 0) or np.any(nu < 0):
        raise ValueError("s2 and df must be finite and >= 0")
    cens = np.zeros(x.size, dtype=bool) if censored is None else np.asarray(censored, dtype=bool)
    if cens.shape != x.shape:
        raise ValueError(f"censored must have length {x.size}")
    if np.any(nu[cens] <= 0):
        raise ValueError("censored variances must have df > 0")
    positive = x[x > 0]
    if positive.size == 0:
        raise ValueError("the prior needs at least one positive variance")
    single = fit_f_dist(x, nu)
    d0 = float(single.df2) if np.isfinite(single.df2) else 2.0 * MAX_SHAPE
    alpha = alpha_grid(d0 / 2.0)
    bounds = (float(np.log(positive.min())), float(np.log(positive.max())))
    fits = [
        _fit_unimodal(x, nu, cens, alpha, unimodal, bounds, max_iter, tol)
        for unimodal in ("variance", "precision")
    ]
    return max(fits, key=lambda fit: fit[0])[1]


def _fit_unimodal(
    x: FloatArray,
    nu: FloatArray,
    cens: NDArray[np.bool_],
    alpha: FloatArray,
    unimodal: str,
    bounds: tuple[float, float],
    max_iter: int,
    tol: float,
) -> tuple[float, VashPrior]:
    """Mean log likelihood and prior of one kind of unimodality, the mode profiled out."""

    def fitted(log_mode: float) -> tuple[float, VashPrior]:
        scale, dprior = unimodal_components(float(np.exp(log_mode)), alpha, unimodal)
        loglik = component_loglik(x, nu, scale, dprior)
        if cens.any():
            loglik[cens] = censored_loglik(x[cens], nu[cens], scale, dprior)
        top = loglik.max(axis=1, keepdims=True)
        weight, n_iter, converged = _squarem(np.exp(loglik - top), max_iter, tol)
        value = float(np.mean(top[:, 0] + np.log(np.exp(loglik - top) @ weight)))
        keep = weight > WEIGHT_FLOOR * weight.max()
        prior = VashPrior(
            scale=scale[keep],
            df=dprior[keep],
            weight=weight[keep] / weight[keep].sum(),
            n_iter=n_iter,
            converged=converged,
            mode=float(np.exp(log_mode)),
            unimodal=unimodal,
        )
        return value, prior

    lo, hi = bounds
    if hi - lo < 1e-8:
        return fitted(lo)
    res = optimize.minimize_scalar(
        lambda v: -fitted(float(v))[0], bounds=bounds, method="bounded", options={"xatol": 1e-3}
    )
    out = fitted(float(res.x))
    if not out[1].converged:
        log.warning("vash prior: EM stopped after %d cycles before converging", out[1].n_iter)
    return out


def _em_step(lik: FloatArray, weight: FloatArray) -> tuple[FloatArray, float]:
    """One EM update of the weights and the mean log likelihood at ``weight``."""
    mix = lik @ weight
    out: FloatArray = weight * (lik.T @ (1.0 / mix)) / lik.shape[0]
    return out / out.sum(), float(np.mean(np.log(mix)))


def _mean_loglik(lik: FloatArray, weight: FloatArray) -> float:
    return float(np.mean(np.log(lik @ weight)))


def _squarem(lik: FloatArray, max_iter: int, tol: float) -> tuple[FloatArray, int, bool]:
    r"""EM accelerated by SQUAREM (Varadhan & Roland 2008, scheme S3, as vashr and ashr use it).

    Each cycle takes two EM steps from :math:`\pi_0` (:math:`r = \pi_1 - \pi_0`,
    :math:`v = \pi_2 - 2\pi_1 + \pi_0`), extrapolates to :math:`\pi_0 - 2\alpha r +
    \alpha^2 v` with :math:`\alpha = -\lVert r\rVert / \lVert v\rVert` (at most -1), clips it
    to the simplex and takes one EM step from there; when that does not raise the likelihood
    above the plain second EM step's, the plain step is kept (so the likelihood never falls).
    Returns the weights, the number of cycles and whether the gain per cycle fell below ``tol``.
    """
    weight = np.full(lik.shape[1], 1.0 / lik.shape[1])
    current = _mean_loglik(lik, weight)
    for cycle in range(1, max_iter + 1):
        w1, _ = _em_step(lik, weight)
        w2, _ = _em_step(lik, w1)
        r, v = w1 - weight, w2 - 2.0 * w1 + weight
        norm_v = float(np.sqrt(v @ v))
        alpha = min(-float(np.sqrt(r @ r)) / norm_v, -1.0) if norm_v > 0 else -1.0
        jump = np.clip(weight - 2.0 * alpha * r + alpha**2 * v, 0.0, None)
        candidate, _ = _em_step(lik, jump / jump.sum())
        new = _mean_loglik(lik, candidate)
        plain = _mean_loglik(lik, w2)
        if not new >= plain:
            candidate, new = w2, plain
        weight, gain, current = candidate, new - current, new
        if gain < tol:
            return weight, cycle, True
    return weight, max_iter, False


def posterior(prior: VashPrior, s2: ArrayLike, df: ArrayLike) -> MixturePosterior:
    """Posterior mixture of every protein under ``prior`` (module docstring).

    Parameters
    ----------
    prior : VashPrior
        Fitted prior.
    s2 : array_like, shape (G,)
        Variances, finite and >= 0.
    df : array_like, shape (G,)
        Their df, >= 0; may be infinite (then the variance is known).

    Returns
    -------
    MixturePosterior
    """
    x = np.asarray(s2, dtype=np.float64)
    nu = np.asarray(df, dtype=np.float64)
    known = np.isinf(nu)
    nu_f = np.where(known, 0.0, nu)
    loglik = component_loglik(x, nu_f, prior.scale, prior.df) + np.log(prior.weight)[None, :]
    weight = np.exp(loglik - special.logsumexp(loglik, axis=1, keepdims=True))
    d = prior.df[None, :]
    var = (d * prior.scale[None, :] + nu_f[:, None] * x[:, None]) / (d + nu_f[:, None])
    var = np.where(known[:, None], x[:, None], var)
    pooled = float(np.sum(nu))
    total = np.minimum(nu[:, None] + d, pooled)
    return MixturePosterior(weight=weight, var=var, df=total)


def mixture_pvalues(
    estimate: ArrayLike, unscaled: ArrayLike, post: MixturePosterior, lfc: float = 0.0
) -> FloatArray:
    """Posterior-mixture p-values :math:`p_g` (module docstring), TREAT for ``lfc > 0``.

    Parameters
    ----------
    estimate : array_like, shape (G,)
        Estimates :math:`\\hat\\delta_g`.
    unscaled : array_like, shape (G,)
        :math:`u_g` (variance of the estimate = :math:`\\sigma^2_g u_g`).
    post : MixturePosterior
        Posterior of the variances.
    lfc : float, default 0.0
        TREAT threshold (0: two-sided t-test).

    Returns
    -------
    ndarray, shape (G,)
    """
    est = np.asarray(estimate, dtype=np.float64)[:, None]
    se = np.sqrt(post.var * np.asarray(unscaled, dtype=np.float64)[:, None])
    p_k = treat_pvalues(est, se, post.df, lfc)
    out: FloatArray = np.minimum(np.sum(post.weight * p_k, axis=1), 1.0)
    return out


def implied_df(
    t: ArrayLike, p: ArrayLike, fallback: ArrayLike, *, lo: float = 0.05, hi: float = 1e7
) -> FloatArray:
    """df at which a two-sided t-test of ``t`` gives ``p`` (bisection on log df, 100 steps).

    Parameters
    ----------
    t : array_like, shape (G,)
        t statistics.
    p : array_like, shape (G,)
        Target p-values.
    fallback : array_like, shape (G,)
        df used where ``p`` does not determine the df (|t| too small for the df to change the
        p-value by more than 1e-12 relative).
    lo, hi : float, default 0.05 and 1e7
        Search range; ``p`` beyond the p-value at ``hi`` (lighter than normal tails) gives
        infinite df, beyond that at ``lo`` gives ``lo``.

    Returns
    -------
    ndarray, shape (G,)
    """
    a = np.abs(np.asarray(t, dtype=np.float64))
    target = np.asarray(p, dtype=np.float64)
    fb = np.asarray(fallback, dtype=np.float64)
    log_lo = np.full(a.shape, np.log(lo))
    log_hi = np.full(a.shape, np.log(hi))
    for _ in range(100):
        mid = (log_lo + log_hi) / 2.0
        above = 2.0 * special.stdtr(np.exp(mid), -a) > target  # p falls as df rises
        log_lo = np.where(above, mid, log_lo)
        log_hi = np.where(above, log_hi, mid)
    out = np.exp((log_lo + log_hi) / 2.0)
    p_hi, p_lo = 2.0 * special.stdtr(hi, -a), 2.0 * special.stdtr(lo, -a)
    out = np.where(target <= p_hi, np.inf, out)
    out = np.where(target >= p_lo, lo, out)
    flat = np.abs(p_lo - p_hi) <= 1e-12 * np.maximum(target, 1e-300)
    result: FloatArray = np.where(flat, fb, out)
    return result
