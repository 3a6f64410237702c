"""Weights are checked against the grids they are applied to: sizes and shapes, cell centres, corners, areas and
masks, as far as the weight file records them (an ESMF file carries ``xc/yc/xv/yv/area/mask``, a SCRIP file
areas and masks). Two grids of the same size are not the same grid: an ESMF file made for grids that start at
-180 degrees, applied to a grid of the same size that starts at 0, moves every value by half the globe.
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid.grid import Grid
from tamrl_coupler.regrid.overlap import unit_vectors
from tamrl_coupler.regrid.weights import Weights

COORD_TOL_DEG = 1e-4   # centres and corners: files often store float32 degrees (3e-5 resolution near 360)
AREA_RTOL = 0.05       # areas: lat-lon and great-circle areas of one cell differ by up to a few per cent at a pole


def _angle_deg(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in degrees between points (any shapes that broadcast)."""
    chord = np.linalg.norm(unit_vectors(lon1, lat1) - unit_vectors(lon2, lat2), axis=-1)
    return np.rad2deg(2 * np.arcsin(np.clip(chord / 2, 0, 1)))


def check_weights_match(w: Weights, src: Grid, dst: Grid) -> None:
    """An error naming the weight file, the grids, the side, the cell and what differs, unless the weights ``w``
    were made for ``src`` -> ``dst``."""
    w.check_sizes(src.size, dst.size, f"grids {src.name!r} -> {dst.name!r}")
    what = f"weights from {w.source} used for grids {src.name!r} -> {dst.name!r}"
    for side, g, shape in (("source", src, w.src_shape), ("destination", dst, w.dst_shape)):
        if shape is not None and g.kind != "points" and int(np.prod(shape)) == g.size and len(shape) == len(g.shape) \
                and tuple(shape) != tuple(g.shape):
            raise RegridError(f"{what}: the weights' {side} grid has shape {tuple(shape)}, the {side} grid "
                              f"{g.name!r} has {g.shape}")
    for sfx, side, g in (("a", "source", src), ("b", "destination", dst)):
        made_for = w.grids[0 if sfx == "a" else 1] if w.grids is not None else None
        xc, yc = w.coords.get(f"xc_{sfx}"), w.coords.get(f"yc_{sfx}")
        if xc is None and made_for is not None:  # weights made here for another grid: compare with its centres
            xc, yc = made_for.lon, made_for.lat
        if xc is not None and yc is not None and np.size(xc) == g.size:
            d = _angle_deg(np.ravel(xc), np.ravel(yc), g.lon, g.lat)
            if d.max() > COORD_TOL_DEG:
                i = int(np.argmax(d))
                n_bad = int((d > COORD_TOL_DEG).sum())
                raise RegridError(f"{what}: {side} cell {i} is at lat {float(np.ravel(yc)[i]):.4f}, lon "
                                  f"{float(np.ravel(xc)[i]):.4f} in the weight file but at lat {g.lat[i]:.4f}, lon "
                                  f"{g.lon[i]:.4f} on grid {g.name!r} ({n_bad} centres differ)")
        xv, yv = w.coords.get(f"xv_{sfx}"), w.coords.get(f"yv_{sfx}")
        if xv is not None and yv is not None and g.has_bounds and np.shape(xv)[0] == g.size:
            _check_corners(np.asarray(xv), np.asarray(yv), g, side, what)
        area = w.area_a if sfx == "a" else w.area_b
        garea = g.area if g.kind != "points" else None
        frac = w.frac_a if sfx == "a" else w.frac_b
        if area is not None and garea is not None and xc is None:
            # CDO writes the covered area of a cell, not its area: compare fully covered cells only
            full = (area > 0) & (np.abs(frac - 1.0) < 1e-6 if frac is not None else True)
            rel = np.where(full, np.abs(area - garea) / np.maximum(garea, 1e-300), 0.0)
            if rel.max() > AREA_RTOL:
                i = int(np.argmax(rel))
                raise RegridError(f"{what}: {side} cell {i} has area {area[i]:.6e} sr in the weights but "
                                  f"{garea[i]:.6e} sr on grid {g.name!r}: not the grid the weights were made for")
        mask = w.mask_a if sfx == "a" else w.mask_b
        if mask is not None and g.mask is not None:
            differ = (np.asarray(mask) != 0) != (g.mask != 0)
            if differ.any():
                i = int(np.argmax(differ))
                raise RegridError(f"{what}: the {side} mask differs from the weights' in {int(differ.sum())} cells "
                                  f"(first cell {i}: {int(g.mask[i])} on grid {g.name!r}, {int(mask[i])} in the "
                                  f"weights)")


def _check_corners(xv: np.ndarray, yv: np.ndarray, g: Grid, side: str, what: str) -> None:
    """Every corner the file gives must be a corner of the grid's cell (in any order; padding repeats are fine)."""
    fv = unit_vectors(xv, yv)                          # (n, nv_file, 3)
    gv = unit_vectors(g.corner_lon, g.corner_lat)      # (n, nv_grid, 3)
    worst = np.zeros(g.size)
    for k in range(fv.shape[1]):
        chord = np.linalg.norm(gv - fv[:, k:k + 1, :], axis=2).min(axis=1)
        worst = np.maximum(worst, np.rad2deg(2 * np.arcsin(np.clip(chord / 2, 0, 1))))
    if worst.max() > COORD_TOL_DEG:
        i = int(np.argmax(worst))
        raise RegridError(f"{what}: {side} cell {i} has corners at lat {np.round(yv[i], 4).tolist()}, lon "
                          f"{np.round(xv[i], 4).tolist()} in the weight file, but grid {g.name!r} has lat "
                          f"{np.round(g.corner_lat[i], 4).tolist()}, lon {np.round(g.corner_lon[i], 4).tolist()} "
                          f"({int((worst > COORD_TOL_DEG).sum())} cells differ)")
