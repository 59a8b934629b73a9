"""The shards' gather in Arrow (:func:`pepmix.shards.gather_arrow`): the same file, byte for byte,
as the pandas route it replaced (:func:`pepmix.shards.gather_pandas`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pepmix.io import tsv_bytes, write_arrow, write_parquet
from pepmix.model.abundance import wide
from pepmix.shards import gather, gather_arrow, gather_pandas
from pepmix.stages import gather_abundance
from pepmix.stages.files import write_wide

# protein names whose code point order differs from a case-insensitive or locale order, each
# on several rows of several parts (the stable sort keeps each protein's own row order)
NAMES = ["sp|P2", "B", "a", "Ä", "sp|P10", "b_1", "Z", "ß"]


def _part(seed: int, rows: int, names: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    protein = rng.choice(names, size=rows)
    level = [f"f{int(i)}" for i in rng.integers(5 * seed, 30 + 5 * seed, size=rows)]
    value = rng.normal(size=rows)
    value[rng.random(rows) < 0.2] = np.nan
    status = pd.Series(rng.choice(["ok", "boundary"], size=rows), dtype="str")
    status[rng.random(rows) < 0.1] = None
    return pd.DataFrame(
        {
            "protein": pd.Categorical(protein),  # categories differ between parts: strings
            "factor": pd.Categorical(
                rng.choice(["feature", "sample"], size=rows), categories=["feature", "sample"]
            ),
            "level": pd.Categorical(level),
            "value": value,
            "n": rng.integers(0, 100, size=rows),
            "flag": rng.random(rows) < 0.5,
            "status": status,
        }
    )


def _write_parts(tmp: Path, frames: list[pd.DataFrame]) -> list[Path]:
    paths = [tmp / f"part{i}.parquet" for i in range(len(frames))]
    for frame, path in zip(frames, paths, strict=True):
        write_parquet(frame, path)
    return paths


def _both(tmp: Path, parts: list[Path]) -> tuple[bytes, bytes]:
    gather(parts, tmp / "arrow.parquet")
    gather_pandas(parts, tmp / "pandas.parquet")
    return (tmp / "arrow.parquet").read_bytes(), (tmp / "pandas.parquet").read_bytes()


@pytest.mark.parametrize("n_parts", [1, 2, 3])
def test_arrow_gather_writes_the_pandas_file(tmp_path: Path, n_parts: int) -> None:
    frames = [_part(seed, 500 + 37 * seed, NAMES[seed % 3 :]) for seed in range(n_parts)]
    parts = _write_parts(tmp_path, frames)
    # the Arrow route takes these parts (not the pandas fallback)
    assert gather_arrow([pq.read_table(p) for p in parts]) is not None
    arrow, pandas = _both(tmp_path, parts)
    assert arrow == pandas
    got = pd.read_parquet(tmp_path / "arrow.parquet")
    assert list(got["protein"].astype(str)) == sorted(got["protein"].astype(str))
    # a categorical with the same categories in every part stays one; other ones are strings
    assert isinstance(got["factor"].dtype, pd.CategoricalDtype)
    assert not isinstance(got["level"].dtype, pd.CategoricalDtype) or n_parts == 1
    assert not isinstance(got["protein"].dtype, pd.CategoricalDtype) or n_parts == 1


def test_arrow_gather_writes_nan_as_pandas_does(tmp_path: Path) -> None:
    """A part written from Arrow with NaN (not null) floats: pandas reads NaN and writes null;
    so must the Arrow route."""
    paths = []
    for i, proteins in enumerate((["b", "a", "b"], ["a", "c", "c"])):
        table = pa.table(
            {
                "protein": pa.array(proteins, type=pa.large_string()),
                "x": pa.array([1.0, np.nan, 2.0 + i]),
            }
        )
        paths.append(tmp_path / f"p{i}.parquet")
        write_arrow(pa.Table.from_pandas(table.to_pandas(), preserve_index=False), paths[-1])
        # same schema and metadata, but NaN values instead of nulls
        write_arrow(table.replace_schema_metadata(pq.read_schema(paths[-1]).metadata), paths[-1])
    assert pq.read_table(paths[0]).column("x").null_count == 0
    arrow, pandas = _both(tmp_path, paths)
    assert arrow == pandas
    assert pq.read_table(tmp_path / "arrow.parquet").column("x").null_count == 2


def test_parts_outside_the_arrow_route_take_pandas(tmp_path: Path) -> None:
    """An empty part, a null protein or a nullable integer with a null: the pandas route (the
    same file as before)."""
    full = _part(1, 200, NAMES)
    empty = _part(2, 10, NAMES).iloc[:0]
    with_null = _part(3, 50, NAMES)
    with_null["protein"] = with_null["protein"].cat.add_categories(["zz"])
    with_null.loc[3, "protein"] = None
    nullable = _part(4, 50, NAMES).assign(n=pd.array([1, None] * 25, dtype="Int64"))
    for other in (empty, with_null, nullable):
        parts = _write_parts(tmp_path, [full, other])
        assert gather_arrow([pq.read_table(p) for p in parts]) is None
        arrow, pandas = _both(tmp_path, parts)
        assert arrow == pandas


def test_gather_abundance_equals_the_pandas_route(tmp_path: Path) -> None:
    """The long table and its wide TSV from the gathered table in memory: the files of the
    pandas gather and a read of the long table."""
    runs = ["r2", "r1", "r3"]
    frames = []
    for seed, names in enumerate((["P3", "P1"], ["P2", "P10"])):
        rng = np.random.default_rng(seed)
        rows = [(p, r) for p in names for r in runs if rng.random() < 0.8]
        frames.append(
            pd.DataFrame(
                {
                    "protein": pd.Series([p for p, _ in rows], dtype="str"),
                    "run": pd.Series([r for _, r in rows], dtype="str"),
                    "abundance": rng.normal(size=len(rows)),
                    "se": rng.random(len(rows)),
                    "n_features": rng.integers(1, 5, size=len(rows)),
                    "status": pd.Series(["ok"] * len(rows), dtype="str"),
                }
            )
        )
    parts = _write_parts(tmp_path, frames)
    samples = tmp_path / "samples.tsv"
    pd.DataFrame({"run": runs, "condition": ["A", "B", "A"]}).to_csv(samples, sep="\t", index=False)
    gather_abundance.run(parts=parts, samples=samples, long=tmp_path / "l.parquet",
                         wide=tmp_path / "w.tsv")  # fmt: skip
    gather_pandas(parts, tmp_path / "ref.parquet")
    write_wide(tmp_path / "ref.parquet", runs, tmp_path / "ref.tsv")
    assert (tmp_path / "l.parquet").read_bytes() == (tmp_path / "ref.parquet").read_bytes()
    assert (tmp_path / "w.tsv").read_bytes() == (tmp_path / "ref.tsv").read_bytes()
    assert (tmp_path / "w.tsv").read_text().splitlines()[0] == "protein\tr2\tr1\tr3"


def _long_table(rng: np.random.Generator, runs: list[str]) -> pa.Table:
    rows = [(p, r) for p in NAMES for r in runs if rng.random() < 0.7]
    rows.append(("only_unknown_run", "r_unknown"))
    order = rng.permutation(len(rows))  # the parts' row order, not sorted
    abundance = rng.normal(size=len(rows))
    abundance[rng.random(len(rows)) < 0.15] = np.nan
    return pa.table(
        {
            "protein": pa.array([rows[i][0] for i in order], type=pa.large_string()),
            "run": pa.array([rows[i][1] for i in order], type=pa.large_string()),
            # NaN and null: both missing in the wide table
            "abundance": pa.array(abundance[order], mask=np.arange(len(rows)) % 11 == 3),
        }
    )


def test_wide_from_arrow_is_the_pivot_of_the_pandas_route() -> None:
    """Protein names in code-point order (upper case, ``Ä``, ``ß``, ``|``), runs in the sheet's
    order, sheet runs absent from the table left out, table runs absent from the sheet dropped
    (their protein kept, all missing), NaN and null abundances missing: the frame and the TSV
    bytes of ``wide(table.to_pandas(), runs)``."""
    rng = np.random.default_rng(7)
    table_runs = ["r2", "r1", "r3", "r_unknown"]
    for sheet in (["r3", "r1", "r2"], ["r1", "r9", "r2", "r3"]):
        table = _long_table(rng, table_runs)
        fast = gather_abundance.wide_from_arrow(table, sheet)
        ref = wide(table.to_pandas(), sheet)
        assert fast is not None
        assert list(fast.columns) == ["protein", *[r for r in sheet if r != "r9"]]
        assert fast["protein"].tolist() == sorted([*NAMES, "only_unknown_run"])
        pd.testing.assert_frame_equal(fast, ref)
        assert tsv_bytes(fast) == tsv_bytes(ref)


def test_wide_from_arrow_leaves_other_tables_to_pandas() -> None:
    rng = np.random.default_rng(8)
    table = _long_table(rng, ["r1", "r2"])
    repeated = pa.concat_tables([table, table.slice(0, 1)])  # the pivot raises on a repeat
    null_protein = table.set_column(
        0, "protein", pa.array([None, *table["protein"].to_pylist()[1:]], type=pa.large_string())
    )
    dictionary = table.set_column(1, "run", pc.dictionary_encode(table["run"]))
    for other in (repeated, null_protein, dictionary):
        assert gather_abundance.wide_from_arrow(other, ["r1", "r2"]) is None
