"""The report's own pages (pepmix.report): summary numbers, methods text, top-protein tables.

Small synthetic result tables with every case the summary counts: tested and untested rows,
calls both ways (one below the lfc threshold), filtered proteins of three filters, a flagged run.
Numbers of the summary are checked against counts made directly on the tables.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from docutils.core import publish_parts

from pepmix.alerts import Alert, gather_alerts, read_alerts, write_alerts
from pepmix.config import load_yaml, validate_config
from pepmix.io import write_parquet, write_tsv
from pepmix.report.methods import REFERENCES, methods_rst, model_formula
from pepmix.report.summary import filter_reason, summarize, summary_rst
from pepmix.report.tables import COLUMNS, top_table_html
from pepmix.stages import report_pages

REPO = Path(__file__).resolve().parents[2]
CONTRASTS = ["B - A", "C - A"]
REMOVED = {
    "r1": "1 feature < min_features 2",
    "r2": "1 feature < min_features 2",
    "r3": "no row passes the row filters: q_value <= 0.01",
    "r4": "b1: decoy; b2: no row passes the row filters: q_value <= 0.01",
}


def _config(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "samples": "samples.tsv",
        "inputs": [{"name": "b1", "format": "diann", "path": "report.parquet"}],
        "contrasts": "all_pairwise",
    }
    for key, value in changes.items():
        *parents, last = key.split(".")
        target = config
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    schema = load_yaml(REPO / "workflow/schemas/config.schema.yaml")
    return validate_config(config, schema)


def _differential() -> pd.DataFrame:
    """Two contrasts of 8 modelled proteins + the 4 filtered ones, sorted as rule test does."""
    rng = np.random.default_rng(3)
    frames = []
    for k, contrast in enumerate(CONTRASTS):
        lfc = np.array([2.0, -1.5, 0.8, 0.3, -0.2, 0.1, np.nan, np.nan])
        adj = np.array([0.001, 0.01, 0.02, 0.04, 0.3, 0.9, np.nan, np.nan])
        status = ["ok", "boundary", "ok", "ok", "reduced_model", "ok"]
        status += ["one_condition_missing" if k == 0 else "ok", "too_few_observations"]
        if k == 1:  # the 7th protein is tested in the second contrast
            lfc[6], adj[6] = -3.0, 0.002
        part = pd.DataFrame(
            {
                "protein": [f"P{i}" for i in range(8)],
                "contrast": contrast,
                "log2fc": lfc,
                "pvalue": adj / 10,
                "adj_pvalue": adj,
                "ci_low": lfc - 0.5,
                "ci_high": lfc + 0.5,
                "n_features": rng.integers(2, 20, 8),
                "status": status,
                "replication": "biological",
                "df_prior": np.where(np.isfinite(adj), 4.0 + k, np.nan),
                "var_prior": np.where(np.isfinite(adj), 0.02 * (k + 1), np.nan),
                "moderated": np.isfinite(adj),
            }
        ).sort_values("pvalue", na_position="last", kind="stable")
        filtered = pd.DataFrame(
            {"protein": list(REMOVED), "contrast": contrast, "status": "filtered"}
        )
        frames += [part, filtered]
    return pd.concat(frames, ignore_index=True)


def _variance() -> pd.DataFrame:
    kept = pd.DataFrame(
        {
            "protein": [f"P{i}" for i in range(8)],
            "status": ["ok", "boundary", "ok", "ok", "reduced_model", "ok", "ok", "ok"],
            "detail": [
                "",
                "",
                "excluded feature(s) pep9 (interaction p 1e-05): inconsistent "
                "with the other features",
                "",
                "",
                "",
                "",
                "",
            ],
            "n_features": [3, 4, 5, 2, 2, 6, 3, 2],
            "n_observations": [30, 40, 50, 20, 20, 60, 9, 3],
        }
    )
    removed = pd.DataFrame(
        {"protein": list(REMOVED), "status": "filtered", "detail": list(REMOVED.values())}
    )
    return pd.concat([kept, removed], ignore_index=True)


def _sheet() -> pd.DataFrame:
    runs = [f"{c}{i}" for c in "ABC" for i in (1, 2, 3)]
    return pd.DataFrame(
        {"run": runs, "condition": [r[0] for r in runs], "bioreplicate": runs, "batch": "b1"}
    )


def _runs() -> pd.DataFrame:
    sheet = _sheet()
    shift = np.linspace(-0.2, 0.3, len(sheet))
    return pd.DataFrame(
        {
            "run": sheet["run"],
            "shift": shift,
            "doubtful": [r == "B2" for r in sheet["run"]],
            "bimodal": False,
            "one_sided": False,
        }
    )


ALERTS = (Alert("merge", "heavy_filtering", "removed *many* proteins"),)


def _summary(config: dict[str, Any] | None = None) -> Any:
    return summarize(
        _differential(), _variance(), _runs(), _sheet(), config or _config(), ALERTS, CONTRASTS
    )


@pytest.mark.parametrize("lfc_threshold", [0.0, 0.5])
def test_summary_numbers_equal_the_tables(lfc_threshold: float) -> None:
    table = _differential()
    summary = _summary(_config(fdr=0.05, lfc_threshold=lfc_threshold))
    for c in summary.contrasts:
        part = table.loc[table["contrast"] == c.name]
        assert c.tested == int(part["pvalue"].notna().sum())
        sig = part["adj_pvalue"] < 0.05
        if lfc_threshold:
            sig &= part["log2fc"].abs() > lfc_threshold
        assert c.up == int((sig & (part["log2fc"] > 0)).sum())
        assert c.down == int((sig & (part["log2fc"] < 0)).sum())
        assert c.statuses == part["status"].value_counts().to_dict()
        assert c.not_tested == len(part) - c.tested - int((part["status"] == "filtered").sum())
    # the hand counts of the synthetic table: B - A tests 6, calls 3 up (2 with |lfc| > 0.5)
    first, second = summary.contrasts
    assert (first.tested, first.up, first.down) == ((6, 2, 1) if lfc_threshold else (6, 3, 1))
    assert (second.tested, second.down) == (7, 2)
    variance = _variance()
    assert summary.proteins_read == len(variance) == 12
    assert summary.proteins_removed == len(REMOVED) == 4
    assert summary.removed_by_filter == {
        "min_features 2": 2,
        "different filters in different batches": 1,
        "q_value <= 0.01": 1,
    }
    assert summary.features == 27 and summary.observations == 232
    assert summary.model_statuses == {"ok": 6, "boundary": 1, "reduced_model": 1}
    # the feature majority rule's note (Exclusions.notes) in one modelled protein's detail
    assert summary.majority_excluded == 1
    off = _config(fdr=0.05, lfc_threshold=lfc_threshold, **{"model.feature_majority": False})
    assert _summary(off).majority_excluded is None
    assert summary.conditions == {"A": (3, 3), "B": (3, 3), "C": (3, 3)}
    assert [r.run for r in summary.shifts if r.flags] == ["B2"]
    assert first.df_prior == 4.0 and second.var_prior == pytest.approx(0.04)


def test_calls_follow_the_volcano_rule() -> None:
    """The summary's calls are the volcano plot's coloured points (pepmix.plots.results)."""
    from pepmix.plots.results import contrast_rows, significant

    # lfc_threshold 0 only: at > 0 this branch's significant() writes into a read-only array
    # (pandas 3 copy-on-write); the plots branch fixes that, the threshold case is counted above
    table = _differential()
    summary = _summary(_config(fdr=0.03))
    for c in summary.contrasts:
        up, down = significant(contrast_rows(table, c.name), 0.03)
        assert (c.up, c.down) == (int(up.sum()), int(down.sum()))
        assert c.up + c.down > 0


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ("1 feature < min_features 2", "min_features 2"),
        ("3 observations < min_observations 4", "min_observations 4"),
        (
            "1 feature < min_features 2; 1 observation < min_observations 2",
            "min_features 2 and min_observations 2",
        ),
        ("no row passes the row filters: pg_q_value <= 0.01", "pg_q_value <= 0.01"),
        ("decoy", "decoy"),
        ("no valid intensity", "no valid intensity"),
        ("b1: decoy; b2: contaminant", "different filters in different batches"),
    ],
)
def test_filter_reason(detail: str, reason: str) -> None:
    assert filter_reason(detail) == reason


def _render(rst: str, targets: list[str]) -> str:
    """Render as Snakemake's report does, with its link targets appended."""
    links = "\n".join(f".. _{t}: javascript:void(0)" for t in targets)
    settings = {"report_level": 2, "halt_level": 5}
    return str(
        publish_parts(rst + "\n\n" + links, writer="html", settings_overrides=settings)["html_body"]
    )


def test_summary_rst_renders_with_the_numbers() -> None:
    summary = _summary()
    targets = {c: f"top_proteins_{i}.html" for i, c in enumerate(CONTRASTS)}
    rst = summary_rst(summary, targets, category="Differential abundance")
    out = _render(rst, [*targets.values(), "Differential abundance"])
    assert "system-message" not in out and "problematic" not in out, out
    assert "<strong>1 warning</strong>" in out
    assert "removed <em>many</em>" not in out and "removed *many* proteins" in out  # escaped
    assert "4 proteins removed before the model: min_features 2: 2" in out
    assert "12 proteins read" in out and "27 features" in out
    assert "1 with a feature left out by the feature majority rule" in out
    cells = re.findall(r"<td>(.*?)</td>", out)
    # contrast, tested, up, down, not tested, replication
    assert cells[:6][1:] == ["6", "3", "1", "2", "biological"]
    assert cells[6:12][1:] == ["7", "3", "2", "1", "biological"]
    assert "B2 (doubtful)" in out


class _Table(HTMLParser):
    """Rows of the first table's body and every attribute value."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.attrs: list[str] = []
        self.tags: set[str] = set()
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += [v or "" for _, v in attrs]
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._in_body and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


@pytest.mark.parametrize("n", [3, 0])
def test_top_table_has_the_table_rows_and_nothing_external(n: int) -> None:
    table = _differential()
    table.loc[0, "protein"] = "<script>alert(1)</script>"
    page = top_table_html(table, "B - A", n, fdr=0.05)
    parser = _Table()
    parser.feed(page)
    want = table.loc[table["contrast"] == "B - A"]
    want = want.head(n) if n else want
    rows = [[cell.strip() for cell in row] for row in parser.rows]
    assert [r[0] for r in rows] == want["protein"].tolist()
    assert all(len(r) == len(COLUMNS) for r in rows)
    lfc = [float(r[1]) if r[1] else np.nan for r in rows]
    np.testing.assert_allclose(lfc, want["log2fc"].round(3), equal_nan=True)
    adj = [float(r[4]) if r[4] else np.nan for r in rows]
    np.testing.assert_allclose(adj, want["adj_pvalue"], rtol=5e-3, equal_nan=True)
    assert [r[7] for r in rows][:4] == ["up", "down", "up", "up"][: len(rows)]
    # self-contained: no external resource or link, the protein name escaped
    assert not re.search(r"https?:|//|\bsrc=|<link|@import|url\(", page, re.IGNORECASE)
    assert "script" in parser.tags and "<script>alert" not in page
    assert all(not v.startswith(("http", "//")) for v in parser.attrs)


def test_methods_follow_the_config() -> None:
    base = _config()
    text = methods_rst(base, _summary(base), model_formula(("feature", "sample")))
    assert "log2 intensity ~ condition + (1 | feature) + (1 | sample)" in text
    assert "mode of a kernel density estimate" in text and "Huber weights" in text
    assert "B - A: s0² = 0.02, d0 = 4" in text and "C - A: s0² = 0.04, d0 = 5" in text
    assert "TREAT" not in text and "adjusted p < 0.05" in text
    for key in ("bates2015", "kuznetsova2017", "smyth2004", "huber1964", "goeminne2016"):
        assert REFERENCES[key] in text, key
    assert REFERENCES["benjamini1995"] in text and REFERENCES["bolstad2003"] not in text

    def methods(**changes: Any) -> str:
        config = _config(**changes)
        return methods_rst(config, _summary(config), model_formula(("feature", "run")))

    assert "decoys, contaminants and shared peptides were removed" in text
    kept = methods(**{"filter.remove_contaminants": False, "filter.shared_peptides": "keep"})
    assert "; decoys were removed; proteins with fewer than 2 precursors" in kept
    bare = methods(**{"filter.q_value": None, "filter.pg_q_value": None,
                      "filter.remove_decoys": False, "filter.remove_contaminants": False,
                      "filter.shared_peptides": "keep", "filter.min_features": 1})  # fmt: skip
    assert "Proteins with fewer than 2 observations were not tested" in bare
    assert "q-value" not in bare and "removed" not in bare
    plain = methods(**{"model.robust": "none"})
    assert "Huber" not in plain and REFERENCES["goeminne2016"] not in plain
    assert REFERENCES["huber1981"] in text and REFERENCES["huber1981"] not in plain
    quantile = methods(**{"normalization.method": "quantile"})
    assert "quantile normalised" in quantile and REFERENCES["bolstad2003"] in quantile
    assert "kernel density" not in quantile
    assert "run medians" in methods(**{"normalization.method": "median"})
    # (the majority rule shrinks its own variances by Smyth's empirical Bayes: off here)
    unmoderated = methods(moderation=False, **{"model.feature_majority": False})
    assert "moderated" not in unmoderated and REFERENCES["smyth2004"] not in unmoderated
    treat = methods(lfc_threshold=1.0, fdr=0.01)
    assert "TREAT" in treat and REFERENCES["mccarthy2009"] in treat
    assert "adjusted p < 0.01 and \\|log2 fold change\\| > 1" in treat
    infinite = _differential().assign(df_prior=np.inf)
    config = _config()
    summary = summarize(infinite, _variance(), _runs(), _sheet(), config, (), CONTRASTS)
    assert "B - A: s0² = 0.02, d0 = infinite" in methods_rst(config, summary, "y ~ condition")
    many = dataclasses.replace(
        _summary(),
        contrasts=tuple(
            dataclasses.replace(_summary().contrasts[0], name=f"C{i} - A", var_prior=0.01 * i)
            for i in range(1, 9)
        ),
    )
    assert "s0² from 0.01 to 0.08, d0 from 4 to 4 over 8 contrasts" in methods_rst(
        config, many, "y ~ condition"
    )
    capless = methods(**{"testing.df_cap": False})
    assert "capped" not in capless and "capped" in text
    assert "feature majority" not in text  # the text says what it does, not the key
    assert "was left out, provided the excluded stayed a strict minority" in text
    assert "(1 protein had a feature left out)" in text and REFERENCES["tukey1977"] in text
    for off in (plain, methods(**{"model.feature_majority": False})):
        assert "strict minority" not in off and REFERENCES["tukey1977"] not in off
    nonrobust = methods(**{"testing.robust": False})
    assert REFERENCES["phipson2016"] not in nonrobust and REFERENCES["phipson2016"] in text


def test_methods_references_are_numbered_in_citation_order() -> None:
    config = _config(**{"normalization.method": "quantile"}, lfc_threshold=0.5)
    text = methods_rst(config, _summary(config), "y ~ condition")
    body, refs = text.split("References:")
    cited = [int(n) for group in re.findall(r"\[([\d, ]+)\]", body) for n in group.split(",")]
    first = list(dict.fromkeys(cited))
    listed = [int(n) for n in re.findall(r"^(\d+)\. ", refs, re.MULTILINE)]
    assert first == listed == list(range(1, len(listed) + 1))


def test_methods_shrinkage_and_technical_replication() -> None:
    config = _config(**{"model.shrinkage": True, "testing.replication": "technical"})
    variance = _variance().assign(shrinkage_prior_df_sample=3.5, shrinkage_prior_ratio_sample=0.2)
    table = _differential().assign(replication="technical")
    summary = summarize(table, variance, _runs(), _sheet(), config, (), CONTRASTS)
    text = methods_rst(config, summary, model_formula(("feature", "run")))
    assert "sample: d0 = 3.5, prior ratio 0.2" in text
    assert "runs were the replication unit" in text
    # with shrinkage the contrast variances are not moderated again (pepmix.stages)
    assert "moderated across proteins" not in text and REFERENCES["chung2013"] in text


@pytest.mark.parametrize("calibration", [False, True])
def test_stage_writes_the_pages(tmp_path: Path, calibration: bool) -> None:
    inputs = {
        "differential": tmp_path / "da.parquet",
        "variance": tmp_path / "vc.tsv",
        "runs": tmp_path / "runs.tsv",
        "samples": tmp_path / "samples.tsv",
        "alerts": tmp_path / "alerts.tsv",
    }
    write_parquet(_differential(), inputs["differential"])
    write_tsv(_variance(), inputs["variance"])
    write_tsv(_runs(), inputs["runs"])
    write_tsv(_sheet(), inputs["samples"])
    write_alerts(inputs["alerts"], list(ALERTS))
    if calibration:
        inputs["calibration"] = tmp_path / "calibration.tsv"
        write_tsv(_calibration(), inputs["calibration"])
    tables = [tmp_path / "report" / f"top_proteins_{i}.html" for i in range(2)]
    config = copy.deepcopy(_config())
    pages = report_pages.run(
        inputs={k: str(v) for k, v in inputs.items()},
        config=config,
        contrasts=CONTRASTS,
        table_names=[t.name for t in tables],
        top_n=5,
    )
    pages.write(
        summary=tmp_path / "report/summary.rst",
        methods=tmp_path / "report/methods.rst",
        tables=tables,
    )
    summary = pages.summary
    assert summary.contrasts[1].tested == 7
    rst = (tmp_path / "report/summary.rst").read_text()
    assert "`B - A <top_proteins_0.html_>`_" in rst
    # the calibration table, when given, is read and summarised in one line
    assert (summary.calibration is not None) == calibration
    assert rst.count(":Calibration: 5 runs with permuted condition labels") == int(calibration)
    methods = (tmp_path / "report/methods.rst").read_text()
    # the formula is the one the fit uses for this sheet (no technical replicates)
    assert "``log2 intensity ~ condition + (1 | feature) + (1 | sample)``" in methods
    parser = _Table()
    parser.feed(tables[1].read_text())
    assert len(parser.rows) == 5


def test_stage_gathers_the_alerts(tmp_path: Path) -> None:
    """With the rules' alert files (``alert_parts``) the stage writes the run's alert table,
    the file rule ``alerts`` wrote (``gather_alerts``: each distinct alert once, in order),
    and the summary lists the same alerts."""
    inputs = {
        "differential": tmp_path / "da.parquet",
        "variance": tmp_path / "vc.tsv",
        "runs": tmp_path / "runs.tsv",
        "samples": tmp_path / "samples.tsv",
    }
    write_parquet(_differential(), inputs["differential"])
    write_tsv(_variance(), inputs["variance"])
    write_tsv(_runs(), inputs["runs"])
    write_tsv(_sheet(), inputs["samples"])
    other = Alert("test", "no_tests", "no protein could be tested in B - A")
    parts = [tmp_path / f"part{i}.tsv" for i in range(3)]
    write_alerts(parts[0], list(ALERTS))
    write_alerts(parts[1], [])
    write_alerts(parts[2], [other, *ALERTS])
    tables = [tmp_path / f"top_proteins_{i}.html" for i in range(2)]
    pages = report_pages.run(
        inputs={k: str(v) for k, v in inputs.items()},
        config=copy.deepcopy(_config()),
        contrasts=CONTRASTS,
        table_names=[t.name for t in tables],
        alert_parts=[str(p) for p in parts],
    )
    written = tmp_path / "alerts.tsv"
    pages.write(
        summary=tmp_path / "summary.rst",
        methods=tmp_path / "methods.rst",
        tables=tables,
        alerts=written,
    )
    gathered = tmp_path / "gathered.tsv"
    gather_alerts(parts, gathered)
    assert written.read_bytes() == gathered.read_bytes()
    assert read_alerts([written]) == [*ALERTS, other]
    assert pages.summary.alerts == (*ALERTS, other)


def _report_calls(text: str) -> list[str]:
    """The argument text of every ``report(...)``/``report_item(...)`` call of a rules file."""
    calls = []
    for match in re.finditer(r"\breport(?:_item)?\(", text):
        depth, i = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        calls.append(text[match.end() : i - 1])
    return calls


def test_every_report_item_has_an_existing_caption() -> None:
    rules = sorted((REPO / "rules").glob("*.smk"))
    calls = [c for p in rules for c in _report_calls(p.read_text())]
    assert len(calls) >= 10
    assert all("caption=" in c for c in calls), [c for c in calls if "caption=" not in c]
    named = set()
    for path in (REPO / "rules").glob("*.smk"):
        named |= set(re.findall(r"\"(?:\.\./workflow/report/)?([\w.]+\.rst)\"", path.read_text()))
    assert "top_proteins.rst" in named and "volcano.rst" in named
    for name in named:
        assert (REPO / "workflow/report" / name).is_file(), name


def _variance_with_tests() -> pd.DataFrame:
    """:func:`_variance` with the variance tests' columns (BH-adjusted p per term)."""
    variance = _variance()
    kept = variance["status"] != "filtered"
    n = int(kept.sum())
    variance.loc[kept, "adj_p_feature"] = np.linspace(1e-6, 0.04, n)  # all significant
    sample = np.array([0.001, 0.2, 0.049, 0.05, 1.0, np.nan, 0.01, 0.6])  # one not tested
    variance.loc[kept, "adj_p_sample"] = sample
    variance.loc[kept, "adj_p_boot_sample"] = 0.001  # bootstrap column: not a term
    return variance


def _calibration() -> pd.DataFrame:
    """Five permutations x two contrasts; C - A has calls in three (the check flags it)."""
    rows = []
    for perm in range(1, 6):
        for contrast, calls in (("B - A", [0, 0, 1, 0, 0]), ("C - A", [2, 0, 5, 1, 0])):
            rows.append(
                {
                    "permutation": perm,
                    "contrast": contrast,
                    "tested": 100 + perm,
                    "calls": calls[perm - 1],
                    "fraction_p05": 0.02 * perm,
                    "ks_statistic": 0.1,
                    "ks_pvalue": 0.5,
                    "residual_effect": 0.25,
                    "distinct_permutations": 34,
                    "groups": "x",
                }
            )
    return pd.DataFrame(rows)


def test_variance_tests_and_calibration_equal_the_tables() -> None:
    variance, calibration = _variance_with_tests(), _calibration()
    config = _config(fdr=0.05)
    summary = summarize(
        _differential(), variance, _runs(), _sheet(), config, ALERTS, CONTRASTS, calibration
    )
    expected = {}
    for term in ("feature", "sample"):
        adj = variance[f"adj_p_{term}"]
        expected[term] = (int((adj < 0.05).sum()), int(adj.notna().sum()))
    assert summary.variance_tests == expected == {"feature": (8, 8), "sample": (3, 7)}
    cal = summary.calibration
    assert cal is not None and cal.permutations == calibration["permutation"].nunique() == 5
    for contrast, part in calibration.groupby("contrast"):
        assert cal.with_calls[contrast] == (
            int((part["calls"] > 0).sum()),
            len(part),
            int(part["calls"].sum()),
        )
    pooled = (calibration["fraction_p05"] * calibration["tested"]).sum()
    assert cal.fraction_p05 == pytest.approx(pooled / calibration["tested"].sum(), rel=1e-12)
    assert list(cal.flagged) == ["C - A"]  # 3 of 5 permutations with calls at FDR 0.05
    out = _render(summary_rst(summary), [])
    assert "system-message" not in out and "problematic" not in out, out
    assert "feature 8 of 8, sample 3 of 7" in out
    assert "B - A 1 of 5 (1 call); C - A 3 of 5 (8 calls)" in out
    assert f"{100 * cal.fraction_p05:.1f} % of p &lt; 0.05" in out
    assert "<strong>the FDR may not hold</strong>: C - A" in out
    text = methods_rst(config, summary, "log2 intensity ~ condition + (1 | feature)")
    assert "(feature, sample) was tested against zero" in text
    assert REFERENCES["self1987"] in text and REFERENCES["stram1994"] in text
    # without the tests and the check: no line, no sentence
    plain = _summary()
    assert plain.variance_tests == {} and plain.calibration is None
    assert "Variance tests" not in summary_rst(plain) and "Calibration" not in summary_rst(plain)
    assert "tested against zero" not in methods_rst(_config(), plain, "y ~ condition")


def test_calibration_without_excess_says_so() -> None:
    calibration = _calibration().assign(calls=0, fraction_p05=0.04)
    summary = summarize(
        _differential(), _variance(), _runs(), _sheet(), _config(), (), CONTRASTS, calibration
    )
    assert summary.calibration is not None and summary.calibration.flagged == {}
    line = [x for x in summary_rst(summary).splitlines() if x.startswith(":Calibration:")]
    assert len(line) == 1
    assert "B - A 0 of 5 (0 calls)" in line[0] and "4.0 % of p < 0.05" in line[0]
    assert "no excess of calls or small p-values" in line[0]
