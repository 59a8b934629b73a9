r"""The stored fit: what every contrast test needs, so that contrasts need no refit.

The model stage writes, per protein, the fixed effects :math:`\hat\beta` (length :math:`p`, in
:attr:`pepmix.model.design.RunDesign.x_names` coordinates), their covariance
:math:`V = \mathrm{Cov}(\hat\beta)` (:math:`p \times p`), the derivatives of :math:`V` in the
variance parameters :math:`\psi = (\theta_1, \dots, \theta_F, \sigma)`
(:math:`k = F + 1` matrices :math:`\partial V/\partial\psi_i`,
:func:`pepmix.model.satterthwaite.cov_derivatives`) and lmerTest's covariance :math:`A = 2H^+`
of :math:`\hat\psi` (:math:`k \times k`), plus the per-protein columns of the contrast table
(status, detail, counts, :math:`\sigma`, residual and between-sample df, replication units per
condition). The test stage then computes any contrast :math:`L` of the conditions:

.. math:: \hat\delta = L\hat\beta, \quad v = L V L', \quad g_i = L\,\frac{\partial V}
          {\partial\psi_i}\,L', \quad \mathrm{df} = \frac{2 v^2}{g' A g},

which is the Satterthwaite approximation of :mod:`pepmix.model.satterthwaite` written in the
fixed-effect space (:math:`L (\partial V/\partial\theta_f) L' = -\sigma^2 \ell' (\partial S_0 /
\partial\theta_f) \ell` with :math:`\ell = S_0^{-1}\tilde L`): the same numbers up to
floating-point rounding. With the robust fit :math:`V` and its derivatives carry the variance
factor :math:`c` (:mod:`pepmix.model.robust`); the df are unchanged by it (:math:`v^2` and
:math:`g'Ag` both scale with :math:`c^2`), as in the fit. :math:`\hat\beta` is stored centred at
the protein's mean (``beta_centred``; contrasts of conditions sum to zero, so the mean cancels
exactly) next to the reported fixed effects (``beta``, NaN on columns that were not estimable).

File layout (Parquet, one row per protein, in protein order): scalar columns ``protein, status,
detail, n_features, n_observations, sigma, df_residual, df_between``; fixed-size list columns
``samples_per_condition`` (:math:`C`), ``beta``, ``beta_centred`` (:math:`p`), ``cov_beta``
(:math:`p^2`, row-major), ``dcov_beta`` (:math:`k p^2`), ``vcov_varpar`` (:math:`k^2`),
``cov_beta_floor`` (:math:`p^2`: :math:`V_0`, the covariance at the replicate stratum's variance
zero) with the scalar ``stratum_ratio`` (:math:`F`, the replicate factor's between/within
mean-square ratio; both :func:`pepmix.model.fit.stratum_split`; written only when the fit
exported them, ``testing.variance_prior: stratum``; read as NaN where absent); the schema
metadata names the fixed effects, conditions and variance parameters. The contrast table gains
``var_floor`` :math:`= L V_0 L'` per contrast, the contrast variance's residual floor, and
``var_between`` :math:`= F\,L V_0 L'`, its unconstrained between-replicate mean square (the
stratum prior, :mod:`pepmix.inference.stratum`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from pepmix.errors import PepmixError
from pepmix.io import write_arrow
from pepmix.model.design import RunDesign
from pepmix.model.fit import ModelFit, contrast_floors, contrast_frame, contrast_matrix

FloatArray = NDArray[np.float64]
PathLike = str | Path

#: schema metadata keys
META_X = b"pepmix.fixed_effects"
META_CONDITIONS = b"pepmix.conditions"
META_VARPAR = b"pepmix.variance_parameters"
#: proteins per block of :meth:`StoredFit.contrast_tests` (bounds its temporary arrays)
BLOCK = 2048
#: list columns and their shape after the protein axis, by the sizes p, k, C
_LISTS = (
    "samples_per_condition",
    "beta",
    "beta_centred",
    "cov_beta",
    "dcov_beta",
    "vcov_varpar",
    "cov_beta_floor",
)


@dataclass
class StoredFit:
    """Per-protein fit results that contrasts need (module docstring).

    Attributes
    ----------
    proteins, status, detail : list of str
    design : RunDesign
        The design the fit used (rebuilt by the reader from the sample sheet and the config).
    n_features, n_obs : ndarray of int, shape (P,)
    sigma, nu, df_between : ndarray, shape (P,)
    samples_per_condition : ndarray of int, shape (P, C)
    beta, beta_centred : ndarray, shape (P, p)
    cov_beta : ndarray, shape (P, p, p)
    dcov_beta : ndarray, shape (P, k, p, p)
    vcov_varpar : ndarray, shape (P, k, k)
    varpar_names : list of str
        ``theta_<factor>`` for each random factor, then ``sigma``.
    cov_beta_floor : ndarray, shape (P, p, p), optional
        Covariance at the replicate stratum's variance zero (module docstring); default None:
        NaN (not known).
    stratum_ratio : ndarray, shape (P,), optional
        :attr:`pepmix.model.fit.ModelFit.stratum_ratio`; default None: NaN (not known).
    stratum : bool, default False
        Whether the fit exported them (:attr:`pepmix.model.fit.ModelFit.stratum`): only then
        does the file have their columns (every shard of a run alike, so they gather).
    """

    proteins: list[str]
    design: RunDesign
    status: list[str]
    detail: list[str]
    n_features: NDArray[np.intp]
    n_obs: NDArray[np.intp]
    sigma: FloatArray
    nu: FloatArray
    df_between: FloatArray
    samples_per_condition: NDArray[np.intp]
    beta: FloatArray
    beta_centred: FloatArray
    cov_beta: FloatArray
    dcov_beta: FloatArray
    vcov_varpar: FloatArray
    varpar_names: list[str]
    cov_beta_floor: FloatArray | None = None
    stratum_ratio: FloatArray | None = None
    stratum: bool = False

    def __post_init__(self) -> None:
        if self.cov_beta_floor is None or self.cov_beta_floor.shape != self.cov_beta.shape:
            self.cov_beta_floor = np.full(self.cov_beta.shape, np.nan)
        if self.stratum_ratio is None or self.stratum_ratio.shape != self.sigma.shape:
            self.stratum_ratio = np.full(self.sigma.shape, np.nan)

    @classmethod
    def from_model_fit(cls, fit: ModelFit) -> StoredFit:
        """What :meth:`write` stores of a :class:`pepmix.model.fit.ModelFit`."""
        return cls(
            proteins=list(fit.proteins),
            design=fit.design,
            status=list(fit.status),
            detail=list(fit.detail),
            n_features=np.asarray(fit.n_features, dtype=np.intp),
            n_obs=np.asarray(fit.n_obs, dtype=np.intp),
            sigma=fit.sigma,
            nu=np.asarray(fit.nu, dtype=np.float64),
            df_between=fit.df_between(),
            samples_per_condition=fit.samples_per_condition,
            beta=fit.beta,
            beta_centred=fit.beta_centred,
            cov_beta=fit.cov_beta,
            dcov_beta=fit.dcov_beta,
            vcov_varpar=fit.vcov_varpar,
            varpar_names=fit.varpar_names(),
            cov_beta_floor=fit.cov_beta_floor,
            stratum_ratio=fit.stratum_ratio,
            stratum=fit.stratum,
        )

    def to_arrow(self) -> pa.Table:
        """The Parquet layout of the module docstring."""
        n = len(self.proteins)
        columns: dict[str, pa.Array] = {
            "protein": pa.array(self.proteins, type=pa.string()),
            "status": pa.array(self.status, type=pa.string()),
            "detail": pa.array(self.detail, type=pa.string()),
            "n_features": pa.array(np.asarray(self.n_features, dtype=np.int64)),
            "n_observations": pa.array(np.asarray(self.n_obs, dtype=np.int64)),
            "sigma": pa.array(np.asarray(self.sigma, dtype=np.float64)),
            "df_residual": pa.array(np.asarray(self.nu, dtype=np.float64)),
            "df_between": pa.array(np.asarray(self.df_between, dtype=np.float64)),
        }
        # the stratum prior's columns only when the fit exported them (fit_proteins(stratum=True),
        # every shard alike): other fits store what they stored before
        stratum = self.stratum
        if stratum:
            columns["stratum_ratio"] = pa.array(np.asarray(self.stratum_ratio, dtype=np.float64))
        for name in _LISTS:
            if name == "cov_beta_floor" and not stratum:
                continue
            values = np.asarray(getattr(self, name))
            dtype = np.int64 if name == "samples_per_condition" else np.float64
            flat = values.reshape(n, int(np.prod(values.shape[1:]))).astype(dtype)
            columns[name] = pa.FixedSizeListArray.from_arrays(
                pa.array(flat.reshape(-1)), flat.shape[1]
            )
        meta = {
            META_X: json.dumps(list(self.design.x_names)).encode(),
            META_CONDITIONS: json.dumps(list(self.design.conditions)).encode(),
            META_VARPAR: json.dumps(self.varpar_names).encode(),
        }
        return pa.table(columns).replace_schema_metadata(meta)

    def write(self, path: PathLike) -> None:
        """Write the stored fit to Parquet (atomically)."""
        write_arrow(self.to_arrow(), path)

    @classmethod
    def read(cls, path: PathLike, design: RunDesign) -> StoredFit:
        """Read a stored fit written with ``design`` (same fixed effects and conditions).

        Raises
        ------
        PepmixError
            When the file was fitted with other fixed effects or conditions than ``design``.
        """
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        x_names = json.loads(meta.get(META_X, b"[]"))
        conditions = json.loads(meta.get(META_CONDITIONS, b"[]"))
        if x_names != list(design.x_names) or conditions != list(design.conditions):
            raise PepmixError(
                f"{path}: fitted with fixed effects {x_names} (conditions {conditions}), but the "
                f"sample sheet and config give {list(design.x_names)}: run the model stage again"
            )
        varpar = json.loads(meta.get(META_VARPAR, b"[]"))
        n, p, k = table.num_rows, len(x_names), len(varpar)
        shapes = {
            "samples_per_condition": (n, max(len(conditions), 1)),
            "beta": (n, p),
            "beta_centred": (n, p),
            "cov_beta": (n, p, p),
            "dcov_beta": (n, k, p, p),
            "vcov_varpar": (n, k, k),
            "cov_beta_floor": (n, p, p),
        }
        arrays = {
            name: _list_values(table.column(name)).reshape(shape)
            if name in table.column_names
            else np.full(shape, np.nan)
            for name, shape in shapes.items()
        }
        return cls(
            proteins=[str(v) for v in table.column("protein").to_pylist()],
            design=design,
            status=[str(v) for v in table.column("status").to_pylist()],
            detail=[str(v) for v in table.column("detail").to_pylist()],
            n_features=_values(table, "n_features").astype(np.intp),
            n_obs=_values(table, "n_observations").astype(np.intp),
            sigma=_values(table, "sigma"),
            nu=_values(table, "df_residual"),
            df_between=_values(table, "df_between"),
            samples_per_condition=arrays["samples_per_condition"].astype(np.intp),
            beta=arrays["beta"],
            beta_centred=arrays["beta_centred"],
            cov_beta=arrays["cov_beta"],
            dcov_beta=arrays["dcov_beta"],
            vcov_varpar=arrays["vcov_varpar"],
            varpar_names=varpar,
            cov_beta_floor=arrays["cov_beta_floor"],
            stratum_ratio=(
                _values(table, "stratum_ratio")
                if "stratum_ratio" in table.column_names
                else np.full(n, np.nan)
            ),
            stratum="stratum_ratio" in table.column_names,
        )

    def contrast_tests(self, cmat: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Estimate, SE and Satterthwaite df of contrasts ``cmat`` (shape ``(M, p)``).

        A contrast using a fixed effect that was not estimable for a protein gives NaN there.

        Returns
        -------
        estimate, se, df : ndarray, shape (P, M)
        """
        n = len(self.proteins)
        parts = [
            self._block(cmat, slice(start, min(start + BLOCK, n)))
            for start in range(0, max(n, 1), BLOCK)
        ]
        estimate, se, df = (np.concatenate([part[i] for part in parts]) for i in range(3))
        return estimate, se, df

    def _block(self, cmat: FloatArray, rows: slice) -> tuple[FloatArray, FloatArray, FloatArray]:
        """:meth:`contrast_tests` for the proteins ``rows`` (bounded temporaries)."""
        xkeep = ~np.isnan(self.beta[rows])
        ok = ~np.any((cmat != 0)[None, :, :] & ~xkeep[:, None, :], axis=2)
        cm = np.where(ok[:, :, None], cmat[None, :, :], 0.0) * xkeep[:, None, :]
        both = xkeep[:, :, None] & xkeep[:, None, :]
        cov = np.where(both, self.cov_beta[rows], 0.0)
        dcov = np.where(both[:, None], self.dcov_beta[rows], 0.0)
        estimate = np.einsum("bmp,bp->bm", cm, self.beta_centred[rows])
        var = np.einsum("bmp,bpq,bmq->bm", cm, cov, cm)
        grad = np.einsum("bmp,bkpq,bmq->bmk", cm, dcov, cm)
        denom = np.einsum("bmi,bij,bmj->bm", grad, self.vcov_varpar[rows], grad)
        with np.errstate(divide="ignore", invalid="ignore"):
            df = 2.0 * var**2 / denom
        se = np.sqrt(np.maximum(var, 0.0))
        return (
            np.where(ok, estimate, np.nan),
            np.where(ok, se, np.nan),
            np.where(ok, df, np.nan),
        )

    def contrast_table(self, contrasts: Sequence[tuple[str, str, str]]) -> pd.DataFrame:
        """Long contrast table, as :meth:`pepmix.model.fit.ModelFit.contrast_table` gives it.

        Parameters
        ----------
        contrasts : sequence of (name, numerator, denominator)
            Condition contrasts, in output order.
        """
        cmat = contrast_matrix(self.design, [(c[1], c[2]) for c in contrasts])
        stats = self.contrast_tests(cmat)
        return contrast_frame(
            self,
            [c[0] for c in contrasts],
            [c[1] for c in contrasts],
            [c[2] for c in contrasts],
            stats,
            self.df_between,
            (
                contrast_floors(self.beta, np.asarray(self.cov_beta_floor), cmat),
                np.asarray(self.stratum_ratio),
            ),
        )


def _values(table: pa.Table, name: str) -> FloatArray:
    return np.asarray(table.column(name).to_numpy(), dtype=np.float64)


def _list_values(column: pa.ChunkedArray) -> FloatArray:
    """Values of a fixed-size list column, flattened (row-major)."""
    chunks = [c.flatten().to_numpy(zero_copy_only=False) for c in column.chunks]
    if not chunks:
        return np.zeros(0)
    return np.asarray(np.concatenate(chunks), dtype=np.float64)


def gather_fits(parts: Sequence[PathLike], output: PathLike) -> None:
    """Concatenate shards' stored fits in protein order (the order of a single job), keeping
    the schema metadata (:func:`pepmix.shards.gather` for data frames)."""
    tables = [pq.read_table(p) for p in parts]
    if not tables:
        raise PepmixError("gather: no stored fit to gather")
    meta = tables[0].schema.metadata
    table = pa.concat_tables(tables)
    proteins = np.asarray(table.column("protein").to_pylist(), dtype=object)
    order = np.argsort(proteins, kind="stable")
    write_arrow(table.take(pa.array(order)).replace_schema_metadata(meta), output)
