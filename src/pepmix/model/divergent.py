r"""Proteins whose REML criterion has no finite optimum: refit a reduced model.

When the random effects can fit every observation (e.g. 10-11 observations of 2-4 features,
most samples seen once), the REML criterion keeps decreasing as the residual variance goes to
zero: every ratio :math:`\theta_k = \sigma_k/\sigma` grows without bound
(:data:`pepmix.model.optimize.DIVERGENT_THETA`). lme4 stops somewhere along that ray and
reports a fit whose residual variance is an artefact of its stopping rule; lmerTest's df there
are arbitrary. Such a model cannot separate one random factor's variance from the residual
variance, exactly like a factor with one observation per level (:mod:`pepmix.model.checks`).

Rule: for each such protein, refit the model with one free random factor dropped at a time (the
variance fixed at 0; its level-to-level variation goes into the residual) and keep the reduced
model with the best REML criterion among those with a finite optimum (REML criteria of models
with the same fixed effects are comparable). The protein gets status ``reduced_model`` and the
detail names the dropped factor. If no single drop gives a finite optimum, the protein stays
``not_estimable``. With a variance-ratio prior (:mod:`pepmix.model.shrinkage`) the penalised
criterion is used, and this rule only applies when the prior did not already keep the
optimum finite; the reduced models are compared by their REML criterion without the penalty.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from pepmix.model.optimize import DIVERGENT_THETA, OptimResult, minimize
from pepmix.model.reml import Bucket, evaluate

FloatArray = NDArray[np.float64]


def diverged(opt: OptimResult) -> NDArray[np.bool_]:
    """Proteins whose optimisation stopped on a ratio above :data:`DIVERGENT_THETA`."""
    top = np.max(opt.theta, axis=1, initial=0.0)
    return np.asarray(top > DIVERGENT_THETA)


def _without(bucket: Bucket, rows: NDArray[np.intp], f: int) -> Bucket:
    """``bucket`` with factor ``f`` fixed at zero for the proteins at ``rows``."""
    free = bucket.free.copy()
    free[rows, f] = False
    prior_df = None
    if bucket.prior_df is not None:
        prior_df = bucket.prior_df.copy()
        prior_df[rows, f] = 0.0
    return replace(bucket, free=free, prior_df=prior_df)


def reduce_divergent(
    bucket: Bucket, opt: OptimResult
) -> tuple[Bucket, OptimResult, list[tuple[int, int]]]:
    """Refit proteins without a finite optimum with one factor dropped (module docstring).

    Returns the bucket with the dropped factors no longer free, the updated optimum (same
    object, modified) and the ``(position in bucket, factor)`` pairs dropped.
    """
    rows = np.flatnonzero(diverged(opt))
    if rows.size == 0:
        return bucket, opt, []
    sub = bucket.take_shared(rows)  # evaluated and minimised only: W and classes shared
    nf = sub.free.shape[1]
    best_crit = np.full(rows.size, np.inf)
    best_f = np.full(rows.size, -1)
    best_theta = np.zeros((rows.size, nf))
    best_dev = np.full(rows.size, np.inf)
    for f in range(nf):
        cand = sub.free[:, f] & (sub.free.sum(axis=1) > 1)
        if not cand.any():
            continue
        trial = _without(sub, np.flatnonzero(cand), f)
        res = minimize(trial)
        crit = evaluate(trial, res.theta).reml_crit
        good = cand & res.converged & np.isfinite(crit) & ~diverged(res)
        better = good & (crit < best_crit)
        best_crit = np.where(better, crit, best_crit)
        best_f = np.where(better, f, best_f)
        best_dev = np.where(better, res.dev, best_dev)
        best_theta[better] = res.theta[better]
    dropped: list[tuple[int, int]] = []
    for i in np.flatnonzero(best_f >= 0):
        dropped.append((int(rows[i]), int(best_f[i])))
    for pos, f in dropped:
        bucket = _without(bucket, np.array([pos]), f)
    done = rows[best_f >= 0]
    opt.theta[done] = best_theta[best_f >= 0]
    opt.dev[done] = best_dev[best_f >= 0]
    opt.converged[done] = True
    return bucket, opt, dropped
