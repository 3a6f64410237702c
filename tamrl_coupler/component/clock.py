"""Coupling clock: seconds since the reference date -> which day and model period a coupling step belongs to.

Steps must divide a day and start on multiples of their length counted from midnight, so a step never straddles a
day or a period; the period (monthly or daily) comes from the checkpoint. Proleptic Gregorian calendar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.errors import InputError


def parse_datetime(value: str | np.datetime64, what: str) -> np.datetime64:
    """An ISO date/time at second resolution; an error names ``what`` (the config key) otherwise."""
    try:
        return np.datetime64(value, "s")
    except (ValueError, TypeError):
        raise InputError(f"{what}: {value!r} is not an ISO date/time such as 2015-01-01T00:00:00") from None


MAX_SECONDS = 1.0e12  # about 31 700 years either side of the reference date: beyond it a time is a bug


def _seconds(value: object, what: str) -> float:
    """A finite number of seconds within MAX_SECONDS of the reference date, or an InputError saying what it was."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number of seconds, got {value!r}") from None
    if not np.isfinite(x) or abs(x) > MAX_SECONDS:
        raise InputError(f"{what} {value!r} s is not a finite number of seconds within {MAX_SECONDS:g} s of the "
                         f"reference date")
    return x


@dataclass(frozen=True)
class StepInfo:
    """Where one coupling step sits in its day and model period."""

    start: np.datetime64  # step start (UTC)
    dt: int  # seconds
    ends_day: bool
    ends_period: bool
    period_seconds: int
    elapsed: int  # seconds from the period start to the end of this step


class Clock:
    """Validates coupling steps and locates them in days and model periods."""

    def __init__(self, reference: str | np.datetime64, period: str):
        self.reference = parse_datetime(reference, "reference_date")
        if (self.reference - self.reference.astype("datetime64[D]")).astype(np.int64) != 0:
            raise InputError(f"reference_date {self.reference} must be at 00:00 UTC")
        if period not in ("monthly", "daily"):
            raise InputError(f"model period {period!r} is not supported; expected 'monthly' or 'daily'")
        self.period = period

    def datetime(self, seconds: float) -> np.datetime64:
        return self.reference + np.timedelta64(int(round(seconds)), "s")

    def seconds(self, when: str | np.datetime64) -> int:
        return int((parse_datetime(when, "time") - self.reference).astype(np.int64))

    def period_bounds(self, t: np.datetime64) -> tuple[np.datetime64, np.datetime64]:
        if self.period == "daily":
            start = t.astype("datetime64[D]")
            end = start + np.timedelta64(1, "D")
        else:
            m = t.astype("datetime64[M]")
            start, end = m.astype("datetime64[D]"), (m + np.timedelta64(1, "M")).astype("datetime64[D]")
        return start.astype("datetime64[s]"), end.astype("datetime64[s]")

    def step_length(self, time_seconds: int, configured: int | str) -> int:
        """Length of the step starting at ``time_seconds``: the configured seconds, or the model period's."""
        if configured == "period":
            start = self.datetime(time_seconds)
            p_start, p_end = self.period_bounds(start)
            if start != p_start:
                raise InputError(f"coupling_step 'period': step at {start} does not start a model period "
                                 f"({p_start})")
            return int((p_end - p_start).astype(np.int64))
        return int(configured)

    def step(self, time_seconds: float, dt_seconds: float) -> StepInfo:
        """Locate the step [time, time + dt); errors say what is wrong with the step.

        A step either divides a day (and starts on a multiple of its length from midnight) or is exactly one
        model period (a monthly host coupling monthly).
        """
        time_seconds = _seconds(time_seconds, "step time")
        dt_seconds = _seconds(dt_seconds, "coupling step length")
        dt = int(round(dt_seconds))
        t = int(round(time_seconds))
        if abs(t - time_seconds) > 1e-6:
            raise InputError(f"step time {time_seconds!r} s is not a whole number of seconds")
        whole_period = False
        if dt > 0 and abs(dt - dt_seconds) <= 1e-9 and SECONDS_PER_DAY % dt != 0:
            start = self.datetime(t)
            p_start, p_end = self.period_bounds(start)
            whole_period = start == p_start and start + np.timedelta64(dt, "s") == p_end
        if not whole_period and (dt <= 0 or abs(dt - dt_seconds) > 1e-9 or SECONDS_PER_DAY % dt != 0):
            raise InputError(f"coupling step {dt_seconds!r} s must be a whole number of seconds dividing a day "
                             f"(e.g. 1800, 3600, 10800) or exactly one model period ({self.period})")
        if not whole_period and t % dt != 0:
            raise InputError(f"step time {t} s since {self.reference} is not a multiple of the step length {dt} s "
                             f"(steps start on multiples of their length from midnight)")
        start = self.datetime(t)
        end = start + np.timedelta64(dt, "s")
        p_start, p_end = self.period_bounds(start)
        return StepInfo(
            start=start, dt=dt,
            ends_day=int((end - end.astype("datetime64[D]")).astype(np.int64)) == 0,
            ends_period=bool(end == p_end),
            period_seconds=int((p_end - p_start).astype(np.int64)),
            elapsed=int((end - p_start).astype(np.int64)),
        )
