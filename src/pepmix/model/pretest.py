r"""Contrasts from the peptide-usage model where a protein's peptides disagree: a preliminary
test of the feature x condition interaction ("sometimes pool"), config
``peptide_usage_contrasts``.

Model and notation. The default contrast model of a protein is
:math:`y = X\beta + Z_F u_F + Z_S u_S + \varepsilon` (random feature and sample intercepts, plus
the other random terms of ``model.random``); the usage model adds :math:`w_{fc} \sim
N(0, \sigma_U^2)`, one random intercept per observed feature x condition cell
(:mod:`pepmix.model.usage`). A feature that moves in one condition alone (a modified, shared or
interfered peptide) is such an interaction: the default model puts part of its shift into the
condition effect :math:`\hat\beta_c` and its standard error does not see it (a false positive);
the usage model charges the disagreement between peptides to the contrast's variance and its
Satterthwaite df. Where peptides agree, the usage model only costs power, so it is not used for
every protein.

Preliminary test (Bancroft 1944, *Ann. Math. Stat.* 15:190; Bozivich, Bancroft & Hartley 1956,
*Ann. Math. Stat.* 27:1017; review: Hines 1996, *The Statistician* 45:21): the interaction is
tested first, with the usage LRT every fit job computes (``peptide_usage: true``;
:math:`H_0: \sigma_U^2 = 0`, p-value :math:`p_U` from the 50:50 chi-bar-square mixture,
:func:`pepmix.model.variance_tests.mixture_pvalue`, per protein, not adjusted), and

- :math:`p_U < \alpha_{pre}`: the contrast comes from the usage model (its :math:`\hat\beta`,
  :math:`V`, :math:`\partial V / \partial\psi`, :math:`A`, :math:`\sigma`, df; the stored fit of
  :mod:`pepmix.model.stored`);
- otherwise from the default model (the interaction is "pooled" into the residual).

Bozivich et al. recommend a liberal :math:`\alpha_{pre}` (about 0.25) so that the final test
keeps its size when the interaction is present but small. Modes (``peptide_usage_contrasts``):
``never`` (every contrast from the default model; the stored fit is the default fit, unchanged),
``pretest`` (the rule above, :math:`\alpha_{pre}` = ``peptide_usage_pretest_alpha``),
``always`` (the usage model for every protein it was refitted for: two or more features, some
feature seen in two conditions, :func:`pepmix.model.usage.usage_estimable`), ``no_majority``
(the usage model for the refitted proteins with fewer than :data:`MAJORITY` = 3 features observed
in two or more conditions, :func:`shared_features`) and ``no_majority_pretest`` (those of them
whose :math:`p_U < \alpha_{pre}`). No model is fitted here: the usage model's fit is the one the
usage test made (:func:`pepmix.model.usage.usage_shard`).

No majority. A shifted feature is an interaction the robust fit can only outvote when enough
features agree: in the additive fit of the 2 x J table of a protein's cell means one feature
shifted by :math:`s` in one condition leaves residuals :math:`\pm s(J-1)/(2J)` in its cells and
:math:`\pm s/(2J)` in the others, so with the MAD scale of :mod:`pepmix.model.robust` it lies
:math:`(J-1)/1.4826` scale units out: every residual is equal at :math:`J = 2` (the shift is not
identifiable from the protein's change) and Huber's :math:`k = 1.345` is barely reached at
:math:`J = 3` (measured, ``benchmarks/huber_shifted_feature.py``: log2FC 0.50 s and 0.31 s;
least squares 0.33 s). For such a protein the honest answer is the usage model's wider interval.

Stored layout. The usage model has one more variance parameter, :math:`\theta_U`. In every mode
but ``never`` the default model's derivatives :math:`\partial V/\partial\psi` and
lmerTest's :math:`A` are padded with zeros for it (:math:`V` of the default model does not
depend on :math:`\theta_U`), so :math:`g'Ag` and the df are unchanged, and every shard has the
same variance parameters (shards gather into one table, whether or not a protein switched). The
decision uses only the protein's own LRT and observations, so the tables do not depend on the
number of shards.

Not the default (``never``): measured with ``benchmarks/usage_pretest.py`` it removes the
outlier-feature false positives of the simulated *outliers* scenario (FDP 7.1 % -> 1.5 %), but on
the demo most UPS spike-ins have peptides that disagree (usage p < 0.01 for 39 of 44) and lose
power (README, "Contrasts from the usage model after a preliminary test"). The ``no_majority``
modes (``benchmarks/usage_majority.py``): FDP 4.7-4.8 %, null p-values uniform at
:math:`\alpha_{pre}` 0.05, but 5 of the demo's 7 two-peptide UPS proteins have peptides that
disagree and 5 / 3 / 5 fewer UPS proteins are called per contrast (README, "Where the outlier
false positives come from").
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from numpy.typing import NDArray

from pepmix.model.design import RunDesign
from pepmix.model.fit import FITTED, Encoded
from pepmix.model.stored import StoredFit
from pepmix.model.usage import UsageShard, with_usage

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MODE",
    "MAJORITY",
    "MODES",
    "check_mode",
    "pad_varpar",
    "shared_features",
    "switch_mask",
    "usage_contrasts",
    "usage_varpar_names",
]

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.intp]

#: values of config ``peptide_usage_contrasts``
MODES = ("never", "pretest", "always", "no_majority", "no_majority_pretest")
#: the ``no_majority`` modes switch proteins with fewer features than this observed in two or
#: more conditions (with two, one feature against one: a shift is not identifiable; see the
#: module docstring for why even three are few for Huber weights)
MAJORITY = 3
#: default of ``peptide_usage_contrasts``
DEFAULT_MODE = "never"
#: default of ``peptide_usage_pretest_alpha`` (Bozivich, Bancroft & Hartley 1956)
DEFAULT_ALPHA = 0.25
#: per-protein arrays of :class:`pepmix.model.stored.StoredFit` taken from the usage model
_ARRAYS = (
    "n_features",
    "n_obs",
    "sigma",
    "nu",
    "df_between",
    "samples_per_condition",
    "beta",
    "beta_centred",
    "cov_beta",
    "dcov_beta",
    "vcov_varpar",
    "cov_beta_floor",
    "stratum_ratio",
)


def usage_varpar_names(stored: StoredFit) -> list[str]:
    """Variance parameters of the usage model of ``stored``'s design: ``theta_<factor>`` of
    its random factors with ``feature:condition`` added (canonical order), then ``sigma``."""
    spec = with_usage(stored.design.spec)
    return [f"theta_{f}" for f in spec.random] + ["sigma"]


def pad_varpar(stored: StoredFit, names: list[str]) -> StoredFit:
    """``stored`` with its variance parameters extended to ``names`` (a superset, any order):
    the new parameters' derivative matrices and rows and columns of ``A`` are 0.

    Raises
    ------
    ValueError
        When a variance parameter of ``stored`` is not in ``names``.
    """
    missing = [n for n in stored.varpar_names if n not in names]
    if missing:
        raise ValueError(f"pad_varpar: {missing} not among {names}")
    if list(stored.varpar_names) == list(names):
        return stored
    pos = np.asarray([names.index(n) for n in stored.varpar_names], dtype=np.intp)
    n_prot, _, p, _ = stored.dcov_beta.shape
    k = len(names)
    dcov = np.zeros((n_prot, k, p, p))
    dcov[:, pos] = stored.dcov_beta
    vcov = np.zeros((n_prot, k, k))
    vcov[:, pos[:, None], pos[None, :]] = stored.vcov_varpar
    return dataclasses.replace(stored, dcov_beta=dcov, vcov_varpar=vcov, varpar_names=list(names))


def check_mode(mode: str) -> None:
    """Raise ``ValueError`` unless ``mode`` is one of :data:`MODES`."""
    if mode not in MODES:
        raise ValueError(f"peptide_usage_contrasts: unknown mode {mode!r} (one of {MODES})")


def shared_features(enc: Encoded, design: RunDesign) -> IntArray:
    """Per protein of ``enc``: the number of features observed in two or more conditions (the
    features that inform a condition contrast directly; the count the no-majority rule of
    :mod:`pepmix.model.robust` starts from).

    Parameters
    ----------
    enc : Encoded
        The fit's observations.
    design : RunDesign
        Its design (``condition_code`` per run).
    """
    n_prot = len(enc.proteins)
    if enc.feat.size == 0:
        return np.zeros(n_prot, dtype=np.intp)
    n_cond = max(len(design.conditions), 1)
    cond = design.condition_code[enc.run]
    n_feat = int(enc.feat.max()) + 1
    seen = np.zeros((n_feat, n_cond), dtype=bool)
    seen[enc.feat, cond] = True
    fprot = np.zeros(n_feat, dtype=np.intp)
    fprot[enc.feat] = enc.prot
    shared = seen.sum(axis=1) >= 2
    return np.bincount(fprot, weights=shared, minlength=n_prot).astype(np.intp)


def switch_mask(
    lrt: FloatArray,
    status: list[str],
    mode: str,
    alpha: float = DEFAULT_ALPHA,
    shared: IntArray | None = None,
    majority: int = MAJORITY,
) -> BoolArray:
    """Per protein of the usage fit: take the contrast from it?

    Parameters
    ----------
    lrt : ndarray
        Usage LRT per protein (NaN: not tested).
    status : list of str
        Status of each protein's usage fit (only fitted ones, :data:`pepmix.model.fit.FITTED`,
        can switch).
    mode : {"never", "pretest", "always", "no_majority", "no_majority_pretest"}
        :data:`MODES`.
    alpha : float, default 0.25
        :math:`\\alpha_{pre}`: switch when the mixture p-value is below it (``pretest``,
        ``no_majority_pretest``).
    shared : ndarray of int, optional
        Features observed in two or more conditions per protein (:func:`shared_features`);
        required by the ``no_majority`` modes.
    majority : int, default :data:`MAJORITY`
        The ``no_majority`` modes switch proteins with fewer shared features than this.
    """
    from pepmix.model.variance_tests import mixture_pvalue

    check_mode(mode)
    fitted = np.isin(np.asarray(status, dtype=object), FITTED)
    if mode == "never":
        return np.zeros(fitted.shape, dtype=bool)
    if mode.startswith("no_majority"):
        if shared is None or len(shared) != fitted.size:
            raise ValueError(f"switch_mask: mode {mode!r} needs the shared feature counts")
        fitted = fitted & (np.asarray(shared) < majority)
    if mode in ("always", "no_majority"):
        return np.asarray(fitted)
    with np.errstate(invalid="ignore"):
        low = mixture_pvalue(np.asarray(lrt, dtype=np.float64)) < alpha
    return np.asarray(fitted & low)


def _note(lrt: FloatArray, mode: str, majority: int = MAJORITY) -> list[str]:
    """``detail`` note of the proteins whose contrast comes from the usage model."""
    from pepmix.model.variance_tests import mixture_pvalue

    why = {
        "pretest": "peptides disagree between conditions, ",
        "no_majority": f"fewer than {majority} features in two conditions, ",
        "no_majority_pretest": f"fewer than {majority} features in two conditions disagree, ",
    }.get(mode, "")
    return [
        f"contrast from the usage model ({why}usage LRT p={p:.2g})"
        if np.isfinite(p)
        else "contrast from the usage model"
        for p in mixture_pvalue(np.asarray(lrt, dtype=np.float64))
    ]


def usage_contrasts(
    default: StoredFit,
    usage: UsageShard,
    mode: str,
    alpha: float = DEFAULT_ALPHA,
    majority: int = MAJORITY,
) -> tuple[StoredFit, int]:
    """The stored fit whose contrasts follow ``mode`` (module docstring).

    Parameters
    ----------
    default : StoredFit
        The default model's stored fit of the shard.
    usage : UsageShard
        The shard's usage test (:func:`pepmix.model.usage.usage_shard`).
    mode : {"never", "pretest", "always"}
        Config ``peptide_usage_contrasts``; ``never`` returns ``default`` itself.
    alpha : float, default 0.25
        Config ``peptide_usage_pretest_alpha``.
    majority : int, default :data:`MAJORITY`
        The ``no_majority`` modes' threshold of features observed in two or more conditions.

    Returns
    -------
    stored : StoredFit
        Padded to the usage model's variance parameters (unless ``never``); the switched
        proteins carry the usage fit's values, its status and a ``detail`` note.
    n_switched : int
    """
    check_mode(mode)
    if mode == "never":
        return default, 0
    names = usage_varpar_names(default)
    out = pad_varpar(default, names)
    if usage.fit is None or len(usage.idx) == 0:
        return out, 0
    full = pad_varpar(StoredFit.from_model_fit(usage.fit), names)
    idx = np.asarray(usage.idx, dtype=np.intp)
    # only proteins the default model fitted (a protein it could not fit stays unanswered)
    was_fitted = np.isin(np.asarray(default.status, dtype=object)[idx], FITTED)
    shared = None
    if mode.startswith("no_majority") and usage.fit.encoded is not None:
        shared = shared_features(usage.fit.encoded, usage.fit.design)
    switch = switch_mask(usage.lrt, full.status, mode, alpha, shared, majority) & was_fitted
    src = np.flatnonzero(switch)
    rows = idx[src]
    if [default.proteins[i] for i in rows] != [full.proteins[i] for i in src]:
        raise ValueError("usage_contrasts: the usage fit's proteins are not the default fit's")
    if src.size == 0:
        return out, 0
    arrays = {name: np.array(getattr(out, name), copy=True) for name in _ARRAYS}
    for name, values in arrays.items():
        values[rows] = getattr(full, name)[src]
    status, detail = list(out.status), list(out.detail)
    for row, i, note in zip(rows, src, _note(usage.lrt[src], mode, majority), strict=True):
        status[row] = full.status[i]
        detail[row] = "; ".join(d for d in (full.detail[i], note) if d)
    result = dataclasses.replace(out, status=status, detail=detail)
    for name, values in arrays.items():
        setattr(result, name, values)
    return result, int(src.size)
