"""Monthly fluxes from the daily model: the calendar-month means of its daily fluxes.

Why: wherever daily (or finer) drivers exist the daily model is the better one, so a monthly product made from them
is the daily model's monthly mean, not the monthly model's guess from monthly means of the drivers. A month counts
only where the model predicted every one of its days (a partial month at a record's edge would be the mean of the
days it has, biased by the season); NEE is recomputed from the monthly GPP and Reco, so NEE = GPP - Reco holds
exactly. The spreads are the monthly means of the daily spreads: the daily errors taken as fully correlated within
the month (an upper bound; the site-level part of the error is correlated over years).
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components

SPREAD_NOTE = ("monthly mean of the daily calibrated predictive standard deviations (daily errors taken as fully "
               "correlated within the month: an upper bound)")


def month_index(time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Daily time axis -> (the month of each day as an index 0..K-1, the K months as datetime64[M])."""
    months = np.asarray(time).astype("datetime64[M]")
    uniq, idx = np.unique(months, return_inverse=True)
    return idx, uniq


def monthly_means(fields: dict[str, np.ndarray], time: np.ndarray, convention: SignConvention | str
                  ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(site, day) float64 fields on the daily axis ``time`` -> (site, month) means of the months whose every day
    has a value (NaN otherwise), and the months (datetime64[M]). ``nee`` is recomputed from ``gpp`` and ``reco``
    in ``convention``."""
    idx, months = month_index(time)
    days_in = np.bincount(idx, minlength=len(months))
    calendar = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(np.int64)
    out = {}
    for k, v in fields.items():
        v = np.asarray(v, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != len(time):
            raise InputError(f"monthly means: field {k!r} has shape {v.shape}, expected (sites, {len(time)} days)")
        ok = np.isfinite(v)
        total = np.zeros((v.shape[0], len(months)))
        count = np.zeros((v.shape[0], len(months)), dtype=np.int64)
        np.add.at(total.T, idx, np.where(ok, v, 0.0).T)
        np.add.at(count.T, idx, ok.T)
        full = (count == calendar[None, :]) & (days_in == calendar)[None, :]
        out[k] = np.where(full, total / np.maximum(count, 1), np.nan)
    if "gpp" in out and "reco" in out and "nee" in out:
        out["nee"] = nee_from_components(out["gpp"], out["reco"], SignConvention.parse(convention))
    return out, months


def monthly_dataset(data: FluxDataset, months: np.ndarray) -> FluxDataset:
    """The daily dataset's sites on the monthly axis ``months`` (no drivers or targets): what the monthly means
    are written on."""
    return FluxDataset(sites=data.sites, time=np.asarray(months).astype("datetime64[ns]"), period="monthly",
                       drivers={}, targets={}, igbp=data.igbp, lat=data.lat, lon=data.lon, elevation=data.elevation,
                       source=data.source, attrs=dict(data.attrs), convention=data.convention)
