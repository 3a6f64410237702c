"""The Regridder: built once from two grids and a method, applied to many fields many times (like xESMF)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid.grid import Grid
from tamrl_coupler.regrid.sparse_apply import TorchSparse, spmm
from tamrl_coupler.regrid.weights import Weights

UNMAPPED = ("nan", "zero", "error", "nearest", "inverse_dist")
EXTRAP_METHODS = ("nearest_s2d", "inverse_dist")
log = logging.getLogger("tamrl_coupler.regrid")


def _unmapped_rule(unmapped: str | None, unmapped_to_nan: bool | None, extrap_method: str | None) -> str:
    """What destination cells no source reaches become: ours (``unmapped``) or xESMF's (``extrap_method``,
    ``unmapped_to_nan``); NaN by default."""
    if extrap_method is not None:
        if extrap_method not in EXTRAP_METHODS:
            raise RegridError(f"extrap_method={extrap_method!r} unknown or not available here; expected one of "
                              f"{EXTRAP_METHODS} (creep_fill needs esmpy)")
        return "nearest" if extrap_method == "nearest_s2d" else "inverse_dist"
    if unmapped is None:
        return "zero" if unmapped_to_nan is False else "nan"
    if unmapped not in UNMAPPED:
        raise RegridError(f"unmapped={unmapped!r} unknown; expected one of {UNMAPPED}")
    return unmapped


def _is_integer(dtype: Any) -> bool:
    """Whether a numpy, xarray, dask or torch dtype is an integer type."""
    if dtype is None:
        return False
    if type(dtype).__module__.startswith("torch"):
        return not (dtype.is_floating_point or dtype.is_complex)
    try:
        return bool(np.issubdtype(np.dtype(dtype), np.integer))
    except TypeError:
        return False


def _with_periodic(g: Grid, periodic: bool) -> Grid:
    """A copy of a regular grid that says whether it wraps in longitude (for bilinear weights)."""
    import copy

    g = copy.copy(g)
    g.periodic = bool(periodic)
    return g


def _grid_and_layout(spec: Any, mask: Any, locstream: bool = False, dims: Any = None) -> tuple[Grid, Any]:
    """The Grid of ``spec`` and, for an xarray grid, where it lives in xarray objects (None otherwise)."""
    from tamrl_coupler.regrid.xarray_grid import grid_from_dict, grid_from_xarray, is_xarray

    if is_xarray(spec):
        return grid_from_xarray(spec, mask=mask, locstream=locstream, dims=tuple(dims) if dims else None)
    if isinstance(spec, dict):
        return grid_from_dict(spec, locstream=locstream, mask=mask), None
    if mask is not None:
        raise RegridError("src_mask/dst_mask apply to xarray or dict grids; give a Grid its mask with Grid.with_mask")
    return Grid.resolve(spec), None


def _make_weights(src: Grid, dst: Grid, method: str, backend: str, cache_dir, progress=None) -> tuple[Weights, str]:
    from tamrl_coupler.regrid.backends import choose_backend, generate_checked

    mod = choose_backend(src, dst, method, backend)
    if cache_dir is None or cache_dir is False:
        w = generate_checked(mod, src, dst, method)
        w.attach_grids(src, dst)
        return w, mod.NAME
    from tamrl_coupler.regrid.cache import cache_key, cache_path, default_cache_dir

    cdir = default_cache_dir() if cache_dir is True else Path(cache_dir)
    path = cache_path(cdir, src, dst, method, mod.NAME)
    key = cache_key(src, dst, method, mod.NAME)
    if path.exists():
        cached = _verified_cache_entry(path, src, dst, key)
        if cached is not None:
            return cached, f"{mod.NAME} (cached)"
    w = generate_checked(mod, src, dst, method)
    w.attach_grids(src, dst)
    w.attrs[CACHE_DIGEST] = w.digest(key)
    w.write(path)
    return w, mod.NAME


CACHE_DIGEST = "tamrl_weights_sha256"  # global attribute of a cached weight file: Weights.digest(cache key)


def _verified_cache_entry(path: Path, src: Grid, dst: Grid, key: str) -> Weights | None:
    """The cached weights if the file is what its name says: its digest, taken over its matrix, method,
    normalisation, areas and fractions together with the cache key (both grids, the method, the backend), matches;
    otherwise a warning naming the file and None, so that the weights are made again and the file replaced."""
    try:
        w = Weights.read(path)
        w.check_sizes(src.size, dst.size, f"grids {src.name!r} -> {dst.name!r} (cached file {path})")
        stored = w.attrs.get(CACHE_DIGEST)
        if stored is None or str(stored) != w.digest(key):
            raise RegridError(f"its {CACHE_DIGEST} does not match its content for these grids and this method "
                              "(edited, damaged, made for other grids or another method, or written before cached "
                              "weights were checked)")
        return w
    except (ValueError, RuntimeError, OSError, KeyError, IndexError) as exc:  # RegridError is a ValueError
        log.warning("weight cache file %s not used: %s; making the weights again", path, exc)
        return None


def _weights_given(weights: Any, n_src: int, n_dst: int) -> Weights:
    """A :class:`Weights`, a weight file, a scipy sparse matrix (n_dst, n_src) or xESMF's dictionary
    (``row_dst``, ``col_src`` 1-based, ``weights``) as Weights, checked for sanity."""
    from tamrl_coupler.regrid.weights import canonical_csr

    if isinstance(weights, Weights):
        w = weights
    elif isinstance(weights, (str, Path)):
        return Weights.read(weights)
    elif sp.issparse(weights):
        m = sp.csr_matrix(weights)
        if m.shape == (n_src, n_dst) and n_src != n_dst:
            raise RegridError(f"weights matrix has shape {m.shape}: expected (n_dst, n_src) = ({n_dst}, {n_src})")
        w = Weights(m, method="unknown", normalization="none", source="a sparse matrix")
    elif isinstance(weights, dict) and {"row_dst", "col_src", "weights"} <= set(weights):
        w = Weights(canonical_csr(np.asarray(weights["row_dst"]) - 1, np.asarray(weights["col_src"]) - 1,
                                  weights["weights"], n_dst, n_src), method="unknown", normalization="none",
                    source="a weights dictionary")
    else:
        raise RegridError(f"weights of type {type(weights).__name__}: expected Weights, a weight file, a scipy sparse "
                          "matrix or a dict with row_dst, col_src, weights")
    w.validate()
    return w


def default_filename(method: str, src: Grid, dst: Grid, periodic: bool) -> str:
    """xESMF's weight file name: ``{method}_{Ny_in}x{Nx_in}_{Ny_out}x{Nx_out}[_peri].nc``."""
    def dims(g: Grid) -> str:
        return "x".join(str(n) for n in (g.shape if len(g.shape) == 2 else (1, g.shape[0])))

    return f"{method}_{dims(src)}_{dims(dst)}{'_peri' if periodic else ''}.nc"


class Regridder:
    """``Regridder(ds_in, ds_out, method)(x)``, as ``xesmf.Regridder``: ``x`` is numpy, torch or dask
    ``(..., n_src)`` or ``(..., *src.shape)``, or an xarray Dataset/DataArray on the source grid (the result is then
    xarray on the target grid, see :mod:`tamrl_coupler.regrid.xarray_apply`).

    xESMF's arguments, with xESMF's meanings:

    * ``ds_in``, ``ds_out``: xarray Dataset/DataArray (CF latitude/longitude and bounds, or xESMF's ``lat_b``/
      ``lon_b`` vertices; ``mask`` variable), a dict of arrays (``lat``, ``lon``, ``lat_b``, ``lon_b``, ``mask``),
      a :class:`Grid`, a CDO-style name (``r360x180``) or a grid file.
    * ``method``: ``conservative`` (destination-area normalised, as ESMF/xESMF: a partly covered cell is the mean
      over the whole cell with the uncovered part counted as zero), ``conservative_normed`` (the mean over the covered
      part), ``bilinear``, ``nearest_s2d`` (alias ``nearest``), ``nearest_d2s``, ``patch`` and ``conservative_2nd``
      (esmpy).
    * ``periodic``: whether the source is periodic in longitude for bilinear weights (``None``: from its span).
    * ``filename``/``reuse_weights``: the weight file to write (xESMF's default name when None and
      :meth:`to_netcdf` is called), or to read when ``reuse_weights`` and it exists (checked against the grids).
    * ``extrap_method``: ``"nearest_s2d"`` or ``"inverse_dist"`` (``extrap_num_src_pnts`` nearest active sources,
      distance weights to the power ``extrap_dist_exponent``) for destination cells no source reaches.
    * ``unmapped_to_nan``: True, such cells are NaN; False, zero (xESMF's default); None (ours): NaN — a cell no
      source reaches is never silently 0 unless asked for.
    * ``locstream_in``/``locstream_out``: the grid is 1-D locations (flux towers).
    * ``input_dims``/``output_dims``: the grid's dimension names in xarray objects.

    Ours besides: ``backend`` (``auto``, ``esmpy``, ``native``, ``cdo``), ``weights`` (a :class:`Weights`, a weight
    file, a scipy sparse matrix or xESMF's weights dict; checked against the grids), ``cache_dir``,
    ``normalization`` (overrides the method's), ``unmapped`` (``nan``, ``zero``, ``error``, ``nearest``),
    ``torch_kernel``, ``src_mask``/``dst_mask`` (of an xarray or dict grid).
    """

    def __init__(self, ds_in: Grid | str | Path | Any, ds_out: Grid | str | Path | Any,
                 method: str = "conservative", periodic: bool | None = None, filename: str | Path | None = None,
                 reuse_weights: bool = False, extrap_method: str | None = None,
                 extrap_dist_exponent: float | None = None, extrap_num_src_pnts: int | None = None,
                 unmapped_to_nan: bool | None = None, locstream_in: bool = False, locstream_out: bool = False,
                 input_dims: tuple[str, ...] | None = None, output_dims: tuple[str, ...] | None = None, *,
                 backend: str = "auto", weights: Any = None, cache_dir: str | Path | bool | None = None,
                 normalization: str | None = None, unmapped: str | None = None, torch_kernel: str = "auto",
                 src_mask: Any = None, dst_mask: Any = None) -> None:
        from tamrl_coupler.regrid.backends import METHODS

        if torch_kernel not in ("auto", "torch", "scipy"):
            raise RegridError(f"torch_kernel={torch_kernel!r} unknown; expected 'auto', 'torch' or 'scipy'")
        if method not in METHODS:
            raise RegridError(f"regrid method {method!r} unknown; expected one of {METHODS}")
        self.torch_kernel = torch_kernel
        self.src, self.src_layout = _grid_and_layout(ds_in, src_mask, locstream_in, input_dims)
        self.dst, self.dst_layout = _grid_and_layout(ds_out, dst_mask, locstream_out, output_dims)
        self.method = method
        self.periodic = periodic
        unmapped = _unmapped_rule(unmapped, unmapped_to_nan, extrap_method)
        self.filename = Path(filename) if filename is not None else None
        if reuse_weights and weights is None:
            if self.filename is None:
                raise RegridError("reuse_weights=True needs filename= (or weights=) to read the weights from")
            if self.filename.exists():
                weights = self.filename
        if weights is not None:
            w = _weights_given(weights, self.src.size, self.dst.size)
            from tamrl_coupler.regrid.weightcheck import check_weights_match

            check_weights_match(w, self.src, self.dst)
            self.backend = "file"
            self.method = w.method if w.method != "unknown" else method
        else:
            if method.startswith("conservative"):
                self.src.require_bounds(f"{method} remapping")
                self.dst.require_bounds(f"{method} remapping")
            if periodic is not None and self.src.kind == "regular" and method == "bilinear":
                self.src = _with_periodic(self.src, periodic)
            w, self.backend = _make_weights(self.src, self.dst, method, backend, cache_dir)
            w.method = "conservative" if method == "conservative_normed" else w.method
        self.weights = w
        if weights is None and self.filename is not None:
            self.to_netcdf(self.filename)
        if normalization is None:
            normalization = "fracarea" if method == "conservative_normed" else "destarea"
        self.normalization = normalization
        wn = w.to_normalization(normalization) if normalization != w.normalization else w
        self._dest = w.to_normalization("destarea") if w.normalization != "none" else w
        S = wn.matrix
        nnz_row = np.diff(S.indptr)
        self.unmapped_cells = np.nonzero(nnz_row == 0)[0]
        if self.dst.mask is not None:
            self.unmapped_cells = self.unmapped_cells[self.dst.mask[self.unmapped_cells] != 0]
        self.unmapped = unmapped
        if self.unmapped_cells.size and unmapped == "error":
            i = int(self.unmapped_cells[0])
            raise RegridError(f"{self.unmapped_cells.size} destination cells of {self.dst.name!r} receive no source "
                              f"values ({method}); first is cell {i} at lat {self.dst.lat[i]:.4f}, lon "
                              f"{self.dst.lon[i]:.4f} (use unmapped='nan'|'zero'|'nearest')")
        if self.unmapped_cells.size and unmapped in ("nearest", "inverse_dist"):
            k = 1 if unmapped == "nearest" else int(extrap_num_src_pnts or 8)
            S = self._fill_nearest(S, k, float(2.0 if extrap_dist_exponent is None else extrap_dist_exponent))
        self.matrix: sp.csr_matrix = S
        # destination cells every result sets to NaN: unmapped ones (unmapped="nan") and masked ones
        self.nan_rows = self.unmapped_cells if unmapped == "nan" else np.zeros(0, np.int64)
        if self.dst.mask is not None and unmapped == "nan":
            self.nan_rows = np.union1d(self.nan_rows, np.nonzero(self.dst.mask == 0)[0])
        self._torch: dict = {}

    def to_netcdf(self, filename: str | Path | None = None) -> Path:
        """Write the weights as an ESMF weight file (xESMF's default name when ``filename`` is None); returns it."""
        path = Path(filename) if filename is not None else (
            self.filename or Path(default_filename(self.method, self.src, self.dst, bool(self.periodic))))
        w = self.weights
        w.attach_grids(self.src, self.dst)
        w.write(path)
        return path

    def _fill_nearest(self, S: sp.csr_matrix, k: int = 1, exponent: float = 2.0) -> sp.csr_matrix:
        """Unmapped destination cells take their ``k`` nearest active source cells, weighted by inverse distance to
        the power ``exponent`` (k = 1: the nearest one, ESMF's ``nearest_stod`` extrapolation)."""
        from scipy.spatial import cKDTree

        active = np.nonzero(self.src.mask != 0)[0] if self.src.mask is not None else np.arange(self.src.size)
        k = min(k, active.size)
        dist, j = cKDTree(self.src.xyz()[active]).query(self.dst.xyz()[self.unmapped_cells], k=k)
        dist, j = dist.reshape(j.shape[0], -1), j.reshape(j.shape[0], -1)
        w = 1.0 / np.maximum(dist, 1e-15) ** exponent
        w /= w.sum(axis=1, keepdims=True)
        rows = np.repeat(self.unmapped_cells, j.shape[1])
        extra = sp.csr_matrix((w.ravel(), (rows, active[j].ravel())), shape=S.shape)
        out = sp.csr_matrix(S + extra)
        out.sort_indices()
        return out

    # ------------------------------------------------------------------ application
    def __repr__(self) -> str:
        return (f"Regridder({self.src.name!r} {self.src.shape} -> {self.dst.name!r} {self.dst.shape}, "
                f"method={self.method!r}, backend={self.backend!r}, normalization={self.normalization!r}, "
                f"nnz={self.matrix.nnz}, unmapped={self.unmapped_cells.size})")

    def _flatten(self, x) -> tuple:
        shape = tuple(x.shape)
        n = self.src.size
        if shape[-1:] == (n,):
            return x.reshape(-1, n), shape[:-1], (self.dst.size,)
        nd = len(self.src.shape)
        if len(self.src.shape) > 1 and shape[-nd:] == self.src.shape:
            return x.reshape(-1, n), shape[:-nd], self.dst.shape
        raise RegridError(f"field of shape {shape} does not end in the source grid's size {n} or shape "
                          f"{self.src.shape} (grid {self.src.name!r})")

    def __call__(self, x, keep_attrs: bool = True, skipna: bool = False, na_thres: float | None = None,
                 output_chunks: Any = None, *, src_fraction=None):
        """Regrid ``x`` (xESMF's keywords and meanings, except where said).

        ``skipna``: NaN source values are left out and the rest renormalised (masks in the data); ``na_thres``:
        with ``skipna``, a destination value is NaN where the valid share of its weight is below ``1 - na_thres``
        (xESMF's rule; None, the default, keeps every destination value that has any valid weight, which keeps the
        area integral exact). ``keep_attrs`` (xarray): keep the fields' attributes (ours: True by default).
        ``output_chunks`` (dask-backed xarray): chunks of the output grid's dimensions (dict or tuple).
        ``src_fraction`` (``(n_src,)``, e.g. land fraction): fluxes per unit land; each destination value is
        ``S(f x) / S(f)`` so that ``sum(area_b * dst_fraction(f) * y) == sum(area_a * frac_a * f * x)``.

        An integer field is refused for conservative methods (its regridded values are not integers): cast it.
        """
        from tamrl_coupler.regrid.xarray_grid import is_xarray

        self._na_thres = na_thres
        self._check_dtype(getattr(x, "dtype", None), getattr(x, "name", None))
        if is_xarray(x):
            return self._call_xarray(x, skipna, src_fraction, keep_attrs, output_chunks)
        if type(x).__module__.split(".")[0] == "dask":
            return self._call_dask(x, skipna, src_fraction)
        if type(x).__module__.split(".")[0] == "torch":  # (torch is imported only when a tensor comes: 0.3 GB)
            import torch

            if isinstance(x, torch.Tensor):
                if self.torch_kernel == "torch" or (self.torch_kernel == "auto" and x.device.type != "cpu"):
                    return self._call_torch(x, skipna, src_fraction)
                y = self(x.detach().numpy(), skipna=skipna, src_fraction=src_fraction)  # zero-copy in and out
                return torch.from_numpy(y)
        X, lead, tail = self._flatten(np.asarray(x))
        out_dtype = np.float32 if X.dtype == np.float32 else np.float64
        owned = X.dtype != np.float64 or not X.flags.c_contiguous  # converted below: ours to change
        X = np.ascontiguousarray(X, dtype=np.float64)
        S = self.matrix
        if skipna or src_fraction is not None:
            f = self._fraction_vector(src_fraction)
            valid = np.isfinite(X)
            all_valid = bool(valid.all())
            if all_valid:
                X0 = X
            elif owned:
                np.copyto(X, 0.0, where=~valid)
                X0 = X
            else:
                X0 = np.where(valid, X, 0.0)
            if f is not None:
                X0 = X0 * f
            same = all_valid or X.shape[0] == 1 or bool((valid == valid[:1]).all())  # typical: one land mask
            num = spmm(S, X0)
            if same and f is None:  # one denominator for every field, kept for the next call with this mask
                den = self._mask_denominator(None if all_valid else valid[0])
            else:
                if all_valid:
                    wts = (f if f is not None else np.ones(self.src.size))[None, :]
                else:
                    wts = valid[:1] if same else valid
                    wts = wts * f if f is not None else wts.astype(np.float64)
                den = spmm(S, wts)
            np.divide(num, den, out=num, where=den > 0)
            bad = den <= 0
            if self._na_thres is not None and skipna:
                full = spmm(S, f[None, :] if f is not None else np.ones((1, self.src.size)))
                bad = bad | (den < np.clip(1.0 - self._na_thres, 1e-6, 1 - 1e-6) * full)
            num[np.broadcast_to(bad, num.shape)] = np.nan
            y = num
        else:
            y = spmm(S, X)
        if self.nan_rows.size:
            y[:, self.nan_rows] = np.nan
        return y.reshape(lead + tail).astype(out_dtype, copy=False)

    def _mask_denominator(self, valid: np.ndarray | None) -> np.ndarray:
        """``S @ valid`` (1, n_dst) for a validity mask (None: all valid), kept for the next call with the same mask
        (a file's time steps share their land mask: one product per step instead of two)."""
        cached = self.__dict__.get("_den_cache")
        if cached is not None and ((valid is None and cached[0] is None) or (
                valid is not None and cached[0] is not None and np.array_equal(valid, cached[0]))):
            return cached[1]
        w = np.ones((1, self.src.size)) if valid is None else valid[None, :].astype(np.float64)
        den = spmm(self.matrix, w)
        self._den_cache = (None if valid is None else valid.copy(), den)
        return den

    def _check_dtype(self, dtype: Any, name: Any) -> None:
        if _is_integer(dtype) and self.method.startswith("conservative"):
            raise RegridError(f"field {name or ''!r} is of integer type {np.dtype(dtype)}: conservative regridding "
                              "gives fractional values; cast it explicitly (e.g. x.astype('float64')), or decode "
                              "packed data (scale_factor/add_offset) first")

    def _call_xarray(self, obj, skipna: bool, src_fraction, keep_attrs: bool = True, output_chunks: Any = None):
        from tamrl_coupler.regrid.xarray_apply import regrid_xarray
        from tamrl_coupler.regrid.xarray_grid import layout_from_grid, layout_of

        src = self.src_layout if self.src_layout is not None else layout_of(obj, self.src)
        dst = self.dst_layout if self.dst_layout is not None else layout_from_grid(self.dst, dict(obj.sizes))

        def apply(x: np.ndarray, skipna: bool) -> np.ndarray:
            return self(x, skipna=skipna, na_thres=self._na_thres, src_fraction=src_fraction)

        note = f"{self.method} ({self.backend}) from {self.src.name} {self.src.shape}"
        return regrid_xarray(apply, obj, src, dst, self.dst.shape, skipna, note, keep_attrs, output_chunks)

    def _call_dask(self, x, skipna: bool, src_fraction):
        """A dask array stays lazy: the grid's dimensions in one chunk, each block of the others regridded."""
        nd = 1 if x.shape[-1:] == (self.src.size,) else len(self.src.shape)
        self._flatten(np.empty((0,) + tuple(x.shape[-nd:])))  # shape check, named errors
        x = x.rechunk({i: -1 for i in range(x.ndim - nd, x.ndim)})
        tail = (self.dst.size,) if nd == 1 else self.dst.shape
        out_dtype = np.float32 if x.dtype == np.float32 else np.float64
        na_thres = self._na_thres

        def block(b: np.ndarray) -> np.ndarray:
            return self(b, skipna=skipna, na_thres=na_thres, src_fraction=src_fraction)

        chunks = x.chunks[: x.ndim - nd] + tuple((n,) for n in tail)
        new_axis = list(range(x.ndim - nd, x.ndim - nd + len(tail)))
        return x.map_blocks(block, dtype=out_dtype, chunks=chunks, drop_axis=list(range(x.ndim - nd, x.ndim)),
                            new_axis=new_axis)

    def _fraction_vector(self, src_fraction):
        if src_fraction is None:
            return None
        f = np.asarray(src_fraction, np.float64).ravel()
        if f.size != self.src.size:
            raise RegridError(f"src_fraction has {f.size} values, source grid {self.src.name!r} has {self.src.size}")
        return f

    def dst_fraction(self, src_fraction: ArrayLike | None = None) -> np.ndarray:
        """Fraction of each destination cell covered by active source (times ``src_fraction``, e.g. land)."""
        f = self._fraction_vector(src_fraction)
        return self._dest.matrix @ (f if f is not None else np.ones(self.src.size))

    def _call_torch(self, x, skipna: bool, src_fraction):
        import torch

        X, lead, tail = self._flatten(x)
        key = (x.device, x.dtype)
        if key not in self._torch:
            self._torch[key] = TorchSparse(self.matrix, device=x.device, dtype=x.dtype)
        op = self._torch[key]
        if skipna or src_fraction is not None:
            f = self._fraction_vector(src_fraction)
            ft = torch.as_tensor(f, device=x.device, dtype=x.dtype) if f is not None else None
            valid = torch.isfinite(X)
            w = valid.to(x.dtype) * (ft if ft is not None else 1.0)
            num = op(torch.where(valid, X, torch.zeros((), dtype=x.dtype, device=x.device)) * w)
            den = op(w)
            y = num / torch.where(den > 0, den, torch.full((), float("nan"), dtype=x.dtype, device=x.device))
        else:
            y = op(X)
        if self.nan_rows.size:
            y[:, torch.as_tensor(self.nan_rows, device=x.device)] = float("nan")
        return y.reshape(lead + tail)
