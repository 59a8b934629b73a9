r"""Memory the model stage declares (``mem_mb`` of the rules ``fit`` and ``variance_prior``).

The engine's workspace for one protein grows with the product of its number of features
:math:`q` and of observations :math:`n` (dense :math:`n \times q` blocks of the random-effects
design and their products), so one large protein can need far more memory than the size of the
shard's file suggests (issue 11: a 3,000-peptide protein took 2.8 GB where 616 MB were declared).
The rules therefore declare

.. math::

    \text{mem\_mb} = \text{attempt}\,\bigl(600 + 20\,s + b\,q_{\max} n_{\max} / 2^{20}\bigr)

with :math:`s` the input size in MB (the whole table: the former formula), :math:`q_{\max}` and
:math:`n_{\max}` the features and observations of the largest protein (by :math:`q n`) of the job,
written next to each shard by :func:`pepmix.shards.split` (:func:`write_largest`), and
:math:`b` = :data:`BYTES_PER_CELL`.

Measured (``benchmarks/bench_memory.py``, one protein fully observed in 12 runs, peak RSS of a
fresh process including about 260 MB of interpreter and imports): 296, 464, 977 and 1,510 MB for
300, 1,000, 2,000 and 3,000 features, i.e. 12 to 17 bytes per feature x observation above the
imports. :data:`BYTES_PER_CELL` = 24 leaves a margin of at least 40% over the measured growth (the
declared 3,072 MB at 3,000 features is 2.0 x the measured peak); Snakemake's retries (``attempt``)
multiply it further. Only the largest protein's workspace is counted (the engine is assumed to
hold one large protein's dense blocks at a time); many large proteins in one shard are covered
only by the file-size term and the retries.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

#: memory of the interpreter, the imports and small tables (MB; measured about 260)
BASE_MB = 600
#: memory per MB of input file (the table itself, all proteins of the job)
MB_PER_INPUT_MB = 20
#: bytes per feature x observation of the largest protein (measured 12-17, see module docstring)
BYTES_PER_CELL = 24


def fit_mem_mb(n_features: int, n_observations: int, input_mb: float = 0.0) -> int:
    """Memory (MB) to declare for a model job.

    Parameters
    ----------
    n_features : int
        Features of the job's largest protein.
    n_observations : int
        Observations of that protein.
    input_mb : float, default 0.0
        Size of the job's input files in MB.

    Returns
    -------
    int
        ``BASE_MB + MB_PER_INPUT_MB * input_mb + BYTES_PER_CELL * q * n / 2**20`` (first attempt).
    """
    cells = BYTES_PER_CELL * float(n_features) * float(n_observations) / 2**20
    return BASE_MB + int(MB_PER_INPUT_MB * input_mb) + math.ceil(cells)


def largest_protein(n_features: ArrayLike, n_observations: ArrayLike) -> dict[str, int]:
    """Features and observations of the protein with the largest ``features x observations``.

    Parameters
    ----------
    n_features, n_observations : array_like of int
        Per protein.

    Returns
    -------
    dict
        ``{"n_features": q, "n_observations": n}``; zeros when there is no protein.
    """
    q = np.asarray(n_features, dtype=np.int64)
    n = np.asarray(n_observations, dtype=np.int64)
    if q.size == 0:
        return {"n_features": 0, "n_observations": 0}
    i = int(np.argmax(q * n))
    return {"n_features": int(q[i]), "n_observations": int(n[i])}


def write_largest(path: str | Path, n_features: ArrayLike, n_observations: ArrayLike) -> None:
    """Write :func:`largest_protein` as JSON (read by the rules' ``mem_mb``)."""
    from pepmix.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(largest_protein(n_features, n_observations)) + "\n")


def declared_mem_mb(largest: str | Path | list[str], input_mb: float = 0.0) -> int:
    """:func:`fit_mem_mb` for the largest protein of one or more :func:`write_largest` files.

    Missing files (Snakemake evaluates ``mem_mb`` once while building the DAG, before the
    shard job has written them; it evaluates it again when the job is ready) count as a protein
    of no size.
    """
    paths = [largest] if isinstance(largest, (str, Path)) else list(largest)
    best = (0, 0)
    for p in paths:
        if Path(p).is_file():
            d = json.loads(Path(p).read_text())
            q, n = int(d["n_features"]), int(d["n_observations"])
            if q * n > best[0] * best[1]:
                best = (q, n)
    return fit_mem_mb(best[0], best[1], input_mb)
