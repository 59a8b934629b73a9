r"""Run-level design of the per-protein model: fixed-effect columns and random factors.

Every protein shares one run-level design; a protein only sees the runs it was observed in.

Fixed effects (columns of :math:`X`, in this order):

- ``condition``: one indicator column per condition level (cell means). This spans the same space
  as lme4's treatment coding ``~ condition`` (intercept = first level) with a unimodular change of
  basis, so the REML criterion is identical; coefficients are converted to treatment coding where
  lme4's names are needed.
- ``batch`` (when listed in ``model.fixed``): treatment-coded indicators of all batches but the
  first.
- numeric run-level covariates named in ``model.covariates`` (sample-sheet columns), centred.

Random intercept factors (``model.random``), any subset of:

- ``feature``: the peptide or precursor (levels are protein-specific),
- ``sample``: the biological replicate (``bioreplicate`` column; the run itself without technical
  replicates, and the run with technical replication, see below),
- ``run``: the MS run (only distinct from ``sample`` with technical replicates),
- ``batch``: the MS batch,
- ``feature:condition`` ("peptide usage", off by default): one level per (feature, condition)
  cell, lme4's ``(1|feature:condition)``. It models a feature whose response differs from the
  protein's in one condition (a shifted, modified or shared peptide) as a random interaction
  instead of letting it bias the condition effect.
- ``batch:condition``: the batch-by-condition cell, i.e. the heterogeneity of the condition
  effect across batches (labs, sites). ``(1|batch) + (1|batch:condition)`` is the
  compound-symmetry form of lme4's ``(condition|batch)``: every condition mean gets a batch
  deviation with the same variance :math:`\sigma^2_{bc}`, so the effect of a pairwise contrast
  varies between batches with SD :math:`\sqrt{2}\,\sigma_{bc}` (Pinheiro & Bates 2000,
  sec. 4.2, the ``pdCompSymm`` form; Bates et al. 2015, lme4, sec. 2.2). The contrast the model
  tests is then the effect averaged over batches, and its standard error includes the
  between-batch variance of the effect. Needs at least two batches and a batch term (random or
  fixed). Like the sample, the cell is run-level (every run has one batch and one condition).
  The effect is then replicated by batches: the df cap counts them
  (:func:`batch_condition_df`).
- ``condition|batch``: lme4's ``(condition|batch)``, correlated random deviations of every
  condition mean per batch with an unstructured covariance (the general form of the
  compound-symmetry ``batch`` + ``batch:condition``); fitted per protein by
  :mod:`pepmix.model.slopes`. Replaces the ``batch`` term (it contains the batch intercept);
  needs at least two batches; the df cap counts batches as for ``batch:condition``.

Default ``random``: ``[feature, sample]``, plus ``run`` when some sample has several runs.

Replication unit
----------------
A condition effect is replicated by the units the ``sample`` factor stands for; they set the
between-sample df cap and the moderation scale of :mod:`pepmix.inference.differential`.
:func:`replication_unit` decides, from the sample sheet, what they are (``testing.replication``):

- ``biological`` (the default whenever some condition has at least two biological samples): the
  biological samples (``bioreplicate``). Conditions with a single sample still enter the model;
  their contrasts use the sample variance estimated from the replicated conditions (the usual
  equal-variance assumption of a linear model), labelled ``biological_pooled``
  (:func:`contrast_replication`).
- ``technical`` (the default when no condition has two biological samples, e.g. one sample per
  condition measured in several runs; or forced): the runs are the replicates. The run takes the
  place of the sample in the model (``sample`` in ``model.random`` becomes ``run``) and in the df
  cap. p-values then generalise to new runs of the same samples, not to new biological samples.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pepmix.alerts import alert
from pepmix.errors import ConfigError, DesignError

log = logging.getLogger(__name__)

#: the peptide-usage term, lme4's ``(1|feature:condition)``: one level per observed
#: (feature, condition) cell, nested in the feature (see :mod:`pepmix.model.suffstats`)
USAGE_FACTOR = "feature:condition"
#: random factor of the batch-by-condition cell (heterogeneity of the effect across batches)
BATCH_CONDITION = "batch:condition"
#: correlated random intercept and condition effects per batch, lme4's ``(condition|batch)``
#: (fitted by :mod:`pepmix.model.slopes`, not by the batched engine)
SLOPE_TERM = "condition|batch"
RANDOM_FACTORS = (
    "feature", "sample", "run", "batch", BATCH_CONDITION, USAGE_FACTOR, SLOPE_TERM,
)  # fmt: skip
#: random factors whose level is a property of the observation, not of the run
OBSERVATION_FACTORS = ("feature", USAGE_FACTOR)
RUN_LEVEL_FACTORS = ("sample", "run", "batch", BATCH_CONDITION)
#: values of ``testing.replication``
REPLICATION_MODES = ("auto", "biological", "technical")
#: per-contrast labels of what replicates the condition effect (see :func:`contrast_replication`)
REPLICATION_LABELS = ("biological", "biological_pooled", "technical", "none")


@dataclass(frozen=True)
class ModelSpec:
    """Which terms the per-protein model has.

    Attributes
    ----------
    random : tuple of str
        Random-intercept factors, a subset of :data:`RANDOM_FACTORS`.
    fixed_batch : bool
        Whether batch is a fixed effect.
    covariates : tuple of str
        Numeric run-level covariates (sample-sheet columns).
    fixed_runs : bool
        One fixed mean per run instead of condition/batch/covariate columns (the protein
        abundance model); see :func:`abundance_design`.
    replication : str
        What replicates the condition effect: ``"biological"`` (biological samples, the
        ``bioreplicate`` column) or ``"technical"`` (the runs); see :func:`replication_unit`.
    """

    random: tuple[str, ...] = ("feature", "sample")
    fixed_batch: bool = False
    covariates: tuple[str, ...] = ()
    fixed_runs: bool = False
    replication: str = "biological"


def biological_samples(sheet: pd.DataFrame) -> dict[str, int]:
    """Number of biological samples (distinct ``bioreplicate``) per condition, in sheet order."""
    counts = sheet.groupby("condition", sort=False)["bioreplicate"].nunique()
    return {str(c): int(n) for c, n in counts.items()}


def replication_unit(sheet: pd.DataFrame, mode: str = "auto") -> str:
    """What replicates the condition effect: ``"biological"`` or ``"technical"``.

    Parameters
    ----------
    sheet : pandas.DataFrame
        Sample sheet with ``run``, ``condition``, ``bioreplicate``.
    mode : {"auto", "biological", "technical"}, default "auto"
        ``testing.replication``. ``auto`` is ``technical`` when no condition has two biological
        samples, else ``biological``. A forced ``biological`` without biological replication is
        kept: no protein can then be tested (the differential stage says so in an alert).

    Raises
    ------
    ConfigError
        For an unknown mode.
    """
    if mode not in REPLICATION_MODES:
        raise ConfigError(
            f"config: testing.replication: {mode!r} is not one of {', '.join(REPLICATION_MODES)}"
        )
    if mode != "auto":
        return mode
    replicated = any(n >= 2 for n in biological_samples(sheet).values())
    return "biological" if replicated else "technical"


def default_random(sheet: pd.DataFrame) -> tuple[str, ...]:
    """``(feature, sample)`` plus ``run`` when some biological sample has several runs."""
    tech_reps = sheet.groupby("bioreplicate")["run"].nunique().max() > 1
    return ("feature", "sample", "run") if tech_reps else ("feature", "sample")


def _technical_random(random: tuple[str, ...]) -> tuple[str, ...]:
    """Random factors with the run in place of the biological sample (technical replication)."""
    return tuple(dict.fromkeys("run" if f == "sample" else f for f in random))


def model_spec_from_config(
    model_config: Mapping[str, Any], sheet: pd.DataFrame, replication: str = "auto"
) -> ModelSpec:
    """Build a :class:`ModelSpec` from the ``model:`` config section.

    Parameters
    ----------
    model_config : mapping
        Keys ``random`` (default :func:`default_random`), ``fixed`` (default ``[condition]``),
        ``covariates`` (default ``[]``).
    sheet : pandas.DataFrame
        Sample sheet (see :mod:`pepmix.samples`).
    replication : {"auto", "biological", "technical"}, default "auto"
        ``testing.replication`` (see :func:`replication_unit`). With technical replication
        ``sample`` in the random factors is replaced by ``run``.

    Raises
    ------
    ConfigError
        For unknown fixed terms, batch both fixed and random, or a covariate that is not a
        numeric sample-sheet column.
    """
    random = tuple(model_config.get("random") or default_random(sheet))
    unknown = [r for r in random if r not in RANDOM_FACTORS]
    if unknown:
        raise ConfigError(f"config: model.random: unknown factor(s) {', '.join(unknown)}")
    fixed = list(model_config.get("fixed") or ["condition"])
    if "condition" not in fixed:
        raise ConfigError("config: model.fixed: must include 'condition'")
    extra = [f for f in fixed if f not in ("condition", "batch")]
    if extra:
        raise ConfigError(
            f"config: model.fixed: unknown term(s) {', '.join(extra)}; "
            "numeric run-level covariates go in model.covariates"
        )
    fixed_batch = "batch" in fixed
    if fixed_batch and "batch" in random:
        raise ConfigError("config: model: batch cannot be both fixed and random")
    if ("batch" in random or fixed_batch) and sheet["batch"].isna().all():
        raise ConfigError("config: model: a batch term needs a batch column or several inputs")
    _check_slope(random, fixed_batch, sheet)
    _check_batch_condition(random, fixed_batch, sheet)
    covariates = tuple(model_config.get("covariates") or ())
    for cov in covariates:
        if cov not in sheet.columns:
            raise ConfigError(f"config: model.covariates: {cov!r} is not a sample-sheet column")
        values = pd.to_numeric(sheet[cov], errors="coerce")
        if values.isna().any():
            raise ConfigError(f"config: model.covariates: column {cov!r} must be numeric")
    batches = sheet["batch"].dropna().nunique()
    if batches > 1 and not fixed_batch and not {"batch", SLOPE_TERM} & set(random):
        alert(
            log,
            "batch_not_modelled",
            f"the sample sheet has {batches} batches but the model has no batch term: batch "
            "effects stay in the residuals (normalization.within_batch only aligns run "
            "medians); add model.fixed: [condition, batch] or model.random: [feature, sample, "
            "batch] to model them",
        )
    unit = replication_unit(sheet, replication)
    if unit == "technical":
        random = _technical_random(random)
    return ModelSpec(
        random=random, fixed_batch=fixed_batch, covariates=covariates, replication=unit
    )


def _check_batch_condition(random: tuple[str, ...], fixed_batch: bool, sheet: pd.DataFrame) -> None:
    """A ``batch:condition`` term needs a batch term and at least two batches."""
    if BATCH_CONDITION not in random:
        return
    if not fixed_batch and "batch" not in random:
        raise ConfigError(
            "config: model.random: batch:condition needs a batch term "
            "(batch in model.random or model.fixed)"
        )
    if sheet["batch"].dropna().nunique() < 2:
        raise ConfigError("config: model.random: batch:condition needs at least two batches")


def _check_slope(random: tuple[str, ...], fixed_batch: bool, sheet: pd.DataFrame) -> None:
    """``condition|batch`` contains the batch intercept and needs two batches."""
    if SLOPE_TERM not in random:
        return
    clash = [t for t in ("batch", BATCH_CONDITION, USAGE_FACTOR) if t in random]
    if fixed_batch:
        clash.append("fixed batch")
    if clash:
        raise ConfigError(
            f"config: model.random: condition|batch cannot be combined with {', '.join(clash)} "
            "(it contains the batch intercept and the batch-by-condition deviations)"
        )
    if sheet["batch"].dropna().nunique() < 2:
        raise ConfigError("config: model.random: condition|batch needs at least two batches")


@dataclass
class RunDesign:
    """Run-level design matrices and factor codes.

    Attributes
    ----------
    runs : list of str
        Run names; run code ``r`` indexes rows of ``x``.
    x : ndarray, shape (R, p)
        Fixed-effect design per run.
    x_names : list of str
        Column names (``condition[A]``, ``batch[b2]``, covariate names).
    conditions : list of str
        Condition levels in sheet order; column ``i`` of ``x`` is ``conditions[i]``.
    condition_code : ndarray, shape (R,)
        Condition index of each run.
    sample_code : ndarray, shape (R,)
        Replication unit of each run: biological sample (``bioreplicate``) index, or the run
        index with technical replication (``spec.replication``).
    factor_codes : dict of str to ndarray
        Level code per run of each run-level random factor.
    factor_levels : dict of str to list of str
        Level names of each run-level random factor.
    spec : ModelSpec
        The model.
    biological_samples : dict of str to int
        Biological samples per condition in the sheet (:func:`biological_samples`).
    """

    runs: list[str]
    x: NDArray[np.float64]
    x_names: list[str]
    conditions: list[str]
    condition_code: NDArray[np.intp]
    sample_code: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    factor_codes: dict[str, NDArray[np.intp]] = field(default_factory=dict)
    factor_levels: dict[str, list[str]] = field(default_factory=dict)
    spec: ModelSpec = field(default_factory=ModelSpec)
    biological_samples: dict[str, int] = field(default_factory=dict)

    @property
    def n_fixed(self) -> int:
        """Number of fixed-effect columns."""
        return int(self.x.shape[1])

    def treatment_matrix(self) -> NDArray[np.float64]:
        """Matrix ``T`` with ``beta_treatment = T @ beta`` (lme4's ``~ condition`` coding)."""
        p = self.n_fixed
        k = len(self.conditions)
        t = np.eye(p)
        t[1:k, 0] = -1.0
        return t

    def treatment_names(self) -> list[str]:
        """Coefficient names as lme4 writes them (``(Intercept)``, ``conditionB``, ``batchb2``)."""
        names = ["(Intercept)"] + [f"condition{c}" for c in self.conditions[1:]]
        rest = [
            n.replace("batch[", "batch").rstrip("]") for n in self.x_names[len(self.conditions) :]
        ]
        return names + rest


def build_run_design(
    sheet: pd.DataFrame, spec: ModelSpec, runs: Sequence[str] | None = None
) -> RunDesign:
    """Build the :class:`RunDesign` for the runs of a sample sheet.

    Parameters
    ----------
    sheet : pandas.DataFrame
        Sample sheet with ``run``, ``condition``, ``bioreplicate``, ``batch``.
    spec : ModelSpec
        Model terms.
    runs : sequence of str, optional
        Run order (default: sheet order).
    """
    sheet = sheet.set_index("run", drop=False)
    run_list = list(runs) if runs is not None else list(sheet["run"])
    missing = [r for r in run_list if r not in sheet.index]
    if missing:
        raise DesignError(f"run(s) not in the sample sheet: {', '.join(missing)}")
    rows = sheet.loc[run_list]
    conditions = list(dict.fromkeys(sheet["condition"]))
    cond_code = np.array([conditions.index(c) for c in rows["condition"]], dtype=np.intp)
    columns = [np.eye(len(conditions))[cond_code]]
    names = [f"condition[{c}]" for c in conditions]
    batches = list(dict.fromkeys(sheet["batch"].dropna()))
    if spec.fixed_batch and len(batches) > 1:
        codes = np.array([batches.index(b) for b in rows["batch"]], dtype=np.intp)
        columns.append(np.eye(len(batches))[codes][:, 1:])
        names += [f"batch[{b}]" for b in batches[1:]]
    for cov in spec.covariates:
        values = pd.to_numeric(rows[cov]).to_numpy(dtype=np.float64)
        columns.append((values - values.mean())[:, None])
        names.append(cov)
    x = np.hstack(columns).astype(np.float64)
    codes_by_factor: dict[str, NDArray[np.intp]] = {}
    levels_by_factor: dict[str, list[str]] = {}
    unit_column = "run" if spec.replication == "technical" else "bioreplicate"
    sources = {"sample": unit_column, "run": "run", "batch": "batch"}
    for fac in spec.random:
        if fac in OBSERVATION_FACTORS:
            continue
        if fac == BATCH_CONDITION:
            values_s = rows["batch"].astype(str) + ":" + rows["condition"].astype(str)
        elif fac == SLOPE_TERM:
            values_s = rows["batch"].astype(str)
        else:
            values_s = rows[sources[fac]].astype(str)
        levels = list(dict.fromkeys(values_s))
        codes_by_factor[fac] = np.array([levels.index(v) for v in values_s], dtype=np.intp)
        levels_by_factor[fac] = levels
    return RunDesign(
        runs=run_list,
        x=x,
        x_names=names,
        conditions=conditions,
        condition_code=cond_code,
        sample_code=pd.factorize(rows[unit_column].astype(str))[0].astype(np.intp),
        factor_codes=codes_by_factor,
        factor_levels=levels_by_factor,
        spec=spec,
        biological_samples=biological_samples(rows),
    )


def usage_code(
    feat: NDArray[np.integer[Any]], run: NDArray[np.integer[Any]], design: RunDesign
) -> NDArray[np.intp]:
    """Global level code of the ``feature:condition`` factor: ``feature * n_conditions +
    condition`` for feature codes ``feat`` observed in runs ``run``."""
    n_cond = max(len(design.conditions), 1)
    return np.asarray(feat.astype(np.intp) * n_cond + design.condition_code[run], dtype=np.intp)


def contrast_replication(design: RunDesign, numerator: str, denominator: str) -> str:
    """What replicates the contrast ``numerator - denominator`` (one of :data:`REPLICATION_LABELS`).

    - ``technical``: the design uses runs as replicates (``spec.replication``).
    - ``biological``: both conditions have at least two biological samples.
    - ``biological_pooled``: a condition of the contrast has one biological sample; its
      uncertainty comes from the sample variance of the replicated conditions of the design
      (equal variance across conditions assumed).
    - ``none``: no condition has two biological samples and technical replication was not
      chosen (``testing.replication: biological``): nothing replicates the contrast.
    """
    if design.spec.replication == "technical":
        return "technical"
    counts = design.biological_samples
    if counts.get(numerator, 0) >= 2 and counts.get(denominator, 0) >= 2:
        return "biological"
    if any(n >= 2 for n in counts.values()):
        return "biological_pooled"
    return "none"


def batch_condition_df(
    prot: NDArray[np.intp], run: NDArray[np.intp], design: RunDesign, n_prot: int
) -> NDArray[np.float64]:
    """Containment df of the condition effect in the ``batch:condition`` stratum, per protein.

    With a ``batch:condition`` term the condition effect is replicated by batches, not by
    samples: the containment df (SAS's method, as for the sample cap of
    :mod:`pepmix.inference.differential`) are the observed batch-by-condition cells minus the
    rank of the batch and condition main effects on them, :math:`c - (b + k - m)` for ``c``
    cells, ``b`` batches, ``k`` conditions and ``m`` connected components of the
    batch-condition graph; :math:`(b-1)(k-1)` in a complete design, ``b - 1`` for two
    conditions.

    Parameters
    ----------
    prot, run : ndarray of int, shape (N,)
        Protein and run code of each observation.
    design : RunDesign
        Must hold a ``batch:condition`` factor.
    n_prot : int
        Number of proteins.

    Returns
    -------
    ndarray, shape (n_prot,)
        The df (may be < 1: no between-batch replication of the effect); NaN without
        observations.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    cell_of_run = design.factor_codes[BATCH_CONDITION]
    n_cell = int(cell_of_run.max()) + 1
    cells = np.unique(prot.astype(np.int64) * n_cell + cell_of_run[run])
    c_prot, c_cell = np.divmod(cells, n_cell)
    batch_names = [lv.rsplit(":", 1)[0] for lv in design.factor_levels[BATCH_CONDITION]]
    batch_of_cell = pd.factorize(pd.Series(batch_names))[0]
    cond_of_cell = np.zeros(n_cell, dtype=np.intp)
    cond_of_cell[cell_of_run] = design.condition_code
    n_b, n_k = int(batch_of_cell.max()) + 1, max(len(design.conditions), 1)
    # graph nodes: (protein, batch) then (protein, condition); one edge per observed cell
    b_node = c_prot * n_b + batch_of_cell[c_cell]
    k_node = n_prot * n_b + c_prot * n_k + cond_of_cell[c_cell]
    n_nodes = n_prot * (n_b + n_k)
    graph = coo_matrix((np.ones(cells.size), (b_node, k_node)), shape=(n_nodes, n_nodes))
    _, label = connected_components(graph, directed=False)
    used = np.unique(np.concatenate([b_node, k_node]))
    node_prot = np.where(used < n_prot * n_b, used // n_b, (used - n_prot * n_b) // n_k)
    n_nodes_p = np.bincount(node_prot, minlength=n_prot)
    comp = np.unique(np.stack([node_prot, label[used]]), axis=1)
    n_comp = np.bincount(comp[0], minlength=n_prot)
    n_cells = np.bincount(c_prot, minlength=n_prot)
    out = (n_cells - n_nodes_p + n_comp).astype(np.float64)
    out[n_cells == 0] = np.nan
    return out


def abundance_design(runs: Sequence[str]) -> RunDesign:
    """Design of the protein abundance model: a fixed mean per run, random feature effects.

    ``y_fr = mu_r + u_f + e_fr``. The run means are eliminated analytically by the engine (see
    :class:`pepmix.model.reml.Bucket`), so no fixed-effect column is materialised.
    """
    run_list = list(runs)
    return RunDesign(
        runs=run_list,
        x=np.zeros((len(run_list), 0)),
        x_names=[],
        conditions=[],
        condition_code=np.zeros(len(run_list), dtype=np.intp),
        sample_code=np.arange(len(run_list), dtype=np.intp),
        factor_codes={},
        factor_levels={},
        spec=ModelSpec(random=("feature",), fixed_runs=True),
    )


class _NoAlerts(logging.Filter):
    """Drop alert records (:func:`pepmix.alerts.alert`), keep the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pepmix.alerts import ALERT_ATTR

        return getattr(record, ALERT_ATTR, None) is None


def fitted_spec(config: Mapping[str, Any], sheet: pd.DataFrame) -> ModelSpec:
    """The model the fit stage built from the sheet and the ``model`` and
    ``testing.replication`` config (:func:`model_spec_from_config`), rebuilt without raising
    the design's alerts again (the model stage raised them, e.g. an unmodelled batch column)."""
    replication = (config.get("testing", {}) or {}).get("replication", "auto")
    quiet = _NoAlerts()
    log.addFilter(quiet)
    try:
        return model_spec_from_config(config.get("model", {}) or {}, sheet, replication)
    finally:
        log.removeFilter(quiet)
