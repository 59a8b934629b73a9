r"""Weighted problems of protein subsets, reusing what does not depend on the weights.

The robust fit (:mod:`pepmix.model.robust`) refits, round after round, the proteins whose
weights changed, each time with :func:`pepmix.model.suffstats.build_problem` on their
observations. Of the steps of that function (module docstring of
:mod:`pepmix.model.suffstats`, "Steps") only the weight sums of the eliminated levels (step 5),
the cross-products (step 7, the compiled pass) and :math:`-\sum_i \log w_i` depend on the
weights; the level counts, the degenerate-term checks, the fixed-effect rank, the layout, the
centred ``y`` and the eliminated levels' counts (steps 1-4 and part of 5) depend only on which
observations a protein has. :class:`SubsetBuilder` computes those once for all proteins and
builds the problem of any subset with any weights from their rows.

Every number is computed as :func:`~pepmix.model.suffstats.build_problem` computes it on the
subset's observations (per-protein sums in observation order, per-protein checks), so
:meth:`SubsetBuilder.build` returns the same :class:`~pepmix.model.suffstats.Problem`, bit for
bit (``tests/unit/test_subset_problem.py``). The compiled pass reads the full observation
arrays at the subset proteins' offsets instead of copies of their rows. The feature x condition
factor (the peptide-usage refit, :mod:`pepmix.model.usage`) is covered too: a protein's cells
are the same, in the same (code) order, whichever proteins share the problem, so the subset's
:class:`~pepmix.model.suffstats.UsageCells` are the full ones' segments, their observations'
cell indices renumbered by the subset's offsets (:func:`_restrict_cells`), and a cell's weight
sum is a ``bincount`` over the subset's rows in observation order, as in
:func:`~pepmix.model.suffstats._eliminated_weights`. Not covered (they fall back to
:func:`~pepmix.model.suffstats.build_problem`): the fixed run-means model, uncompressed classes
and weights that are all 1 (the unweighted problem with count classes).

Two more steps are shortened, with the same arrays as result
(``tests/unit/test_irls_cost.py``): the weight sums of the eliminated levels come from one
compiled pass over the subset's rows (:func:`pepmix.model._kernel.level_weight_sums`,
:data:`COMPILED_LEVELS`; the same additions in the same order as ``np.bincount``) when every
level is a (protein, run) cell, a feature, or a level of a run-level factor that holds one run
(the cohort's samples); and step 8 gathers each protein's dimension labels and eliminated level
codes from rows made once for all proteins (:class:`_Static`, :data:`CACHED_ASSEMBLY`; they
depend on the protein alone, its bucket dimension included) instead of deriving them per
bucket; models with the usage factor derive them per build, and their
level sums when the cells are eliminated take the array route.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from pepmix.model.design import USAGE_FACTOR, RunDesign
from pepmix.model.suffstats import (
    EliminatedLevels,
    Problem,
    UsageCells,
    _bucket,
    _check_weights,
    _chunk_buckets,
    _Chunks,
    _Classes,
    _classes,
    _dimensions,
    _eliminated_counts,
    _Fixed,
    _global_level_tables,
    _group_columns,
    _Layout,
    _Levels,
    _padded_q,
    _problem,
    _Structure,
    _structure,
    build_problem,
)

IntArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]

#: the level weight sums of cells and features in one compiled pass
#: (:func:`pepmix.model._kernel.level_weight_sums`; bit-identical); False: ``np.bincount``
COMPILED_LEVELS = True
#: the buckets' dimension labels and eliminated level codes gathered per protein from rows
#: made once (:class:`_Static`; bit-identical); False: derived per build
CACHED_ASSEMBLY = True
#: kinds of the weight sum of an eliminated level (:class:`SubsetBuilder`): a (protein, run)
#: cell, a feature, or (``_GROUPED + f``) a level of run-level factor ``f``
_CELL, _FEATURE, _GROUPED = 0, 1, 2
#: kind of a feature x condition cell (the usage factor eliminated)
_USAGE_CELL = -1
#: whether :class:`SubsetBuilder` caches the structure of models with the usage factor (False:
#: they fall back to build_problem, as before; the same problems either way)
USAGE_CACHED = True


class SubsetBuilder:
    """Builds :func:`pepmix.model.suffstats.build_problem` of protein subsets with weights.

    Parameters
    ----------
    prot, feat, run : ndarray of int, shape (N,)
        Protein (sorted ascending), feature and run codes of every observation.
    y : ndarray, shape (N,)
        log2 intensity.
    design : RunDesign
        Fixed-effect design and run-level factor codes.
    n_proteins : int
        Number of proteins.
    """

    def __init__(
        self,
        prot: IntArray,
        feat: IntArray,
        run: IntArray,
        y: FloatArray,
        design: RunDesign,
        n_proteins: int,
    ) -> None:
        self.prot, self.feat, self.run, self.y = prot, feat, run, y
        self.design = design
        self.n_proteins = n_proteins
        counts = np.bincount(prot, minlength=n_proteins)
        self.prot_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        #: whether :meth:`build` reuses the structure (else it calls build_problem)
        self.cached = not design.spec.fixed_runs and (
            USAGE_CACHED or USAGE_FACTOR not in design.spec.random
        )
        if not self.cached:
            return
        st, yc = _structure(prot, feat, run, y, design, n_proteins)
        self.st, self.yc = st, yc
        self.run32 = run.astype(np.int32)
        self.x = np.ascontiguousarray(design.x, dtype=np.float64)
        self.q_pad = _padded_q(st.lay.q_tot).astype(np.int64)
        self.e_counts = _eliminated_counts(st.lay, st.lv)
        self.e_offset = np.concatenate([[0], np.cumsum(st.lay.n_e)]).astype(np.int64)
        self.e_kind, self.e_col = _level_sources(st)
        #: the eliminated levels as cells or features (None: some level of a run-level factor
        #: groups several runs): their weight sums in one compiled pass (:meth:`_level_weights`)
        self.cell_sources = _cell_sources(st, design, self.e_kind, self.e_col)
        self.feat64 = np.asarray(feat, dtype=np.int64)  # no copy where intp is int64
        self.n_feat = int(feat.max()) + 1 if feat.size else 0
        #: per-protein rows of the bucket assembly (made at the first build)
        self.static: _Static | None = None

    def build(self, subset: IntArray, weights: FloatArray) -> Problem:
        """The problem of the proteins ``subset`` (ascending codes; they become 0, 1, ... in
        it) with the observation weights ``weights`` (shape (N,), all observations): the
        problem :func:`pepmix.model.suffstats.build_problem` builds from the subset's rows."""
        rows = _segments(self.prot_start, subset)
        w_sub = weights[rows]
        if not self.cached or _check_weights(w_sub, rows.size) is None:
            local = np.full(self.n_proteins, -1, dtype=np.intp)
            local[subset] = np.arange(subset.size)
            return build_problem(
                local[self.prot[rows]],
                self.feat[rows],
                self.run[rows],
                self.y[rows],
                self.design,
                n_proteins=subset.size,
                weights=w_sub,
            )
        n_sub = subset.size
        local_prot = np.repeat(np.arange(n_sub), self.st.lv.n_obs[subset])
        cells = self.st.lv.cells
        st = _restrict(self.st, subset, _restrict_cells(cells, subset, rows, local_prot))
        levels = _segments(self.e_offset, subset)
        e_wsum = self._level_weights(subset, levels, local_prot, rows, weights)
        cls = _classes(
            self.e_counts[levels].astype(np.intp), e_wsum, st.lay.n_e, rows.size, True, True
        )
        ch = _chunk_buckets(st.lay, cls, st.fx.fittable, self.design.n_fixed)
        flats = self._accumulate(subset, st, ch, weights)
        neg_logw = -np.bincount(local_prot, weights=np.log(w_sub), minlength=n_sub)
        if not CACHED_ASSEMBLY or cells is not None:  # usage cells: derived per build
            return _problem(st, cls, ch, flats, neg_logw.astype(np.float64))
        if self.static is None:
            self.static = _Static(self.st, self.q_pad, self.e_offset, self.design.n_fixed)
        neg = neg_logw.astype(np.float64)
        return self._assemble(self.static, subset, (st, cls, ch), flats, neg)

    def _assemble(
        self,
        static: _Static,
        subset: IntArray,
        steps: tuple[_Structure, _Classes, _Chunks],
        flats: tuple[FloatArray, FloatArray, FloatArray],
        neg_logw: FloatArray,
    ) -> Problem:
        """:func:`pepmix.model.suffstats._problem` (step 8, the buckets) with each protein's
        dimension labels and eliminated level codes gathered from :class:`_Static` instead of
        derived again: the same arrays."""
        st, cls, ch = steps
        empty = _problem(st, cls, _Chunks([], *_no_chunks(ch)), flats, neg_logw)
        erow_flat = flats[2]
        for members, d, c_max in ch.chunks:
            full = subset[members]
            dims = _segments(static.dim_offset, full)
            nb = members.size
            dimfactor = static.dimfactor[dims].reshape(nb, d)
            empty.buckets.append(
                (members, _bucket(empty, members, c_max, dimfactor, cls, ch, flats))
            )
            empty.dim_level.append(static.dim_level[dims].reshape(nb, d))
            counts = st.lay.n_e[members]
            total = int(counts.sum())
            start = int(ch.erow_offset[members[0]])
            local = _segments(cls.e_offset, members)
            empty.levels.append(
                EliminatedLevels(
                    rows=erow_flat[start : start + total * d].reshape(total, d),
                    position=np.repeat(np.arange(nb), counts),
                    count=cls.e_counts[local].astype(np.intp),
                    level=static.e_level[_segments(self.e_offset, full)],
                    wsum=cls.e_wsum[local].astype(np.float64),
                )
            )
        return empty

    def _level_weights(
        self,
        subset: IntArray,
        levels: IntArray,
        local_prot: IntArray,
        rows: IntArray,
        weights: FloatArray,
    ) -> FloatArray:
        """Weight sum of every eliminated level of ``subset`` (``levels``: their indices in
        the full order), summed as :func:`pepmix.model.suffstats._eliminated_weights` sums
        (with :attr:`compiled_levels`: by :func:`pepmix.model._kernel.level_weight_sums`, the
        same additions in the same order; a level of a run-level factor that holds one run is
        that run's cell, whose sum is the level's)."""
        if COMPILED_LEVELS and self.cell_sources is not None:
            from pepmix.model._kernel import level_weight_sums

            out = np.zeros(levels.size)
            level_weight_sums(
                self.prot_start, subset.astype(np.int64), self.run32, self.feat64,
                np.ascontiguousarray(weights, dtype=np.float64), self.e_offset,
                self.cell_sources[0], self.cell_sources[1], self.st.lv.pr_counts.shape[1],
                self.n_feat, out,
            )  # fmt: skip
            return out
        w_sub = weights[rows]
        lv = self.st.lv
        n_sub = subset.size
        n_runs = lv.pr_counts.shape[1]
        pr_w = np.bincount(
            local_prot.astype(np.int64) * n_runs + self.run[rows],
            weights=w_sub,
            minlength=n_sub * n_runs,
        ).reshape(n_sub, n_runs)
        kind = self.e_kind[levels]
        col = self.e_col[levels]
        e_local = np.repeat(np.arange(n_sub), self.st.lay.n_e[subset])
        out = np.zeros(levels.size)
        sel = kind == _CELL
        out[sel] = pr_w[e_local[sel], col[sel]]
        sel = kind == _FEATURE
        if sel.any():
            feat_w = np.bincount(self.feat[rows], weights=w_sub)
            out[sel] = feat_w[col[sel]]
        sel = kind == _USAGE_CELL
        if sel.any() and lv.cells is not None:
            n_cells = lv.cells.code.size
            cell_w = np.bincount(lv.cells.index[rows], weights=w_sub, minlength=n_cells)
            out[sel] = cell_w[col[sel]]
        for f, counts in lv.level_counts.items():
            sel = kind == _GROUPED + f
            if sel.any():
                codes = self.design.factor_codes[lv.factors[f]]
                grouped = _group_columns(pr_w, codes, counts.shape[1], np.float64)
                out[sel] = grouped[e_local[sel], col[sel]]
        return out

    def _accumulate(
        self, subset: IntArray, st: _Structure, ch: _Chunks, weights: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Step 7 for the subset: the compiled pass over the full observation arrays at the
        subset proteins' offsets (protein codes of the full problem), into the subset's
        layout ``ch`` (rank-one classes: no class matrices)."""
        from pepmix.model._kernel import accumulate

        full = self.st
        n = self.n_proteins
        g_offset = np.zeros(n, dtype=np.int64)
        g_offset[subset] = ch.g_offset
        erow_offset = np.zeros(n, dtype=np.int64)
        erow_offset[subset] = ch.erow_offset
        g_flat = np.zeros(ch.sizes[0])
        erow_flat = np.zeros(ch.sizes[2])
        cells = full.lv.cells
        accumulate(
            full.lv.prot_start,
            subset[ch.order].astype(np.int64),
            full.lv.feat_local,
            self.run32,
            self.yc,
            self.x,
            full.fx.xkeep,
            full.lv.run_codes,
            full.lv.local_tables,
            full.lay.is_k,
            full.lay.k_offset.astype(np.int64),
            full.lay.kernel_e.astype(np.int64),
            self.q_pad,
            g_offset,
            np.zeros(n, dtype=np.int64),
            self.e_offset,
            np.zeros(max(int(self.e_offset[-1]), 1), dtype=np.int64),
            g_flat,
            np.zeros(0),
            erow_flat,
            erow_offset,
            np.ascontiguousarray(weights, dtype=np.float64),
            np.zeros(0, dtype=np.int32) if cells is None else cells.local,
        )
        del st
        return g_flat, np.zeros(0), erow_flat


def _segments(starts: NDArray[np.int64], subset: IntArray) -> IntArray:
    """Indices ``starts[p]:starts[p + 1]`` of every ``p`` in ``subset``, concatenated."""
    lo = starts[subset]
    n = starts[subset + 1] - lo
    total = int(n.sum())
    if total == 0:
        return np.zeros(0, dtype=np.intp)
    first = np.cumsum(n) - n
    return np.asarray(np.repeat(lo - first, n) + np.arange(total), dtype=np.intp)


def _level_sources(st: _Structure) -> tuple[NDArray[np.int8], IntArray]:
    """For every eliminated level (full order): which weight sum it is (:data:`_CELL`,
    :data:`_FEATURE`, ``_GROUPED + f``) and its column (run, feature code, level code)."""
    lv, lay = st.lv, st.lay
    n_f = len(lv.factors)
    kind = np.zeros(int(lay.n_e.sum()), dtype=np.int8)
    col = np.zeros(kind.size, dtype=np.intp)
    e_protein = np.repeat(np.arange(lv.n_proteins), lay.n_e)
    e_offset = np.concatenate([[0], np.cumsum(lay.n_e)])
    rank = np.arange(kind.size) - e_offset[e_protein]
    e_of = lay.kernel_e[e_protein]
    for e in np.unique(e_of).tolist():
        sel = e_of == e
        if e == n_f:
            kind[sel] = _CELL
            table = lv.pr_counts
        elif lv.factors[e] == "feature":
            kind[sel] = _FEATURE
            col[sel] = lv.first_feat[e_protein[sel]] + rank[sel]
            continue
        elif lv.factors[e] == USAGE_FACTOR and lv.cells is not None:
            kind[sel] = _USAGE_CELL  # the protein's cells, in order: their global indices
            col[sel] = lv.cells.first[e_protein[sel]] + rank[sel]
            continue
        else:
            kind[sel] = _GROUPED + e
            table = lv.level_counts[e]
        # the protein's observed levels in order: the rank-th nonzero column of its row
        rows, cols = np.nonzero(table > 0)
        first = np.searchsorted(rows, np.arange(lv.n_proteins))
        col[sel] = cols[first[e_protein[sel]] + rank[sel]]
    return kind, col


class _Static:
    """Rows of the bucket assembly that depend on the protein alone, for all proteins: the
    factor and global level code of each dimension (``d`` = padded random block, fixed effects
    and ``y``: the protein's bucket dimension in any subset) and the global code of each
    eliminated level (:func:`pepmix.model.suffstats._dimensions`,
    :func:`~pepmix.model.suffstats._bucket_levels`)."""

    def __init__(
        self, st: _Structure, q_pad: NDArray[np.int64], e_offset: NDArray[np.int64], n_x: int
    ) -> None:
        lv, lay = st.lv, st.lay
        n_prot = lv.n_proteins
        d_of = (q_pad + n_x + 1).astype(np.int64)
        self.dim_offset = np.concatenate([[0], np.cumsum(d_of)]).astype(np.int64)
        total = int(self.dim_offset[-1])
        self.dimfactor = np.zeros(total, dtype=np.intp)
        self.dim_level = np.zeros(total, dtype=np.intp)
        global_levels = _global_level_tables(lv.level_counts, n_prot)
        fit_idx = np.flatnonzero(st.fx.fittable)
        for d in np.unique(d_of[fit_idx]).tolist():
            members = fit_idx[d_of[fit_idx] == d]
            factor, level = _dimensions(members, d, n_x, lv, lay, global_levels)
            rows = _segments(self.dim_offset, members)
            self.dimfactor[rows] = factor.ravel()
            self.dim_level[rows] = level.ravel()
        self.e_level = np.zeros(int(e_offset[-1]), dtype=np.intp)
        n_f = len(lv.factors)
        for p in np.flatnonzero(lay.kernel_e >= 0).tolist():
            e = int(lay.kernel_e[p])
            if e == n_f:
                codes = np.flatnonzero(lv.pr_counts[p] > 0)
            elif lv.factors[e] == "feature":
                codes = lv.first_feat[p] + np.arange(lay.n_e[p])
            else:
                codes = global_levels[e][p]
            self.e_level[e_offset[p] : e_offset[p + 1]] = codes


def _no_chunks(ch: _Chunks) -> tuple[IntArray, IntArray, NDArray[np.int64], NDArray[np.int64],
                                     NDArray[np.int64], tuple[int, int, int]]:  # fmt: skip
    """The fields of ``ch`` after ``chunks``."""
    return ch.order, ch.q_pad, ch.g_offset, ch.w_offset, ch.erow_offset, ch.sizes


def _cell_sources(
    st: _Structure, design: RunDesign, kind: NDArray[np.int8], col: IntArray
) -> tuple[NDArray[np.int8], NDArray[np.int64]] | None:
    """The sources of :func:`_level_sources` with every level of a run-level factor that holds
    exactly one run replaced by that run's cell (:data:`_CELL`, its run): the same weight sum
    (the sum over one column is that column). None when a level in use holds several runs."""
    kind = kind.copy()
    col64 = col.astype(np.int64)
    for f, counts in st.lv.level_counts.items():
        sel = kind == _GROUPED + f
        if not sel.any():
            continue
        codes = design.factor_codes[st.lv.factors[f]]
        if np.bincount(codes, minlength=counts.shape[1]).max() > 1:
            return None
        run_of = np.full(counts.shape[1], -1, dtype=np.int64)
        run_of[codes] = np.arange(codes.size)
        kind[sel] = _CELL
        col64[sel] = run_of[col64[sel]]
    if np.any(kind >= _GROUPED) or np.any(kind == _USAGE_CELL) or np.any(col64 < 0):
        return None
    return kind, col64


def _restrict_cells(
    cells: UsageCells | None, subset: IntArray, rows: IntArray, local_prot: IntArray
) -> UsageCells | None:
    """The usage cells of the proteins ``subset`` (observations ``rows`` of all, their protein
    ``local_prot`` in the subset), as :func:`pepmix.model.suffstats.usage_cells` finds them on
    the subset's rows: each protein's cells in the same order, indices renumbered."""
    if cells is None:
        return None
    n_cells = np.diff(cells.first)[subset]
    first = np.concatenate([[0], np.cumsum(n_cells)]).astype(np.intp)
    seg = _segments(cells.first.astype(np.int64), subset)
    local = cells.local[rows]
    return UsageCells(
        first=first,
        code=cells.code[seg],
        count=cells.count[seg],
        index=(first[local_prot] + local).astype(np.intp),
        local=local,
    )


def _restrict(st: _Structure, subset: IntArray, cells: UsageCells | None = None) -> _Structure:
    """The structure of the proteins ``subset`` (per-protein rows; the observation-level
    fields ``prot_start``, ``feat_local`` and ``local_tables`` stay those of all proteins: only
    :meth:`SubsetBuilder._accumulate` reads them, with the full codes); ``cells`` (default
    None: the model has no usage factor) are the subset's usage cells (:func:`_restrict_cells`;
    the kernel reads the full ones' ``local``)."""
    lv, fx, lay = st.lv, st.fx, st.lay
    n_obs = lv.n_obs[subset]
    sub_lv = _Levels(
        n_proteins=int(subset.size),
        factors=lv.factors,
        n_obs=n_obs,
        prot_start=lv.prot_start,
        first_feat=lv.first_feat[subset],
        feat_local=lv.feat_local,
        pr_counts=lv.pr_counts[subset],
        n_levels=lv.n_levels[subset],
        n_feat=lv.n_feat[subset],
        feature_counts=lv.feature_counts,
        level_counts={f: c[subset] for f, c in lv.level_counts.items()},
        run_codes=lv.run_codes,
        local_tables=lv.local_tables,
        cells=cells,
    )
    sub_fx = _Fixed(
        xkeep=fx.xkeep[subset],
        nu=fx.nu[subset],
        fittable=fx.fittable[subset],
        runs_seen=fx.runs_seen[subset],
    )
    sub_lay = _Layout(
        efactor=lay.efactor[subset],
        is_k=lay.is_k[subset],
        q_tot=lay.q_tot[subset],
        k_offset=lay.k_offset[subset],
        kernel_e=lay.kernel_e[subset],
        n_e=lay.n_e[subset],
    )
    return _Structure(
        lv=sub_lv,
        active=st.active[subset],
        detail=[st.detail[i] for i in subset.tolist()],
        fx=sub_fx,
        lay=sub_lay,
        ybar=st.ybar[subset],
        fixed_runs=st.fixed_runs,
    )
