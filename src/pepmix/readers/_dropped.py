"""Proteins a reader drops entirely while reading, with the reason.

Readers of large reports (DIA-NN, Spectronaut, MaxDIA) apply the q-value thresholds of the
``filter:`` section while reading, so :func:`pepmix.filters.filter_rows` never sees the rows
above them. A protein none of whose rows passes would then vanish without a trace.
:class:`DroppedProteins` follows the thresholds as a sequence of steps, in the order
:func:`pepmix.filters.filter_rows` applies them (``q_value``, then ``pg_q_value``): for each step
``i`` it collects the set :math:`S_i` of proteins with at least one row passing steps
``1..i`` (:math:`S_0` is every protein named in the file). A protein in :math:`S_{i-1}` but not
in :math:`S_i` lost its last row at step ``i`` and is recorded with the same ``detail`` the row
filter would give (``no row passes the row filters: q_value <= 0.01``). The reader stores the
record in its output's ``attrs[REMOVED_PROTEINS]``; :func:`pepmix.ingest.read_input` carries it on.

Only the protein column and the threshold columns are needed, chunk by chunk; proteins are
handled as integer codes per chunk, so the cost is a few ``bincount`` calls per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pepmix.filters import REMOVED_PROTEINS, Removed, row_filter_detail

__all__ = ["REMOVED_PROTEINS", "DroppedProteins"]


class DroppedProteins:
    """Collects, chunk by chunk, the proteins that no row passing the read-time filters names.

    Parameters
    ----------
    steps : sequence of str
        Names of the filters in the order they are applied, as
        :func:`pepmix.filters.filter_rows` names them (e.g. ``"q_value <= 0.01"``).
    """

    def __init__(self, steps: Sequence[str]) -> None:
        self.steps = list(steps)
        #: per step, the labels (as the chunks hold them, not yet ``str`` and stripped) present
        self._present: list[set[object]] = [set() for _ in range(len(self.steps) + 1)]

    def add_codes(
        self, codes: np.ndarray, names: Sequence[object], passes: Sequence[np.ndarray]
    ) -> None:
        """Add one chunk given as integer protein ``codes`` (negative: missing) into ``names``.

        ``passes[i]`` is the boolean mask of the chunk's rows passing step ``i`` on its own.
        """
        keep = codes >= 0
        labels = np.asarray(names, dtype=object)
        for i in range(len(self.steps) + 1):
            if i > 0:
                keep = keep & np.asarray(passes[i - 1], dtype=bool)
            seen = np.flatnonzero(np.bincount(codes[keep], minlength=len(names)))
            # the raw labels: converted and stripped once, in :meth:`removed`
            self._present[i].update(labels[seen].tolist())

    def add(self, protein: pd.Series, passes: Sequence[np.ndarray]) -> None:
        """Add one chunk given as a protein column (categorical or text) and its step masks."""
        if isinstance(protein.dtype, pd.CategoricalDtype):
            codes = protein.cat.codes.to_numpy()
            names: Sequence[object] = list(protein.cat.categories)
        else:
            codes, uniques = pd.factorize(protein)
            names = list(uniques)
        self.add_codes(np.asarray(codes, dtype=np.int64), names, passes)

    def removed(self) -> Removed:
        """``{protein: [detail, None, None]}`` for every protein the steps removed entirely."""
        out: Removed = {}
        present = [{str(v).strip() for v in labels} for labels in self._present]
        for i, step in enumerate(self.steps):
            for protein in sorted(present[i] - present[i + 1]):
                if protein and protein not in out:
                    out[protein] = [row_filter_detail(step), None, None]
        return out

    def attach(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Store :meth:`removed` in ``frame.attrs[REMOVED_PROTEINS]`` (merged) and return it."""
        record = dict(frame.attrs.get(REMOVED_PROTEINS) or {})
        record.update(self.removed())
        frame.attrs[REMOVED_PROTEINS] = record
        return frame
