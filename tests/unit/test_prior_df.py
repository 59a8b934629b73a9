"""The moderation prior is fitted to proteins with df >= 1 only; every tested protein is moderated.

A variance on df -> 0 has a log-variance sampling variance trigamma(df/2) ~ 4/df^2 (1e10 at
df = 2e-5); limma's moment estimator subtracts its mean from the observed spread of the
log-variances, which then goes negative and sets the prior df to infinity: every protein gets the
prior variance and the same standard error, and ranking has no power. Leaving such proteins out of
the estimate gives the prior of the others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pepmix.inference.differential import InferenceOptions, differential_table
from pepmix.inference.limma import squeeze_var
from pepmix.inference.moderation import squeeze_var_masked

N = 500


def _stats(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = rng.uniform(3.0, 8.0, N)
    s2 = 0.05 * rng.chisquare(df) / df * np.exp(rng.normal(0.0, 0.3, N))
    return pd.DataFrame(
        {
            "protein": [f"P{i:04d}" for i in range(N)],
            "contrast": "B - A",
            "estimate": rng.normal(0.0, 0.1, N),
            "se": np.sqrt(s2 * 0.5),
            "df": df,
            "status": "ok",
            "detail": "",
            "n_features": 5,
            "n_observations": 40,
            "n_samples_num": 4,
            "n_samples_den": 4,
            "df_between": 6.0,
        }
    )


@pytest.mark.parametrize("robust", [True, False])
def test_tiny_df_protein_does_not_set_the_prior(robust: bool) -> None:
    options = InferenceOptions(robust=robust)
    base = _stats()
    tiny = base.iloc[[0]].assign(protein="TINY", df=2e-5)
    without = differential_table(base, ["B - A"], options).set_index("protein")
    with_tiny = differential_table(pd.concat([base, tiny]), ["B - A"], options).set_index("protein")
    assert np.isfinite(with_tiny["df_prior"]).all()
    # the prior comes from the same proteins through the same code: equal up to rounding
    common = without.index
    np.testing.assert_allclose(with_tiny.loc[common, "df_prior"], without["df_prior"], rtol=1e-12)
    np.testing.assert_allclose(with_tiny.loc[common, "var_prior"], without["var_prior"], rtol=1e-12)
    np.testing.assert_allclose(with_tiny.loc[common, "se"], without["se"], rtol=1e-12)
    assert with_tiny["se"].nunique() > N // 2
    # the tiny-df protein is still moderated: its variance is essentially the prior's
    row = with_tiny.loc["TINY"]
    assert bool(row["moderated"])
    assert row["se"] ** 2 / 0.5 == pytest.approx(row["var_prior"], rel=1e-3)
    expected_d0 = without["df_prior"].max()  # robust: df2 of a non-outlying protein
    assert row["df_prior"] == pytest.approx(expected_d0, rel=1e-12)


def test_squeeze_var_masked_uses_the_masked_fit() -> None:
    frame = _stats(seed=4)
    s2 = frame["se"].to_numpy() ** 2 / 0.5
    df = frame["df"].to_numpy()
    mask = np.ones(N, dtype=bool)
    mask[:50] = False
    for robust in (False, True):
        masked = squeeze_var_masked(s2, df, mask, robust=robust)
        sub = squeeze_var(s2[mask], df[mask], robust=robust)
        np.testing.assert_allclose(masked.var_post[mask], sub.var_post, rtol=1e-12)
        assert masked.fit is not None and sub.fit is not None
        d0 = masked.fit.df2
        expected = (df[:50] * s2[:50] + d0 * float(sub.var_prior)) / (df[:50] + d0)
        np.testing.assert_allclose(masked.var_post[:50], expected, rtol=1e-12)
    with pytest.raises(ValueError, match="prior_mask"):
        squeeze_var_masked(s2, df, mask[:10])


def test_df_of_one_up_to_rounding_enters_the_prior() -> None:
    """A df that is 1 by the design comes out 1 +- a few ulps with the summation order (BLAS,
    CPU): both sides of 1 give the same prior (moderation.MIN_PRIOR_DF_RTOL); a df clearly below
    1 (0.99) does not enter it."""
    base = _stats()
    options = InferenceOptions()

    def prior_with_first_three(df_value: float) -> float:
        table = base.copy()
        table.loc[:2, "df"] = df_value
        table.loc[:2, "se"] = np.sqrt(0.5 * np.array([1e-4, 2.0, 1e-3]))  # far from the rest
        out = differential_table(table, ["B - A"], options)
        return float(out["df_prior"].iloc[10])

    above, below = prior_with_first_three(1.0 + 4e-16), prior_with_first_three(1.0 - 4e-16)
    # the same proteins in the fit; the df differ by 8e-16, so the prior only in rounding
    np.testing.assert_allclose(below, above, rtol=1e-12)
    assert abs(prior_with_first_three(0.99) - above) > 1e-3 * above
