r"""Empirical-Bayes shrinkage of variance ratios: a prior fitted across proteins.

Why
---
With 3-4 biological samples per condition the REML estimate of a protein's sample variance is
very noisy, and for many proteins it is exactly zero (a boundary fit). A zero sample variance is
rarely the truth: it makes the contrast's standard error rest on the residual (peptide-level)
variance only, and such proteins are over-represented among false positives. As limma does for
residual variances (Smyth 2004; ``squeezeVar``), we borrow strength across proteins, here for the
variance *components*: a prior whose hyperparameters are estimated from all proteins by marginal
likelihood, then a posterior mode per protein. A prior that vanishes at zero keeps the estimate
off the boundary, as the boundary-avoiding priors of Chung et al. (2013, Psychometrika 78:685;
R package blme) do; unlike their fixed weakly-informative prior, ours is estimated from the data.

Model and notation
------------------
For protein :math:`p` and a shrunk random factor :math:`k` (``sample``; ``run`` when it is a
separate term) the variance *ratio* :math:`\lambda_{pk} = \sigma^2_{pk}/\sigma^2_p =
\theta_{pk}^2` (lme4's relative SD squared) has the prior

.. math:: \lambda \sim \text{scaled-inv-}\chi^2(d_0, r_0):\quad
          p(\lambda) = \frac{(d_0 r_0/2)^{d_0/2}}{\Gamma(d_0/2)}\,
          \lambda^{-d_0/2-1} e^{-d_0 r_0/(2\lambda)}

(:math:`r_0` a typical ratio, :math:`d_0` its prior degrees of freedom; the conjugate family of
limma's variance prior). Not shrunk: the ``feature`` variance (estimated from every feature of
the protein and, since the fixed effects vary by run only and features cross the conditions,
nearly orthogonal to the condition contrasts) and a random ``batch`` (a handful of levels
shared by all proteins, so no per-protein noise to borrow strength against). Because the
prior is on a ratio, :math:`\sigma^2` is still profiled out exactly, and the criterion stays
lme4's profiled REML criterion :math:`d(\theta)` (:mod:`pepmix.model.reml`) plus a penalty.

*Hyperparameters* (:func:`fit_variance_prior`): with :math:`d_p(\lambda)` protein :math:`p`'s
REML criterion at :math:`\theta_k = \sqrt\lambda` and the other ratios at their REML
estimates, the marginal log-likelihood

.. math:: \ell(d_0, r_0) = \sum_p \log \int e^{-d_p(\lambda)/2}\, p(\lambda \mid d_0, r_0)\,
          d\lambda

is maximised over :math:`(\log d_0, \log r_0)`. :math:`d_p` is evaluated on a grid of
:data:`PROFILE_POINTS` values of :math:`u = \log\lambda` in ``[log 1e-4, log 1e3]``,
interpolated by a cubic spline onto a step of 0.05 and integrated by the trapezoidal rule;
the prior mass beyond the grid is added with :math:`d_p(0)` and :math:`d_p(10^3)`
(regularised incomplete gamma functions). This is a type-II (profile) likelihood: the residual
variance is profiled, the other ratios are held at their estimates. Proteins enter when the
factor is in their model and their REML optimum is finite. Standard errors of
:math:`(\log d_0, \log r_0)` come from the observed information (finite differences).
:math:`d_0` is bounded to :data:`DF_BOUNDS`.

*Per protein* (:func:`attach_prior`; :func:`pepmix.model.fit.fit_proteins` with ``prior``): the
posterior mode of :math:`\log\lambda`, i.e. the minimum over :math:`\theta` of

.. math:: d(\theta) + \mathrm{pen}(\theta_k),\quad
          \mathrm{pen} = -2\log\big(\lambda\,p(\lambda)\big) + \text{const}
          = d_0(\log\lambda + r_0/\lambda).

The mode on the log scale is chosen because in the conjugate case (a variance with a
:math:`\chi^2` likelihood) it is exactly limma's posterior variance
:math:`(d_0 s_0^2 + d\,s^2)/(d_0 + d)`, and with no information it returns :math:`r_0`. The
penalty is infinite at :math:`\lambda = 0`, so a shrunk variance is never on the boundary. The
optimiser is unchanged (projected Newton, exact gradient and Hessian of the penalised
criterion). Satterthwaite df are then computed at the posterior mode, with the penalty's
curvature in the Hessian (see :mod:`pepmix.model.satterthwaite`).

Testing with shrinkage (workflow rule ``test``)
-----------------------------------------------
The prior already borrows strength across proteins for the variance that decides a contrast
test (the sample variance). Moderating the contrast variances again with limma's ``squeezeVar``
(:mod:`pepmix.inference.differential`) would count that information twice: ``squeezeVar`` sees
shrunk variances whose spread is small and estimates a large prior df (measured: median total
df 45 instead of 11, null p < 0.05 for 6.2-6.8 % of proteins, FDP 7-10 % at a nominal 5 %).
So with ``model.shrinkage`` the contrast-variance moderation is not applied
(:meth:`pepmix.inference.differential.InferenceOptions.from_config`), and the between-sample df
cap becomes
:math:`n_{\text{samples}} - p + d_0` (the prior counts as :math:`d_0` observations of the
sample variance ratio, as limma's prior df do; :meth:`pepmix.model.fit.ModelFit.contrast_table`).
The p-value uses :math:`\min(\nu_{\text{Satterthwaite}}, n_{\text{samples}} - p + d_0)` df.

Calibration (``tests/unit/test_shrinkage.py``; README): when the ratios follow the prior
family, null p-values were uniform (p < 0.05 for 4.3-5.2 % of 2,000 proteins); when they do not
(gamma-distributed sample variances) the rate was 4.6-5.8 %, as proteins with a large ratio are
pulled towards :math:`r_0`. The option is therefore off by default.

Sharding: the hyperparameters must be estimated once on all proteins (the workflow's
``variance_prior`` rule) and given to every shard's fit; each protein's fit then depends only on
its own data and the prior, so results do not depend on the number of shards.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import optimize, special
from scipy.interpolate import CubicSpline

from pepmix.alerts import alert
from pepmix.model.optimize import DIVERGENT_THETA, OptimResult, minimize, start_values
from pepmix.model.reml import Bucket, evaluate

if TYPE_CHECKING:
    from pepmix.model.design import RunDesign
    from pepmix.model.fit import Encoded

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

#: random factors whose variance ratio is shrunk (when in the model)
SHRINK_FACTORS = ("sample", "run")
#: range of the variance ratio on which each protein's criterion is evaluated
RATIO_RANGE = (1e-4, 1e3)
#: number of criterion evaluations per protein and factor (log-spaced)
PROFILE_POINTS = 50
#: step in log ratio of the quadrature
QUAD_STEP = 0.05
#: bounds of the prior degrees of freedom
DF_BOUNDS = (0.1, 100.0)
#: bounds of the prior ratio
RATIO_BOUNDS = (1e-4, 1e2)
#: fewest proteins on which a prior is estimated
MIN_PROTEINS = 50


@dataclass
class FactorPrior:
    """Fitted scaled-inverse-chi-square prior of one factor's variance ratio.

    Attributes
    ----------
    df : float
        Prior degrees of freedom :math:`d_0`.
    ratio : float
        Prior ratio :math:`r_0` (a typical :math:`\\sigma^2_k/\\sigma^2`).
    se_log_df, se_log_ratio : float
        Standard errors of :math:`\\log d_0` and :math:`\\log r_0` (NaN on a bound).
    n_proteins : int
        Proteins the estimate is based on.
    """

    df: float
    ratio: float
    se_log_df: float = float("nan")
    se_log_ratio: float = float("nan")
    n_proteins: int = 0


#: key of the feature-variance prior in the JSON of :class:`VariancePrior`
FEATURE_KEY = "_feature_variances"


@dataclass
class VariancePrior:
    """Priors of the shrunk factors (factor name -> :class:`FactorPrior`); with
    ``model.feature_weights``, also the prior of the feature variance ratios
    (``features``: :meth:`pepmix.model.feature_weights.FeaturePrior.to_dict`, None otherwise),
    estimated by the same rule so that it is shard-invariant. (The feature majority rule's
    prior is not stored here: each fit job fits it, :mod:`pepmix.model.majority_shards`.)"""

    factors: dict[str, FactorPrior] = field(default_factory=dict)
    features: dict[str, float] | None = None

    def to_json(self, path: str | Path) -> None:
        """Write the priors as JSON."""
        data: dict[str, Any] = {name: asdict(fp) for name, fp in self.factors.items()}
        if self.features is not None:
            data[FEATURE_KEY] = self.features
        Path(path).write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> VariancePrior:
        """Read priors written by :meth:`to_json`."""
        data = json.loads(Path(path).read_text())
        features = data.pop(FEATURE_KEY, None)
        factors = {name: FactorPrior(**values) for name, values in data.items()}
        return cls(factors, features)

    def describe(self) -> str:
        """One line per factor, for logs and the methods text."""
        return "; ".join(
            f"{name}: d0 = {fp.df:.3g}, r0 = {fp.ratio:.3g} (from {fp.n_proteins} proteins)"
            for name, fp in self.factors.items()
        )


def attach_prior(bucket: Bucket, factors: Sequence[str], prior: VariancePrior) -> Bucket:
    """Return a copy of ``bucket`` whose criterion includes the prior (free factors only)."""
    nb, nf = bucket.free.shape
    d0 = np.zeros((nb, nf))
    r0 = np.ones((nb, nf))
    for name, fp in prior.factors.items():
        if name in factors and fp.df > 0:
            f = list(factors).index(name)
            d0[:, f] = np.where(bucket.free[:, f], fp.df, 0.0)
            r0[:, f] = fp.ratio
    return replace(bucket, prior_df=d0, prior_ratio=r0)


def profile_grid() -> FloatArray:
    """Log ratios at which each protein's criterion is evaluated."""
    lo, hi = np.log(RATIO_RANGE[0]), np.log(RATIO_RANGE[1])
    return np.linspace(lo, hi, PROFILE_POINTS)


def criterion_profile(bucket: Bucket, theta: FloatArray, f: int) -> tuple[FloatArray, FloatArray]:
    """REML criterion on :func:`profile_grid` in factor ``f`` (others at ``theta``).

    Returns the criterion, shape ``(B, PROFILE_POINTS)``, and its value at ``theta_f = 0``.
    """
    plain = replace(bucket, prior_df=None, prior_ratio=None)
    u = profile_grid()
    out = np.empty((bucket.size, u.size))
    trial = theta.copy()
    for i, ui in enumerate(u):
        trial[:, f] = np.exp(ui / 2.0)
        out[:, i] = evaluate(plain, trial).dev
    trial[:, f] = 0.0
    return out, evaluate(plain, trial).dev


def _log_prior(u: FloatArray, log_d0: float, log_r0: float) -> FloatArray:
    """Log density of the scaled-inverse-chi-square prior with respect to ``u = log(lambda)``."""
    d0, r0 = np.exp(log_d0), np.exp(log_r0)
    half = d0 / 2.0
    const = half * np.log(half * r0) - special.gammaln(half)
    return np.asarray(const - half * u - half * r0 * np.exp(-u), dtype=np.float64)


@dataclass
class _Marginal:
    """What the marginal likelihood needs: each protein's :math:`e^{-d_p/2}` on the grid.

    The likelihood factors are scaled by each protein's maximum (``shift``), so that the
    integral over the grid is one matrix-vector product per hyperparameter value.
    """

    u: FloatArray
    log_weight: FloatArray
    lik: FloatArray
    lik_zero: FloatArray
    lik_top: FloatArray
    shift: FloatArray

    @classmethod
    def build(cls, dev: FloatArray, dev_zero: FloatArray) -> _Marginal:
        coarse = profile_grid()
        n_fine = int(np.ceil((coarse[-1] - coarse[0]) / QUAD_STEP)) + 1
        u = np.linspace(coarse[0], coarse[-1], n_fine)
        a = -CubicSpline(coarse, dev, axis=1)(u) / 2.0
        a_zero = -dev_zero / 2.0
        a_top = -dev[:, -1] / 2.0
        shift = np.maximum(np.max(a, axis=1), a_zero)
        weight = np.full(u.size, u[1] - u[0])
        weight[[0, -1]] /= 2.0
        return cls(
            u=u,
            log_weight=np.log(weight),
            lik=np.exp(a - shift[:, None]),
            lik_zero=np.exp(a_zero - shift),
            lik_top=np.exp(a_top - shift),
            shift=shift,
        )

    def loglik(self, x: FloatArray) -> float:
        """Marginal log-likelihood (up to a constant) at ``x = (log d0, log r0)``."""
        log_d0, log_r0 = float(x[0]), float(x[1])
        lp = _log_prior(self.u, log_d0, log_r0) + self.log_weight
        top = float(np.max(lp))
        half = np.exp(log_d0) / 2.0
        scale = half * np.exp(log_r0)
        below = special.gammaincc(half, scale / np.exp(self.u[0]))
        above = special.gammainc(half, scale / np.exp(self.u[-1]))
        inner = self.lik @ np.exp(lp - top)
        tails = (self.lik_zero * below + self.lik_top * above) * np.exp(-top)
        total = np.maximum(inner + tails, 1e-300)
        return float(np.sum(np.log(total)) + top * total.size)


def fit_hyperparameters(dev: FloatArray, dev_zero: FloatArray) -> FactorPrior:
    """Maximise the marginal likelihood over ``(log d0, log r0)`` (see the module docstring).

    Parameters
    ----------
    dev : ndarray, shape (P, PROFILE_POINTS)
        Each protein's REML criterion on :func:`profile_grid`.
    dev_zero : ndarray, shape (P,)
        The criterion at a zero ratio.
    """
    marg = _Marginal.build(dev, dev_zero)
    bounds = [tuple(np.log(DF_BOUNDS)), tuple(np.log(RATIO_BOUNDS))]

    def objective(x: FloatArray) -> float:
        return -marg.loglik(x)

    # coarse grid start: the likelihood can be flat in d0 and is not concave everywhere
    starts = [
        (a, b)
        for a in np.linspace(bounds[0][0], bounds[0][1], 7)
        for b in np.linspace(bounds[1][0], bounds[1][1], 9)
    ]
    values = [objective(np.array(s)) for s in starts]
    x0 = np.array(starts[int(np.argmin(values))])
    res = optimize.minimize(objective, x0, method="L-BFGS-B", bounds=bounds)
    x = np.asarray(res.x, dtype=np.float64)
    se = _standard_errors(objective, x, bounds)
    return FactorPrior(
        df=float(np.exp(x[0])),
        ratio=float(np.exp(x[1])),
        se_log_df=se[0],
        se_log_ratio=se[1],
        n_proteins=int(dev.shape[0]),
    )


def _standard_errors(
    objective: Callable[[FloatArray], float], x: FloatArray, bounds: list[tuple[float, ...]]
) -> tuple[float, float]:
    """Standard errors from the inverse observed information (central differences)."""
    h = 1e-3
    hess = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            ei = np.eye(2)[i] * h
            ej = np.eye(2)[j] * h
            hess[i, j] = (
                objective(x + ei + ej)
                - objective(x + ei - ej)
                - objective(x - ei + ej)
                + objective(x - ei - ej)
            ) / (4.0 * h * h)
    on_bound = [min(abs(x[i] - bounds[i][0]), abs(x[i] - bounds[i][1])) < 1e-3 for i in range(2)]
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return float("nan"), float("nan")
    se = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))
    return (
        float("nan") if on_bound[0] else float(se[0]),
        float("nan") if on_bound[1] else float(se[1]),
    )


def fit_variance_prior(
    table: pd.DataFrame,
    design: RunDesign,
    factors: Sequence[str] = SHRINK_FACTORS,
    encoded: Encoded | None = None,
) -> VariancePrior:
    """Estimate the variance-ratio priors from all proteins of a long table.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``protein, feature, run, y`` (the normalised table, all proteins).
    design : RunDesign
        Run-level design (the one the fit uses).
    factors : sequence of str, default :data:`SHRINK_FACTORS`
        Factors to shrink; those not in the model are skipped.
    encoded : Encoded, optional
        ``table`` already encoded for ``design``.

    Returns
    -------
    VariancePrior
        Empty when no protein has a shrinkable factor.
    """
    from pepmix.model.fit import encode, reml_optima
    from pepmix.model.suffstats import build_problem

    enc = encoded if encoded is not None else encode(table, design)
    problem = build_problem(
        enc.prot, enc.feat, enc.run, enc.y, design, n_proteins=len(enc.proteins)
    )
    optima = reml_optima(problem)
    prior = VariancePrior()
    for name in factors:
        if name not in problem.factors:
            continue
        f = problem.factors.index(name)
        devs, zeros = [], []
        for (_, bucket), (theta, good) in zip(problem.buckets, optima, strict=True):
            use = np.flatnonzero(good & bucket.free[:, f])
            if use.size == 0:
                continue
            dev, dev0 = criterion_profile(bucket.take(use), theta[use], f)
            devs.append(dev)
            zeros.append(dev0)
        if not devs:
            continue
        dev_all, zero_all = np.concatenate(devs), np.concatenate(zeros)
        finite = np.all(np.isfinite(dev_all), axis=1) & np.isfinite(zero_all)
        if int(finite.sum()) < MIN_PROTEINS:
            alert(
                log,
                "shrinkage_not_fitted",
                f"model.shrinkage: only {int(finite.sum())} proteins estimate a {name} variance"
                f" (fewer than {MIN_PROTEINS}); the {name} variance is not shrunk",
            )
            continue
        prior.factors[name] = fit_hyperparameters(dev_all[finite], zero_all[finite])
    log.info("variance-ratio prior: %s", prior.describe() or "none")
    return prior


def penalised_optimum(
    bucket: Bucket, factors: Sequence[str], prior: VariancePrior
) -> tuple[Bucket, OptimResult, FloatArray]:
    """Posterior mode of ``theta`` for every protein of a bucket.

    The plain REML optimum is found first (its ratios are reported as the REML estimates);
    the penalised criterion is then minimised from the better of its penalised grid start and
    the REML optimum with each shrunk ratio that is zero replaced by :math:`r_0`.

    Returns
    -------
    bucket : Bucket
        ``bucket`` with the prior attached (its criterion is the penalised one).
    opt : OptimResult
        The penalised optimum.
    theta_reml : ndarray, shape (B, F)
        The plain REML optimum (after the boundary snap).
    """
    from pepmix.model.fit import _snap_to_boundary

    plain = minimize(bucket)
    theta_reml, _ = _snap_to_boundary(bucket, plain.theta, plain.dev)
    pb = attach_prior(bucket, factors, prior)
    assert pb.prior_df is not None and pb.prior_ratio is not None
    theta0, dev0 = start_values(pb)
    shrunk = pb.prior_df > 0
    cand = np.where(shrunk & (theta_reml <= 0), np.sqrt(pb.prior_ratio), theta_reml)
    cand = np.where(np.isfinite(cand), np.minimum(cand, DIVERGENT_THETA), 0.0)
    cand_dev = evaluate(pb, cand).dev
    better = cand_dev < dev0
    theta0 = np.where(better[:, None], cand, theta0)
    return pb, minimize(pb, theta0), theta_reml
