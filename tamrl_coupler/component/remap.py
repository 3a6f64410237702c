"""The component's three remappings, built once at initialisation from the host and model grids.

* host -> model, states (tas, huss, ps ...): bilinear, normalised by the land mask (ocean host cells carry no
  information), falling back to conservative where no land host cell is in the bilinear stencil;
* host -> model, fluxes (rsds, pr ...): conservative (destination-area weights), land-mask normalised;
* model -> host, carbon fluxes: conservative and *exactly* conservative with land fraction. With W the
  model <- host conservative weights (overlap / model area), the model land fraction is L_m = W L_h and the host
  flux is F_h = (W^T (A_m F_m)) / A_h. Then sum_h A_h L_h F_h = sum_m A_m L_m F_m identically: global totals are
  conserved to rounding (checked <= 1e-12), whatever A_h the host uses.

Model cells are the model-grid cells with L_m > 0, numbered in model-grid order; host cells are numbered by
their position among all ranks' host global indices sorted (hosts may pass only some of their cells).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from tamrl_coupler.constants import EARTH_RADIUS
from tamrl_coupler.errors import InputError, RegridError

if TYPE_CHECKING:
    from tamrl_coupler.regrid import Grid


def restrict(matrix: sp.csr_matrix, rows: np.ndarray | None, cols: np.ndarray | None) -> sp.csr_matrix:
    """The rows and columns of ``matrix`` at these indices (None: all), CSR with sorted indices."""
    m = matrix
    if rows is not None:
        m = m[rows]
    if cols is not None:
        m = m[:, cols]
    m = sp.csr_matrix(m)
    m.sort_indices()
    return m


def largest_overlap(matrix: sp.csr_matrix, weight: np.ndarray) -> sp.csr_matrix:
    """One-hot rows: each destination takes the source with the largest ``matrix * weight`` (class fields)."""
    m = sp.csr_matrix(matrix.multiply(weight[None, :]))
    rows, cols = [], []
    for r in range(m.shape[0]):
        s, e = m.indptr[r], m.indptr[r + 1]
        if e > s:
            rows.append(r)
            cols.append(m.indices[s + int(np.argmax(m.data[s:e]))])
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=m.shape)


def check_host_coordinates(grid: Grid, index: np.ndarray, lat: np.ndarray, lon: np.ndarray, tol: float = 1e-3) -> None:
    """The host's cell centres must be the grid's at the given global indices (catches 1-based indices, a
    transposed or flipped grid, or the wrong grid file)."""
    dlat = np.abs(grid.lat[index] - lat)
    dlon = np.abs((grid.lon[index] - lon + 180.0) % 360.0 - 180.0)
    bad = (dlat > tol) | ((dlon > tol) & (np.abs(lat) < 90.0 - tol))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"host cell {int(index[i])} (global index, 0-based) is at lat {lat[i]:.4f}, lon {lon[i]:.4f} "
                         f"but host grid {grid.name!r} has lat {grid.lat[index[i]]:.4f}, lon "
                         f"{grid.lon[index[i]]:.4f} there ({int(bad.sum())} cells differ); are the indices 0-based "
                         f"and in the grid's C order (lat slowest)?")


class RemapSet:
    """Global sparse matrices in the component's numbering (host present cells, model land cells)."""

    def __init__(self, host_present: np.ndarray, host_landfrac: np.ndarray, host_area: np.ndarray,
                 model_grid: str | Path | None, host_grid: str | Path | None, backend: str = "auto",
                 cache_dir: Path | None = None, state_method: str = "bilinear", flux_method: str = "conservative",
                 host_lat: np.ndarray | None = None, host_lon: np.ndarray | None = None):
        """``host_present``: sorted global host indices of all ranks; landfrac/area [m2]/lat/lon in that order.
        ``model_grid`` / ``host_grid``: a CDO-style name or a grid file; ``model_grid`` None: the model cells are the
        host's land cells (no regridding)."""
        self.identity = model_grid is None
        n_h = host_present.size
        if self.identity:
            land = np.flatnonzero(host_landfrac > 0)
            self.model_global = host_present[land]
            self.model_lat = self.model_lon = None
            eye = sp.csr_matrix((np.ones(land.size), (np.arange(land.size), land)), shape=(land.size, n_h))
            self.state = self.flux = self.klass = eye
            self.model_landfrac = host_landfrac[land]
            self.model_area = host_area[land]
            self.to_host = sp.csr_matrix(eye.T)
            self.to_host.sort_indices()
            return
        from tamrl_coupler.regrid import Grid, Regridder

        if host_grid is None:
            raise InputError("a model grid other than the host's needs the host grid (host.grid: a grid file or a "
                             "CDO-style name)")
        host_grid = Grid.resolve(host_grid)
        model_grid = Grid.resolve(model_grid)
        if host_present.size and host_present.max() >= host_grid.size:
            raise InputError(f"host cell global index {int(host_present.max())} is outside the host grid "
                             f"{host_grid.name!r} ({host_grid.size} cells)")
        if host_lat is not None:
            check_host_coordinates(host_grid, host_present, host_lat, host_lon)
        wc = Regridder(host_grid, model_grid, flux_method, backend=backend, cache_dir=cache_dir).weights
        wc = wc.to_normalization("destarea") if wc.normalization not in ("destarea", "none") else wc
        ws = Regridder(host_grid, model_grid, state_method, backend=backend, cache_dir=cache_dir).weights
        W = restrict(wc.matrix, None, host_present)  # (model grid, present host)
        lm = W @ host_landfrac
        land = np.flatnonzero(lm > 0)
        if land.size == 0:
            raise RegridError(f"no model cell of {model_grid.name!r} overlaps a host cell with land")
        # the areas the conservative weights were made with (steradians, like the grid's own), in m2
        area_sr = wc.area_b if wc.area_b is not None else model_grid.area
        if area_sr is None:
            raise RegridError(f"model grid {model_grid.name!r} has no cell areas (bounds needed for conservation)")
        a_m = np.asarray(area_sr, dtype=np.float64)[land] * EARTH_RADIUS ** 2
        self.model_global = land
        self.model_lat = model_grid.lat[land]
        self.model_lon = model_grid.lon[land]
        self.model_landfrac = lm[land]
        self.model_area = a_m
        self.flux = restrict(W, land, None)
        self.state = restrict(ws.matrix, land, host_present)
        self.klass = largest_overlap(self.flux, host_landfrac)
        T = sp.csr_matrix(self.flux.T @ sp.diags(a_m))  # (present host, model land): overlap areas
        self.to_host = sp.csr_matrix(sp.diags(1.0 / host_area) @ T)
        self.to_host.sort_indices()
