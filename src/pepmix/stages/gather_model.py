"""Rule ``gather_model``: concatenate the shards' model outputs, rows in the order of a single
job (:func:`pepmix.shards.gather`, :func:`pepmix.model.stored.gather_fits`)."""

from __future__ import annotations

from collections.abc import Sequence

from pepmix.stages.files import PathLike

__all__ = ["run"]


def run(
    *,
    proteins: Sequence[PathLike],
    fit: Sequence[PathLike],
    fixed: Sequence[PathLike],
    blups: Sequence[PathLike],
    outputs: dict[str, PathLike],
) -> None:
    """Gather each family of shard files into ``outputs[family]`` (``proteins``, ``fit``,
    ``fixed``, ``blups``); the files are streamed, not held in memory."""
    from pepmix.model.stored import gather_fits
    from pepmix.shards import gather

    gather(proteins, outputs["proteins"])
    gather_fits(fit, outputs["fit"])
    gather(fixed, outputs["fixed"])
    gather(blups, outputs["blups"])
