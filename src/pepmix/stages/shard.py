"""Rule ``shard``: split the normalised table into protein shards balanced by observations
(:func:`pepmix.shards.split`; it streams the table, so the shards are written as they are cut)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from pepmix.stages.files import PathLike

__all__ = ["run"]


def run(
    *, features: PathLike | pa.Table, shards: Sequence[PathLike], largest: Sequence[PathLike]
) -> None:
    """Write one ``features.parquet`` per shard and its ``largest.json`` (the largest protein's
    size, for the fit job's declared memory: :mod:`pepmix.resources`).

    ``features`` is ``results/normalize/features.parquet`` or the table a normalize stage of
    the same job wrote there (:attr:`pepmix.stages.normalize.NormalizeResult.arrow`)."""
    from pepmix.shards import split

    split(features, list(shards), list(largest))
