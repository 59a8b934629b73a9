"""Minimise the profiled REML criterion over ``theta >= 0`` for a whole bucket at once.

1. Start: the best point of a small grid of ``theta`` values (REML can be multimodal for small
   proteins; lme4's single start at ``theta = 1`` sometimes ends on the worse optimum).
2. Projected Newton with the exact gradient and Hessian of :mod:`pepmix.model.reml`. The Hessian
   is shifted to be positive definite where needed (``H + mu I``); at a saddle on the boundary
   (zero gradient, negative curvature at ``theta_k = 0``) the step follows the negative-curvature
   direction into the interior. Steps are projected onto ``theta >= 0`` and accepted by
   backtracking (Armijo) on the criterion.
3. Converged proteins leave the active set; the arrays are compacted when most have converged.

Convergence: the criterion changes by less than ``1e-11 (1 + |d|)`` and the projected gradient
norm is below ``1e-6``, or no backtracking step decreases the criterion.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pepmix.model.reml import Bucket, Evaluation, derivatives, evaluate

FloatArray = NDArray[np.float64]

GRID_VALUES = {1: (0.0, 0.1, 0.4, 1.5, 5.0), 2: (0.0, 0.2, 1.0, 4.0)}
GRID_VALUES_MANY = (0.0, 0.2, 1.0, 3.0)
MAX_ITER = 100
#: relative standard deviations beyond this mean the criterion has no finite optimum (a variance
#: ratio grows without bound, e.g. the residual variance goes to zero); iterations stop there.
#: Peptide data never have a random-effect SD 100 times the residual SD (that would be a residual
#: SD of 0.01 log2 units next to feature effects of SD 1).
DIVERGENT_THETA = 100.0


@dataclass
class OptimResult:
    """Optimum per protein.

    Attributes
    ----------
    theta : ndarray, shape (B, F)
    dev : ndarray, shape (B,)
    converged : ndarray of bool, shape (B,)
    iterations : ndarray of int, shape (B,)
    """

    theta: FloatArray
    dev: FloatArray
    converged: NDArray[np.bool_]
    iterations: NDArray[np.intp]
    #: the criterion evaluated at ``theta`` (rows where ``has_ev``; None: no row), kept from
    #: the optimiser's own evaluations so that callers need not evaluate the optimum again
    ev: Evaluation | None = None
    has_ev: NDArray[np.bool_] | None = None


def _grid(bucket: Bucket) -> FloatArray:
    n_free = bucket.free.sum(axis=1)
    k = int(n_free.max()) if n_free.size else 0
    values = GRID_VALUES.get(k, GRID_VALUES_MANY)
    if k == 0:
        return np.zeros((1, 0))
    return np.array(list(itertools.product(values, repeat=k)), dtype=np.float64)


def start_values(bucket: Bucket) -> tuple[FloatArray, FloatArray]:
    """Best grid point per protein (free factors only; others 0) and its criterion."""
    nb, nf = bucket.free.shape
    grid = _grid(bucket)
    best = np.full(nb, np.inf)
    theta0 = np.zeros((nb, nf))
    # position of each free factor among the protein's free factors
    rank = np.cumsum(bucket.free, axis=1) - 1
    for point in grid:
        theta = np.zeros((nb, nf))
        if point.size:
            vals = point[np.clip(rank, 0, point.size - 1)]
            theta = np.where(bucket.free, vals, 0.0)
        dev = evaluate(bucket, theta).dev
        better = dev < best
        best = np.where(better, dev, best)
        theta0[better] = theta[better]
    return theta0, best


def partial_start(bucket: Bucket, theta0: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Start values from a partial start: NaN entries of ``theta0`` (free factors) are chosen
    by a grid search with the given entries held.

    A protein whose free entries are all NaN gets :func:`start_values` (the full grid); one
    with some NaN entries the best of ``GRID_VALUES[1]`` for them (one value for all its NaN
    entries). E.g. a model with one term added, started at the smaller model's optimum.
    Returns the start and its criterion.
    """
    missing = np.isnan(theta0) & bucket.free
    theta = np.where(bucket.free, np.nan_to_num(theta0), 0.0)
    dev = evaluate(bucket, theta).dev
    every = np.flatnonzero((missing == bucket.free).all(axis=1) & missing.any(axis=1))
    if every.size:
        theta[every], dev[every] = start_values(bucket.take_shared(every))
    some = np.flatnonzero(missing.any(axis=1) & ~(missing == bucket.free).all(axis=1))
    if some.size:
        sub = bucket.take_shared(some)
        hold, best = theta[some], np.full(some.size, np.inf)
        gap = missing[some]
        for value in GRID_VALUES[1]:
            trial = np.where(gap, value, hold)
            new = evaluate(sub, trial).dev
            better = new < best
            best = np.where(better, new, best)
            theta[some[better]] = trial[better]
        dev[some] = best
    return theta, dev


def minimize(
    bucket: Bucket, theta0: FloatArray | None = None, max_iter: int = MAX_ITER
) -> OptimResult:
    """Minimise the criterion for every protein of the bucket.

    Parameters
    ----------
    bucket : Bucket
        Sufficient statistics.
    theta0 : ndarray, shape (B, F), optional
        Start values (default :func:`start_values`); NaN entries are filled by
        :func:`partial_start`.
    max_iter : int, default :data:`MAX_ITER`
        Newton iterations at most; a protein not converged by then has ``converged`` False
        and ``iterations == max_iter`` (a truncated fit, e.g. an intermediate robust refit:
        :mod:`pepmix.model.robust`, "Truncated intermediate refits").
    """
    nb = bucket.size
    start_ev = None
    if theta0 is None:
        theta, dev = start_values(bucket)
    elif np.isnan(theta0).any():
        theta, dev = partial_start(bucket, theta0)
    else:
        theta = np.where(bucket.free, theta0, 0.0)
        start_ev = evaluate(bucket, theta)
        dev = start_ev.dev.copy()  # start_ev becomes the final evaluation (rows overwritten)
    converged = bucket.free.sum(axis=1) == 0
    iterations = np.zeros(nb, dtype=np.intp)
    active = np.flatnonzero(~converged & np.isfinite(dev))
    # every protein active (the usual start): no copy of the bucket's arrays (read only here);
    # sub-buckets share the rank-one classes (Bucket.take_shared)
    sub = bucket if active.size == nb else bucket.take_shared(active)
    # the criterion at theta[active], when an earlier evaluation has it (the start, the line
    # search's accepted step): the criterion is evaluated row by row, so reusing it is exact
    known = None if start_ev is None else start_ev.take(active)
    # the evaluation at each protein's current theta, where one was made
    final = start_ev
    has_ev = np.full(nb, start_ev is not None)
    for _ in range(max_iter):
        if active.size == 0:
            break
        th = theta[active]
        ev = known if known is not None else evaluate(sub, th)
        der = derivatives(sub, th, ev)
        grad, hess = der.profiled(sub.nu)
        step, saddle = _newton_step(th, grad, hess, sub.free)
        iterations[active] += 1
        # Newton decrement: predicted decrease of the criterion
        decrement = -np.sum(grad * step, axis=1)
        proj_grad = np.where((th <= 0) & (grad > 0), 0.0, grad) * sub.free
        done = (
            (decrement < 1e-12 * (1.0 + np.abs(ev.dev)))
            & (np.linalg.norm(proj_grad, axis=1) < 1e-6)
            & ~saddle
        ) | (th.max(axis=1) > DIVERGENT_THETA)
        move = np.flatnonzero(~done)
        accepted = None
        if move.size:
            part = sub.take_shared(move) if move.size < sub.size else sub
            new_th, new_dev, improved, accepted = _line_search(
                part, th[move], ev.dev[move], grad[move], step[move]
            )
            theta[active[move]] = new_th
            dev[active[move]] = np.where(improved, new_dev, ev.dev[move])
            small = ev.dev[move] - new_dev < 1e-11 * (1.0 + np.abs(ev.dev[move]))
            small &= (np.linalg.norm(proj_grad[move], axis=1) < 1e-6) & ~saddle[move]
            done[move] = ~improved | small
        converged[active[done]] = True
        final = _record_final(final, nb, active, done, move, th, theta, ev, accepted)
        has_ev[active[done]] = True
        keep = np.flatnonzero(~done)
        # a kept protein moved (not done: improved), so its evaluation is the line search's
        known = None
        if keep.size and move.size and accepted is not None:
            position = np.full(done.size, -1, dtype=np.intp)
            position[move] = np.arange(move.size)
            known = accepted.take(position[keep])
        active = active[keep]
        if keep.size and keep.size < sub.size:
            sub = sub.take_shared(keep)
    if active.size and known is not None:
        # stopped at max_iter: the line search's evaluation at the accepted step
        final = _put_rows(final, nb, active, known, np.arange(active.size))
        has_ev[active] = True
    if final is None:
        has_ev[:] = False
    return OptimResult(theta, dev, converged, iterations, final, has_ev)


def _record_final(
    final: Evaluation | None,
    nb: int,
    active: NDArray[np.intp],
    done: NDArray[np.bool_],
    move: NDArray[np.intp],
    th: FloatArray,
    theta: FloatArray,
    ev: Evaluation,
    accepted: Evaluation | None,
) -> Evaluation | None:
    """``final`` with the evaluations at the final theta of the proteins ``active[done]``:
    the line search's at the accepted step for those it moved, else this iteration's (a
    protein whose theta did not change has the same evaluation either way)."""
    rows = np.flatnonzero(done)
    if rows.size == 0:
        return final
    moved = np.zeros(done.size, dtype=bool)
    position = np.full(done.size, -1, dtype=np.intp)
    if accepted is not None and move.size:
        position[move] = np.arange(move.size)
        moved[move] = np.any(theta[active[move]] != th[move], axis=1)
    stay = rows[~moved[rows]]
    go = rows[moved[rows]]
    if stay.size:
        final = _put_rows(final, nb, active[stay], ev, stay)
    if go.size and accepted is not None:
        final = _put_rows(final, nb, active[go], accepted, position[go])
    return final


def _newton_step(
    theta: FloatArray, grad: FloatArray, hess: FloatArray, free: NDArray[np.bool_]
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Saddle-free Newton step, plus a move along negative curvature where there is some.

    Returns the step and whether the Hessian (over free parameters) has a negative eigenvalue,
    i.e. the point is not a minimum even if the gradient vanishes (typically ``theta_k = 0``
    where the criterion decreases as ``theta_k`` grows: the gradient in ``theta`` is 0 there by
    symmetry).
    """
    nf = theta.shape[1]
    f = free.astype(np.float64)
    h = hess * f[:, :, None] * f[:, None, :] + np.eye(nf)[None] * (1.0 - f)[:, :, None]
    g = grad * f
    evals, evecs = np.linalg.eigh(h)
    scale = np.maximum(np.abs(evals).max(axis=1), 1e-12)
    floor = 1e-8 * scale
    shifted = np.maximum(np.abs(evals), floor[:, None])
    coef = -(np.einsum("bij,bi->bj", evecs, g)) / shifted
    step = np.einsum("bij,bj->bi", evecs, coef)
    negative = evals[:, 0] < -floor
    if negative.any():
        v = evecs[negative, :, 0] * f[negative]
        gv = np.sum(g[negative] * v, axis=1)
        towards = np.where(v.sum(axis=1) >= 0, 1.0, -1.0)
        sign = np.where(np.abs(gv) > 1e-12, -np.sign(gv), towards)
        v = v * sign[:, None]
        at_zero = theta[negative] <= 0
        v = np.where(at_zero, np.abs(v), v)
        size = np.maximum(0.1, 0.5 * np.linalg.norm(theta[negative], axis=1))
        step[negative] += size[:, None] * v
    return np.asarray(step * f, dtype=np.float64), negative


def _line_search(
    bucket: Bucket, theta: FloatArray, dev: FloatArray, grad: FloatArray, step: FloatArray
) -> tuple[FloatArray, FloatArray, NDArray[np.bool_], Evaluation | None]:
    r"""Backtracking (Armijo) along the projected step; evaluates pending proteins only.

    Step lengths :math:`1, 1/2, 1/4, \ldots` (30 at most); each protein takes the first that
    passes. The first :data:`_SINGLE_TRIES` lengths are tried one at a time; proteins still
    pending then try the next :data:`_TRIES_PER_CALL` lengths in one evaluation (their rows
    repeated once per length) and take the first that passes: the same length and criterion
    as one at a time (the criterion is evaluated row by row), in fewer, larger calls (a
    protein at its optimum, where no length decreases the criterion numerically, otherwise
    costs 30 calls of one row each). Also returns the evaluation at each protein's accepted
    point (rows of proteins without one are undefined; None if no protein has one).
    """
    best_th = theta.copy()
    best_dev = dev.copy()
    accepted: Evaluation | None = None
    pending = np.arange(theta.shape[0])
    sub = bucket
    tried = 0
    while tried < _LINE_SEARCH_TRIES and pending.size:
        n_len = 1 if tried < _SINGLE_TRIES else min(_TRIES_PER_CALL, _LINE_SEARCH_TRIES - tried)
        alphas = 0.5 ** np.arange(tried, tried + n_len, dtype=np.float64)
        n_p = pending.size
        # rows: length-major (all pending proteins at alphas[0], then at alphas[1], ...)
        th0 = np.tile(theta[pending], (n_len, 1))
        st = np.tile(step[pending], (n_len, 1))
        cand = np.maximum(th0 + np.repeat(alphas, n_p)[:, None] * st, 0.0)
        rows = sub if n_len == 1 else sub.take_shared(np.tile(np.arange(n_p), n_len))
        evaluation = evaluate(rows, cand)
        new = evaluation.dev
        slope = np.sum(np.tile(grad[pending], (n_len, 1)) * (cand - th0), axis=1)
        d0 = np.tile(dev[pending], n_len)
        ok = np.isfinite(new) & (new <= d0 + 1e-4 * np.minimum(slope, 0.0))
        ok &= new <= d0
        ok_m = ok.reshape(n_len, n_p)
        passed = ok_m.any(axis=0)
        first = np.argmax(ok_m, axis=0)
        pick = first[passed] * n_p + np.flatnonzero(passed)
        best_th[pending[passed]] = cand[pick]
        best_dev[pending[passed]] = new[pick]
        if pick.size:
            accepted = _put_rows(accepted, theta.shape[0], pending[passed], evaluation, pick)
        keep = np.flatnonzero(~passed)
        tried += n_len
        if keep.size == 0:
            break
        pending = pending[keep]
        sub = sub.take_shared(keep)
    improved = best_dev < dev
    return best_th, best_dev, improved, accepted


def _put_rows(
    into: Evaluation | None,
    n: int,
    rows: NDArray[np.intp],
    source: Evaluation,
    pick: NDArray[np.intp],
) -> Evaluation:
    """``into`` (allocated for ``n`` proteins when None) with ``source``'s rows ``pick`` at
    ``rows``."""
    names = ("dev", "logdet_s", "logdet_s0", "g_e", "pwrss", "chol", "lam", "ghat", "ok")
    if into is None:
        arrays = {k: np.zeros((n, *getattr(source, k).shape[1:]), getattr(source, k).dtype)
                  for k in names}  # fmt: skip
        penalty = None if source.penalty is None else np.zeros(n)
        into = Evaluation(**arrays, penalty=penalty)
    for k in names:
        getattr(into, k)[rows] = getattr(source, k)[pick]
    if into.penalty is not None and source.penalty is not None:
        into.penalty[rows] = source.penalty[pick]
    return into


#: step lengths the line search tries at most (1, 1/2, ..., 2^-29)
_LINE_SEARCH_TRIES = 30
#: step lengths tried one evaluation at a time before batching (most proteins take 1 or 1/2)
_SINGLE_TRIES = 2
#: step lengths per evaluation after that
_TRIES_PER_CALL = 7
