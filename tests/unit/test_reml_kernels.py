"""The compiled pieces of the REML engine against their plain numpy formulations.

:func:`pepmix.model._kernel.weighted_gram`, :func:`~pepmix.model._kernel.chol_inverses` and
:func:`~pepmix.model._kernel.schur_cholesky` compute the same sums, inverses and factors as
numpy in another order; :func:`pepmix.model.reml.derivatives` takes the traces of the
derivatives of ``S`` without forming them. Tolerances are rounding bounds: a few ``d`` or ``L``
ulps of the largest term (relative 1e-12), and for the traces the same relative to
``cond(S)`` times the largest term (the quantities differ only in summation order).
"""

from __future__ import annotations

import numpy as np
import pytest

from pepmix.model import reml
from pepmix.model._kernel import chol_inverses, schur_cholesky, weighted_gram
from pepmix.model.fit import fit_proteins
from pepmix.model.suffstats import build_problem

from .test_usage_refit import _design, _simulate


def _spd(rng: np.random.Generator, nb: int, d: int) -> np.ndarray:
    a = rng.normal(size=(nb, d, d))
    return np.asarray(a @ a.transpose(0, 2, 1) + d * np.eye(d)[None])


def _reference_second_traces(  # type: ignore[no-untyped-def]
    a_inv, masks, is_e, lam, ghat, ge1, ge2, any_e
) -> list[list[np.ndarray]]:
    r""":math:`\mathrm{tr}(A\,\partial^2 S/\partial\theta_f\partial\theta_g)` for every pair, in
    the explicit form the engine used before the compiled traces: (both factors kept)
    :math:`2\,m_f'(A\circ\hat G)m_g`, (``f`` kept, ``g`` eliminated)
    :math:`2\,m_f'(A\circ\hat G_E)\lambda`, (both eliminated)
    :math:`\lambda'(A\circ\hat G_{EE})\lambda`."""
    nf = len(masks)
    ag = a_inv * ghat
    kk = [[np.einsum("bi,bij,bj->b", masks[f], ag, masks[g]) * 2.0 for g in range(nf)]
          for f in range(nf)]  # fmt: skip
    if not any_e:
        return kk
    ae1 = np.einsum("bij,bij,bj->bi", a_inv, ge1, lam)
    ee = np.einsum("bi,bij,bij,bj->b", lam, a_inv, ge2, lam)
    out = [[kk[f][g] for g in range(nf)] for f in range(nf)]
    for f in range(nf):
        ke_f = 2.0 * np.sum(masks[f] * ae1, axis=1)
        for g in range(nf):
            if f == g:
                out[f][g] = np.where(is_e[f], ee, kk[f][g])
            else:
                both_k = ~(is_e[f] | is_e[g])
                value = np.where(is_e[g], ke_f, 0.0)
                ke_g = 2.0 * np.sum(masks[g] * ae1, axis=1)
                value = np.where(is_e[f], ke_g, value)
                out[f][g] = np.where(both_k, kk[f][g], value)
    return out


def test_weighted_gram_is_the_weighted_cross_product() -> None:
    """``W' diag(f) W`` per protein and weighting, zero weights (padding) and negative ones."""
    rng = np.random.default_rng(3)
    nb, nl, d = 5, 23, 7
    rows = rng.normal(size=(nb, nl, d))
    rows[rng.random(rows.shape) < 0.3] = 0.0
    weights = rng.normal(size=(2, nb, nl))
    weights[:, :, -5:] = 0.0
    out = np.empty((2, nb, d, d))
    weighted_gram(weights, rows, np.arange(nb, dtype=np.int64), out, *reml._NO_CLASSES)
    for k in range(2):
        ref = np.einsum("bjm,bj,bjn->bmn", rows, weights[k], rows)
        np.testing.assert_allclose(out[k], ref, rtol=0, atol=1e-12 * np.abs(ref).max())
        assert np.array_equal(out[k], out[k].transpose(0, 2, 1))


def test_row_classes_sum_equal_counts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank-one rows grouped by equal count (:func:`pepmix.model.reml.row_classes`): rows
    with a whole count shared by >= 2 valid rows form a class, the others (fractional or
    distinct counts, padding beyond ``n_valid``) do not; the class sums give ``W' diag(f) W``
    with ``f`` a function of the count, to rounding, also through a shared index
    (``Bucket.w_rows``)."""
    rng = np.random.default_rng(8)
    nb, nl, d = 4, 30, 6
    rows = rng.normal(size=(nb, nl, d))
    counts = np.where(rng.random((nb, nl)) < 0.6, rng.integers(3, 7, (nb, nl)), 0.0)
    counts = counts + np.where(counts == 0, rng.random((nb, nl)) * 5 + 0.5, 0.0)
    counts[:2, :3] = 2.5  # a fractional count shared by three rows: no class
    n_valid = np.array([30, 25, 1, 0])
    for b in range(nb):
        rows[b, n_valid[b] :] = 0.0
        counts[b, n_valid[b] :] = 0.0
    assert reml.row_classes(rows, counts, n_valid) is None  # off by default
    monkeypatch.setattr(reml, "CLASS_GRAMS", True)
    classes = reml.row_classes(rows, counts, n_valid)
    assert classes is not None
    for b in range(nb):
        valid = np.arange(nl) < n_valid[b]
        whole = valid & (counts[b] == np.floor(counts[b]))
        values, times = np.unique(counts[b, whole], return_counts=True)
        shared = np.isin(counts[b], values[times >= 2]) & whole
        assert np.array_equal(classes.cls_of[b] >= 0, shared)
        assert (classes.rep[b] >= 0).sum() == (times >= 2).sum()
    assert (classes.cls_of[2:] < 0).all() and (classes.cls_of[:2] >= 0).sum() > 20
    t = 0.7
    f = np.where(np.arange(nl)[None, :] < n_valid[:, None], t / (1.0 + t * counts), 0.0)
    index = np.array([3, 0, 1, 0, 2], dtype=np.int64)
    weights = np.stack([f[index], -2.0 * f[index] ** 2])
    with_cls = np.empty((2, index.size, d, d))
    without = np.empty((2, index.size, d, d))
    weighted_gram(weights, rows, index, with_cls, classes.cls_of, classes.gram, classes.rep)
    weighted_gram(weights, rows, index, without, *reml._NO_CLASSES)
    scale = np.abs(without).max()
    np.testing.assert_allclose(with_cls, without, rtol=0, atol=1e-13 * scale)
    assert not np.array_equal(with_cls, without)  # the classes were used
    assert np.array_equal(with_cls, with_cls.transpose(0, 1, 3, 2))


def test_chol_inverses_give_s_and_s0_inverses() -> None:
    """``S^-1`` and the zero-padded inverse of the leading block ``S_0``."""
    rng = np.random.default_rng(4)
    s = _spd(rng, 6, 5)
    chol = np.linalg.cholesky(s)
    sinv, s0inv = np.empty_like(s), np.empty_like(s)
    chol_inverses(chol, sinv, s0inv)
    np.testing.assert_allclose(sinv, np.linalg.inv(s), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(s0inv[:, :-1, :-1], np.linalg.inv(s[:, :-1, :-1]), atol=1e-14)
    assert not s0inv[:, -1, :].any() and not s0inv[:, :, -1].any()


def test_schur_cholesky_factors_s_and_flags_failures() -> None:
    """``G - sums``, ``S = lam Ghat lam + J`` and its factor; identity and False where ``S``
    is not positive definite."""
    rng = np.random.default_rng(5)
    nb, d = 4, 6
    g = _spd(rng, nb, d)
    sums = 0.1 * _spd(rng, nb, d)
    lam = rng.uniform(0.5, 2.0, (nb, d))
    j_diag = (rng.random((nb, d)) < 0.5).astype(np.float64)
    sums[2] = g[2] + np.eye(d) * 5.0  # Ghat negative definite: no factor
    ghat, chol, ok = np.empty_like(g), np.empty_like(g), np.empty(nb, dtype=bool)
    schur_cholesky(g, sums, lam, j_diag, ghat, chol, ok)
    assert ok.tolist() == [True, True, False, True]
    np.testing.assert_array_equal(ghat, g - sums)
    s = lam[:, :, None] * (g - sums) * lam[:, None, :] + j_diag[:, :, None] * np.eye(d)
    good = [0, 1, 3]
    np.testing.assert_allclose(chol[good], np.linalg.cholesky(s[good]), rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(chol[2], np.eye(d))


def _explicit_traces(
    a_inv: np.ndarray, ds: list[np.ndarray], second: list[list[np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """The traces as :func:`pepmix.model.reml.derivatives` took them before: the products
    ``A dS_f`` formed, ``tr(A dS_f)`` and ``tr(A d2S) - tr(A dS_f A dS_g)``."""
    nf = len(ds)
    first = np.stack([np.einsum("bij,bji->b", a_inv, ds[f]) for f in range(nf)], axis=1)
    prod = [a_inv @ ds[f] for f in range(nf)]
    hess = np.stack(
        [
            np.stack(
                [second[f][g] - np.einsum("bij,bji->b", prod[f], prod[g]) for g in range(nf)],
                axis=1,
            )
            for f in range(nf)
        ],
        axis=1,
    )
    return first, hess


@pytest.mark.parametrize("weighted", [True, False])
def test_derivative_traces_equal_the_explicit_products(weighted: bool) -> None:
    """Gradient and Hessian of ``log|S|`` and ``log|S_0|`` without forming ``dS`` equal the
    traces of the formed products, for every factor (eliminated one included), with rank-one
    classes (observation weights) and with class stacks."""
    table = _simulate(60, 0.4, seed=35)
    design = _design(usage=True)
    enc = fit_proteins(table, design, inference=False).encoded
    assert enc is not None
    rng = np.random.default_rng(7)
    weights = rng.uniform(0.3, 1.0, enc.y.size) if weighted else None
    problem = build_problem(
        enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins), weights=weights
    )
    _, bucket = max(problem.buckets, key=lambda b: b[1].dim)
    assert (bucket.W.ndim == 3) == weighted
    assert (bucket.efactor >= 0).all() and bucket.free.all()
    nf = bucket.free.shape[1]
    theta = np.where(bucket.free, rng.uniform(0.2, 1.5, bucket.free.shape), 0.0)
    ev = reml.evaluate(bucket, theta)
    assert ev.ok.all()
    der = reml.derivatives(bucket, theta, ev)
    sinv, s0inv = reml._inverses(ev)
    masks = [(bucket.dimfactor == f).astype(np.float64) for f in range(nf)]
    is_e = [bucket.efactor == f for f in range(nf)]
    theta_e = reml._theta_e(bucket, theta)
    t_e = theta_e**2
    denom = 1.0 + t_e[:, None] * bucket.cls_n
    present = bucket.cls_m > 0
    fp = np.where(present, 1.0 / denom**2, 0.0)
    fpp = np.where(present, -2.0 * bucket.cls_n / denom**3, 0.0)
    ge1 = -reml._class_sum(2.0 * theta_e[:, None] * fp, bucket.W)
    ge2 = -reml._class_sum(2.0 * fp + 4.0 * t_e[:, None] * fpp, bucket.W)
    free = bucket.free.astype(np.float64)
    pair = free[:, :, None] * free[:, None, :]
    cond = np.linalg.cond(ev.chol) ** 2
    for a_inv, l1, l2 in ((sinv, der.l1, der.l2), (s0inv, der.l01, der.l02)):
        second = _reference_second_traces(a_inv, masks, is_e, ev.lam, ev.ghat, ge1, ge2, True)
        first, hess = _explicit_traces(a_inv, der.ds, second)
        scale = (cond * np.abs(hess).reshape(bucket.size, -1).max(axis=1))[:, None]
        err1 = np.abs(l1 - first * free)
        err2 = np.abs(l2 - hess * pair).reshape(bucket.size, -1)
        assert (err1 <= 1e-12 * scale).all(), err1.max()
        assert (err2 <= 1e-12 * scale).all(), err2.max()


def test_shared_sub_buckets_evaluate_as_copies() -> None:
    """A sub-bucket sharing the rank-one classes (:meth:`Bucket.take_shared`, rows repeated and
    reordered, taken twice) evaluates and differentiates bit for bit as a copied one, and
    :meth:`Bucket.take` of it owns the right rows."""
    table = _simulate(60, 0.4, seed=35)
    design = _design(usage=True)
    enc = fit_proteins(table, design, inference=False).encoded
    assert enc is not None
    rng = np.random.default_rng(8)
    weights = rng.uniform(0.3, 1.0, enc.y.size)
    problem = build_problem(
        enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins), weights=weights
    )
    _, bucket = max(problem.buckets, key=lambda b: b[1].dim)
    index = rng.permutation(np.tile(np.arange(bucket.size), 2))[: bucket.size + 3]
    inner = np.array([2, 0, 2, 5, 1])
    shared = bucket.take_shared(index).take_shared(inner)
    copied = bucket.take(index).take(inner)
    assert shared.W is bucket.W and shared.w_rows is not None
    np.testing.assert_array_equal(shared.take(np.arange(5)).W, copied.W)
    theta = np.where(copied.free, rng.uniform(0.2, 1.5, copied.free.shape), 0.0)
    ev_s, ev_c = reml.evaluate(shared, theta), reml.evaluate(copied, theta)
    for name in ("dev", "ghat", "chol"):
        np.testing.assert_array_equal(getattr(ev_s, name), getattr(ev_c, name))
    der_s, der_c = reml.derivatives(shared, theta, ev_s), reml.derivatives(copied, theta, ev_c)
    for name in ("l1", "l2", "l01", "l02"):
        np.testing.assert_array_equal(getattr(der_s, name), getattr(der_c, name))


def test_quad_forms_are_the_einsum() -> None:
    """``a_j' S_{p_j} a_j`` per row (the abundance model's standard errors) equals the einsum
    over the gathered matrices to rounding (a dot product of ``d^2`` terms: relative 1e-13)."""
    from pepmix.model._kernel import quad_forms

    rng = np.random.default_rng(9)
    nb, nj, d = 6, 200, 8
    s = _spd(rng, nb, d)
    a = rng.normal(size=(nj, d))
    a[:, :2] = 0.0
    position = rng.integers(0, nb, nj)
    out = np.empty(nj)
    quad_forms(a, s, position.astype(np.int64), out)
    ref = np.einsum("ja,jab,jb->j", a, s[position], a)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    assert (out > 0).all()


def test_compiled_passes_equal_the_array_expressions_bit_for_bit() -> None:
    """The compiled element-wise passes of ``evaluate``/``derivatives`` give exactly the values
    of the numpy expressions they replace (same IEEE operations in the same order), padded
    classes (``cls_m`` 0) included, and ``weighted_gram`` is exactly symmetric and its summed
    entries those of the rows it reads."""
    from pepmix.model._kernel import (
        derivative_parts,
        evaluation_weights,
        level_weight_derivatives,
    )

    rng = np.random.default_rng(12)
    nb, nc, nf, d = 7, 40, 3, 6
    cls_n = rng.random((nb, nc)) * 6 + 0.5
    cls_m = np.where(rng.random((nb, nc)) < 0.8, 1.0, 0.0)
    cls_n[cls_m == 0] = 0.0
    theta = rng.random((nb, nf)) * 3
    efactor = np.array([0, 1, -1, 2, 0, 1, 2], dtype=np.int64)
    lam_index = rng.integers(0, nf + 2, (nb, d)).astype(np.int64)
    denom, f_c, lam = np.empty((nb, nc)), np.empty((nb, nc)), np.empty((nb, d))
    evaluation_weights(theta, efactor, lam_index, cls_n, cls_m, denom, f_c, lam)
    theta_e = np.where(efactor >= 0, theta[np.arange(nb), np.maximum(efactor, 0)], 0.0)
    t_e = theta_e**2
    ref_denom = 1.0 + t_e[:, None] * cls_n
    present = cls_m > 0
    assert denom.tobytes() == ref_denom.tobytes()
    assert f_c.tobytes() == np.where(present, t_e[:, None] / ref_denom, 0.0).tobytes()
    ext = np.concatenate([theta, np.zeros((nb, 1)), np.ones((nb, 1))], 1)
    assert lam.tobytes() == np.take_along_axis(ext, lam_index, axis=1).tobytes()

    weights, q1, q2 = np.empty((2, nb, nc)), np.empty((nb, nc)), np.empty((nb, nc))
    cube = ref_denom**3
    level_weight_derivatives(theta_e, t_e, cls_n, cls_m, ref_denom, cube, weights, q1, q2)
    fp = np.where(present, 1.0 / ref_denom**2, 0.0)
    fpp = np.where(present, -2.0 * cls_n / ref_denom**3, 0.0)
    assert weights[0].tobytes() == (2.0 * theta_e[:, None] * fp).tobytes()
    assert weights[1].tobytes() == (2.0 * fp + 4.0 * t_e[:, None] * fpp).tobytes()
    assert q1.tobytes() == np.where(present, cls_m * cls_n / ref_denom, 0.0).tobytes()
    assert q2.tobytes() == np.where(present, cls_m * cls_n**2 / ref_denom**2, 0.0).tobytes()

    rows = rng.normal(size=(nb, nc, d))
    rows[rng.random(rows.shape) < 0.3] = 0.0
    sums = np.empty((2, nb, d, d))
    weighted_gram(weights, rows, np.arange(nb, dtype=np.int64), sums, *reml._NO_CLASSES)
    assert np.array_equal(sums, sums.transpose(0, 1, 3, 2))
    ghat = rng.normal(size=(nb, d, d))
    ge1, ge2, r, d_e = (np.empty((nb, d, d)) for _ in range(4))
    derivative_parts(sums, ghat, lam, ge1, ge2, r, d_e)
    assert ge1.tobytes() == (-sums[0]).tobytes() and ge2.tobytes() == (-sums[1]).tobytes()
    assert r.tobytes() == (ghat * lam[:, None, :]).tobytes()
    assert d_e.tobytes() == (lam[:, :, None] * -sums[0] * lam[:, None, :]).tobytes()
