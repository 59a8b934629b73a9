"""Figure file names of every plot family (cheap to import: the workflow's rules use them)."""

from __future__ import annotations

QC_FEATURE_FIGURES = ("intensity_distributions", "features_per_run", "missingness")
"""QC figures of the feature intensities (rule ``plot_qc``; need only the normalised features)."""

QC_ABUNDANCE_FIGURES = ("pca", "correlation", "cv")
"""QC figures of the protein abundances (rule ``plot_qc_abundance``)."""

QC_FIGURES = QC_FEATURE_FIGURES + QC_ABUNDANCE_FIGURES
"""QC figures, in ``results/plots/qc/``."""

CONTRAST_FIGURES = ("volcano", "ma", "pvalue_hist")
"""Per-contrast result figures, in ``results/plots/contrasts/<contrast>/``."""

PROFILE_FILES = ("profiles.pdf", "profiles.png")
"""Per-contrast profile files: all top proteins (PDF, one per page) and the first few (PNG)."""

MODEL_FIGURES = ("variance_components", "variance_partition")
"""Model figures, in ``results/plots/model/``."""

STATUS_FIGURES = ("status",)
"""Status summary, in ``results/plots/``."""


def extra_formats(formats: list[str] | tuple[str, ...]) -> list[str]:
    """The formats of ``plots.formats`` besides PNG (which is always drawn, for the report)."""
    return [f for f in dict.fromkeys(str(x).lower() for x in formats) if f != "png"]
