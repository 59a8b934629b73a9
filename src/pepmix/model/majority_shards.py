r"""The feature majority rule's prior in sharded fits: each fit job fits it itself.

The rule (:mod:`pepmix.model.majority`) moderates each protein's pure-error variance
:math:`s^2` (df :math:`\nu`) by limma's ``squeezeVar`` prior :math:`(d_0, s_0^2)` (Smyth 2004,
*Stat Appl Genet Mol Biol* 3:3), fitted on the :func:`pepmix.model.majority.prior_sample` of
*all* proteins: the first :data:`pepmix.model.majority.PRIOR_SAMPLE` *candidates* (proteins the
rule tests: :data:`pepmix.model.majority.MIN_SHARED` or more features observed in two or more
conditions) by increasing CRC-32 of the name. With several shards, every fit job decides that
sample from all shards' ``features.parquet`` (:func:`shard_sample`: candidacy depends on each
protein's own rows), computes the pure-error variances of the sampled proteins of the *other*
shards (their saturated fits, protein by protein, as those shards' own jobs compute them) and
takes those of its own sampled proteins from the saturated fits it makes anyway
(:meth:`ShardSample.prior`, called by :func:`pepmix.model.majority.majority_exclusions`). The
variances enter ``squeezeVar`` in protein-name order, the order of the one-job fit, so the prior
is bit for bit the one-job prior: the per-protein saturated fits do not depend on which other
proteins are in the batch (each protein's rows, in the same order, are fitted alone), which
``tests/unit/test_majority_shards.py`` checks.

The fit job reads the other shards as Arrow tables (:func:`pepmix.stages.files.read_model_arrow`):
candidacy from the dictionary codes, only the sampled proteins' rows converted to pandas (the
same rows, categories and order as from the whole converted table, so the same fits). Candidacy
counts each protein's features seen in two conditions by one flag per feature code and
condition when every feature code is one protein's (:func:`shared_features`; else by hashing
the distinct protein-feature-condition triples).

This replaced a serial step of the prepare (or shard) job, which fitted the prior on the whole
table before the fit jobs could start (``benchmarks/README.md``, "The majority prior in the fit
shards").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from pepmix.model import majority
from pepmix.model.design import RunDesign
from pepmix.model.fit import encode

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ShardSample:
    """The prior's sample of all shards' proteins and the pure-error variances of those in the
    other shards.

    Attributes
    ----------
    sample : frozenset of str
        Every sampled protein (all shards).
    n_own : int
        How many of them are in this job's shard.
    names : ndarray of str
        The other shards' sampled proteins.
    s2, df : ndarray
        Their pure-error variances and df (0 and 0 without pure error, as
        :func:`pepmix.model.majority.majority_exclusions` has them).
    """

    sample: frozenset[str]
    n_own: int
    names: NDArray[np.object_]
    s2: FloatArray
    df: FloatArray

    def prior(
        self, names: NDArray[np.object_], s2: FloatArray, df: FloatArray
    ) -> tuple[float, float]:
        """``(df_prior, var_prior)`` (:func:`pepmix.model.majority.variance_prior`) of the
        sample: this shard's candidates ``names`` (variances ``s2``, df ``df``) in the sample
        with the other shards' ones, in protein-name order (that of the one-job fit).

        Raises
        ------
        ValueError
            If this shard's candidates are not the ones the sample was drawn from.
        """
        own = np.fromiter((str(n) in self.sample for n in names), dtype=bool, count=len(names))
        if int(own.sum()) != self.n_own:
            raise ValueError(
                f"the majority prior's sample has {self.n_own} proteins of this shard, "
                f"its candidates {int(own.sum())}"
            )
        every = np.concatenate([np.asarray(names, dtype=object)[own], self.names]).astype(str)
        order = np.argsort(every, kind="stable")
        s2_all = np.concatenate([s2[own], self.s2])[order]
        df_all = np.concatenate([df[own], self.df])[order]
        return majority.variance_prior(s2_all, df_all)


def shard_sample(
    own: pd.DataFrame, others: Iterable[pd.DataFrame | pa.Table], design: RunDesign
) -> ShardSample:
    """The prior's sample of this shard's table ``own`` and the other shards' tables
    ``others`` (``results/model/shards/K-of-N/features.parquet`` as their fit jobs read them,
    :func:`pepmix.stages.files.read_model_input`, or that read's Arrow table,
    :func:`pepmix.stages.files.read_model_arrow`: only the kept rows are converted to pandas;
    an iterable that reads them one at a time, e.g. a generator, keeps one in memory), with the
    other shards' sampled proteins' pure-error variances (module docstring).

    The other shards are read one at a time; of each, only the rows of the proteins in the
    sample of the candidates seen so far are kept (at most
    :data:`pepmix.model.majority.PRIOR_SAMPLE` proteins in all): a protein of the final sample
    is in the sample of every subset of the candidates that holds it."""
    names = candidate_names(own, design)
    shard_of = np.zeros(names.size, dtype=np.intp)
    n_candidates = names.size
    kept: dict[int, pd.DataFrame | pa.Table] = {}
    n_others = 0
    for k, table in enumerate(others, start=1):
        n_others = k
        found = candidate_names(table, design)
        n_candidates += found.size
        names = np.concatenate([names, found])
        shard_of = np.concatenate([shard_of, np.full(found.size, k, dtype=np.intp)])
        picked = majority.prior_sample(names)
        names, shard_of = names[picked], shard_of[picked]
        kept[k] = table
        for j in kept:  # only the rows of the sample so far
            kept[j] = _rows_of(kept[j], names[shard_of == j])
        del table
    other_names, s2, df = _variances(kept, design)
    del kept
    # the Arrow pool keeps the freed memory of the other shards' reads (~0.2 GB on the cohort),
    # which the fit that follows would add to its own peak: returned now
    pa.default_memory_pool().release_unused()
    n_own = int(np.sum(shard_of == 0))
    log.info(
        "feature majority rule's prior: %d sampled proteins of %d candidates in %d shards "
        "(%d in this one)",
        names.size, n_candidates, n_others + 1, n_own,
    )  # fmt: skip
    return ShardSample(
        sample=frozenset(str(x) for x in names),
        n_own=n_own,
        names=other_names,
        s2=s2,
        df=df,
    )


def _variances(
    kept: dict[int, pd.DataFrame | pa.Table], design: RunDesign
) -> tuple[NDArray[np.object_], FloatArray, FloatArray]:
    """Names, pure-error variances and df of the proteins of the tables ``kept`` (every one a
    candidate: :func:`pepmix.model.majority.majority_exclusions`'s saturated fits)."""
    n_cond = max(len(design.conditions), 1)
    names: list[NDArray[np.object_]] = [np.zeros(0, dtype=object)]
    s2: list[FloatArray] = [np.zeros(0)]
    df: list[FloatArray] = [np.zeros(0)]
    for rows in kept.values():
        if not len(rows) or n_cond < 2:
            continue
        enc = encode(rows.to_pandas() if isinstance(rows, pa.Table) else rows, design)
        _, candidates, _, s2_k, df_k = majority._pure_error(enc, design, n_cond)
        if candidates.size != len(enc.proteins):
            raise ValueError("the majority prior's sample: a sampled protein is no candidate")
        names.append(np.asarray(enc.proteins, dtype=object))
        s2.append(s2_k)
        df.append(df_k)
    return np.concatenate(names), np.concatenate(s2), np.concatenate(df)


def candidate_names(table: pd.DataFrame | pa.Table, design: RunDesign) -> NDArray[np.object_]:
    """Names of the proteins of ``table`` (``protein, feature, run``; pandas or Arrow) the rule
    tests: :data:`pepmix.model.majority.MIN_SHARED` or more features observed in two or more
    conditions (:func:`pepmix.model.majority.count_candidates`'s rule, from the columns'
    codes without encoding the table)."""
    n_cond = max(len(design.conditions), 1)
    if n_cond < 2 or not len(table):
        return np.zeros(0, dtype=object)
    prot, prot_names = _codes(table, "protein")
    feat, feat_names = _codes(table, "feature")
    run, run_names = _codes(table, "run")
    lookup = pd.Index(design.runs).get_indexer(pd.Index(run_names))
    if np.any(lookup < 0):
        raise ValueError("runs not in the design")
    cond = np.asarray(design.condition_code, dtype=np.int64)[lookup][run]
    per_protein = shared_features(prot, feat, cond, len(prot_names), len(feat_names), n_cond)
    return np.asarray(prot_names, dtype=object)[per_protein >= majority.MIN_SHARED]


def shared_features(
    prot: NDArray[np.int64],
    feat: NDArray[np.int64],
    cond: NDArray[np.int64],
    n_prot: int,
    n_feat: int,
    n_cond: int,
) -> NDArray[np.int64]:
    """Per protein code ``0..n_prot-1``, how many of its features are observed in two or more
    conditions (rows: protein, feature and condition codes, features ``0..n_feat-1`` may be
    named alike in several proteins: each protein-feature pair counts).

    When every feature code is in one protein only (the workflow's tables: a feature names its
    protein's precursor or peptide), a flag per feature and condition counts them; otherwise the
    distinct protein-feature-condition triples are hashed. Both count the same pairs."""
    coded = not feat.size or (int(feat.min()) >= 0 and int(prot.min()) >= 0)  # no missing
    owner = np.full(max(n_feat, 1), -1, dtype=np.int64)
    if coded:
        owner[feat] = prot
    if coded and np.array_equal(owner[feat], prot):  # one protein per feature code
        seen = np.zeros((max(n_feat, 1), n_cond), dtype=bool)
        seen[feat, cond] = True
        shared = (seen.sum(axis=1) >= 2) & (owner >= 0)
        return np.bincount(owner[shared], minlength=n_prot)
    pair = prot * max(n_feat, 1) + feat
    cells = pd.unique(pair * n_cond + cond)
    pairs, n_seen = np.unique(cells // n_cond, return_counts=True)
    return np.bincount(pairs[n_seen >= 2] // max(n_feat, 1), minlength=n_prot)


def _codes(
    table: pd.DataFrame | pa.Table, name: str
) -> tuple[NDArray[np.int64], NDArray[np.object_]]:
    """Integer codes and labels of a column (categoricals and Arrow dictionaries through their
    codes; an Arrow column's chunks are given one dictionary first unless they have one, as a
    Parquet file's row groups written from one categorical do)."""
    if isinstance(table, pa.Table):
        column = table.column(name)
        if pa.types.is_dictionary(column.type) and column.num_chunks and not column.null_count:
            first = column.chunks[0].dictionary
            if not all(c.dictionary.equals(first) for c in column.chunks):
                column = column.unify_dictionaries()
            codes = np.concatenate(
                [np.asarray(c.indices.to_numpy(), dtype=np.int64) for c in column.chunks]
            )
            labels = column.chunks[0].dictionary.to_numpy(zero_copy_only=False)
            return codes, np.asarray(labels, dtype=object)
        return _codes(table.select([name]).to_pandas(), name)
    series = table[name]
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.array.codes, dtype=np.int64)
        return codes, np.asarray(series.cat.categories, dtype=object)
    raw, labels = pd.factorize(series)
    return raw.astype(np.int64), np.asarray(labels, dtype=object)


def _rows_of(table: pd.DataFrame | pa.Table, names: NDArray[np.object_]) -> pd.DataFrame | pa.Table:
    """The rows of the proteins ``names`` of ``table``, in the table's order, categories
    (dictionaries) unchanged (so :func:`pepmix.model.fit.encode` orders each protein's rows and
    features as for the whole table: that shard's own fit job's saturated fits, bit for bit)."""
    wanted = {str(x) for x in names}
    if isinstance(table, pa.Table):
        codes, labels = _codes(table, "protein")
        hit = np.fromiter((str(x) in wanted for x in labels), dtype=bool, count=labels.size)
        keep = hit[codes]
        return table if keep.all() else table.filter(pa.array(keep))
    rows = table["protein"].isin(wanted).to_numpy()
    return table if rows.all() else table.loc[rows]
