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
with contiguous steps the slots hold the last 24 hours. Steps longer than an hour fill the slot of their start
only (the others stay empty). Memory: 24 sums per mean driver and cell (with fill policy 'missing' also the valid
seconds per slot).

While a run has not yet seen 24 hours (its first day, from a cold start), the window is the time seen so far, and
the light of the hours not seen is filled in by the sun: the transmissivity seen so far times the top-of-atmosphere
insolation of those hours (:meth:`TrailingDay.fill` with ``light``), so a run starting at night does not take its
first day for a dark one.

Preallocated: ``add`` and ``fill`` allocate nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.drivers import DriverAccumulator, MeanRule
from tamrl_coupler.physics.solar import ToaInsolation

SLOT_SECONDS = 3600
N_SLOTS = SECONDS_PER_DAY // SLOT_SECONDS
LIGHT_SOURCE = "rsds"


@dataclass
class UnseenLight:
    """How to fill in the light of the hours a young run has not seen: ``transmissivity`` per cell (of the light
    seen so far), the cells' insolation, and the end of the current step (the unseen hours follow it)."""

    transmissivity: np.ndarray
    insolation: ToaInsolation
    end: np.datetime64


class TrailingDay:
    """Means of ``acc``'s mean-rule drivers over the last 24 hours; see the module docstring."""

    def __init__(self, acc: DriverAccumulator):
        self.acc = acc
        self.rules = [(j, r) for j, r in enumerate(acc.rules) if isinstance(r, MeanRule)]
        n, d = acc.n, len(self.rules)
        self.sum = np.zeros((d, N_SLOTS, n))  # sum of value * dt per driver, slot and cell (the source's unit)
        self.seconds = np.zeros(N_SLOTS)  # seconds of steps per slot
        # seconds with a value, per driver, slot and cell, when values may be missing
        self.valid = np.zeros((d, N_SLOTS, n)) if acc.nan_aware else None
        self._scratch = np.zeros(n)
        self._den = np.zeros(n)
        self._num = np.zeros(n)
        self._toa = np.zeros(n)
        self._mask = np.zeros(n, dtype=bool)

    def add(self, fields: dict[str, np.ndarray], start: np.datetime64, dt: int) -> None:
        """Add the step [start, start + dt) (UTC) of ``fields`` (the same fields as the accumulator's)."""
        sod = int((np.datetime64(start, "s") - np.datetime64(start, "D")).astype(np.int64))
        k = sod // SLOT_SECONDS
        if sod - dt < k * SLOT_SECONDS:  # the first step in slot k: it held the same hour of the day before
            self.sum[:, k].fill(0.0)
            self.seconds[k] = 0.0
            if self.valid is not None:
                self.valid[:, k].fill(0.0)
        self.seconds[k] += dt
        for i, (_, r) in enumerate(self.rules):
            src = self.acc.source_for(r, fields)
            if src is None:
                continue
            x = fields[src]
            np.multiply(x, dt, out=self._scratch)
            if self.valid is not None:
                np.isfinite(x, out=self._mask)
                np.add(self.sum[i, k], self._scratch, out=self.sum[i, k], where=self._mask)
                np.add(self.valid[i, k], dt, out=self.valid[i, k], where=self._mask)
            else:
                self.sum[i, k] += self._scratch

    def unseen_seconds(self) -> float:
        """Seconds of the last 24 hours the run has not seen (a run's first day)."""
        return max(0.0, SECONDS_PER_DAY - float(self.seconds.sum()))

    def fill(self, out: np.ndarray, light: UnseenLight | None = None) -> np.ndarray:
        """The accumulator's partial-period drivers (:meth:`DriverAccumulator.fill`) with every mean-rule driver
        replaced by its mean over the last 24 hours, into ``out`` (n_cells, n_drivers); with ``light``, the
        shortwave of the hours not yet seen is filled in from the sun (module docstring)."""
        self.acc.fill(out)
        num, den = self._num, self._den
        unseen = self.unseen_seconds() if light is not None else 0.0
        for i, (j, r) in enumerate(self.rules):
            if not r.seen:
                continue  # an optional driver never given stays missing
            col = out[:, j]
            if self.valid is not None:
                np.sum(self.valid[i], axis=0, out=den)
            else:
                den.fill(float(self.seconds.sum()))
            np.sum(self.sum[i], axis=0, out=num)
            if unseen > 0.0 and r.source == LIGHT_SOURCE:
                light.insolation.integral(light.end, unseen, out=self._toa)
                self._toa *= light.transmissivity
                num += self._toa
                den += unseen
            col.fill(np.nan)
            np.divide(num, den, out=col, where=den > 0)
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
        num, den, value, have = self._num, self._den, self._scratch, self._mask
        num.fill(0.0)
        den.fill(0.0)
        for j in range(t0 // SLOT_SECONDS, (t1 - 1) // SLOT_SECONDS + 1):
            overlap = min(t1, (j + 1) * SLOT_SECONDS) - max(t0, j * SLOT_SECONDS)
            seconds_j = self.valid[i, j] if self.valid is not None else self.seconds[j]
            np.greater(seconds_j, 0.0, out=have)
            value.fill(0.0)  # a slot without a value: a harmless number for transform, left out below
            np.divide(self.sum[i, j], seconds_j, out=value, where=have)
            transform(value, value)
            value *= overlap
            np.add(num, value, out=num, where=have)
            np.add(den, overlap, out=den, where=have)
        np.divide(num, den, out=out, where=den > 0)
        return out

    # restart support -------------------------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Per cell (leading dimension) and slot: ``trail_sum_<driver>`` (and ``trail_valid_<driver>``)."""
        arrays = {f"trail_sum_{r.driver}": self.sum[i].T for i, (_, r) in enumerate(self.rules)}
        if self.valid is not None:
            arrays.update({f"trail_valid_{r.driver}": self.valid[i].T for i, (_, r) in enumerate(self.rules)})
        return {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    def state_scalars(self) -> dict[str, float]:
        """The seconds of steps per slot (``trail_seconds_<slot>``)."""
        return {f"trail_seconds_{j:02d}": float(s) for j, s in enumerate(self.seconds)}

    def load_state(self, arrays: dict[str, np.ndarray], scalars: dict[str, float]) -> None:
        """From :meth:`state_arrays` and :meth:`state_scalars`; a restart without them (written before they
        existed) starts the window empty, like a cold start. A restart written without missing values had a
        value whenever it had a step."""
        n = self.sum.shape[2]
        keys = [f"trail_sum_{r.driver}" for _, r in self.rules]
        present = [k for k in keys if k in arrays]
        if present and len(present) != len(keys):
            raise InputError(f"restart: the last 24 hours are there for {present} but not for "
                             f"{sorted(set(keys) - set(present))} (file written by another run?)")
        for key, a in arrays.items():
            if key.startswith("trail_") and np.shape(a) != (n, N_SLOTS):
                raise InputError(f"restart: array '{key}' has shape {np.shape(a)}, expected ({n}, {N_SLOTS}): "
                                 f"{N_SLOTS} hourly slots per model cell")
        self.sum.fill(0.0)
        self.seconds[:] = [scalars.get(f"trail_seconds_{j:02d}", 0.0) for j in range(N_SLOTS)] if present else 0.0
        if self.valid is not None:
            self.valid.fill(0.0)
        if not present:
            return  # nothing to average over: the window starts empty
        for i, (_, r) in enumerate(self.rules):
            self.sum[i] = arrays[f"trail_sum_{r.driver}"].T
            if self.valid is not None:
                valid = arrays.get(f"trail_valid_{r.driver}")
                self.valid[i] = valid.T if valid is not None else self.seconds[:, None]


__all__ = ["N_SLOTS", "SLOT_SECONDS", "TrailingDay", "UnseenLight"]
