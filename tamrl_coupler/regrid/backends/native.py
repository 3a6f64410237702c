"""Weights computed here, without ESMF or CDO: exact first-order conservative between any two grids on the sphere,
bilinear from a regular lat-lon source, nearest neighbour between any grids.

Conservative, two regular lat-lon grids: cell edges are lines of constant latitude and longitude; overlaps factor
into a latitude part (difference of sines) and a longitude part (periodic interval overlap), so the weights are a
Kronecker product of two small 1-D overlap matrices and the cell areas are the exact lat-lon areas (what CDO's
``gencon`` conserves). Any other pair (curvilinear, unstructured meshes, regional grids, or ``edges="great_circle"``):
cell edges are great circles, as ESMF takes them, and the overlaps are clipped exactly on the sphere
(:mod:`tamrl_coupler.regrid.overlap`); the areas written with the weights are the great-circle cell areas.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid.grid import Grid
from tamrl_coupler.regrid.weights import Weights, canonical_csr

NAME = "native"


def supports(src: Grid, dst: Grid, method: str) -> bool:
    if method in ("nearest", "nearest_s2d", "nearest_d2s"):
        return True
    if method in ("conservative", "conservative_normed"):
        return src.kind != "points" and dst.kind != "points" and src.has_bounds and dst.has_bounds
    if method == "bilinear":
        return src.kind == "regular"
    return False


def _lat_overlap(src_b: np.ndarray, dst_b: np.ndarray) -> sp.csr_matrix:
    """(n_dst, n_src) overlaps in sin(latitude)."""
    s = np.sort(src_b, axis=1)
    d = np.sort(dst_b, axis=1)
    lo = np.maximum(d[:, None, 0], s[None, :, 0])
    hi = np.minimum(d[:, None, 1], s[None, :, 1])
    ov = np.where(hi > lo, np.sin(np.deg2rad(hi)) - np.sin(np.deg2rad(lo)), 0.0)
    return sp.csr_matrix(ov)


def _lon_overlap(src_b: np.ndarray, dst_b: np.ndarray) -> sp.csr_matrix:
    """(n_dst, n_src) overlaps in radians of longitude, periodic in 360 degrees."""
    s = src_b.copy()
    d = dst_b.copy()
    s[:, 1] = np.where(s[:, 1] < s[:, 0], s[:, 1] + 360.0, s[:, 1])
    d[:, 1] = np.where(d[:, 1] < d[:, 0], d[:, 1] + 360.0, d[:, 1])
    shift = np.floor((s[:, 0] - d[0, 0]) / 360.0) * 360.0  # bring sources near the destination origin
    s = s - shift[:, None]
    ov = np.zeros((d.shape[0], s.shape[0]))
    for k in (-720.0, -360.0, 0.0, 360.0, 720.0):
        lo = np.maximum(d[:, None, 0], s[None, :, 0] + k)
        hi = np.minimum(d[:, None, 1], s[None, :, 1] + k)
        ov += np.where(hi > lo, hi - lo, 0.0)
    return sp.csr_matrix(np.deg2rad(ov))


def conservative(src: Grid, dst: Grid, edges: str = "auto", progress=None) -> Weights:
    """First-order conservative weights (``destarea``). ``edges``: ``"auto"`` (lat-lon edges when both grids are
    regular lat-lon, great circles otherwise) or ``"great_circle"`` (always, as ESMF)."""
    src.require_bounds("conservative remapping")
    dst.require_bounds("conservative remapping")
    if edges not in ("auto", "great_circle"):
        raise RegridError(f"edges={edges!r} unknown; expected 'auto' or 'great_circle'")
    if src.kind != "regular" or dst.kind != "regular" or edges == "great_circle":
        return conservative_polygons(src, dst, progress)
    ov = sp.kron(_lat_overlap(src.lat_bounds, dst.lat_bounds), _lon_overlap(src.lon_bounds, dst.lon_bounds),
                 format="csr")
    ov = _apply_masks(ov, src, dst)
    area_a, area_b = src.area, dst.area
    inv_b = np.divide(1.0, area_b, out=np.zeros_like(area_b), where=area_b > 0)
    S = sp.diags(inv_b) @ ov  # destarea: mean over the whole destination cell
    S = sp.csr_matrix(S)
    S.eliminate_zeros()
    S.sort_indices()
    frac_b = np.asarray(S.sum(axis=1)).ravel()
    frac_a = np.asarray(ov.sum(axis=0)).ravel() / np.where(area_a > 0, area_a, 1.0)
    return Weights(S, method="conservative", normalization="destarea", area_a=area_a, area_b=area_b,
                   frac_a=frac_a, frac_b=frac_b, mask_a=_mask(src), mask_b=_mask(dst), src_shape=src.shape,
                   dst_shape=dst.shape, source=f"{NAME} backend")


def conservative_polygons(src: Grid, dst: Grid, progress=None) -> Weights:
    """Conservative weights between any two grids with great-circle cell edges: exact overlaps on the sphere."""
    from tamrl_coupler.regrid.overlap import CellPolygons, cell_areas, overlaps

    ps = CellPolygons.from_corners(src.corner_lon, src.corner_lat, src.name)
    pd = CellPolygons.from_corners(dst.corner_lon, dst.corner_lat, dst.name)
    area_a, area_b = cell_areas(ps), cell_areas(pd)
    active_a = np.flatnonzero(src.mask != 0) if src.mask is not None else np.arange(src.size)
    active_b = np.flatnonzero(dst.mask != 0) if dst.mask is not None else np.arange(dst.size)
    rows, cols, ov = overlaps(ps, pd, active_a, active_b, area_a, area_b, progress)
    inv_b = np.divide(1.0, area_b, out=np.zeros_like(area_b), where=area_b > 0)
    S = canonical_csr(rows, cols, ov * inv_b[rows], dst.size, src.size)
    frac_b = np.asarray(S.sum(axis=1)).ravel()
    frac_a = np.bincount(cols, weights=ov, minlength=src.size) / np.where(area_a > 0, area_a, 1.0)
    return Weights(S, method="conservative", normalization="destarea", area_a=area_a, area_b=area_b,
                   frac_a=frac_a, frac_b=frac_b, mask_a=_mask(src), mask_b=_mask(dst), src_shape=src.shape,
                   dst_shape=dst.shape, source=f"{NAME} backend (great-circle edges)")


def _mask(g: Grid) -> np.ndarray:
    return g.mask.astype(np.int32) if g.mask is not None else np.ones(g.size, np.int32)


def _apply_masks(m: sp.csr_matrix, src: Grid, dst: Grid) -> sp.csr_matrix:
    if src.mask is not None:
        m = m @ sp.diags(src.mask.astype(np.float64))
    if dst.mask is not None:
        m = sp.diags(dst.mask.astype(np.float64)) @ m
    m = sp.csr_matrix(m)
    m.eliminate_zeros()
    return m


def _bracket(c: np.ndarray, q: np.ndarray, periodic: bool,
             reach: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices i0, i1 of the centres around q and the weight t of i1; i0 = -1 where q is outside.

    ``reach``: the range beyond the outermost centres still counted inside (constant extrapolation), e.g. the
    polar caps of a global grid.
    """
    order = np.argsort(c)
    cs = c[order]
    n = cs.size
    if periodic:
        q = cs[0] + np.mod(q - cs[0], 360.0)
        j = np.searchsorted(cs, q, side="right") - 1  # 0..n-1
        nxt = np.where(j + 1 < n, cs[np.minimum(j + 1, n - 1)], cs[0] + 360.0)
        t = (q - cs[j]) / (nxt - cs[j])
        return order[j], order[(j + 1) % n], t
    j = np.searchsorted(cs, q, side="right") - 1
    lo, hi = (cs[0], cs[-1]) if reach is None else (min(cs[0], reach[0]), max(cs[-1], reach[1]))
    inside = (q >= lo) & (q <= hi)
    j = np.clip(j, 0, n - 2)
    t = (q - cs[j]) / (cs[j + 1] - cs[j])
    i0 = np.where(inside, order[j], -1)
    return i0, order[j + 1], np.clip(t, 0.0, 1.0)


def bilinear(src: Grid, dst: Grid) -> Weights:
    """Bilinear in (lat, lon) from a regular source to any destination; outside the source's centres: unmapped."""
    if src.kind != "regular":
        raise RegridError(f"native bilinear weights need a regular source grid, got {src.kind}; use cdo or esmpy")
    lon1, lat1 = src.lon1d, src.lat1d
    span = lon1.size * abs(lon1[1] - lon1[0]) if lon1.size > 1 else 0.0
    periodic = abs(span - 360.0) < 1e-6 if src.periodic is None else bool(src.periodic)
    reach = None
    if src.lat_bounds is not None:  # cells touching a pole: the cap beyond the last centre takes that row
        lb = src.lat_bounds
        reach = (-90.0 if lb.min() <= -90.0 + 1e-9 else lat1.min(), 90.0 if lb.max() >= 90.0 - 1e-9 else lat1.max())
    y0, y1, ty = _bracket(lat1, dst.lat, False, reach)
    x0, x1, tx = _bracket(lon1, dst.lon, periodic)
    if not periodic:
        x0 = np.where(x0 < 0, -1, x0)
    ok = (y0 >= 0) & (x0 >= 0)
    if dst.mask is not None:
        ok &= dst.mask != 0
    nx = lon1.size
    rows, cols, vals = [], [], []
    dst_idx = np.nonzero(ok)[0]
    for yi, wy in ((y0, 1 - ty), (y1, ty)):
        for xi, wx in ((x0, 1 - tx), (x1, tx)):
            rows.append(dst_idx)
            cols.append((yi * nx + xi)[ok])
            vals.append((wy * wx)[ok])
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    if src.mask is not None:  # drop masked corners, renormalise the rest (states near coasts keep a value)
        keep = src.mask[cols] != 0
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
    S = canonical_csr(rows, cols, vals, dst.size, src.size)
    rs = np.asarray(S.sum(axis=1)).ravel()
    S = sp.csr_matrix(sp.diags(np.divide(1.0, rs, out=np.zeros_like(rs), where=rs > 0)) @ S)
    S.eliminate_zeros()
    S.sort_indices()
    return Weights(S, method="bilinear", normalization="destarea", frac_b=(rs > 0).astype(np.float64),
                   mask_a=_mask(src), mask_b=_mask(dst), src_shape=src.shape, dst_shape=dst.shape,
                   area_a=src.area, area_b=dst.area, source=f"{NAME} backend")


def nearest(src: Grid, dst: Grid) -> Weights:
    """Each destination cell takes its nearest active source cell (great-circle distance)."""
    from scipy.spatial import cKDTree

    active = np.nonzero(src.mask != 0)[0] if src.mask is not None else np.arange(src.size)
    if active.size == 0:
        raise RegridError(f"source grid {src.name!r} has no active cells (mask all 0)")
    _, j = cKDTree(src.xyz()[active]).query(dst.xyz(), k=1)
    rows = np.arange(dst.size)
    ok = dst.mask != 0 if dst.mask is not None else np.ones(dst.size, bool)
    S = canonical_csr(rows[ok], active[j][ok], np.ones(int(ok.sum())), dst.size, src.size)
    return Weights(S, method="nearest_s2d", normalization="destarea", frac_b=ok.astype(np.float64),
                   mask_a=_mask(src), mask_b=_mask(dst), src_shape=src.shape, dst_shape=dst.shape,
                   area_a=src.area, area_b=dst.area, source=f"{NAME} backend")


def nearest_d2s(src: Grid, dst: Grid) -> Weights:
    """Each source cell goes to its nearest active destination cell with weight 1 (ESMF's ``NEAREST_DTOS``): a
    destination cell reached by several sources receives their sum, one reached by none is unmapped."""
    from scipy.spatial import cKDTree

    active = np.nonzero(dst.mask != 0)[0] if dst.mask is not None else np.arange(dst.size)
    if active.size == 0:
        raise RegridError(f"destination grid {dst.name!r} has no active cells (mask all 0)")
    _, j = cKDTree(dst.xyz()[active]).query(src.xyz(), k=1)
    ok = src.mask != 0 if src.mask is not None else np.ones(src.size, bool)
    cols = np.arange(src.size)[ok]
    rows = active[j][ok]
    S = canonical_csr(rows, cols, np.ones(cols.size), dst.size, src.size)
    reached = (np.diff(S.indptr) > 0).astype(np.float64)
    return Weights(S, method="nearest_d2s", normalization="none", frac_b=reached, mask_a=_mask(src),
                   mask_b=_mask(dst), src_shape=src.shape, dst_shape=dst.shape, area_a=src.area, area_b=dst.area,
                   source=f"{NAME} backend")


def generate(src: Grid, dst: Grid, method: str, edges: str = "auto", progress=None) -> Weights:
    if method in ("conservative", "conservative_normed"):
        return conservative(src, dst, edges, progress)
    if method == "bilinear":
        return bilinear(src, dst)
    if method in ("nearest", "nearest_s2d"):
        return nearest(src, dst)
    if method == "nearest_d2s":
        return nearest_d2s(src, dst)
    raise RegridError(f"native backend has no method {method!r}; it offers conservative, bilinear, nearest_s2d, "
                      "nearest_d2s (patch and conservative_2nd need esmpy)")
