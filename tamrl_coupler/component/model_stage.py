"""The model side of a coupling step, on this rank's model cells: the period's drivers so far, the TAM-RL ensemble
on fixed cell blocks when the schedule says so (the LSTM state committed only at the period end), and the step's
fluxes downscaled from the period estimate so that period totals are exact.

Rows are named (component/rows.py): the period estimate by the ensemble's outputs (its ``outputs.rows``: ``gpp``,
``reco``, ``gpp_std`` ...), the step's fluxes by the exports that carry them (``gpp``, ``reco``, ``gpp_spread``
...). GPP follows light and Reco temperature within the period (physics/downscale.py); another predicted target
(ET, say) is handed out evenly over the period's time, with the same exact period totals, until physics of its
own shape it. Buffers are made once, so an evaluation allocates nothing here.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.component.clock import StepInfo
from tamrl_coupler.component.geometry import Geometry
from tamrl_coupler.component.rows import NamedRows
from tamrl_coupler.component.schedule import EvaluationSchedule
from tamrl_coupler.errors import CheckpointError
from tamrl_coupler.model.outputs import spread_name
from tamrl_coupler.physics.downscale import Downscaler, q10_weight
from tamrl_coupler.physics.drivers import DriverAccumulator
from tamrl_coupler.physics.trailing import TrailingDay, UnseenLight


class ModelStage:
    """Drivers, ensemble and downscaling for one rank's model cells; see the module docstring."""

    def __init__(self, ensemble: Any, geometry: Geometry, update_interval: int, first_period: np.datetime64,
                 nan_aware: bool = False, cuda_graphs: bool = False):
        """``nan_aware``: imports may be missing (NaN, fill policy 'missing'): drivers are means over the valid
        values only, and the downscaling weights of a missing value are the period's expected ones.
        ``cuda_graphs``: on a GPU, replay each block's evaluation from a captured CUDA graph."""
        from tamrl_coupler.component.model_runner import ModelRunner

        self.ens = ensemble
        self.geo = geometry
        n = geometry.n_model
        self.drivers = ensemble.meta.driver_names
        self.acc = DriverAccumulator(n, self.drivers, nan_aware=nan_aware)
        # a daily model is evaluated before its day is complete on the drivers of the last 24 hours
        # (physics/trailing.py); at the day's end, and for monthly models, on the period's own drivers
        self.trailing = TrailingDay(self.acc) if ensemble.meta.period == "daily" else None
        self.down = Downscaler(geometry.model_lat, geometry.model_lon, nan_aware=nan_aware,
                               flat=tuple(t for t in ensemble.outputs.predicted if t not in ("gpp", "reco")))
        self.schedule = EvaluationSchedule(update_interval)
        # the model derives the season from the calendar and uses the cell latitude (never sent as drivers); the
        # period is reset to the first step's (CouplingComponent.run_step) or the restart's
        self.state = ensemble.init_state(n, first_period=first_period, lat=geometry.model_lat)
        self.have_estimate = False  # whether the estimate holds one for the current period
        self.budget: Any = None  # the carbon-budget stage (component/budget.py), set by the component
        self.n_evaluations = 0
        self.x = np.zeros((n, len(self.drivers)))  # float64 drivers, accumulated in double precision
        # The ensemble bound once to this rank's blocks, its drivers and the period estimate (component/
        # model_runner.py): an evaluation allocates nothing, and on a GPU moves the drivers in and the estimate out
        # once each, through pinned host memory. The estimate rows are the runner's host buffer.
        self.runner = ModelRunner(ensemble, self.state, geometry.blocks, cuda_graphs=cuda_graphs)
        outputs = ensemble.outputs
        self.estimate = NamedRows(outputs.rows, n, array=self.runner.estimate)  # period rates (gC m-2 d-1 ...)
        # this step's fluxes, one row per export carrying an estimate row (the export's name -> the row it carries)
        self.carried = {q.name: q.carries for q in vocabulary.carried_exports() if q.carries in self.estimate}
        self.step_rows = NamedRows(self.carried, n)
        self._step_of = {row: name for name, row in self.carried.items()}  # estimate row -> its step row
        self.flat = tuple(t for t in outputs.predicted if t not in ("gpp", "reco") and t in self._step_of)
        self._spread_scratch = np.zeros((2, n))
        self._not_finite = np.zeros(n, dtype=bool)
        self._reco_to_come = np.zeros(n)
        self._tau = np.zeros(n)
        self._seen_toa = np.zeros(n)

    def step(self, fields: dict[str, np.ndarray], info: StepInfo, timers: dict[str, float]) -> NamedRows:
        """Accumulate, evaluate when due, downscale: this step's fluxes on the model cells (named rows)."""
        t0 = time.perf_counter()
        self.acc.add(fields, info.dt, info.ends_day)
        if self.trailing is not None:
            self.trailing.add(fields, info.start, info.dt)
        evaluate = self.due(info)
        if evaluate:
            if self.trailing is not None and not info.ends_period:
                self.trailing.fill(self.x, self._unseen_light(info))
            else:
                self.acc.fill(self.x)
        t1 = time.perf_counter()
        # the model on fixed blocks, when the schedule says so (always at the period end, which commits the state);
        # otherwise the period estimate of the last evaluation is reused
        if evaluate:
            self._run_model(commit=info.ends_period)
            self._check_estimate(info)
            if self.budget is not None:  # NEE's budget mode: Reco scaled per cell (component/budget.py)
                self.budget.apply(self.estimate)
            self.have_estimate = True
            self.n_evaluations += 1
        t2 = time.perf_counter()
        est, out, step_of = self.estimate, self.step_rows, self._step_of
        remaining = info.period_seconds - info.elapsed
        covered = info.period_seconds - (info.elapsed - self.acc.elapsed)  # a run may start inside a period
        reco_to_come = None
        if self.trailing is not None and remaining > 0:  # a daily period: the rest of the day's hours as yesterday
            end = info.start + np.timedelta64(info.dt, "s")
            reco_to_come = self.trailing.mean_to_come("tas", end, remaining, q10_weight, out=self._reco_to_come)
        self.down.step(est["gpp"], est["reco"], fields["rsds"], fields["tas"],
                       self.acc.running_sum_of("rsds"), self.acc.elapsed, remaining, covered, info.start, info.dt,
                       out[step_of["gpp"]], out[step_of["reco"]], reco_to_come)
        for target in self.flat:
            self.down.flat_step(target, est[target], remaining, covered, info.dt, out[step_of[target]])
        self._scale_spreads()
        timers["drivers"] += t1 - t0
        timers["model"] += t2 - t1
        timers["downscale"] += time.perf_counter() - t2
        return out

    def _unseen_light(self, info: StepInfo) -> UnseenLight | None:
        """On a run's first day: the transmissivity seen so far, to fill in the light of the hours not seen."""
        if self.trailing is None or self.trailing.unseen_seconds() <= 0.0:
            return None
        # the accumulator's shortwave includes this step, the downscaler's insolation not yet: add this step's
        seen_toa = self.down.insolation.integral(info.start, info.dt, out=self._seen_toa)
        seen_toa += self.down.sum_toa
        tau = self.down.transmissivity(self.acc.running_sum_of("rsds"), self._tau, sum_toa=seen_toa)
        return UnseenLight(tau, self.down.insolation, info.start + np.timedelta64(info.dt, "s"))

    def due(self, info: StepInfo) -> bool:
        """Whether the step ``info`` evaluates the ensemble (the same answer on every rank)."""
        return self.schedule.due(info, self.have_estimate)

    def _check_estimate(self, info: StepInfo) -> None:
        """The model's period rates must be finite on every model cell: a NaN would reach the host as a flux."""
        bad = self._not_finite
        for name, row in self.estimate.items():
            np.isfinite(row, out=bad)
            if not bad.all():
                i = int(np.argmin(bad))
                geo = self.geo
                raise CheckpointError(f"the ensemble produced a non-finite {name} ({row[i]}) for the period of "
                                      f"{info.start} on rank {geo.rank}, model cell {int(geo.model_global[i])} "
                                      f"(model-grid index) at lat {geo.model_lat[i]:.3f}, lon {geo.model_lon[i]:.3f}")

    def end_period(self) -> None:
        self.acc.reset()
        self.down.reset()
        self.have_estimate = False  # the next period starts with an evaluation

    def _run_model(self, commit: bool) -> None:
        """The ensemble on this rank's fixed blocks into the period estimate; the LSTM state and the task-encoder
        history are written back only when ``commit`` (the period's last step)."""
        self.runner.run(self.x, commit)

    def _scale_spreads(self) -> None:
        """Ensemble spreads follow the same sub-period shape as their fluxes (ratio step / period rate); a derived
        target's spread (NEE's) follows the sum of its absolute components. In place on preallocated rows: no
        allocation per step."""
        est, out, step_of = self.estimate, self.step_rows, self._step_of
        outputs = self.ens.outputs
        tot, ref = self._spread_scratch
        with np.errstate(divide="ignore", invalid="ignore"):
            for flux in outputs.predicted:
                if spread_name(flux) not in step_of or flux not in step_of:
                    continue
                spread = out[step_of[spread_name(flux)]]
                np.divide(out[step_of[flux]], est[flux], out=spread)
                self._one_where_not_finite(spread)
                np.abs(spread, out=spread)
                spread *= est[spread_name(flux)]
            for flux, a, b in outputs.derived:
                if spread_name(flux) not in step_of:
                    continue
                derived_spread = out[step_of[spread_name(flux)]]
                np.abs(out[step_of[a]], out=tot)
                np.abs(out[step_of[b]], out=derived_spread)
                tot += derived_spread
                np.add(est[a], est[b], out=ref)
                np.divide(tot, ref, out=tot)
                self._one_where_not_finite(tot)
                np.multiply(est[spread_name(flux)], tot, out=derived_spread)

    def _one_where_not_finite(self, x: np.ndarray) -> None:
        """``np.nan_to_num(x, nan=1, posinf=1, neginf=1)`` in place, without its temporary masks."""
        bad = self._not_finite
        np.isfinite(x, out=bad)
        np.logical_not(bad, out=bad)
        np.copyto(x, 1.0, where=bad)

    # restart ----------------------------------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """Per model cell: drivers so far, downscaling bookkeeping, the period estimate and the ensemble state."""
        flat = {**self.acc.state_arrays(), **self.down.state_arrays(),
                **{f"estimate_{k}": v for k, v in self.estimate.items()}}
        arrays = {k: (("model_cell",), v) for k, v in flat.items()}
        state = self.state.to_numpy()
        arrays["state_window"] = (("model_cell", "window", "driver"), state["window"])
        arrays["state_h"] = (("model_cell", "member", "hidden"), state["h"])
        arrays["state_c"] = (("model_cell", "member", "hidden"), state["c"])
        # the daily model's running sums of the current month (zeros for monthly models)
        arrays["state_acc_sum"] = (("model_cell", "driver"), state["acc_sum"])
        arrays["state_acc_n"] = (("model_cell", "driver"), state["acc_n"])
        if self.trailing is not None:  # the daily model's drivers of the last 24 hours, per hourly slot
            arrays.update({k: (("model_cell", "day_slot"), v) for k, v in self.trailing.state_arrays().items()})
        return arrays

    def state_scalars(self) -> dict[str, float]:
        return {"have_estimate": float(self.have_estimate), "n_evaluations": float(self.n_evaluations),
                **self.acc.state_scalars(), **(self.trailing.state_scalars() if self.trailing is not None else {})}

    def load_state(self, arrays: dict[str, np.ndarray], scalars: dict[str, float], period: np.datetime64) -> None:
        """From a restart: ``arrays`` already cut to this rank's model cells; ``period`` is the next step's."""
        import torch

        self.acc.load_state({k: v for k, v in arrays.items() if k.startswith("acc_")}, scalars)
        self.down.load_state({k: v for k, v in arrays.items() if k.startswith("ds_")}, self.acc.elapsed)
        if self.trailing is not None:
            self.trailing.load_state({k: v for k, v in arrays.items() if k.startswith("trail_")}, scalars)
        dev = self.state.window.device
        for k in ("window", "h", "c", "acc_sum", "acc_n"):
            if f"state_{k}" in arrays:  # restarts written before the daily model have no running sums (zeros)
                getattr(self.state, k)[:] = torch.as_tensor(arrays[f"state_{k}"], device=dev)
        self.ens.set_period(self.state, period)
        # the period estimate between evaluations (format 1 has none: the next step evaluates)
        self.have_estimate = bool(scalars.get("have_estimate", 0.0)) and "estimate_gpp" in arrays
        self.n_evaluations = int(scalars.get("n_evaluations", 0.0))
        if self.have_estimate:
            for k, v in self.estimate.items():
                v[:] = arrays[f"estimate_{k}"]
