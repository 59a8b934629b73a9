"""The cheaper problem building of the robust fit (tenth session) gives the same numbers, bit
for bit.

- :func:`pepmix.model._kernel.accumulate` (per-protein lookups hoisted, the lower-triangle
  entry without a comparison where the offsets ascend) fills the arrays the per-observation
  loop it replaced filled (:func:`_reference`, that loop in plain Python);
- the first problem of a robust fit built by the refits'
  :class:`pepmix.model.subset_problem.SubsetBuilder` (``fit.FIRST_FROM_BUILDER``) is the
  problem :func:`pepmix.model.suffstats.build_problem` builds, and the fits are the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from pepmix.model import _kernel, subset_problem, suffstats
from pepmix.model import fit as fit_module
from pepmix.model.design import ModelSpec, build_run_design
from pepmix.model.fit import encode, fit_proteins
from pepmix.model.robust import _PROTEIN_ARRAYS, initial_weights
from pepmix.model.suffstats import build_problem

from .engine_data import make_design, make_table
from .simulate_da import simulate
from .test_engine import DESIGNS
from .test_subset_problem import _assert_same


def _reference(*args: Any) -> None:
    """The loop of :func:`pepmix.model._kernel.accumulate` before the tenth session, in plain
    Python (every addition in the same order)."""
    (prot_start, proteins, feat_local, run, y, x, xkeep, run_codes, local_tables, is_k,
     k_offset, e_factor, q_pad, g_offset, w_offset, e_offset, e_class, g_flat, w_flat,
     erow_flat, erow_offset, weight, cell_local) = args  # fmt: skip
    weighted = weight.size > 0
    n_f, n_x = is_k.shape[1], x.shape[1]
    for p in proteins.tolist():
        d = int(q_pad[p]) + n_x + 1
        g0, e0 = int(g_offset[p]), int(erow_offset[p])
        for i in range(int(prot_start[p]), int(prot_start[p + 1])):
            r = int(run[i])
            sw = np.sqrt(weight[i]) if weighted else 1.0
            idx, val = [], []
            for f in range(n_f):
                if not is_k[p, f]:
                    continue
                if run_codes[f, 0] == -1:
                    level = feat_local[i]
                elif run_codes[f, 0] == -2:
                    level = cell_local[i]
                else:
                    level = local_tables[f, p, run_codes[f, r]]
                idx.append(int(k_offset[p, f] + level))
                val.append(sw)
            for j in range(n_x):
                if xkeep[p, j] and x[r, j] != 0.0:
                    idx.append(int(q_pad[p]) + j)
                    val.append(x[r, j] * sw)
            idx.append(d - 1)
            val.append(y[i] * sw)
            for a in range(len(idx)):
                for b in range(a + 1):
                    hi, lo = max(idx[a], idx[b]), min(idx[a], idx[b])
                    g_flat[g0 + hi * d + lo] += val[a] * val[b]
            ef = e_factor[p]
            if ef >= 0:
                if run_codes[ef, 0] == -1:
                    elevel = feat_local[i]
                elif run_codes[ef, 0] == -2:
                    elevel = cell_local[i]
                else:
                    elevel = local_tables[ef, p, run_codes[ef, r]]
                for a in range(len(idx)):
                    erow_flat[e0 + elevel * d + idx[a]] += sw * val[a]
        for a in range(d):
            for b in range(a):
                g_flat[g0 + b * d + a] = g_flat[g0 + a * d + b]
        if ef < 0 or w_flat.size == 0:
            continue
        w0 = int(w_offset[p])
        for j in range(int(e_offset[p + 1] - e_offset[p])):
            c = int(e_class[e_offset[p] + j])
            base = e0 + j * d
            for a in range(d):
                va = erow_flat[base + a]
                if va == 0.0:
                    continue
                for b in range(d):
                    w_flat[w0 + c * d * d + a * d + b] += va * erow_flat[base + b]


def _kernel_calls(monkeypatch: pytest.MonkeyPatch, build: Any) -> list[tuple[Any, ...]]:
    """The arguments of every :func:`~pepmix.model._kernel.accumulate` call of ``build()``."""
    calls: list[tuple[Any, ...]] = []
    inner = _kernel.accumulate

    def grab(*args: Any) -> None:
        calls.append(args)
        inner(*args)

    monkeypatch.setattr(_kernel, "accumulate", grab)
    build()
    monkeypatch.setattr(_kernel, "accumulate", inner)
    return calls


def _fresh(args: tuple[Any, ...]) -> list[Any]:
    """The arguments with zeroed outputs (``g_flat``, ``w_flat``, ``erow_flat``)."""
    out = list(args)
    for k in (17, 18, 19):
        out[k] = np.zeros_like(args[k])
    return out


def _same_as_reference(args: tuple[Any, ...]) -> None:
    got, want = _fresh(args), _fresh(args)
    _kernel.accumulate(*got)
    _reference(*want)
    for k in (17, 18, 19):  # bit for bit
        assert np.array_equal(got[k].view(np.int64), want[k].view(np.int64)), k


@pytest.mark.parametrize("name", ["feature+sample", "nested", "batch_random", "feature_only"])
@pytest.mark.parametrize("weighted", [False, True])
def test_accumulate_equals_the_observation_loop(
    name: str, weighted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unweighted and weighted problems (count classes and rank-one rows), full and through
    the subset builder: ``G``, the class sums and the eliminated rows bit for bit."""
    sheet, design = make_design(**DESIGNS[name])
    enc = encode(make_table(design, sheet, 12, 3), design)
    n_prot = len(enc.proteins)
    rng = np.random.default_rng(3)
    w = np.where(rng.random(enc.y.size) < 0.4, rng.uniform(0.05, 1.0, enc.y.size), 1.0)
    weights = w if weighted else None

    def build() -> None:
        build_problem(enc.prot, enc.feat, enc.run, enc.y, design, n_prot, weights=weights)
        builder = subset_problem.SubsetBuilder(enc.prot, enc.feat, enc.run, enc.y, design, n_prot)
        builder.build(np.sort(rng.choice(n_prot, 5, replace=False)), w)

    calls = _kernel_calls(monkeypatch, build)
    assert len(calls) >= 2
    for args in calls:
        _same_as_reference(args)


def test_accumulate_with_covariates_usage_cells_and_descending_offsets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fixed-effect values other than 0 and 1 (a covariate), the feature x condition factor,
    and random-block offsets that do not ascend with the factor order (the path with the
    comparison): the same arrays as the observation loop."""
    table, sheet, _ = simulate(n_prot=8, n_per=3, seed=2, frac_de=0.5)
    sheet = sheet.assign(cov=np.linspace(-1.5, 2.0, len(sheet)))
    spec = ModelSpec(random=("feature", "sample", "feature:condition"), covariates=("cov",))
    design = build_run_design(sheet, spec)
    enc = encode(table, design)
    w = np.random.default_rng(1).uniform(0.1, 1.0, enc.y.size)
    calls = _kernel_calls(
        monkeypatch,
        lambda: build_problem(
            enc.prot, enc.feat, enc.run, enc.y, design, len(enc.proteins), weights=w
        ),
    )
    (args,) = calls
    assert np.any((args[5] != 0.0) & (args[5] != 1.0))  # a covariate column
    assert np.any(args[7][:, 0] == -2)  # the usage factor
    _same_as_reference(args)
    # two kept factors per protein with their blocks swapped: offsets descend
    is_k, k_offset, q_pad = args[9], args[10].copy(), args[12]
    two = np.flatnonzero(is_k.sum(axis=1) == 2)
    assert two.size
    for p in two.tolist():
        f1, f2 = np.flatnonzero(is_k[p])
        size1 = k_offset[p, f2] - k_offset[p, f1]
        size2 = q_pad[p] - k_offset[p, f2]  # the last block up to the padding, at most
        k_offset[p, f1], k_offset[p, f2] = size2, 0
        assert size1 + size2 <= q_pad[p]
    swapped = list(args)
    swapped[10] = k_offset
    _same_as_reference(tuple(swapped))


@pytest.mark.parametrize("method", ["huber", "bisquare"])
@pytest.mark.parametrize(
    "random", [("feature", "sample"), ("feature", "sample", "feature:condition")]
)
def test_first_problem_from_the_builder(
    method: str, random: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The builder's problem of all proteins is ``build_problem``'s, and robust fits with and
    without ``FIRST_FROM_BUILDER`` are the same, bit for bit."""
    table, sheet, _ = simulate(n_prot=120, n_per=3, seed=9, frac_de=0.2)
    design = build_run_design(sheet, ModelSpec(random=random))
    enc = encode(table, design)
    n_prot = len(enc.proteins)
    weights, _ = initial_weights(enc, method)
    builder = subset_problem.SubsetBuilder(enc.prot, enc.feat, enc.run, enc.y, design, n_prot)
    _assert_same(
        build_problem(enc.prot, enc.feat, enc.run, enc.y, design, n_prot, weights=weights),
        builder.build(np.arange(n_prot), weights),
    )
    fits = []
    for on in (False, True):
        monkeypatch.setattr(fit_module, "FIRST_FROM_BUILDER", on)
        fits.append(fit_proteins(table, design, [("B - A", "B", "A")], robust=method))
    old, new = fits
    for name in _PROTEIN_ARRAYS:
        assert np.array_equal(getattr(old, name), getattr(new, name), equal_nan=True), name
    assert old.weights is not None and new.weights is not None
    assert np.array_equal(old.weights, new.weights)
    assert (new.weights < 1).mean() > 0.02  # the weights were iterated, not all 1
    assert old.detail == new.detail
    pd.testing.assert_frame_equal(old.blups, new.blups, check_exact=True)


@pytest.mark.parametrize("name", ["feature+sample", "nested", "feature_only"])
def test_compiled_padding_builds_the_same_problem(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank-one buckets with the padded rows and class values copied by the compiled pass
    (``suffstats.COMPILED_PADDING``) and by boolean masks: every field, bit for bit (proteins
    with different numbers of eliminated levels share buckets: some runs are missing)."""
    sheet, design = make_design(**DESIGNS[name])
    table = make_table(design, sheet, 40, 3)
    table = table.sample(frac=0.8, random_state=2).sort_index()  # unequal level counts
    enc = encode(table, design)
    n_prot = len(enc.proteins)
    rng = np.random.default_rng(5)
    weights = rng.uniform(0.05, 1.0, enc.y.size)
    built = []
    for on in (False, True):
        monkeypatch.setattr(suffstats, "COMPILED_PADDING", on)
        built.append(
            build_problem(enc.prot, enc.feat, enc.run, enc.y, design, n_prot, weights=weights)
        )
    old, new = built
    n_cls = [b.cls_n.shape[1] for _, b in new.buckets]
    assert any(np.any(b.cls_n == 0.0) for _, b in new.buckets), n_cls  # padding present
    _assert_same(old, new)
