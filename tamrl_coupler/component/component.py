"""CouplingComponent: what a host model calls at every coupling step (the NUOPC/CTSM-cap lifecycle).

    comp = CouplingComponent(config, comm, HostCells(...))     # grids, weights, decomposition, checkpoint, device
    comp.register_import("tas", tas_array); ...                 # host arrays, read in place every step
    comp.register_export("nee", nee_array); ...                 # written in place every step
    comp.run_step(time_seconds, dt_seconds)                     # step [t, t + dt), t since the reference date
    comp.write_restart(path); comp.finalise()

This module is the cap only: the lifecycle, the clock and the order of the stages. One step: host forcing
validated on land cells and regridded to the model cells (component/imports.py) -> period drivers accumulated, the
TAM-RL ensemble on fixed cell blocks when due, sub-period downscaling with exact period totals
(component/evaluation.py) -> model -> host conservative regrid (exact global totals), unit conversion, NEE
recomputed from GPP and Reco on every host cell (component/exports.py). Cells and remaps: component/geometry.py;
restart files: component/state.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.component import state
from tamrl_coupler.component.clock import Clock, parse_datetime
from tamrl_coupler.component.evaluation import Evaluation
from tamrl_coupler.component.exports import Exports
from tamrl_coupler.component.geometry import Geometry, HostCells
from tamrl_coupler.component.imports import Imports
from tamrl_coupler.config.run import GridKind, GridSpec, RunConfig, load_run_config
from tamrl_coupler.devices import select_device
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.physics.units import flux_unit

TIMERS = ("import", "regrid_in", "drivers", "model", "downscale", "regrid_out", "export")


class CouplingComponent:
    """See the module docstring; the Component -> bridge contract of docs/ARCHITECTURE.md."""

    def __init__(self, config: str | Path | dict | RunConfig, comm: Any = None, cells: HostCells | None = None,
                 restart: str | Path | None = None, ensemble: Any = None, host_grid: GridSpec | None = None):
        """Collective. ``config``: a run config (path, mapping or RunConfig); ``comm``: an mpi4py communicator
        (default COMM_WORLD); ``cells``: this rank's host cells; ``restart``: continue from this file;
        ``ensemble``: an Ensemble instead of the config's checkpoint; ``host_grid``: the host's grid instead of the
        config's ``host.grid`` (the offline driver's, read from its forcing)."""
        import torch

        from tamrl_coupler.model import load_checkpoint

        if comm is None:
            from mpi4py import MPI

            comm = MPI.COMM_WORLD
        if cells is None:
            raise InputError("CouplingComponent needs this rank's HostCells")
        self.cfg = cfg = load_run_config(config)
        self.comm = comm
        torch.set_num_threads(max(1, cfg.device.threads))
        self.device = select_device(comm, cfg.device.kind).device
        self.ens = ensemble if ensemble is not None else load_checkpoint(cfg.path(cfg.model.checkpoint),
                                                                         device=self.device)
        self.clock = Clock(cfg.reference_date, self.ens.meta.period)
        self.unit = flux_unit(cfg.exports.unit)
        self.convention = SignConvention.parse(cfg.exports.sign_convention)
        grid = cfg.host.grid if host_grid is None else host_grid
        if grid.kind is GridKind.FORCING:
            raise InputError("host.grid 'forcing' is the offline driver's: a host names its grid (a grid file or a "
                             "CDO-style name) or 'points'")
        self.geometry = Geometry(cfg, comm, cells, cfg.grid(grid))
        self.imports = Imports(self.geometry, cfg.forcing.fill_policy, cfg.forcing.check_range)
        self.evaluation = Evaluation(self.ens, self.geometry, cfg.model.update_interval,
                                     parse_datetime(cfg.start, "start"))
        self.exports = Exports(self.geometry, self.unit, self.convention)
        self.timers: dict[str, float] = dict.fromkeys(TIMERS, 0.0)
        self.next_time: int | None = None
        self.n_steps = 0
        self._finalised = False
        if restart is not None:
            state.load(self, restart)

    # ------------------------------------------------------------------ registration
    @property
    def import_names(self) -> list[str]:
        """Import field names accepted: short names, aliases and CF standard names."""
        return self.imports.accepted_names()

    @property
    def export_names(self) -> list[str]:
        """Export field names, in the vocabulary's order."""
        return self.exports.names()

    def register_import(self, name: str, array: np.ndarray) -> None:
        """Keep ``array`` (float64, this rank's host cells) by reference; its values are read at every step."""
        self.imports.register(name, array)

    def register_export(self, name: str, array: np.ndarray) -> None:
        """Keep ``array`` (float64, this rank's host cells) by reference; every step writes into it."""
        self.exports.register(name, array)

    # ------------------------------------------------------------------ the coupling step
    def run_step(self, time_seconds: float, dt_seconds: float) -> None:
        """Advance one coupling step [time, time + dt): read imports, write exports."""
        if self._finalised:
            raise InputError("run_step called after finalise")
        info = self.clock.step(time_seconds, dt_seconds)
        t = int(round(time_seconds))
        if self.next_time is not None and t != self.next_time:
            raise InputError(f"coupling step at {t} s ({info.start}) but the component expects the step at "
                             f"{self.next_time} s ({self.clock.datetime(self.next_time)}); steps must be contiguous")
        if self.next_time is None:  # the first step of a fresh run: the model's calendar starts here
            self.ens.set_period(self.evaluation.state, info.start)
        if not self.imports.ready:
            self.imports.setup()
        timers = self.timers
        tick = time.perf_counter()
        self.imports.step(f"step {self.n_steps} ({info.start}, t = {t} s)")
        t1 = time.perf_counter()
        fields = self.imports.regrid()
        t2 = time.perf_counter()
        rows = self.evaluation.step(fields, info, timers)
        t3 = time.perf_counter()
        self.exports.regrid(rows)
        t4 = time.perf_counter()
        self.exports.write()
        timers["import"] += t1 - tick
        timers["regrid_in"] += t2 - t1
        timers["regrid_out"] += t4 - t3
        timers["export"] += time.perf_counter() - t4
        if info.ends_period:
            self.evaluation.end_period()
        self.next_time = t + info.dt
        self.n_steps += 1

    # ------------------------------------------------------------------ diagnostics
    def global_totals(self) -> dict[str, tuple[float, float]]:
        """Last step's global totals (gC d-1) of gpp, reco, nee: (model side, host side), exactly summed."""
        return self.exports.global_totals(self.evaluation.step_rows)

    # ------------------------------------------------------------------ restart and end
    def write_restart(self, path: str | Path) -> Path:
        """Everything the next step needs, in global cell order, written atomically by rank 0 (collective)."""
        return state.save(self, path)

    def finalise(self) -> None:
        """Release the host arrays; further steps are errors."""
        self._finalised = True
        self.imports.arrays.clear()
        self.exports.arrays.clear()


__all__ = ["CouplingComponent", "HostCells"]
