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

UNMAPPED = ("nan", "zero", "error", "nearest")
log = logging.getLogger("tamrl_coupler.regrid")


def _grid_and_layout(spec: Any, mask: Any) -> tuple[Grid, Any]:
    """The Grid of ``spec`` and, for an xarray grid, where it lives in xarray objects (None otherwise)."""
    from tamrl_coupler.regrid.xarray_grid import grid_from_xarray, is_xarray

    if is_xarray(spec):
        return grid_from_xarray(spec, mask=mask)
    if mask is not None:
        raise RegridError("src_mask/dst_mask apply to xarray grids; give a Grid its mask with Grid.with_mask")
    return Grid.resolve(spec), None


def _make_weights(src: Grid, dst: Grid, method: str, backend: str, cache_dir) -> tuple[Weights, str]:
    from tamrl_coupler.regrid.backends import choose_backend

    mod = choose_backend(src, dst, method, backend)
    if cache_dir is None or cache_dir is False:
        w = mod.generate(src, dst, method)
        w.attach_grids(src, dst)
        return w, mod.NAME
    from tamrl_coupler.regrid.cache import cache_path, default_cache_dir

    cdir = default_cache_dir() if cache_dir is True else Path(cache_dir)
    path = cache_path(cdir, src, dst, method, mod.NAME)
    if path.exists():
        cached = _verified_cache_entry(path, src, dst)
        if cached is not None:
            return cached, f"{mod.NAME} (cached)"
    w = mod.generate(src, dst, method)
    w.attach_grids(src, dst)
    w.attrs[CACHE_DIGEST] = w.digest()
    w.write(path)
    return w, mod.NAME


CACHE_DIGEST = "tamrl_weights_sha256"  # global attribute of a cached weight file: Weights.digest() when written


def _verified_cache_entry(path: Path, src: Grid, dst: Grid) -> Weights | None:
    """The cached weights if the file is intact (its digest matches its matrix, its sizes the grids); otherwise a
    warning naming the file and None, so that the weights are made again and the file replaced."""
    try:
        w = Weights.read(path)
        w.check_sizes(src.size, dst.size, f"grids {src.name!r} -> {dst.name!r} (cached file {path})")
        stored = w.attrs.get(CACHE_DIGEST)
        if stored is None or str(stored) != w.digest():
            raise RegridError(f"its matrix does not match its {CACHE_DIGEST} (edited, damaged or written before "
                              f"cached weights were checked)")
        return w
    except (ValueError, RuntimeError, OSError, KeyError, IndexError) as exc:  # RegridError is a ValueError
        log.warning("weight cache file %s not used: %s; making the weights again", path, exc)
        return None


class Regridder:
    """``Regridder(src, dst, method)(x)``: ``x`` is ``(..., n_src)`` or ``(..., *src.shape)``, numpy or torch, or an
    xarray Dataset/DataArray on the source grid (the result is then xarray on the target grid, see
    :mod:`tamrl_coupler.regrid.xarray_apply`).

    * ``src``, ``dst``: a :class:`Grid`, a CDO-style name (``r360x180``), a grid file, or an xarray Dataset/DataArray
      whose CF latitude/longitude (and bounds) give the grid (:func:`~tamrl_coupler.regrid.xarray_grid.
      grid_from_xarray`); ``src_mask``/``dst_mask``: the mask of an xarray grid (a variable name, DataArray or
      array; default its ``mask`` variable).

    * ``normalization="fracarea"`` (default): each destination value is the mean over the part of the cell that
      the (active) source covers; ``"destarea"``: mean over the whole cell, uncovered parts counted as zero.
    * ``unmapped``: destination cells no source reaches become ``"nan"`` (default), ``"zero"``, raise
      (``"error"``) or take their nearest active source cell (``"nearest"``).
    * ``weights``: a :class:`Weights` or a weight file (ESMF or SCRIP) to use instead of generating.
    * ``cache_dir``: directory of the on-disk weight cache (``True``: the default one), ``None``: no cache.
    * ``torch_kernel``: for torch tensors, ``"auto"`` uses scipy (zero-copy) for CPU tensors and a torch sparse
      CSR matrix on the tensor's device otherwise; ``"torch"`` forces the torch kernel (also on CPU).
    """

    def __init__(self, src: Grid | str | Path | Any, dst: Grid | str | Path | Any, method: str = "conservative",
                 backend: str = "auto", weights: Weights | str | Path | None = None,
                 cache_dir: str | Path | bool | None = None, normalization: str = "fracarea",
                 unmapped: str = "nan", torch_kernel: str = "auto", src_mask: Any = None,
                 dst_mask: Any = None) -> None:
        if torch_kernel not in ("auto", "torch", "scipy"):
            raise RegridError(f"torch_kernel={torch_kernel!r} unknown; expected 'auto', 'torch' or 'scipy'")
        self.torch_kernel = torch_kernel
        self.src, self.src_layout = _grid_and_layout(src, src_mask)
        self.dst, self.dst_layout = _grid_and_layout(dst, dst_mask)
        self.method = method
        if unmapped not in UNMAPPED:
            raise RegridError(f"unmapped={unmapped!r} unknown; expected one of {UNMAPPED}")
        if weights is not None:
            w = weights if isinstance(weights, Weights) else Weights.read(weights)
            w.check_sizes(self.src.size, self.dst.size, f"grids {self.src.name!r} -> {self.dst.name!r}")
            self.backend = "file"
            self.method = w.method
        else:
            if method.startswith("conservative"):
                self.src.require_bounds(f"{method} remapping")
                self.dst.require_bounds(f"{method} remapping")
            w, self.backend = _make_weights(self.src, self.dst, method, backend, cache_dir)
        self.weights = w
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
        if self.unmapped_cells.size and unmapped == "nearest":
            S = self._fill_nearest(S)
        self.matrix: sp.csr_matrix = S
        # destination cells every result sets to NaN: unmapped ones (unmapped="nan") and masked ones
        self.nan_rows = self.unmapped_cells if unmapped == "nan" else np.zeros(0, np.int64)
        if self.dst.mask is not None and unmapped == "nan":
            self.nan_rows = np.union1d(self.nan_rows, np.nonzero(self.dst.mask == 0)[0])
        self._torch: dict = {}

    def _fill_nearest(self, S: sp.csr_matrix) -> sp.csr_matrix:
        from scipy.spatial import cKDTree

        active = np.nonzero(self.src.mask != 0)[0] if self.src.mask is not None else np.arange(self.src.size)
        _, j = cKDTree(self.src.xyz()[active]).query(self.dst.xyz()[self.unmapped_cells], k=1)
        extra = sp.csr_matrix((np.ones(j.size), (self.unmapped_cells, active[j])), shape=S.shape)
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

    def __call__(self, x, *, skipna: bool = False, src_fraction=None):
        """Regrid ``x``. ``skipna``: NaN source values are left out and the rest renormalised (masks in the data).

        ``src_fraction`` (``(n_src,)``, e.g. land fraction): fluxes per unit land; each destination value is
        ``S(f x) / S(f)`` so that ``sum(area_b * dst_fraction(f) * y) == sum(area_a * frac_a * f * x)``.
        """
        from tamrl_coupler.regrid.xarray_grid import is_xarray

        if is_xarray(x):
            return self._call_xarray(x, skipna, src_fraction)
        try:
            import torch

            if isinstance(x, torch.Tensor):
                if self.torch_kernel == "torch" or (self.torch_kernel == "auto" and x.device.type != "cpu"):
                    return self._call_torch(x, skipna, src_fraction)
                y = self(x.detach().numpy(), skipna=skipna, src_fraction=src_fraction)  # zero-copy in and out
                return torch.from_numpy(y)
        except ImportError:  # pragma: no cover - torch is a dependency, kept optional here
            pass
        X, lead, tail = self._flatten(np.asarray(x))
        out_dtype = np.float32 if X.dtype == np.float32 else np.float64
        X = np.ascontiguousarray(X, dtype=np.float64)
        S = self.matrix
        if skipna or src_fraction is not None:
            f = self._fraction_vector(src_fraction)
            valid = np.isfinite(X)
            all_valid = bool(valid.all())
            X0 = X if all_valid else np.where(valid, X, 0.0)
            if f is not None:
                X0 = X0 * f
            if all_valid:  # one denominator for every field
                wts = (f if f is not None else np.ones(self.src.size))[None, :]
            else:
                same = bool((valid == valid[:1]).all())  # typical: one land mask for all fields
                wts = valid[:1] if same else valid
                wts = wts * f if f is not None else wts.astype(np.float64)
            num = spmm(S, X0)
            den = spmm(S, wts)
            np.divide(num, den, out=num, where=den > 0)
            num[np.broadcast_to(den <= 0, num.shape)] = np.nan
            y = num
        else:
            y = spmm(S, X)
        if self.nan_rows.size:
            y[:, self.nan_rows] = np.nan
        return y.reshape(lead + tail).astype(out_dtype, copy=False)

    def _call_xarray(self, obj, skipna: bool, src_fraction):
        from tamrl_coupler.regrid.xarray_apply import regrid_xarray
        from tamrl_coupler.regrid.xarray_grid import layout_from_grid, layout_of

        src = self.src_layout if self.src_layout is not None else layout_of(obj, self.src)
        dst = self.dst_layout if self.dst_layout is not None else layout_from_grid(self.dst, dict(obj.sizes))

        def apply(x: np.ndarray, skipna: bool) -> np.ndarray:
            return self(x, skipna=skipna, src_fraction=src_fraction)

        note = f"{self.method} ({self.backend}) from {self.src.name} {self.src.shape}"
        return regrid_xarray(apply, obj, src, dst, self.dst.shape, skipna, note)

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
