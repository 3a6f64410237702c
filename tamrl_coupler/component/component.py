"""CouplingComponent: what a host model calls at every coupling step (the NUOPC/CTSM-cap lifecycle).

    comp = CouplingComponent(config, comm, HostCells(...))     # grids, weights, decomposition, checkpoint, device
    comp.register_import("tas", tas_array); ...                 # host arrays, read in place every step
    comp.register_export("nee", nee_array); ...                 # written in place every step
    comp.run_step(time_seconds, dt_seconds)                     # step [t, t + dt), t since the reference date
    comp.write_restart(path); comp.finalize()

One step: host forcing (validated on land cells) -> model grid (bilinear states, conservative fluxes, land-mask
normalised) -> period drivers accumulated -> TAM-RL ensemble on fixed cell blocks, from the partial period's drivers
(the LSTM state is committed only at the period end) -> sub-period downscaling (period totals exact) -> model ->
host conservative regrid (global totals exact) -> unit conversion -> NEE recomputed from GPP and Reco on every host
cell, so the balance identity holds bit-for-bit in the exported values.
"""

from __future__ import annotations

import math
import re
import time as _time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tamrl_coupler.component.clock import Clock, parse_datetime
from tamrl_coupler.component.config import RunConfig, load_run_config
from tamrl_coupler.component.decomposition import BlockDecomposition
from tamrl_coupler.component.devices import select_device
from tamrl_coupler.component.fields import (
    EXPORT_FIELDS,
    IMPORT_FIELDS,
    CellLocator,
    ForcingValidator,
    export_name,
    import_name,
    missing_imports,
)
from tamrl_coupler.component.remap import RemapSet
from tamrl_coupler.component.schedule import EvaluationSchedule
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components
from tamrl_coupler.physics.downscale import Downscaler
from tamrl_coupler.physics.drivers import DriverAccumulator
from tamrl_coupler.physics.units import flux_unit

EXPORT_ORDER = ("gpp", "reco", "nee", "gpp_spread", "reco_spread", "nee_spread")
ESTIMATE_ORDER = ("gpp", "reco", "gpp_std", "reco_std", "nee_std")  # the period estimate's rows, gC m-2 d-1


@dataclass
class HostCells:
    """This rank's host cells: global indices (0-based, in the host grid), centres, areas [m2], land fractions."""

    global_index: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    area: np.ndarray
    land_fraction: np.ndarray

    def __post_init__(self) -> None:
        self.global_index = np.ascontiguousarray(self.global_index, dtype=np.int64).ravel()
        n = self.global_index.size
        for name in ("lat", "lon", "area", "land_fraction"):
            a = np.ascontiguousarray(getattr(self, name), dtype=np.float64).ravel()
            if a.size != n:
                raise InputError(f"HostCells.{name} has {a.size} values, expected {n} (one per global_index)")
            if not np.isfinite(a).all():
                raise InputError(f"HostCells.{name} has non-finite values (first at local cell "
                                 f"{int(np.flatnonzero(~np.isfinite(a))[0])})")
            setattr(self, name, a)
        if n and (self.area <= 0).any():
            raise InputError(f"HostCells.area must be positive; local cell {int(np.argmin(self.area))} has "
                             f"{self.area.min()}")
        if n and ((self.land_fraction < 0) | (self.land_fraction > 1)).any():
            raise InputError("HostCells.land_fraction must lie in [0, 1]")
        if n and self.global_index.min() < 0:
            raise InputError("HostCells.global_index must be 0-based non-negative indices")

    @property
    def size(self) -> int:
        return int(self.global_index.size)


def _allgatherv(comm, local: np.ndarray) -> np.ndarray:
    counts = np.asarray(comm.allgather(int(local.size)), dtype=np.int64)
    out = np.empty(int(counts.sum()), dtype=local.dtype)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    comm.Allgatherv(np.ascontiguousarray(local), [out, (counts, displs)])
    return out


class CouplingComponent:
    """See the module docstring; the Component -> bridge contract of docs/ARCHITECTURE.md."""

    def __init__(self, config: str | Path | dict | RunConfig, comm=None, cells: HostCells | None = None,
                 restart: str | Path | None = None, ensemble=None):
        import torch

        from tamrl_coupler.model import load_checkpoint

        if comm is None:
            from mpi4py import MPI

            comm = MPI.COMM_WORLD
        if cells is None:
            raise InputError("CouplingComponent needs this rank's HostCells")
        self.cfg = cfg = load_run_config(config)
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.cells = cells
        torch.set_num_threads(max(1, cfg.device.threads))
        self.device = select_device(comm, cfg.device.kind).device
        self.ens = ensemble if ensemble is not None else load_checkpoint(cfg.path(cfg.model.checkpoint),
                                                                         device=self.device)
        meta = self.ens.meta
        self.clock = Clock(cfg.reference_date, meta.period)
        self.unit = flux_unit(cfg.exports.unit)
        self.convention = SignConvention.parse(cfg.exports.sign_convention)
        self.timers: dict[str, float] = {k: 0.0 for k in ("import", "regrid_in", "drivers", "model", "downscale",
                                                          "regrid_out", "export")}
        self.schedule = EvaluationSchedule(cfg.model.update_interval)
        self.have_estimate = False  # whether period_fluxes hold an estimate for the current period
        self.n_evaluations = 0
        self._build_grids()
        self._build_model_side(meta)
        self._imports: dict[str, np.ndarray] = {}
        self._exports: dict[str, np.ndarray] = {}
        self._validator: ForcingValidator | None = None
        self.next_time: int | None = None
        self.n_steps = 0
        self._finalized = False
        if restart is not None:
            self._read_restart(restart)

    # ------------------------------------------------------------------ initialisation
    def _host_grid_spec(self):
        spec = self.cfg.host.grid
        if spec in ("points", "host"):
            return None
        if re.fullmatch(r"r\d+x\d+", spec.strip()):
            return spec.strip()  # a CDO-style name
        return str(self.cfg.path(spec))

    def _build_grids(self) -> None:
        comm, cells = self.comm, self.cells
        all_idx = _allgatherv(comm, cells.global_index)
        order = np.argsort(all_idx, kind="stable")
        present = all_idx[order]
        if present.size and (np.diff(present) == 0).any():
            dup = int(present[np.flatnonzero(np.diff(present) == 0)[0]])
            raise InputError(f"host cell {dup} (global index) is passed by more than one rank")
        lf = _allgatherv(comm, cells.land_fraction)[order]
        area = _allgatherv(comm, cells.area)[order]
        lat = _allgatherv(comm, cells.lat)[order]
        lon = _allgatherv(comm, cells.lon)[order]
        model_spec = self.cfg.model.grid
        host_spec = self._host_grid_spec()
        if model_spec != "host" and host_spec is None:
            raise InputError(f"model.grid {model_spec!r} needs host.grid to be a grid file or name, "
                             f"not {self.cfg.host.grid!r}")
        if model_spec != "host" and not re.fullmatch(r"r\d+x\d+", model_spec.strip()):
            model_spec = str(self.cfg.path(model_spec))  # a grid file, relative to the config
        # rank 0 makes the weights (one CDO/esmpy call, one writer of the weight cache) and broadcasts them
        remap, error = None, None
        if self.rank == 0:
            try:
                remap = RemapSet(present, lf, area, model_spec, host_spec, backend=self.cfg.regrid.backend,
                                 cache_dir=self.cfg.path(self.cfg.regrid.cache_dir),
                                 state_method=self.cfg.regrid.host_to_model_states,
                                 flux_method=self.cfg.regrid.host_to_model_fluxes, host_lat=lat, host_lon=lon)
            except Exception as exc:  # every rank must fail together, not hang in the broadcast
                error = exc
        remap, error = comm.bcast((remap, error), root=0)
        if error is not None:
            raise error
        self.remap = remap
        # host numbering: position among all present host cells
        self.host_pos = np.searchsorted(present, cells.global_index)
        self.n_host_total = present.size
        self.host_active = cells.land_fraction > 0
        self.locator = CellLocator(self.rank, cells.global_index, cells.lat, cells.lon)

    def _build_model_side(self, meta) -> None:
        from tamrl_coupler.regrid import DistributedRegridder, Weights

        r = self.remap
        self.n_model_total = r.model_global.size
        self.decomp = BlockDecomposition(self.n_model_total, self._block_size(), self.size)
        c0, c1 = self.decomp.cell_range(self.rank)
        self.model_range = (c0, c1)
        self.n_model = c1 - c0
        self.blocks = self.decomp.local_blocks(self.rank)
        mine = np.arange(c0, c1)
        self.model_landfrac = r.model_landfrac[c0:c1]
        self.model_area = r.model_area[c0:c1]
        if r.model_lat is not None:
            lat, lon = r.model_lat[c0:c1], r.model_lon[c0:c1]
        else:  # identity: model cells are the host land cells; coordinates from the owning ranks
            all_lat = _allgatherv(self.comm, self.cells.lat)
            all_lon = _allgatherv(self.comm, self.cells.lon)
            all_idx = _allgatherv(self.comm, self.cells.global_index)
            pos = np.searchsorted(all_idx[np.argsort(all_idx)], r.model_global[c0:c1])
            srt = np.argsort(all_idx)
            lat, lon = all_lat[srt][pos], all_lon[srt][pos]
        self.model_lat, self.model_lon = lat, lon

        def dist(matrix, src, dst):
            return DistributedRegridder(Weights(matrix=matrix, normalization="none", source="component"),
                                        self.comm, src, dst)

        self.rg_state = dist(r.state, self.host_pos, mine)
        self.rg_flux = dist(r.flux, self.host_pos, mine)
        self.rg_class = dist(r.klass, self.host_pos, mine)
        self.rg_out = dist(r.to_host, mine, self.host_pos)
        mask = self.host_active.astype(np.float64)[None, :]
        self.den_state = self.rg_state(mask)[0]
        self.den_flux = self.rg_flux(mask)[0]
        self.use_flux_for_state = ~(self.den_state > 0)
        # whether any rank needs the states' conservative fallback: the fallback rows ride in a collective
        # exchange, so every rank must agree on the field count (a per-rank choice deadlocks)
        self._any_fallback = self.comm.allreduce(int(self.use_flux_for_state.any())) > 0
        with np.errstate(divide="ignore"):
            self.inv_den_state = np.where(self.den_state > 0, 1.0 / np.where(self.den_state > 0, self.den_state, 1),
                                          0.0)
            self.inv_den_flux = np.where(self.den_flux > 0, 1.0 / np.where(self.den_flux > 0, self.den_flux, 1), 0.0)
        self.drivers = meta.driver_names
        self.acc = DriverAccumulator(self.n_model, self.drivers)
        self.down = Downscaler(lat, lon)
        # the model derives the season from the calendar and uses the cell latitude (never sent as drivers);
        # the period is reset to the first step's (run_step) or the restart's (_read_restart)
        self.state = self.ens.init_state(self.n_model, first_period=parse_datetime(self.cfg.start, "start"),
                                         lat=lat)
        n = self.n_model
        self.x = np.zeros((n, len(self.drivers)))  # float64 drivers, accumulated in double precision
        self._build_model_buffers()
        self.step_model = np.zeros((5, n))  # gpp, reco, gpp_spread, reco_spread, nee_spread at this step, gC m-2 d-1
        self.host_gc = np.zeros((5, self.cells.size))  # the same on this rank's host cells
        self._spread_scratch = np.zeros((2, n))
        self._not_finite = np.zeros(n, dtype=bool)
        self._host_nan = np.zeros(self.host_gc.shape, dtype=bool)

    def _block_size(self) -> int:
        """model.block_size, or for "auto" the device's (every rank must cut the same blocks: the smallest)."""
        from tamrl_coupler.model.ensemble import CHUNK_CPU, CHUNK_CUDA

        size = self.cfg.model.block_size
        if size != "auto":
            return int(size)
        return min(self.comm.allgather(CHUNK_CUDA if self.ens.device.type == "cuda" else CHUNK_CPU))

    def _build_model_buffers(self) -> None:
        """The model runner (component/model_runner.py): the drivers' staging buffer, the period estimate and the
        evaluation plan of this rank's blocks, made once so an evaluation allocates nothing; on a GPU one transfer
        each way per evaluation, through pinned memory."""
        from tamrl_coupler.component.model_runner import ModelRunner

        self.runner = ModelRunner(self.ens, self.state, self.blocks, cuda_graphs=self.cfg.device.cuda_graphs)
        self._estimate = self.runner.estimate
        self.period_fluxes = dict(zip(ESTIMATE_ORDER, self._estimate, strict=True))  # row views

    # ------------------------------------------------------------------ registration
    @property
    def import_names(self) -> list[str]:
        return sorted(set(IMPORT_FIELDS) | {s.standard_name for s in IMPORT_FIELDS.values()})

    @property
    def export_names(self) -> list[str]:
        return list(EXPORT_ORDER)

    def _check_array(self, name: str, array) -> np.ndarray:
        if not isinstance(array, np.ndarray):
            raise InputError(f"field '{name}' on rank {self.rank}: expected a numpy float64 array, got "
                             f"{type(array).__name__}")
        if array.dtype != np.float64 or array.ndim != 1 or array.size != self.cells.size:
            raise InputError(f"field '{name}' on rank {self.rank}: expected a 1-D float64 array of {self.cells.size} "
                             f"values (this rank's host cells), got {array.dtype} {array.shape}")
        return array

    def register_import(self, name: str, array: np.ndarray) -> None:
        """Keep ``array`` by reference; its values are read at every ``run_step``."""
        short = import_name(name)
        self._imports[short] = self._check_array(short, array)
        self._validator = None

    def register_export(self, name: str, array: np.ndarray) -> None:
        """Keep ``array`` by reference; ``run_step`` writes this field's values into it."""
        short = export_name(name)
        self._exports[short] = self._check_array(short, array)

    def _setup_imports(self) -> None:
        missing = missing_imports(set(self._imports))
        if missing:
            raise InputError(f"rank {self.rank}: required import field(s) not registered: {'; '.join(missing)} "
                             f"(registered: {sorted(self._imports)})")
        names = list(self._imports)
        self._state_names = [n for n in names if IMPORT_FIELDS[n].regrid == "state"]
        self._flux_names = [n for n in names if IMPORT_FIELDS[n].regrid == "flux"]
        self._class_names = [n for n in names if IMPORT_FIELDS[n].regrid == "class"]
        n_f, n_s, n_h, n_m = len(self._flux_names), len(self._state_names), self.cells.size, self.n_model
        # States also need their conservative values where no land host cell is in a model cell's bilinear
        # stencil: they ride in the flux fields' conservative application (one exchange, a constant field count,
        # so the regridder's buffers are reused), as rows after the fluxes.
        self._fallback = self._any_fallback and n_s > 0
        n_cons = n_f + (n_s if self._fallback else 0)
        self._buf_conservative = np.zeros((n_cons, n_h))
        self.buf_flux = self._buf_conservative[:n_f]
        self.buf_state = self._buf_conservative[n_f:] if self._fallback else np.zeros((n_s, n_h))
        self.buf_class = np.zeros((len(self._class_names), n_h))
        # the same fields on this rank's model cells, regridded into place every step (no per-step allocation)
        self._model_conservative = np.zeros((n_cons, n_m))
        self.model_flux = self._model_conservative[:n_f]
        self._state_fallback = self._model_conservative[n_f:]  # conservative values of the states
        self.model_state = np.zeros((n_s, n_m))
        self.model_class = np.zeros((len(self._class_names), n_m))
        self._fallback_where = np.broadcast_to(self.use_flux_for_state[None, :], self.model_state.shape)
        self.fields: dict[str, np.ndarray] = {}
        for group, rows in ((self._state_names, self.model_state), (self._flux_names, self.model_flux),
                            (self._class_names, self.model_class)):
            self.fields.update(zip(group, rows, strict=True))
        if "tas" not in self.fields:  # the Reco downscaling's temperature from the step's extremes
            self._tas_mid = np.zeros(n_m)
        prev = self._validator
        self._validator = ForcingValidator(names, self.host_active, self.locator, self.cfg.forcing.fill_policy,
                                           self.cfg.forcing.check_range)
        if prev is not None and prev.policy == self._validator.policy == "persist":
            self._validator.last_valid.update(prev.last_valid)
        if getattr(self, "_pending_last_valid", None):
            for k, v in self._pending_last_valid.items():
                if k in self._validator.last_valid:
                    self._validator.last_valid[k][:] = v
            self._pending_last_valid = None

    # ------------------------------------------------------------------ the coupling step
    def run_step(self, time_seconds: float, dt_seconds: float) -> None:
        """Advance one coupling step [time, time + dt): read imports, write exports."""
        if self._finalized:
            raise InputError("run_step called after finalize")
        info = self.clock.step(time_seconds, dt_seconds)
        t = int(round(time_seconds))
        if self.next_time is not None and t != self.next_time:
            raise InputError(f"coupling step at {t} s ({info.start}) but the component expects the step at "
                             f"{self.next_time} s ({self.clock.datetime(self.next_time)}); steps must be contiguous")
        if self.next_time is None:  # the first step of a fresh run: the model's calendar starts here
            self.ens.set_period(self.state, info.start)
        if self._validator is None:
            self._setup_imports()
        label = f"step {self.n_steps} ({info.start}, t = {t} s)"
        tick = _time.perf_counter()
        # 1. imports: copy land values into the regrid buffers, validate there (host memory is never modified)
        for buf, names in ((self.buf_state, self._state_names), (self.buf_flux, self._flux_names),
                           (self.buf_class, self._class_names)):
            for i, n in enumerate(names):
                row = buf[i]
                np.copyto(row, self._imports[n], where=self.host_active)
                self._validator.check(n, row, label)
        t1 = _time.perf_counter()
        self.timers["import"] += t1 - tick
        # 2. host -> model, into the preallocated model-cell rows behind self.fields
        self._regrid_in()
        fields = self.fields
        t2 = _time.perf_counter()
        self.timers["regrid_in"] += t2 - t1
        # 3. drivers of the period so far
        self.acc.add(fields, info.dt, info.ends_day)
        evaluate = self.schedule.due(info, self.have_estimate)
        if evaluate:
            self.acc.fill(self.x)
        t3 = _time.perf_counter()
        self.timers["drivers"] += t3 - t2
        # 4. the model on fixed blocks, when the schedule says so (always at the period end, which commits the
        #    state); otherwise the period estimate of the last evaluation is reused
        if evaluate:
            self._run_model(commit=info.ends_period)
            self.have_estimate = True
            self.n_evaluations += 1
        t4 = _time.perf_counter()
        self.timers["model"] += t4 - t3
        # 5. downscale period rates to this step (period totals exact)
        pf, sm = self.period_fluxes, self.step_model
        tas = fields.get("tas")
        if tas is None:
            tas = self._tas_mid
            np.add(fields["tasmin"], fields["tasmax"], out=tas)
            tas *= 0.5
        remaining = info.period_seconds - info.elapsed
        covered = info.period_seconds - (info.elapsed - self.acc.elapsed)  # a run may start inside a period
        self.down.step(pf["gpp"], pf["reco"], fields["rsds"], tas, self.acc.sum_sw, self.acc.elapsed, remaining,
                       covered, info.start, info.dt, sm[0], sm[1])
        self._scale_spreads()
        t5 = _time.perf_counter()
        self.timers["downscale"] += t5 - t4
        # 6. model -> host (conservative, exact global totals)
        self.rg_out(sm, out=self.host_gc)
        np.isnan(self.host_gc, out=self._host_nan)  # host cells without model cells (nan_to_num would allocate)
        np.copyto(self.host_gc, 0.0, where=self._host_nan)
        t6 = _time.perf_counter()
        self.timers["regrid_out"] += t6 - t5
        # 7. exports: unit, then NEE recomputed from the exported GPP and Reco (identity exact)
        self._write_exports()
        self.timers["export"] += _time.perf_counter() - t6
        if info.ends_period:
            self.acc.reset()
            self.down.reset()
            self.have_estimate = False  # the next period starts with an evaluation
        self.next_time = t + info.dt
        self.n_steps += 1

    def _regrid_in(self) -> None:
        """Host -> model: fluxes conservative, states bilinear (conservative where the bilinear stencil has no
        land), classes by largest overlap; land-mask normalised; written into the rows behind ``self.fields``."""
        if self._buf_conservative.shape[0]:
            self.rg_flux(self._buf_conservative, out=self._model_conservative)
            self._model_conservative *= self.inv_den_flux
        if self._state_names:
            self.rg_state(self.buf_state, out=self.model_state)
            self.model_state *= self.inv_den_state
            if self._fallback:
                np.copyto(self.model_state, self._state_fallback, where=self._fallback_where)
        if self._class_names:
            self.rg_class(self.buf_class, out=self.model_class)

    def _run_model(self, commit: bool) -> None:
        """The ensemble on this rank's fixed blocks into the period estimate; the LSTM state and the task-encoder
        window are written back only when ``commit`` (the period's last step)."""
        self.runner.run(self.x, commit)

    def _scale_spreads(self) -> None:
        """Ensemble spreads follow the same sub-period shape as their fluxes (ratio step / period rate).

        In place on preallocated rows: no allocation per step.
        """
        pf, sm = self.period_fluxes, self.step_model
        tot, ref = self._spread_scratch
        with np.errstate(divide="ignore", invalid="ignore"):
            for j, (flux, std) in enumerate((("gpp", "gpp_std"), ("reco", "reco_std"))):
                np.divide(sm[j], pf[flux], out=sm[2 + j])
                self._one_where_not_finite(sm[2 + j])
                np.abs(sm[2 + j], out=sm[2 + j])
                sm[2 + j] *= pf[std]
            np.abs(sm[0], out=tot)
            np.abs(sm[1], out=sm[4])
            tot += sm[4]
            np.add(pf["gpp"], pf["reco"], out=ref)
            np.divide(tot, ref, out=tot)
            self._one_where_not_finite(tot)
        np.multiply(pf["nee_std"], tot, out=sm[4])

    def _one_where_not_finite(self, x: np.ndarray) -> None:
        """``np.nan_to_num(x, nan=1, posinf=1, neginf=1)`` in place, without its temporary masks."""
        bad = self._not_finite
        np.isfinite(x, out=bad)
        np.logical_not(bad, out=bad)
        np.copyto(x, 1.0, where=bad)

    def _write_exports(self) -> None:
        f = self.unit.factor
        h = self.host_gc
        ex = self._exports
        gpp = ex.get("gpp")
        reco = ex.get("reco")
        if gpp is None:
            gpp = self._scratch("gpp")
        if reco is None:
            reco = self._scratch("reco")
        np.multiply(h[0], f, out=gpp)
        np.multiply(h[1], f, out=reco)
        if "nee" in ex:
            nee_from_components(gpp, reco, self.convention, out=ex["nee"])
        for j, name in ((2, "gpp_spread"), (3, "reco_spread"), (4, "nee_spread")):
            if name in ex:
                np.multiply(h[j], f, out=ex[name])

    def _scratch(self, name: str) -> np.ndarray:
        key = f"_scratch_{name}"
        if not hasattr(self, key):
            setattr(self, key, np.zeros(self.cells.size))
        return getattr(self, key)

    # ------------------------------------------------------------------ diagnostics
    def global_totals(self) -> dict[str, tuple[float, float]]:
        """Last step's global totals (gC d-1) of gpp, reco, nee: (model side, host side), exactly summed (fsum)."""
        m_w = self.model_area * self.model_landfrac
        h_w = self.cells.area * self.cells.land_fraction
        sm, hg = self.step_model, self.host_gc
        loc = {"gpp": (sm[0] * m_w, hg[0] * h_w), "reco": (sm[1] * m_w, hg[1] * h_w),
               "nee": (nee_from_components(sm[0], sm[1], self.convention) * m_w,
                       nee_from_components(hg[0], hg[1], self.convention) * h_w)}
        out = {}
        for k, (a, b) in loc.items():
            pa = self.comm.gather(a, root=0)
            pb = self.comm.gather(b, root=0)
            if self.rank == 0:
                out[k] = (math.fsum(np.concatenate(pa)), math.fsum(np.concatenate(pb)))
        return self.comm.bcast(out, root=0)

    # ------------------------------------------------------------------ restart
    def _gather_model(self, a: np.ndarray) -> np.ndarray | None:
        counts = self.decomp.counts()
        parts = self.comm.gather(np.ascontiguousarray(a), root=0)
        if self.rank == 0:
            out = np.concatenate(parts, axis=0)
            assert out.shape[0] == counts.sum()
            return out
        return None

    def _gather_host(self, a: np.ndarray) -> np.ndarray | None:
        parts = self.comm.gather((self.host_pos, a), root=0)
        if self.rank == 0:
            out = np.full(self.n_host_total, np.nan)
            for pos, vals in parts:
                out[pos] = vals
            return out
        return None

    def write_restart(self, path: str | Path) -> Path:
        """Everything the next step needs, in global cell order, written atomically by rank 0."""
        from tamrl_coupler.io.restart import write_restart

        if self.next_time is None:
            raise InputError("write_restart before the first run_step: nothing to restart from")
        state = self.state.to_numpy()
        arrays: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
        model_arrays = {**self.acc.state_arrays(), **self.down.state_arrays(),
                        **{f"estimate_{k}": v for k, v in self.period_fluxes.items()}}
        gathered = {k: self._gather_model(v) for k, v in model_arrays.items()}
        gstate = {k: self._gather_model(v) for k, v in state.items()}
        last = {}
        if self._validator is not None and self._validator.policy == "persist":
            last = {k: self._gather_host(v) for k, v in self._validator.last_valid.items()}
        gidx = self._gather_model(self.remap.model_global[self.model_range[0]:self.model_range[1]])
        if self.rank == 0:
            for k, v in gathered.items():
                arrays[k] = (("model_cell",), v)
            arrays["model_global_index"] = (("model_cell",), gidx)
            arrays["state_window"] = (("model_cell", "window", "driver"), gstate["window"])
            arrays["state_h"] = (("model_cell", "member", "hidden"), gstate["h"])
            arrays["state_c"] = (("model_cell", "member", "hidden"), gstate["c"])
            for k, v in last.items():
                arrays[f"last_valid_{k}"] = (("host_cell",), v)
            scalars = {"next_time": float(self.next_time), "n_steps": float(self.n_steps),
                       "have_estimate": float(self.have_estimate), "n_evaluations": float(self.n_evaluations),
                       **self.acc.state_scalars()}
            attrs = {"reference_date": str(self.clock.reference), "period": self.clock.period,
                     "model_grid": self.cfg.model.grid, "drivers": " ".join(self.drivers),
                     "next_time_iso": str(self.clock.datetime(self.next_time)),
                     "model_update_interval": str(self.cfg.model.update_interval)}
            out = write_restart(path, scalars, arrays, attrs)
        else:
            out = Path(path)
        self.comm.Barrier()
        return out

    def _read_restart(self, path: str | Path) -> None:
        import torch

        from tamrl_coupler.io.restart import read_restart

        scalars, arrays, attrs = read_restart(path)
        if attrs.get("reference_date") != str(self.clock.reference) or attrs.get("period") != self.clock.period:
            raise InputError(f"restart {path}: reference date {attrs.get('reference_date')} / period "
                             f"{attrs.get('period')} differ from this run's {self.clock.reference} / "
                             f"{self.clock.period}")
        gidx = arrays["model_global_index"]
        if gidx.size != self.n_model_total or not np.array_equal(gidx, self.remap.model_global):
            raise InputError(f"restart {path}: written for {gidx.size} model cells on grid "
                             f"{attrs.get('model_grid')!r}; this run has {self.n_model_total} on "
                             f"{self.cfg.model.grid!r}")
        if attrs.get("drivers") != " ".join(self.drivers):
            raise InputError(f"restart {path}: drivers {attrs.get('drivers')!r} differ from the checkpoint's "
                             f"{' '.join(self.drivers)!r}")
        c0, c1 = self.model_range
        self.acc.load_state({k: v[c0:c1] for k, v in arrays.items() if k.startswith("acc_")}, scalars)
        self.down.load_state({k: v[c0:c1] for k, v in arrays.items() if k.startswith("ds_")})
        dev = self.state.window.device
        self.state.window[:] = torch.as_tensor(arrays["state_window"][c0:c1], device=dev)
        self.state.h[:] = torch.as_tensor(arrays["state_h"][c0:c1], device=dev)
        self.state.c[:] = torch.as_tensor(arrays["state_c"][c0:c1], device=dev)
        self.ens.set_period(self.state, self.clock.datetime(int(scalars["next_time"])))
        self.next_time = int(scalars["next_time"])
        self.n_steps = int(scalars["n_steps"])
        # the period estimate between evaluations (format 1 has none: the next step evaluates)
        self.have_estimate = bool(scalars.get("have_estimate", 0.0)) and "estimate_gpp" in arrays
        self.n_evaluations = int(scalars.get("n_evaluations", 0.0))
        if self.have_estimate:
            for k, v in self.period_fluxes.items():
                v[:] = arrays[f"estimate_{k}"][c0:c1]
        self._pending_last_valid = {k[len("last_valid_"):]: v[self.host_pos] for k, v in arrays.items()
                                    if k.startswith("last_valid_")}

    def finalize(self) -> None:
        """Release the model and buffers; further steps are errors."""
        self._finalized = True
        self._imports.clear()
        self._exports.clear()


__all__ = ["CouplingComponent", "HostCells", "EXPORT_FIELDS"]
