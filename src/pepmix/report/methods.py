"""A methods paragraph for a paper, generated from the configuration and the fitted priors.

:func:`methods_rst` writes what this run did -- filters, normalisation, the model formula with its
replication unit, robust weights, variance shrinkage, the degrees-of-freedom rule, moderation with
the fitted prior (:math:`d_0`, :math:`s_0^2` of each contrast), TREAT, Benjamini-Hochberg -- with
the references of each method used, numbered in order of first citation. Only what the config
switched on is described, so the text can be pasted into a paper as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pepmix
from pepmix.report.summary import ContrastSummary, Summary, rst_escape

#: reference key -> full citation
REFERENCES: dict[str, str] = {
    "bates2015": (
        "Bates D, Maechler M, Bolker B, Walker S (2015). Fitting linear mixed-effects models "
        "using lme4. *Journal of Statistical Software* 67(1):1-48. DOI 10.18637/jss.v067.i01"
    ),
    "kuznetsova2017": (
        "Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package: tests in linear "
        "mixed effects models. *Journal of Statistical Software* 82(13):1-26. "
        "DOI 10.18637/jss.v082.i13"
    ),
    "satterthwaite1946": (
        "Satterthwaite FE (1946). An approximate distribution of estimates of variance "
        "components. *Biometrics Bulletin* 2(6):110-114. DOI 10.2307/3002019"
    ),
    "huber1964": (
        "Huber PJ (1964). Robust estimation of a location parameter. *Annals of Mathematical "
        "Statistics* 35(1):73-101. DOI 10.1214/aoms/1177703732"
    ),
    "huber1981": (
        "Huber PJ (1981). *Robust Statistics*. Wiley, New York (sections 3.2 and 7.6). "
        "DOI 10.1002/0471725250"
    ),
    "goeminne2016": (
        "Goeminne LJE, Gevaert K, Clement L (2016). Peptide-level robust ridge regression "
        "improves estimation, sensitivity, and specificity in data-dependent quantitative "
        "label-free shotgun proteomics. *Molecular & Cellular Proteomics* 15(2):657-668. "
        "DOI 10.1074/mcp.M115.055897"
    ),
    "tukey1977": "Tukey JW (1977). *Exploratory Data Analysis*. Addison-Wesley, Reading MA",
    "smyth2004": (
        "Smyth GK (2004). Linear models and empirical Bayes methods for assessing differential "
        "expression in microarray experiments. *Statistical Applications in Genetics and "
        "Molecular Biology* 3:Article 3. DOI 10.2202/1544-6115.1027"
    ),
    "phipson2016": (
        "Phipson B, Lee S, Majewski IJ, Alexander WS, Smyth GK (2016). Robust hyperparameter "
        "estimation protects against hypervariable genes and improves power to detect "
        "differential expression. *Annals of Applied Statistics* 10(2):946-963. "
        "DOI 10.1214/16-AOAS920"
    ),
    "stephens2017": (
        "Stephens M (2017). False discovery rates: a new deal. *Biostatistics* 18(2):275-294. "
        "DOI 10.1093/biostatistics/kxw041"
    ),
    "lu2016": (
        "Lu M, Stephens M (2016). Variance adaptive shrinkage (vash): flexible empirical Bayes "
        "estimation of variances. *Bioinformatics* 32(22):3428-3434"
    ),
    "koenker2014": (
        "Koenker R, Mizera I (2014). Convex optimization, shape constraints, compound "
        "decisions, and empirical Bayes rules. *Journal of the American Statistical "
        "Association* 109(506):674-685. DOI 10.1080/01621459.2013.869224"
    ),
    "chung2013": (
        "Chung Y, Rabe-Hesketh S, Dorie V, Gelman A, Liu J (2013). A nondegenerate penalized "
        "likelihood estimator for variance parameters in multilevel models. *Psychometrika* "
        "78(4):685-709. DOI 10.1007/s11336-013-9328-2"
    ),
    "mccarthy2009": (
        "McCarthy DJ, Smyth GK (2009). Testing significance relative to a fold-change "
        "threshold is a TREAT. *Bioinformatics* 25(6):765-771. DOI 10.1093/bioinformatics/btp053"
    ),
    "benjamini1995": (
        "Benjamini Y, Hochberg Y (1995). Controlling the false discovery rate: a practical and "
        "powerful approach to multiple testing. *Journal of the Royal Statistical Society B* "
        "57(1):289-300. DOI 10.1111/j.2517-6161.1995.tb02031.x"
    ),
    "self1987": (
        "Self SG, Liang KY (1987). Asymptotic properties of maximum likelihood estimators and "
        "likelihood ratio tests under nonstandard conditions. *Journal of the American "
        "Statistical Association* 82(398):605-610. DOI 10.1080/01621459.1987.10478472"
    ),
    "stram1994": (
        "Stram DO, Lee JW (1994). Variance components testing in the longitudinal mixed effects "
        "model. *Biometrics* 50(4):1171-1177. DOI 10.2307/2533455"
    ),
    "bolstad2003": (
        "Bolstad BM, Irizarry RA, Astrand M, Speed TP (2003). A comparison of normalization "
        "methods for high density oligonucleotide array data based on variance and bias. "
        "*Bioinformatics* 19(2):185-193. DOI 10.1093/bioinformatics/19.2.185"
    ),
    "li2025": (
        "Li M, Cobbold SA, Smyth GK (2025). limpa: Quantification and Differential Analysis of "
        "Proteomics Data. Bioconductor R package (detection probability curve)."
    ),
    "brooks2017": (
        "Brooks ME, Kristensen K, van Benthem KJ, Magnusson A, Berg CW, Nielsen A, Skaug HJ, "
        "Maechler M, Bolker BM (2017). glmmTMB balances speed and flexibility among packages for "
        "zero-inflated generalized linear mixed modeling. *The R Journal* 9(2):378-400. "
        "DOI 10.32614/RJ-2017-066"
    ),
}


class _Citations:
    """Numbers references in order of first citation."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, *keys: str) -> str:
        numbers = []
        for key in keys:
            if key not in self.keys:
                self.keys.append(key)
            numbers.append(str(self.keys.index(key) + 1))
        return f"[{', '.join(numbers)}]"


def _filters(config: Mapping[str, Any]) -> str:
    f = config.get("filter", {}) or {}
    rows = []
    if f.get("q_value") is not None:
        rows.append(f"q-value <= {f['q_value']:g}")
    if f.get("pg_q_value") is not None:
        rows.append(f"protein-group q-value <= {f['pg_q_value']:g}")
    kept = (
        f"Rows with {' and '.join(rows)} were kept (where the input reports them); " if rows else ""
    )
    removed = [
        what
        for what, on in (
            ("decoys", f.get("remove_decoys", True)),
            ("contaminants", f.get("remove_contaminants", True)),
            ("shared peptides", f.get("shared_peptides", "exclude") == "exclude"),
        )
        if on
    ]
    listed = " and ".join([", ".join(removed[:-1]), removed[-1]] if len(removed) > 1 else removed)
    dropped = f"{listed} were removed; " if removed else ""
    minima = [
        f"{n} {what}s"
        for n, what in (
            (int(f.get("min_features", 2)), config.get("feature_level", "precursor")),
            (int(f.get("min_observations", 2)), "observation"),
        )
        if n > 1
    ]
    text = f"{kept}{dropped}" + (
        f"proteins with fewer than {' or fewer than '.join(minima)} were not tested."
        if minima
        else "every protein with an observation was modelled."
    )
    return text[0].upper() + text[1:]


def _normalization(config: Mapping[str, Any], cite: _Citations) -> str:
    from pepmix.normalization import DEFAULT_LOCATION, DEFAULT_METHOD

    norm = config.get("normalization", {}) or {}
    method = str(norm.get("method", DEFAULT_METHOD))
    location = (
        "mode of a kernel density estimate"
        if norm.get("location", DEFAULT_LOCATION) == "mode"
        else ("median")
    )
    text = {
        "protein_median": (
            "each run was shifted by the "
            f"{location} over proteins of the protein-level log ratios (per protein and run, "
            "the median over its features of each feature's log2 ratio to its mean over runs), "
            "so that every protein counts once"
        ),
        "median_ratio": (
            "each run was shifted by the median over features of each feature's log2 ratio to "
            "its mean over runs"
        ),
        "median": "the run medians of the log2 intensities were equalised",
        "reference": (
            "the run medians of the log2 intensities of the reference proteins (named in the "
            "configuration) were equalised"
        ),
        "quantile": "the runs were quantile normalised",
        "none": "the runs were not normalised",
    }[method]
    if method == "quantile":
        text += f" {cite('bolstad2003')}"
    if method == "protein_median" and norm.get("reference_proteins"):
        text += " (location over the reference proteins only)"
    batch = " within each batch" if norm.get("within_batch") and method != "none" else ""
    return f"Intensities were log2 transformed and {text}{batch}."


def _missing(config: Mapping[str, Any], cite: _Citations) -> str:
    """How the missing values entered the model (config ``missing``)."""
    if config.get("missing", "mar") != "detection":
        return "on the observed values only (no imputation)"
    return (
        "with missing values not at random: a probit detection probability curve, "
        "P(detected | y) = Phi(b0 + b1 y), was estimated once from all normalised features "
        f"(as limpa's detection probability curve {cite('li2025')}, pooled, per batch or per run "
        "chosen by BIC), and each protein's likelihood combined the normal density of the "
        "observed values with the probability of non-detection of each missing value, with the "
        "random and fixed effects integrated out by a Laplace approximation (the REML-like "
        f"criterion of glmmTMB {cite('brooks2017')}, which equals the REML criterion when the "
        "curve is flat); a normal prior on each condition's deviation from the protein mean (SD = "
        "the spread of protein abundances) kept the estimates finite, and standard errors came "
        "from the observed information; for proteins never observed in one condition of a "
        "contrast the log2 fold change, its credible interval and the p-value (twice the "
        "posterior probability of the less likely sign, counting a zero change on both sides) "
        "came from the contrast's Laplace marginal likelihood under an adaptive-shrinkage prior "
        f"(a point mass at 0 and normals at 0, {cite('stephens2017')}) fitted to the fold "
        "changes of the proteins observed in both conditions"
    )


def _model(
    formula: str, replication: str, cite: _Citations, config: Mapping[str, Any] | None = None
) -> str:
    unit = {
        "technical": (
            "The runs were the replication unit (technical replication: the run takes the place "
            "of the biological sample), so p-values refer to repeated measurements of the same "
            "samples, not to new biological samples."
        ),
        "biological": "The biological samples were the replication unit.",
    }.get(replication, f"Replication unit: {rst_escape(replication)}.")
    lme4 = cite("bates2015")
    return (
        "For each protein a linear mixed model, ``" + formula + "``, was fitted by restricted "
        f"maximum likelihood (REML) with the REML criterion of lme4 {lme4}, "
        f"{_missing(config or {}, cite)}. {unit}"
    )


def _robust(config: Mapping[str, Any], cite: _Citations) -> str:
    if (config.get("model", {}) or {}).get("robust", "huber") != "huber":
        return ""
    return (
        " Observations were down-weighted by M-estimation with Huber weights "
        f"{cite('huber1964')} (k = 1.345, scale: median absolute deviation of the protein's "
        "residuals) by iteratively reweighted REML, as in msqrob2 "
        f"{cite('goeminne2016')}; because the weights are estimated, the variances of the "
        "estimates were multiplied by Huber's normal-model factor c = 1.230 "
        f"{cite('huber1981')}."
    )


def _majority(config: Mapping[str, Any], summary: Summary, cite: _Citations) -> str:
    """The feature majority rule (``model.feature_majority``, robust fits only)."""
    model = config.get("model", {}) or {}
    if model.get("robust", "huber") == "none" or not model.get("feature_majority", True):
        return ""
    excluded = summary.majority_excluded
    plural = "" if excluded == 1 else "s"
    count = "" if excluded is None else f" ({excluded:,} protein{plural} had a feature left out)"
    return (
        " Before the robust fit, a feature whose condition profile differed from those of the "
        "protein's other features was left out, provided the excluded stayed a strict "
        "minority, as a median polish disregards a minority feature "
        f"{cite('tukey1977')}: per protein with at least 3 features observed in two or more "
        "conditions, each feature's interaction with the others' additive profile was tested "
        "against the within-cell variance of a fit saturated in feature x condition, shrunk "
        f"across proteins by empirical Bayes {cite('smyth2004')}, at a Bonferroni level of "
        f"0.01 over the protein's features, step-down{count}."
    )


def _shrinkage(summary: Summary, cite: _Citations) -> str:
    if not summary.shrinkage_prior:
        return ""
    priors = "; ".join(
        f"{rst_escape(term)}: d0 = {df:.3g}, prior ratio {ratio:.3g}"
        for term, (df, ratio) in summary.shrinkage_prior.items()
    )
    return (
        " The ratios of the random-effect variances to the residual variance had an empirical "
        "Bayes scaled-inverse-chi-square prior estimated from all proteins by marginal "
        f"likelihood ({priors}); each protein's variances are the posterior mode "
        f"{cite('smyth2004', 'chung2013')}."
    )


def _df_rule(config: Mapping[str, Any], summary: Summary, cite: _Citations) -> str:
    testing = config.get("testing", {}) or {}
    text = (
        "Contrasts between conditions were tested with t statistics on Satterthwaite degrees of "
        f"freedom {cite('satterthwaite1946')}, computed as in lmerTest {cite('kuznetsova2017')}"
    )
    if config.get("missing", "mar") == "detection":
        text += (
            " for the observed-data (MAR) fit of the same model (for proteins never observed in "
            "one condition: the between-sample df, at least 1)"
        )
    if testing.get("df_cap", True):
        extra = " plus the prior df" if summary.shrinkage_prior else ""
        text += (
            ", capped at the number of observed replication units minus the estimated fixed "
            f"effects{extra}"
        )
        random = (config.get("model", {}) or {}).get("random") or ()
        if "batch:condition" in random or "condition|batch" in random:
            text += (
                " and at the containment df of the batch-by-condition term ((batches - 1) x "
                "(conditions - 1) in a complete design): the contrasts are effects averaged "
                "over batches, replicated by batches"
            )
    return text + "."


def _prior_text(c: ContrastSummary) -> str:
    if c.df_prior is None or c.var_prior is None:
        return f"{rst_escape(c.name)}: not moderated (too few tested proteins)"
    df = "infinite" if c.df_prior == float("inf") else f"{c.df_prior:.3g}"
    return f"{rst_escape(c.name)}: s0² = {c.var_prior:.3g}, d0 = {df}"


#: contrasts whose priors are listed one by one (more: the range over contrasts)
MAX_LISTED_PRIORS = 6


def _priors(contrasts: Sequence[ContrastSummary]) -> str:
    fitted = [c for c in contrasts if c.df_prior is not None and c.var_prior is not None]
    if len(contrasts) <= MAX_LISTED_PRIORS or len(fitted) < 2:
        return "; ".join(_prior_text(c) for c in contrasts)
    var = [float(c.var_prior) for c in fitted if c.var_prior is not None]
    df = [float(c.df_prior) for c in fitted if c.df_prior is not None]
    text = (
        f"s0² from {min(var):.3g} to {max(var):.3g}, d0 from {min(df):.3g} to {max(df):.3g} "
        f"over {len(fitted)} contrasts"
    )
    if len(fitted) < len(contrasts):
        text += f"; {len(contrasts) - len(fitted)} contrast(s) not moderated"
    return text


def _moderation(config: Mapping[str, Any], summary: Summary, cite: _Citations) -> str:
    shrinkage = bool((config.get("model", {}) or {}).get("shrinkage", False))
    if not config.get("moderation", True) or shrinkage:
        return ""
    testing = config.get("testing", {}) or {}
    robust = bool(testing.get("robust", True))
    eb = cite("smyth2004")
    prior = testing.get("variance_prior", "limma")
    if prior == "stratum":
        return (
            " Each contrast's variance, per replication unit, was modelled as the replicate "
            "stratum's variance plus the protein's residual floor (the contrast's variance at "
            "replicate variance zero, treated as known); the distribution of the replicate "
            "stratum's variance across proteins was estimated by nonparametric maximum "
            f"likelihood on a grid {cite('koenker2014')} from the between-replicate mean "
            f"squares (empirical Bayes {eb}), and p-values are the posterior-predictive normal "
            "tail areas; proteins whose model lost the replicate factor were moderated with "
            "limma's prior."
        )
    if prior in ("vash", "vash_censored"):
        censored = (
            " (fits with the replicate variance at zero entering the likelihood as censored "
            "observations)"
            if prior == "vash_censored"
            else ""
        )
        return (
            " Each contrast's variance, per replication unit, was moderated across proteins by "
            f"empirical Bayes {eb} with a unimodal mixture of scaled-inverse-chi-square priors "
            f"fitted by maximum likelihood{censored} (variance adaptive shrinkage "
            f"{cite('lu2016')}); p-values are the posterior mixture of the components' "
            "moderated-t p-values, the reported df those at which the moderated t gives that "
            "p-value."
        )
    how = f"limma's robust prior estimation {cite('phipson2016')}" if robust else "limma"
    priors = _priors(summary.contrasts)
    return (
        " Each contrast's variance, per replication unit, was moderated across proteins by "
        f"empirical Bayes {eb} with {how}; the moderated df are the protein's "
        f"df plus the prior df d0 (fitted prior per contrast, median over proteins: {priors})."
    )


def _calls(summary: Summary, cite: _Citations) -> str:
    text = ""
    if summary.lfc_threshold > 0:
        text += (
            f" p-values are for H0: \\|log2 fold change\\| <= {summary.lfc_threshold:g} "
            f"(TREAT {cite('mccarthy2009')})."
        )
    rule = f"adjusted p < {summary.fdr:g}"
    if summary.lfc_threshold > 0:
        rule += f" and \\|log2 fold change\\| > {summary.lfc_threshold:g}"
    return text + (
        " p-values were adjusted per contrast over the tested proteins by the "
        f"Benjamini-Hochberg method {cite('benjamini1995')}; proteins with {rule} were called "
        "differentially abundant."
    )


def _variance_tests(config: Mapping[str, Any], summary: Summary, cite: _Citations) -> str:
    if not summary.variance_tests:
        return ""
    terms = ", ".join(rst_escape(t) for t in summary.variance_tests)
    n_boot = int((config.get("variance_tests", {}) or {}).get("bootstrap", 0) or 0)
    boot = (
        f", and by a parametric bootstrap from the fitted null model ({n_boot} replicates)"
        if n_boot > 0
        else ""
    )
    fit = " of the observed-data fit" if config.get("missing", "mar") == "detection" else ""
    return (
        f" Each random-effect variance ({terms}){fit} was tested against zero per protein by the "
        "REML likelihood ratio of the models with and without the term, with p-values from the "
        f"50:50 mixture of chi-square distributions with 0 and 1 df {cite('self1987', 'stram1994')}"
        f"{boot}, adjusted per term over proteins by the Benjamini-Hochberg method."
    )


def methods_rst(config: Mapping[str, Any], summary: Summary, formula: str) -> str:
    """The methods section (reStructuredText, titled *Methods*) with its references.

    Parameters
    ----------
    config : mapping
        The validated config.
    summary : Summary
        The run's numbers (:func:`pepmix.report.summary.summarize`): replication unit, priors,
        calling rule.
    formula : str
        The fitted model, e.g. ``"log2 intensity ~ condition + (1 | feature) + (1 | sample)"``
        (:func:`model_formula`).

    Returns
    -------
    str
    """
    cite = _Citations()
    replication = _replication_unit(summary.contrasts)
    paragraph = (
        f"Differential abundance was analysed with pepmix {pepmix.__version__}. "
        f"{_filters(config)} {_normalization(config, cite)} "
        f"{_model(formula, replication, cite, config)}"
        f"{_robust(config, cite)}{_majority(config, summary, cite)}"
        f"{_shrinkage(summary, cite)} {_df_rule(config, summary, cite)}"
        f"{_moderation(config, summary, cite)}{_calls(summary, cite)}"
        f"{_variance_tests(config, summary, cite)}"
    )
    lines = ["Methods", "-------", "", paragraph, "", "References:", ""]
    lines += [f"{i}. {REFERENCES[key]}" for i, key in enumerate(cite.keys, start=1)]
    return "\n".join(lines) + "\n"


def _replication_unit(contrasts: Sequence[ContrastSummary]) -> str:
    labels = {label for c in contrasts for label in c.replication}
    if labels and labels <= {"technical"}:
        return "technical"
    return (
        "biological" if labels <= {"biological", "biological_pooled"} else ", ".join(sorted(labels))
    )


def model_formula(
    random: Sequence[str], fixed_batch: bool = False, covariates: Sequence[str] = ()
) -> str:
    """The per-protein model as an lme4 formula.

    Parameters
    ----------
    random : sequence of str
        Random-intercept factors (:attr:`pepmix.model.design.ModelSpec.random`).
    fixed_batch : bool, default False
        Batch as a fixed effect.
    covariates : sequence of str, default ()
        Numeric run-level covariates.

    Returns
    -------
    str
        E.g. ``"log2 intensity ~ condition + (1 | feature) + (1 | sample)"``.
    """
    fixed = ["condition"] + (["batch"] if fixed_batch else []) + list(covariates)
    terms = fixed + [f"({r.replace('|', ' | ')})" if "|" in r else f"(1 | {r})" for r in random]
    return "log2 intensity ~ " + " + ".join(terms)
