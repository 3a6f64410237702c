"""The drivers of the last 24 hours: what a daily model is evaluated on before its day is complete.

Why: the component needs the daily model's estimate of the current day at every coupling step (the downscaling
hands the day's total out as the day goes), but the day's drivers are complete only at its end. The means of the
day so far depend on the time of day -- at 06 h the mean shortwave so far is a night's, in the evening the day's
light is diluted by the dark hours -- so an estimate from them first undershoots and then drifts, and the last
steps of the day have to correct what was handed out too early or too late (night-time GPP, negative where the
estimate fell). The mean over the last 24 hours (the day so far plus the rest of the day from the same hours of
the day before) has no time-of-day bias, and at the day's end it is the day itself; the component then uses the
day's own accumulation (:class:`~tamrl_coupler.physics.drivers.DriverAccumulator`), so what the model commits is
unchanged.

Per mean-rule driver and cell the sums are kept in hourly slots (slot j = [j, j + 1) h UTC, its most recent
occurrence): a step adds to the slot it starts in, emptying it first when it is the first step in that slot, so
with contiguous steps every slot holds the last 24 hours. Steps longer than an hour fill the slot of their start
only (the others stay empty and count for nothing). At a cold start the slots of the previous day are empty and the
window is the day so far. Memory: 24 sums per mean driver and cell (plus the valid seconds per slot).

Preallocated: ``add`` and ``fill`` allocate nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.physics.drivers import DriverAccumulator, MeanRule

SLOT_SECONDS = 3600
N_SLOTS = SECONDS_PER_DAY // SLOT_SECONDS


class TrailingDay:
    """Means of ``acc``'s mean-rule drivers over the last 24 hours; see the module docstring."""

    def __init__(self, acc: DriverAccumulator):
        self.acc = acc
        self.rules = [(j, r) for j, r in enumerate(acc.rules) if isinstance(r, MeanRule)]
        n, d = acc.n, len(self.rules)
        self.sum = np.zeros((d, N_SLOTS, n))  # sum of value * dt per driver, slot and cell (driver's source unit)
        # seconds with a value per slot: per driver and cell when values may be missing, else one row for all
        self.time = np.zeros((d if acc.nan_aware else 1, N_SLOTS, n))
        self._scratch = np.zeros(n)
        self._seconds = np.zeros(n)
        self._num = np.zeros(n)
        self._den = np.zeros(n)
        self._valid = np.zeros(n, dtype=bool)

    def add(self, fields: dict[str, np.ndarray], start: np.datetime64, dt: int) -> None:
        """Add the step [start, start + dt) (UTC) of ``fields`` (the same fields as the accumulator's)."""
        sod = int((np.datetime64(start, "s") - np.datetime64(start, "D")).astype(np.int64))
        k = sod // SLOT_SECONDS
        if sod - dt < k * SLOT_SECONDS:  # the first step in slot k: it held the same hour of the day before
            self.sum[:, k].fill(0.0)
            self.time[:, k].fill(0.0)
        for i, (_, r) in enumerate(self.rules):
            src = self.acc.source_for(r, fields)
            if src is None:
                continue
            x = fields[src]
            np.multiply(x, dt, out=self._scratch)
            if self.acc.nan_aware:
                np.isfinite(x, out=self._valid)
                np.add(self.sum[i, k], self._scratch, out=self.sum[i, k], where=self._valid)
                np.add(self.time[i, k], dt, out=self.time[i, k], where=self._valid)
            else:
                self.sum[i, k] += self._scratch
        if not self.acc.nan_aware:
            self.time[0, k] += dt

    def fill(self, out: np.ndarray) -> np.ndarray:
        """The accumulator's partial-period drivers (:meth:`DriverAccumulator.fill`) with every mean-rule driver
        replaced by its mean over the last 24 hours, into ``out`` (n_cells, n_drivers)."""
        self.acc.fill(out)
        seconds = self._seconds
        for i, (j, r) in enumerate(self.rules):
            if not r.seen:
                continue  # an optional driver never given stays missing
            col = out[:, j]
            np.sum(self.time[i if self.acc.nan_aware else 0], axis=0, out=seconds)
            np.sum(self.sum[i], axis=0, out=self._scratch)
            col.fill(np.nan)
            np.divide(self._scratch, seconds, out=col, where=seconds > 0)
            if r.conv.scale != 1.0:
                col *= r.conv.scale
            if r.conv.offset != 0.0:
                col += r.conv.offset
        return out

    def mean_to_come(self, source: str, end: np.datetime64, seconds: float,
                     transform: Callable[[np.ndarray, np.ndarray], None], out: np.ndarray) -> np.ndarray:
        """What the hours [end, end + seconds) of the current day held the day before: the time-weighted mean of
        ``transform(slot mean of import source)`` over the slots they cover (the current slot with its hours of
        today), into ``out``; NaN for a cell where none of those slots has a value (e.g. on a run's first day).
        ``transform(x, out)`` writes into ``out`` (e.g. a Q10 weight of the temperature)."""
        i = next((i for i, (_, r) in enumerate(self.rules) if r.source == source), None)
        out.fill(np.nan)
        if i is None or seconds <= 0.0:
            return out
        t0 = int((np.datetime64(end, "s") - np.datetime64(end, "D")).astype(np.int64))
        t1 = min(t0 + int(seconds), SECONDS_PER_DAY)
        num, den, value, seconds_j = self._num, self._den, self._scratch, self._seconds
        num.fill(0.0)
        den.fill(0.0)
        for j in range(t0 // SLOT_SECONDS, (t1 - 1) // SLOT_SECONDS + 1):
            overlap = min(t1, (j + 1) * SLOT_SECONDS) - max(t0, j * SLOT_SECONDS)
            seconds_j[:] = self.time[i if self.acc.nan_aware else 0, j]
            np.greater(seconds_j, 0.0, out=self._valid)
            value.fill(0.0)  # a slot without a value: a harmless number for transform, left out below
            np.divide(self.sum[i, j], seconds_j, out=value, where=self._valid)
            transform(value, value)
            value *= overlap
            np.add(num, value, out=num, where=self._valid)
            np.add(den, overlap, out=den, where=self._valid)
        np.divide(num, den, out=out, where=den > 0)
        return out

    # restart support -------------------------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Per cell (leading dimension) and slot: ``trail_sum_<driver>``, ``trail_time[_<driver>]``."""
        arrays = {f"trail_sum_{r.driver}": self.sum[i].T for i, (_, r) in enumerate(self.rules)}
        if self.acc.nan_aware:
            arrays.update({f"trail_time_{r.driver}": self.time[i].T for i, (_, r) in enumerate(self.rules)})
        else:
            arrays["trail_time"] = self.time[0].T
        return {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """From :meth:`state_arrays`; a restart without them (written before they existed) starts the window
        empty, like a cold start."""
        self.sum.fill(0.0)
        self.time.fill(0.0)
        for i, (_, r) in enumerate(self.rules):
            if f"trail_sum_{r.driver}" not in arrays:
                continue
            self.sum[i] = arrays[f"trail_sum_{r.driver}"].T
            seconds = arrays.get(f"trail_time_{r.driver}", arrays.get("trail_time"))
            if seconds is not None and (self.acc.nan_aware or i == 0):
                self.time[i if self.acc.nan_aware else 0] = seconds.T


__all__ = ["N_SLOTS", "SLOT_SECONDS", "TrailingDay"]
