r"""Boundary screen of the peptide-usage refit: proteins whose refit provably ends with the usage
variance at zero are not refitted (issue 12, speed).

Model and notation
------------------
The usage model (:mod:`pepmix.model.usage`) is the default model plus one random intercept per
feature x condition cell, :math:`w_{fc} \sim N(0, \sigma^2\lambda)`, :math:`\lambda =
\theta_U^2`. Its profiled REML criterion :math:`d(\theta, \theta_U)` (:mod:`pepmix.model.reml`)
depends on :math:`\theta_U` only through :math:`\lambda`, so :math:`\partial d/\partial\theta_U
= 0` and :math:`\partial^2 d/\partial\theta_U\partial\theta_k = 0` at :math:`\theta_U = 0`, and
:math:`\partial^2 d/\partial\theta_U^2 = 2\,\partial d/\partial\lambda` there. At
:math:`\theta_U = 0` and the default fit's observation weights :math:`w` the usage model *is*
the default model, so the default fit's optimum :math:`\theta_0` gives a stationary point
:math:`(\theta_0, 0)` in the other components.

Slope in :math:`\lambda` (:func:`usage_slope`), with :math:`L` the Cholesky factor of
:math:`S` at :math:`(\theta_0, 0)`, :math:`\nu` the residual df and the last dimension the
response:

- usage factor eliminated (its levels' block is diagonal): :math:`\hat G = G - \sum_c
  f_c(\lambda) W_c` with :math:`f_c'(0) = 1`, so with :math:`A = \tilde\Lambda(\sum_c
  W_c)\tilde\Lambda` and :math:`B = L^{-1} A L^{-T}`

  .. math:: \partial d/\partial\lambda = \textstyle\sum_c m_c c - \mathrm{tr}\,B_0 - \nu B_{yy}

  (:math:`B_0` the block without the response; :math:`\sum_c m_c c` the observations' weight
  sum);
- usage factor kept (dimensions :math:`U`): at :math:`\theta_U = 0` the matrix :math:`S` is
  block diagonal with an identity block on :math:`U`, and with :math:`Z = L^{-1}\tilde\Lambda
  \hat G M_U` (:math:`M_U` the columns of :math:`U`)

  .. math:: \partial d/\partial\lambda = \mathrm{tr}\,\hat G_{UU} - \|Z_0\|_F^2
            - \nu\,\|z_y\|^2

  (:math:`Z_0` the rows without the response, :math:`z_y` its row).

Both are the score of :math:`\lambda` at zero: the cells' squared residual sums against their
expected size. Exact (no finite differences); ``tests/unit/test_usage_screen.py`` checks them
against :func:`pepmix.model.reml.derivatives`.

The screen (:func:`boundary_screen`)
------------------------------------
A protein is screened (not refitted: usage variance 0, LRT 0, status ``boundary``, no usage
BLUPs, which is what the refit reports for it) when

1. the default fit is whole and converged (status ``ok`` or ``boundary``), its model with the
   term keeps every term, and the refit is plain REML (``robust: none``) or Huber;
2. the start is a stationary point of the other components: projected gradient below
   :data:`GRAD_TOL`, the optimiser's own convergence bound (:func:`face_gradient`, exact).
   This holds by construction when the start is the default fit's optimum at the refit's
   weights; it excludes starts that are not (a variance-ratio prior, ``model.shrinkage``;
   mismatched inputs);
3. every free component at 0 curves upwards: :math:`\partial d/\partial\lambda_f > 0` for the
   usage term and for any other factor at 0 (:func:`lambda_slope`; the criterion is even in
   each :math:`\theta_f`, so at a point where some components are 0 the gradient and the
   mixed second derivatives in those components vanish and the Hessian is block diagonal).
   With item 2, :math:`(\theta_0, 0)` is a strict local minimum in the zero components (KKT),
   and the refit's projected Newton iteration, which starts there (item 4), takes no step in
   :math:`\theta_U` (no saddle to escape; a stray step smaller than the boundary snap,
   :data:`pepmix.model.fit.SNAP_TOL`, is snapped back);
4. the refit's own grid for :math:`\theta_U` (:func:`pepmix.model.optimize.partial_start`:
   :data:`pepmix.model.optimize.GRID_VALUES` ``[1]`` with the other components at
   :math:`\theta_0`) has no point below the criterion at 0 (by :data:`GRID_MARGIN`), so the
   refit starts at :math:`(\theta_0, 0)`; this guards against profiles with another, lower
   optimum that the grid would find (:func:`grid_start`; its choice is handed to the
   refitted proteins, which then skip the grid);
5. Huber: the default fit's weights are within :data:`pepmix.model.robust.WEIGHT_TOL` minus
   :data:`WEIGHT_MARGIN` of the Huber weights of the residuals at :math:`(\theta_0, 0)`, so the
   refit's robust iteration keeps them (it stops when no weight changes by more than the
   tolerance); this excludes proteins whose default fit's weights were not settled (the
   least-squares fallback, weights still moving after the last round, feature weights).

So the guarantee is that a screened protein gets the row the refit would give it, not that
its usage variance is globally optimal at zero (the refit does not promise that either). Not
checked (it would need the full Hessian, ~9 evaluations of the criterion): the curvature of
the positive components, which the default fit's optimiser left at a minimum (its
convergence test rejects saddles; only a stopped line search could leave one).
``bisquare`` is never screened (its iteration restarts from the median polish's scale and
may switch to Huber weights).

With the weights held fixed (``peptide_usage_weights: default_fit``,
:func:`screen_at_weights` with ``"fixed"``) item 5 does not apply, and the criterion at the
start is returned where items 2 and 3 hold without the usage term's slope: there the start is a
minimum of the model without the term at these weights, i.e. the LRT's null fit
(:func:`pepmix.model.usage.fixed_weight_lrt`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pepmix.model.design import USAGE_FACTOR, RunDesign
from pepmix.model.fit import (
    Encoded,
    ModelFit,
    _allocate,
    _level_residuals,
    _prediction_columns,
    _store_point,
)
from pepmix.model.optimize import DIVERGENT_THETA
from pepmix.model.reml import Bucket, Evaluation, _class_sum, evaluate
from pepmix.model.satterthwaite import point_estimates
from pepmix.model.suffstats import Problem, build_problem

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

#: a grid point of the refit's start must lie above the criterion at 0 by this (relative to
#: ``1 + |d|``): the refit evaluates the grid in its own buckets, where the padding may differ
#: in the last bits (the criterion is evaluated row by row, but padded sizes vary)
GRID_MARGIN = 1e-9
#: the screened weights' distance to the Huber weights of their residuals must stay this far
#: below :data:`pepmix.model.robust.WEIGHT_TOL`: the refit takes its residuals at its own
#: optimum, the screen at the default fit's; both are converged optima of the same criterion
#: (projected gradient < 1e-6, :mod:`pepmix.model.optimize`), so theta differs by ~1e-6 and a
#: weight by ~1e-5 at most (measured on sim3000x12: 1.4e-6 at most, 0 for 99 % of proteins)
WEIGHT_MARGIN = 1e-4
#: the start must be a stationary point of the components other than the usage term: projected
#: gradient norm below the optimiser's convergence bound (:func:`pepmix.model.optimize.minimize`)
GRAD_TOL = 1e-6


def lambda_slope(
    bucket: Bucket, theta: FloatArray, ev: Evaluation, f: int, linv: FloatArray | None = None
) -> FloatArray:
    """:math:`\\partial d/\\partial\\lambda_f` at :math:`\\theta_f = 0` per protein (module
    docstring; written there for the usage term, the same for any factor ``f`` at 0), from
    the evaluation ``ev`` at ``theta``; ``linv`` (default None: computed) is the inverse of
    ``ev.chol``. NaN where factor ``f`` is not free or ``theta[:, f]`` is not 0."""
    nb, d = bucket.size, bucket.dim
    if linv is None:
        linv = np.asarray(np.linalg.inv(ev.chol), dtype=np.float64)
    lam = ev.lam
    nu = bucket.nu
    out = np.full(nb, np.nan)
    at_zero = bucket.free[:, f] & (theta[:, f] == 0.0)
    elim = at_zero & (bucket.efactor == f)
    kept = at_zero & (bucket.efactor != f)
    if elim.any():
        rows = np.flatnonzero(elim)
        sub = bucket.take_shared(rows)
        present = (sub.cls_m > 0).astype(np.float64)
        total = _class_sum(present, sub.W, sub.w_rows)
        a = lam[rows, :, None] * total * lam[rows, None, :]
        li = linv[rows]
        b = li @ a @ np.swapaxes(li, 1, 2)  # L^-1 A L^-T
        n_w = np.sum(sub.cls_m * sub.cls_n, axis=1)
        trace0 = np.trace(b[:, : d - 1, : d - 1], axis1=1, axis2=2)
        out[rows] = n_w - trace0 - nu[rows] * b[:, d - 1, d - 1]
    if kept.any():
        rows = np.flatnonzero(kept)
        mask = (bucket.dimfactor[rows] == f).astype(np.float64)
        ghat = ev.ghat[rows]
        z = linv[rows] @ (lam[rows, :, None] * ghat * mask[:, None, :])  # L^-1 Lambda Ghat M_f
        t0 = np.sum(mask * np.diagonal(ghat, axis1=1, axis2=2), axis=1)
        z0 = np.sum(z[:, : d - 1, :] ** 2, axis=(1, 2))
        zy = np.sum(z[:, d - 1, :] ** 2, axis=1)
        out[rows] = t0 - z0 - nu[rows] * zy
    return out


def inverses(linv: FloatArray) -> tuple[FloatArray, FloatArray]:
    """:math:`S^{-1}` and :math:`S_0^{-1}` (zero-padded to ``d``) from :math:`L^{-1}`: the
    inverse of the leading block of a triangular factor is the leading block of its inverse."""
    d = linv.shape[1]
    sinv = np.swapaxes(linv, 1, 2) @ linv
    l0 = linv[:, : d - 1, : d - 1]
    s0inv = np.zeros_like(linv)
    s0inv[:, : d - 1, : d - 1] = np.swapaxes(l0, 1, 2) @ l0
    return np.asarray(sinv, dtype=np.float64), s0inv


def face_gradient(
    bucket: Bucket, theta: FloatArray, ev: Evaluation, sinv: FloatArray, s0inv: FloatArray
) -> FloatArray:
    """Gradient of the criterion in :math:`\\theta` (shape ``(B, F)``, 0 for factors that are
    not free), the first derivatives of :func:`pepmix.model.reml.derivatives` without the
    second ones: for a kept factor :math:`\\partial\\log|S| = 2\\sum_{i \\in k}
    (\\hat G\\tilde\\Lambda S^{-1})_{ii}`, for the eliminated one
    :math:`\\mathrm{tr}(S^{-1}\\tilde\\Lambda\\,\\partial\\hat G\\,\\tilde\\Lambda)`."""
    nb, nf = theta.shape
    nu = bucket.nu
    r = ev.ghat * ev.lam[:, None, :]
    diag = np.sum(r * sinv, axis=2)
    diag0 = np.sum(r * s0inv, axis=2)
    grad = np.zeros((nb, nf))
    for f in range(nf):
        mask = bucket.dimfactor == f
        l1 = 2.0 * np.sum(np.where(mask, diag, 0.0), axis=1)
        l01 = 2.0 * np.sum(np.where(mask, diag0, 0.0), axis=1)
        grad[:, f] = (1.0 - nu) * l01 + nu * l1
    rows = np.flatnonzero(bucket.efactor >= 0)
    if rows.size:
        sub = bucket.take_shared(rows)
        e = sub.efactor
        theta_e = theta[rows, e]
        denom = 1.0 + theta_e[:, None] ** 2 * sub.cls_n
        present = sub.cls_m > 0
        fp = np.where(present, 1.0 / denom**2, 0.0)
        ge1 = -_class_sum(2.0 * theta_e[:, None] * fp, sub.W, sub.w_rows)
        de = ev.lam[rows, :, None] * ge1 * ev.lam[rows, None, :]
        l1 = np.sum(sinv[rows] * de, axis=(1, 2))
        l01 = np.sum(s0inv[rows] * de, axis=(1, 2))
        s1 = np.sum(np.where(present, sub.cls_m * sub.cls_n / denom, 0.0), axis=1)
        grad[rows, e] = 2.0 * theta_e * s1 + (1.0 - nu[rows]) * l01 + nu[rows] * l1
    return np.asarray(grad * bucket.free, dtype=np.float64)


def _stationary(
    bucket: Bucket,
    theta: FloatArray,
    ev: Evaluation,
    sinv: FloatArray,
    s0inv: FloatArray,
    u: int,
) -> BoolArray:
    """Whether ``theta`` is a stationary point of the other components: the projected gradient
    (:func:`face_gradient`; 0 where a component is at 0 and the criterion rises) is below the
    optimiser's convergence bound :data:`GRAD_TOL`. False where the start is not the default
    model's optimum at these weights (e.g. a variance-ratio prior, ``model.shrinkage``)."""
    grad = face_gradient(bucket, theta, ev, sinv, s0inv)
    proj = np.where((theta <= 0) & (grad > 0), 0.0, grad)
    proj[:, u] = 0.0
    return np.asarray(np.linalg.norm(proj, axis=1) < GRAD_TOL)


def grid_start(
    bucket: Bucket, theta: FloatArray, dev: FloatArray, u: int
) -> tuple[FloatArray, BoolArray]:
    """The refit's start of :math:`\\theta_U` and whether it is 0 with a margin.

    The best point of :data:`pepmix.model.optimize.GRID_VALUES` ``[1]`` with the other
    components at ``theta``, chosen as :func:`pepmix.model.optimize.partial_start` chooses
    (``dev`` is the criterion at :math:`\\theta_U = 0`, the first point; a later point must be
    lower), and whether every other point lies above ``dev`` by :data:`GRID_MARGIN`.
    """
    from pepmix.model.optimize import GRID_VALUES

    best = np.where(np.isfinite(dev), dev, np.inf)
    value_u = np.zeros(dev.size)
    above = np.isfinite(dev)
    margin = GRID_MARGIN * (1.0 + np.abs(dev))
    for value in GRID_VALUES[1]:
        if value == 0.0:
            continue
        trial = theta.copy()
        trial[:, u] = np.where(bucket.free[:, u], value, 0.0)
        new = evaluate(bucket, trial).dev
        better = new < best
        best = np.where(better, new, best)
        value_u = np.where(better, value, value_u)
        above &= new > dev + margin
    return value_u, np.asarray(above)


def boundary_screen(
    enc: Encoded,
    status: Sequence[str],
    weights: FloatArray | None,
    theta0: FloatArray,
    design: RunDesign,
    robust: str = "none",
) -> tuple[BoolArray, FloatArray]:
    """Per protein of ``enc``: whether its usage refit ends at :math:`\\theta_U = 0` at its
    start (module docstring, "The screen"), so that it need not be refitted, and the refit's
    grid start of :math:`\\theta_U` (:func:`grid_start`); :func:`screen_at_weights` with the
    refit's robust iteration (``robust``), whose ``null_crit`` is dropped."""
    out = screen_at_weights(enc, status, weights, theta0, design, robust)
    return out.screened, out.start_u


@dataclass(frozen=True)
class ScreenResult:
    """What :func:`screen_at_weights` finds per protein.

    Attributes
    ----------
    screened : ndarray of bool, shape (P,)
        The refit provably ends at its start with :math:`\\theta_U = 0`.
    start_u : ndarray, shape (P,)
        The refit's grid start of :math:`\\theta_U` (NaN: not evaluated).
    null_crit : ndarray, shape (P,)
        The REML criterion (with :math:`-\\sum_i \\log w_i`, as
        :attr:`pepmix.model.fit.ModelFit.reml_crit`) of the model without the usage term at
        the start, where the start is a local minimum of that model (items 2 and 3 of the
        module docstring without the usage term's slope: the default fit's optimum at these
        weights); NaN elsewhere (not evaluated, or not such a minimum).
    """

    screened: BoolArray
    start_u: FloatArray
    null_crit: FloatArray


def screen_at_weights(
    enc: Encoded,
    status: Sequence[str],
    weights: FloatArray | None,
    theta0: FloatArray,
    design: RunDesign,
    robust: str = "none",
) -> ScreenResult:
    """Per protein of ``enc``: whether its usage refit ends at :math:`\\theta_U = 0` at its
    start (module docstring, "The screen"), so that it need not be refitted, and the refit's
    grid start of :math:`\\theta_U` (:func:`grid_start`) and, where the start is a minimum of
    the model without the term, its criterion there (the LRT's null criterion at these
    weights, :func:`pepmix.model.usage.fixed_weight_lrt`).

    Parameters
    ----------
    enc : Encoded
        The observations of the proteins to screen (codes ``0..P-1``).
    status : sequence of str
        The default fit's status per protein.
    weights : ndarray, optional
        The default fit's final observation weights (rows of ``enc``); None for ``robust:
        none``.
    theta0 : ndarray, shape (P, F)
        The refit's start (columns ``design.spec.random``; the usage column is ignored).
    design : RunDesign
        The design with the usage term.
    robust : str, default "none"
        ``model.robust`` of the refit; ``bisquare`` screens nothing; ``"fixed"``: the refit
        holds ``weights`` as known weights (``peptide_usage_weights: default_fit``), so item
        5 (the Huber weights of the start's residuals) is not checked.

    Returns
    -------
    ScreenResult
        ``start_u`` is the best point of the refit's grid for :math:`\\theta_U` with the
        other components at ``theta0`` (what :func:`pepmix.model.optimize.partial_start` would
        choose), for the refitted proteins to start from.
    """
    n_prot = len(enc.proteins)
    out = np.zeros(n_prot, dtype=bool)
    start_u = np.full(n_prot, np.nan)
    null_crit = np.full(n_prot, np.nan)
    empty = ScreenResult(out, start_u, null_crit)
    if robust not in ("none", "huber", "fixed") or (robust != "none" and weights is None):
        return empty
    whole = np.isin(np.asarray(status, dtype=object), ("ok", "boundary"))
    if not whole.any():
        return empty
    w = weights if robust != "none" else None
    problem = build_problem(enc.prot, enc.feat, enc.run, enc.y, design, n_prot, weights=w)
    if problem.factors != tuple(design.spec.random):
        return empty
    u = problem.factors.index(USAGE_FACTOR)
    start = np.nan_to_num(np.asarray(theta0, dtype=np.float64))
    start[:, u] = 0.0
    whole &= np.isfinite(np.delete(theta0, u, axis=1)).all(axis=1)
    whole &= problem.fittable & problem.active.all(axis=1)
    whole &= start.max(axis=1, initial=0.0) <= DIVERGENT_THETA
    fit = _allocate(problem, design, list(enc.proteins), [], np.zeros(n_prot, dtype=np.intp))
    coded = []
    for k, (bidx, bucket) in enumerate(problem.buckets):
        rows = np.flatnonzero(whole[bidx] & bucket.free[:, u])
        if rows.size == 0:
            continue
        sub = bucket.take_shared(rows)
        th = np.where(sub.free, start[bidx[rows]], 0.0)
        ev = evaluate(sub, th)
        linv = np.asarray(np.linalg.inv(ev.chol), dtype=np.float64)
        keep, null_min = _at_minimum(sub, th, ev, linv, u)
        null_crit[bidx[rows]] = np.where(null_min, ev.reml_crit + problem.neg_logw[bidx[rows]],
                                         np.nan)  # fmt: skip
        pick = np.flatnonzero(ev.ok)
        # only evaluated: the grid reads the bucket's W through w_rows (no copy; same numbers)
        value_u, above = grid_start(sub.take_shared(pick), th[pick], ev.dev[pick], u)
        start_u[bidx[rows[pick]]] = value_u
        keep[pick] &= above
        out[bidx[rows]] = keep
        if robust == "huber" and keep.any():
            sel = np.flatnonzero(keep)
            coded.append(
                _predictions(
                    problem, k, (bidx, bucket), rows[sel], th[sel], ev.take(sel), linv[sel], fit
                )
            )
    if robust == "huber" and w is not None and out.any():
        out &= _settled(enc, design, problem.factors, fit, np.concatenate(coded), w, out)
    return ScreenResult(out, start_u, null_crit)


def _at_minimum(
    bucket: Bucket, theta: FloatArray, ev: Evaluation, linv: FloatArray, u: int
) -> tuple[BoolArray, BoolArray]:
    """Whether ``theta`` (usage term at 0) is a stationary point of the other components
    (:func:`_stationary`) at which every free component at 0 curves upwards
    (:func:`lambda_slope` > 0), the usage term included (first array), and the same without
    the usage term's slope: a local minimum of the model without the term (second array);
    ``linv`` is the inverse of ``ev.chol``."""
    sinv, s0inv = inverses(linv)
    with np.errstate(invalid="ignore"):
        null_min = ev.ok & _stationary(bucket, theta, ev, sinv, s0inv, u)
        keep = null_min.copy()
        for f in range(theta.shape[1]):
            zero = bucket.free[:, f] & (theta[:, f] == 0.0)
            if zero.any():
                rises = ~zero | (lambda_slope(bucket, theta, ev, f, linv) > 0.0)
                keep &= rises
                if f != u:
                    null_min &= rises
    return np.asarray(keep), np.asarray(null_min)


def _predictions(
    problem: Problem,
    k: int,
    block: tuple[IntArray, Bucket],
    rows: IntArray,
    theta: FloatArray,
    ev: Evaluation,
    linv: FloatArray,
    fit: ModelFit,
) -> FloatArray:
    """Point estimates of the rows ``rows`` of bucket ``k`` (``block``: its protein codes and
    bucket) at ``theta`` (fixed effects into ``fit``) and the bucket's coded predictions
    ``protein_code, factor_code, level_code, blup`` (as :func:`pepmix.model.fit.
    fit_problem_light` makes them at its optimum; other rows' are zero). ``ev`` is the
    evaluation at ``theta`` of the rows, ``linv`` the inverse of its Cholesky factor."""
    idx, bucket = block
    sub = bucket.take_shared(rows)
    d = sub.dim
    _, s0inv = inverses(linv)
    with np.errstate(invalid="ignore", divide="ignore"):
        _, sigma, beta, u_k = point_estimates(sub, ev, s0inv)
    _store_point(problem, idx[rows], theta, ev, sigma, beta, fit)
    u_all = np.zeros((bucket.size, d))
    u_all[rows] = u_k
    beta_all = np.zeros((bucket.size, beta.shape[1]))
    beta_all[rows] = beta
    theta_all = np.zeros((bucket.size, theta.shape[1]))
    theta_all[rows] = theta
    resid = _level_residuals(problem, k, bucket, u_all, beta_all)
    cols = _prediction_columns(problem, k, idx, bucket, theta_all, u_all, resid)
    return np.column_stack([c.astype(np.float64) for c in cols])


def _settled(
    enc: Encoded,
    design: RunDesign,
    factors: tuple[str, ...],
    fit: ModelFit,
    coded: FloatArray,
    weights: FloatArray,
    candidates: BoolArray | None = None,
) -> BoolArray:
    """Whether the Huber weights of each protein's residuals at the screened point are
    within :data:`pepmix.model.robust.WEIGHT_TOL` minus :data:`WEIGHT_MARGIN` of ``weights``
    (the robust iteration's stopping rule, :mod:`pepmix.model.robust`). ``candidates`` (per
    protein, default None: all) limits the predictions, residuals, MAD
    and weights to those proteins' rows (each row's fitted value and each protein's MAD are
    computed from its own numbers: the same values); the others are False."""
    from pepmix.model.robust import (
        WEIGHT_TOL,
        _protein_max,
        fitted_values,
        huber_scale_weights,
    )

    n_prot = len(enc.proteins)
    groups = None
    if candidates is not None:
        rows = candidates[enc.prot]
        enc = Encoded(
            proteins=enc.proteins, features=enc.features, prot=enc.prot[rows],
            feat=enc.feat[rows], run=enc.run[rows], y=enc.y[rows], runs=enc.runs,
        )  # fmt: skip
        weights = weights[rows]
        coded = coded[candidates[coded[:, 0].astype(np.intp)]]
        groups = np.flatnonzero(candidates)
    with np.errstate(invalid="ignore"):
        resid = enc.y - fitted_values(enc, design, factors, fit, coded)
        scale, new = huber_scale_weights(resid, enc.prot, n_prot, groups)
        target = np.where(np.isfinite(scale)[enc.prot], new, 1.0)
        delta = _protein_max(np.abs(target - weights), enc.prot, n_prot)
    settled = np.isfinite(delta) & (delta <= WEIGHT_TOL - WEIGHT_MARGIN)
    return np.asarray(settled if candidates is None else settled & candidates)
