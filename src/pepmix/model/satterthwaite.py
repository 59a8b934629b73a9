r"""Estimates at the optimum and Satterthwaite degrees of freedom, as lmerTest computes them.

With :math:`\psi = (\theta_1, \dots, \theta_F, \sigma)` lmerTest differentiates the REML deviance
*not* profiled over :math:`\sigma`,

.. math:: D(\theta, \sigma) = \log|L_\theta|^2 + \log|R_X|^2 + r^2(\theta)/\sigma^2
          + \nu \log(2\pi\sigma^2),

takes :math:`A = 2 H^{+}` (pseudo-inverse over eigenvalues above ``1e-8``) of its Hessian
:math:`H` at the optimum as the covariance of :math:`\hat\psi`, and for a contrast :math:`L` with
:math:`v(\psi) = L'\,\mathrm{Cov}(\hat\beta)\,L = \sigma^2 L' (X'H^{-1}X)^{-1} L` reports

.. math:: \mathrm{df} = \frac{2\,v^2}{\nabla v'\,A\,\nabla v}.

Here every derivative is exact: :math:`\partial \log|L_\theta|^2 + \log|R_X|^2 = \partial(g_E +
\log|S_0|)`, :math:`\partial \log r^2 = \partial(\log|S| - \log|S_0|)` (see
:mod:`pepmix.model.reml`), :math:`\partial v / \partial\theta_f = -\sigma^2 \ell' (\partial S_0 /
\partial\theta_f) \ell` with :math:`\ell = S_0^{-1} \tilde L`, and
:math:`\partial v/\partial\sigma =
2v/\sigma`.

Boundary rule: a variance estimated at exactly zero adds a zero column to the Jacobian and a
decoupled row to :math:`H`, so its df and p-value equal those of the model without that term
(this is also lmerTest's value at an exact zero). Estimates within ``1e-7`` deviance units of the
boundary are moved onto it first, because df near the boundary are unstable.

With a variance-ratio prior (:mod:`pepmix.model.shrinkage`) the same formulas are evaluated at the
penalised estimate :math:`\tilde\theta` (posterior mode), with :math:`\sigma^2 = r^2(\tilde
\theta)/\nu` (exact: the prior is on ratios, so :math:`\sigma` is still profiled) and the
penalty's curvature added to :math:`H`: :math:`A = 2(H_D + \mathrm{diag}(\mathrm{pen}''))^{+}`,
the Laplace approximation to the posterior covariance of :math:`(\theta, \sigma)`. The prior
thus counts as information about the variance ratio, which raises the df of proteins whose
sample variance is poorly determined by their own data (as limma's prior df do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pepmix.model.reml import Bucket, Derivatives, Evaluation

FloatArray = NDArray[np.float64]
EIGEN_TOL = 1e-8


@dataclass
class Estimates:
    """Per-protein estimates at the optimum (one bucket).

    Attributes
    ----------
    sigma : ndarray, shape (B,)
    beta : ndarray, shape (B, p)
        Fixed effects (centred ``y``; dummy columns hold 0).
    cov_beta : ndarray, shape (B, p, p)
    u_k : ndarray, shape (B, d)
        BLUPs of the kept random-effect dimensions in data units (0 elsewhere).
    vcov_varpar : ndarray, shape (B, F + 1, F + 1)
        :math:`A = 2H^+` over :math:`(\\theta, \\sigma)`.
    ell_basis : ndarray, shape (B, d, p)
        :math:`S_0^{-1}` restricted to fixed-effect columns (for contrasts).
    hess_min_eig : ndarray, shape (B,)
        Smallest eigenvalue of :math:`H` over free parameters (negative: not a minimum).
    """

    sigma: FloatArray
    beta: FloatArray
    cov_beta: FloatArray
    u_k: FloatArray
    vcov_varpar: FloatArray
    ell_basis: FloatArray
    hess_min_eig: FloatArray


def point_estimates(
    bucket: Bucket, ev: Evaluation, s0inv: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Residual variance and SD, fixed effects and BLUPs (kept dimensions) at an evaluation.

    ``s0inv`` is :math:`S_0^{-1}` (:attr:`pepmix.model.reml.Derivatives.s0inv`). Returns
    ``sigma2, sigma, beta, u_k`` as in :class:`Estimates`; :func:`estimates` computes them
    here, so a caller that needs only these gets the same numbers without the derivatives.
    """
    d = bucket.dim
    xs = slice(d - 1 - bucket.n_x, d - 1)
    sigma2 = ev.pwrss / bucket.nu
    sigma = np.sqrt(sigma2)
    # solution of S0 xi = s_{0y}
    s = ev.lam[:, :, None] * ev.ghat * ev.lam[:, None, :]
    rhs = s[:, :, -1].copy()
    rhs[:, -1] = 0.0
    xi = np.einsum("bij,bj->bi", s0inv, rhs)
    beta = xi[:, xs]
    u_k = np.where(bucket.dimfactor >= 0, ev.lam * xi, 0.0)
    return sigma2, sigma, beta, u_k


def estimates(bucket: Bucket, theta: FloatArray, ev: Evaluation, der: Derivatives) -> Estimates:
    """Fixed effects, BLUPs, their covariance and lmerTest's covariance of ``(theta, sigma)``."""
    nb, nf = theta.shape
    d = bucket.dim
    xs = slice(d - 1 - bucket.n_x, d - 1)
    nu = bucket.nu
    pw = ev.pwrss
    s0inv = der.s0inv
    sigma2, sigma, beta, u_k = point_estimates(bucket, ev, s0inv)
    cov_beta = sigma2[:, None, None] * s0inv[:, xs, xs]
    # Hessian of D(theta, sigma)
    ld2 = der.g2 + der.l02
    lp1 = der.l1 - der.l01
    lp2 = der.l2 - der.l02
    pw1 = pw[:, None] * lp1
    pw2 = pw[:, None, None] * (lp1[:, :, None] * lp1[:, None, :] + lp2)
    h = np.zeros((nb, nf + 1, nf + 1))
    h[:, :nf, :nf] = ld2 + pw2 / sigma2[:, None, None]
    h[:, :nf, nf] = h[:, nf, :nf] = -2.0 * pw1 / (sigma2 * sigma)[:, None]
    h[:, nf, nf] = 6.0 * pw / sigma2**2 - 2.0 * nu / sigma2
    if der.pen2 is not None:  # variance-ratio prior: posterior curvature (module docstring)
        h[:, :nf, :nf] += der.pen2[:, :, None] * np.eye(nf)[None]
    free = np.concatenate([bucket.free, np.ones((nb, 1), dtype=bool)], axis=1)
    h = h * (free[:, :, None] & free[:, None, :])
    evals, evecs = np.linalg.eigh(h)
    pos = evals > EIGEN_TOL
    inv_vals = np.where(pos, 1.0 / np.where(pos, evals, 1.0), 0.0)
    vcov = 2.0 * np.einsum("bik,bk,bjk->bij", evecs, inv_vals, evecs)
    hess_min_eig = _free_eigs(h, free).min(axis=1)
    return Estimates(
        sigma=sigma,
        beta=beta,
        cov_beta=cov_beta,
        u_k=u_k,
        vcov_varpar=vcov,
        ell_basis=s0inv[:, :, xs],
        hess_min_eig=hess_min_eig,
    )


def _free_eigs(h: FloatArray, free: NDArray[np.bool_]) -> FloatArray:
    """Eigenvalues of ``h`` restricted to free parameters (others reported as +inf)."""
    k = h.shape[1]
    fill = np.where(free, 0.0, 1e300)
    hh = h + fill[:, :, None] * np.eye(k)[None]
    vals = np.linalg.eigvalsh(hh)
    return np.where(vals > 1e299, np.inf, vals)


def cov_derivatives(bucket: Bucket, est: Estimates, der: Derivatives) -> FloatArray:
    r"""Derivatives of :math:`\mathrm{Cov}(\hat\beta)` in :math:`\psi = (\theta, \sigma)`.

    :math:`\partial V/\partial\theta_f = -\sigma^2 E' (\partial S_0/\partial\theta_f) E`
    with :math:`E` = ``est.ell_basis`` (0 where :math:`\theta_f` is not free) and
    :math:`\partial V/\partial\sigma = 2V/\sigma`, so that for any contrast :math:`L` the
    gradient of :func:`contrast_tests` is :math:`\nabla v_i = L' (\partial V/\partial\psi_i) L`.

    Returns
    -------
    ndarray, shape (B, F + 1, p, p)
    """
    nb, nf = bucket.free.shape
    e = est.ell_basis
    p = e.shape[2]
    out = np.zeros((nb, nf + 1, p, p))
    sigma2 = est.sigma**2
    for f in range(nf):
        quad = np.matmul(np.swapaxes(e, 1, 2), np.matmul(der.ds[f], e))
        out[:, f] = np.where(bucket.free[:, f, None, None], -sigma2[:, None, None] * quad, 0.0)
    out[:, nf] = 2.0 * est.cov_beta / est.sigma[:, None, None]
    return out


def contrast_tests(
    bucket: Bucket,
    est: Estimates,
    der: Derivatives,
    contrasts: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Estimate, standard error and Satterthwaite df of each contrast.

    Parameters
    ----------
    bucket : Bucket
    est : Estimates
    der : Derivatives
    contrasts : ndarray, shape (B, M, p)
        Contrast coefficients on the fixed effects of each protein (0 on dropped columns).

    Returns
    -------
    estimate, se, df : ndarray, shape (B, M)
    """
    nb, nf = bucket.free.shape
    estimate = np.einsum("bmp,bp->bm", contrasts, est.beta)
    ell = np.einsum("bdp,bmp->bmd", est.ell_basis, contrasts)
    var = np.einsum("bmp,bpq,bmq->bm", contrasts, est.cov_beta, contrasts)
    sigma = est.sigma
    sigma2 = sigma**2
    grad = np.zeros((nb, contrasts.shape[1], nf + 1))
    for f in range(nf):
        quad = np.einsum("bmi,bij,bmj->bm", ell, der.ds[f], ell)
        grad[:, :, f] = np.where(bucket.free[:, f : f + 1], -sigma2[:, None] * quad, 0.0)
    grad[:, :, nf] = 2.0 * var / sigma[:, None]
    denom = np.einsum("bmi,bij,bmj->bm", grad, est.vcov_varpar, grad)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2.0 * var**2 / denom
    se = np.sqrt(np.maximum(var, 0.0))
    return estimate, se, df
