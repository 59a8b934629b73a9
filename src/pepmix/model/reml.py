r"""Batched REML criterion, gradient and Hessian for random-intercept models.

Model and notation
------------------
For one protein with :math:`n` observations (log2 intensities) :math:`y`,

.. math:: y = X\beta + \sum_k Z_k b_k + e,\quad b_k \sim N(0, \sigma^2\theta_k^2 I),
          \ e\sim N(0,\sigma^2 I)

with one random-intercept factor :math:`k` per grouping (feature, sample, run, batch) and
relative standard deviations :math:`\theta_k = \sigma_k/\sigma \ge 0` (lme4's parametrisation).
lme4's REML criterion with :math:`\sigma^2` profiled out is

.. math:: d(\theta) = \log|L_\theta|^2 + \log|R_X|^2 + \nu\,(1 + \log(2\pi\,r^2/\nu)),
          \quad \nu = n - p

where :math:`L_\theta L_\theta' = \Lambda Z'Z\Lambda + I`, :math:`R_X` is the Cholesky factor of
:math:`X'H^{-1}X` with :math:`H = I + Z\Lambda\Lambda Z'`, and :math:`r^2` is the penalised residual
sum of squares.

Elimination and compression
---------------------------
One factor :math:`E` (the one with most levels) is eliminated analytically: its block of the
mixed-model equations is diagonal, :math:`1 + t_E n_j` for level :math:`j` with :math:`n_j`
observations and :math:`t_E = \theta_E^2`. The remaining factors :math:`K`, the fixed effects and
:math:`y` form the augmented cross-product :math:`G = [Z_K\,X\,y]'[Z_K\,X\,y]` (size :math:`d`).
With :math:`w_j = Z_E[:,j]'[Z_K\,X\,y]` the Schur complement is

.. math:: S(\theta) = \tilde\Lambda\,\hat G\,\tilde\Lambda + J,\qquad
          \hat G = G - \sum_c f_c(t_E)\,W_c,\quad f_c(t) = \frac{t}{1 + t c},\quad
          W_c = \sum_{j:\,n_j = c} w_j w_j'

where :math:`\tilde\Lambda = \mathrm{diag}(\theta_{k(a)}` for :math:`K` dimensions, 1 for
:math:`X, y)` and :math:`J` is 1 on :math:`K` dimensions, 0 elsewhere. Levels of :math:`E` with
the same count :math:`c` are summed once (count classes), so an evaluation costs
:math:`O(C d^2 + d^3)` whatever the number of levels. With :math:`S_0` the leading
:math:`(d-1)` block (everything but :math:`y`):

.. math:: \log|L_\theta|^2 + \log|R_X|^2 = g_E + \log|S_0|,\quad
          g_E = \sum_c m_c \log(1 + t_E c),\quad r^2 = |S| / |S_0|

so :math:`d(\theta) = g_E + (1-\nu)\log|S_0| + \nu\log|S| + \nu(1+\log(2\pi/\nu))`. Derivatives
follow from :math:`\partial\log|S| = \mathrm{tr}(S^{-1}\partial S)` and
:math:`\partial^2\log|S| = \mathrm{tr}(S^{-1}\partial^2 S)
- \mathrm{tr}(S^{-1}\partial S\,S^{-1}\partial S)`,
all on :math:`d \times d` matrices and exact (no finite differences).

Padding is an exact no-op: padded :math:`K` dimensions have zero rows in :math:`G` (so a 1 on the
diagonal of :math:`S`), dropped fixed-effect columns are replaced by a unit dummy column, padded
count classes have :math:`m_c = 0, W_c = 0`.

Rank-one classes
----------------
With observation weights (:mod:`pepmix.model.suffstats`) :math:`n_j` is the weight sum of level
:math:`j`, nearly always distinct between levels, so every class holds one level and the class
stack costs :math:`O(L d^2)` memory per protein for :math:`L` levels. Weighted problems therefore
store the rows :math:`w_j` instead (a :math:`L \times d` matrix :math:`W` per protein) and form
:math:`\sum_j f_j(t_E)\,w_j w_j' = W'\mathrm{diag}(f)\,W` (and the same with :math:`f'`,
:math:`f''` for the derivatives) in one compiled pass over the rows: the same sum, :math:`O(L d)`
memory. Unweighted problems keep the class stack.

The element-wise steps of :func:`evaluate` and :func:`derivatives` (class weights,
:math:`\tilde\Lambda`, the rank-one sums with the Schur complement and its Cholesky factor, the
criterion from its logarithms, :math:`R`, :math:`D`) run as compiled passes
(:mod:`pepmix.model._kernel`) doing the operations of the array expressions in their order;
logarithms, powers, sums over classes and matrix products stay numpy's, so the values are those
of the array code bit for bit, with less Python per call.

Variance-ratio prior (optional)
-------------------------------
With :attr:`Bucket.prior_df` set, :func:`evaluate` returns the penalised criterion
:math:`d(\theta) + \sum_k \mathrm{pen}_k(\theta_k)` with, for factors with
:math:`d_{0k} > 0`,

.. math:: \mathrm{pen}(\theta) = d_0\,(\log\lambda + r_0/\lambda),\quad \lambda = \theta^2,

:math:`-2\log` of a scaled-inverse-:math:`\chi^2(d_0, r_0)` density of the variance ratio
:math:`\lambda` with respect to :math:`\log\lambda` (constants dropped); see
:mod:`pepmix.model.shrinkage`. Its derivatives in :math:`\theta` are
:math:`\mathrm{pen}' = 2d_0(1/\theta - r_0/\theta^3)` and
:math:`\mathrm{pen}'' = d_0(-2/\theta^2 + 6r_0/\theta^4)` (diagonal);
:math:`\mathrm{pen}(0) = +\infty`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

LOG_2PI = float(np.log(2.0 * np.pi))

#: ``dimfactor`` code of a fixed-effect or response dimension
DIM_FIXED = -1
#: ``dimfactor`` code of a padded random-effect dimension
DIM_PAD = -2
#: weighted problems sum rank-one rows with equal level counts once (:class:`RowClasses`);
#: False (default): row by row. Measured on a 10,000 x 200 cohort shard: no CPU gain (forming
#: the classes in every problem of the robust rounds costs what they save) and +0.17 GB peak
#: memory (``benchmarks/README.md``, "The fit shard at 200 runs, eighth session")
CLASS_GRAMS = False
#: rows with the same count that make a class
MIN_CLASS = 2


@dataclass
class Bucket:
    r"""Sufficient statistics of ``B`` proteins padded to a common size.

    Attributes
    ----------
    G : ndarray, shape (B, d, d)
        Augmented cross-product :math:`[Z_K X y]'[Z_K X y]` (``y`` last).
    W : ndarray, shape (B, C, d, d) or (B, C, d)
        Count-class sums :math:`W_c` of the eliminated factor, or (three dimensions, weighted
        problems) rank-one classes: one level per class, ``W[b, c]`` its row :math:`w_j` with
        :math:`W_c = w_j w_j'` (``cls_m`` 1). See "Rank-one classes" in the module docstring.
    cls_n : ndarray, shape (B, C)
        Observation count :math:`c` of each class (0 for padding).
    cls_m : ndarray, shape (B, C)
        Number of eliminated-factor levels in each class (0 for padding).
    dimfactor : ndarray of int, shape (B, d)
        Random factor index of each dimension, :data:`DIM_FIXED` or :data:`DIM_PAD`.
    efactor : ndarray of int, shape (B,)
        Index of the eliminated factor, or -1 when there is none.
    free : ndarray of bool, shape (B, F)
        Which of the ``F`` model factors have a variance to estimate for this protein.
    nu : ndarray, shape (B,)
        Residual degrees of freedom :math:`n - p`.
    n_x : int
        Number of fixed-effect dimensions (the ``n_x`` before the last one).
    e_fixed : bool, default False
        The eliminated levels are fixed effects (one mean per run), the limit
        :math:`t_E \to \infty`: :math:`f_c = 1/c` and :math:`g_E = \sum_c m_c \log c`
        (the ``log|X'X|`` of those columns), with no variance parameter.
    prior_df, prior_ratio : ndarray, shape (B, F), optional
        Variance-ratio prior :math:`(d_0, r_0)` per protein and factor (``d_0 = 0``: none);
        default None (plain REML).
    w_rows : ndarray of int, shape (B,), optional
        Rank-one classes shared with the bucket this one was taken from
        (:meth:`take_shared`): protein ``b``'s rows are ``W[w_rows[b]]``. Default None:
        ``W[b]``. Only :func:`evaluate` and :func:`derivatives` read such a bucket's ``W``;
        :meth:`take` of it has its own.
    classes : RowClasses, optional
        Rank-one rows with equal level counts summed once (:func:`row_classes`; indexed like
        ``W``, through :attr:`w_rows`); default None: row by row. ``W``, ``cls_n`` and
        ``cls_m`` keep every row.
    """

    G: FloatArray
    W: FloatArray
    cls_n: FloatArray
    cls_m: FloatArray
    dimfactor: IntArray
    efactor: IntArray
    free: BoolArray
    nu: FloatArray
    n_x: int
    e_fixed: bool = False
    prior_df: FloatArray | None = None
    prior_ratio: FloatArray | None = None
    w_rows: IntArray | None = None
    classes: RowClasses | None = None

    @property
    def size(self) -> int:
        """Number of proteins in the bucket."""
        return int(self.G.shape[0])

    @cached_property
    def lam_index(self) -> NDArray[np.int64]:
        """Column of ``[theta, 0, 1]`` that gives each dimension's :math:`\\tilde\\Lambda`."""
        nf = self.free.shape[1]
        df = self.dimfactor
        index = np.where(df >= 0, df, np.where(df == DIM_FIXED, nf + 1, nf))
        return np.ascontiguousarray(index, dtype=np.int64)

    @cached_property
    def j_diag(self) -> FloatArray:
        """Diagonal of :math:`J` (1 on random-effect and padded dimensions)."""
        return np.ascontiguousarray(self.dimfactor != DIM_FIXED, dtype=np.float64)

    @cached_property
    def efactor64(self) -> NDArray[np.int64]:
        """:attr:`efactor` as contiguous int64 (for the compiled kernels)."""
        return np.ascontiguousarray(self.efactor, dtype=np.int64)

    @property
    def dim(self) -> int:
        """Padded dimension ``d``."""
        return int(self.G.shape[1])

    @property
    def n_factors(self) -> int:
        """Number of model random factors ``F``."""
        return int(self.free.shape[1])

    def take(self, index: IntArray) -> Bucket:
        """Return the sub-bucket of the proteins at ``index`` (its own copies of the arrays)."""
        rows = index if self.w_rows is None else self.w_rows[index]
        cls = None if self.classes is None else self.classes.take(rows)
        return self._take(index, self.W[rows], None, cls)

    def take_shared(self, index: IntArray) -> Bucket:
        """:meth:`take`, but rank-one classes are not copied: the sub-bucket reads this
        bucket's ``W`` through :attr:`w_rows` (for the optimiser's shrinking active sets and
        repeated rows; class stacks are copied as by :meth:`take`)."""
        if self.W.ndim != 3:
            return self.take(index)
        rows = np.asarray(index, dtype=np.intp)
        shared = rows if self.w_rows is None else self.w_rows[rows]
        return self._take(index, self.W, shared, self.classes)

    def _take(
        self, index: IntArray, w: FloatArray, w_rows: IntArray | None, cls: RowClasses | None
    ) -> Bucket:
        return Bucket(
            G=self.G[index],
            W=w,
            cls_n=self.cls_n[index],
            cls_m=self.cls_m[index],
            dimfactor=self.dimfactor[index],
            efactor=self.efactor[index],
            free=self.free[index],
            nu=self.nu[index],
            n_x=self.n_x,
            e_fixed=self.e_fixed,
            prior_df=None if self.prior_df is None else self.prior_df[index],
            prior_ratio=None if self.prior_ratio is None else self.prior_ratio[index],
            w_rows=w_rows,
            classes=cls,
        )


@dataclass
class RowClasses:
    r"""Rank-one rows of a weighted bucket grouped by equal level count (weight sum).

    Levels whose observations all have weight 1 (most at 200 runs with Huber weights) have
    integer counts, shared by many levels of a protein; their :math:`f_c` are then equal, so
    :math:`\sum_j f_j w_j w_j'` over such a group is :math:`f_c \sum_j w_j w_j'`: one
    ``d x d`` sum, formed once per problem, instead of a rank-one product per level and
    evaluation (the count classes of unweighted problems, within a weighted one).

    Attributes
    ----------
    cls_of : ndarray of int, shape (B, L)
        Class of each row of ``W`` (-1: summed row by row).
    gram : ndarray, shape (B, C, d, d)
        :math:`\sum_j w_j w_j'` over each class's rows (0 for padding).
    rep : ndarray of int, shape (B, C)
        One row of each class (its :math:`f` is the class's; -1: padding).
    """

    cls_of: NDArray[np.int64]
    gram: FloatArray
    rep: NDArray[np.int64]

    def take(self, rows: IntArray) -> RowClasses:
        """The classes of the proteins at ``rows`` (copies)."""
        return RowClasses(cls_of=self.cls_of[rows], gram=self.gram[rows], rep=self.rep[rows])


def row_classes(w: FloatArray, cls_n: FloatArray, n_valid: IntArray) -> RowClasses | None:
    """:class:`RowClasses` of rank-one rows ``w`` (shape ``(B, L, d)``, the first
    ``n_valid[b]`` rows of protein ``b`` valid, counts ``cls_n``): groups of at least
    :data:`MIN_CLASS` rows with the same whole count; None when no protein has one (or
    :data:`CLASS_GRAMS` is off)."""
    from pepmix.model._kernel import class_grams, rank_one_classes

    if not CLASS_GRAMS or w.ndim != 3 or w.shape[0] == 0:
        return None
    nb, n_l, d = w.shape
    cls_of = np.full((nb, n_l), -1, dtype=np.int64)
    n_cls = np.zeros(nb, dtype=np.int64)
    rank_one_classes(
        np.ascontiguousarray(cls_n, dtype=np.float64),
        np.asarray(n_valid, dtype=np.int64),
        MIN_CLASS,
        cls_of,
        n_cls,
    )
    c_max = int(n_cls.max())
    if c_max == 0:
        return None
    gram = np.zeros((nb, c_max, d, d))
    rep = np.full((nb, c_max), -1, dtype=np.int64)
    class_grams(np.ascontiguousarray(w, dtype=np.float64), cls_of, gram, rep)
    return RowClasses(cls_of=cls_of, gram=gram, rep=rep)


@dataclass
class Evaluation:
    """REML criterion and what derivatives and estimates need, at one ``theta`` per protein.

    Attributes
    ----------
    dev : ndarray, shape (B,)
        Profiled REML criterion (lme4's ``REMLcrit``), plus :attr:`penalty` when the bucket
        has a prior; ``inf`` where ``S`` is not positive definite.
    logdet_s, logdet_s0 : ndarray, shape (B,)
        :math:`\\log|S|` and :math:`\\log|S_0|`.
    g_e : ndarray, shape (B,)
        :math:`g_E = \\sum_c m_c \\log(1 + t_E c)`.
    pwrss : ndarray, shape (B,)
        Penalised residual sum of squares :math:`r^2`.
    chol : ndarray, shape (B, d, d)
        Lower Cholesky factor of ``S``.
    lam : ndarray, shape (B, d)
        Diagonal of :math:`\\tilde\\Lambda`.
    ghat : ndarray, shape (B, d, d)
        :math:`\\hat G`.
    ok : ndarray of bool, shape (B,)
        Whether the Cholesky factorisation succeeded.
    penalty : ndarray, shape (B,), optional
        Prior penalty included in :attr:`dev` (default None: no prior).
    """

    dev: FloatArray
    logdet_s: FloatArray
    logdet_s0: FloatArray
    g_e: FloatArray
    pwrss: FloatArray
    chol: FloatArray
    lam: FloatArray
    ghat: FloatArray
    ok: BoolArray
    penalty: FloatArray | None = None

    @property
    def reml_crit(self) -> FloatArray:
        """The REML criterion without the prior penalty."""
        return self.dev if self.penalty is None else self.dev - self.penalty

    def take(self, index: IntArray) -> Evaluation:
        """Return the evaluation of the proteins at ``index``."""
        return Evaluation(
            dev=self.dev[index],
            logdet_s=self.logdet_s[index],
            logdet_s0=self.logdet_s0[index],
            g_e=self.g_e[index],
            pwrss=self.pwrss[index],
            chol=self.chol[index],
            lam=self.lam[index],
            ghat=self.ghat[index],
            ok=self.ok[index],
            penalty=None if self.penalty is None else self.penalty[index],
        )


def prior_penalty(bucket: Bucket, theta: FloatArray, order: int = 0) -> FloatArray:
    """Penalty of the variance-ratio prior (``order`` 0), or its first or second derivative.

    Returns shape ``(B,)`` for order 0 (``inf`` at a prior factor's ``theta = 0``) and the
    diagonal ``(B, F)`` of the gradient or Hessian for orders 1 and 2 (0 for factors without
    a prior). Requires :attr:`Bucket.prior_df`.
    """
    assert bucket.prior_df is not None and bucket.prior_ratio is not None
    d0, r0 = bucket.prior_df, bucket.prior_ratio
    has = d0 > 0
    th = np.where(has, theta, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if order == 0:
            lam = th**2
            value = np.where(has, d0 * (np.log(lam) + r0 / lam), 0.0)
            value = np.where(has & (theta <= 0), np.inf, value)
            return np.asarray(value.sum(axis=1), dtype=np.float64)
        if order == 1:
            return np.asarray(np.where(has, 2.0 * d0 * (1.0 / th - r0 / th**3), 0.0))
        return np.asarray(np.where(has, d0 * (-2.0 / th**2 + 6.0 * r0 / th**4), 0.0))


def _class_sum(
    weights: FloatArray,
    w: FloatArray,
    rows: IntArray | None = None,
    classes: RowClasses | None = None,
) -> FloatArray:
    """:math:`\\sum_c` ``weights[b, c] * W_c`` per protein (see :func:`_class_sums`).

    ``w`` holds the class sums (shape ``(B, C, d, d)``) or, for rank-one classes, their rows
    :math:`w_j` (shape ``(B, L, d)``): then the sum is :math:`W'\\,\\mathrm{diag}(f)\\,W`.
    """
    return _class_sums([weights], w, rows, classes)[0]


def _class_sums(
    weights: list[FloatArray],
    w: FloatArray,
    rows: IntArray | None = None,
    classes: RowClasses | None = None,
) -> list[FloatArray]:
    """:func:`_class_sum` for each array of ``weights`` (all shape ``(B, C)``); protein ``b``'s
    classes are ``w[rows[b]]`` (default None: ``w[b]``; :attr:`Bucket.w_rows`), rank-one rows
    grouped by ``classes`` (default None: none; :class:`RowClasses`) summed per group.

    Rank-one classes use the compiled :func:`pepmix.model._kernel.weighted_gram`: one pass over
    the rows :math:`w_j` for all weightings (the evaluation's :math:`f` or the derivatives'
    :math:`f'` and :math:`f''`), the lower triangle only, levels of weight 0 skipped, and no
    scaled copy of :math:`W` (with :math:`L` in the hundreds, e.g. 200 runs, these sums are
    the engine's largest cost). Class stacks (unweighted problems) keep one batched matrix
    product per weighting.
    """
    if w.ndim == 3:
        stacked = weights[0][None] if len(weights) == 1 else np.stack(weights)
        return list(_gram_sums(stacked, w, rows, classes))
    nb = weights[0].shape[0]
    if rows is not None:
        w = w[rows]
    nc, d = w.shape[1], w.shape[2]
    flat = w.reshape(nb, nc, d * d)
    return [
        np.asarray(np.matmul(weight[:, None, :], flat).reshape(nb, d, d), dtype=np.float64)
        for weight in weights
    ]


def _gram_sums(
    weights: FloatArray,
    w: FloatArray,
    rows: IntArray | None = None,
    classes: RowClasses | None = None,
) -> FloatArray:
    """:func:`_class_sums` of rank-one rows ``w`` (shape ``(B', L, d)``) for the weightings
    stacked in ``weights`` (shape ``(K, B, L)``): shape ``(K, B, d, d)``, one call of
    :func:`pepmix.model._kernel.weighted_gram` (no copies of arrays already contiguous)."""
    from pepmix.model._kernel import weighted_gram

    n_k, nb = weights.shape[0], weights.shape[1]
    d = w.shape[2]
    out = np.empty((n_k, nb, d, d))
    cls_of, gram, rep = _row_classes(classes)
    weighted_gram(
        np.ascontiguousarray(weights, dtype=np.float64),
        np.ascontiguousarray(w, dtype=np.float64),
        _gram_index(nb, rows),
        out,
        cls_of,
        gram,
        rep,
    )
    return out


_NO_CLASSES = (np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0, 0, 0)), np.zeros((0, 0), np.int64))


def _gram_index(nb: int, rows: IntArray | None) -> NDArray[np.int64]:
    """Each protein's entry of the rank-one rows (:attr:`Bucket.w_rows`, default ``arange``)."""
    return np.arange(nb, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)


def _row_classes(
    classes: RowClasses | None,
) -> tuple[NDArray[np.int64], FloatArray, NDArray[np.int64]]:
    """The arrays of :class:`RowClasses` for the kernels (empty: none)."""
    if classes is None:
        return _NO_CLASSES
    return classes.cls_of, classes.gram, classes.rep


def _class_counts(bucket: Bucket) -> tuple[FloatArray, FloatArray]:
    """``cls_n`` and ``cls_m`` as C-contiguous float64 (no copy when they are)."""
    return (
        np.ascontiguousarray(bucket.cls_n, dtype=np.float64),
        np.ascontiguousarray(bucket.cls_m, dtype=np.float64),
    )


def _theta_e(bucket: Bucket, theta: FloatArray) -> FloatArray:
    rows = np.arange(theta.shape[0])
    return np.where(bucket.efactor >= 0, theta[rows, np.maximum(bucket.efactor, 0)], 0.0)


def lambda_diag(bucket: Bucket, theta: FloatArray) -> FloatArray:
    """Diagonal of :math:`\\tilde\\Lambda` for each protein (shape ``(B, d)``)."""
    from pepmix.model._kernel import gather_lambda

    lam = np.empty(bucket.lam_index.shape)
    gather_lambda(np.ascontiguousarray(theta, dtype=np.float64), bucket.lam_index, lam)
    return lam


def _factor(
    bucket: Bucket, f_c: FloatArray, lam: FloatArray
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """:math:`\\hat G = G - \\sum_c f_c W_c`, the Cholesky factor of :math:`S` and whether it
    exists, per protein (:func:`pepmix.model._kernel.schur_cholesky`; rank-one classes in one
    compiled call with their sums, :func:`pepmix.model._kernel.gram_schur`)."""
    from pepmix.model._kernel import gram_schur, schur_cholesky

    g = np.ascontiguousarray(bucket.G, dtype=np.float64)
    ghat = np.empty_like(g)
    chol = np.empty_like(g)
    ok = np.empty(g.shape[0], dtype=bool)
    lam = np.ascontiguousarray(lam, dtype=np.float64)
    if bucket.W.ndim == 3:
        cls_of, gram, rep = _row_classes(bucket.classes)
        gram_schur(
            np.ascontiguousarray(f_c, dtype=np.float64),
            np.ascontiguousarray(bucket.W, dtype=np.float64),
            _gram_index(g.shape[0], bucket.w_rows),
            cls_of,
            gram,
            rep,
            g,
            lam,
            bucket.j_diag,
            ghat,
            chol,
            ok,
        )
        return ghat, chol, ok
    sums = np.ascontiguousarray(_class_sum(f_c, bucket.W, bucket.w_rows), dtype=np.float64)
    schur_cholesky(g, sums, lam, bucket.j_diag, ghat, chol, ok)
    return ghat, chol, ok


def evaluate(bucket: Bucket, theta: FloatArray) -> Evaluation:
    """Evaluate the profiled REML criterion at ``theta`` (shape ``(B, F)``).

    Entries of ``theta`` for factors that are not free must be 0.
    """
    from pepmix.model._kernel import evaluation_tail

    if bucket.e_fixed:
        present = bucket.cls_m > 0
        safe_n = np.where(present, bucket.cls_n, 1.0)
        f_c = np.where(present, 1.0 / safe_n, 0.0)
        g_e = np.sum(bucket.cls_m * np.log(safe_n), axis=1)
        lam = lambda_diag(bucket, theta)
    else:
        from pepmix.model._kernel import evaluation_weights

        # t_E = theta_E^2, denom_c = 1 + t_E c, f_c = t_E / denom_c and lam in one call
        cls_n, cls_m = _class_counts(bucket)
        denom = np.empty_like(cls_n)
        f_c = np.empty_like(cls_n)
        lam = np.empty(bucket.lam_index.shape)
        evaluation_weights(
            np.ascontiguousarray(theta, dtype=np.float64),
            bucket.efactor64,
            bucket.lam_index,
            cls_n,
            cls_m,
            denom,
            f_c,
            lam,
        )
        # g_E = sum_c m_c log(denom_c), in place (the values of the array expression)
        g_e = np.sum(np.multiply(cls_m, np.log(denom, out=denom), out=denom), axis=1)
    ghat, chol, ok = _factor(bucket, f_c, lam)
    nu = np.ascontiguousarray(bucket.nu, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_diag = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2))
        nu_term = nu * (1.0 + LOG_2PI - np.log(nu))
    logdet_s0 = np.sum(log_diag[:, :-1], axis=1)
    penalty = None if bucket.prior_df is None else prior_penalty(bucket, theta)
    logdet_s, pwrss, dev = (np.empty(nu.shape) for _ in range(3))
    good = np.empty(nu.shape, dtype=bool)
    # logdet_s, pwrss = L_yy^2 and d = g_E + (1 - nu) logdet_s0 + nu logdet_s + nu_term
    # (+ penalty), inf where not usable, in one compiled pass
    evaluation_tail(
        chol,
        log_diag,
        logdet_s0,
        np.ascontiguousarray(g_e, dtype=np.float64),
        nu,
        nu_term,
        _NO_VALUES if penalty is None else np.ascontiguousarray(penalty, dtype=np.float64),
        ok,
        logdet_s,
        pwrss,
        dev,
        good,
    )
    return Evaluation(
        dev=dev,
        logdet_s=logdet_s,
        logdet_s0=logdet_s0,
        g_e=g_e,
        pwrss=pwrss,
        chol=chol,
        lam=lam,
        ghat=ghat,
        ok=good,
        penalty=penalty,
    )


_NO_VALUES = np.zeros(0)


@dataclass
class Derivatives:
    """First and second derivatives with respect to ``theta`` (all ``F`` factors).

    Rows and columns of factors that are not free are zero.

    Attributes
    ----------
    l1, l01, g1 : ndarray, shape (B, F)
        Gradients of :math:`\\log|S|`, :math:`\\log|S_0|` and :math:`g_E`.
    l2, l02, g2 : ndarray, shape (B, F, F)
        Hessians of the same.
    s0inv : ndarray, shape (B, d, d)
        :math:`S_0^{-1}` padded with a zero last row and column.
    parts : DerivativeParts
        What :attr:`ds` is formed from.
    pen1, pen2 : ndarray, shape (B, F), optional
        Gradient and Hessian diagonal of the prior penalty (default None: no prior).
    """

    l1: FloatArray
    l01: FloatArray
    g1: FloatArray
    l2: FloatArray
    l02: FloatArray
    g2: FloatArray
    s0inv: FloatArray
    parts: DerivativeParts
    pen1: FloatArray | None = None
    pen2: FloatArray | None = None

    @cached_property
    def ds(self) -> list[FloatArray]:
        """:math:`\\partial S/\\partial\\theta_f` for each factor ``f`` (shape ``(B, d, d)``).

        Formed when first read (the Satterthwaite Jacobian reads them; the optimiser needs
        only their traces, which :func:`derivatives` takes without forming them).
        """
        return self.parts.matrices()

    def profiled(self, nu: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Gradient and Hessian of the profiled criterion :math:`d(\\theta)` (plus penalty)."""
        a = (1.0 - nu)[:, None]
        b = nu[:, None]
        grad = self.g1 + a * self.l01 + b * self.l1
        hess = self.g2 + a[:, :, None] * self.l02 + b[:, :, None] * self.l2
        if self.pen1 is not None and self.pen2 is not None:
            grad = grad + self.pen1
            hess = hess + self.pen2[:, :, None] * np.eye(hess.shape[1])[None]
        return grad, hess


@dataclass
class DerivativeParts:
    r"""The pieces of :math:`\partial S/\partial\theta_f` at one ``theta`` per protein.

    For a kept factor :math:`\partial S/\partial\theta_f = M_f R + R'M_f` with
    :math:`R = \hat G\tilde\Lambda` and :math:`M_f` the indicator of its dimensions; for the
    eliminated one :math:`D = \tilde\Lambda\,\partial\hat G/\partial\theta_E\,\tilde\Lambda`.

    Attributes
    ----------
    r : ndarray, shape (B, d, d)
        :math:`R`.
    d_e : ndarray, shape (B, d, d)
        :math:`D` (zero for proteins without an eliminated factor).
    dimfactor : ndarray of int, shape (B, d)
        Factor of each dimension (:attr:`Bucket.dimfactor`): :math:`M_f` is its indicator.
    efactor : ndarray of int, shape (B,)
        Eliminated factor (:attr:`Bucket.efactor`, -1: none).
    onehot_e : ndarray of bool, shape (B, F)
        Which factor is eliminated.
    """

    r: FloatArray
    d_e: FloatArray
    dimfactor: IntArray
    efactor: IntArray
    onehot_e: BoolArray

    def matrices(self) -> list[FloatArray]:
        r""":math:`\partial S/\partial\theta_f` for each factor (list of ``(B, d, d)``)."""
        out: list[FloatArray] = []
        for f in range(self.onehot_e.shape[1]):
            mk = (self.dimfactor == f).astype(np.float64)[:, :, None] * self.r
            dk = mk + np.transpose(mk, (0, 2, 1))
            if self.onehot_e[:, f].any():
                dk = np.where(self.onehot_e[:, f, None, None], self.d_e, dk)
            out.append(np.asarray(dk, dtype=np.float64))
        return out


def _inverses(ev: Evaluation) -> tuple[FloatArray, FloatArray]:
    """Return :math:`S^{-1}` and :math:`S_0^{-1}` (zero-padded to ``d``).

    From the inverse of the Cholesky factor (:func:`pepmix.model._kernel.chol_inverses`):
    :math:`S_0^{-1}` is :math:`S^{-1}` without the last row of :math:`L^{-1}`, the same as the
    bordering identity :math:`S_0^{-1} = A - a a' / \\alpha` with
    :math:`S^{-1} = [[A, a], [a', \\alpha]]`.
    """
    both = _inverse_pair(ev)
    return both[0], both[1]


def _inverse_pair(ev: Evaluation) -> FloatArray:
    """:func:`_inverses` stacked: shape ``(2, B, d, d)``, :math:`S^{-1}` first."""
    from pepmix.model._kernel import chol_inverses

    chol = np.ascontiguousarray(ev.chol, dtype=np.float64)
    both = np.empty((2, *chol.shape))
    chol_inverses(chol, both[0], both[1])
    return both


def derivatives(bucket: Bucket, theta: FloatArray, ev: Evaluation) -> Derivatives:
    """Exact first and second derivatives of the pieces of the criterion at ``theta``.

    The traces of :math:`S^{-1}` and :math:`S_0^{-1}` with the derivatives of ``S`` come from
    :func:`_trace_derivatives` (a few batched matrix products for all factors at once).
    """
    from pepmix.model._kernel import derivative_parts, level_weight_derivatives

    nb, nf = theta.shape
    inverses = _inverse_pair(ev)
    lam = ev.lam
    theta_e = _theta_e(bucket, theta)
    t_e = theta_e**2
    # f_c'(t) = 1 / denom^2, f_c''(t) = -2 c / denom^3 and the class weights of
    # d Ghat / d theta_E and d2 Ghat / d theta_E^2, and of g_E's derivatives, in one pass
    cls_n, cls_m = _class_counts(bucket)
    denom = np.multiply(t_e[:, None], cls_n)
    denom += 1.0
    weights = np.empty((2, *cls_n.shape))
    q1 = np.empty_like(cls_n)
    q2 = np.empty_like(cls_n)
    level_weight_derivatives(theta_e, t_e, cls_n, cls_m, denom, denom**3, weights, q1, q2)
    if bucket.W.ndim == 3:
        sums = _gram_sums(weights, bucket.W, bucket.w_rows, bucket.classes)
    else:
        sums = np.stack(_class_sums(list(weights), bucket.W, bucket.w_rows, bucket.classes))
    # d Ghat / d theta_E = -sums[0], d2 Ghat / d theta_E^2 = -sums[1], R and D in one pass
    ghat = np.ascontiguousarray(ev.ghat, dtype=np.float64)
    ge1, ge2, r, d_e = (np.empty_like(ghat) for _ in range(4))
    derivative_parts(sums, ghat, np.ascontiguousarray(lam, dtype=np.float64), ge1, ge2, r, d_e)
    onehot_e = bucket.efactor[:, None] == np.arange(nf)[None, :]
    parts = DerivativeParts(
        r=r,
        d_e=d_e,
        dimfactor=bucket.dimfactor,
        efactor=bucket.efactor,
        onehot_e=onehot_e,
    )
    any_e = bool(onehot_e.any())
    (l1, l01), (l2, l02) = _trace_derivatives(inverses, parts, ghat, lam, ge1, ge2, any_e)
    # g_E = sum_c m_c log(1 + t c)
    s1 = np.sum(q1, axis=1)
    s2 = np.sum(q2, axis=1)
    g1 = np.where(onehot_e, (2.0 * theta_e * s1)[:, None], 0.0)
    g2 = np.zeros((nb, nf, nf))
    diag = np.arange(nf)
    g2[:, diag, diag] = np.where(onehot_e, (2.0 * s1 - 4.0 * t_e * s2)[:, None], 0.0)
    free = bucket.free.astype(np.float64)
    pair = free[:, :, None] * free[:, None, :]
    pen1 = pen2 = None
    if bucket.prior_df is not None:
        pen1 = prior_penalty(bucket, theta, 1) * free
        pen2 = prior_penalty(bucket, theta, 2) * free
    return Derivatives(
        l1=l1 * free,
        l01=l01 * free,
        g1=g1 * free,
        l2=l2 * pair,
        l02=l02 * pair,
        g2=g2 * pair,
        s0inv=inverses[1],
        parts=parts,
        pen1=pen1,
        pen2=pen2,
    )


def _trace_derivatives(
    a_inv: FloatArray,
    parts: DerivativeParts,
    ghat: FloatArray,
    lam: FloatArray,
    ge1: FloatArray,
    ge2: FloatArray,
    any_e: bool,
) -> tuple[FloatArray, FloatArray]:
    r"""Gradient and Hessian of :math:`\log|A^{-1}|` for :math:`A = S^{-1}` and :math:`S_0^{-1}`.

    That is :math:`\mathrm{tr}(A\,\partial_f S)` and
    :math:`\mathrm{tr}(A\,\partial^2_{fg} S) - \mathrm{tr}(A\,\partial_f S\,A\,\partial_g S)`
    for each :math:`A` stacked in ``a_inv`` (shape ``(K, B, d, d)``; shapes ``(K, B, F)`` and
    ``(K, B, F, F)``), without forming any :math:`\partial_f S`. With
    :math:`A` symmetric, :math:`m_f` the indicator of kept factor ``f``'s dimensions,
    :math:`\partial_f S = M_f R + R'M_f` and :math:`\mathrm{tr}(X M_f Y M_g) = m_f'(X\circ
    Y')m_g`:

    - :math:`\mathrm{tr}(A\,\partial_f S) = 2\,m_f'\,\mathrm{rowsum}(A\circ R)`,
    - :math:`\mathrm{tr}(A\,\partial_f S\,A\,\partial_g S) = 2\,m_f'\,[(RA)\circ(RA)' +
      A\circ(RAR')]\,m_g` (both kept: one matrix for all pairs),
    - with the eliminated factor's :math:`D` and :math:`P = AD` (so :math:`DA = P'`):
      :math:`\mathrm{tr}(A D) = \mathrm{sum}(A\circ D)`,
      :math:`\mathrm{tr}(A\,\partial_f S\,A D) = 2\,m_f'\,\mathrm{rowsum}((RA)\circ P)`,
      :math:`\mathrm{tr}(ADAD) = \mathrm{sum}(P\circ P')`;

    the second derivatives of ``S``: :math:`\mathrm{tr}(A\,\partial^2_{fg} S) =
    2\,m_f'(A\circ\hat G)m_g` (both factors kept), :math:`2\,m_f'(A\circ\hat G_E)\lambda`
    (``g`` eliminated), :math:`\lambda'(A\circ\hat G_{EE})\lambda` (both). Two or three ``d x d``
    products per protein (batched matrix products) whatever the number of factors (the traces
    of the products :math:`A\,\partial_f S` took two per factor and pair loops); the
    element-wise sums over each factor's dimensions in one compiled pass
    (:func:`pepmix.model._kernel.trace_terms`).
    """
    from pepmix.model._kernel import trace_terms

    r = parts.r
    nb, nf = parts.onehot_e.shape
    n_a = a_inv.shape[0]
    # one batched product per kind for every A (each protein's product as on its own)
    ra = np.matmul(r, a_inv)
    rar = np.matmul(ra, np.transpose(r, (0, 2, 1)))
    ad = np.matmul(a_inv, parts.d_e) if any_e else np.zeros((n_a, nb, 0, 0))  # P = AD; DA = P'
    first = np.zeros((n_a, nb, nf))
    second = np.zeros((n_a, nb, nf, nf))
    a_inv, r, ghat, ra, rar, ad, lam, ge1, ge2 = (
        np.ascontiguousarray(x, dtype=np.float64)
        for x in (a_inv, r, ghat, ra, rar, ad, lam, ge1, ge2)
    )
    dimfactor = np.ascontiguousarray(parts.dimfactor, dtype=np.int64)
    efactor = np.ascontiguousarray(parts.efactor, dtype=np.int64)
    for k in range(n_a):
        trace_terms(
            a_inv[k],
            r,
            ghat,
            ra[k],
            rar[k],
            ad[k],
            lam,
            ge1,
            ge2,
            dimfactor,
            efactor,
            first[k],
            second[k],
        )
    return first, second
