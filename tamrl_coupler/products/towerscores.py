"""Sub-daily scores of a coupled run at a flux tower against its observed sub-daily fluxes.

What a host receives every step is judged on three time scales, each on the same steps for model and observation
(steps where the observation is missing are left out of both):

* the mean diurnal cycle: the mean of each time of day over the record, in the tower's local time, correlated
  (Pearson) between model and observation -- does the step flux follow light and temperature through the day;
* day to day: daily means over local days, correlated -- does the model follow the weather;
* the record mean: model mean / observed mean -- the level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tamrl_coupler.errors import InputError


@dataclass(frozen=True)
class SubdailyScores:
    """One flux's scores (see the module docstring)."""

    diurnal_r: float
    daily_r: float
    model_mean: float
    observed_mean: float
    n_steps: int
    n_days: int
    diurnal_model: np.ndarray  # mean per time of day (local), model
    diurnal_observed: np.ndarray

    @property
    def mean_ratio(self) -> float:
        return self.model_mean / self.observed_mean


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def subdaily_scores(local_start: np.ndarray, model: np.ndarray, observed: np.ndarray, step: int,
                    min_day_fraction: float = 0.8) -> SubdailyScores:
    """Scores of ``model`` against ``observed`` (same unit and sign) on steps starting at ``local_start``
    (datetime64, the tower's local time) of length ``step`` seconds. A day enters the daily correlation when at
    least ``min_day_fraction`` of its steps have an observation."""
    local_start = np.asarray(local_start, dtype="datetime64[s]")
    model, observed = np.asarray(model, dtype=np.float64), np.asarray(observed, dtype=np.float64)
    if not (local_start.shape == model.shape == observed.shape):
        raise InputError(f"tower scores: times {local_start.shape}, model {model.shape} and observations "
                         f"{observed.shape} must have one value per step")
    if not np.isfinite(model).all():
        raise InputError("tower scores: the model has non-finite step fluxes")
    ok = np.isfinite(observed)
    day = local_start.astype("datetime64[D]")
    slot = ((local_start - day).astype(np.int64) // step).astype(np.int64)
    per_day = 86400 // step
    diurnal = np.full((2, per_day), np.nan)
    for k in range(per_day):
        sel = ok & (slot == k)
        if sel.any():
            diurnal[0, k], diurnal[1, k] = model[sel].mean(), observed[sel].mean()
    days = np.unique(day)
    daily = np.full((2, days.size), np.nan)
    for i, d in enumerate(days):
        sel = ok & (day == d)
        if sel.sum() >= min_day_fraction * per_day:
            daily[0, i], daily[1, i] = model[sel].mean(), observed[sel].mean()
    return SubdailyScores(
        diurnal_r=_pearson(diurnal[0], diurnal[1]), daily_r=_pearson(daily[0], daily[1]),
        model_mean=float(model[ok].mean()), observed_mean=float(observed[ok].mean()), n_steps=int(ok.sum()),
        n_days=int(np.isfinite(daily[1]).sum()), diurnal_model=diurnal[0], diurnal_observed=diurnal[1])


__all__ = ["SubdailyScores", "subdaily_scores"]
