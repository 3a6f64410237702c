"""Fluxes as rates from the amounts forcing files store.

ERA5 stores shortwave (``ssrd``, J m-2) and precipitation (``tp``, m of water) as amounts accumulated over the hour
before each time stamp; ERA5-Land and ERA5's own forecasts accumulate from 00 UTC up to the stamp and start again
every day; CRU-JRA stores 6-hourly totals (mm, J m-2) over the 6 hours after the stamp. The vocabulary names these
conventions (``vocabulary.Accumulation``); the file layouts say which one a file uses (``io/forcing_layouts.py``).
Here they become the rate over each record's interval: the amount divided by the interval's length, after taking
the previous record's amount off where the accumulation runs on from it. (Daily extremes from sub-daily records are
the driver rules ``daily_min``/``daily_max``, physics/drivers.py, over any sub-daily temperature a run reads.)
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.vocabulary import Accumulation


def interval(stamp: np.datetime64, spacing: np.timedelta64, kind: Accumulation) -> tuple[np.datetime64, np.datetime64]:
    """The interval the amount stamped ``stamp`` is over (records ``spacing`` apart)."""
    if kind in (Accumulation.ENDING, Accumulation.SINCE_00UTC):
        return stamp - spacing, stamp
    return stamp, stamp + spacing


def restarts(start: np.datetime64, kind: Accumulation) -> bool:
    """Whether the amount over an interval starting at ``start`` is the whole accumulated value (no previous record
    to take off): always, except for accumulations since 00 UTC whose interval does not start at 00 UTC."""
    if kind is not Accumulation.SINCE_00UTC:
        return True
    return bool(np.datetime64(start, "s") == np.datetime64(start, "D"))


def deaccumulate(current: np.ndarray, previous: np.ndarray | None, seconds: float,
                 out: np.ndarray | None = None) -> np.ndarray:
    """The rate over an interval of ``seconds``: ``(current - previous) / seconds``, or ``current / seconds`` where
    there is no previous amount to take off (``previous`` None: the accumulation restarted at the interval start)."""
    out = np.empty_like(current, dtype=np.float64) if out is None else out
    if previous is None:
        np.divide(current, seconds, out=out)
    else:
        np.subtract(current, previous, out=out)
        out /= seconds
    return out
