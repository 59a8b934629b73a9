"""The top proteins of one contrast as a self-contained, sortable and searchable HTML page.

The page holds the first ``n`` rows of the contrast in the differential table's order (tested
proteins by p-value, then the untested ones), with columns protein, log2 FC, confidence
interval, adjusted p, features, status and the call (``up``/``down`` at the configured FDR and
``lfc_threshold``, the volcano plot's rule). The rows are plain HTML, so the page is readable
without scripts; a few lines of inline JavaScript sort by a clicked column (numbers as numbers,
empty cells last) and filter rows by a search text. Nothing is loaded from elsewhere (no CDN, no
external file): the Snakemake report embeds it and opens offline.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

#: columns of the page: (header, numeric)
COLUMNS = (
    ("protein", False),
    ("log2 FC", True),
    ("CI low", True),
    ("CI high", True),
    ("adj. p", True),
    ("features", True),
    ("status", False),
    ("call", False),
)

_STYLE = """
body{font:13px/1.4 system-ui,sans-serif;margin:12px;color:#222}
h1{font-size:16px;margin:0 0 4px}
p{margin:2px 0 8px;color:#555}
input{font:inherit;padding:3px 6px;width:18em}
table{border-collapse:collapse;margin-top:8px}
th,td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th:first-child,td:first-child,th:nth-child(7),td:nth-child(7){text-align:left}
th{cursor:pointer;background:#f3f3f3;position:sticky;top:0;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
tr.up td:last-child{color:#b2182b;font-weight:600}
tr.down td:last-child{color:#2166ac;font-weight:600}
"""

# Sort on header click (numbers numerically, empty cells last), filter rows on input.
_SCRIPT = """
(function(){
var t=document.getElementById("top"),b=t.tBodies[0],q=document.getElementById("q"),
n=document.getElementById("n"),hs=t.tHead.rows[0].cells,rows=[].slice.call(b.rows);
function show(){var s=q.value.trim().toLowerCase(),k=0;rows.forEach(function(r){
var on=!s||r.textContent.toLowerCase().indexOf(s)>=0;r.style.display=on?"":"none";if(on)k++;});
n.textContent=k+" of "+rows.length+" rows";}
[].forEach.call(hs,function(h,i){h.addEventListener("click",function(){
var num=h.getAttribute("data-num")==="1",d=h.getAttribute("aria-sort")==="ascending"?-1:1;
[].forEach.call(hs,function(x){x.removeAttribute("aria-sort");});
h.setAttribute("aria-sort",d>0?"ascending":"descending");
rows.sort(function(x,y){var a=x.cells[i].textContent,c=y.cells[i].textContent;
if(num){a=a===""?NaN:Number(a);c=c===""?NaN:Number(c);if(isNaN(a)||isNaN(c))
return isNaN(a)-isNaN(c);return (a-c)*d;}return a.localeCompare(c)*d;});
rows.forEach(function(r){b.appendChild(r);});});});
q.addEventListener("input",show);show();})();
"""


def _number(value: float, digits: int) -> str:
    return "" if not np.isfinite(value) else f"{value:.{digits}f}"


def _pvalue(value: float) -> str:
    return "" if not np.isfinite(value) else f"{value:.3g}"


def top_rows(
    table: pd.DataFrame, contrast: str, n: int, fdr: float, lfc_threshold: float = 0.0
) -> pd.DataFrame:
    """The rows of the page: the first ``n`` rows of ``contrast`` in table order, formatted.

    Parameters
    ----------
    table : pandas.DataFrame
        The differential table (sorted by contrast, then p-value, as the test stage writes it).
    contrast : str
        The contrast.
    n : int
        Rows to keep (0: all).
    fdr : float
        Adjusted p-value threshold of the calls.
    lfc_threshold : float, default 0.0
        Minimum absolute log2 fold change of a call (0: none).

    Returns
    -------
    pandas.DataFrame
        One text column per entry of :data:`COLUMNS`.
    """
    part = table.loc[table["contrast"].astype(str) == contrast]
    if n > 0:
        part = part.head(n)
    lfc = part["log2fc"].to_numpy(dtype=float)
    adj = part["adj_pvalue"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        sig = adj < fdr
        if lfc_threshold > 0:
            sig &= np.abs(lfc) > lfc_threshold
    call = np.where(sig & (lfc > 0), "up", np.where(sig & (lfc < 0), "down", ""))
    features = pd.to_numeric(part["n_features"], errors="coerce").to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "protein": part["protein"].astype(str).to_numpy(),
            "log2 FC": [_number(v, 3) for v in lfc],
            "CI low": [_number(v, 3) for v in part["ci_low"].to_numpy(dtype=float)],
            "CI high": [_number(v, 3) for v in part["ci_high"].to_numpy(dtype=float)],
            "adj. p": [_pvalue(v) for v in adj],
            "features": [_number(v, 0) for v in features],
            "status": part["status"].astype(str).to_numpy(),
            "call": call,
        }
    )


def top_table_html(
    table: pd.DataFrame,
    contrast: str,
    n: int,
    fdr: float,
    lfc_threshold: float = 0.0,
) -> str:
    """A self-contained HTML page with the top proteins of ``contrast`` (see module docstring).

    Parameters are those of :func:`top_rows`.

    Returns
    -------
    str
        The page; every cell text is HTML-escaped.
    """
    rows = top_rows(table, contrast, n, fdr, lfc_threshold)
    part = table["contrast"].astype(str) == contrast
    tested = int(np.isfinite(table.loc[part, "pvalue"].to_numpy(dtype=float)).sum())
    rule = f"adjusted p &lt; {fdr:g}"
    if lfc_threshold > 0:
        rule += f" and |log2 FC| &gt; {lfc_threshold:g}"
    head = "".join(f'<th data-num="{int(num)}">{html.escape(name)}</th>' for name, num in COLUMNS)
    # end tags of cells and rows omitted (valid HTML): a tenth of the page's size
    body = "\n".join(
        (f'<tr class="{r["call"]}">' if r["call"] else "<tr>")
        + "".join(f"<td>{html.escape(str(r[name]))}" for name, _ in COLUMNS)
        for r in rows.to_dict("records")
    )
    title = html.escape(contrast)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Top proteins: {title}</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>{title}: top {len(rows):,} of {int(part.sum()):,} proteins "
        f"({tested:,} tested)</h1>\n"
        f"<p>Sorted by p-value; click a column to sort, type to search. Call: {rule} "
        "(Benjamini-Hochberg per contrast); CI: 95 % confidence interval of the log2 fold "
        "change. All rows and columns: results/tables/differential_abundance.tsv.</p>\n"
        '<input id="q" type="search" placeholder="Search protein, status, call"> '
        '<span id="n"></span>\n'
        f'<table id="top"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>\n'
        f"<script>{_SCRIPT}</script>\n</body></html>\n"
    )
