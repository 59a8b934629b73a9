r"""Correlated random condition effects per batch: lme4's ``(condition|batch)``, per protein.

Model (one protein, :math:`n` observations, conditions :math:`c = 1..K` in treatment coding
with the first observed condition as reference):

.. math:: y = X\beta + Z_F u_F + Z_S u_S + \sum_b Z_b\,b_b + e,\quad
          b_b \sim N(0, \Sigma),\ u_F \sim N(0, \sigma_F^2 I),\ u_S \sim N(0, \sigma_S^2 I),
          \ e \sim N(0, \sigma^2 I)

where :math:`Z_b` holds, for the observations of batch :math:`b`, the treatment-coded condition
columns :math:`(1, [c = 2], \dots, [c = K])`: :math:`b_b = (a_b, s_{b2}, \dots, s_{bK})` is the
batch's deviation of the reference mean and of each condition effect, with an unstructured
covariance :math:`\Sigma` (``(condition|batch)`` of lme4, Bates et al. 2015, sec. 2.2; the
compound-symmetry special case is ``(1|batch) + (1|batch:condition)``, see
:mod:`pepmix.model.design`). The fixed effect of condition :math:`c` is the effect averaged over
batches; :math:`\Sigma_{cc}` (:math:`c \ge 2`) is the between-batch variance of that effect and
the SD of a contrast :math:`\ell` of the condition means across batches is
:math:`\sqrt{\ell' K \Sigma K' \ell}` (:math:`K` the treatment-coding matrix).

Parametrisation (lme4's): relative covariance factor :math:`\Lambda_\theta` (block diagonal:
:math:`\theta_F I`, :math:`\theta_S I`, and :math:`I_B \otimes T` with :math:`T` lower triangular,
:math:`\Sigma = \sigma^2 T T'`); :math:`\theta` lists :math:`\theta_F, \theta_S` and the
lower triangle of :math:`T` column by column, diagonal elements bounded below by 0. With the
cross-products :math:`G = [Z, X, y]'[Z, X, y]` the lower Cholesky factor of

.. math:: M(\theta) = W' G W + \mathrm{diag}(I_q, 0_{p+1}),\quad
          W = \mathrm{diag}(\Lambda_\theta, I_{p+1})

holds :math:`L_\theta` (:math:`L_\theta L_\theta' = \Lambda' Z'Z \Lambda + I`), :math:`R_X` and
:math:`r^2` (the squared last diagonal element), and the profiled REML criterion is
lme4's ``REMLcrit``: :math:`d(\theta) = \log|L_\theta|^2 + \log|R_X|^2 + \nu(1 +
\log(2\pi r^2/\nu))`, :math:`\nu = n - p` (Bates et al. 2015, eqs. 34-42). Every evaluation is
vectorised over a stack of :math:`\theta` (one batched Cholesky), so finite differences cost one
call.

Optimisation (per protein, :func:`fit_one`): L-BFGS-B (bounds :math:`T_{jj} \ge 0`) with the
analytic gradient (:func:`_grad`) from two starts (lme4's :math:`\theta = (1, \dots, T = I)` and a
tenth of it), keeping the lower criterion. The Cholesky parametrisation of a singular
:math:`\Sigma` has several faces (a zero diagonal element in different places, or an intercept
at zero) that are separate local optima, so every singular optimum is followed by restarts on
the other faces (:func:`optimise`, :func:`_escapes`; on 360 simulated proteins the two starts
alone missed the best optimum in 5.8 %, with the restarts in none). This is a quasi-Newton
method, not lme4's derivative-free BOBYQA; the parity tests compare with the best of lme4's
two optimisers and of an lme4 refit started at pepmix's optimum. Proteins are fitted one after
the other (about 20-110 ms CPU each with 20-50 random effects).

Inference as lmerTest computes it (Kuznetsova et al. 2017): with :math:`\psi = (\theta,
\sigma)` the REML deviance not profiled over :math:`\sigma`, :math:`D(\psi) = \log|L|^2 +
\log|R_X|^2 + r^2/\sigma^2 + \nu\log(2\pi\sigma^2)`, its Hessian :math:`H` at the optimum,
:math:`A = 2H^+` (pseudo-inverse over eigenvalues above ``1e-8``), the Jacobian
:math:`\partial V/\partial\psi_i` of :math:`V = \sigma^2 (R_X'R_X)^{-1}`, and for a contrast
:math:`L`: :math:`\mathrm{df} = 2 (L V L')^2 / (g' A g)`, :math:`g_i = L (\partial V/
\partial\psi_i) L'`. lmerTest takes both derivatives numerically (numDeriv, Richardson
extrapolation); here they are central differences with four Richardson steps
(:func:`richardson_hessian`), in the same parametrisation (same :math:`A`, same df also at
singular fits). The stored fit (:mod:`pepmix.model.stored`) takes :math:`\hat\beta, V,
\partial V/\partial\psi, A` in the design's cell-mean coordinates, so the test stage needs
nothing new.

A singular :math:`\hat\Sigma` (some :math:`T_{jj} < 10^{-4}`, lme4's ``isSingular`` rule) is
common with 3-5 batches: status ``boundary`` with detail ``condition|batch covariance
singular``, not an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.model.satterthwaite import EIGEN_TOL

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: the ``model.random`` term of this module
SLOPE_TERM = "condition|batch"
#: lme4's ``isSingular`` tolerance on the diagonal of the relative covariance factor
SINGULAR_TOL = 1e-4
#: starts of the optimiser: lme4's start times these factors
START_SCALES = (1.0, 0.1)
#: rounds of restarts from a singular optimum (:func:`optimise`)
MAX_ESCAPES = 3


@dataclass
class SlopeProblem:
    """One protein's model (module docstring notation).

    Attributes
    ----------
    g : ndarray, shape (m, m)
        Cross-products of ``[Z, X, y]``, ``m = q + p + 1``.
    pattern : ndarray, shape (t, q, q)
        :math:`\\Lambda_\\theta = \\sum_j \\theta_j` ``pattern[j]``.
    lower : ndarray, shape (t,)
        Lower bounds of :math:`\\theta` (0 on diagonals, ``-inf`` elsewhere).
    start : ndarray, shape (t,)
        lme4's start (1 on diagonals, 0 elsewhere).
    n, q, p : int
    k : int
        Columns of the slope block (observed conditions; 0 without the term).
    n_intercepts : int
        Random-intercept factors before the slope block (each one :math:`\\theta`).
    z, x, y : ndarray
        Dense design (for the BLUPs).
    z_levels : list of (str, str)
        Factor and level of each column of ``z``.
    """

    g: FloatArray
    pattern: FloatArray
    lower: FloatArray
    start: FloatArray
    n: int
    q: int
    p: int
    k: int
    n_intercepts: int
    z: FloatArray
    x: FloatArray
    y: FloatArray
    z_levels: list[tuple[str, str]] = field(default_factory=list)
    n_batches: int = 0
    pattern_diag: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def nu(self) -> int:
        """Residual degrees of freedom ``n - p``."""
        return self.n - self.p

    @property
    def diag_index(self) -> IntArray:
        """Positions in :math:`\\theta` of the diagonal of :math:`T`."""
        k, j0 = self.k, self.n_intercepts
        offs = [j0 + sum(k - i for i in range(c)) for c in range(k)]
        return np.asarray(offs, dtype=np.intp)


def build_problem(
    y: FloatArray,
    x: FloatArray,
    intercepts: Sequence[tuple[str, IntArray, Sequence[str]]],
    batch: IntArray | None,
    batch_names: Sequence[str],
    slope_x: FloatArray,
    cond_names: Sequence[str],
) -> SlopeProblem:
    """Dense problem of one protein.

    Parameters
    ----------
    y : ndarray, shape (n,)
    x : ndarray, shape (n, p)
        Fixed effects (full column rank).
    intercepts : sequence of (name, codes, level names)
        Random-intercept factors (codes ``0..L-1`` per observation).
    batch : ndarray of int, shape (n,), optional
        Batch code per observation (None: no slope term).
    batch_names : sequence of str
        Name of each batch code.
    slope_x : ndarray, shape (n, k)
        Treatment-coded condition columns of the slope term (first column all ones).
    cond_names : sequence of str
        Observed conditions, reference first (names the BLUP cells).
    """
    n = y.size
    blocks, levels = [], []
    for name, codes, names in intercepts:
        nl = int(codes.max()) + 1
        blocks.append(np.eye(nl)[codes])
        levels += [(name, str(names[i])) for i in range(nl)]
    k = slope_x.shape[1] if batch is not None else 0
    n_b = int(batch.max()) + 1 if batch is not None else 0
    if batch is not None:
        zb = np.zeros((n, n_b * k))
        for j in range(k):
            zb[np.arange(n), batch * k + j] = slope_x[:, j]
        blocks.append(zb)
        levels += [(f"batch_{j}", str(batch_names[b])) for b in range(n_b) for j in range(k)]
    z = np.hstack(blocks) if blocks else np.zeros((n, 0))
    q = z.shape[1]
    n_t = len(intercepts) + k * (k + 1) // 2
    pattern = np.zeros((n_t, q, q))
    col = 0
    for j, (_, codes, _) in enumerate(intercepts):
        nl = int(codes.max()) + 1
        pattern[j, col + np.arange(nl), col + np.arange(nl)] = 1.0
        col += nl
    lower = np.zeros(n_t)
    start = np.ones(n_t)
    t = len(intercepts)
    for c in range(k):  # lower triangle of T, column by column (lme4's order)
        for r in range(c, k):
            for b in range(n_b):
                pattern[t, col + b * k + r, col + b * k + c] = 1.0
            if r != c:
                lower[t], start[t] = -np.inf, 0.0
            t += 1
    zxy = np.hstack([z, x, y[:, None]])
    q0 = q - n_b * k
    pattern_diag = np.zeros((len(intercepts), q + x.shape[1] + 1))
    pattern_diag[:, :q0] = np.diagonal(pattern[: len(intercepts), :q0, :q0], axis1=1, axis2=2)
    return SlopeProblem(
        g=zxy.T @ zxy,
        pattern=pattern,
        lower=lower,
        start=start,
        n=n,
        q=q,
        p=x.shape[1],
        k=k,
        n_intercepts=len(intercepts),
        z=z,
        x=x,
        y=y,
        z_levels=levels,
        n_batches=n_b,
        pattern_diag=pattern_diag,
    )


@dataclass
class Factors:
    """Cholesky pieces at a stack of :math:`\\theta` (module docstring)."""

    ld_l: FloatArray  # log|L|^2, shape (S,)
    ld_rx: FloatArray  # log|R_X|^2
    r2: FloatArray  # penalised residual sum of squares
    chol: FloatArray  # lower Cholesky factor of M, shape (S, m, m)
    ok: NDArray[np.bool_]


def _scaled(prob: SlopeProblem, theta: FloatArray) -> FloatArray:
    """:math:`W'GW` for each row of ``theta`` using the block structure of :math:`\\Lambda`
    (diagonal intercept blocks, :math:`I_B \\otimes T`), :math:`O(m\\,q\\,k)` per row."""
    q, m, k = prob.q, prob.g.shape[0], prob.k
    s = theta.shape[0]
    q0 = q - prob.n_batches * k
    scale = np.ones((s, m))
    scale[:, :q0] = theta[:, : prob.n_intercepts] @ prob.pattern_diag[:, :q0]
    mat = prob.g[None] * scale[:, :, None] * scale[:, None, :]
    if k:
        tri = np.zeros((s, k, k))
        rows, cols = np.tril_indices(k)
        order = np.lexsort((rows, cols))  # column by column (lme4's order)
        tri[:, rows[order], cols[order]] = theta[:, prob.n_intercepts :]
        nb = prob.n_batches
        blk = slice(q0, q)
        right = mat[:, :, blk].reshape(s, m * nb, k) @ tri
        mat[:, :, blk] = right.reshape(s, m, nb * k)
        left = np.swapaxes(tri, 1, 2)[:, None] @ mat[:, blk, :].reshape(s, nb, k, m)
        mat[:, blk, :] = left.reshape(s, nb * k, m)
    return mat


def factorise(prob: SlopeProblem, theta: FloatArray) -> Factors:
    """Cholesky factor of :math:`M(\\theta)` for each row of ``theta`` (shape ``(S, t)``)."""
    q, m = prob.q, prob.g.shape[0]
    s = theta.shape[0]
    mat = _scaled(prob, theta)
    mat[:, np.arange(q), np.arange(q)] += 1.0
    ok = np.ones(s, dtype=bool)
    try:
        chol = np.linalg.cholesky(mat)
    except np.linalg.LinAlgError:
        chol = np.zeros_like(mat)
        for i in range(s):
            try:
                chol[i] = np.linalg.cholesky(mat[i])
            except np.linalg.LinAlgError:
                ok[i] = False
                chol[i] = np.eye(m)
    diag = np.diagonal(chol, axis1=1, axis2=2)
    with np.errstate(divide="ignore"):
        logd = 2.0 * np.log(np.abs(diag))
    return Factors(
        ld_l=logd[:, :q].sum(axis=1),
        ld_rx=logd[:, q : q + prob.p].sum(axis=1),
        r2=diag[:, -1] ** 2,
        chol=np.asarray(chol, dtype=np.float64),
        ok=ok,
    )


def reml_crit(prob: SlopeProblem, theta: FloatArray) -> FloatArray:
    """lme4's ``REMLcrit`` at each row of ``theta`` (``inf`` where not positive definite)."""
    fac = factorise(prob, theta)
    nu = prob.nu
    with np.errstate(divide="ignore", invalid="ignore"):
        out = fac.ld_l + fac.ld_rx + nu * (1.0 + np.log(2.0 * np.pi * fac.r2 / nu))
    return np.where(fac.ok & np.isfinite(out), out, np.inf)


def deviance_and_cov(prob: SlopeProblem, psi: FloatArray) -> tuple[FloatArray, FloatArray]:
    """lmerTest's REML deviance :math:`D(\\theta, \\sigma)` and :math:`V(\\theta, \\sigma)`
    at each row of ``psi = (theta, sigma)``; shapes ``(S,)`` and ``(S, p, p)``."""
    theta, sigma2 = psi[:, :-1], psi[:, -1] ** 2
    fac = factorise(prob, theta)
    q, p = prob.q, prob.p
    dev = fac.ld_l + fac.ld_rx + fac.r2 / sigma2 + prob.nu * np.log(2.0 * np.pi * sigma2)
    lxx = fac.chol[:, q : q + p, q : q + p]
    linv = np.linalg.inv(lxx)
    cov = sigma2[:, None, None] * (np.swapaxes(linv, 1, 2) @ linv)
    return dev, cov


def fixed_effects(prob: SlopeProblem, theta: FloatArray) -> tuple[FloatArray, float, float]:
    """:math:`\\hat\\beta` (treatment coding), :math:`r^2` and the criterion at one ``theta``."""
    fac = factorise(prob, theta[None])
    q, p = prob.q, prob.p
    lxx = fac.chol[0, q : q + p, q : q + p]
    lyx = fac.chol[0, -1, q : q + p]
    beta = np.asarray(np.linalg.solve(lxx.T, lyx), dtype=np.float64)
    return beta, float(fac.r2[0]), float(reml_crit(prob, theta[None])[0])


def blups(prob: SlopeProblem, theta: FloatArray, beta: FloatArray) -> FloatArray:
    """Conditional modes :math:`b = \\Lambda u` in data units (``lme4::ranef``)."""
    lam = np.einsum("j,jab->ab", theta, prob.pattern)
    zl = prob.z @ lam
    lhs = zl.T @ zl + np.eye(prob.q)
    u = np.linalg.solve(lhs, zl.T @ (prob.y - prob.x @ beta))
    return np.asarray(lam @ u, dtype=np.float64)


def _grad(prob: SlopeProblem, theta: FloatArray) -> tuple[float, FloatArray]:
    r"""Criterion and its analytic gradient at one ``theta``.

    With :math:`M_{11}` the leading :math:`(q+p)` block of :math:`M`, :math:`d = (1-\nu)
    \log|M_{11}| + \nu\log|M| + \text{const}` (as :math:`r^2 = |M|/|M_{11}|`), so
    :math:`\partial d/\partial\theta_j = 2\,\mathrm{tr}(A W' G E_j)` with :math:`A = (1-\nu)
    M_{11}^{-1} + \nu M^{-1}` (:math:`M_{11}^{-1}` padded with zeros) and :math:`E_j =
    \partial W/\partial\theta_j` (``pattern[j]``).
    """
    q, m, nu = prob.q, prob.g.shape[0], prob.nu
    w = np.eye(m)
    w[:q, :q] = np.einsum("j,jab->ab", theta, prob.pattern)
    wg = w.T @ prob.g
    mat = wg @ w
    mat[np.arange(q), np.arange(q)] += 1.0
    try:
        chol = np.linalg.cholesky(mat)
    except np.linalg.LinAlgError:
        return np.inf, np.zeros_like(theta)
    diag = np.diagonal(chol)
    r2 = diag[-1] ** 2
    logd = 2.0 * np.log(diag)
    crit = logd[:-1].sum() + nu * (1.0 + np.log(2.0 * np.pi * r2 / nu))
    linv = np.linalg.inv(chol)
    minv = linv.T @ linv
    l11inv = linv[:-1, :-1]  # inverse of the leading block of a lower-triangular factor
    a = nu * minv
    a[:-1, :-1] += (1.0 - nu) * (l11inv.T @ l11inv)
    b = (a @ wg)[:q, :q]
    grad = 2.0 * np.einsum("ab,jba->j", b, prob.pattern)
    return float(crit), np.asarray(grad, dtype=np.float64)


def _lbfgsb(prob: SlopeProblem, start: FloatArray) -> tuple[FloatArray, float, bool]:
    """One L-BFGS-B run from ``start``: ``theta``, criterion, convergence flag."""
    from scipy.optimize import Bounds, minimize

    def fun(th: FloatArray) -> tuple[float, FloatArray]:
        return _grad(prob, th)

    bounds = Bounds(prob.lower, np.full(prob.lower.size, np.inf))
    res = minimize(
        fun,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-11, "gtol": 1e-6, "maxiter": 1000},
    )
    theta = np.maximum(np.asarray(res.x, dtype=np.float64), prob.lower)
    return theta, float(reml_crit(prob, theta[None])[0]), bool(res.success)


def optimise(prob: SlopeProblem) -> tuple[FloatArray, float, bool]:
    r"""Minimise the REML criterion (module docstring).

    L-BFGS-B from lme4's start times each of :data:`START_SCALES`. While the best optimum has a
    zero variance parameter (a diagonal element of :math:`T` or an intercept's :math:`\theta`),
    restarts from interior points near it
    (:func:`_escapes`): a singular optimum of the Cholesky parametrisation can be a face that
    another face (another rank-deficient pattern) undercuts, which no descent from the first
    face reaches. Returns ``theta``, the lowest criterion and whether its run converged.
    """
    best = min((_lbfgsb(prob, prob.start * s) for s in START_SCALES), key=lambda r: r[1])
    for _ in range(MAX_ESCAPES):
        diag = np.concatenate([best[0][: prob.n_intercepts], best[0][prob.diag_index]])
        if np.all(diag >= SINGULAR_TOL):
            break
        trials = [_lbfgsb(prob, start) for start in _escapes(prob, best[0])]
        trial = min(trials, key=lambda r: r[1])
        if trial[1] >= best[1] - 1e-9:
            break
        best = trial
    return best


def _escapes(prob: SlopeProblem, theta: FloatArray) -> list[FloatArray]:
    r"""Interior restarts near a singular optimum.

    With :math:`s` the mean diagonal of :math:`\Sigma_r = TT'` (at least 0.1): (a) for each
    zero diagonal element :math:`T_{jj}`, the same :math:`\Sigma_r` written on another face:
    the block of :math:`T` below row :math:`j` (columns :math:`\ge j`) is re-triangularised
    (:math:`S = LQ'`, which leaves :math:`TT'` unchanged and moves the zero to the next
    diagonal), then :math:`T_{jj}` is set to :math:`\sqrt{s}/10` with either sign of column
    :math:`j`; (b) the Cholesky factors of :math:`\Sigma_r + cI` for :math:`c = s/10, s`;
    (c) each random-intercept :math:`\theta` at zero set to 0.2 and to 0.5.
    """
    k, j0 = prob.k, prob.n_intercepts
    rows, cols = np.tril_indices(k)
    order = np.lexsort((rows, cols))
    tri = np.zeros((k, k))
    tri[rows[order], cols[order]] = theta[j0:]
    sig = tri @ tri.T
    scale = max(float(np.mean(np.diag(sig))), 0.1)
    mats: list[FloatArray] = []
    for j in np.flatnonzero(np.diag(tri) < SINGULAR_TOL):
        rot = tri.copy()
        if j + 1 < k:
            _, r = np.linalg.qr(rot[j + 1 :, j:].T, mode="complete")
            rot[j + 1 :, j:] = r.T
        for sign in (1.0, -1.0):
            cand = rot.copy()
            cand[j + 1 :, j] *= sign
            cand[j, j] = 0.1 * np.sqrt(scale)
            cand[:, np.diag(cand) < 0] *= -1.0  # columns with a positive diagonal
            mats.append(cand)
    if k and np.any(np.diag(tri) < SINGULAR_TOL):
        mats += [
            np.asarray(np.linalg.cholesky(sig + c * np.eye(k)), dtype=np.float64)
            for c in (0.1 * scale, scale)
        ]
    starts = []
    for mat in mats:
        start = theta.copy()
        start[j0:] = mat[rows[order], cols[order]]
        starts.append(start)
    for j in np.flatnonzero(theta[:j0] < SINGULAR_TOL):  # intercepts at zero
        for lift in (0.2, 0.5):
            start = theta.copy()
            start[j] = lift
            starts.append(start)
    return starts


def richardson_hessian(
    func: Callable[[FloatArray], FloatArray], x: FloatArray, rel: float = 0.1, levels: int = 4
) -> tuple[FloatArray, FloatArray]:
    """Hessian of a scalar function and Jacobian of a matrix function by central differences
    with Richardson extrapolation (numDeriv's scheme: initial step ``rel * |x|`` or ``1e-4``
    at zero, halved ``levels`` times, error :math:`O(h^{2\\,levels})`).

    ``func`` maps a stack of points ``(S, k)`` to ``(S, 1 + r)``: the scalar first, then the
    flattened matrix. Returns the Hessian ``(k, k)`` of the scalar and the Jacobian ``(k, r)``
    of the rest.
    """
    k = x.size
    h0 = np.where(np.abs(x) > 1e-5, rel * np.abs(x), 1e-4)
    hess_levels, jac_levels = [], []
    for lev in range(levels):
        h = h0 / 2.0**lev
        e = np.diag(h)
        pts = [x[None], x + e, x - e]
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        for i, j in pairs:
            pts.append((x + e[i] + e[j])[None])
            pts.append((x + e[i] - e[j])[None])
            pts.append((x - e[i] + e[j])[None])
            pts.append((x - e[i] - e[j])[None])
        vals = func(np.concatenate(pts))
        f0, fp, fm = vals[0, 0], vals[1 : k + 1], vals[k + 1 : 2 * k + 1]
        hess = np.diag((fp[:, 0] - 2.0 * f0 + fm[:, 0]) / h**2)
        rest = vals[2 * k + 1 :, 0].reshape(len(pairs), 4)
        for n_pair, (i, j) in enumerate(pairs):
            a, b, c, d = rest[n_pair]
            hess[i, j] = hess[j, i] = (a - b - c + d) / (4.0 * h[i] * h[j])
        hess_levels.append(hess)
        jac_levels.append((fp[:, 1:] - fm[:, 1:]) / (2.0 * h[:, None]))
    return _extrapolate(hess_levels), _extrapolate(jac_levels)


def _extrapolate(values: list[FloatArray]) -> FloatArray:
    """Richardson extrapolation of central differences at steps ``h, h/2, h/4, ...``."""
    table = list(values)
    for m in range(1, len(table)):
        factor = 4.0**m
        table = [(factor * table[i + 1] - table[i]) / (factor - 1.0) for i in range(len(table) - 1)]
    return table[0]


@dataclass
class SlopeResult:
    """One protein's fit (treatment coding of its observed conditions)."""

    theta: FloatArray
    crit: float
    sigma: float
    beta: FloatArray
    cov_beta: FloatArray
    dcov_beta: FloatArray  # (t + 1, p, p)
    vcov_varpar: FloatArray  # (t + 1, t + 1)
    blups: FloatArray
    converged: bool
    singular: bool
    hess_min_eig: float


def fit_one(prob: SlopeProblem) -> SlopeResult:
    """Fit one protein: REML optimum, fixed effects, lmerTest's Satterthwaite ingredients."""
    theta, crit, converged = optimise(prob)
    beta, r2, _ = fixed_effects(prob, theta)
    sigma = float(np.sqrt(r2 / prob.nu))
    p = prob.p
    psi = np.append(theta, sigma)

    def func(pts: FloatArray) -> FloatArray:
        dev, cov = deviance_and_cov(prob, pts)
        return np.concatenate([dev[:, None], cov.reshape(len(pts), p * p)], axis=1)

    hess, jac = richardson_hessian(func, psi)
    evals, evecs = np.linalg.eigh(hess)
    pos = evals > EIGEN_TOL
    inv_vals = np.where(pos, 1.0 / np.where(pos, evals, 1.0), 0.0)
    vcov = 2.0 * (evecs * inv_vals) @ evecs.T
    cov = deviance_and_cov(prob, psi[None])[1][0]
    singular = bool(prob.k and np.any(theta[prob.diag_index] < SINGULAR_TOL)) or bool(
        np.any(theta[: prob.n_intercepts] < SINGULAR_TOL)
    )
    return SlopeResult(
        theta=theta,
        crit=crit,
        sigma=sigma,
        beta=beta,
        cov_beta=cov,
        dcov_beta=jac.reshape(psi.size, p, p),
        vcov_varpar=vcov,
        blups=blups(prob, theta, beta),
        converged=converged,
        singular=singular,
        hess_min_eig=float(evals.min()),
    )


def batch_covariance(result: SlopeResult, prob: SlopeProblem) -> FloatArray:
    """:math:`\\hat\\Sigma = \\sigma^2 T T'` (treatment coding), shape ``(k, k)``."""
    k = prob.k
    t = np.zeros((k, k))
    j = prob.n_intercepts
    for c in range(k):
        for r in range(c, k):
            t[r, c] = result.theta[j]
            j += 1
    return np.asarray(result.sigma**2 * t @ t.T, dtype=np.float64)


def intercept_only(prob: SlopeProblem) -> SlopeProblem:
    """The same protein with ``(1|batch)`` in place of ``(condition|batch)`` (the null model
    of the heterogeneity test, :func:`heterogeneity_lrt`)."""
    nb, k, ni = prob.n_batches, prob.k, prob.n_intercepts
    q0 = prob.q - nb * k
    keep = np.concatenate([np.arange(q0), q0 + np.arange(nb) * k])
    z = prob.z[:, keep]
    q = keep.size
    pattern = np.zeros((ni + 1, q, q))
    pattern[:ni] = prob.pattern[:ni][:, keep][:, :, keep]
    pattern[ni, q0:, q0:] = np.eye(nb)
    zxy = np.hstack([z, prob.x, prob.y[:, None]])
    pattern_diag = np.zeros((ni, zxy.shape[1]))
    pattern_diag[:, :q0] = prob.pattern_diag[:, :q0]
    return SlopeProblem(
        g=zxy.T @ zxy,
        pattern=pattern,
        lower=np.zeros(ni + 1),
        start=np.ones(ni + 1),
        n=prob.n,
        q=q,
        p=prob.p,
        k=1,
        n_intercepts=ni,
        z=z,
        x=prob.x,
        y=prob.y,
        z_levels=[prob.z_levels[i] for i in keep],
        n_batches=nb,
        pattern_diag=pattern_diag,
    )


def heterogeneity_lrt(prob: SlopeProblem, crit: float) -> float:
    r"""REML likelihood-ratio statistic of ``(condition|batch)`` against ``(1|batch)``:
    the null model's criterion minus ``crit`` (the fitted criterion), 0 below ``1e-7``;
    NaN without the slope term (fewer than two observed conditions or no batch term).

    With two conditions the null adds one variance on its boundary and one covariance, and
    the statistic is asymptotically :math:`\tfrac12\chi^2_1 + \tfrac12\chi^2_2` (Stram &
    Lee 1994, :func:`heterogeneity_pvalue`).
    """
    if prob.k < 2:
        return float("nan")
    null = intercept_only(prob)
    diff = optimise(null)[1] - crit
    return float(diff) if diff >= 1e-7 else 0.0


def heterogeneity_pvalue(lrt: FloatArray, n_conditions: NDArray[np.intp]) -> FloatArray:
    r"""p-value of :func:`heterogeneity_lrt`: the :math:`\tfrac12\chi^2_1 +
    \tfrac12\chi^2_2` mixture where the protein has two observed conditions (Stram & Lee
    1994, one random effect added to one); NaN otherwise (no closed-form null with more
    conditions: several variances on the boundary at once)."""
    from scipy import stats

    lrt = np.asarray(lrt, dtype=np.float64)
    p = np.where(
        lrt > 0,
        0.5 * stats.chi2.sf(np.maximum(lrt, 0.0), 1) + 0.5 * stats.chi2.sf(np.maximum(lrt, 0.0), 2),
        1.0,
    )
    return np.asarray(np.where(np.isnan(lrt) | (n_conditions != 2), np.nan, p), dtype=np.float64)


def frame_problem(
    frame: pd.DataFrame, intercepts: Sequence[str], conditions: Sequence[str] | None = None
) -> tuple[SlopeProblem, list[str]]:
    """Problem of one protein from a long frame (tests and benchmarks).

    ``frame`` has ``y, condition, batch`` and a column per name in ``intercepts``; fixed
    effects are ``~ condition`` (treatment coding, reference first of ``conditions``, default
    sorted observed levels), random ``(1|f)`` for ``f`` in ``intercepts`` plus
    ``(condition|batch)``. Returns the problem and the observed conditions.
    """
    levels = list(conditions) if conditions is not None else sorted(frame["condition"].unique())
    present = [c for c in levels if c in set(frame["condition"])]
    code = np.array([present.index(c) for c in frame["condition"]], dtype=np.intp)
    trt = np.eye(len(present))[code]
    trt[:, 0] = 1.0
    facs = []
    for f in intercepts:
        codes, names = pd.factorize(frame[f], sort=True)
        facs.append((f, codes.astype(np.intp), [str(v) for v in names]))
    bcodes, bnames = pd.factorize(frame["batch"], sort=True)
    prob = build_problem(
        frame["y"].to_numpy(dtype=np.float64),
        trt,
        facs,
        bcodes.astype(np.intp),
        [str(v) for v in bnames],
        trt,
        present,
    )
    return prob, present
