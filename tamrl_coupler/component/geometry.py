"""Where the component's cells are: the host cells each rank passes, the model cells, their decomposition over the
ranks in fixed evaluation blocks, and the distributed remaps between the two, built once at initialisation.

Host cells are numbered by their position among all ranks' global indices sorted (a host may pass only some of its
cells); model cells are the model-grid cells with land, in model-grid order (component/remap.py). Rank 0 makes the
weights (one CDO/esmpy call, one writer of the weight cache) and broadcasts them; every rank fails together when it
cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.component.decomposition import BlockDecomposition
from tamrl_coupler.component.remap import RemapSet
from tamrl_coupler.component.validation import CellLocator
from tamrl_coupler.errors import InputError
from tamrl_coupler.parallel import Agreement
from tamrl_coupler.settings.run import RunConfig


@dataclass
class HostCells:
    """This rank's host cells: global indices (0-based, in the host grid), centres, areas [m2], land fractions."""

    global_index: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    area: np.ndarray
    land_fraction: np.ndarray

    def __post_init__(self) -> None:
        """Arrays as flat contiguous numbers; what is wrong with them is kept for :meth:`validate`, which the
        component calls inside its initialisation, where every rank learns of one rank's bad cells (raising here
        would leave the other ranks waiting in the component's first collective)."""
        self.problem: str | None = None
        try:
            self.global_index = np.ascontiguousarray(self.global_index, dtype=np.int64).ravel()
        except (TypeError, ValueError, OverflowError) as exc:
            self.problem = f"HostCells.global_index is not integers ({exc})"
            self.global_index = np.zeros(0, dtype=np.int64)
        for name in ("lat", "lon", "area", "land_fraction"):
            try:
                setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float64).ravel())
            except (TypeError, ValueError) as exc:
                self.problem = self.problem or f"HostCells.{name} is not numbers ({exc})"
                setattr(self, name, np.zeros(0))

    def validate(self, rank: int | str = "?") -> None:
        """An InputError naming the rank, the field and the first bad local cell, unless the cells are usable."""
        where = f"rank {rank}: HostCells"
        if self.problem:
            raise InputError(f"{where}: {self.problem}")
        n = self.global_index.size
        for name in ("lat", "lon", "area", "land_fraction"):
            a = getattr(self, name)
            if a.size != n:
                raise InputError(f"{where}.{name} has {a.size} values, expected {n} (one per global_index)")
            if not np.isfinite(a).all():
                i = int(np.flatnonzero(~np.isfinite(a))[0])
                raise InputError(f"{where}.{name} is {a[i]} at local cell {i} (global index {self.global_index[i]}); "
                                 f"expected finite values")
        if not n:
            return
        checks = (("area", self.area <= 0, "must be positive [m2]"),
                  ("land_fraction", (self.land_fraction < 0) | (self.land_fraction > 1), "must lie in [0, 1]"),
                  ("lat", np.abs(self.lat) > 90, "must lie in [-90, 90] degrees north"),
                  ("global_index", self.global_index < 0, "must be 0-based non-negative indices"))
        for name, bad, expected in checks:
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(f"{where}.{name} {expected}; local cell {i} (global index {self.global_index[i]}) "
                                 f"has {getattr(self, name)[i]}")

    @property
    def size(self) -> int:
        return int(self.global_index.size)


def allgatherv(comm: Any, local: np.ndarray) -> np.ndarray:
    """Every rank's ``local`` values, concatenated in rank order, on every rank."""
    counts = np.asarray(comm.allgather(int(local.size)), dtype=np.int64)
    out = np.empty(int(counts.sum()), dtype=local.dtype)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    comm.Allgatherv(np.ascontiguousarray(local), [out, (counts, displs)])
    return out


def resolve_block_size(setting: int | str, device_type: str, comm: Any) -> int:
    """``model.block_size``, or for "auto" the model's chunk on this rank's device (256 cells on a CPU, in cache;
    65536 on a GPU, to fill it). Collective: every rank must cut the same blocks, so "auto" is the smallest of the
    ranks' (a mixed CPU/GPU run gets the CPU's)."""
    if setting != "auto":
        return int(setting)
    from tamrl_coupler.model.core import CHUNK_CPU, CHUNK_CUDA

    return min(comm.allgather(CHUNK_CUDA if device_type == "cuda" else CHUNK_CPU))


class Geometry:
    """Host and model cells of this rank and of all ranks, and the remaps between them (collective to build)."""

    def __init__(self, cfg: RunConfig, comm: Any, cells: HostCells, host_grid: str | Path | None,
                 block_size: int):
        """``host_grid``: the host's grid (a CDO-style name or a file), None when the host has none (point sets);
        ``block_size``: model cells per evaluation block (:func:`resolve_block_size`)."""
        self.comm, self.cells = comm, cells
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        agreement = Agreement(comm)
        with agreement.guard("CouplingComponent: host cells"):
            cells.validate(self.rank)
        all_idx = allgatherv(comm, cells.global_index)
        order = np.argsort(all_idx, kind="stable")
        present = all_idx[order]
        if present.size and (np.diff(present) == 0).any():
            dup = int(present[np.flatnonzero(np.diff(present) == 0)[0]])
            raise InputError(f"host cell {dup} (global index) is passed by more than one rank")
        self.all_host_lat = allgatherv(comm, cells.lat)[order]
        self.all_host_lon = allgatherv(comm, cells.lon)[order]
        lf = allgatherv(comm, cells.land_fraction)[order]
        area = allgatherv(comm, cells.area)[order]
        # rank 0 makes the weights (every rank fails together when it cannot, none waits in the broadcast)
        remap = agreement.on_root("CouplingComponent: building the remapping weights", lambda: RemapSet(
            present, lf, area, cfg.grid(cfg.model.grid), host_grid, backend=cfg.regrid.backend,
            cache_dir=cfg.path(cfg.regrid.cache_dir), state_method=cfg.regrid.host_to_model_states,
            flux_method=cfg.regrid.host_to_model_fluxes, host_lat=self.all_host_lat, host_lon=self.all_host_lon))
        self.remap: RemapSet = comm.bcast(remap, root=0)
        self.host_present = present  # sorted global indices of every rank's host cells
        # host numbering: position among all present host cells
        self.host_pos = np.searchsorted(present, cells.global_index)
        self.n_host_total = present.size
        self.host_active = cells.land_fraction > 0
        self.locator = CellLocator(self.rank, cells.global_index, cells.lat, cells.lon)
        self._model_cells(block_size)
        self._regridders()

    def _model_cells(self, block_size: int) -> None:
        r = self.remap
        self.n_model_total = r.model_global.size
        self.decomp = BlockDecomposition(self.n_model_total, block_size, self.size)
        c0, c1 = self.decomp.cell_range(self.rank)
        self.model_range = (c0, c1)
        self.n_model = c1 - c0
        self.blocks = self.decomp.local_blocks(self.rank)
        self.model_landfrac = r.model_landfrac[c0:c1]
        self.model_area = r.model_area[c0:c1]
        if r.model_lat is not None:
            self.model_lat, self.model_lon = r.model_lat[c0:c1], r.model_lon[c0:c1]
        else:  # identity: model cells are the host land cells, in host order
            pos = np.searchsorted(self.host_present, r.model_global[c0:c1])
            self.model_lat, self.model_lon = self.all_host_lat[pos], self.all_host_lon[pos]

    def _regridders(self) -> None:
        from tamrl_coupler.regrid import DistributedRegridder, Weights

        r, mine = self.remap, np.arange(*self.model_range)

        def dist(matrix, src, dst):
            return DistributedRegridder(Weights(matrix=matrix, normalization="none", source="component"),
                                        self.comm, src, dst)

        self.rg_state = dist(r.state, self.host_pos, mine)
        self.rg_flux = dist(r.flux, self.host_pos, mine)
        self.rg_class = dist(r.klass, self.host_pos, mine)
        self.rg_out = dist(r.to_host, mine, self.host_pos)
        # host cells no model cell overlaps get no flux: only ocean cells may be such (a land cell outside the
        # model grid's cover would be handed a made-up flux)
        covered = self.rg_out(np.ones((1, self.n_model)))[0]
        self.host_uncovered = ~np.isfinite(covered)
        with Agreement(self.comm).guard("CouplingComponent: host land cells covered by model cells"):
            lost = self.host_uncovered & self.host_active
            if lost.any():
                i = int(np.flatnonzero(lost)[0])
                raise InputError(f"{int(lost.sum())} host land cell(s) on rank {self.rank} overlap no model cell of "
                                 f"model.grid: {self.locator.describe(i)} (the model grid does not cover them)")
        mask = self.host_active.astype(np.float64)[None, :]
        den_state = self.rg_state(mask)[0]
        den_flux = self.rg_flux(mask)[0]
        # model cells whose bilinear stencil has no land host cell take the states' conservative values instead
        self.use_flux_for_state = ~(den_state > 0)
        # whether any rank needs that fallback: its rows ride in a collective exchange, so every rank must agree on
        # the field count (a per-rank choice deadlocks)
        self.any_fallback = self.comm.allreduce(int(self.use_flux_for_state.any())) > 0
        with np.errstate(divide="ignore"):
            self.inv_den_state = np.where(den_state > 0, 1.0 / np.where(den_state > 0, den_state, 1), 0.0)
            self.inv_den_flux = np.where(den_flux > 0, 1.0 / np.where(den_flux > 0, den_flux, 1), 0.0)

    def host_array(self, name: str, array: object) -> np.ndarray:
        """A host field registered by name must be this rank's host cells as a 1-D float64 numpy array: it is used
        in place, every step."""
        n = self.cells.size
        if not isinstance(array, np.ndarray):
            raise InputError(f"field '{name}' on rank {self.rank}: expected a numpy float64 array, got "
                             f"{type(array).__name__}")
        if array.dtype != np.float64 or array.ndim != 1 or array.size != n:
            raise InputError(f"field '{name}' on rank {self.rank}: expected a 1-D float64 array of {n} values (this "
                             f"rank's host cells), got {array.dtype} {array.shape}")
        return array

    @property
    def model_global(self) -> np.ndarray:
        """Model-grid indices of this rank's model cells."""
        return self.remap.model_global[self.model_range[0]:self.model_range[1]]

    def gather_model(self, a: np.ndarray) -> np.ndarray | None:
        """This rank's model-cell rows of ``a`` -> all model cells in global order on rank 0 (None elsewhere)."""
        parts = self.comm.gather(np.ascontiguousarray(a), root=0)
        if self.rank == 0:
            out = np.concatenate(parts, axis=0)
            if out.shape[0] != self.n_model_total:
                raise InputError(f"gathered {out.shape[0]} model cells, expected {self.n_model_total}")
            return out
        return None

    def gather_host(self, a: np.ndarray) -> np.ndarray | None:
        """This rank's host-cell values -> all present host cells in global order on rank 0 (None elsewhere)."""
        parts = self.comm.gather((self.host_pos, a), root=0)
        if self.rank == 0:
            out = np.full(self.n_host_total, np.nan)
            for pos, vals in parts:
                out[pos] = vals
            return out
        return None
