"""Protein shards: balanced assignment, and identical tables for 1 and N shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix import canonical
from pepmix.errors import DesignError
from pepmix.io import write_parquet, write_tsv
from pepmix.model.stored import gather_fits
from pepmix.shards import assign, auto_shards, gather, split
from pepmix.stages import fit, gather_abundance, variance_components, variance_prior
from pepmix.stages import test as differential

from .simulate_da import simulate


def test_assign_balances_work() -> None:
    rng = np.random.default_rng(0)
    work = rng.geometric(0.05, size=2000)
    shards = assign(work, 4)
    loads = np.bincount(shards, weights=work, minlength=4)
    assert set(shards) == {0, 1, 2, 3}
    assert loads.max() - loads.min() <= work.max()
    assert np.array_equal(assign(work, 4), shards)  # deterministic


def test_assign_rejects_zero_shards() -> None:
    with pytest.raises(ValueError):
        assign([1, 2], 0)


def test_auto_shards() -> None:
    assert auto_shards(0) == 1
    assert auto_shards(10 * 1024**2) == 1
    assert auto_shards(1024**3) == 6
    assert auto_shards(10**13) == 16


def _run(tmp: Path, features: Path, samples: Path, n: int, majority_rule: bool) -> dict[str, str]:
    shard_paths = [tmp / f"s{i}.parquet" for i in range(n)]
    split(features, shard_paths)
    names = ["proteins", "fit", "fixed", "blups", "abundance"]
    outputs: dict[str, list[Path]] = {k: [] for k in names}
    model = {"feature_majority": majority_rule}
    prior = majority = None
    if n > 1:  # as the workflow: the variance prior on all proteins (rule variance_prior), and
        # with the majority rule every fit job reads all shards' tables (its prior)
        prior = tmp / "variance_prior.json"
        variance_prior.run(features=features, samples=samples, model=model).to_json(prior)
        majority = list(shard_paths) if majority_rule else None
    for i, path in enumerate(shard_paths):
        out = {k: tmp / f"{k}{i}.parquet" for k in names}
        fit.run(
            features=path, samples=samples, model=model, prior=prior, majority_shards=majority
        ).write(
            proteins=out["proteins"],
            fit=out["fit"],
            fixed=out["fixed"],
            blups=out["blups"],
            abundance=out["abundance"],
        )
        for k in names:
            outputs[k].append(out[k])
    for k in ["proteins", "fixed", "blups"]:
        gather(outputs[k], tmp / f"{k}.parquet")
    gather_fits(outputs["fit"], tmp / "fit.parquet")
    config = {"contrasts": "all_pairwise", "moderation": True, "lfc_threshold": 0.0}
    differential.run(fit=tmp / "fit.parquet", samples=samples, config=config).write(
        tsv=tmp / "da.tsv", parquet=tmp / "da.parquet", missing=tmp / "missing.tsv"
    )
    variance_components.run(proteins=tmp / "proteins.parquet").write(tmp / "vc.tsv")
    gather_abundance.run(
        parts=outputs["abundance"], samples=samples, long=tmp / "ab.parquet", wide=tmp / "ab.tsv"
    )
    return {k: (tmp / k).read_text() for k in ["da.tsv", "vc.tsv", "ab.tsv", "missing.tsv"]}


@pytest.mark.parametrize("majority", [False, True])
def test_one_and_many_shards_give_identical_tables(
    tmp_path: Path, majority: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the majority rule's prior on a sample of the proteins (pepmix.model.majority.prior_sample,
    # here 100 of the ~400 candidates): the same in the one job and in every shard's fit job
    from pepmix.model import majority as majority_module

    monkeypatch.setattr(majority_module, "PRIOR_SAMPLE", 100)
    table, sheet, _ = simulate(n_prot=400, seed=5, frac_de=0.1)
    features = tmp_path / "features.parquet"
    write_parquet(table.assign(peptide=table["feature"], log2_raw=table["y"]), features)
    samples = tmp_path / "samples.tsv"
    write_tsv(sheet, samples)
    (tmp_path / "one").mkdir()
    (tmp_path / "many").mkdir()
    one = _run(tmp_path / "one", features, samples, 1, majority)
    many = _run(tmp_path / "many", features, samples, 3, majority)
    for name, text in one.items():
        assert text == many[name], name
    da = pd.read_csv(tmp_path / "one" / "da.tsv", sep="\t")
    assert da["protein"].nunique() == 400


def test_split_of_an_empty_table_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "features.parquet"
    canonical.write_parquet(canonical.empty_table(), path)
    with pytest.raises(DesignError, match="no protein left to fit"):
        split(path, [tmp_path / "s0.parquet"])


def test_abundance_job_equals_the_fit_jobs_abundances(tmp_path: Path) -> None:
    """One shard: rule abundance (its own job, beside the fit) writes the same files, byte for
    byte, as the fit job's abundance model and the gather of that one part."""
    from pepmix.stages import abundance

    table, sheet, _ = simulate(n_prot=150, seed=7, frac_de=0.1)
    features = tmp_path / "features.parquet"
    write_parquet(table.assign(peptide=table["feature"], log2_raw=table["y"]), features)
    samples = tmp_path / "samples.tsv"
    write_tsv(sheet, samples)
    out = {k: tmp_path / f"{k}.parquet" for k in ("proteins", "fit", "fixed", "blups", "part")}
    fitted = fit.run(features=features, samples=samples)
    assert fitted.abundance is not None
    fitted.write(
        proteins=out["proteins"],
        fit=out["fit"],
        fixed=out["fixed"],
        blups=out["blups"],
        abundance=out["part"],
        wide=tmp_path / "fit_wide.tsv",
    )
    alone = abundance.run(features=features, samples=samples)
    alone.write(long=tmp_path / "ab.parquet", wide=tmp_path / "ab.tsv")
    assert (tmp_path / "ab.parquet").read_bytes() == out["part"].read_bytes()
    assert (tmp_path / "ab.tsv").read_bytes() == (tmp_path / "fit_wide.tsv").read_bytes()
    assert fit.run(features=features, samples=samples, abundance=False).abundance is None


@pytest.mark.parametrize("size", [20, 60, 1000])
def test_majority_prior_of_each_shard_is_that_of_one_job(
    tmp_path: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each fit job of three shards fits the prior from all shards' tables (its own variances
    # from its own saturated fits, the others' from theirs): bit for bit the one-job prior,
    # whatever the sample's size (20, 60: some of the ~300 candidates; 1000: all of them); seven
    # proteins in ten have two features (not candidates), so candidacy must be read per shard
    from pepmix.model import majority
    from pepmix.model.fit import encode
    from pepmix.model.majority_shards import candidate_names, shard_sample
    from pepmix.samples import read_resolved_sheet
    from pepmix.stages.files import read_model_arrow, read_model_input

    monkeypatch.setattr(majority, "PRIOR_SAMPLE", size)
    table, sheet, _ = simulate(n_prot=400, seed=11, frac_de=0.1)
    few = table["protein"].str[-1].isin(list("1234567")) & ~table["feature"].astype(str).isin(
        ["0", "1"]
    )
    table = table.loc[~few]
    features = tmp_path / "features.parquet"
    write_parquet(table.assign(peptide=table["feature"], log2_raw=table["y"]), features)
    samples = tmp_path / "samples.tsv"
    write_tsv(sheet, samples)
    design = majority.condition_design(read_resolved_sheet(samples))
    whole = encode(read_model_input(features), design)
    _, candidates, _, s2, df = majority._pure_error(whole, design, len(design.conditions))
    expected = majority._sample_prior(whole, candidates, s2, df)
    assert expected == majority.fit_majority_prior(whole, design)
    assert np.isfinite(expected[1])
    names = np.asarray(whole.proteins, dtype=object)
    assert set(candidate_names(read_model_input(features), design)) == set(names[candidates])
    assert 0 < candidates.size < len(whole.proteins)
    paths = [tmp_path / f"s{i}.parquet" for i in range(3)]
    split(features, paths)
    for k, path in enumerate(paths):
        own = read_model_input(path)
        others = (read_model_input(p) for p in paths[:k] + paths[k + 1 :])
        sample = shard_sample(own, others, design)
        assert len(sample.sample) == min(size, candidates.size)
        # the fit job passes the other shards as Arrow tables: only their kept rows converted
        arrow = shard_sample(own, (read_model_arrow(p) for p in paths[:k] + paths[k + 1 :]), design)
        assert arrow.sample == sample.sample and arrow.n_own == sample.n_own
        assert np.array_equal(arrow.names, sample.names)
        assert np.array_equal(arrow.s2, sample.s2) and np.array_equal(arrow.df, sample.df)
        enc = encode(own, design)
        _, cand, _, s2_k, df_k = majority._pure_error(enc, design, len(design.conditions))
        own_names = np.asarray(enc.proteins, dtype=object)[cand]
        assert sample.prior(own_names, s2_k, df_k) == expected  # bit for bit
        # a sampled protein missing from this shard's candidates: not the sample's shard
        drop = np.flatnonzero([str(x) in sample.sample for x in own_names])[0]
        rest = np.arange(cand.size) != drop
        with pytest.raises(ValueError, match="majority prior's sample"):
            sample.prior(own_names[rest], s2_k[rest], df_k[rest])


def test_shared_features_counts_protein_feature_pairs() -> None:
    # features named alike in several proteins (the general count) and features of one protein
    # each (the flag count): the same counts as the distinct pairs' observed conditions
    from pepmix.model.majority_shards import shared_features

    rng = np.random.default_rng(5)
    n_prot, n_feat, n_cond, n = 40, 12, 3, 3000
    prot = rng.integers(0, n_prot, n)
    local = rng.integers(0, n_feat, n)
    cond = rng.integers(0, n_cond, n)
    pairs = {(p, f, c) for p, f, c in zip(prot, local, cond, strict=True)}
    conds: dict[tuple[int, int], int] = {}
    for p, f, _ in pairs:
        conds[p, f] = conds.get((p, f), 0) + 1
    expected = np.zeros(n_prot + 2, dtype=np.int64)  # two proteins without rows
    for (p, _), c in conds.items():
        expected[p] += c >= 2
    own = prot * n_feat + local  # one protein per feature code (some codes unused)
    got = shared_features(prot, own, cond, n_prot + 2, n_prot * n_feat + 5, n_cond)
    assert np.array_equal(got, expected)
    shared = shared_features(prot, local, cond, n_prot + 2, n_feat, n_cond)
    assert np.array_equal(shared, expected)
    assert expected.sum() > 0 and (expected == 0).sum() >= 2


def test_candidate_names_of_arrow_chunks_with_their_own_dictionaries() -> None:
    # an Arrow table whose chunks have different dictionaries (unified first) or one (as
    # written from a categorical): the candidates and kept rows of the pandas table
    import pyarrow as pa

    from pepmix.model import majority
    from pepmix.model.majority_shards import _rows_of, candidate_names

    table, sheet, _ = simulate(n_prot=60, seed=4, frac_de=0.1)
    table = table.assign(feature=table["protein"] + "/" + table["feature"].astype(str))
    design = majority.condition_design(sheet)
    cats = table.astype({c: "category" for c in ("protein", "feature", "run")})
    half = len(table) // 2
    parts = [table.iloc[:half], table.iloc[half:].iloc[::-1]]
    separate = pa.concat_tables(
        [pa.Table.from_pandas(t.astype({"protein": "category", "feature": "category",
                                        "run": "category"}), preserve_index=False)
         for t in parts]
    )  # fmt: skip
    shared = pa.Table.from_pandas(cats, preserve_index=False)
    expected = set(candidate_names(cats, design))
    assert 0 < len(expected) < table["protein"].nunique()
    for arrow in (separate, shared):
        assert set(candidate_names(arrow, design)) == expected
        names = np.asarray(sorted(expected)[::3], dtype=object)
        rows = _rows_of(arrow, names).to_pandas()
        assert set(rows["protein"].astype(str)) == set(names)
        assert len(rows) == int(table["protein"].isin(set(names)).sum())


def test_fit_job_needs_its_own_table_among_the_shards(tmp_path: Path) -> None:
    table, sheet, _ = simulate(n_prot=30, seed=3, frac_de=0.1)
    features = tmp_path / "features.parquet"
    write_parquet(table.assign(peptide=table["feature"], log2_raw=table["y"]), features)
    samples = tmp_path / "samples.tsv"
    write_tsv(sheet, samples)
    paths = [tmp_path / f"s{i}.parquet" for i in range(2)]
    split(features, paths)
    with pytest.raises(ValueError, match="this shard's table"):
        fit.run(features=paths[0], samples=samples, majority_shards=[paths[1]])


@pytest.mark.parametrize(
    "model",
    [{"feature_majority": False}, {"robust": "none"}, {"random": ["feature", "condition|batch"]}],
)
def test_no_majority_sample_where_the_rule_does_not_apply(model: dict[str, object]) -> None:
    # the other shards' tables are not read (here they do not exist)
    missing = [Path("/nonexistent/1-of-2.parquet"), Path("/nonexistent/2-of-2.parquet")]
    table = pd.DataFrame({"protein": [], "feature": [], "run": [], "y": []})
    sample = fit._majority_sample(missing[0], missing, table, pd.DataFrame(), model, "auto")
    assert sample is None
