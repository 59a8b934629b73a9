"""Plotting functions and plot stages on a small synthetic data set: files are written, output
is deterministic, labels do not overlap, and the numbers behind the figures are right."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepmix.plots import abundance as ab
from pepmix.plots import model, qc, results, status
from pepmix.plots.imagepdf import encode_png, png_image_data, write_image_pdf
from pepmix.plots.labels import repel_boxes
from pepmix.plots.profile_data import build_profiles, comparison_intervals, prepare
from pepmix.plots.profiles import middle_cut, write_profile_files
from pepmix.plots.stage import (
    ContrastInfo,
    condition_means,
    differential_plots,
    model_plots,
    qc_plots,
    status_plot,
)
from pepmix.plots.style import Runs, condition_colors, figure_paths, short_name

CONDITIONS = ("ctrl", "treat")
CONTRAST = ContrastInfo("treat - ctrl", "treat_vs_ctrl", "treat", "ctrl")


def make_data(seed: int = 1) -> dict[str, pd.DataFrame]:
    """Eight proteins, 2-5 features each, 2 conditions x 3 runs in 2 batches, some missing."""
    rng = np.random.default_rng(seed)
    runs = [f"{c}_{i}" for c in CONDITIONS for i in (1, 2, 3)]
    sheet = pd.DataFrame(
        {
            "run": runs,
            "condition": [r.split("_")[0] for r in runs],
            "bioreplicate": runs,
            "batch": ["b1", "b2", "b1", "b2", "b1", "b2"],
        }
    )
    rows, proteins, blups, fixed, da = [], [], [], [], []
    for p in range(8):
        protein = f"sp|P{p:05d}|PROT{p}_HUMAN" if p % 2 else f"Cre0{p}.g{p:06d}.t1|PACid:{p}|"
        effect = 1.5 if p < 3 else 0.0
        n_feat = 2 + p % 4
        feat_effects = rng.normal(0, 1.2, n_feat)
        base = 8 + p
        for f in range(n_feat):
            feature = f"PEPTIDE{p}X{f}ABCDEFGHIKLMNPQR"
            blups.append((protein, "feature", feature, 0.9 * feat_effects[f]))
            for r in runs:
                if rng.random() < 0.12:
                    continue
                y = base + feat_effects[f] + (effect if r.startswith("treat") else 0.0)
                y += rng.normal(0, 0.2)
                rows.append((protein, feature, feature, r, y + 0.1, y))
        for r in runs:
            blups.append((protein, "sample", r, rng.normal(0, 0.05)))
        var = (1.4, 0.0 if p % 3 == 0 else 0.01, 0.04)
        fit_status = "boundary" if p % 3 == 0 else "ok"
        proteins.append((protein, *var, n_feat, 6 * n_feat, fit_status, ""))
        means = {"ctrl": base, "treat": base + effect}
        for c in CONDITIONS:
            other = "treat" if c == "ctrl" else "ctrl"
            fixed.append(
                {
                    "protein": protein,
                    "term": f"condition[{c}]",
                    "estimate": means[c],
                    "se": 0.3,
                    f"cov[condition[{c}]]": 0.09,
                    f"cov[condition[{other}]]": 0.085,
                }
            )
        pvalue = 1e-6 * (p + 1) if effect else rng.uniform(0.05, 1.0)
        da.append((protein, CONTRAST.name, effect + rng.normal(0, 0.05), 0.1, 10.0, pvalue, "ok"))
    features = pd.DataFrame(rows, columns=["protein", "feature", "peptide", "run", "log2_raw", "y"])
    table = pd.DataFrame(
        da, columns=["protein", "contrast", "log2fc", "se", "df", "pvalue", "status"]
    )
    table["adj_pvalue"] = np.minimum(1.0, table["pvalue"] * len(table))
    table["ci_low"] = table["log2fc"] - 0.2
    table["ci_high"] = table["log2fc"] + 0.2
    untested = pd.DataFrame(
        [("sp|P99999|GONE_HUMAN", CONTRAST.name, np.nan, np.nan, np.nan, np.nan, "not_estimable")],
        columns=["protein", "contrast", "log2fc", "se", "df", "pvalue", "status"],
    )
    table = pd.concat([table, untested], ignore_index=True)
    abundance = (
        features.groupby(["protein", "run"])["y"]
        .agg(["mean", "count"])
        .reset_index()
        .rename(columns={"mean": "abundance", "count": "n_features"})
    )
    abundance["se"] = 0.25
    abundance["status"] = "ok"
    return {
        "sheet": sheet,
        "features": features,
        "abundance": abundance,
        "proteins": pd.DataFrame(
            proteins,
            columns=[
                "protein",
                "var_feature",
                "var_sample",
                "var_residual",
                "n_features",
                "n_observations",
                "status",
                "detail",
            ],
        ),
        "blups": pd.DataFrame(blups, columns=["protein", "factor", "level", "blup"]),
        "fixed": pd.DataFrame(fixed),
        "table": table,
    }


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return make_data()


@pytest.fixture(scope="module")
def runs(data: dict[str, pd.DataFrame]) -> Runs:
    return Runs.from_sheet(data["sheet"])


@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory: pytest.TempPathFactory, data: dict) -> dict[str, Path]:
    """The data as the workflow's stage files."""
    root = tmp_path_factory.mktemp("inputs")
    paths = {}
    for name in ("features", "abundance", "proteins", "blups", "fixed", "table"):
        paths[name] = root / f"{name}.parquet"
        data[name].to_parquet(paths[name], index=False)
    paths["samples"] = root / "samples.tsv"
    data["sheet"].to_csv(paths["samples"], sep="\t", index=False)
    return paths


def assert_written(path: Path) -> None:
    assert path.exists(), path
    head = path.read_bytes()[:8]
    assert path.stat().st_size > 1000, path
    signature = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}[path.suffix]
    assert head.startswith(signature), path


def test_runs_group_by_condition_and_keep_sheet_colours(data: dict) -> None:
    sheet = data["sheet"].iloc[[3, 0, 4, 1, 5, 2]]  # interleaved conditions
    runs = Runs.from_sheet(sheet)
    assert [runs.condition[r] for r in runs.order] == ["treat"] * 3 + ["ctrl"] * 3
    assert runs.colors == condition_colors(["treat", "ctrl"])
    assert set(runs.markers) == {"b1", "b2"}


@pytest.mark.parametrize(
    "draw",
    [
        qc.intensity_distributions,
        qc.features_per_run,
        qc.missingness,
    ],
)
def test_feature_qc_figures(draw, data: dict, runs: Runs, tmp_path: Path) -> None:
    paths = figure_paths(tmp_path / draw.__name__, ["pdf", "svg"])
    draw(data["features"], runs, paths)
    for path in paths:
        assert_written(path)


@pytest.mark.parametrize("draw", [ab.pca, ab.correlation, ab.cv])
def test_abundance_qc_figures(draw, data: dict, runs: Runs, tmp_path: Path) -> None:
    paths = figure_paths(tmp_path / draw.__name__, ["pdf"])
    draw(data["abundance"], runs, paths)
    for path in paths:
        assert_written(path)


def test_result_figures(data: dict, runs: Runs, tmp_path: Path) -> None:
    table = data["table"]
    means = condition_means(data["fixed"], ["treat", "ctrl"])
    results.volcano(table, CONTRAST.name, "treat", "ctrl", runs.colors, tmp_path / "v.png")
    results.ma_plot(table, means, CONTRAST.name, "treat", "ctrl", runs.colors, tmp_path / "m.svg")
    results.pvalue_histogram(table, CONTRAST.name, tmp_path / "p.pdf")
    status.status_summary(
        table, [(CONTRAST.name, "treat", "ctrl")], runs.colors, tmp_path / "s.png"
    )
    model.variance_components(data["proteins"], tmp_path / "vc.png")
    for name in ("v.png", "m.svg", "p.pdf", "s.png", "vc.png"):
        assert_written(tmp_path / name)


def test_figures_handle_no_significant_proteins(data: dict, runs: Runs, tmp_path: Path) -> None:
    table = data["table"].assign(adj_pvalue=0.9)
    results.volcano(table, CONTRAST.name, "treat", "ctrl", runs.colors, tmp_path / "v.png")
    status.status_summary(
        table, [(CONTRAST.name, "treat", "ctrl")], runs.colors, tmp_path / "s.png"
    )
    assert_written(tmp_path / "v.png")


def test_profiles_pdf_and_png(data: dict, runs: Runs, tmp_path: Path) -> None:
    proteins = list(dict.fromkeys(data["table"]["protein"]))[:5]
    profiles = build_profiles(
        proteins,
        data["features"],
        data["abundance"],
        data["fixed"],
        data["blups"],
        data["proteins"],
        data["table"],
    )
    outputs = [
        (proteins[:3], tmp_path / "a.pdf", tmp_path / "a.png"),
        (proteins[2:], tmp_path / "b.pdf", tmp_path / "b.png"),
        ([], tmp_path / "empty.pdf", tmp_path / "empty.png"),
    ]
    write_profile_files(profiles, outputs, runs, png_count=2)
    for _, pdf, png in outputs:
        assert_written(pdf)
        assert_written(png)
    assert b"/Count 3" in (tmp_path / "a.pdf").read_bytes()
    assert b"/Count 1" in (tmp_path / "empty.pdf").read_bytes()


def test_stages_write_every_declared_file(stage_inputs: dict[str, Path], tmp_path: Path) -> None:
    s = stage_inputs
    written = qc_plots(s["features"], s["samples"], s["abundance"], tmp_path / "qc", ["pdf"])
    written += differential_plots(
        s["table"], s["fixed"], s["samples"], [CONTRAST], tmp_path / "contrasts", ["svg"]
    )
    written += status_plot(s["table"], s["samples"], [CONTRAST], tmp_path, ["pdf"])
    written += model_plots(
        s["proteins"],
        s["table"],
        s["features"],
        s["samples"],
        s["abundance"],
        s["fixed"],
        s["blups"],
        [CONTRAST],
        tmp_path,
        ["pdf"],
        top_n=4,
    )
    assert len(written) == 12 + 6 + 2 + 2 + 2
    for path in written:
        assert_written(Path(path))
    assert (tmp_path / "contrasts/treat_vs_ctrl/volcano.svg").exists()
    assert (tmp_path / "contrasts/treat_vs_ctrl/profiles.pdf").exists()


def test_same_input_gives_identical_bytes(data: dict, runs: Runs, tmp_path: Path) -> None:
    table = data["table"]
    for k in (1, 2):
        paths = figure_paths(tmp_path / f"volcano{k}", ["pdf", "svg"])
        results.volcano(table, CONTRAST.name, "treat", "ctrl", runs.colors, paths)
    for ext in ("png", "pdf", "svg"):
        first = (tmp_path / f"volcano1.{ext}").read_bytes()
        assert first == (tmp_path / f"volcano2.{ext}").read_bytes(), ext
    assert b"CreationDate" not in (tmp_path / "volcano1.pdf").read_bytes()


def test_profile_pdf_is_deterministic(data: dict, runs: Runs, tmp_path: Path) -> None:
    proteins = list(dict.fromkeys(data["table"]["protein"]))[:2]
    args = (data["features"], data["abundance"], data["fixed"], data["blups"], data["proteins"])
    for k in (1, 2):
        profiles = build_profiles(proteins, *args, data["table"])
        outputs = [(proteins, tmp_path / f"p{k}.pdf", tmp_path / f"p{k}.png")]
        write_profile_files(profiles, outputs, runs)
    assert (tmp_path / "p1.pdf").read_bytes() == (tmp_path / "p2.pdf").read_bytes()
    assert (tmp_path / "p1.png").read_bytes() == (tmp_path / "p2.png").read_bytes()


def test_repelled_labels_do_not_overlap() -> None:
    rng = np.random.default_rng(3)
    anchors = rng.normal(200, 15, size=(15, 2))  # a dense cluster
    sizes = np.column_stack([rng.uniform(40, 90, 15), np.full(15, 10.0)])
    obstacles = rng.normal(200, 40, size=(300, 2))
    centres = repel_boxes(anchors, sizes, (0.0, 0.0, 500.0, 400.0), obstacles)
    half = sizes / 2
    for i in range(15):
        for j in range(i + 1, 15):
            apart_x = abs(centres[i, 0] - centres[j, 0]) >= half[i, 0] + half[j, 0] - 1e-6
            apart_y = abs(centres[i, 1] - centres[j, 1]) >= half[i, 1] + half[j, 1] - 1e-6
            assert apart_x or apart_y, (i, j)
    assert np.all(centres - half >= -1e-6)
    assert np.all(centres[:, 0] + half[:, 0] <= 500 + 1e-6)


def test_comparison_intervals_add_up_to_the_difference_variance() -> None:
    fixed = pd.DataFrame(
        {
            "term": ["condition[a]", "condition[b]"],
            "estimate": [1.0, 2.0],
            "se": [np.sqrt(0.5), np.sqrt(0.6)],
            "cov[condition[a]]": [0.5, 0.45],
            "cov[condition[b]]": [0.45, 0.6],
        }
    )
    out = comparison_intervals(fixed, ["a", "b"])
    var_diff = 0.5 + 0.6 - 2 * 0.45
    assert out["se_cmp"].pow(2).sum() == pytest.approx(var_diff)
    assert list(out["estimate"]) == [1.0, 2.0]


def test_raw_feature_effects_are_shrunk_by_their_blups(data: dict, runs: Runs) -> None:
    protein = str(data["table"]["protein"].iloc[0])
    profile = build_profiles(
        [protein],
        data["features"],
        data["abundance"],
        data["fixed"],
        data["blups"],
        data["proteins"],
        data["table"],
    )[protein]
    prepared = prepare(profile, runs)
    assert prepared.values.shape == (len(prepared.names), 6)
    assert np.all(np.isfinite(prepared.raw))
    assert list(prepared.blup) == sorted(prepared.blup, reverse=True)
    missing = ~np.isfinite(prepared.values)
    assert np.all(np.isfinite(prepared.expected[missing]))


def test_storey_pi0() -> None:
    p = np.concatenate([np.linspace(0, 1, 801)[1:], np.full(200, 1e-6)])
    assert results.storey_pi0(p) == pytest.approx(0.8, abs=0.01)
    assert results.storey_pi0(np.array([])) == 1.0


def test_label_shortening() -> None:
    assert short_name("sp|P02787|TRFE_HUMAN") == "TRFE_HUMAN"
    assert short_name("P02788ups|TRFL_HUMAN_UPS") == "TRFL_HUMAN_UPS"
    assert short_name("Cre01.g000350.t1.1|PACid:30788481|") == "Cre01.g000350.t1.1"
    assert short_name("A;B") == "A;…"
    assert len(short_name("X" * 40, 20)) == 20
    assert middle_cut("AYRPSETLCGGELVDTLQFVCGDR", 11) == "AYRPS…VCGDR"
    assert middle_cut("SHORT") == "SHORT"


def test_image_pdf_structure(tmp_path: Path) -> None:
    rgb = np.full((30, 40, 3), 255, dtype=np.uint8)
    rgb[10:20, 5:35] = (30, 120, 200)
    png = encode_png(rgb)
    assert png_image_data(png)[:2] == (40, 30)
    write_image_pdf(tmp_path / "x.pdf", [png, png], 4.0, 3.0)
    content = (tmp_path / "x.pdf").read_bytes()
    assert content.startswith(b"%PDF-1.4") and content.rstrip().endswith(b"%%EOF")
    start = int(re.search(rb"startxref\n(\d+)", content).group(1))
    assert content[start:].startswith(b"xref")
    offsets = [int(m) for m in re.findall(rb"(\d{10}) 00000 n", content)]
    for number, offset in enumerate(offsets, start=1):
        assert content[offset:].startswith(b"%d 0 obj" % number)
    assert b"/Count 2" in content
