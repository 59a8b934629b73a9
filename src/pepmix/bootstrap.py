"""The workflow's ``bootstrap`` rule: parametric bootstraps that run after the shards are gathered.

Two bootstraps run here (config ``variance_tests``, see ``config/README.md``):

- the contrasts' t tests (``bootstrap_contrasts: true``;
  :mod:`pepmix.model.bootstrap_contrasts`), for the proteins of ``bootstrap_proteins``;
- the term LRTs of :mod:`pepmix.model.variance_tests` when ``bootstrap_proteins: top N``: the
  ranking needs every shard, so the fit jobs skip them and this rule does them.

Ranking for ``top N``: the smallest Benjamini-Hochberg adjusted p-value of any contrast in the
differential table (ties: smallest p-value, then protein name); proteins without a tested
contrast are not ranked. The selected proteins are refitted from the normalised table exactly
as the fit stage fitted them (each protein's fit, robust weights included, depends on that
protein's rows only; a variance-ratio prior is not needed because the bootstraps use the plain
REML criterion), split into ``threads`` groups of about equal observations, one process each.
Every protein's replicates are seeded from the seed, the test and its name, so the results do
not depend on the split.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from pepmix.model.design import RunDesign
from pepmix.model.variance_tests import VarianceTestOptions

log = logging.getLogger(__name__)

#: columns of ``bootstrap_terms.tsv`` before the per-term columns
TERM_COLUMNS = ["protein", "rank"]


def top_proteins(differential: pd.DataFrame, n: int) -> list[str]:
    """The ``n`` proteins with the smallest adjusted p-value of any contrast (module
    docstring), best first."""
    tested = differential.loc[differential["adj_pvalue"].notna(), ["protein", "adj_pvalue"]]
    tested = tested.assign(pvalue=differential.loc[tested.index, "pvalue"])
    best = tested.groupby("protein", sort=False).agg(adj=("adj_pvalue", "min"), p=("pvalue", "min"))
    best = best.reset_index().sort_values(["adj", "p", "protein"], kind="mergesort")
    return [str(p) for p in best["protein"].head(n)]


def split_by_size(sizes: pd.Series, parts: int) -> list[list[str]]:
    """Split proteins (index of ``sizes``: observations) into ``parts`` groups of about equal
    total size (largest first, each to the lightest group); empty groups are dropped."""
    groups: list[list[str]] = [[] for _ in range(max(parts, 1))]
    load = np.zeros(len(groups))
    for protein, size in sizes.sort_values(ascending=False, kind="mergesort").items():
        k = int(np.argmin(load))
        groups[k].append(str(protein))
        load[k] += float(size)
    return [g for g in groups if g]


def _work(
    table: pd.DataFrame,
    design: RunDesign,
    robust: str,
    options: VarianceTestOptions,
    contrasts: Sequence[tuple[str, str, str]],
    terms: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit one group of proteins and bootstrap it: (contrast rows, term columns)."""
    from pepmix.model.bootstrap_contrasts import COLUMNS, bootstrap_contrasts
    from pepmix.model.fit import fit_proteins
    from pepmix.model.variance_tests import fit_tests

    fit = fit_proteins(table, design, robust=robust, what="proteins to bootstrap")
    boot = pd.DataFrame(columns=COLUMNS)
    if contrasts:
        boot = bootstrap_contrasts(fit, contrasts, options.bootstrap, options.seed)
    tests = pd.DataFrame({"protein": fit.proteins})
    if terms:
        tests = fit_tests(fit, replace(options, proteins=None, top=None))
    return boot, tests


def run_bootstrap(
    table: pd.DataFrame,
    design: RunDesign,
    options: VarianceTestOptions,
    contrasts: Sequence[tuple[str, str, str]],
    proteins: Sequence[str],
    robust: str = "huber",
    threads: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bootstrap ``proteins`` (in this order) on ``threads`` processes.

    Parameters
    ----------
    table : pandas.DataFrame
        The model's input (``protein, feature, run, y``), any proteins.
    design : RunDesign
        The fit stage's design.
    options : VarianceTestOptions
        ``B``, seed, which bootstraps.
    contrasts : sequence of (name, numerator, denominator)
        Contrasts to bootstrap (empty: none).
    proteins : sequence of str
        Proteins to bootstrap, in output order.
    robust : str, default "huber"
        ``model.robust`` of the fit stage.
    threads : int, default 1
        Processes.

    Returns
    -------
    contrasts : pandas.DataFrame
        :data:`pepmix.model.bootstrap_contrasts.COLUMNS`, by contrast then protein order.
    terms : pandas.DataFrame
        ``protein`` and, with ``options.top`` set, ``lrt_<t>, p_boot_<t>, n_boot_<t>``.
    """
    terms = options.lrt and options.top is not None
    order = {p: k for k, p in enumerate(proteins)}
    part = table[table["protein"].isin(list(order))]
    sizes = part.groupby("protein", observed=True).size()
    groups = split_by_size(sizes, threads)
    tables = [part[part["protein"].isin(g)] for g in groups]
    args = (design, robust, options, list(contrasts), terms)
    if len(tables) > 1:
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=len(tables), mp_context=ctx) as pool:
            results = list(pool.map(_work, tables, *[[a] * len(tables) for a in args]))
    else:
        results = [_work(t, *args) for t in tables]
    boot = pd.concat([r[0] for r in results], ignore_index=True) if results else pd.DataFrame()
    tests = pd.concat([r[1] for r in results], ignore_index=True) if results else pd.DataFrame()
    if not boot.empty:
        cnum = {c[0]: k for k, c in enumerate(contrasts)}
        boot = boot.assign(_c=boot["contrast"].map(cnum), _p=boot["protein"].map(order))
        boot = boot.sort_values(["_c", "_p"], kind="mergesort").drop(columns=["_c", "_p"])
    if not tests.empty:
        tests = tests.assign(rank=tests["protein"].map(order) + 1).sort_values("rank")
        tests = tests[TERM_COLUMNS + [c for c in tests.columns if c not in TERM_COLUMNS]]
    log.info(
        "bootstrap (B=%d) of %d proteins on %d process(es)",
        options.bootstrap,
        len(proteins),
        len(tables),
    )
    return boot.reset_index(drop=True), tests.reset_index(drop=True)


def selected_proteins(
    options: VarianceTestOptions, table: pd.DataFrame, differential: pd.DataFrame | None
) -> list[str]:
    """Proteins of ``bootstrap_proteins``: the top N (needs ``differential``), the listed ones
    present in ``table``, or all of ``table``'s proteins (in their table order)."""
    present = pd.unique(table["protein"].astype(str))
    if options.top is not None:
        if differential is None:
            raise ValueError("bootstrap_proteins: top N needs the differential table")
        return top_proteins(differential, options.top)
    if options.proteins is not None:
        wanted = set(options.proteins)
        return [p for p in present if p in wanted]
    return [str(p) for p in present]


def options_from(config: Mapping[str, Any]) -> VarianceTestOptions:
    """:class:`VarianceTestOptions` of the config's ``variance_tests`` section."""
    return VarianceTestOptions.from_config(config.get("variance_tests"))
