r"""A Python port of limma's empirical-Bayes variance moderation (Smyth 2004).

Model and notation
------------------
For protein (gene) :math:`g = 1, \dots, G` the per-protein model gives a residual variance
:math:`s^2_g` on :math:`d_g` degrees of freedom. :math:`d_g` may differ between proteins and need
not be an integer (Satterthwaite df from a mixed model are accepted). The hierarchical model of
Smyth (2004) is

.. math::

    s^2_g \mid \sigma^2_g \sim \sigma^2_g\,\chi^2_{d_g}/d_g, \qquad
    \frac{1}{\sigma^2_g} \sim \frac{1}{d_0 s_0^2}\,\chi^2_{d_0},

so that marginally :math:`s^2_g \sim s_0^2 \cdot F(d_g, d_0)`. The prior variance
:math:`s_0^2` (``var_prior``, limma ``s2.prior``) and prior degrees of freedom :math:`d_0`
(``df_prior``, limma ``df.prior``) are estimated from all proteins, and the posterior (moderated)
variance is

.. math::

    \tilde s^2_g = \frac{d_0 s_0^2 + d_g s^2_g}{d_0 + d_g}

on :math:`d_g + d_0` degrees of freedom (limma caps the total at :math:`\sum_g d_g`, see
:func:`total_df`). :math:`d_0 = \infty` means all true variances equal :math:`s_0^2`; then
:math:`\tilde s^2_g = s_0^2`.

One module per limma function family:

- :mod:`~pepmix.inference.limma.fitfdist`: :func:`fit_f_dist` (``fitFDist``), moment estimation
  of :math:`(s_0^2, d_0)`, optionally with a spline trend in a covariate;
- :mod:`~pepmix.inference.limma.robust`: :func:`fit_f_dist_robust` (``fitFDistRobustly``,
  Phipson et al. 2016), Winsorized estimation with per-protein prior df for outliers;
- :mod:`~pepmix.inference.limma.squeeze`: :func:`squeeze_var` (``squeezeVar``) and
  :func:`posterior_var`, the posterior variances;
- :mod:`~pepmix.inference.limma.treat`: :func:`total_df` (``df.total``) and
  :func:`treat_pvalues` (``treat``, McCarthy & Smyth 2009);
- :mod:`~pepmix.inference.limma.adjust`: :func:`bh_adjust` (``p.adjust(method = "BH")``,
  Benjamini & Hochberg 1995).

The private modules hold what numpy/scipy do not provide with R's arithmetic:
``_numeric`` (R's mean, type-7 quantile and ``uniroot``), ``_distributions`` (F and chi-square
densities, log tail probabilities and quantiles accurate in the far tails, after R's nmath) and
``_validate`` (input checks).

The code follows limma 3.54 (R 4.2) step by step, including its handling of zero and missing
variances and of zero or missing df, so results agree with limma to rounding (see
``tests/reference/ebayes``). Differences:

- inputs that are errors in a pipeline (negative or infinite variances, negative or infinite df)
  raise :class:`ValueError` instead of being dropped;
- the robust fit with a covariate (limma uses ``lowess`` for it) is not ported;
- F and chi-square tail probabilities are computed on the log scale without underflow, where R 4.2
  can underflow or lose accuracy for extreme variances (far outliers); quantiles reproduce R's
  ``qf`` formula, including its rounding;
- limma >= 3.62 by default estimates the prior differently when the df are unequal
  (``fitFDistUnequalDF1``, ``legacy = FALSE``); this package reproduces the legacy (3.54) method.

How pepmix applies it (which variances are moderated, which proteins estimate the prior) is
:mod:`pepmix.inference.moderation`.

References
----------
Smyth GK (2004). Linear models and empirical Bayes methods for assessing differential expression
in microarray experiments. Stat Appl Genet Mol Biol 3, Article 3.

Phipson B, Lee S, Majewski IJ, Alexander WS, Smyth GK (2016). Robust hyperparameter estimation
protects against hypervariable genes and improves power to detect differential expression. Ann
Appl Stat 10, 946-963.

McCarthy DJ, Smyth GK (2009). Testing significance relative to a fold-change threshold is a TREAT.
Bioinformatics 25, 765-771.

Benjamini Y, Hochberg Y (1995). Controlling the false discovery rate: a practical and powerful
approach to multiple testing. J R Stat Soc B 57, 289-300.
"""

from pepmix.inference.limma.adjust import bh_adjust
from pepmix.inference.limma.fitfdist import FDistFit, fit_f_dist
from pepmix.inference.limma.robust import fit_f_dist_robust
from pepmix.inference.limma.squeeze import SqueezeResult, posterior_var, squeeze_var
from pepmix.inference.limma.treat import total_df, treat_pvalues

__all__ = [
    "FDistFit",
    "SqueezeResult",
    "bh_adjust",
    "fit_f_dist",
    "fit_f_dist_robust",
    "posterior_var",
    "squeeze_var",
    "total_df",
    "treat_pvalues",
]
