"""``pepmix.rule.skip_artist_docstrings``: the plot scripts let matplotlib skip the ``set()``
documentation of its Artist classes; the figures stay the same bytes in every format."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
PLOT_SCRIPTS = ("plot_qc", "plot_qc_abundance", "plot_model", "plot_differential", "plot_usage")

# a figure with the features of pepmix's figures: constrained layout, log2 axis (mathtext tick
# labels), text, a legend, markers, a violin and box plot; PNG (indexed, pepmix's encoder),
# PDF and SVG through pepmix.plots.style.save
FIGURE = """
import hashlib, json, sys
from pathlib import Path
from pepmix.rule import skip_artist_docstrings

installed = skip_artist_docstrings() if sys.argv[2] == "skip" else False
import numpy as np
from matplotlib.lines import Line2D
from pepmix.plots.style import legend_handles, new_figure, save, styled

@styled
def draw(base):
    rng = np.random.default_rng(1)
    fig = new_figure(6.0, 4.0)
    left, right = fig.subplots(1, 2)
    left.violinplot([rng.normal(size=50), rng.normal(1, 2, size=50)], showextrema=False)
    left.boxplot([rng.normal(size=50), rng.normal(size=50)], patch_artist=True)
    left.text(1.0, 2.0, "median 3%\\nzero in 1,234", fontsize=6.5)
    left.set_title("Variance partition (2 proteins)", loc="left")
    right.scatter(rng.normal(size=30), 2.0 ** rng.normal(size=30), marker="s", label="B")
    right.set_yscale("log", base=2)
    right.legend(handles=legend_handles({"A": "#1b9e77", "B": "#d95f02"}))
    right.set_xlabel("log2 fold change")
    save(fig, [f"{base}.png", f"{base}.pdf", f"{base}.svg"])

draw(Path(sys.argv[1]) / "figure")
out = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(sys.argv[1]).iterdir()}
doc = Line2D.set.__doc__ or ""
print(json.dumps({"installed": installed, "files": out, "documented": "linewidth" in doc}))
"""


def _draw(tmp_path: Path, mode: str) -> dict[str, object]:
    out = tmp_path / mode
    out.mkdir()
    code = textwrap.dedent(FIGURE)
    done = subprocess.run(
        [sys.executable, "-c", code, str(out), mode], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_figures_are_the_same_bytes_without_the_artist_docs(tmp_path: Path) -> None:
    plain = _draw(tmp_path, "plain")
    skipped = _draw(tmp_path, "skip")
    # the stand-ins were installed and did their part: no property list in set()'s docstring
    assert skipped["installed"] is True
    assert plain["documented"] is True
    assert skipped["documented"] is False
    assert plain["files"] == skipped["files"]
    assert sorted(plain["files"]) == ["figure.pdf", "figure.png", "figure.svg"]  # type: ignore[call-overload]


def test_too_late_once_the_artists_exist() -> None:
    code = (
        "import matplotlib.figure\n"
        "from pepmix.rule import skip_artist_docstrings\n"
        "print(skip_artist_docstrings())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_every_plot_script_skips_them_before_its_first_other_import() -> None:
    for name in PLOT_SCRIPTS:
        body = ast.parse((SCRIPTS / f"{name}.py").read_text(encoding="utf-8")).body
        calls = [
            i
            for i, node in enumerate(body)
            if isinstance(node, ast.Expr) and "skip_artist_docstrings()" in ast.unparse(node)
        ]
        assert len(calls) == 1, name
        before = [ast.unparse(n) for n in body[: calls[0]] if isinstance(n, ast.ImportFrom)]
        assert before == ["from pepmix.rule import rule_context, skip_artist_docstrings"], name
