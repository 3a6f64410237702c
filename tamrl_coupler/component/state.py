"""The component's restart: everything the next step needs, gathered in global cell order and written by rank 0
(atomically, io/restart.py), and read back on any number of ranks, each taking its own cells.

A restart records what it was written for (reference date, model period, model grid and cells, drivers); a run
that differs is refused with both sides named, rather than continued from someone else's state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from tamrl_coupler.component.budget import BudgetStage
from tamrl_coupler.component.clock import Clock
from tamrl_coupler.component.geometry import Geometry
from tamrl_coupler.component.imports import Imports
from tamrl_coupler.component.model_stage import ModelStage
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.restart import RestartFile, write_restart
from tamrl_coupler.parallel import Agreement
from tamrl_coupler.settings.run import RunConfig


class Restartable(Protocol):
    """What a restart holds of a component (CouplingComponent is one): its stages and where it is in time."""

    cfg: RunConfig
    clock: Clock
    geometry: Geometry
    imports: Imports
    model_stage: ModelStage
    budget: BudgetStage
    agreement: Agreement
    next_time: int | None
    n_steps: int
    broken: str | None

    def ensemble_fingerprint(self) -> str: ...


_SCALARS = ("next_time", "n_steps", "acc_days_done", "acc_day_steps", "acc_elapsed")
_STATE = ("state_window", "state_h", "state_c")


def save(comp: Restartable, path: str | Path) -> Path:
    """Write ``comp``'s restart to ``path`` (collective; rank 0 writes, every rank learns whether it could)."""
    with comp.agreement.guard(f"write_restart({path})"):
        if comp.next_time is None:
            raise InputError("write_restart before the first run_step: nothing to restart from")
        if comp.broken:
            raise InputError(f"write_restart refused: {comp.broken}; the state is not consistent")
    geo, ev = comp.geometry, comp.model_stage
    model = {k: (dims, geo.gather_model(v)) for k, (dims, v) in
             {**ev.state_arrays(), **comp.budget.state_arrays()}.items()}
    host = {k: geo.gather_host(v) for k, v in comp.imports.state_arrays().items()}
    gidx = geo.gather_model(geo.model_global)

    def write() -> Path:
        arrays = {**model, "model_global_index": (("model_cell",), gidx)}
        arrays.update({k: (("host_cell",), v) for k, v in host.items()})
        scalars = {"next_time": float(comp.next_time), "n_steps": float(comp.n_steps), **ev.state_scalars()}
        attrs = {"reference_date": str(comp.clock.reference), "period": comp.clock.period,
                 "model_grid": str(comp.cfg.model.grid), "drivers": " ".join(ev.drivers),
                 "next_time_iso": str(comp.clock.datetime(comp.next_time)),
                 "model_update_interval": str(comp.cfg.model.update_interval),
                 "ensemble_fingerprint": comp.ensemble_fingerprint(), "budget_mode": comp.budget.spec.mode.value}
        return write_restart(path, scalars, arrays, attrs)

    comp.agreement.on_root(f"write_restart({path})", write)
    return Path(path)


def load(comp: Restartable, path: str | Path, allow_unverified: bool = False) -> None:
    """Continue ``comp`` from the restart at ``path``: every rank reads it and takes its own cells; a file one rank
    cannot use stops every rank. ``allow_unverified``: accept a restart without a seal (io/restart.py)."""
    with comp.agreement.guard(f"restart {path}"):
        _load(comp, Path(path), allow_unverified)


def _load(comp: Restartable, path: Path, allow_unverified: bool) -> None:
    geo, ev, clock = comp.geometry, comp.model_stage, comp.clock
    h = ev.state.h
    with RestartFile(path, allow_unverified) as f:
        attrs = f.attrs
        _check_attrs(comp, path, attrs)
        if f.dims.get("model_cell", geo.n_model_total) != geo.n_model_total:
            raise InputError(f"restart {path}: written for {f.dims['model_cell']} model cells on grid "
                             f"{attrs.get('model_grid')!r}; this run has {geo.n_model_total} on "
                             f"{str(comp.cfg.model.grid)!r}")
        f.check_dims({"model_cell": geo.n_model_total, "host_cell": geo.n_host_total, "member": int(h.shape[1]),
                      "hidden": int(h.shape[2]), "window": int(ev.state.window.shape[1]),
                      "driver": int(ev.state.window.shape[2])})
        f.require(["model_global_index", *_STATE, *(f"scalar_{k}" for k in _SCALARS)])
        scalars, arrays = f.read()
    gidx = arrays["model_global_index"]
    if gidx.size != geo.n_model_total or not np.array_equal(gidx, geo.remap.model_global):
        raise InputError(f"restart {path}: written for {gidx.size} model cells on grid {attrs.get('model_grid')!r}; "
                         f"this run has {geo.n_model_total} on {str(comp.cfg.model.grid)!r}")
    _check_finite(path, scalars, arrays)
    c0, c1 = geo.model_range
    next_time = int(scalars["next_time"])
    ev.load_state({k: v[c0:c1] for k, v in arrays.items() if not k.startswith(("last_valid_", "budget_"))},
                  scalars, clock.datetime(next_time))
    comp.budget.load_state({k: v[c0:c1] for k, v in arrays.items() if k.startswith("budget_")})
    comp.imports.load_state({k: v[geo.host_pos] for k, v in arrays.items() if k.startswith("last_valid_")})
    comp.next_time = next_time
    comp.n_steps = int(scalars["n_steps"])


def _check_attrs(comp: Restartable, path: Path, attrs: dict) -> None:
    """The restart must have been written for this run: calendar, period, drivers, evaluation interval, network."""
    clock, ev = comp.clock, comp.model_stage
    if attrs.get("reference_date") != str(clock.reference) or attrs.get("period") != clock.period:
        raise InputError(f"restart {path}: reference date {attrs.get('reference_date')} / period "
                         f"{attrs.get('period')} differ from this run's {clock.reference} / {clock.period}")
    if attrs.get("drivers") != " ".join(ev.drivers):
        raise InputError(f"restart {path}: drivers {attrs.get('drivers')!r} differ from the checkpoint's "
                         f"{' '.join(ev.drivers)!r}")
    interval = attrs.get("model_update_interval")
    if interval is not None and str(interval) != str(comp.cfg.model.update_interval):
        raise InputError(f"restart {path}: written with model.update_interval {interval} s, this run has "
                         f"{comp.cfg.model.update_interval} s (the carried period estimate belongs to the other "
                         f"schedule); use the same interval")
    mode = attrs.get("budget_mode")
    if mode is not None and mode != comp.budget.spec.mode.value:
        raise InputError(f"restart {path}: written with budget mode {mode!r}, this run has "
                         f"{comp.budget.spec.mode.value!r} (the carried period estimate's Reco belongs to that mode); "
                         f"use the same budget.mode")
    fingerprint = attrs.get("ensemble_fingerprint")
    if fingerprint is not None and fingerprint != comp.ensemble_fingerprint():
        raise InputError(f"restart {path}: written by another ensemble (fingerprint {str(fingerprint)[:16]}..., this "
                         f"run's checkpoint has {comp.ensemble_fingerprint()[:16]}...); its LSTM state and estimate "
                         f"belong to that network")


def _check_finite(path: Path, scalars: dict[str, float], arrays: dict[str, np.ndarray]) -> None:
    """NaN where the state is always a number is a damaged file (the driver window and last valid forcing values
    may hold NaN: missing drivers, no valid value yet; a day's extreme is +-inf before its first value)."""
    for name, value in scalars.items():
        if not np.isfinite(value):
            raise InputError(f"restart {path}: scalar '{name}' is {value}")
    have_estimate = bool(scalars.get("have_estimate", 0.0))
    for name, a in arrays.items():
        if name in ("state_window",) or name.startswith("last_valid_"):
            continue
        if name.startswith("estimate_") and not have_estimate:
            continue
        if np.issubdtype(a.dtype, np.floating) and np.isnan(a).any():
            i = int(np.flatnonzero(np.isnan(a.reshape(a.shape[0], -1)).any(axis=1))[0]) if a.ndim else 0
            raise InputError(f"restart {path}: array '{name}' holds NaN (first at cell {i}); the state it carries "
                             f"is not usable")
