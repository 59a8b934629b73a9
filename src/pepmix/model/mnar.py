r"""The mixed model with a detection curve: missing cells carry information (missing not at random).

Model and notation
------------------
For one protein, feature :math:`f` and run :math:`r` (sample :math:`s(r)`), the complete-data
log2 intensity is the model of :mod:`pepmix.model.reml`,

.. math:: y_{fr} = x_r'\beta + \sigma\theta_F\,\tilde u_f + \sigma\theta_S\,\tilde v_{s(r)}
          + e_{fr},\quad \tilde u, \tilde v \sim N(0, I),\ e \sim N(0, \sigma^2)

(spherical random effects as in lme4). A cell is observed with probability
:math:`\Phi(b_{0r} + b_{1r} y_{fr})` (:mod:`pepmix.model.detection`). Given the random effects
and :math:`\mu_{fr} = x_r'\beta + \sigma\theta_F\tilde u_f + \sigma\theta_S\tilde v_{s(r)}`,
an observed cell contributes its normal density (the detection factor
:math:`\Phi(b_0 + b_1 y)` of an observed value does not involve the parameters and is dropped),
and a missing cell of a feature of the protein (every run, including runs where the protein was
not seen at all) contributes, in closed form,

.. math:: P(\text{missing} \mid \mu) = \Phi(a_{fr}),\quad
          a_{fr} = -\frac{b_{0r} + b_{1r}\mu_{fr}}{\sqrt{1 + b_{1r}^2\sigma^2}}.

With :math:`b_1 = 0` the missing cells contribute constants: the model is the MAR model.

Criterion: Laplace approximation, REML-like
-------------------------------------------
Let :math:`z = (\beta, \tilde u, \tilde v)` and :math:`g(z)` the log joint density
(observed-cell normal densities, missing-cell :math:`\log\Phi(a)`, the :math:`N(0, I)` densities
of :math:`\tilde u, \tilde v` and the condition prior below). :math:`g` is concave in :math:`z`
(:math:`\log\Phi` is concave and :math:`\mu` linear in :math:`z`), so its mode :math:`\hat z` is
unique and found by Newton's method. The criterion, minimised over
:math:`\psi = (\log\sigma, \theta_F, \theta_S)`, :math:`\theta \ge 0`, is the Laplace
approximation to :math:`-2\log\int e^{g(z)}dz`, integrating the random effects *and* the fixed
effects (flat prior on :math:`\beta`):

.. math:: D(\psi) = -2g(\hat z) + \log|{-\nabla^2 g(\hat z)}| - \dim(z)\log 2\pi .

This is the REML-like choice of glmmTMB's ``REML = TRUE`` (Brooks et al. 2017, *R Journal*
9:378): for a Gaussian model the integrand is Gaussian, the Laplace approximation is exact and
:math:`D` is lme4's REML deviance :math:`D(\theta,\sigma)` (not profiled; see
:mod:`pepmix.model.satterthwaite`). Hence at :math:`b_1 = 0` (and no condition prior) the
estimates are the REML engine's: :math:`\hat\beta` is the GLS estimate at the REML
:math:`\hat\theta, \hat\sigma`. REML rather than ML because the MAR engine is REML (the special
case must agree) and because ML's downward bias of the variances (:math:`n/(n-p)`) is large for
proteins seen in a few samples. Fixed effects are the joint mode :math:`\hat\beta`.

Accuracy of the Laplace step: with :math:`b_1 > 0` the integrand is no longer Gaussian. It is
log-concave and each missing cell's factor is smooth with curvature at most
:math:`b_1^2/(1 + b_1^2\sigma^2)`, so the approximation is close; the test suite compares
:math:`D` with a brute-force integral (adaptive Gauss-Hermite on a tensor grid over all random
effects and fixed effects) on a small protein (``tests/unit/test_detection.py``; 2 features,
4 samples, 3 of 8 cells missing): measured errors 1.3e-4, 1.4e-3 and 3.8e-3 deviance units at
slopes 0.5, 1 and 1.5 (8.8e-3 at slope 3), i.e. below 0.5 % of the likelihood. The
approximation is worse for a protein never observed in one condition: there the posterior of
that condition's level is skewed (bounded above by the missing cells, below by the condition
prior only). Measured on 2 features x 2 runs observed in A, none in B: errors of at least
0.04, 0.14 and 0.24 deviance units at slopes 0.5, 1 and 1.5 (the 6-point reference is not yet
converged there), and the Gaussian posterior behind the standard error understates the spread
on the low side (95 % intervals of such contrasts covered 50-87 % in ``benchmarks/README.md``):
their intervals therefore come from the contrast's Laplace *marginal* posterior instead (see
Inference). Adaptive Gauss-Hermite quadrature over all effects was not chosen: its cost grows as
(points)^(F + S + p).

Condition prior (finite answers for absent proteins)
----------------------------------------------------
A protein never observed in a condition has no finite estimate of that condition's level: its
missing cells only say that the level is low, and the likelihood keeps increasing as it goes to
:math:`-\infty`. The condition means :math:`\beta_c` (first :math:`C` columns) therefore get the
prior :math:`\beta_c - \bar\beta \sim N(0, \tau^2)` (a normal prior on the deviations from the
protein's mean, flat along the mean; penalty :math:`\tfrac12\tau^{-2}\beta'P\beta` with
:math:`P = I - \mathbf 1\mathbf 1'/C`). Every contrast then is finite and shrunk towards 0, with
the posterior standard error. :math:`\tau` is estimated across proteins from the MAR fits
(:func:`condition_prior_sd`: the spread of protein abundances, a weak prior: with a
contrast SE of 0.3 and :math:`\tau = 1.5` a well-observed fold change is shrunk by about 2 %);
``tau = inf`` turns the prior off (the MAR reduction). A prior fitted to the fold changes
themselves (moments of the MAR contrasts) was tried first: with 80 % null proteins it is
narrow (:math:`\tau \approx 0.5`) and biased the changing proteins' fold changes by -0.22
log2 units in the benchmark, more than the MAR model's bias it set out to remove.

Inference
---------
Standard errors of contrasts come from the observed information: :math:`\mathrm{Cov}(\hat\beta)`
is the :math:`\beta` block of :math:`(-\nabla^2 g(\hat z))^{-1}` (for a Gaussian model exactly
:math:`\sigma^2(X'H^{-1}X)^{-1}`). Degrees of freedom (:func:`contrast_stats`): the MAR fit's
Satterthwaite df where the contrast is estimable there, else the between-sample df
(observed samples minus fixed effects, at least 1); the existing moderation and BH
(:mod:`pepmix.inference.differential`) then apply unchanged.

Contrasts with a condition never observed (:func:`contrast_marginals`): the posterior of the
absent level is skewed (bounded above by the missing cells, below by the condition prior
only), so the Gaussian interval is too short on the prior's side. Their interval is the
equal-tailed credible interval of the contrast's marginal posterior, computed on a 1-D grid by
the Laplace approximation of the marginal (Tierney & Kadane 1986; INLA's, Rue, Martino & Chopin
2009): at each contrast value the other fixed effects and the random effects are maximised and
integrated by the Laplace step, :math:`\psi` held at its estimate (empirical Bayes); against
brute-force integration of those effects (adaptive Gauss-Hermite, 2 features seen in 2 runs of
A, none in B) the interval ends agree within 1e-4, 2.5e-3 and 7e-3 log2 units at slopes 0.5,
1.5 and 3 (posterior SD about 1.3; ``test_contrast_marginal_against_brute_force``). The
p-value is the two-sided posterior tail probability of 0,
:math:`2\min\{P(\delta \le 0 \mid y), P(\delta \ge 0 \mid y)\}`, never exactly 0; the
standard error reported is the posterior SD; the row is not moderated (its uncertainty is
the prior's and the missing cells', not the residual variance's). Such an interval has its
nominal coverage averaged over proteins whose fold changes follow the prior (measured
97.4 % for 95 % over 310 absent rows with effects drawn from the prior,
``tests/unit/test_detection.py``; ``benchmarks/README.md``); a protein whose drop is far
in the prior's tail (a -4 log2 change under a prior SD of 1.8) is covered less often, as with
any shrinkage interval.

That normal condition prior (the spread of abundances) is the right scale to keep every level
finite but the wrong prior for an absent protein's *fold change*: with most proteins unchanged
it has too little mass near 0, and an absent null protein's posterior follows its tail (on the
ground-truth scenarios absent rows' 95 % intervals covered 50-77 %, null absent proteins had
p < 0.05 in 33-50 %). So the rows are finally summarised (:func:`apply_fold_change_prior`)
under an adaptive-shrinkage prior of the contrast (a point mass at 0 and normals at 0, fitted
to the fold changes of the proteins observed in both conditions; :mod:`pepmix.model.fc_prior`,
Stephens 2017): the grid's log marginal *likelihood* (the contrast's own prior term taken out;
columns ``marginal_grid, marginal_loglik``) times that prior gives the posterior; its median is
the reported estimate, its SD the SE, its equal-tailed interval the CI and twice the posterior
probability of the less likely sign (a zero change counted on both sides) the p-value. The
workflow fits the prior in the test stage on all proteins (shard-invariant); the library call
does it per call. Measured: absent rows covered 96.5 % (effects from a normal prior), 98 %
(drops of 3-5 log2 units) and 100 % (ground-truth scenarios); no null absent protein reached
p < 0.05 (``benchmarks/README.md``, "Absent proteins under a fold-change prior").

Computation
-----------
Proteins are padded to a common number of features per bucket (1, 2, 4, then multiples of 4:
:func:`_bucket_width`) over all runs of the design; padded features carry no cells and
contribute exactly nothing. Each bucket is fitted in chunks of at most :data:`CHUNK_CELLS`
cells (large batches of per-cell arrays cost more per cell). Per-cell work is kept to array
passes: the observed cells' normal terms are summed per protein (no per-cell value array),
cells are masked by multiplying with a 0/1 array (``np.where`` on an irregular mask is several
times slower), the probit terms use one ``erfcx`` call per missing cell
(:math:`\Phi(a) = \tfrac12 e^{-a^2/2}\mathrm{erfcx}(-a/\sqrt2)`, :func:`_probit`) with their
coefficients computed once per mode search, and the gradient uses that the change of each
cell's mean is a run term plus a feature term (sums over runs and features, no per-cell
arrays per parameter); ``benchmarks/README.md`` has the timings. The Newton system in
:math:`z` eliminates the sample block analytically (it is diagonal given :math:`\beta, \tilde u`),
leaving a dense :math:`(p + F)` system per protein, solved batched. The outer minimisation over
:math:`\psi` (:func:`_minimise_laplace`) is a batched projected Newton with the analytic
gradient of :math:`D` (:func:`laplace_gradient`: envelope theorem plus the implicit-function
derivative of the mode, with the closed-form third derivatives of :math:`\log\Phi`; the
Laplace-gradient construction of TMB, Kristensen et al. 2016, *J Stat Softw* 70(5), here by
hand) and the Hessian as forward differences of that gradient, started at the MAR REML
estimates, with :math:`\theta \le` :data:`pepmix.model.optimize.DIVERGENT_THETA` and
:math:`\sigma \ge \sigma_{MAR}/` :data:`SIGMA_FLOOR`. Along negative curvature the step is at
least of unit length: :math:`D` is even in each :math:`\theta`, so a MAR start at
:math:`\theta = 0` is a stationary point even where it is a saddle, and a row does not stop
there. Each mode search starts from the protein's last mode moved by the first-order predictor
:math:`d\hat z/d\psi` (a by-product of the gradient): measured 2.6 objective evaluations
per mode search (1,000 x 48 benchmark). A protein whose relative SD reaches that bound or
whose :math:`\sigma` falls below
:math:`\sigma_{MAR}/5` has no finite optimum (the residual variance goes to 0 while the random
effects fit every observation, as in :mod:`pepmix.model.divergent`; measured: 1-2 of 400
simulated proteins) and keeps its MAR result; its minimisation stops there. So does a protein
whose :math:`\sigma` exceeds :data:`SIGMA_CEILING` log2 units: there the mode's levels are
of order :math:`-\sigma` (all cells "low and noisy") and :math:`D`, though increasing along that
path, loses its precision (at :math:`\sigma \approx 10^9`, levels :math:`\approx -10^9`, it
came out lower than at :math:`\sigma = 10^7`), so a long Newton step could stop at a spurious
optimum with a contrast SE of rounding noise (seen in one data set of the designs grid,
``benchmarks/README.md``: a protein never observed in one condition, 8 low cells in the other).

Random factors: ``feature`` and ``sample`` (the replication unit). A variance the MAR fit could
not estimate (dropped, or fixed at 0 in a reduced model) stays at 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import integrate, interpolate, special

from pepmix.errors import DesignError
from pepmix.model.detection import DetectionCurve
from pepmix.model.fc_prior import FoldChangePrior, fit_fold_change_prior, mixture_posterior
from pepmix.model.fit import FITTED, Encoded, ModelFit
from pepmix.model.optimize import DIVERGENT_THETA

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
LOG_2PI = float(np.log(2.0 * np.pi))
#: Newton iterations of the inner mode search
INNER_MAX_ITER = 60
#: Newton iterations of the outer minimisation over (log sigma, theta)
MAX_ITER = 40
#: step in psi of the forward differences of the analytic gradient (outer Hessian)
HESS_STEP = 1e-5
#: a row does not stop where the outer Hessian has an eigenvalue below -this x max(1, max |eig|)
NEGATIVE_CURVATURE = 1e-4
#: the residual SD may not fall below the MAR fit's divided by this (divergence, see docstring)
SIGMA_FLOOR = 10.0
#: a residual SD above this (log2 units) is a runaway of the outer minimisation (diverged)
SIGMA_CEILING = 100.0
#: smallest prior SD of the condition deviations (log2 units)
MIN_PRIOR_SD = 0.25
#: prior SD used when fewer than 10 contrasts are estimable (log2 units)
DEFAULT_PRIOR_SD = 1.0
#: most cells (proteins x padded features x runs) fitted together: larger batches of the
#: per-cell arrays cost more per cell (memory traffic; measured 3.5x per cell at 10,000 x 200)
CHUNK_CELLS = 1_000_000
#: smallest reported p-value of a marginal posterior (never exactly 0)
TINY = float(np.finfo(np.float64).tiny)


@dataclass
class CellBucket:
    """Proteins of one bucket, padded to ``F`` features, over all ``R`` runs of the design.

    Attributes
    ----------
    index : ndarray of int, shape (P,)
        Protein codes.
    y : ndarray, shape (P, F, R)
        Observed log2 intensities (0 elsewhere).
    observed, missing : ndarray of bool, shape (P, F, R)
        Observed cells; missing cells of real features (padding is neither).
    present : ndarray of bool, shape (P, F)
        Real (not padded) features.
    offset : ndarray, shape (P, R), optional
        Known term added to every cell's mean (default None: none); the fixed part of a
        contrast held at a value (:func:`contrast_marginals`).
    """

    index: NDArray[np.intp]
    y: FloatArray
    observed: NDArray[np.bool_]
    missing: NDArray[np.bool_]
    present: NDArray[np.bool_]
    offset: FloatArray | None = None
    _cache: dict[str, NDArray[Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def missing_cells(self) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
        """Flat (C-order) index, protein position and run of the missing cells (cached)."""
        if "flat" not in self._cache:
            flat = np.flatnonzero(self.missing)
            n_feat, n_runs = self.missing.shape[1:]
            self._cache.update(flat=flat, prot=flat // (n_feat * n_runs), run=flat % n_runs)
        return self._cache["flat"], self._cache["prot"], self._cache["run"]

    def observed_float(self) -> FloatArray:
        """``observed`` as 0.0/1.0 (cached): masks by multiplication, several times faster than
        ``np.where`` on an irregular boolean pattern."""
        if "obs_f" not in self._cache:
            self._cache["obs_f"] = self.observed.astype(np.float64)
        out: FloatArray = self._cache["obs_f"]
        return out

    def observed_count(self) -> FloatArray:
        """Observed cells per protein, (P,) (cached)."""
        if "n_obs" not in self._cache:
            self._cache["n_obs"] = self.observed.sum(axis=(1, 2)).astype(np.float64)
        out: FloatArray = self._cache["n_obs"]
        return out

    def take(self, rows: NDArray[np.intp]) -> CellBucket:
        """The proteins at positions ``rows`` of this bucket."""
        if rows.size == self.index.size:
            return self
        return CellBucket(
            self.index[rows], self.y[rows], self.observed[rows], self.missing[rows],
            self.present[rows], None if self.offset is None else self.offset[rows],
        )  # fmt: skip


@dataclass
class Structure:
    """Run-level quantities shared by all proteins.

    ``x`` (R, p) fixed effects; ``incidence`` (R, S) run-to-sample 0/1 matrix; ``b0, b1`` (R,)
    detection curve per run; ``penalty`` (p, p) the condition prior's precision
    :math:`\\tau^{-2}P` (zeros: no prior); ``n_conditions`` the condition columns leading ``x``.
    """

    x: FloatArray
    incidence: FloatArray
    b0: FloatArray
    b1: FloatArray
    penalty: FloatArray
    n_conditions: int
    xx: FloatArray = field(init=False, repr=False)
    run_sample: NDArray[np.intp] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Run-wise ``x_ri x_rj`` (R, p*p) and each run's sample."""
        n_runs = self.x.shape[0]
        self.xx = (self.x[:, :, None] * self.x[:, None, :]).reshape(n_runs, -1)
        self.run_sample = np.argmax(self.incidence, axis=1)

    def to_samples(self, a: FloatArray) -> FloatArray:
        """Sum the last axis (runs) by sample: ``a @ incidence`` without the R x S product."""
        n_samples = self.incidence.shape[1]
        if n_samples == self.x.shape[0] and np.array_equal(self.run_sample, np.arange(n_samples)):
            return a
        out = np.zeros((*a.shape[:-1], n_samples))
        for r, sample in enumerate(self.run_sample):  # loop over runs, vectorised over cells
            out[..., sample] += a[..., r]
        return out

    def to_runs(self, b: FloatArray) -> FloatArray:
        """Each run's sample value of the last axis: ``b @ incidence.T`` as a gather."""
        out: FloatArray = b[..., self.run_sample]
        return out


def make_structure(
    x: FloatArray,
    sample_code: NDArray[np.intp],
    curve: DetectionCurve,
    n_conditions: int,
    prior_sd: float,
) -> Structure:
    """Shared run-level arrays; ``prior_sd = inf`` turns the condition prior off."""
    n_runs, p = x.shape
    incidence = np.zeros((n_runs, int(sample_code.max()) + 1))
    incidence[np.arange(n_runs), sample_code] = 1.0
    penalty = np.zeros((p, p))
    if np.isfinite(prior_sd) and n_conditions > 1:
        c = n_conditions
        penalty[:c, :c] = (np.eye(c) - 1.0 / c) / prior_sd**2
    b0, b1 = curve.per_run()
    return Structure(
        x=x, incidence=incidence, b0=b0, b1=b1, penalty=penalty, n_conditions=n_conditions
    )


def make_buckets(enc: Encoded, n_runs: int) -> list[CellBucket]:
    """Pad the encoded observations into buckets of proteins by feature count.

    Widths: :func:`_bucket_width`.
    """
    n_prot = len(enc.proteins)
    first_feat = np.full(n_prot, np.iinfo(np.intp).max)
    np.minimum.at(first_feat, enc.prot, enc.feat)
    key = np.unique(enc.prot.astype(np.int64) * (int(enc.feat.max()) + 1) + enc.feat)
    n_feat = np.bincount(key // (int(enc.feat.max()) + 1), minlength=n_prot).astype(np.intp)
    local = enc.feat - first_feat[enc.prot]
    size = _bucket_width(n_feat)
    buckets = []
    for width in np.unique(size):
        index = np.flatnonzero(size == width)
        slot = np.full(n_prot, -1, dtype=np.intp)
        slot[index] = np.arange(index.size)
        rows = slot[enc.prot] >= 0
        y = np.zeros((index.size, int(width), n_runs))
        observed = np.zeros(y.shape, dtype=bool)
        y[slot[enc.prot[rows]], local[rows], enc.run[rows]] = enc.y[rows]
        observed[slot[enc.prot[rows]], local[rows], enc.run[rows]] = True
        present = np.arange(width)[None, :] < n_feat[index][:, None]
        missing = present[:, :, None] & ~observed
        buckets.append(CellBucket(index, y, observed, missing, present))
    return buckets


def _bucket_width(n_feat: NDArray[np.intp]) -> NDArray[np.intp]:
    """Padded width of each protein's bucket: 1, 2, 4, then the next multiple of 4.

    Multiples of 4 instead of powers of two beyond 4 features: the per-cell work grows with
    the padded width, and powers of two waste a quarter of it on average on uniform counts.
    """
    n = np.maximum(n_feat, 1)
    small = 2 ** np.ceil(np.log2(n)).astype(np.intp)
    out: NDArray[np.intp] = np.where(n <= 4, small, 4 * ((n + 3) // 4))
    return out


#: above this argument the log of the normal CDF comes from ``log_ndtr`` (see :func:`_probit`)
PROBIT_SPLIT = 5.0
SQRT_HALF = float(np.sqrt(0.5))
SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))


def _mills(a: FloatArray) -> FloatArray:
    """Inverse Mills ratio :math:`\\phi(a)/\\Phi(a) = \\sqrt{2/\\pi}/\\mathrm{erfcx}(-a/\\sqrt2)`:
    one special-function call, accurate in both tails (0 where ``erfcx`` overflows, a > 37)."""
    with np.errstate(divide="ignore"):
        out: FloatArray = SQRT_2_OVER_PI / special.erfcx(-SQRT_HALF * a)
    return out


def _probit(a: FloatArray) -> tuple[FloatArray, FloatArray]:
    """:math:`\\log\\Phi(a)` and the inverse Mills ratio from one ``erfcx`` evaluation.

    :math:`\\Phi(a) = \\tfrac12 e^{-a^2/2}\\mathrm{erfcx}(-a/\\sqrt2)`; above
    :data:`PROBIT_SPLIT` (where that form cancels: absolute error up to about 1e-15) and where
    ``erfcx`` overflows, ``special.log_ndtr``.
    """
    e = special.erfcx(-SQRT_HALF * a)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log_cdf = np.log(0.5 * e) - 0.5 * a**2
        out: FloatArray = SQRT_2_OVER_PI / e
    high = a > PROBIT_SPLIT
    if high.any():
        log_cdf[high] = special.log_ndtr(a[high])
    return log_cdf, out


def _missing_coef(
    bucket: CellBucket, st: Structure, sigma: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per missing cell :math:`-b_0/c` and :math:`\\lambda = b_1/c`, so that
    :math:`a = -b_0/c - \\lambda\\mu` (:func:`_cell_terms`; fixed while ``sigma`` is)."""
    _, prot, run = bucket.missing_cells()
    b1 = st.b1[run]
    c = np.sqrt(1.0 + b1**2 * sigma[prot] ** 2)
    return -st.b0[run] / c, b1 / c


def _cell_terms(
    bucket: CellBucket,
    st: Structure,
    mu: FloatArray,
    sigma: FloatArray,
    coef: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per protein the summed log density; per cell its first derivative and minus its second
    derivative in ``mu``.

    The observed cells' normal terms are summed as :math:`-\\tfrac12\\sum r^2 - n_{obs}(\\log\\sigma
    + \\tfrac12\\log 2\\pi)` (no per-cell value array); the probit terms are evaluated on the
    missing cells only (:meth:`CellBucket.missing_cells`) and summed per protein. ``coef``:
    :func:`_missing_coef` at ``sigma`` (default None: computed here).
    """
    inv_s = (1.0 / sigma)[:, None, None]
    obs = bucket.observed_float()
    resid = bucket.y - mu
    resid *= obs
    resid *= inv_s
    n_obs = bucket.observed_count()
    total = -0.5 * np.einsum("pfr,pfr->p", resid, resid) - n_obs * (np.log(sigma) + 0.5 * LOG_2PI)
    d1 = resid
    d1 *= inv_s
    w = obs * inv_s**2
    flat, prot, _ = bucket.missing_cells()
    icpt, slope = coef if coef is not None else _missing_coef(bucket, st, sigma)
    a = icpt - slope * mu.reshape(-1)[flat]
    log_cdf, mills = _probit(a)
    total += np.bincount(prot, weights=log_cdf, minlength=total.size)
    total[np.isnan(total)] = -np.inf  # a non-finite mean (0 x inf in the masks above)
    d1.reshape(-1)[flat] = -slope * mills
    w.reshape(-1)[flat] = slope**2 * mills * (a + mills)
    return total, d1, w


@dataclass
class _Mode:
    """Mode ``z``, ``g(z)``, ``log|-grad^2 g|``, Cov(beta); the blocks behind them.

    ``inverse`` is the inverse of the ``(beta, u)`` Schur complement, ``cross`` and ``diag``
    the blocks of :func:`_newton_system` at ``z`` (used by :func:`laplace_gradient`).
    """

    z: FloatArray
    g: FloatArray
    logdet: FloatArray
    cov_beta: FloatArray
    inverse: FloatArray
    cross: FloatArray
    diag: FloatArray


def _split(z: FloatArray, p: int, f: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    return z[:, :p], z[:, p : p + f], z[:, p + f :]


def _mean(
    bucket: CellBucket, st: Structure, z: FloatArray, scale_f: FloatArray, scale_s: FloatArray
) -> FloatArray:
    p, f = st.x.shape[1], bucket.present.shape[1]
    beta, u, v = _split(z, p, f)
    fixed = beta @ st.x.T  # (P, R)
    if bucket.offset is not None:
        fixed = fixed + bucket.offset
    sample = st.to_runs(v) * scale_s[:, None]
    feat = u * scale_f[:, None] * bucket.present
    out: FloatArray = (fixed + sample)[:, None, :] + feat[:, :, None]
    return out


def _objective(
    bucket: CellBucket,
    st: Structure,
    z: FloatArray,
    sigma: FloatArray,
    scales: tuple[FloatArray, FloatArray],
    coef: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Log joint ``g(z)``, and the per-cell ``d1, w`` at ``z`` (``coef``: :func:`_cell_terms`)."""
    p = st.x.shape[1]
    total, d1, w = _cell_terms(bucket, st, _mean(bucket, st, z, *scales), sigma, coef)
    beta, ranef = z[:, :p], z[:, p:]
    g = total - 0.5 * np.sum(ranef**2, axis=1) - 0.5 * ranef.shape[1] * LOG_2PI
    g -= 0.5 * np.einsum("pi,ij,pj->p", beta, st.penalty, beta)
    return g, d1, w


def _newton_system(
    bucket: CellBucket,
    st: Structure,
    z: FloatArray,
    d1: FloatArray,
    w: FloatArray,
    scales: tuple[FloatArray, FloatArray],
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Blocks of ``-grad^2 g`` and ``grad g`` with the sample block diagonal.

    Returns ``top`` (P, m, m) for ``(beta, u)``, ``cross`` (P, m, S), ``diag`` (P, S),
    ``grad_top`` (P, m), ``grad_v`` (P, S) and ``schur`` = ``top - cross diag^-1 cross'``.
    """
    x = st.x
    n, p, f = z.shape[0], x.shape[1], bucket.present.shape[1]
    beta, u, v = _split(z, p, f)
    sf = scales[0][:, None] * bucket.present
    ss = scales[1][:, None]
    w_run = w.sum(axis=1)  # (P, R)
    w_feat = w.sum(axis=2)  # (P, F)
    # sums over runs as matrix products (R-length contractions, no einsum over cells)
    h_bb = (w_run @ st.xx).reshape(n, p, p) + st.penalty
    h_bu = np.matmul(w, x).transpose(0, 2, 1) * sf[:, None, :]
    h_uu = np.zeros((n, f, f))
    idx = np.arange(f)
    h_uu[:, idx, idx] = sf**2 * w_feat + 1.0
    # x_ri summed by sample: a gather-sum over runs, not the (R, p S) product (mostly zeros)
    h_bv = st.to_samples(w_run[:, None, :] * x.T[None, :, :]) * ss[:, :, None]
    h_uv = st.to_samples(w) * (sf[:, :, None] * ss[:, :, None])
    diag = ss**2 * st.to_samples(w_run) + 1.0
    top = np.concatenate(
        [np.concatenate([h_bb, h_bu], axis=2), np.concatenate([h_bu.transpose(0, 2, 1), h_uu], 2)],
        axis=1,
    )
    cross = np.concatenate([h_bv, h_uv], axis=1)
    d1_run = d1.sum(axis=1)  # (P, R)
    g_b = d1_run @ x - beta @ st.penalty
    g_u = sf * d1.sum(axis=2) - u
    g_v = ss * st.to_samples(d1_run) - v
    scaled = cross / diag[:, None, :]
    schur = top - np.matmul(scaled, cross.transpose(0, 2, 1))
    return top, cross, diag, np.concatenate([g_b, g_u], axis=1), g_v, schur


def find_mode(
    bucket: CellBucket,
    st: Structure,
    psi: FloatArray,
    z0: FloatArray,
) -> _Mode:
    """Maximise ``g`` over ``z`` by damped Newton (batched); return mode, value and log-determinant.

    ``psi`` has columns ``log sigma, theta_F, theta_S`` (shape (P, 3)).
    """
    sigma = np.exp(psi[:, 0])
    scales = (sigma * psi[:, 1], sigma * psi[:, 2])
    z = z0.copy()
    coef = _missing_coef(bucket, st, sigma)
    g, d1, w = _objective(bucket, st, z, sigma, scales, coef)
    active = np.ones(z.shape[0], dtype=bool)
    current = False  # whether the blocks below are those at z (the loop stopped at its top)
    for _ in range(INNER_MAX_ITER):
        _, cross, diag, g_top, g_v, schur = _newton_system(bucket, st, z, d1, w, scales)
        schur, bad, logdet_top = _usable(schur)
        rhs = g_top - np.einsum("pis,ps->pi", cross, g_v / diag)
        step_top = np.linalg.solve(schur, rhs[:, :, None])[:, :, 0]
        step_v = (g_v - np.einsum("pis,pi->ps", cross, step_top)) / diag
        step = np.concatenate([step_top, step_v], axis=1)
        decrement = np.einsum("pi,pi->p", np.concatenate([g_top, g_v], axis=1), step)
        active &= (decrement > 1e-20) & ~bad
        step[~active] = 0.0
        if not active.any():
            current = True
            break
        t = np.where(active, 1.0, 0.0)
        for _ in range(40):
            trial = z + t[:, None] * step
            g_new, d1_new, w_new = _objective(bucket, st, trial, sigma, scales, coef)
            ok = g_new >= g + 0.25 * t * decrement - 1e-12 * np.abs(g)
            if ok.all():
                break
            t = np.where(ok, t, t / 2)
        z, g, d1, w = trial, g_new, d1_new, w_new
    if not current:
        _, cross, diag, _, _, schur = _newton_system(bucket, st, z, d1, w, scales)
        schur, bad, logdet_top = _usable(schur)
    logdet = np.where(bad, np.inf, logdet_top + np.log(diag).sum(axis=1))
    p = st.x.shape[1]
    inverse = np.asarray(np.linalg.inv(schur), dtype=np.float64)
    cov_beta = inverse[:, :p, :p].copy()
    cov_beta[bad] = np.nan
    return _Mode(
        z=z, g=np.where(bad, -np.inf, g), logdet=logdet, cov_beta=cov_beta, inverse=inverse,
        cross=cross, diag=diag,
    )  # fmt: skip


def _usable(schur: FloatArray) -> tuple[FloatArray, NDArray[np.bool_], FloatArray]:
    """Replace systems that are not positive definite (or not finite) by the identity.

    Returns the systems, which were replaced, and the log-determinants (0 where replaced).

    Such a point (e.g. a trial ``sigma`` so large that the data carry no information about the
    protein's mean) gets criterion ``+inf``, so the outer line search rejects it.
    """
    finite = np.all(np.isfinite(schur), axis=(1, 2))
    safe = np.where(finite[:, None, None], schur, np.eye(schur.shape[1]))
    sign, logdet = np.linalg.slogdet(safe)
    bad = ~finite | (sign <= 0) | ~np.isfinite(logdet)
    out: FloatArray = np.where(bad[:, None, None], np.eye(schur.shape[1]), safe)
    return out, bad, np.where(bad, 0.0, logdet)


def laplace_deviance(mode: _Mode) -> FloatArray:
    """``D = -2 g(z_hat) + log|-grad^2 g| - dim(z) log(2 pi)`` (module docstring)."""
    out: FloatArray = -2.0 * mode.g + mode.logdet - mode.z.shape[1] * LOG_2PI
    return out


def _cell_derivatives(
    bucket: CellBucket, st: Structure, mu: FloatArray, sigma: FloatArray
) -> tuple[FloatArray, ...]:
    """Per cell: ``l', w = -l''``, ``dw/dmu``; the partials of ``l, l', w`` in ``sigma``.

    ``l`` is the cell's log contribution (:func:`_cell_terms`). Observed cells:
    :math:`l = -r^2/2 - \\log\\sigma`, :math:`r = (y - \\mu)/\\sigma`. Missing cells:
    :math:`l = \\log\\Phi(a)`, :math:`a = -(b_0 + b_1\\mu)/c`,
    :math:`c = \\sqrt{1 + b_1^2\\sigma^2}`;
    with the inverse Mills ratio :math:`m = \\phi(a)/\\Phi(a)`, :math:`m' = -\\kappa`,
    :math:`\\kappa = m(a + m)` and :math:`\\kappa' = m(1 - \\kappa) - \\kappa(a + m)`, and
    :math:`\\lambda = b_1/c`: :math:`l' = -\\lambda m`, :math:`w = \\lambda^2\\kappa`,
    :math:`dw/d\\mu = -\\lambda^3\\kappa'`; in :math:`\\sigma`, :math:`\\partial a = -a\\,\\gamma`
    and :math:`\\partial\\lambda = -\\lambda\\gamma` with :math:`\\gamma = b_1^2\\sigma/c^2`.
    """
    inv_s = (1.0 / sigma)[:, None, None]
    obs = bucket.observed_float()
    resid = bucket.y - mu
    resid *= obs
    resid *= inv_s
    d1 = resid * inv_s
    w = obs * inv_s**2
    w_mu = np.zeros(mu.shape)
    l_s = resid**2
    l_s -= obs
    l_s *= inv_s
    d1_s = d1 * (-2.0 * inv_s)
    w_s = obs * (-2.0 * inv_s**3)
    flat, prot, run = bucket.missing_cells()
    b0, b1, sm = st.b0[run], st.b1[run], sigma[prot]
    c = np.sqrt(1.0 + b1**2 * sm**2)
    lam = b1 / c
    a = -(b0 + b1 * mu.reshape(-1)[flat]) / c
    mills = _mills(a)
    kappa = mills * (a + mills)
    kappa_d = mills * (1.0 - kappa) - kappa * (a + mills)
    gamma = b1**2 * sm / c**2
    da, dlam = -a * gamma, -lam * gamma
    d1.reshape(-1)[flat] = -lam * mills
    w.reshape(-1)[flat] = lam**2 * kappa
    w_mu.reshape(-1)[flat] = -(lam**3) * kappa_d
    l_s.reshape(-1)[flat] = mills * da
    d1_s.reshape(-1)[flat] = -dlam * mills + lam * kappa * da
    w_s.reshape(-1)[flat] = 2.0 * lam * dlam * kappa + lam**2 * kappa_d * da
    return d1, w, w_mu, l_s, d1_s, w_s


def _solve_mode_system(mode: _Mode, top: FloatArray, v: FloatArray) -> FloatArray:
    """``(-grad^2 g)^{-1}`` times right-hand sides ``(top, v)`` (shapes (P, m, k), (P, S, k))."""
    scaled = mode.cross / mode.diag[:, None, :]
    t = np.matmul(mode.inverse, top - np.matmul(scaled, v))
    dv = v / mode.diag[:, :, None] - np.matmul(scaled.transpose(0, 2, 1), t)
    out: FloatArray = np.concatenate([t, dv], axis=1)
    return out


def laplace_gradient(bucket: CellBucket, st: Structure, psi: FloatArray, mode: _Mode) -> FloatArray:
    """Gradient of :func:`laplace_deviance` in ``psi`` (:func:`_laplace_gradient`), (P, 3)."""
    return _laplace_gradient(bucket, st, psi, mode)[0]


def _laplace_gradient(
    bucket: CellBucket, st: Structure, psi: FloatArray, mode: _Mode
) -> tuple[FloatArray, FloatArray]:
    """Gradient of :func:`laplace_deviance` in ``psi = (log sigma, theta_F, theta_S)``, (P, 3).

    At the mode :math:`\\hat z` the envelope theorem gives, for a parameter :math:`\\varphi`
    among :math:`(\\sigma, a_F = \\sigma\\theta_F, a_S = \\sigma\\theta_S)`,
    :math:`dD/d\\varphi = -2\\,\\partial_\\varphi g + \\mathrm{tr}(H^{-1} dH/d\\varphi)`,
    :math:`H = -\\nabla^2 g = J'WJ + \\mathrm{blockdiag}(\\text{penalty}, I)`, :math:`J = \\partial
    \\mu/\\partial z`. The total derivative of :math:`H` moves :math:`W` through the explicit
    :math:`\\sigma` and through :math:`\\mu(\\hat z)`, with :math:`d\\hat z/d\\varphi =
    H^{-1}\\partial_z\\partial_\\varphi g` (implicit function theorem), and :math:`J` through
    :math:`a_F, a_S`:

    .. math:: \\mathrm{tr}(H^{-1}dH) = \\sum_c q_c\\,dw_c + 2\\sum_c w_c\\,(H^{-1}J_c')_{k(c)},

    :math:`q_c = J_cH^{-1}J_c'` the posterior variance of cell :math:`c`'s mean, :math:`k(c)`
    its feature (for :math:`a_F`) or sample (for :math:`a_S`) coordinate, :math:`dw_c =
    \\partial_\\sigma w_c + (dw/d\\mu)_c\\,d\\mu_c` (third derivatives of :math:`\\log\\Phi`, closed
    form, :func:`_cell_derivatives`). Exact at an exact mode; rows whose mode is not finite get NaN.
    Also returns :math:`d\\hat z/d\\psi` (P, dim z, 3), the first-order predictor of the mode
    at a nearby ``psi`` (warm starts).
    """
    f = bucket.present.shape[1]
    p, x = st.x.shape[1], st.x
    sigma = np.exp(psi[:, 0])
    a_f, a_s = sigma * psi[:, 1], sigma * psi[:, 2]
    _, u, v = _split(mode.z, p, f)
    sf = a_f[:, None] * bucket.present  # (P, F)
    u_eff = u * bucket.present
    v_run = st.to_runs(v)  # (P, R)
    mu = _mean(bucket, st, mode.z, a_f, a_s)
    d1, w, w_mu, l_s, d1_s, w_s = _cell_derivatives(bucket, st, mu, sigma)
    # sums of the cells' weights over features (P, R) and over runs (P, F)
    d1_run, d1_feat = d1.sum(axis=1), d1.sum(axis=2)
    w_run, w_feat = w.sum(axis=1), w.sum(axis=2)
    # mixed partials d/dz d/dphi g as cell weights plus explicit terms, phi = sigma, a_F, a_S;
    # the cell weights -w u_f and -w v_s(r) enter through their run and feature sums only
    sums = [
        (d1_s.sum(axis=1), d1_s.sum(axis=2)),
        (-np.matmul(u_eff[:, None, :], w)[:, 0, :], -u_eff * w_feat),
        (-v_run * w_run, -np.matmul(w, v_run[:, :, None])[:, :, 0]),
    ]
    tops, vs = [], []
    for k, (run_sum, feat_sum) in enumerate(sums):
        g_u = sf * feat_sum + (d1_feat * bucket.present if k == 1 else 0.0)
        g_v = a_s[:, None] * st.to_samples(run_sum)
        if k == 2:
            g_v = g_v + st.to_samples(d1_run)
        tops.append(np.concatenate([run_sum @ x, g_u], axis=1))
        vs.append(g_v)
    dz = _solve_mode_system(mode, np.stack(tops, axis=2), np.stack(vs, axis=2))  # (P, dim, 3)
    # total change of each cell's mean, J dz + explicit d mu / d phi, is separable:
    # dmu_k[f, r] = by_run[k, r] + by_feat[k, f]
    d_beta, d_u, d_v = dz[:, :p], dz[:, p : p + f], dz[:, p + f :]
    by_run = np.einsum("ri,pik->pkr", x, d_beta) + a_s[:, None, None] * st.to_runs(
        d_v.transpose(0, 2, 1)
    )  # (P, 3, R)
    by_feat = sf[:, None, :] * d_u.transpose(0, 2, 1)  # (P, 3, F)
    by_feat[:, 1] += u_eff
    by_run[:, 2] += v_run
    q, r_f, r_s = _cell_leverages(mode, st, sf, a_s)
    wq = w_mu * q  # sum_c w_mu q dmu_k by the run and feature sums of w_mu q
    wq_dmu = np.einsum("pkr,pr->pk", by_run, wq.sum(axis=1))
    wq_dmu += np.einsum("pkf,pf->pk", by_feat, wq.sum(axis=2))
    dlogdet = wq_dmu + 2.0 * np.stack(
        [
            0.5 * np.einsum("pfr,pfr->p", w_s, q),
            np.einsum("pfr,pfr->p", w, r_f),
            np.einsum("pfr,pfr->p", w, r_s),
        ],
        axis=1,
    )
    dg = np.stack(
        [
            l_s.sum(axis=(1, 2)),
            np.einsum("pf,pf->p", d1_feat, u_eff),
            np.einsum("pr,pr->p", d1_run, v_run),
        ],
        axis=1,
    )
    d_phi = -2.0 * dg + dlogdet  # in (sigma, a_F, a_S)
    # chain rule to psi: d/dlog sigma = sigma d/dsigma + a_F d/da_F + a_S d/da_S
    jac = np.zeros((psi.shape[0], 3, 3))
    jac[:, 0] = np.column_stack([sigma, a_f, a_s])
    jac[:, 1, 1] = jac[:, 2, 2] = sigma
    grad = np.einsum("pkj,pj->pk", jac, d_phi)
    good = np.isfinite(mode.logdet) & np.all(np.isfinite(mode.z), axis=1)
    out: FloatArray = np.where(good[:, None], grad, np.nan)
    dz_psi: FloatArray = np.einsum("pkj,pij->pik", jac, dz)
    return out, dz_psi


def _cell_leverages(
    mode: _Mode, st: Structure, sf: FloatArray, a_s: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per cell (P, F, R): :math:`q_c = J_cH^{-1}J_c'` and the feature and sample coordinates
    of :math:`H^{-1}J_c'`, from the Schur blocks (the sample block eliminated) without forming
    :math:`H^{-1}`."""
    p, x = st.x.shape[1], st.x
    inv = mode.inverse  # (P, m, m), m = p + F
    c_run = st.to_runs(mode.cross / mode.diag[:, None, :])  # (P, m, R)
    inv_c = np.matmul(inv, c_run)  # (P, m, R)
    t0 = np.matmul(inv[:, :, :p], x.T) - a_s[:, None, None] * inv_c  # (P, m, R)
    diag_uu = np.diagonal(inv[:, p:, p:], axis1=1, axis2=2)  # (P, F)
    r_f = t0[:, p:, :] + (sf * diag_uu)[:, :, None]
    ct0 = np.sum(c_run * t0, axis=1)  # (P, R)
    acu = inv_c[:, p:, :]  # (P, F, R)
    r_s = st.to_runs(a_s[:, None] / mode.diag)
    r_s = r_s[:, None, :] - ct0[:, None, :] - sf[:, :, None] * acu
    xt0 = np.einsum("ri,pir->pr", x, t0[:, :p, :])  # (P, R)
    xau = np.matmul(inv[:, p:, :p], x.T)  # (P, F, R)
    q = xt0[:, None, :] + sf[:, :, None] * xau + sf[:, :, None] * r_f + a_s[:, None, None] * r_s
    return q, r_f, r_s


@dataclass
class DetectionFit:
    """Per-protein results of :func:`fit_mnar` (NaN where not fitted).

    ``psi`` (P, 3): ``log sigma, theta_feature, theta_sample``; ``beta`` (P, p);
    ``cov_beta`` (P, p, p); ``deviance`` (P,) the Laplace REML-like criterion; ``diverged`` (P,)
    a relative SD reached :data:`pepmix.model.optimize.DIVERGENT_THETA` (no finite optimum: the
    residual variance goes to 0, as in :mod:`pepmix.model.divergent`), or ``sigma`` fell below
    its floor or rose above :data:`SIGMA_CEILING` (:func:`_diverging`); ``converged`` (P,) the
    outer minimisation stopped within :data:`MAX_ITER` iterations.
    """

    psi: FloatArray
    beta: FloatArray
    cov_beta: FloatArray
    deviance: FloatArray
    diverged: NDArray[np.bool_]
    converged: NDArray[np.bool_]


def fit_mnar(
    enc: Encoded,
    st: Structure,
    psi_start: FloatArray,
    free: NDArray[np.bool_],
) -> DetectionFit:
    """Minimise the Laplace criterion over ``psi`` for every protein (batched per bucket).

    Parameters
    ----------
    enc : Encoded
        Observations (:func:`pepmix.model.fit.encode`).
    st : Structure
        Run-level arrays (:func:`make_structure`).
    psi_start : ndarray, shape (P, 3)
        Start ``log sigma, theta_F, theta_S`` (e.g. the MAR REML estimates).
    free : ndarray of bool, shape (P, 3)
        Which parameters are estimated; the others stay at their start (e.g. a single-feature
        protein's ``theta`` at 0).
    """
    n_prot = len(enc.proteins)
    p = st.x.shape[1]
    out = DetectionFit(
        psi=np.full((n_prot, 3), np.nan),
        beta=np.full((n_prot, p), np.nan),
        cov_beta=np.full((n_prot, p, p), np.nan),
        deviance=np.full(n_prot, np.nan),
        diverged=np.zeros(n_prot, dtype=bool),
        converged=np.zeros(n_prot, dtype=bool),
    )
    for bucket in make_buckets(enc, st.x.shape[0]):
        n, f, r = bucket.y.shape
        for rows in np.array_split(np.arange(n), -(-n * f * r // CHUNK_CELLS)):
            chunk = bucket.take(rows)
            _fit_bucket(chunk, st, psi_start[chunk.index], free[chunk.index], out)
    return out


def _fit_bucket(
    bucket: CellBucket, st: Structure, psi0: FloatArray, free: NDArray[np.bool_], out: DetectionFit
) -> None:
    n, f = bucket.present.shape
    z_start = np.zeros((n, st.x.shape[1] + f + st.incidence.shape[1]))
    n_obs = bucket.observed.sum(axis=(1, 2))
    z_start[:, : st.n_conditions] = ((bucket.y * bucket.observed).sum(axis=(1, 2)) / n_obs)[:, None]
    centre = find_mode(bucket, st, psi0, z_start).z

    floor = psi0[:, 0] - np.log(SIGMA_FLOOR)

    # warm start: the last mode of each protein, moved by d z_hat / d psi (first order)
    warm, warm_psi = centre.copy(), psi0.copy()
    warm_slope = np.zeros((*centre.shape, 3))

    def evaluate(x: FloatArray, rows: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        psi = np.where(free[rows], x, psi0[rows])
        sub = bucket.take(rows)
        start = warm[rows] + np.einsum("pik,pk->pi", warm_slope[rows], psi - warm_psi[rows])
        mode = find_mode(sub, st, psi, start)
        value = np.where(psi[:, 0] < floor[rows], np.inf, laplace_deviance(mode))
        with np.errstate(invalid="ignore", over="ignore"):
            grad, slope = _laplace_gradient(sub, st, psi, mode)
        good = np.all(np.isfinite(mode.z), axis=1) & np.isfinite(mode.logdet)
        good &= np.all(np.isfinite(slope), axis=(1, 2))
        warm[rows[good]], warm_psi[rows[good]] = mode.z[good], psi[good]
        warm_slope[rows[good]] = slope[good]
        return value, np.where(free[rows], grad, 0.0)

    lower = np.array([-np.inf, 0.0, 0.0])
    upper = np.array([np.inf, DIVERGENT_THETA, DIVERGENT_THETA])
    found, stopped = _minimise_laplace(
        evaluate,
        psi0.copy(),
        free,
        (lower, upper),
        finished=lambda x, rows: _diverging(x, psi0[rows]),
    )
    out.converged[bucket.index] = stopped
    best = np.where(free, found, psi0)
    # from the last mode of each protein moved to its best psi (found there or a step away)
    start = warm + np.einsum("pik,pk->pi", warm_slope, best - warm_psi)
    mode = find_mode(bucket, st, best, np.where(np.isfinite(start), start, centre))
    out.psi[bucket.index] = best
    out.diverged[bucket.index] = _diverging(best, psi0)
    out.beta[bucket.index] = mode.z[:, : st.x.shape[1]]
    out.cov_beta[bucket.index] = mode.cov_beta
    out.deviance[bucket.index] = laplace_deviance(mode)


Evaluator = Callable[[FloatArray, NDArray[np.intp]], tuple[FloatArray, FloatArray]]


def _minimise_laplace(
    evaluate: Evaluator,
    x: FloatArray,
    free: NDArray[np.bool_],
    bounds: tuple[FloatArray, FloatArray],
    max_iter: int = MAX_ITER,
    finished: Callable[[FloatArray, NDArray[np.intp]], NDArray[np.bool_]] | None = None,
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Batched projected Newton with the analytic gradient (:func:`laplace_gradient`).

    ``evaluate(points, rows)`` returns the criterion and its gradient at ``points`` of the rows
    ``rows``. The Hessian is the forward difference of the analytic gradient (step
    :data:`HESS_STEP`, backwards at an upper bound), symmetrised and made positive definite by
    absolute eigenvalues (floored); coordinates not ``free`` or at a bound with the gradient
    pointing outwards are held. The stopping rule is that of
    :func:`pepmix.model.detection._minimise`: a row stops when the Newton step predicts a
    decrease below ``1e-9 (1 + |f|)``, when no backtracking step decreases the criterion by more
    than ``1e-12 (1 + |f|)``, where the criterion or gradient is not finite, or (default None:
    never) where ``finished(points, rows)`` is true after a step (here: the protein is
    diverging, :func:`_diverging`, and keeps its MAR result anyway). Returns the points and
    whether each row stopped within ``max_iter`` iterations.
    """
    lower, upper = bounds
    x = np.clip(x.copy(), lower, upper)
    k = x.shape[1]
    idx = np.arange(k)
    active = np.arange(x.shape[0])
    f_cur, g_cur = evaluate(x, active)
    for _ in range(max_iter):
        xa, f0, grad = x[active], f_cur[active], g_cur[active]
        usable = np.isfinite(f0) & np.all(np.isfinite(grad), axis=1)
        hess = _gradient_differences(evaluate, xa, active, grad, free[active], upper)
        usable &= np.all(np.isfinite(hess), axis=(1, 2))
        grad = np.where(usable[:, None], grad, 0.0)
        hess = np.where(usable[:, None, None], hess, np.eye(k))
        held = ~free[active] | ((xa <= lower + 1e-12) & (grad > 0))
        held |= (xa >= upper - 1e-12) & (grad < 0)
        grad = np.where(held, 0.0, grad)
        hess = np.where(held[:, :, None] | held[:, None, :], 0.0, hess)
        hess[:, idx, idx] = np.where(held, 1.0, hess[:, idx, idx])
        direction, negative = _newton_direction(hess, grad, xa <= lower)
        predicted = -np.einsum("ni,ni->n", grad, direction)
        going = usable & (predicted > 1e-9 * (1.0 + np.abs(np.where(usable, f0, 0.0))))
        going |= usable & negative
        rows = active[going]
        improved = _backtrack_laplace(evaluate, x, rows, (f_cur, g_cur), direction[going], bounds)
        active = rows[improved]
        if finished is not None:
            active = active[~finished(x[active], active)]
        if active.size == 0:
            break
    stopped = np.ones(x.shape[0], dtype=bool)
    stopped[active] = False
    return x, stopped


def _newton_direction(
    hess: FloatArray, grad: FloatArray, at_lower: NDArray[np.bool_]
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Newton step with absolute eigenvalues; at least unit length along negative curvature.

    Along an eigenvector with eigenvalue below ``-NEGATIVE_CURVATURE * max(1, max |eig|)`` the
    step is at least 1 (the backtracking shortens it), signed downhill, or into the bounds where
    the slope is 0: at :math:`\\theta = 0` the criterion is even in :math:`\\theta` (the sign of
    the random effects is arbitrary), so its gradient there is 0 whatever the curvature, and
    the plain step ``|g / eig|`` would only double :math:`\\theta` per iteration from a saddle
    (a MAR fit at the boundary). Returns the steps and which rows have negative curvature.
    """
    vals, vecs = np.linalg.eigh(hess)
    scale = np.maximum(np.abs(vals).max(axis=1, keepdims=True), 1.0)
    coef = -np.einsum("nji,nj->ni", vecs, grad) / np.maximum(np.abs(vals), 1e-8 * scale)
    negative = vals < -NEGATIVE_CURVATURE * scale
    inward = np.einsum("nj,nji->ni", at_lower.astype(np.float64), vecs)
    sign = np.where(np.abs(coef) > 1e-12, np.sign(coef), np.where(inward < 0, -1.0, 1.0))
    coef = np.where(negative, sign * np.maximum(np.abs(coef), 1.0), coef)
    out: FloatArray = np.einsum("nij,nj->ni", vecs, coef)
    return out, np.any(negative, axis=1)


def _gradient_differences(
    evaluate: Evaluator,
    x: FloatArray,
    rows: NDArray[np.intp],
    grad: FloatArray,
    free: NDArray[np.bool_],
    upper: FloatArray,
) -> FloatArray:
    """Hessian by forward differences of the analytic gradient, free coordinates only."""
    n, k = x.shape
    hess = np.zeros((n, k, k))
    for j in range(k):
        sub = np.flatnonzero(free[:, j])
        if sub.size == 0:
            continue
        h = np.where(x[sub, j] + HESS_STEP > upper[j], -HESS_STEP, HESS_STEP)
        point = x[sub].copy()
        point[:, j] += h
        _, g_j = evaluate(point, rows[sub])
        hess[sub, :, j] = (g_j - grad[sub]) / h[:, None]
    out: FloatArray = 0.5 * (hess + hess.transpose(0, 2, 1))
    return out


def _backtrack_laplace(
    evaluate: Evaluator,
    x: FloatArray,
    rows: NDArray[np.intp],
    current: tuple[FloatArray, FloatArray],
    direction: FloatArray,
    bounds: tuple[FloatArray, FloatArray],
) -> NDArray[np.bool_]:
    """Armijo backtracking along projected steps, updating ``x`` and ``current`` in place.

    The acceptance rule is :func:`pepmix.model.detection._backtrack`'s; returns which rows
    improved (the others stay put).
    """
    f_cur, g_cur = current
    t = np.ones(rows.size)
    improved = np.zeros(rows.size, dtype=bool)
    pending = np.arange(rows.size)
    slope = np.einsum("ni,ni->n", g_cur[rows], direction)
    for _ in range(20):
        trial = np.clip(x[rows[pending]] + t[pending, None] * direction[pending], *bounds)
        ft, gt = evaluate(trial, rows[pending])
        base = f_cur[rows[pending]]
        ok = np.isfinite(ft) & (ft <= base + 1e-4 * t[pending] * np.minimum(slope[pending], 0.0))
        ok &= (base - ft) > 1e-12 * (1.0 + np.abs(base))
        done = rows[pending[ok]]
        x[done], f_cur[done], g_cur[done] = trial[ok], ft[ok], gt[ok]
        improved[pending[ok]] = True
        pending = pending[~ok]
        if pending.size == 0:
            break
        t[pending] /= 2
    return improved


def _diverging(psi: FloatArray, psi0: FloatArray) -> NDArray[np.bool_]:
    """No finite optimum: a relative SD at its bound, ``sigma < sigma_MAR / (SIGMA_FLOOR/2)``
    or ``sigma > SIGMA_CEILING`` (module docstring)."""
    out: NDArray[np.bool_] = np.any(psi[:, 1:] >= DIVERGENT_THETA * (1 - 1e-9), axis=1) | (
        psi[:, 0] < psi0[:, 0] - np.log(SIGMA_FLOOR / 2)
    )
    out |= psi[:, 0] > np.log(SIGMA_CEILING)
    return out


#: standardised grid of the marginal posterior near the mode (units of the Laplace SE)
MARGINAL_FINE = np.linspace(-5.0, 5.0, 21)
#: standardised grid of the marginal posterior in the tails (units of the prior SD)
MARGINAL_WIDE = np.linspace(-6.0, 6.0, 25)
#: points of the interpolated density on which the marginal is integrated
MARGINAL_RESOLUTION = 2001
#: columns of :func:`detection_contrasts` holding an absent row's marginal likelihood
GRID_COLUMN = "marginal_grid"
LOGLIK_COLUMN = "marginal_loglik"


@dataclass
class ContrastMarginals:
    """Marginal-posterior summaries of contrasts (:func:`contrast_marginals`), shape (P, M).

    ``low, high`` the equal-tailed credible interval, ``pvalue`` the two-sided posterior tail
    probability of 0, ``sd`` the posterior SD, ``median`` the posterior median; NaN where not
    computed.
    """

    low: FloatArray
    high: FloatArray
    pvalue: FloatArray
    sd: FloatArray
    median: FloatArray
    #: (P, M, K) contrast values of the grid and the log marginal likelihood there (the
    #: contrast's own prior term taken out: what a fold-change prior multiplies)
    grid: FloatArray = field(default_factory=lambda: np.empty((0, 0, 0)))
    loglik: FloatArray = field(default_factory=lambda: np.empty((0, 0, 0)))


def contrast_marginals(
    enc: Encoded,
    st: Structure,
    fit: DetectionFit,
    cmat: FloatArray,
    rows: NDArray[np.bool_],
    level: float = 0.95,
    priors: Sequence[FoldChangePrior] | None = None,
) -> ContrastMarginals:
    """Credible intervals and tail probabilities of contrasts from their Laplace marginals.

    For a contrast :math:`\\delta = c'\\beta` (a difference of condition means) the log
    marginal posterior at the fitted :math:`\\psi` is, up to a constant (Tierney & Kadane 1986,
    *JASA* 81:82; the "Laplace approximation of the marginal" of INLA, Rue, Martino & Chopin
    2009, *JRSS B* 71:319),

    .. math:: \\log\\pi(\\delta\\mid y) = g(\\delta, \\hat\\eta_\\delta)
              - \\tfrac12\\log|{-\\nabla^2_\\eta g}| ,

    with :math:`\\beta = B\\eta + \\tilde c\\delta` (:math:`B` an orthonormal basis of
    :math:`c^\\perp`, :math:`\\tilde c = c/c'c`), :math:`\\eta` together with the random
    effects maximised and integrated by the Laplace step of :func:`find_mode` at each
    :math:`\\delta` (the term :math:`x_r'\\tilde c\\,\\delta` is a known offset). Because
    :math:`c \\perp \\mathbf 1` the condition prior splits into a prior on :math:`\\eta` and
    :math:`\\tfrac12\\delta^2\\tilde c'P\\tilde c/\\tau^2`. The grid is the mode plus
    :data:`MARGINAL_FINE` Laplace SEs and :data:`MARGINAL_WIDE` prior SDs of
    :math:`\\delta` (:math:`\\tau\\lVert c\\rVert`), the log density is interpolated
    (monotone cubic) and integrated on :data:`MARGINAL_RESOLUTION` points, with exponential
    tails beyond the grid. Unlike the Gaussian (Laplace) posterior, this follows the skew of a
    level bounded above by missing cells and below by the prior only.

    With ``priors`` the contrast's normal prior term is taken out again, leaving its marginal
    likelihood :math:`L(\\delta)` on the grid, and the posterior is that under the contrast's
    fold-change prior (:func:`pepmix.model.fc_prior.mixture_posterior`).

    Parameters
    ----------
    enc : Encoded
        Observations of the fit.
    st : Structure
        Run-level arrays of the fit.
    fit : DetectionFit
        The fitted model (:func:`fit_mnar`).
    cmat : ndarray, shape (M, p)
        Contrast rows; each a difference of condition means (zero sum, condition columns only).
    rows : ndarray of bool, shape (P, M)
        Protein-contrast pairs to compute.
    level : float, default 0.95
        Level of the credible interval.
    priors : sequence of FoldChangePrior, optional
        One fold-change prior per contrast (:mod:`pepmix.model.fc_prior`); default None: the
        fit's normal condition prior.

    Raises
    ------
    ValueError
        When a contrast is not a difference of condition means (the prior would not split).
    """
    n_prot, n_con = rows.shape
    out = ContrastMarginals(*(np.full((n_prot, n_con), np.nan) for _ in range(5)))
    n_grid = MARGINAL_FINE.size + int(np.sum(MARGINAL_WIDE != 0))
    out.grid = np.full((n_prot, n_con, n_grid), np.nan)
    out.loglik = np.full((n_prot, n_con, n_grid), np.nan)
    alpha = (1.0 - level) / 2.0
    wanted = np.flatnonzero(rows.any(axis=1) & np.isfinite(fit.psi[:, 0]))
    buckets = [b for b in make_buckets(enc, st.x.shape[0]) if np.isin(b.index, wanted).any()]
    for m in range(n_con):
        c = cmat[m]
        basis = _null_basis(c)
        c_t = c / float(c @ c)
        prior_prec = float(c_t @ st.penalty @ c_t)
        if np.abs(basis.T @ st.penalty @ c_t).max() > 1e-9 * max(prior_prec, 1.0):
            raise ValueError("contrast_marginals: each contrast must be a difference of conditions")
        reduced = Structure(
            x=st.x @ basis,
            incidence=st.incidence,
            b0=st.b0,
            b1=st.b1,
            penalty=basis.T @ st.penalty @ basis,
            n_conditions=st.n_conditions,
        )
        offset_run = st.x @ c_t
        for bucket in buckets:
            pos = np.flatnonzero(rows[bucket.index, m] & np.isfinite(fit.psi[bucket.index, 0]))
            if pos.size == 0:
                continue
            sub = bucket.take(pos)
            idx = sub.index
            grid, logdens = _marginal_grid(
                sub, reduced, fit, idx, (c, basis, offset_run, prior_prec)
            )
            loglik = logdens + 0.5 * prior_prec * grid**2
            out.grid[idx, m], out.loglik[idx, m] = grid, loglik
            if priors is None:
                summary = _summarise_marginal(grid, logdens, alpha)
            else:
                summary = _summarise_mixture(grid, loglik, priors[m], alpha)
            (
                out.low[idx, m],
                out.high[idx, m],
                out.pvalue[idx, m],
                out.sd[idx, m],
                out.median[idx, m],
            ) = summary
    return out


def _null_basis(c: FloatArray) -> FloatArray:
    """Orthonormal basis (p, p - 1) of the vectors orthogonal to ``c``."""
    _, _, vt = np.linalg.svd(c[None, :])
    out: FloatArray = vt[1:].T
    return out


def _marginal_grid(
    sub: CellBucket,
    reduced: Structure,
    fit: DetectionFit,
    idx: NDArray[np.intp],
    contrast: tuple[FloatArray, FloatArray, FloatArray, float],
) -> tuple[FloatArray, FloatArray]:
    """Grid (n, K) of contrast values and the log marginal density there (-inf where failed)."""
    c, basis, offset_run, prior_prec = contrast
    psi = fit.psi[idx]
    est = fit.beta[idx] @ c
    se = np.sqrt(np.einsum("i,pij,j->p", c, fit.cov_beta[idx], c))
    wide = 1.0 / np.sqrt(prior_prec) if prior_prec > 0 else np.inf
    wide = np.where(np.isfinite(wide), np.maximum(wide, se), 3.0 * se)
    offs = np.sort(
        np.concatenate(
            [se[:, None] * MARGINAL_FINE, wide[:, None] * MARGINAL_WIDE[MARGINAL_WIDE != 0]], axis=1
        ),
        axis=1,
    )
    k0 = int(np.sum(MARGINAL_FINE < 0) + np.sum(MARGINAL_WIDE < 0))
    grid = est[:, None] + offs
    logdens = np.full(grid.shape, -np.inf)
    p = fit.beta.shape[1]
    n_ranef = sub.present.shape[1] + reduced.incidence.shape[1]
    mode_start = np.zeros((idx.size, p - 1 + n_ranef))
    mode_start[:, : p - 1] = fit.beta[idx] @ basis
    zs = {k0: mode_start}
    for order in (range(k0, grid.shape[1]), range(k0 - 1, -1, -1)):
        for k in order:
            z0 = zs[k - 1] if k > k0 else zs[k + 1] if k < k0 else zs[k0]
            delta = grid[:, k]
            sub.offset = delta[:, None] * offset_run[None, :]
            mode = find_mode(sub, reduced, psi, z0)
            ok = np.isfinite(mode.logdet) & np.all(np.isfinite(mode.z), axis=1)
            logdens[:, k] = np.where(
                ok, mode.g - 0.5 * prior_prec * delta**2 - 0.5 * mode.logdet, -np.inf
            )
            zs[k] = np.where(ok[:, None], mode.z, z0)
    sub.offset = None
    return grid, logdens


def _summarise_mixture(
    grid: FloatArray, loglik: FloatArray, prior: FoldChangePrior, alpha: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """As :func:`_summarise_marginal`, for the posterior under a fold-change prior."""
    out = np.full((5, grid.shape[0]), np.nan)
    for i in range(grid.shape[0]):
        post = mixture_posterior(grid[i], loglik[i], prior, alpha, MARGINAL_RESOLUTION)
        if post is not None:
            out[:, i] = (post.low, post.high, max(post.pvalue, TINY), post.sd, post.median)
    return out[0], out[1], out[2], out[3], out[4]


def _summarise_marginal(
    grid: FloatArray, logdens: FloatArray, alpha: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Quantiles ``alpha, 1/2, 1 - alpha``, two-sided tail probability of 0 and SD per row."""
    n = grid.shape[0]
    low, high, pvalue, sd, median = (np.full(n, np.nan) for _ in range(5))
    for i in range(n):
        ok = np.isfinite(logdens[i])
        ok[1:] &= np.diff(grid[i]) > 0  # the two grids coincide where se >= the prior SD
        if ok.sum() < 5:
            continue
        x, ld = grid[i, ok], logdens[i, ok] - logdens[i, ok].max()
        fine = np.linspace(x[0], x[-1], MARGINAL_RESOLUTION)
        dens: FloatArray = np.exp(np.asarray(interpolate.PchipInterpolator(x, ld)(fine)))
        # exponential tails beyond the grid: density e^{l0 + s (x - x0)} has mass e^{l0} / s
        slope_lo = (ld[1] - ld[0]) / (x[1] - x[0])
        slope_hi = (ld[-2] - ld[-1]) / (x[-1] - x[-2])
        tail_lo = np.exp(ld[0]) / slope_lo if slope_lo > 0 else 0.0
        tail_hi = np.exp(ld[-1]) / slope_hi if slope_hi > 0 else 0.0
        cdf = tail_lo + integrate.cumulative_trapezoid(dens, fine, initial=0)
        total = cdf[-1] + tail_hi
        cdf /= total
        low[i], median[i], high[i] = np.interp([alpha, 0.5, 1.0 - alpha], cdf, fine)
        below = float(np.interp(0.0, fine, cdf))
        if x[0] > 0.0:  # beyond the grid: the exponential tail
            below = np.exp(ld[0] - slope_lo * x[0]) / slope_lo / total if slope_lo > 0 else 0.0
        elif x[-1] < 0.0:
            above = np.exp(ld[-1] + slope_hi * x[-1]) / slope_hi / total if slope_hi > 0 else 0.0
            below = 1.0 - above
        pvalue[i] = min(1.0, max(2.0 * min(below, 1.0 - below), TINY))
        mass = integrate.trapezoid(dens, fine)
        mean = integrate.trapezoid(fine * dens, fine) / mass
        sd[i] = np.sqrt(integrate.trapezoid((fine - mean) ** 2 * dens, fine) / mass)
    return low, high, pvalue, sd, median


def condition_prior_sd(levels: FloatArray) -> float:
    """SD ``tau`` of the condition-deviation prior: the spread of protein abundances.

    ``levels`` (P, C) are the MAR fit's condition means (NaN where not estimable). ``tau`` is the
    standard deviation across proteins of each protein's mean level: a priori a condition of a
    protein deviates from the protein's mean by no more than proteins differ from each other
    (the scale of limpa's prior on protein expression, here on deviations so that the
    protein's own mean is not shrunk). Floored at :data:`MIN_PRIOR_SD`;
    :data:`DEFAULT_PRIOR_SD` with fewer than 10 proteins.
    """
    finite = np.isfinite(levels)
    counts = finite.sum(axis=1)
    means = np.where(finite, levels, 0.0).sum(axis=1)[counts > 0] / counts[counts > 0]
    if means.size < 10:
        return DEFAULT_PRIOR_SD
    return max(float(np.std(means, ddof=1)), MIN_PRIOR_SD)


def contrast_stats(
    fit: DetectionFit, cmat: FloatArray, names: Sequence[str]
) -> tuple[FloatArray, FloatArray]:
    """Contrast estimates and standard errors, shape (P, M) each, for rows of ``cmat``."""
    est = fit.beta @ cmat.T
    var = np.einsum("mi,pij,mj->pm", cmat, fit.cov_beta, cmat)
    del names
    return est, np.sqrt(var)


def as_frame(fit: DetectionFit, proteins: Sequence[str]) -> pd.DataFrame:
    """Per-protein parameters as a table (``protein, sigma, theta_feature, theta_sample``)."""
    return pd.DataFrame(
        {
            "protein": list(proteins),
            "sigma": np.exp(fit.psi[:, 0]),
            "theta_feature": fit.psi[:, 1],
            "theta_sample": fit.psi[:, 2],
            "deviance": fit.deviance,
        }
    )


def _start_from_mar(mar: ModelFit) -> tuple[FloatArray, NDArray[np.bool_], NDArray[np.bool_]]:
    """Start ``psi``, free-parameter mask and fitted-protein mask from the MAR fit."""
    fitted = np.isin(np.asarray(mar.status, dtype=object), FITTED) & np.isfinite(mar.sigma)
    cols = []
    for name in ("feature", "sample"):
        if name in mar.factors:
            cols.append(mar.theta[:, mar.factors.index(name)])
        else:
            cols.append(np.full(len(mar.proteins), np.nan))
    theta = np.column_stack(cols)
    reduced = (np.asarray(mar.status, dtype=object) == "reduced_model")[:, None] & (theta == 0)
    free = np.column_stack([fitted, np.isfinite(theta) & fitted[:, None] & ~reduced])
    sigma = np.where(fitted, mar.sigma, 1.0)
    psi = np.column_stack([np.log(sigma), np.where(np.isfinite(theta), theta, 0.0)])
    return psi, free, fitted


def detection_contrasts(
    mar: ModelFit,
    curve: DetectionCurve,
    numerators: Sequence[str],
    denominators: Sequence[str],
    prior_sd: float | None = None,
    confidence: float = 0.95,
    fold_change_prior: bool = True,
) -> pd.DataFrame:
    """Contrast table of the detection model, in the layout of ``ModelFit.contrast_table``.

    Parameters
    ----------
    mar : ModelFit
        The MAR fit of the same table (:func:`pepmix.model.fit.fit_proteins`): start values,
        Satterthwaite df and the per-protein columns.
    curve : DetectionCurve
        Detection curve over the design's runs.
    numerators, denominators : sequence of str
        Conditions of each contrast, in the order of ``mar.contrast_names``.
    prior_sd : float, optional
        SD of the condition prior; default None: :func:`condition_prior_sd` of the MAR levels.
    confidence : float, default 0.95
        Level of the credible intervals of the absent-condition rows (``ci_low, ci_high``).
    fold_change_prior : bool, default True
        Summarise the absent-condition rows under the fold-change prior of the other rows
        (:func:`apply_fold_change_prior`); False: under the condition prior of the fit (the
        workflow applies the fold-change prior later, to all shards' rows at once).

    Raises
    ------
    DesignError
        When the model has random factors other than ``feature`` and ``sample``.

    Returns
    -------
    pandas.DataFrame
        The MAR contrast table with ``estimate, se`` of the detection model. Rows the MAR model
        could not estimate because one condition was never observed (``one_condition_missing``)
        become ``ok`` with a finite shrunken estimate (the joint posterior mode), df = the
        between-sample df (at least 1), ``n_samples`` of the absent condition counted as 1, a
        ``detail`` note and, from the contrast's Laplace marginal posterior
        (:func:`contrast_marginals`; with ``fold_change_prior`` under the fold-change prior,
        :func:`apply_fold_change_prior`, whose posterior median is then the ``estimate``),
        ``se`` its SD (the Laplace SE where it failed), the columns ``ci_low, ci_high`` (the
        equal-tailed credible interval), ``pvalue`` (two-sided posterior tail probability of
        0) and ``marginal_grid, marginal_loglik`` (the grid of the marginal likelihood), which
        :func:`pepmix.inference.differential.differential_table` reports as they are (NaN on the
        other rows); ``df`` elsewhere are the MAR Satterthwaite df. A protein whose
        detection-model criterion has no finite optimum (``DetectionFit.diverged``) keeps its
        MAR row, with a ``detail`` note; one whose minimisation did not converge keeps its
        detection-model row with a ``detail`` note.
    """
    design = mar.design
    extra = sorted(set(design.spec.random) - {"feature", "sample"})
    if extra:
        raise DesignError(
            f"missing: detection supports the random factors feature and sample only, not "
            f"{', '.join(extra)}"
        )
    table = mar.contrast_table(numerators, denominators)
    if prior_sd is None:
        prior_sd = condition_prior_sd(mar.beta[:, : len(design.conditions)])
    st = make_structure(design.x, design.sample_code, curve, len(design.conditions), prior_sd)
    psi, free, fitted = _start_from_mar(mar)
    if mar.encoded is None:
        raise ValueError("the MAR fit has no encoded observations")
    result = fit_mnar(mar.encoded, st, psi, free)
    cmat = np.zeros((len(numerators), design.n_fixed))
    for m, (num, den) in enumerate(zip(numerators, denominators, strict=True)):
        cmat[m, design.conditions.index(num)] += 1.0
        cmat[m, design.conditions.index(den)] -= 1.0
    est, se = contrast_stats(result, cmat, mar.contrast_names)
    est = np.where(fitted[:, None], est, np.nan).T.ravel()  # contrast-major, as the table
    se = np.where(fitted[:, None], se, np.nan).T.ravel()
    diverged = np.tile(result.diverged, len(numerators))
    est = np.where(diverged, np.nan, est)
    se = np.where(diverged, np.nan, se)
    absent = (table["status"] == "one_condition_missing").to_numpy() & np.isfinite(est)
    absent &= np.isfinite(se) & (se > 0)
    mar_ok = np.isfinite(table["estimate"].to_numpy()) & ~diverged
    table["estimate"] = np.where(mar_ok | absent, est, table["estimate"])
    table["se"] = np.where(mar_ok | absent, se, table["se"])
    slow = np.tile(~result.converged & fitted & ~result.diverged, len(numerators))
    note_slow = f"detection model: not converged in {MAX_ITER} iterations"
    table.loc[slow, "detail"] = [
        f"{d}; {note_slow}" if d else note_slow for d in table.loc[slow, "detail"].fillna("")
    ]
    fallback = "detection model: no finite optimum, MAR estimate kept"
    table.loc[diverged, "detail"] = [
        f"{d}; {fallback}" if d else fallback for d in table.loc[diverged, "detail"].fillna("")
    ]
    n_con = len(numerators)
    marg = contrast_marginals(
        mar.encoded, st, result, cmat, absent.reshape(n_con, -1).T, level=confidence
    )
    table["ci_low"], table["ci_high"], table["pvalue"] = (
        np.where(absent, a.T.ravel(), np.nan) for a in (marg.low, marg.high, marg.pvalue)
    )
    grids = marg.grid.transpose(1, 0, 2).reshape(-1, marg.grid.shape[2])
    logliks = marg.loglik.transpose(1, 0, 2).reshape(-1, marg.loglik.shape[2])
    for col, values in ((GRID_COLUMN, grids), (LOGLIK_COLUMN, logliks)):
        table[col] = pd.Series(
            [list(v) if a else None for v, a in zip(values, absent, strict=True)],
            index=table.index,
            dtype=object,
        )
    post_sd = marg.sd.T.ravel()  # NaN where the grid failed: the Laplace SE stays
    table["se"] = np.where(absent & np.isfinite(post_sd), post_sd, table["se"])
    table.loc[absent, "df"] = np.maximum(table.loc[absent, "df_between"], 1.0)
    for col in ("n_samples_num", "n_samples_den"):
        table.loc[absent, col] = np.maximum(table.loc[absent, col], 1)
    table.loc[absent, "status"] = "ok"
    note = "detection model: one condition never observed, shrunken estimate"
    table.loc[absent, "detail"] = [
        f"{d}; {note}" if d else note for d in table.loc[absent, "detail"].fillna("")
    ]
    log.info(
        "detection model: %d proteins fitted, condition prior SD %.3g, %d contrast rows with "
        "one condition never observed now estimated",
        int(fitted.sum()),
        prior_sd,
        int(absent.sum()),
    )
    if fold_change_prior:
        apply_fold_change_prior(table, confidence)
    return table


def apply_fold_change_prior(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Absent-condition rows summarised under each contrast's fold-change prior (in place).

    Per contrast, the prior (:func:`pepmix.model.fc_prior.fit_fold_change_prior`) is fitted to
    the estimates and standard errors of the rows observed in both conditions (status ``ok``,
    finite ``estimate, se``, no stored marginal); each row with a stored marginal likelihood
    (``marginal_grid, marginal_loglik`` of :func:`detection_contrasts`) gets ``estimate`` (the
    posterior median), ``se`` (posterior SD), ``ci_low, ci_high`` and ``pvalue`` of its
    posterior under that prior (:func:`pepmix.model.fc_prior.mixture_posterior`). Applied to
    the table of all proteins (the workflow's test stage), the result does not depend on how
    the proteins were split into shards.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of :func:`detection_contrasts` (any number of contrasts and proteins).
    confidence : float, default 0.95
        Level of the credible intervals.

    Returns
    -------
    pandas.DataFrame
        ``table``, modified.
    """
    if GRID_COLUMN not in table.columns:
        return table
    alpha = (1.0 - confidence) / 2.0
    has = table[GRID_COLUMN].notna().to_numpy()
    contrast = table["contrast"].astype(str).to_numpy()
    for name in pd.unique(contrast):
        rows = np.flatnonzero(contrast == name)
        part = table.iloc[rows]
        present = (
            ~has[rows]
            & (part["status"] == "ok").to_numpy()
            & np.isfinite(part["estimate"].to_numpy(dtype=float))
            & np.isfinite(part["se"].to_numpy(dtype=float))
        )
        prior = fit_fold_change_prior(
            part["estimate"].to_numpy(dtype=float)[present],
            part["se"].to_numpy(dtype=float)[present],
        )
        for i in rows[has[rows]]:
            label = table.index[i]
            post = mixture_posterior(
                np.asarray(table.at[label, GRID_COLUMN], dtype=float),
                np.asarray(table.at[label, LOGLIK_COLUMN], dtype=float),
                prior,
                alpha,
                MARGINAL_RESOLUTION,
            )
            if post is None:
                continue
            values = {
                "estimate": post.median,
                "se": post.sd,
                "ci_low": post.low,
                "ci_high": post.high,
                "pvalue": max(post.pvalue, TINY),
            }
            for col, value in values.items():
                table.at[label, col] = value
    return table
