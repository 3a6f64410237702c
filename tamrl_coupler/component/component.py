"""CouplingComponent: what a host model calls at every coupling step (the NUOPC/CTSM-cap lifecycle).

    comp = CouplingComponent(config, comm, HostCells(...))     # grids, weights, decomposition, checkpoint, device
    comp.register_import("tas", tas_array); ...                 # host arrays, read in place every step
    comp.register_export("nee", nee_array); ...                 # written in place every step
    comp.run_step(time_seconds, dt_seconds)                     # step [t, t + dt), t since the reference date
    comp.write_restart(path); comp.finalise()

This module is the cap only: the lifecycle, the clock and the order of the stages. One step: host forcing
validated on land cells and regridded to the model cells (component/imports.py) -> period drivers accumulated, the
TAM-RL ensemble on fixed cell blocks when due, sub-period downscaling with exact period totals
(component/model_stage.py) -> model -> host conservative regrid (exact global totals), unit conversion, NEE
recomputed from GPP and Reco on every host cell (component/exports.py). Cells and remaps: component/geometry.py;
restart files: component/state.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler import signals, vocabulary
from tamrl_coupler.component import state
from tamrl_coupler.component.budget import BudgetStage
from tamrl_coupler.component.clock import Clock, StepInfo, parse_datetime
from tamrl_coupler.component.exports import Exports
from tamrl_coupler.component.geometry import Geometry, HostCells, resolve_block_size
from tamrl_coupler.component.imports import Imports
from tamrl_coupler.component.model_stage import ModelStage
from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.devices import select_device
from tamrl_coupler.errors import InputError, StopRequested, TamrlError
from tamrl_coupler.parallel import Agreement, ExitWatch, watch_exit
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.physics.units import flux_unit
from tamrl_coupler.settings.run import GridKind, GridSpec, RunConfig, load_run_config

log = logging.getLogger("tamrl_coupler.component")
TIMERS = ("import", "regrid_in", "drivers", "model", "downscale", "regrid_out", "export")


class CouplingComponent:
    """See the module docstring; the Component -> bridge contract of docs/ARCHITECTURE.md.

    Every failure that can happen on some ranks only (bad host cells, a missing registration, bad forcing, a model
    error, a restart file) is agreed by all ranks before the next collective (tamrl_coupler/parallel.py): every
    rank raises the same error, naming the failing rank(s). A step validates everything (time, registrations,
    forcing, export arrays) before it changes any state, so a step that fails validation can be retried and then
    gives the fluxes of an uninterrupted run. A failure after that point (inside the model) leaves the state
    half-advanced: the component then refuses further steps and restart writes, saying so.
    """

    def __init__(self, config: str | Path | dict | RunConfig, comm: Any = None, cells: HostCells | None = None,
                 restart: str | Path | None = None, ensemble: Any = None, host_grid: GridSpec | None = None,
                 allow_unverified: bool = False):
        """Collective. ``config``: a run config (path, mapping or RunConfig); ``comm``: an mpi4py communicator
        (default COMM_WORLD); ``cells``: this rank's host cells; ``restart``: continue from this file;
        ``ensemble``: an Ensemble instead of the config's checkpoint; ``host_grid``: the host's grid instead of the
        config's ``host.grid`` (the offline driver's, read from its forcing); ``allow_unverified``: accept a
        restart or checkpoint of an older format without a whole-file seal (the user trusts it)."""
        import torch

        from tamrl_coupler.model import load_checkpoint
        from tamrl_coupler.model.checkpoint import resolve_checkpoint

        if comm is None:
            from tamrl_coupler.communicator import world

            comm = world()
        self.comm = comm
        self.agreement = Agreement(comm)
        self._fingerprint: str | None = None
        with self.agreement.guard("CouplingComponent: reading the run config"):
            if not isinstance(cells, HostCells):
                raise InputError(f"CouplingComponent needs this rank's HostCells, got {type(cells).__name__}")
            self.cfg = cfg = load_run_config(config)
        with self.agreement.guard("CouplingComponent: choosing the device"):  # cuda:N may exist on some nodes only
            self.device = select_device(comm, cfg.device.kind).device
        with self.agreement.guard("CouplingComponent: loading the checkpoint"):
            torch.set_num_threads(max(1, cfg.device.threads))
            self.checkpoint_path = None if ensemble is not None else resolve_checkpoint(cfg.model.checkpoint,
                                                                                        cfg.base_dir)
            self.ens = ensemble if ensemble is not None else load_checkpoint(
                self.checkpoint_path, device=self.device, allow_unverified=allow_unverified)
            self.clock = Clock(cfg.reference_date, self.ens.meta.period)
            self.unit = flux_unit(cfg.exports.unit)
            self.convention = SignConvention.parse(cfg.exports.sign_convention)
            grid = cfg.host.grid if host_grid is None else host_grid
            if grid.kind is GridKind.FORCING:
                raise InputError("host.grid 'forcing' is the offline driver's: a host names its grid (a grid file or "
                                 "a CDO-style name) or 'points'")
        self.geometry = Geometry(cfg, comm, cells, cfg.grid(grid),
                                 resolve_block_size(cfg.model.block_size, self.ens.device.type, comm))
        with self.agreement.guard("CouplingComponent: setting up the stages"):
            self.imports = Imports(self.geometry, cfg.forcing.fill_policy, cfg.forcing.check_range,
                                   cfg.forcing.check_plausibility)
            self.model_stage = ModelStage(self.ens, self.geometry, cfg.model.update_interval,
                                         parse_datetime(cfg.start, "start"),
                                         nan_aware=cfg.forcing.fill_policy == "missing",
                                         cuda_graphs=cfg.device.cuda_graphs)
            self.exports = Exports(self.geometry, self.unit, self.convention, self.model_stage.step_rows.names)
            self.budget = BudgetStage(cfg.budget, self.geometry, self.checkpoint_path, self.ensemble_fingerprint()
                                      if cfg.budget.spec().adjusts else "", cfg.base_dir, self.ens.meta.period)
            self.model_stage.budget = self.budget
        self.budget.update_factor(self.agreement)  # collective for a global sink: after the ranks agreed the setup
        self.timers: dict[str, float] = dict.fromkeys(TIMERS, 0.0)
        self.next_time: int | None = None
        self.n_steps = 0
        self._finalised = False
        self.broken: str | None = None  # why the state can no longer be trusted (a failure inside a step)
        self._registration_errors: dict[str, str] = {}  # field -> why its last registration on this rank failed
        self._step_clock: tuple[int, int] | None = None
        self._live = ExitWatch()  # until finalise(), even if the host drops the component without finalising
        watch_exit(comm, self._live)
        self._restored_from: str | None = None  # the restart this component continues, until its first step
        if restart is not None:
            state.load(self, restart, allow_unverified)
            self._restored_from = str(restart)

    # ------------------------------------------------------------------ registration
    @property
    def import_names(self) -> list[str]:
        """Import field names accepted: short names, aliases and CF standard names."""
        return self.imports.accepted_names()

    @property
    def export_names(self) -> list[str]:
        """Export field names, in the vocabulary's order."""
        return self.exports.names()

    def field_name(self, kind: str, name: str) -> str:
        """The quantity a host's field name stands for (``kind`` "import" or "export"): its name, an alias or its CF
        standard name, the one resolution of :meth:`register_import`/:meth:`register_export` and the Fortran
        bridge's; an error lists what is accepted."""
        if kind == "import":
            return self.imports.field_name(name)
        if kind == "export":
            return self.exports.field_name(name)
        raise InputError(f"field kind {kind!r}: expected 'import' or 'export'")

    def register_import(self, name: str, array: np.ndarray) -> None:
        """Keep ``array`` (float64, this rank's host cells) by reference; its values are read at every step."""
        self._register(vocabulary.Role.IMPORT, name, lambda: self.imports.register(name, array))

    def register_export(self, name: str, array: np.ndarray) -> None:
        """Keep ``array`` (float64, this rank's host cells) by reference; every step writes into it."""
        self._register(vocabulary.Role.EXPORT, name, lambda: self.exports.register(name, array))

    def _register(self, role: vocabulary.Role, name: str, work: Callable[[], None]) -> None:
        """Registration is local (no collective), so its error is raised here on this rank only; which field
        failed is also kept (until it is registered again successfully) and compared between the ranks by the
        next step's agreement, so that a host which carried on after a failure on some ranks only gets the same
        error on every rank instead of leaving the others waiting."""
        try:
            key = f"{role.value} field '{vocabulary.canonical_name(role, name)}'"
        except (TamrlError, ValueError, TypeError):
            key = None  # an unknown name registers nothing: no collective depends on it
        try:
            work()
        except BaseException as exc:
            if key is not None:
                self._registration_errors[key] = str(exc)
            raise
        if key is not None:
            self._registration_errors.pop(key, None)

    # ------------------------------------------------------------------ the coupling step
    def run_step(self, time_seconds: float, dt_seconds: float) -> None:
        """Advance one coupling step [time, time + dt): read imports, write exports (collective)."""
        timers = self.timers
        tick = time.perf_counter()
        label = f"step {self.n_steps}"
        try:
            with self.agreement.guard(f"run_step(time={time_seconds!r} s, dt={dt_seconds!r} s)",
                                      same=self._registration_signature, clock=lambda: self._step_clock,
                                      clock_label=self._clock_label):
                self._step_clock = None
                info, t = self._check_step(time_seconds, dt_seconds)
                self._step_clock = (t, info.dt)  # every rank must step the same clock: agreed with the rest
                label = f"step {self.n_steps} ({info.start}, t = {t} s)"
                if not self.imports.ready:
                    self.imports.setup()
                self.exports.check_arrays()
                self.imports.step(label, info, first_step=self.next_time is None)
        except BaseException:
            self.imports.discard()  # this step's substitutions are counted when it is retried and passes
            raise
        # every rank validated everything: from here on the step changes the component's state
        if self.next_time is None:  # the first step of a fresh run: the model's calendar starts here
            self.ens.set_period(self.model_stage.state, info.start)
        self.imports.commit(label, info)
        t1 = time.perf_counter()
        fields = self.imports.regrid()
        t2 = time.perf_counter()
        try:
            # agreed on every step, evaluating or not (accumulation and downscaling can fail too): the export
            # regrid after it is collective, so one rank's failure must reach the others first
            with self.agreement.guard(f"run_step {label}: the model"):
                rows = self.model_stage.step(fields, info, timers)
        except BaseException as exc:
            self.broken = f"{label} failed inside the model ({type(exc).__name__}), after its drivers were added"
            raise
        t3 = time.perf_counter()
        self.exports.regrid(rows)
        t4 = time.perf_counter()
        self.exports.write()
        timers["import"] += t1 - tick
        timers["regrid_in"] += t2 - t1
        timers["regrid_out"] += t4 - t3
        timers["export"] += time.perf_counter() - t4
        if info.ends_period:
            seen_days = self.model_stage.acc.elapsed / SECONDS_PER_DAY  # the part of the period this run stepped
            self.model_stage.end_period()
            if self.budget.spec.adjusts:
                with self.agreement.guard(f"run_step {label}: the carbon budget"):
                    month_closed = self.budget.end_period(
                        info.start + np.timedelta64(info.dt - info.period_seconds, "s"), seen_days)
                if month_closed:  # the same on every rank (the calendar's); collective for a global sink
                    self.budget.update_factor(self.agreement)
        self.next_time = t + info.dt
        self.n_steps += 1
        self._restored_from = None
        if self.agreement.stop:  # a stop signal reached some rank: every rank learnt it in this step's agreements
            self._stop(info)

    def _stop(self, info: StepInfo) -> None:
        """Every rank finished the step; tell the host to write its restart and end (the same on every rank)."""
        sig, rank = self.agreement.stop, self.agreement.stop_rank
        self.agreement.clear_stop()
        end = info.start + np.timedelta64(info.dt, "s")
        err = StopRequested(f"stopped on {signals.name(sig)} (received by rank {rank}) after coupling step "
                            f"{self.n_steps - 1} ({info.start} to {end}): every rank finished the step and its "
                            f"fluxes are exported; write a restart (write_restart) and end -- the run continues from "
                            f"it exactly", sig, rank)
        err.agreed = True  # type: ignore[attr-defined]  # every rank raises it at the same step
        err.comm_rank = self.geometry.rank  # type: ignore[attr-defined]
        raise err

    def _clock_label(self, t: int) -> str:
        return f"step {self.n_steps} at t = {t} s ({self.clock.datetime(t)})"

    def _check_step(self, time_seconds: float, dt_seconds: float) -> tuple[StepInfo, int]:
        """The step's place in time, or an InputError saying what is wrong with the call (nothing is changed)."""
        if self._finalised:
            raise InputError("run_step called after finalise")
        if self.broken:
            raise InputError(f"run_step refused: {self.broken}; the component's state is no longer consistent. "
                             f"Continue from the last restart file")
        info = self.clock.step(time_seconds, dt_seconds)
        t = int(round(time_seconds))
        if self.next_time is not None and t != self.next_time:
            origin = f", where restart {self._restored_from} left off" if self._restored_from else ""
            raise InputError(f"coupling step at {t} s ({info.start}) but the component expects the step at "
                             f"{self.next_time} s ({self.clock.datetime(self.next_time)}{origin}); steps must be "
                             f"contiguous")
        return info, t

    def _registration_signature(self) -> str:
        """What every rank must have registered alike (the fields of the collective regrids), and the
        registrations that failed: harmless when they failed on every rank alike (nothing was registered
        anywhere), an error on every rank when some ranks differ."""
        failed = f", its registration of {', '.join(sorted(self._registration_errors))} failed" \
            if self._registration_errors else ""
        return f"imports {sorted(self.imports.arrays)}{failed}"

    # ------------------------------------------------------------------ diagnostics
    def global_totals(self) -> dict[str, tuple[float, float]]:
        """Last step's global totals (gC d-1) of gpp, reco, nee: (model side, host side), exactly summed."""
        return self.exports.global_totals(self.model_stage.step_rows)

    # ------------------------------------------------------------------ restart and end
    def write_restart(self, path: str | Path) -> Path:
        """Everything the next step needs, in global cell order, written atomically by rank 0 (collective; a failed
        write is raised on every rank)."""
        return state.save(self, path)

    def ensemble_fingerprint(self) -> str:
        """The ensemble's SHA-256 fingerprint (weights and physics header), recorded in and checked against
        restarts; computed once."""
        if self._fingerprint is None:
            from tamrl_coupler.model.checkpoint import ensemble_fingerprint

            self._fingerprint = ensemble_fingerprint(self.ens)
        return self._fingerprint

    def checkpoint_identity(self) -> dict[str, str]:
        """The checkpoint's name, digests, version and spread meaning, for the files made from this run."""
        from tamrl_coupler.model.identity import checkpoint_identity, spread_meaning

        if self.checkpoint_path is not None:
            return checkpoint_identity(self.checkpoint_path)
        meta = self.ens.meta
        return {"checkpoint": "(an ensemble given in memory)", "checkpoint_fingerprint": self.ensemble_fingerprint(),
                "checkpoint_period": meta.period, "spread_meaning": spread_meaning(meta.period, meta.calibration)}

    def forcing_substitutions(self) -> dict[str, int]:
        """Values the fill policy replaced so far, per import field with any, summed over all ranks (collective)."""
        local = self.imports.substitutions
        names = list(vocabulary.IMPORTS)  # the same vector on every rank, whatever each registered
        totals = self.comm.allreduce(np.array([local.get(n, 0) for n in names], dtype=np.int64))
        return {n: int(v) for n, v in zip(names, totals, strict=True) if v}

    def finalise(self) -> None:
        """Release the host arrays; further steps are errors. Logs this rank's fill-policy substitutions."""
        subs = {k: v for k, v in self.imports.substitutions.items() if v}
        if subs:
            log.warning("rank %d: fill_policy '%s' replaced forcing values: %s", self.geometry.rank,
                        self.cfg.forcing.fill_policy, ", ".join(f"{k} {v}" for k, v in subs.items()))
        self._finalised = True
        self._live.done()
        self.imports.arrays.clear()
        self.exports.arrays.clear()
        self.imports.given.clear()
        self.exports.given.clear()


__all__ = ["CouplingComponent", "HostCells"]
