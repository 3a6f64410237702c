"""The component's restart: everything the next step needs, gathered in global cell order and written by rank 0
(atomically, io/restart.py), and read back on any number of ranks, each taking its own cells.

A restart records what it was written for (reference date, model period, model grid and cells, drivers); a run
that differs is refused with both sides named, rather than continued from someone else's state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from tamrl_coupler.component.clock import Clock
from tamrl_coupler.component.evaluation import Evaluation
from tamrl_coupler.component.geometry import Geometry
from tamrl_coupler.component.imports import Imports
from tamrl_coupler.config.run import RunConfig
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.restart import read_restart, write_restart


class Restartable(Protocol):
    """What a restart holds of a component (CouplingComponent is one): its stages and where it is in time."""

    cfg: RunConfig
    clock: Clock
    geometry: Geometry
    imports: Imports
    evaluation: Evaluation
    next_time: int | None
    n_steps: int


def save(comp: Restartable, path: str | Path) -> Path:
    """Write ``comp``'s restart to ``path`` (collective; rank 0 writes)."""
    if comp.next_time is None:
        raise InputError("write_restart before the first run_step: nothing to restart from")
    geo, ev = comp.geometry, comp.evaluation
    model = {k: (dims, geo.gather_model(v)) for k, (dims, v) in ev.state_arrays().items()}
    host = {k: geo.gather_host(v) for k, v in comp.imports.state_arrays().items()}
    gidx = geo.gather_model(geo.model_global)
    if geo.rank == 0:
        arrays = {**model, "model_global_index": (("model_cell",), gidx)}
        arrays.update({k: (("host_cell",), v) for k, v in host.items()})
        scalars = {"next_time": float(comp.next_time), "n_steps": float(comp.n_steps), **ev.state_scalars()}
        attrs = {"reference_date": str(comp.clock.reference), "period": comp.clock.period,
                 "model_grid": str(comp.cfg.model.grid), "drivers": " ".join(ev.drivers),
                 "next_time_iso": str(comp.clock.datetime(comp.next_time)),
                 "model_update_interval": str(comp.cfg.model.update_interval)}
        out = write_restart(path, scalars, arrays, attrs)
    else:
        out = Path(path)
    geo.comm.Barrier()
    return out


def load(comp: Restartable, path: str | Path) -> None:
    """Continue ``comp`` from the restart at ``path``: every rank reads it and takes its own cells."""
    scalars, arrays, attrs = read_restart(path)
    geo, ev, clock = comp.geometry, comp.evaluation, comp.clock
    if attrs.get("reference_date") != str(clock.reference) or attrs.get("period") != clock.period:
        raise InputError(f"restart {path}: reference date {attrs.get('reference_date')} / period "
                         f"{attrs.get('period')} differ from this run's {clock.reference} / {clock.period}")
    gidx = arrays["model_global_index"]
    if gidx.size != geo.n_model_total or not np.array_equal(gidx, geo.remap.model_global):
        raise InputError(f"restart {path}: written for {gidx.size} model cells on grid {attrs.get('model_grid')!r}; "
                         f"this run has {geo.n_model_total} on {str(comp.cfg.model.grid)!r}")
    if attrs.get("drivers") != " ".join(ev.drivers):
        raise InputError(f"restart {path}: drivers {attrs.get('drivers')!r} differ from the checkpoint's "
                         f"{' '.join(ev.drivers)!r}")
    c0, c1 = geo.model_range
    next_time = int(scalars["next_time"])
    ev.load_state({k: v[c0:c1] for k, v in arrays.items() if not k.startswith("last_valid_")},
                  scalars, clock.datetime(next_time))
    comp.imports.load_state({k: v[geo.host_pos] for k, v in arrays.items() if k.startswith("last_valid_")})
    comp.next_time = next_time
    comp.n_steps = int(scalars["n_steps"])
