"""Remapping weights as data: read ESMF ("NCAR-CSM") and SCRIP files, write ESMF files.

The matrix ``S`` maps source to destination, ``y = S @ x``. ``normalization`` says what a row sums to:

* ``destarea`` (ESMF default): ``y`` is the mean over the whole destination cell, unmapped parts counted as zero,
  so rows sum to ``frac_b``; conservation reads ``sum(area_b * y) == sum(area_a * frac_a * x)``.
* ``fracarea`` (CDO default): ``y`` is the mean over the mapped part, rows sum to 1 where ``frac_b > 0``;
  conservation reads ``sum(area_b * frac_b * y) == sum(area_a * frac_a * x)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from tamrl_coupler.atomicfile import atomic_path
from tamrl_coupler.constants import EARTH_RADIUS
from tamrl_coupler.errors import RegridError
from tamrl_coupler.ncfiles import open_netcdf

if TYPE_CHECKING:
    from tamrl_coupler.regrid.grid import Grid

NORMALIZATIONS = ("destarea", "fracarea", "none")


def canonical_csr(rows: ArrayLike, cols: ArrayLike, vals: ArrayLike, n_dst: int, n_src: int) -> sp.csr_matrix:
    """CSR with duplicates summed and column indices sorted inside each row: the fixed order of summation."""
    m = sp.coo_matrix((np.asarray(vals, np.float64), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
                      shape=(n_dst, n_src)).tocsr()
    m.sum_duplicates()
    m.sort_indices()
    return m


@dataclass
class Weights:
    """A sparse (n_dst, n_src) remapping matrix with the grid metadata conservation checks need."""

    matrix: sp.csr_matrix
    method: str = "conservative"
    normalization: str = "destarea"
    area_a: np.ndarray | None = None  # source cell areas, steradians (the ESMF convention, whatever the file holds)
    area_b: np.ndarray | None = None  # destination cell areas, steradians
    frac_a: np.ndarray | None = None
    frac_b: np.ndarray | None = None
    mask_a: np.ndarray | None = None
    mask_b: np.ndarray | None = None
    src_shape: tuple[int, ...] | None = None
    dst_shape: tuple[int, ...] | None = None
    attrs: dict = field(default_factory=dict)
    source: str = "memory"  # where the weights came from (file path or backend), for messages
    coords: dict = field(default_factory=dict, repr=False)  # xc/yc/xv/yv_a/b (degrees) written with the file
    grids: tuple | None = field(default=None, repr=False)   # (src, dst) whose centres and corners a write adds

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise RegridError(f"weights from {self.source}: normalization {self.normalization!r} unknown; "
                              f"expected one of {NORMALIZATIONS}")
        m = self.matrix
        if not sp.isspmatrix_csr(m):
            m = sp.csr_matrix(m)
        if not m.has_sorted_indices:
            m = m.copy()
            m.sort_indices()
        self.matrix = m
        n_dst, n_src = m.shape
        for nm, n in (("area_a", n_src), ("frac_a", n_src), ("mask_a", n_src),
                      ("area_b", n_dst), ("frac_b", n_dst), ("mask_b", n_dst)):
            a = getattr(self, nm)
            if a is not None:
                a = np.asarray(a).ravel()
                if a.size != n:
                    raise RegridError(f"weights from {self.source}: {nm} has {a.size} values, expected {n} "
                                      f"({'source' if nm.endswith('_a') else 'destination'} size)")
                setattr(self, nm, a)
        if self.frac_b is None:
            rs = np.asarray(m.sum(axis=1)).ravel()
            self.frac_b = rs if self.normalization == "destarea" else (rs > 0).astype(np.float64)

    # ------------------------------------------------------------------ a scipy sparse matrix, as xESMF's .weights
    def __getattr__(self, name: str):
        """Everything else a scipy sparse matrix has (``shape``, ``nnz``, ``toarray``, ``tocoo``, ``sum``, ``T``...)
        comes from :attr:`matrix`, so ``regridder.weights`` is used as xESMF users use theirs."""
        if name.startswith("__") or name == "matrix":
            raise AttributeError(name)
        return getattr(self.matrix, name)

    def __matmul__(self, other):
        return self.matrix @ other

    def attach_grids(self, src: Grid, dst: Grid) -> None:
        """Keep the grids so that written files carry their centres and corners (NCO/ESMF tools read them); the
        corners are taken when the file is written (a regular grid makes them only then)."""
        self.grids = (src, dst)

    def _file_coords(self) -> dict:
        coords = dict(self.coords)
        if self.grids is not None:
            for g, sfx in zip(self.grids, ("a", "b"), strict=True):
                coords[f"xc_{sfx}"], coords[f"yc_{sfx}"] = g.lon, g.lat
                if g.has_bounds:
                    coords[f"xv_{sfx}"], coords[f"yv_{sfx}"] = g.corner_lon, g.corner_lat
        return coords

    @property
    def n_src(self) -> int:
        return self.matrix.shape[1]

    @property
    def n_dst(self) -> int:
        return self.matrix.shape[0]

    def digest(self, context: str = "") -> str:
        """SHA-256 of what the weights are and do: ``context`` (for a cache file: its key, which hashes both grids,
        the method and the backend), the method, the normalisation, the matrix (shape, sorted CSR structure and
        values) and the areas and fractions. A cached file is checked against the digest its key expects, so that an
        edited or damaged file, or a valid file of other grids or another method under this name, is never used."""
        import hashlib

        m = sp.csr_matrix(self.matrix, copy=True)
        m.sum_duplicates()
        m.sort_indices()
        h = hashlib.sha256(f"{context}|{self.method}|{self.normalization}|{m.shape}".encode())
        for a in (m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data.astype(np.float64)):
            h.update(a.tobytes())
        for a in (self.area_a, self.area_b, self.frac_a, self.frac_b):
            h.update(b"none" if a is None else np.ascontiguousarray(a, np.float64).tobytes())
        return h.hexdigest()

    def validate(self) -> None:
        """Sanity of weights read from a file or handed in: finite, no negative weight for first-order methods, and
        rows that sum to what the normalisation says (a conservative ``destarea`` row to its ``frac_b``, within
        1e-10; a ``fracarea``, bilinear or nearest row to 1 or 0). An error names the file, the row and the value."""
        m = self.matrix
        where = f"weights from {self.source} ({self.method})"
        bad = ~np.isfinite(m.data)
        if bad.any():
            r = int(np.searchsorted(m.indptr, np.flatnonzero(bad)[0], side="right") - 1)
            raise RegridError(f"{where}: {int(bad.sum())} weight(s) are NaN or infinite (first in destination row {r})")
        first_order = self.method in ("conservative", "bilinear", "nearest_s2d", "nearest_d2s", "nearest")
        if first_order and m.nnz and m.data.min() < -1e-12:
            k = int(np.argmin(m.data))
            r = int(np.searchsorted(m.indptr, k, side="right") - 1)
            raise RegridError(f"{where}: negative weight {m.data[k]:.3e} (destination row {r}, source column "
                              f"{int(m.indices[k])}); a first-order {self.method} map has none")
        rs = np.asarray(m.sum(axis=1)).ravel()
        filled = np.diff(m.indptr) > 0
        if self.method == "conservative" and self.normalization == "destarea":
            target, what = self.frac_b, "its destination fraction frac_b"
        elif self.method == "nearest_d2s" or self.normalization == "none" and self.method not in (
                "bilinear", "nearest_s2d", "nearest"):
            return
        else:
            target, what = np.where(filled, 1.0, 0.0), "1"
        if self.method in ("patch", "conservative_2nd"):
            return
        off = np.abs(rs - target)
        if off.size and off.max() > 1e-10:
            r = int(np.argmax(off))
            raise RegridError(f"{where}: destination row {r} sums to {rs[r]:.12g}, not {what} ({target[r]:.12g}); "
                              "weights scaled, doubled or cut")

    def check_sizes(self, n_src: int, n_dst: int, what: str = "grids") -> None:
        """An error naming ``what`` unless these weights map ``n_src`` source to ``n_dst`` destination cells."""
        if (self.n_src, self.n_dst) != (n_src, n_dst):
            raise RegridError(f"weights from {self.source} map {self.n_src} source to {self.n_dst} destination cells, "
                              f"but the {what} have {n_src} source and {n_dst} destination cells")

    def to_normalization(self, target: str) -> Weights:
        """Same weights, rows rescaled between ``destarea`` and ``fracarea`` using ``frac_b``."""
        if target not in ("destarea", "fracarea"):
            raise RegridError(f"cannot convert weights to normalization {target!r}")
        if target == self.normalization or self.normalization == "none":
            return self
        fb = self.frac_b
        if target == "fracarea":
            scale = np.divide(1.0, fb, out=np.zeros_like(fb), where=fb > 0)
        else:
            scale = fb
        m = sp.diags(scale) @ self.matrix
        m = sp.csr_matrix(m)
        m.sort_indices()
        return replace(self, matrix=m, normalization=target)

    # ------------------------------------------------------------------ I/O
    @classmethod
    def read(cls, path: str | Path) -> Weights:
        """ESMF/"NCAR-CSM" (S,row,col) or SCRIP (remap_matrix, src/dst_address) weight file."""
        path = Path(path)
        with open_netcdf(path, "weight file", RegridError) as ds:
            ds.set_auto_mask(False)
            v = ds.variables
            if {"S", "row", "col"} <= set(v):
                w = _read_esmf(ds, path)
            elif {"remap_matrix", "src_address", "dst_address"} <= set(v):
                w = _read_scrip(ds, path)
            else:
                raise RegridError(f"weight file {path} is neither ESMF format (needs variables S, row, col) nor SCRIP "
                                  f"format (needs remap_matrix, src_address, dst_address); it has {sorted(v)[:12]}")
        w.validate()
        return w

    def write(self, path: str | Path) -> None:
        """ESMF offline-weights ("NCAR-CSM") format, 1-based ``row``/``col``, readable by ESMF, NCO and xESMF."""
        import netCDF4

        coo = self.matrix.tocoo()
        with atomic_path(path, "weight file") as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            ds.createDimension("n_a", self.n_src)
            ds.createDimension("n_b", self.n_dst)
            ds.createDimension("n_s", coo.nnz)
            ds.title = "tamrl-coupler remapping weights"
            ds.normalization = self.normalization
            ds.map_method = self.method
            ds.conventions = "NCAR-CSM"
            for k, val in self.attrs.items():
                if k not in ("title", "normalization", "map_method", "conventions"):
                    ds.setncattr(k, val)
            for nm, shape, dimn in (("src_grid_dims", self.src_shape, "src_grid_rank"),
                                    ("dst_grid_dims", self.dst_shape, "dst_grid_rank")):
                if shape is not None:
                    ds.createDimension(dimn, len(shape))
                    var = ds.createVariable(nm, "i4", (dimn,))
                    var[:] = list(reversed(shape))  # Fortran order, as ESMF writes it
            for nm, data, dim in (("area_a", self.area_a, "n_a"), ("area_b", self.area_b, "n_b"),
                                  ("frac_a", self.frac_a, "n_a"), ("frac_b", self.frac_b, "n_b")):
                if data is not None:
                    var = ds.createVariable(nm, "f8", (dim,))
                    var.units = "square radians" if nm.startswith("area") else "unitless"
                    var[:] = data
            for nm, data, dim in (("mask_a", self.mask_a, "n_a"), ("mask_b", self.mask_b, "n_b")):
                if data is not None:
                    ds.createVariable(nm, "i4", (dim,))[:] = data
            for nm, data in self._file_coords().items():
                sfx = nm[-1]
                dims = (f"n_{sfx}",)
                if data.ndim == 2:
                    nv = f"nv_{sfx}"
                    if nv not in ds.dimensions:
                        ds.createDimension(nv, data.shape[1])
                    dims = (f"n_{sfx}", nv)
                var = ds.createVariable(nm, "f8", dims)
                var.units = "degrees"
                var[:] = data
            ds.createVariable("col", "i4", ("n_s",))[:] = coo.col + 1
            ds.createVariable("row", "i4", ("n_s",))[:] = coo.row + 1
            ds.createVariable("S", "f8", ("n_s",))[:] = coo.data

    def conservation_error(self, x: np.ndarray, valid: np.ndarray | None = None) -> float:
        """Relative error of the area-weighted integral of ``x`` after ``y = S @ x`` (the weights' own areas)."""
        if self.area_a is None or self.area_b is None:
            raise RegridError(f"weights from {self.source} carry no area_a/area_b: conservation cannot be checked")
        fa = self.frac_a if self.frac_a is not None else np.ones(self.n_src)
        x = np.asarray(x, np.float64)
        if valid is not None:
            x = np.where(valid, x, 0.0)
        y = self.matrix @ x
        if self.normalization == "fracarea":
            y = y * self.frac_b
        src = np.sum(self.area_a * fa * x)
        dst = np.sum(self.area_b * y)
        return abs(dst - src) / abs(src)


def _dim_size(ds, names) -> int | None:
    for n in names:
        if n in ds.dimensions:
            return len(ds.dimensions[n])
    return None


def _opt(ds, name):
    return np.asarray(ds.variables[name][...]) if name in ds.variables else None


_STERADIANS = {"square radians", "square radian", "steradian", "steradians", "sr", "rad2", "rad^2", "radians^2",
               "radian^2", "radians2", "radian2", "rad**2"}
_SQUARE_METRES = {"m2", "m^2", "m**2", "square meters", "square metres", "square meter", "square metre"}


def _area(ds, name: str, path: Path) -> np.ndarray | None:
    """Cell areas in steradians (ESMF and SCRIP write square radians; a file in m2 is converted, and a unit that is
    neither is an error: areas decide conservation, they are never guessed)."""
    if name not in ds.variables:
        return None
    a = np.asarray(ds.variables[name][...], dtype=np.float64)
    units = " ".join(str(getattr(ds.variables[name], "units", "square radians")).strip().lower().split())
    if units in _STERADIANS:
        return a
    if units in _SQUARE_METRES:
        return a / EARTH_RADIUS ** 2
    raise RegridError(f"weight file {path}: variable {name!r} has units {units!r}; expected square radians (or m2)")


def _grid_shape(ds, name):
    d = _opt(ds, name)
    return tuple(int(i) for i in reversed(d)) if d is not None else None


def _no_duplicates(row: np.ndarray, col: np.ndarray, n_src: int, path: Path) -> None:
    """A weight file lists each (destination, source) pair once; a pair listed twice would be summed, i.e. its
    weight doubled without a word."""
    key = row.astype(np.int64) * int(n_src) + col.astype(np.int64)
    uniq, counts = np.unique(key, return_counts=True)
    if uniq.size != key.size:
        k = int(uniq[np.argmax(counts > 1)])
        raise RegridError(f"weight file {path}: the pair (row {k // n_src + 1}, col {k % n_src + 1}) is listed "
                          f"{int(counts.max())} times ({int((counts > 1).sum())} such pairs): weights would be summed")


def _check_indices(idx: np.ndarray, n: int, var: str, path: Path) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = int(idx.min() + 1) if idx.min() < 0 else int(idx.max() + 1)
        raise RegridError(f"weight file {path}: variable {var!r} has index {bad} outside 1..{n} "
                          "(the file does not match its own grid sizes)")


def _read_esmf(ds, path: Path) -> Weights:
    v = ds.variables
    S = np.asarray(v["S"][...], np.float64).ravel()
    row = np.asarray(v["row"][...], np.int64).ravel() - 1
    col = np.asarray(v["col"][...], np.int64).ravel() - 1
    if not (S.size == row.size == col.size):
        raise RegridError(f"weight file {path}: S ({S.size}), row ({row.size}) and col ({col.size}) differ in length")
    n_a = _dim_size(ds, ["n_a"])
    n_b = _dim_size(ds, ["n_b"])
    if n_a is None or n_b is None:
        raise RegridError(f"weight file {path}: ESMF format needs dimensions n_a and n_b")
    _check_indices(row, n_b, "row", path)
    _check_indices(col, n_a, "col", path)
    _no_duplicates(row, col, n_a, path)
    norm = str(getattr(ds, "normalization", "destarea")).lower()
    if norm not in NORMALIZATIONS:  # ESMF writes "n/a" for non-conservative methods
        norm = "none"
    method = _method_name(str(getattr(ds, "map_method", "")) + " " + str(getattr(ds, "ESMF_regrid_method", "")))
    return Weights(canonical_csr(row, col, S, n_b, n_a), method=method, normalization=norm,
                   area_a=_area(ds, "area_a", path), area_b=_area(ds, "area_b", path), frac_a=_opt(ds, "frac_a"),
                   frac_b=_opt(ds, "frac_b"), mask_a=_opt(ds, "mask_a"), mask_b=_opt(ds, "mask_b"),
                   src_shape=_grid_shape(ds, "src_grid_dims"), dst_shape=_grid_shape(ds, "dst_grid_dims"),
                   attrs={k: ds.getncattr(k) for k in ds.ncattrs()}, source=str(path),
                   coords={n: np.asarray(ds.variables[n][...], np.float64) for n in
                           ("xc_a", "yc_a", "xv_a", "yv_a", "xc_b", "yc_b", "xv_b", "yv_b") if n in ds.variables})


def _read_scrip(ds, path: Path) -> Weights:
    v = ds.variables
    rm = np.asarray(v["remap_matrix"][...], np.float64)
    S = rm[:, 0] if rm.ndim == 2 else rm.ravel()
    row = np.asarray(v["dst_address"][...], np.int64).ravel() - 1
    col = np.asarray(v["src_address"][...], np.int64).ravel() - 1
    if not (S.size == row.size == col.size):
        raise RegridError(f"weight file {path}: remap_matrix ({S.size}), dst_address ({row.size}) and src_address "
                          f"({col.size}) differ in length")
    n_a = _dim_size(ds, ["src_grid_size"])
    n_b = _dim_size(ds, ["dst_grid_size"])
    if n_a is None or n_b is None:
        raise RegridError(f"weight file {path}: SCRIP format needs dimensions src_grid_size and dst_grid_size")
    _check_indices(row, n_b, "dst_address", path)
    _check_indices(col, n_a, "src_address", path)
    _no_duplicates(row, col, n_a, path)
    norm = str(getattr(ds, "normalization", "fracarea")).lower()
    if norm not in NORMALIZATIONS:
        norm = "none"
    method = _method_name(str(getattr(ds, "map_method", "")))
    return Weights(canonical_csr(row, col, S, n_b, n_a), method=method, normalization=norm,
                   area_a=_area(ds, "src_grid_area", path), area_b=_area(ds, "dst_grid_area", path),
                   frac_a=_opt(ds, "src_grid_frac"), frac_b=_opt(ds, "dst_grid_frac"),
                   mask_a=_opt(ds, "src_grid_imask"), mask_b=_opt(ds, "dst_grid_imask"),
                   src_shape=_grid_shape(ds, "src_grid_dims"), dst_shape=_grid_shape(ds, "dst_grid_dims"),
                   attrs={k: ds.getncattr(k) for k in ds.ncattrs()}, source=str(path))


def _method_name(text: str) -> str:
    t = text.lower()
    if "conserv" in t:
        return "conservative_2nd" if ("second" in t or "2nd" in t) else "conservative"
    if "bilinear" in t:
        return "bilinear"
    if "patch" in t:
        return "patch"
    if "neare" in t or "distwgt" in t:
        return "nearest_d2s" if ("dtos" in t or "d2s" in t) else "nearest_s2d"
    return t.strip() or "unknown"
